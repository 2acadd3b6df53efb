"""The precompute job's own command-line options, without Beam.

:func:`add_arguments` declares them on an :mod:`argparse` parser; both ``mirdl prepare``
(:mod:`mirdl.commands.prepare`) and :func:`mirdl.pipelines.precompute.run` use it, and
building the CLI's parser imports no Beam. Every other argument is a Beam pipeline option,
passed through unchanged.

A bad value is reported by argparse under its flag (``argument --workers: 0 must be an
integer >= 1``); :func:`flag` turns a :mod:`mirdl.features.checks` checker into such an
argparse type, so the CLI and the library share one definition of each check while the
library names its parameter (``workers=0``) and the CLI its flag.

Examples
--------
>>> parser = argparse.ArgumentParser(prog="prepare")
>>> add_arguments(parser)
>>> args, beam_args = parser.parse_known_args(["--config", "c.yaml", "--workers", "4", "--runner=FlinkRunner"])
>>> args.workers, args.max_error_rate, beam_args
(4, None, ['--runner=FlinkRunner'])
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mirdl.features.checks import CheckError, fraction, integer

__all__ = ["add_arguments", "flag"]

_WHAT = {int: "an integer", float: "a number"}


def flag(check: Callable[..., Any], convert: Callable[[str], Any], **kwargs: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` that converts the text and runs ``check`` on it.

    A failure is an :class:`argparse.ArgumentTypeError`, which argparse reports under the flag
    (``argument --workers: ...``) with exit status 2.

    Examples
    --------
    >>> flag(integer, int, minimum=1)("3")
    3
    """
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text} is not {_WHAT.get(convert, 'valid')}") from None
        try:
            return check(value, name="value", **kwargs)
        except CheckError as err:  # argparse puts the flag in front: "argument --workers: 0 must be ..."
            raise argparse.ArgumentTypeError(f"{text} {err.requirement}") from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the job's flags: ``--config``, ``--workers``, ``--overwrite``, ``--max-error-rate``."""
    parser.add_argument("--config", required=True, type=Path, help="prepare config (YAML)")
    parser.add_argument("--workers", type=flag(integer, int, minimum=1), default=2, metavar="N",
                        help="worker processes of the local runner (default 2; 1 = in this process, fastest "
                             "for small corpora); not used with --runner")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace store.out if it holds a store with another fingerprint")
    parser.add_argument("--max-error-rate", type=flag(fraction, float), default=None, metavar="F",
                        help="abort without writing anything (exit 4) if more than this fraction of the "
                             "input files fail")
    parser.epilog = ("Any other option is a Beam pipeline option, passed through unchanged, e.g. "
                     "--runner=FlinkRunner --flink_master=HOST:8081 --parallelism=32. Exit status: 0 all "
                     "files made it, 3 some failed (see STORE/errors.jsonl), 4 aborted by --max-error-rate.")
