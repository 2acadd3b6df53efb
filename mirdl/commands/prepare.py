"""``mirdl prepare --config CONFIG.yaml``: run the Beam precompute job (corpus -> sharded feature store).

The job's own flags are :func:`mirdl.pipelines.options.add_arguments` (Beam-free;
:func:`mirdl.pipelines.precompute.run` parses the same);
every other argument is a Beam pipeline option and is passed through unchanged
(``--runner=DataflowRunner --project=...``) if some Beam runner knows it.
Exit status (:data:`EXIT_STATUS`): 0 all files made it, 3 some failed (see ``STORE/errors.jsonl``),
4 aborted by ``--max-error-rate`` (nothing written), 5 no space left on the device (nothing
written), 6 cancelled by ``--job-timeout`` / ``--stall-timeout`` (nothing written), 2 bad config,
Beam option, destination or unreachable endpoint, 130 interrupted (Ctrl-C; nothing written).
Every failure is one line on stderr.

Examples
--------
::

    mirdl prepare --config configs/prepare_demo.yaml --workers 2
    mirdl prepare --config big.yaml --runner=FlinkRunner --flink_master=host:8081 --parallelism=32
    mirdl prepare --config big.yaml --runner=PortableRunner --job_endpoint=localhost:8099 \
        --environment_type=EXTERNAL --environment_config=localhost:50000 --setup_file=./setup.py
"""
from __future__ import annotations

import argparse

from mirdl.commands import BEAM_UNUSED, beam_import_notices_dropped, modules_hidden
from mirdl.pipelines.options import EXIT_STATUS, add_arguments

__all__ = ["EXIT_STATUS", "configure", "preload", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl prepare``; unknown ones are kept as Beam options (``args.beam_args``)."""
    add_arguments(parser)
    parse_known_args = parser.parse_known_args

    # mirdl's top-level parser rejects unknown arguments; Beam's options cannot all be declared,
    # so this subcommand's parser keeps whatever it does not know in `beam_args` instead.
    def keep_unknown(args=None, namespace=None):
        namespace, unknown = parse_known_args(args, namespace)
        namespace.beam_args = list(getattr(namespace, "beam_args", None) or []) + unknown
        return namespace, []

    parser.parse_known_args = keep_unknown


def _import_job(*, hide: tuple[str, ...] = ()) -> None:
    """Import the job's modules (Beam among them; its import notices dropped:
    :func:`mirdl.commands.beam_import_notices_dropped`), with ``hide`` hidden from them
    (:func:`mirdl.commands.modules_hidden`)."""
    with beam_import_notices_dropped(), modules_hidden(hide):
        import mirdl.pipelines.precompute  # noqa: F401


def preload() -> None:
    """The ``mirdl prepare`` command's own process: import the job's modules, Beam without the
    modules it would import only for integrations the job does not use
    (:data:`mirdl.commands.BEAM_UNUSED`). Calls from Python (:func:`run`) import Beam as it is."""
    _import_job(hide=BEAM_UNUSED)


def run(args: argparse.Namespace) -> int:
    """Run the job; return its exit status."""
    _import_job()
    from mirdl.pipelines.precompute import prepare

    return prepare(args.config, workers=args.workers, overwrite=args.overwrite,
                   max_error_rate=args.max_error_rate, job_timeout=args.job_timeout,
                   stall_timeout=args.stall_timeout, beam_args=list(getattr(args, "beam_args", []) or []),
                   partition=args.partition, update=args.update)
