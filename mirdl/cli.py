"""The ``mirdl`` command: one entry point, one subcommand module each.

Each module in :mod:`mirdl.commands` has ``configure(parser)`` (cheap: arguments only)
and ``run(args) -> int`` (imports what it needs); a command whose imports are heavy (Beam,
TensorFlow) also has ``preload()``, which the ``mirdl`` command's own process calls first with
the cyclic collector paused (:func:`collector_paused`). Every :class:`mirdl.errors.MirdlError`
becomes one line on stderr and exit status 2, and Ctrl-C one line and exit status 130
(``mirdl prepare: interrupted; nothing was written``); nothing else is caught, so real bugs
still show their traceback.

The console shows mirdl's own lines only: the start-up lines of TensorFlow's C++ runtime
(``oneDNN custom operations``, ``Could not find cuda drivers``, ``failed call to cuInit``:
absl writes them before its log level is read, so ``TF_CPP_MIN_LOG_LEVEL`` does not stop
them), the INFO lines of Beam's worker processes and Beam's "apitools" warnings are dropped
from the process's stderr (file descriptor 2, which the workers inherit) by
:class:`QuietStderr`. ``mirdl -v COMMAND`` (or ``COMMAND -v``) keeps everything.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import logging
import os
import re
import sys
import threading

from mirdl.errors import MirdlError
from mirdl import __version__

__all__ = ["main", "COMMANDS", "build_parser", "QuietStderr", "NOISE"]

#: subcommand -> (module, one-line help)
COMMANDS = {
    "synth-corpus": ("mirdl.commands.synth", "write a labelled synthetic corpus (demo and tests)"),
    "features": ("mirdl.commands.features", "compute one feature of one audio file, optionally plot it"),
    "prepare": ("mirdl.commands.prepare", "run the Beam precompute job: corpus -> sharded feature store"),
    "inspect": ("mirdl.commands.inspect", "summarise a store's manifest, optionally plot examples"),
    "verify": ("mirdl.commands.verify", "check a store completely: manifest, sizes, sha256, every record"),
    "train": ("mirdl.commands.train", "train a Keras model from a store"),
    "evaluate": ("mirdl.commands.evaluate", "evaluate a trained model on a store split"),
    "predict": ("mirdl.commands.predict", "predict new audio files with a trained model (CSV or JSON lines)"),
    "extract": ("mirdl.commands.extract", "write transfer / random-weight features as a new store"),
    "catalog": ("mirdl.commands.catalog", "list the stores of a catalog root (name, version, fingerprint, counts)"),
    "publish": ("mirdl.commands.publish", "copy a store into a catalog as the next version of its name"),
    "pull": ("mirdl.commands.pull", "fetch a catalog version into the local cache and verify it"),
    "merge": ("mirdl.commands.merge", "combine the partial stores of an array job (prepare --partition I/K) into one"),
    "diff": ("mirdl.commands.diff", "do two stores hold the same data? keys, labels, features within a tolerance"),
    "probe": ("mirdl.commands.probe", "fit a linear probe on an extracted-feature store"),
}


#: Lines of stderr that are dropped unless ``-v``: absl-format lines of TensorFlow's C++ runtime
#: (``I0000 00:00:1796 ... file.cc:31] ...``), absl's pre-initialisation notice, Python logging's
#: INFO/DEBUG lines (Beam's worker processes), warnings about Beam's optional apitools and the
#: local runner's "No semi_persistent_directory" notice.
NOISE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|(?:INFO|DEBUG):[\w.]*:"
    rb"|WARNING:[\w.]*:.*(?:apitools|No semi_persistent_directory found))")
# A line start that may still become noise: held back until its end arrives.
_MAYBE_NOISE = re.compile(rb"^(?:[IWEF]\d|WARNING|INFO|DEBUG)")


class QuietStderr:
    """Filter :data:`NOISE` lines out of file descriptor 2 (this process and its children).

    fd 2 becomes a pipe; a thread forwards every other line to the original stderr, and a
    partial line at once (a progress bar redrawing with ``\\r``) unless it may be the start of
    a noise line. Leaving restores fd 2 and forwards what is left.
    """

    def __enter__(self) -> QuietStderr:
        sys.stderr.flush()
        terminal = _isatty(sys.stderr)  # before fd 2 becomes the pipe
        self._saved = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._read_fd = read_fd
        self._thread = threading.Thread(target=self._pump, name="mirdl-quiet-stderr", daemon=True)
        self._thread.start()
        # Python's stderr writes to the pipe too, but still says whether the user sees a terminal
        # (progress bars decide with isatty()).
        self._sys_stderr = sys.stderr
        sys.stderr = _PipedStderr(terminal=terminal,
                                  encoding=getattr(self._sys_stderr, "encoding", None) or "utf-8")
        return self

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self._read_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not NOISE.match(line.lstrip(b"\r")))
            if pending and not _MAYBE_NOISE.match(pending.lstrip(b"\r")):
                kept, pending = kept + pending, b""
            if kept:
                os.write(self._saved, kept)
        if pending and not NOISE.match(pending):
            os.write(self._saved, pending)

    def __exit__(self, *exc_info) -> None:
        sys.stderr.flush()
        sys.stderr = self._sys_stderr
        os.dup2(self._saved, 2)  # drops this process's write end of the pipe
        self._thread.join(timeout=2.0)  # a child still holding the pipe: stop waiting, not forwarding
        os.close(self._read_fd)
        os.close(self._saved)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _PipedStderr(io.TextIOWrapper):
    """A text stream on file descriptor 2 whose ``isatty()`` is the original stderr's."""

    def __init__(self, *, terminal: bool, encoding: str) -> None:
        super().__init__(io.FileIO(2, "w", closefd=False), encoding=encoding, errors="backslashreplace",
                         line_buffering=True, write_through=True)
        self._terminal = terminal

    def isatty(self) -> bool:
        return self._terminal


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommands whose module is missing are left out)."""
    parser = _Parser(prog="mirdl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mirdl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every log line (TensorFlow's C++ start-up, Beam's INFO logs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(command_parser)
        command_parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                    help="show every log line (TensorFlow's C++ start-up, Beam's INFO logs)")
        command_parser.set_defaults(_run=module.run, _preload=getattr(module, "preload", None))
    return parser


def main(argv: list[str] | None = None, *, quiet: bool | None = None) -> int:
    """Run ``mirdl`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    ``quiet``: filter stderr with :class:`QuietStderr` unless ``-v``; default True for the
    ``mirdl`` command (``argv`` None), False for calls from Python (tests, notebooks), whose
    stderr belongs to the caller. The ``mirdl`` command's own process (``argv`` None) freezes
    its heap (:func:`gc.freeze`) before it returns the status to exit with.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    verbose = bool(getattr(args, "verbose", False))
    # TensorFlow's C++ log level must be set before TensorFlow is imported (the commands import it lazily).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    if verbose:
        logging.basicConfig(level=logging.INFO)
    else:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    quiet = (argv is None) if quiet is None else quiet
    with QuietStderr() if quiet and not verbose else contextlib.nullcontext():
        status = _run(args, preload=argv is None)
    if argv is None:
        # The command's own process exits next. Its teardown ran the cyclic collector over every
        # object still alive (after `mirdl prepare`, Beam's ~160k): ~0.3 s per command, measured.
        # Frozen objects are freed by their reference counts as before, not scanned. Not for
        # calls from Python: a frozen heap in a test run or a notebook is never collected again.
        gc.freeze()
    return status


@contextlib.contextmanager
def collector_paused():
    """Pause Python's cyclic garbage collector, then freeze everything made meanwhile (:func:`gc.freeze`).

    For a command's start-up imports in its own process. Importing modules makes hundreds of
    thousands of objects that live as long as the process, and the collector's full passes over
    them during the import are wasted: TensorFlow + Keras imported in 3.9 s with the collector,
    3.0-3.2 s without; Beam and the precompute job's modules 0.98-1.03 s against 0.82-0.85 s
    (three fresh processes each). Frozen, they are not scanned again by the later collections of
    the command's own work. The collector is enabled again after it, if it was before.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _run(args: argparse.Namespace, *, preload: bool = False) -> int:
    """Run the command; with ``preload`` (the ``mirdl`` command's own process) its ``preload()``
    first, the collector paused (:func:`collector_paused`). Calls from Python leave the caller's
    collector alone: a frozen heap in a test run or a notebook is never collected again."""
    try:
        if preload and getattr(args, "_preload", None) is not None:
            with collector_paused():
                args._preload()
        return int(args._run(args) or 0)
    except MirdlError as err:
        print(f"mirdl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C: one line (the command may say what it left)
        detail = f"; {interrupt}" if str(interrupt) else ""
        print(f"mirdl {args.command}: interrupted{detail}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
