"""What runs the precompute job, checked before it is submitted and watched while it runs.

Beam's local engine runs the job in this process or in worker processes it starts itself.
Every other runner (``--runner=PortableRunner``, ``FlinkRunner``, ``SparkRunner``,
``DataflowRunner``) hands the job to a service and to workers started elsewhere, which fail in
ways the driver never hears of: a worker pool whose workers lack ``apache_beam`` (started without
the project's environment on ``PATH``) leaves the job RUNNING forever with no error anywhere.
So, for those runners:

- :func:`check_endpoints`: ``--job_endpoint`` and an ``EXTERNAL`` environment's
  ``--environment_config`` must accept a TCP connection before anything is submitted (a
  :class:`~mirdl.errors.ConfigError` naming the flag otherwise);
- :func:`resolve_packaging`: ``--setup_file`` / ``--requirements_file`` are made absolute (Beam
  builds the sdist and stages it from any working directory) and must exist;
  :func:`packaging_note` says what the workers must have installed when none is given;
- :func:`wait_guarded`: the driver waits for the job with a whole-job limit (``--job-timeout``) and
  a no-progress limit (``--stall-timeout``: no input file finished for that long while files
  remain); either cancels the job and raises :class:`JobTimeout`;
- :func:`describe_runner`: what actually ran, for the job's summary.

Examples
--------
>>> from apache_beam.options.pipeline_options import PipelineOptions
>>> describe_runner(PipelineOptions(["--runner=PortableRunner", "--job_endpoint=localhost:8099",
...                                  "--environment_type=EXTERNAL", "--environment_config=localhost:50000"]),
...                 workers=2)
'PortableRunner (job endpoint localhost:8099, EXTERNAL workers at localhost:50000)'
>>> describe_runner(PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
...                                  "--direct_num_workers=4"]), workers=2)
"Beam's local engine with 4 worker processes"
>>> describe_runner(PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=in_memory"]), workers=1)
"Beam's local engine in this process"
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from typing import Any

from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)

from mirdl import __version__
from mirdl.errors import ConfigError, MirdlError

__all__ = ["LOCAL_RUNNERS", "DEFAULT_STALL_TIMEOUT", "JobTimeout", "is_local", "describe_runner", "check_endpoints",
           "workers_on_this_host", "resolve_packaging", "packaging_note", "wait_guarded", "in_background"]

#: Runners that run the job in this process or in worker processes this driver starts.
LOCAL_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")
#: ``--stall-timeout`` of a non-local runner when none is given: no input file finished for 10
#: minutes (a cluster's workers take a few minutes to start; one file takes seconds).
DEFAULT_STALL_TIMEOUT = 600.0
_CONNECT_TIMEOUT = 5.0
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: How long the driver waits for the runner to confirm a cancellation before it gives up on it.
_CANCEL_GRACE = 15.0


class JobTimeout(MirdlError):
    """The job was cancelled: it ran longer than ``--job-timeout`` or made no progress for ``--stall-timeout``."""


def _runner_name(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner
    return runner if isinstance(runner, str) else type(runner).__name__


def is_local(options: PipelineOptions) -> bool:
    """Whether ``options`` run the job on Beam's local engine (no ``--runner``, or a direct runner)."""
    name = _runner_name(options).rsplit(".", 1)[-1]
    return name in LOCAL_RUNNERS or name.lower() in ("direct", "fnapi")


def describe_runner(options: PipelineOptions, *, workers: int) -> str:
    """What runs the job: the local engine and its worker processes, or the runner and where it runs."""
    if is_local(options):
        if _runner_name(options) != "FnApiRunner":
            return _runner_name(options)
        direct = options.view_as(DirectOptions)
        n = direct.direct_num_workers or workers
        if direct.direct_running_mode == "multi_processing" and n > 1:
            return f"Beam's local engine with {n} worker processes"
        if direct.direct_running_mode == "multi_threading" and n > 1:
            return f"Beam's local engine with {n} threads"
        return "Beam's local engine in this process"
    where = []
    portable = options.view_as(PortableOptions)
    if portable.job_endpoint:
        where.append(f"job endpoint {portable.job_endpoint}")
    if portable.environment_type:
        kind = portable.environment_type.upper()
        where.append(f"{kind} workers at {portable.environment_config}" if portable.environment_config
                     else f"{kind} workers")
    cloud = options.view_as(GoogleCloudOptions)
    if cloud.project:
        where.append(f"project {cloud.project}" + (f", region {cloud.region}" if cloud.region else ""))
    if options.view_as(WorkerOptions).num_workers:
        where.append(f"{options.view_as(WorkerOptions).num_workers} workers")
    return _runner_name(options) + (f" ({', '.join(where)})" if where else "")


def _host_port(value: str, *, flag: str) -> tuple[str, int]:
    text = value.strip()
    if text.startswith("{"):  # EXTERNAL's JSON form: {"url": "host:port", "params": ...}
        try:
            text = str(json.loads(text)["url"])
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{flag}={value!r} is JSON without a 'url' (host:port)") from err
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"{flag}={value!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


def _check_reachable(value: str, *, flag: str, what: str) -> None:
    host, port = _host_port(value, flag=flag)
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(f"{flag}={value}: cannot connect to the {what} ({reason}); is it running, "
                          "and reachable from here?") from err


def check_endpoints(options: PipelineOptions) -> None:
    """Raise :class:`~mirdl.errors.ConfigError` naming the flag unless ``--job_endpoint`` accepts a
    TCP connection, and an ``EXTERNAL`` environment's ``--environment_config`` too when the job
    service runs on this host (elsewhere the runner resolves that address on its own machines).
    Nothing is submitted before; a runner that starts its own job server has no endpoint to check.

    Examples
    --------
    >>> import socket
    >>> with socket.socket() as sock:  # a port nothing listens on
    ...     sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]
    >>> check_endpoints(PipelineOptions(["--runner=PortableRunner", f"--job_endpoint=127.0.0.1:{port}"]))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mirdl.errors.ConfigError: --job_endpoint=127.0.0.1:...: cannot connect to the job service (Connection refused); ...
    """
    if is_local(options):
        return
    portable = options.view_as(PortableOptions)
    if portable.job_endpoint and portable.job_endpoint != "embed":
        _check_reachable(portable.job_endpoint, flag="--job_endpoint", what="job service")
    if (portable.environment_type or "").upper() == "EXTERNAL":
        if not portable.environment_config:
            raise ConfigError("--environment_type=EXTERNAL needs --environment_config=HOST:PORT (the SDK worker pool)")
        # The runner, not this driver, connects to the pool: its address means the same here only
        # when the job service runs on this host (a Flink TaskManager's localhost:50000 sidecar does not).
        job_host = _host_port(portable.job_endpoint, flag="--job_endpoint")[0] if portable.job_endpoint else None
        if job_host in _LOOPBACK_HOSTS:
            _check_reachable(portable.environment_config, flag="--environment_config", what="SDK worker pool")


def workers_on_this_host(options: PipelineOptions) -> bool:
    """Whether the job's workers run on this machine: the local engine, or a job service on this
    host with an ``EXTERNAL`` worker pool on it (or ``LOOPBACK`` workers, which run in this process).

    Examples
    --------
    >>> workers_on_this_host(PipelineOptions(["--runner=PortableRunner", "--job_endpoint=localhost:8099",
    ...                                       "--environment_type=EXTERNAL", "--environment_config=127.0.0.1:5000"]))
    True
    >>> workers_on_this_host(PipelineOptions(["--runner=FlinkRunner", "--flink_master=jobmanager:8081"]))
    False
    """
    if is_local(options):
        return True
    portable = options.view_as(PortableOptions)
    if not portable.job_endpoint or _host_port(portable.job_endpoint, flag="--job_endpoint")[0] not in _LOOPBACK_HOSTS:
        return False
    kind = (portable.environment_type or "").upper()
    if kind == "LOOPBACK":
        return True
    return (kind == "EXTERNAL" and bool(portable.environment_config)
            and _host_port(portable.environment_config, flag="--environment_config")[0] in _LOOPBACK_HOSTS)


def resolve_packaging(options: PipelineOptions, *, cwd: str | os.PathLike | None = None) -> None:
    """Make ``--setup_file`` and ``--requirements_file`` absolute (relative to ``cwd``, default the
    working directory) in ``options``; raise :class:`~mirdl.errors.ConfigError` naming the flag if
    one is missing or (``--setup_file``) is not a ``setup.py`` or ``pyproject.toml``."""
    setup = options.view_as(SetupOptions)
    base = os.fspath(cwd) if cwd is not None else os.getcwd()
    for attribute, flag in (("setup_file", "--setup_file"), ("requirements_file", "--requirements_file")):
        value = getattr(setup, attribute)
        if not value:
            continue
        path = os.path.abspath(os.path.join(base, os.path.expanduser(value)))
        if not os.path.isfile(path):
            raise ConfigError(f"{flag}={value}: no such file ({path})")
        if attribute == "setup_file" and os.path.basename(path) not in ("setup.py", "pyproject.toml"):
            raise ConfigError(f"{flag}={value}: must name a setup.py or pyproject.toml (Beam builds an sdist from it)")
        setattr(setup, attribute, path)


def packaging_note(options: PipelineOptions) -> str | None:
    """What remote workers must have installed when the job ships nothing to them, else None."""
    if is_local(options):
        return None
    setup, worker = options.view_as(SetupOptions), options.view_as(WorkerOptions)
    if setup.setup_file or setup.requirements_file or setup.extra_packages or worker.sdk_container_image:
        return None
    return (f"note: no --setup_file, --requirements_file, --extra_package or --sdk_container_image given: the "
            f"workers must already have mirdl {__version__} and its dependencies (apache-beam, librosa, ...) "
            "installed")


def wait_guarded(result: Any, *, progress: Callable[[], int], total: int, job_timeout: float | None,
                 stall_timeout: float | None, poll: float = 0.5) -> Any:
    """Wait for a submitted job; return its final state.

    Cancel it and raise :class:`JobTimeout` if it runs longer than ``job_timeout`` seconds, or
    if ``progress()`` (input files done) stays the same for ``stall_timeout`` seconds while it
    is below ``total``. An error of the job itself is raised as the runner raises it.
    """
    finished = in_background(result.wait_until_finish, name="mirdl-wait-for-job")
    started = last_change = time.monotonic()
    last_count = progress()
    try:
        while not wait_for([finished], timeout=poll).done:
            now, count = time.monotonic(), progress()
            if count != last_count:
                last_count, last_change = count, now
            if job_timeout is not None and now - started > job_timeout:
                reason = f"it did not finish within --job-timeout={job_timeout:g} s ({count} of {total} files done)"
            elif stall_timeout is not None and count < total and now - last_change > stall_timeout:
                reason = (f"no input file finished for --stall-timeout={stall_timeout:g} s ({count} of {total} "
                          "done); do the workers have apache_beam and mirdl installed?")
            else:
                continue
            if not _cancel(result):
                reason += "; the runner did not confirm the cancellation"
            wait_for([finished], timeout=_CANCEL_GRACE)
            raise JobTimeout(f"job cancelled: {reason}")
    except KeyboardInterrupt:  # Ctrl-C: the job must not go on writing into a store the driver deletes
        _cancel(result)
        raise
    return finished.result()  # the job's own error is raised as the runner raised it


def in_background(fn: Callable[[], Any], *, name: str) -> Future:
    """``fn()`` on a daemon thread of its own; its result (or exception) through the returned future.

    A daemon, unlike a ``ThreadPoolExecutor``'s threads: after a failure or a Ctrl-C nobody waits
    for it at exit.

    >>> in_background(lambda: 6 * 7, name="answer").result(timeout=5)
    42
    """
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(fn())
        except BaseException as err:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(err)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


def _cancel(result: Any) -> bool:
    try:
        result.cancel()
    except Exception:  # noqa: BLE001 - the job is abandoned either way; the caller says so
        return False
    return True
