"""How the precompute job ends when the run itself goes wrong: Ctrl-C and a full disk.

Both end the same way as a too-high error rate: the temporary store is deleted, so nothing is
visible at the destination, and the job prints one line instead of the tracebacks Beam and
its workers would print.

- :func:`stop_on_interrupt` wraps the run (temporary store included): the first Ctrl-C raises
  :class:`KeyboardInterrupt` in the driver and silences the log records and thread errors of
  the shutdown that follows (Beam logs every connection to a worker it closes early); Ctrl-C
  again is ignored until the temporary store is deleted. Whatever the run raises after an
  interrupt (Beam wraps a :class:`KeyboardInterrupt` inside a step in a ``RuntimeError``)
  leaves it as ``KeyboardInterrupt("nothing was written")``. The local runner's worker
  processes get the Ctrl-C too and stop silently (:mod:`mirdl.pipelines.local_runner`);
  Beam's clean-up waits for them before the temporary store is deleted.
- :func:`quiet_failed_bundles` stops Beam logging each failed bundle's exception before it
  raises it, and the broken worker connections of the shutdown that follows: the job reports
  the exception once (one line if it is known, else the traceback).
- :func:`unwritable_path` recognises a full disk in what a run raises: ``OSError`` ENOSPC
  (the spill, HDF5, Parquet, the driver's files), TensorFlow's ``ResourceExhaustedError``
  ``"PATH; No space left on device"`` (the TFRecord writer), or either one's text inside the
  ``RuntimeError`` Beam raises for a failed step (a worker process sends only the text).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["FAILURE_LOGGERS", "stop_on_interrupt", "quiet_failed_bundles", "unwritable_path", "free_bytes",
           "disk_full_message"]

#: Beam loggers whose errors only repeat a failure the run raises anyway: a failed bundle's
#: exception (``runners.common``, ``sdk_worker``) and the broken worker connections of the
#: shutdown after it (``worker_handlers``: "Error closing worker_handler"; ``data_plane``).
FAILURE_LOGGERS = ("apache_beam.runners.common", "apache_beam.runners.worker.sdk_worker",
                   "apache_beam.runners.portability.fn_api_runner.worker_handlers",
                   "apache_beam.runners.worker.data_plane")
_NO_SPACE = "No space left on device"
# Where the text of an error names the file: OSError's "[Errno 28] ...: 'PATH'", TensorFlow's
# "PATH; No space left on device", HDF5's "filename = 'PATH'".
_PATH_PATTERNS = (
    re.compile(r"\[Errno 28\] No space left on device: '(?P<path>[^'\n]+)'"),
    re.compile(r"ResourceExhaustedError: (?P<path>[^\n;]+); No space left on device"),
    re.compile(r"filename = '(?P<path>[^'\n]+)'"),
)


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[None]:
    """Ctrl-C (SIGINT) stops what runs inside quietly; see the module docs.

    Outside the main thread, or when SIGINT is ignored (a background job of a shell script), it
    does nothing.

    Raises
    ------
    KeyboardInterrupt
        ``KeyboardInterrupt("nothing was written")`` after a Ctrl-C, whatever the body raised.

    Examples
    --------
    >>> import os, signal, time
    >>> try:
    ...     with stop_on_interrupt():
    ...         os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C would
    ...         time.sleep(5)  # not reached
    ... except KeyboardInterrupt as interrupt:
    ...     print(f"interrupted; {interrupt}")
    interrupted; nothing was written
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    interrupted = False
    logging_disabled = logging.root.manager.disable
    thread_hook = threading.excepthook

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupted
        if interrupted:
            return  # the clean-up is running: let it finish
        interrupted = True
        logging.disable(logging.CRITICAL)
        threading.excepthook = lambda args: None
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except BaseException:
        if interrupted:
            raise KeyboardInterrupt("nothing was written") from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        if interrupted:
            threading.excepthook = thread_hook
            logging.disable(logging_disabled)


@contextlib.contextmanager
def quiet_failed_bundles() -> Iterator[None]:
    """Beam does not log a failed bundle's exception inside, nor the broken connections of the
    shutdown after it (it still raises the exception); see :data:`FAILURE_LOGGERS`.

    Examples
    --------
    >>> import logging
    >>> with quiet_failed_bundles():
    ...     logging.getLogger("apache_beam.runners.common").isEnabledFor(logging.ERROR)
    False
    """
    loggers = [logging.getLogger(name) for name in FAILURE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def unwritable_path(exc: BaseException) -> str | None:
    """The path a full disk could not take, if ``exc`` (or what caused it) is a full disk.

    Returns
    -------
    str or None
        None: not a full disk. ``""``: a full disk, but the error does not say where (a plain
        ``write()`` does not). Else the path the error names.

    Examples
    --------
    >>> unwritable_path(OSError(28, "No space left on device", "/data/x.h5"))
    '/data/x.h5'
    >>> unwritable_path(RuntimeError("OSError: [Errno 28] No space left on device [while running 'Spill']"))
    ''
    >>> unwritable_path(RuntimeError("ResourceExhaustedError: /data/a.tfrecord; No space left on device"))
    '/data/a.tfrecord'
    >>> unwritable_path(MemoryError()) is None
    True
    """
    full = False
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            if error.filename:
                return os.fsdecode(error.filename)
            full = True
        text = str(error)
        if _NO_SPACE in text or "[Errno 28]" in text:
            full = True
            for pattern in _PATH_PATTERNS:
                found = pattern.search(text)
                if found:
                    return found["path"]
    return "" if full else None


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the filesystem of ``path`` (of its nearest existing parent if it is gone).

    Examples
    --------
    >>> free_bytes("/no/such/folder") == free_bytes("/")
    True
    """
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def disk_full_message(exc: BaseException, *, store: str | os.PathLike) -> str | None:
    """The one line for a full disk while writing ``store`` (None: ``exc`` is not a full disk).

    It names the store when the file that could not be written was inside its temporary
    sibling (gone by now) or the error does not say, else that file; and the free space there
    now, after the temporary store was deleted: what the job had to work with.

    Examples
    --------
    >>> disk_full_message(OSError(28, "No space left on device"), store="/")  # doctest: +ELLIPSIS
    'no space left on device writing / (... MB free there); nothing was written'
    """
    path = unwritable_path(exc)
    if path is None:
        return None
    store = Path(store)
    if not path or any(part.startswith(f".{store.name}.tmp-") for part in Path(path).parts):
        path = str(store)
    free_mb = free_bytes(path) / 1e6
    free = f"{free_mb:,.1f}" if free_mb >= 1 else f"{free_mb:.3f}"
    return f"no space left on device writing {path} ({free} MB free there); nothing was written"
