"""Beam's local engine (the FnApiRunner) with workers that leave their error reports to the driver.

``mirdl prepare --workers N`` runs ``--direct_running_mode=multi_threading``: N worker threads
in the driver's process (Beam's embedded gRPC workers). A failed bundle's worker prints its
traceback to ``sys.stderr`` before the driver raises the same error; :class:`LocalRunner` drops
what those threads write to ``sys.stderr`` while they run a bundle (:class:`WorkerStderrDropped`,
as the worker processes' stderr is discarded below), and their log records go through the
driver's logging (the levels of :data:`WORKER_LOG_LEVELS` do not apply: there is no worker
logging service; :func:`mirdl.pipelines.failures.quiet_failed_bundles` silences the loggers
that repeat a failed bundle).

With ``--direct_running_mode=multi_processing`` Beam starts each worker as
``python -m apache_beam.runners.worker.sdk_worker_main`` with the driver's stderr. Whatever a
worker reports also reaches the driver: its log records through Beam's logging service (the
driver logs them) and a failed bundle's traceback in the bundle's reply (the driver raises
it). On the worker's stderr they only repeat: a failed bundle's traceback printed and logged
there as well, and, since a Ctrl-C at the terminal reaches the whole process group, a
``KeyboardInterrupt`` traceback from every worker. And the FnApiRunner gives its workers no
pipeline options, so they log at INFO.

:class:`LocalRunner` is Beam's runner with these workers changed:

- their stderr discarded (on POSIX: ``exec python -m ... 2>/dev/null`` through ``sh``, which
  Beam starts them with). A Ctrl-C still stops them at once, silently, and the driver, which
  handles it (:func:`mirdl.pipelines.failures.stop_on_interrupt`), waits for them to end
  before it deletes anything. Python warnings of the workers go too (``--workers 1`` shows
  them), and so would the reason of a worker that cannot even start (Beam then waits for it
  forever, as it does with Beam's own command; the driver shows ``Worker subprocess exited``);
- given log levels (:data:`WORKER_LOG_LEVELS`): WARNING, and nothing from the Beam loggers
  that only repeat a failed bundle. ``--default_sdk_harness_log_level`` and
  ``--sdk_harness_log_level_overrides`` change them;
- waited for when the run ends, also where Beam skips the wait (see :meth:`LocalRunner.run_pipeline`).

And in this process (the driver's, whose worker threads run the bundles) the state sampler of
every bundle samples every :data:`SAMPLING_PERIOD_MS` while the run lasts
(:func:`state_sampling_period`): a bundle's end waits for its sampler's thread to wake up, up to
a sampling period, and Beam's period (200 ms) is reached after ~1 s of a bundle.

Elsewhere (Windows) the worker processes keep their stderr. Everything else is Beam's runner.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from apache_beam.options.pipeline_options import WorkerOptions
from apache_beam.portability import python_urns
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo
from apache_beam.runners.worker import sdk_worker, statesampler

from mirdl.pipelines.failures import FAILURE_LOGGERS

__all__ = ["SAMPLING_PERIOD_MS", "WORKER_LOG_LEVELS", "LocalRunner", "WorkerStderrDropped", "beam_worker_command",
           "state_sampling_period", "worker_command"]

_WORKER_MAIN = "apache_beam.runners.worker.sdk_worker_main"
#: After a failed or interrupted run, how long to wait for worker threads still inside a bundle.
BUNDLE_WAIT_SECONDS = 300.0
#: Log levels of the worker processes: ``default_sdk_harness_log_level`` and
#: ``sdk_harness_log_level_overrides`` (logger -> level). The errors of the loggers of
#: :data:`~mirdl.pipelines.failures.FAILURE_LOGGERS` repeat a failed bundle, which the driver
#: raises anyway; ``__main__`` (the worker's main module) warns that there is no staging
#: directory, which a local run never has.
WORKER_LOG_LEVELS: dict[str, Any] = {
    "default_sdk_harness_log_level": "WARNING",
    "sdk_harness_log_level_overrides": {**{name: "CRITICAL" for name in FAILURE_LOGGERS}, "__main__": "ERROR"},
}


#: Milliseconds between two samples of a bundle's state sampler while a :class:`LocalRunner` runs
#: (Beam's :data:`~apache_beam.runners.worker.statesampler.DEFAULT_SAMPLING_PERIOD_MS`: 200).
#: The sampler's thread sleeps a period at a time, and the bundle's end joins it: with Beam's
#: period the 7 bundles of a 1-worker `mirdl prepare` waited 126-199 ms in all for their samplers,
#: 12-15 ms at 10 ms (BENCHMARKS.md, round 10). The thread only reads a counter when it wakes.
SAMPLING_PERIOD_MS = 10

_sampling_lock = threading.Lock()
_sampling_runs = [0]  # runs inside state_sampling_period (the last one out restores Beam's default)


@contextlib.contextmanager
def state_sampling_period(ms: int = SAMPLING_PERIOD_MS) -> Iterator[None]:
    """Inside, every state sampler Beam's workers make in this process samples every ``ms``
    milliseconds; afterwards Beam's default again (concurrent runs: when the last one ends).

    Beam has no option for it: the period is the default argument of
    :class:`~apache_beam.runners.worker.statesampler.StateSampler`, which each bundle's processor
    constructs without it. Where that default is not Beam's documented one (another Beam
    version), nothing is changed.

    Examples
    --------
    >>> from apache_beam.runners.worker import statesampler
    >>> with state_sampling_period(10):
    ...     statesampler.StateSampler("step", None).sampling_period_ms
    10
    >>> statesampler.StateSampler("step", None).sampling_period_ms
    200
    """
    init = statesampler.StateSampler.__init__
    default = (statesampler.DEFAULT_SAMPLING_PERIOD_MS,)
    with _sampling_lock:
        # Not the Beam this was written for (its sampler's default is another): left alone.
        changed = _sampling_runs[0] > 0 or init.__defaults__ == default
        if changed:
            _sampling_runs[0] += 1
            init.__defaults__ = (int(ms),)
    try:
        yield
    finally:
        if changed:
            with _sampling_lock:
                _sampling_runs[0] -= 1
                if _sampling_runs[0] == 0:
                    init.__defaults__ = default


def beam_worker_command() -> str:
    """The command Beam's FnApiRunner starts each worker of ``multi_processing`` mode with."""
    return f"{sys.executable} -m {_WORKER_MAIN}"


def worker_command() -> str:
    """The same worker with its stderr discarded (a POSIX ``sh`` command); elsewhere Beam's.

    Examples
    --------
    >>> import os
    >>> command = worker_command()
    >>> command.endswith(" 2>/dev/null") if os.name == "posix" else command == beam_worker_command()
    True
    """
    if os.name != "posix":
        return beam_worker_command()
    return f"exec {shlex.quote(sys.executable)} -m {_WORKER_MAIN} 2>/dev/null"


class WorkerStderrDropped:
    """``sys.stderr`` for a run with worker threads: writes of a thread that is running a Beam
    instruction (a bundle) are dropped, every other write goes to ``stream``.

    Beam's worker prints a failed bundle's traceback there before the driver raises the error
    itself; a worker process's stderr is discarded for the same reason.

    Examples
    --------
    >>> import io
    >>> from apache_beam.runners.worker import sdk_worker, statesampler
    >>> stream = io.StringIO()
    >>> stderr = WorkerStderrDropped(stream)
    >>> with statesampler.instruction_id("bundle-1"):  # as Beam's worker thread runs a bundle
    ...     _ = stderr.write("Traceback (most recent call last): ...")
    >>> _ = stderr.write("prepare: 1/2 files")
    >>> stream.getvalue()
    'prepare: 1/2 files'
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if statesampler.get_current_instruction_id() is not None:
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding, fileno ...: the stream's
        return getattr(self._stream, name)


def threads_in_bundles() -> list[int]:
    """Idents of the threads of this process that are running a Beam worker instruction (a bundle).

    Beam's embedded workers run bundles on its shared thread pool, which nothing joins: when a
    run fails or is interrupted, a worker thread finishes the element it holds after the driver
    has given up on its bundle.

    Examples
    --------
    >>> threads_in_bundles()
    []
    """
    execute = sdk_worker.SdkHarness._execute.__code__  # noqa: SLF001 - where every instruction runs
    busy = []
    for ident, frame in sys._current_frames().items():  # noqa: SLF001
        while frame is not None and frame.f_code is not execute:
            frame = frame.f_back
        if frame is not None:
            busy.append(ident)
    return busy


class LocalRunner(FnApiRunner):
    """Beam's :class:`~apache_beam.runners.portability.fn_api_runner.FnApiRunner` whose worker
    threads (``multi_threading`` mode) print nothing to ``sys.stderr`` while they run a bundle,
    and whose worker processes (``multi_processing`` mode) discard their stderr and log at the
    levels of :data:`WORKER_LOG_LEVELS` (see the module docs).

    Examples
    --------
    >>> import apache_beam as beam
    >>> from apache_beam.options.pipeline_options import PipelineOptions
    >>> with beam.Pipeline(runner=LocalRunner(), options=PipelineOptions([])) as pipeline:
    ...     _ = pipeline | beam.Create([1, 2]) | beam.Map(print)
    1
    2
    """

    def __init__(self) -> None:
        # The FnApiRunner hands this ProvisionInfo's pipeline options to its workers; it has none.
        self._worker_provision = beam_provision_api_pb2.ProvisionInfo(retrieval_token="unused-retrieval-token")
        super().__init__(provision_info=ExtendedProvisionInfo(self._worker_provision))

    def run_pipeline(self, pipeline: Any, options: Any) -> Any:
        given = options.view_as(WorkerOptions)
        overrides = {**WORKER_LOG_LEVELS["sdk_harness_log_level_overrides"],
                     **(given.sdk_harness_log_level_overrides or {})}
        self._worker_provision.pipeline_options.update({
            "default_sdk_harness_log_level": (given.default_sdk_harness_log_level
                                              or WORKER_LOG_LEVELS["default_sdk_harness_log_level"]),
            "sdk_harness_log_level_overrides": overrides,
        })
        running = set(threading.enumerate())
        stderr = sys.stderr
        sys.stderr = WorkerStderrDropped(stderr)
        try:
            with state_sampling_period(SAMPLING_PERIOD_MS):
                return super().run_pipeline(pipeline, options)
        finally:
            # A worker thread may still be inside a bundle (the other worker's failure, or a
            # Ctrl-C, ended the run): it would go on writing spill files into the temporary store
            # the caller deletes next. It stops after the element it holds (its input is closed).
            try:
                deadline = time.monotonic() + BUNDLE_WAIT_SECONDS
                while threads_in_bundles() and time.monotonic() < deadline:
                    time.sleep(0.02)
            finally:
                sys.stderr = stderr
            # Beam waits for each worker process as it closes it, but not when closing the
            # worker's data connection fails (it logs the error and goes on), as it can after a
            # failed bundle or a Ctrl-C. Wait here: no worker may still write into files the
            # caller deletes next (a spill file would bring a deleted temporary store back).
            for thread in threading.enumerate():
                if thread.name == "run_worker" and thread not in running:  # Beam's SubprocessSdkWorker
                    thread.join()

    def run_via_runner_api(self, pipeline_proto: Any, options: Any) -> Any:
        default = beam_worker_command().encode("utf-8")
        for environment in pipeline_proto.components.environments.values():
            if environment.urn == python_urns.SUBPROCESS_SDK and environment.payload == default:
                environment.payload = worker_command().encode("utf-8")
        return super().run_via_runner_api(pipeline_proto, options)
