"""Check the Beam pipeline options a job passes through: a runner Beam knows, options some
runner knows.

Beam itself accepts any option and drops the ones no :class:`PipelineOptions` class declares
(with a log warning at most), so a typo such as ``--direct_num_worker=4`` or ``--projct=x``
would silently run something else than asked; and it reports an unknown ``--runner`` only as
a ``ValueError`` once the pipeline is built. :func:`check_beam_args` rejects both up front
with a :class:`~mirdl.errors.ConfigError` naming the option. Known options are those of every
registered ``PipelineOptions`` subclass, parsed as Beam parses them
(``PipelineOptions.get_all_options``): all runners' options in
:mod:`apache_beam.options.pipeline_options` (Dataflow's ``--project``, ``--region``,
``--temp_location``; Flink's ``--flink_master``, ``--parallelism``; portable
``--job_endpoint``, ``--environment_type``; ``--setup_file``, ``--direct_num_workers``, ...),
and those of a runner named by its dotted path, whose module is imported first.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from typing import NoReturn

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser
from apache_beam.runners.runner import PipelineRunner

from mirdl.errors import ConfigError

__all__ = ["RUNNER_NAMES", "check_beam_args", "check_runner"]

#: Runners Beam knows by name (``--runner=DataflowRunner``; also case-insensitive and without
#: the ``Runner`` suffix, as Beam's ``create_runner`` resolves them).
RUNNER_NAMES: tuple[str, ...] = tuple(sorted(StandardOptions.KNOWN_RUNNER_NAMES))


class _Parser(_BeamArgumentParser):
    """Beam's option parser, raising ConfigError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _parser() -> _Parser:
    parser = _Parser(allow_abbrev=False, add_help=False)
    # As PipelineOptions.get_all_options: each registered class once (a class may be defined twice).
    for options_class in {str(cls): cls for cls in PipelineOptions.__subclasses__()}.values():
        options_class._add_argparse_args(parser)  # noqa: SLF001 - how Beam itself collects them
    return parser


def check_runner(runner: str) -> None:
    """Raise :class:`~mirdl.errors.ConfigError` unless Beam can make a runner of ``runner``.

    A name of :data:`RUNNER_NAMES` (any case, ``Runner`` suffix optional), or the dotted path
    of a :class:`~apache_beam.runners.runner.PipelineRunner` subclass (imported here, so its
    options are known afterwards).

    Examples
    --------
    >>> check_runner("flink"); check_runner("DataflowRunner")
    >>> check_runner("NoSuchRunner")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mirdl.errors.ConfigError: --runner='NoSuchRunner' is not a Beam runner: use one of ..., DataflowRunner, ...
    """
    known = {name.lower() for name in RUNNER_NAMES}
    if runner.lower() in known or runner.lower() + "runner" in known:
        return
    if "." not in runner:
        raise ConfigError(f"--runner={runner!r} is not a Beam runner: use one of {', '.join(RUNNER_NAMES)}, "
                          "or the dotted path of a PipelineRunner subclass")
    module_name, class_name = runner.rsplit(".", 1)
    try:
        runner_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"--runner={runner!r} cannot be imported ({type(err).__name__}: {err})") from err
    if not (isinstance(runner_class, type) and issubclass(runner_class, PipelineRunner)):
        raise ConfigError(f"--runner={runner!r} is not a PipelineRunner subclass")


def check_beam_args(beam_args: Sequence[str], *, other_flags: Sequence[str] = ()) -> None:
    """Raise :class:`~mirdl.errors.ConfigError` for an unknown runner, an option no Beam runner
    knows, or a bad value of a known one (``--direct_running_mode=fast``).

    Parameters
    ----------
    beam_args : sequence of str
        Command-line arguments meant for Beam (``["--runner=FlinkRunner", "--parallelism", "8"]``).
    other_flags : sequence of str
        The calling command's own flags: offered, as Beam's are, when an option looks like a typo.

    Examples
    --------
    >>> check_beam_args(["--runner=DataflowRunner", "--project=p", "--region", "europe-west1",
    ...                  "--temp_location=gs://b/tmp", "--setup_file=./setup.py"])
    >>> check_beam_args(["--runner=FlinkRunner", "--flink_master=host:8081", "--parallelism=8"])
    >>> check_beam_args(["--direct_num_worker=4"])
    Traceback (most recent call last):
    ...
    mirdl.errors.ConfigError: unknown option --direct_num_worker=4: ... (did you mean --direct_num_workers?)
    """
    parser = _parser()
    # The runner first: a runner given by its dotted path may bring its own options class.
    known, _ = parser.parse_known_args(list(beam_args))
    if known.runner is not None:
        check_runner(known.runner)
        parser = _parser()
    _, unknown = parser.parse_known_args(list(beam_args))
    if unknown:
        arg = unknown[0]
        if not arg.startswith("-"):
            raise ConfigError(f"unexpected argument {arg!r} (Beam options are --name=value)")
        name = arg.split("=", 1)[0]
        options = [flag for action in parser._actions for flag in action.option_strings]  # noqa: SLF001
        close = difflib.get_close_matches(name, [*other_flags, *options], n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown option {arg}: not a flag of this command nor an option of any Beam runner{hint}")
