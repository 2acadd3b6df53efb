"""The precompute job's own command-line options, without Beam.

:func:`add_arguments` declares them on an :mod:`argparse` parser; both ``mirdl prepare``
(:mod:`mirdl.commands.prepare`) and :func:`mirdl.pipelines.precompute.run` use it, and
building the CLI's parser imports no Beam. Every other argument is a Beam pipeline option,
passed through unchanged.

A bad value is reported by argparse under its flag (``argument --workers: 0 must be an
integer >= 1``): :func:`mirdl.features.checks.argparse_type` makes the checker the library
uses into an argparse type, so the CLI and the library share one definition of each check
while the library names its parameter (``workers=0``) and the CLI its flag.

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
from pathlib import Path

from mirdl.features.checks import argparse_type, fraction, integer, partition, positive_float

__all__ = ["EXIT_STATUS", "add_arguments"]

#: The job's exit statuses, as ``mirdl prepare --help`` lists them.
EXIT_STATUS = ("0 all files made it, 3 some failed (see STORE/errors.jsonl), 4 aborted by --max-error-rate, "
               "5 no space left on the device, 6 cancelled by --job-timeout or --stall-timeout, 2 bad config, "
               "Beam option, destination or unreachable --job_endpoint, 130 interrupted (Ctrl-C); after 4, 5, 6 "
               "or 130 nothing was written")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the job's flags: ``--config``, ``--workers``, ``--overwrite``, ``--max-error-rate``,
    ``--job-timeout``, ``--stall-timeout``, ``--partition``, ``--update``."""
    parser.add_argument("--config", required=True, type=Path, help="prepare config (YAML)")
    parser.add_argument("--workers", type=argparse_type(integer, int, minimum=1), default=2, metavar="N",
                        help="workers of the local runner: threads of this process (default 2; 1 = no worker "
                             "threads, fastest for small corpora); not used with --runner")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace store.out if it holds a mirdl store (rebuilds even an up-to-date one)")
    parser.add_argument("--max-error-rate", type=argparse_type(fraction, float), default=None, metavar="F",
                        help="abort without writing anything (exit 4) if more than this fraction of the "
                             "input files fail")
    parser.add_argument("--job-timeout", type=argparse_type(positive_float, float), default=None, metavar="SECONDS",
                        help="with --runner: cancel the job (exit 6, nothing written) if it has not finished "
                             "in this time (default: no limit)")
    parser.add_argument("--stall-timeout", type=argparse_type(positive_float, float), default=None,
                        metavar="SECONDS",
                        help="with --runner: cancel the job (exit 6, nothing written) if no input file "
                             "finished for this long while files remain, as when the workers cannot start "
                             "(default 600)")
    parser.add_argument("--partition", type=argparse_type(partition, str), default=None, metavar="I/K",
                        help="array jobs: process part I (0 .. K-1) of K of the corpus (a stable hash of the track "
                             "id) into the partial store STORE.part-I-of-K next to store.out; `mirdl merge` "
                             "combines the K partials")
    parser.add_argument("--update", type=Path, default=None, metavar="STORE",
                        help="update STORE (written by mirdl prepare with this config) to the corpus as it is now: "
                             "unchanged tracks are copied from its shards, never decoded again; new and changed "
                             "ones are computed, removed ones dropped; the result replaces STORE (version + 1)")
    parser.epilog = ("Any other option is a Beam pipeline option, passed through unchanged if some Beam runner "
                     "knows it, e.g. --runner=FlinkRunner --flink_master=HOST:8081 --parallelism=32. "
                     f"Exit status: {EXIT_STATUS}.")
