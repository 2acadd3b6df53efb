"""Files of a store: atomic writes (fsynced), checksums, the destination lock, stale temporaries.

Every write of a store goes through :func:`atomic_path`: a temporary sibling whose name carries
a uuid, fsynced, renamed onto the destination in one step, the parent directory fsynced after;
whatever happens, the temporary is deleted in ``finally``. A reader sees the old destination or
the complete new one, never a part.

Two jobs writing the same destination are kept apart by :class:`DestinationLock`, an atomic
lock file next to the destination holding pid, host and start time. A lock left by a dead
process of this host is broken; one from another host is reported with its host and age and
broken only past :data:`LOCK_TIMEOUT_SECONDS`. The lock talks to the filesystem through
:class:`LocalFileSystem`, the one interface an object store (a conditional write instead of an
exclusive create) plugs into.

**Object storage.** :func:`filesystem_for` maps a location to a filesystem of this interface
and a path on it: a local (or NFS) path to :class:`LocalFileSystem`, an ``s3://`` or ``gs://``
URL to :class:`ObjectFileSystem` (``pyarrow.fs``: pyarrow is already a dependency, its S3
client streams ranges of an object, and ``S3FileSystem(endpoint_override=...)`` talks to any
S3-compatible server; fsspec's s3fs is held back to 0.4.2 by aiobotocore's botocore pin next to
a current boto3). Any other scheme is a :class:`~mirdl.errors.ConfigError`, never a local
folder named ``s3:``. Object stores have no rename, so the exclusive create becomes a
conditional ``PUT`` (``If-None-Match: *``, through botocore: the one call pyarrow does not
offer); on ``gs://`` it is not available here and says so.

Temporary store folders (``.STORE.tmp-<uuid>``) carry an owner file (:data:`OWNER_NAME`) while
they are being written; :func:`sweep_stale_temporaries` removes those whose owner process is
dead on this host, and never a folder without that file.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirdl.errors import ConfigError, StoreError

__all__ = [
    "LOCK_TIMEOUT_SECONDS",
    "OWNER_NAME",
    "REMOTE_SCHEMES",
    "LocalFileSystem",
    "ObjectFileSystem",
    "location_scheme",
    "is_remote",
    "filesystem_for",
    "sha256_file",
    "fsync_file",
    "fsync_directory",
    "atomic_path",
    "write_json_atomic",
    "write_text_atomic",
    "ProcessInfo",
    "DestinationLock",
    "write_owner",
    "StaleTemporary",
    "sweep_stale_temporaries",
]

#: A lock written by another host is broken only when it is older than this (24 h): its
#: process cannot be asked whether it still runs.
LOCK_TIMEOUT_SECONDS = 24 * 3600
#: File inside a temporary store folder naming the process that writes it.
OWNER_NAME = ".mirdl-owner.json"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-[0-9a-f]{32}$")


#: URL schemes a store or a catalog may live on besides local paths.
REMOTE_SCHEMES = ("s3", "gs")
_SCHEME_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):/")


def location_scheme(location: str | os.PathLike, *, param: str = "store") -> str | None:
    """``"s3"`` / ``"gs"`` for an object-store URL, None for a local path.

    Raises
    ------
    ConfigError
        Any other scheme (``http://``, ``hdfs://``, a mangled ``s3:/x``), naming ``param``:
        never silently a local folder.

    Examples
    --------
    >>> location_scheme("s3://lab/stores/demo"), location_scheme("stores/demo")
    ('s3', None)
    >>> location_scheme("hdfs://nn/stores/demo")
    Traceback (most recent call last):
    ...
    mirdl.errors.ConfigError: store='hdfs://nn/stores/demo': scheme 'hdfs' is not supported (local paths, s3://, gs://)
    """
    text = os.fspath(location)
    match = _SCHEME_RE.match(text)
    if match is None or (len(match["scheme"]) == 1 and os.name == "nt"):  # C:/ on Windows
        return None
    scheme = match["scheme"].lower()
    if scheme == "file" and text.startswith("file://"):
        return None
    if scheme in REMOTE_SCHEMES and text.startswith(f"{match['scheme']}://") and len(text) > len(scheme) + 3:
        return scheme
    if scheme in REMOTE_SCHEMES:
        raise ConfigError(f"{param}={text!r} is not a valid {scheme}:// URL (write {scheme}://BUCKET/PREFIX)")
    raise ConfigError(f"{param}={text!r}: scheme {scheme!r} is not supported (local paths, s3://, gs://)")


def is_remote(location: str | os.PathLike, *, param: str = "store") -> bool:
    """Whether ``location`` is an object-store URL (ConfigError for an unsupported scheme)."""
    return location_scheme(location, param=param) is not None


def filesystem_for(location: str | os.PathLike, *, param: str = "store"):
    """``(filesystem, path)``: :class:`LocalFileSystem` and a :class:`~pathlib.Path`, or
    :class:`ObjectFileSystem` and ``BUCKET/KEY`` (no trailing slash) for ``s3://``/``gs://``.

    S3 credentials, region and endpoint come from the usual AWS settings (environment
    variables such as ``AWS_ACCESS_KEY_ID``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for an
    S3-compatible server, or ``~/.aws``), GCS ones from Google's default credentials.
    """
    scheme = location_scheme(location, param=param)
    if scheme is None:
        text = os.fspath(location)
        return LocalFileSystem(), Path(text[len("file://"):] if text.startswith("file://") else text)
    return ObjectFileSystem.for_scheme(scheme), os.fspath(location)[len(scheme) + 3:].rstrip("/")


class LocalFileSystem:
    """The filesystem operations stores, locks and catalogs need, on a local (or NFS) path.

    ``create_exclusive`` is the one primitive that must be atomic: it creates a file only if
    no file of that name exists (``O_CREAT | O_EXCL``; on an object store, a conditional
    ``PUT`` with ``If-None-Match: *``, see :class:`ObjectFileSystem`).
    """

    scheme = None

    def url(self, path) -> str:
        return os.fspath(path)

    def join(self, path, *names: str) -> Path:
        return Path(path).joinpath(*names)

    def parent(self, path) -> Path:
        return Path(path).parent

    def makedirs(self, path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def size(self, path) -> int | None:
        """Size of a file in bytes, None if there is no such file."""
        try:
            return os.stat(path).st_size if Path(path).is_file() else None
        except OSError:
            return None

    def list_files(self, path) -> dict[str, int]:
        """Every file under ``path`` (recursive): relative POSIX path -> size."""
        root = Path(path)
        if not root.is_dir():
            return {}
        return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}

    def list_dirs(self, path) -> list[str]:
        root = Path(path)
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def write_bytes(self, path, data: bytes) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)

    def download(self, path, local: Path) -> None:
        shutil.copyfile(path, local)

    def upload(self, local: Path, path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            shutil.copyfile(local, tmp)

    def create_exclusive(self, path: Path, data: bytes) -> bool:
        """Create ``path`` holding ``data``; False (nothing written) if it exists already."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def read_bytes(self, path: Path) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def remove_if_unchanged(self, path: Path, data: bytes) -> bool:
        """Remove ``path`` if it still holds ``data``; True if this call removed it.

        The file is first renamed to a unique name (atomic), then checked; if another process
        replaced it in the meantime, it is put back (``os.link`` refuses to overwrite).
        """
        aside = path.with_name(f"{path.name}.broken-{uuid.uuid4().hex}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if aside.read_bytes() == data:
            aside.unlink()
            return True
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
        aside.unlink()
        return False

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class ObjectFileSystem:
    """The same operations on an object store (``s3://``, ``gs://``) through ``pyarrow.fs``.

    Paths are ``BUCKET/KEY`` strings. A single object is written in one ``PUT`` (readers see
    the old object or the new one); a store is many objects, so writers put the manifest last
    and readers treat a prefix without a manifest as no store.
    """

    def __init__(self, filesystem, scheme: str) -> None:
        self.filesystem = filesystem
        self.scheme = scheme

    @classmethod
    def for_scheme(cls, scheme: str) -> ObjectFileSystem:
        import pyarrow.fs as pafs

        try:
            if scheme == "s3":
                # pyarrow reads AWS_ENDPOINT_URL itself only from version 15; pass it for older ones too.
                endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
                kwargs: dict[str, Any] = {}
                if endpoint:
                    kwargs["endpoint_override"] = endpoint
                    kwargs["scheme"] = "http" if endpoint.startswith("http://") else "https"
                region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                if region:
                    kwargs["region"] = region
                return cls(pafs.S3FileSystem(**kwargs), scheme)
            return cls(pafs.GcsFileSystem(), scheme)
        except Exception as err:  # pyarrow's own errors: no credentials, no region, ...
            raise StoreError(f"cannot open {scheme}:// ({type(err).__name__}: {err})") from err

    def url(self, path: str) -> str:
        return f"{self.scheme}://{path}"

    def join(self, path: str, *names: str) -> str:
        return "/".join([path.rstrip("/"), *names])

    def parent(self, path: str) -> str:
        return path.rstrip("/").rsplit("/", 1)[0]

    def makedirs(self, path: str) -> None:
        """Nothing to do: object stores have no folders."""

    def _error(self, path: str, err: Exception, action: str) -> StoreError:
        return StoreError(f"{self.url(path)}: cannot {action} ({type(err).__name__}: {err})")

    def size(self, path: str) -> int | None:
        import pyarrow.fs as pafs

        try:
            info = self.filesystem.get_file_info(path)
        except OSError as err:
            raise self._error(path, err, "stat") from err
        return info.size if info.type == pafs.FileType.File else None

    def list_files(self, path: str) -> dict[str, int]:
        import pyarrow.fs as pafs

        prefix = path.rstrip("/") + "/"
        try:
            infos = self.filesystem.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        except OSError as err:
            raise self._error(path, err, "list") from err
        return {info.path[len(prefix):]: info.size for info in sorted(infos, key=lambda i: i.path)
                if info.type == pafs.FileType.File and info.path.startswith(prefix)}

    def list_dirs(self, path: str) -> list[str]:
        import pyarrow.fs as pafs

        prefix = path.rstrip("/") + "/"
        try:
            infos = self.filesystem.get_file_info(pafs.FileSelector(prefix, recursive=False, allow_not_found=True))
        except OSError as err:
            raise self._error(path, err, "list") from err
        return sorted(info.base_name for info in infos if info.type == pafs.FileType.Directory)

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with self.filesystem.open_input_stream(path) as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._error(path, err, "read") from err

    def open_input(self, path: str):
        """A seekable binary file object (ranged reads: the object is not fetched whole)."""
        return self.filesystem.open_input_file(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        try:
            with self.filesystem.open_output_stream(path) as stream:
                stream.write(data)
        except OSError as err:
            raise self._error(path, err, "write") from err

    def upload(self, local: Path, path: str) -> None:
        try:
            with open(local, "rb") as source, self.filesystem.open_output_stream(path) as target:
                shutil.copyfileobj(source, target, 8 << 20)
        except OSError as err:
            raise self._error(path, err, "write") from err

    def download(self, path: str, local: Path) -> None:
        try:
            with self.filesystem.open_input_stream(path) as source, open(local, "wb") as target:
                shutil.copyfileobj(source, target, 8 << 20)
        except OSError as err:
            raise self._error(path, err, "read") from err

    def copy(self, source: str, target: str) -> None:
        """Server-side copy of one object."""
        try:
            self.filesystem.copy_file(source, target)
        except OSError as err:
            raise self._error(source, err, f"copy to {self.url(target)}") from err

    def remove(self, path: str) -> None:
        try:
            self.filesystem.delete_file(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise self._error(path, err, "delete") from err

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create the object only if no object of that name exists: a conditional ``PUT``
        (``If-None-Match: *``, which S3 and S3-compatible servers such as moto honour)."""
        if self.scheme != "s3":
            raise StoreError(f"{self.url(path)}: exclusive create (locks, catalog versions) is implemented for s3:// "
                             "only (a conditional PUT); use a local/NFS path or s3:// for this")
        try:
            import boto3
            from botocore.exceptions import ClientError
        except ImportError as err:
            raise StoreError("writing locks and catalog versions on s3:// needs boto3 (pip install mirdl[s3])") from err
        bucket, _, key = path.partition("/")
        client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3")
                              or os.environ.get("AWS_ENDPOINT_URL") or None)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise StoreError(f"{self.url(path)}: conditional write failed ({code}: {err})") from err
        return True

    def remove_if_unchanged(self, path: str, data: bytes) -> bool:
        """Remove the object if it still holds ``data``. Not atomic (S3 offers no conditional
        delete on general-purpose buckets): a lock replaced between the read and the delete is
        lost, a window of one round trip, only when breaking a stale lock."""
        if self.read_bytes(path) != data:
            return False
        self.remove(path)
        return True


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20, fsync: bool = False) -> str:
    """Hex sha256 of a file, read in chunks.

    With ``fsync``, the file's data is also flushed to disk (:func:`fsync_file`), on a second
    thread while the hash reads it back (from the page cache): the two overlap instead of one
    waiting for the other, ~40 % less wall time for a freshly written 64 MB shard. An error of
    either is raised here.
    """
    digest = hashlib.sha256()
    with contextlib.ExitStack() as stack:
        flushed = None
        if fsync:
            flushed = stack.enter_context(ThreadPoolExecutor(max_workers=1)).submit(fsync_file, path)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(chunk_bytes), b""):
                digest.update(chunk)
        if flushed is not None:
            flushed.result()
    return digest.hexdigest()


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: str | os.PathLike) -> None:
    """Flush a directory's entries (new and renamed names) to disk; a no-op where not supported."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True,
                before_replace: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it replaces ``path`` in one rename.

    Works for files and directories. The temporary name carries a uuid, so concurrent
    writers never collide; whatever happens, it is deleted in ``finally``. Before the rename
    the temporary file (or directory's entries) is fsynced, after it the parent directory:
    a crash leaves the old ``path`` or the complete new one. Files inside a temporary
    directory are expected to have been written with :func:`atomic_path` themselves.

    Parameters
    ----------
    path : path-like
        Final destination.
    overwrite : bool
        If False and ``path`` exists when the write completes, raise :class:`StoreError`.
    before_replace : callable, optional
        Called with ``path`` just before the rename (e.g. to check that the destination is
        still what the caller checked at the start); an exception aborts the write.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        yield tmp
        if tmp.is_dir():
            (tmp / OWNER_NAME).unlink(missing_ok=True)
            fsync_directory(tmp)
        elif tmp.exists():
            fsync_file(tmp)
        if before_replace is not None:
            before_replace(path)
        if path.exists() or path.is_symlink():
            if not overwrite:
                raise StoreError(f"{path} already exists")
            if path.is_dir() and not path.is_symlink():
                # A directory cannot be replaced by rename: move the old one aside first,
                # so the destination is never missing for longer than two renames.
                old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
                os.replace(path, old)
                try:
                    os.replace(tmp, path)
                except BaseException:
                    os.replace(old, path)
                    raise
                fsync_directory(path.parent)
                _remove(old)
                return
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------- processes
def _process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 else None


@dataclass(frozen=True)
class ProcessInfo:
    """Who holds a lock or writes a temporary folder."""

    pid: int
    host: str
    started: float  # unix time
    start_ticks: int | None = None
    command: str = ""

    @classmethod
    def current(cls) -> ProcessInfo:
        return cls(pid=os.getpid(), host=socket.gethostname(), started=time.time(),
                   start_ticks=_process_start_ticks(os.getpid()), command=" ".join(sys.argv)[:500])

    def to_bytes(self) -> bytes:
        return (json.dumps({"pid": self.pid, "host": self.host, "started": self.started,
                            "start_ticks": self.start_ticks, "command": self.command}, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ProcessInfo | None:
        """None for bytes that are not a complete record (a writer still writing, or damage)."""
        try:
            value = json.loads(data.decode("utf-8"))
            return cls(pid=int(value["pid"]), host=str(value["host"]), started=float(value["started"]),
                       start_ticks=value.get("start_ticks"), command=str(value.get("command", "")))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def is_alive(self) -> bool:
        """Whether the process still runs (only answerable on its own host: else True)."""
        if not self.is_local():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        if self.start_ticks is not None:
            ticks = _process_start_ticks(self.pid)
            if ticks is not None and ticks != self.start_ticks:
                return False  # the pid was reused by another process
        return True

    def age(self) -> float:
        return max(0.0, time.time() - self.started)

    def describe(self) -> str:
        started = datetime.datetime.fromtimestamp(self.started, datetime.timezone.utc).replace(microsecond=0)
        return f"pid {self.pid} on host {self.host!r}, started {started.isoformat()} ({_duration(self.age())} ago)"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


class DestinationLock:
    """An exclusive lock on a destination path: ``.NAME.lock`` next to it.

    Parameters
    ----------
    destination : path-like
        What is being written (a store directory; ``BUCKET/KEY`` with an :class:`ObjectFileSystem`).
    timeout : float
        Seconds after which a lock from another host counts as stale.
    filesystem : LocalFileSystem or ObjectFileSystem
        Where the lock file lives.

    Raises
    ------
    StoreError
        On ``__enter__``, when another live process holds the lock: the message names its
        pid, host and age.

    Examples
    --------
    >>> import tempfile
    >>> store = Path(tempfile.mkdtemp()) / "store"
    >>> with DestinationLock(store) as lock:
    ...     lock.path.name
    '.store.lock'
    >>> lock.path.exists()
    False
    """

    def __init__(self, destination: str | os.PathLike, *, timeout: float = LOCK_TIMEOUT_SECONDS,
                 filesystem: LocalFileSystem | None = None) -> None:
        self.filesystem = filesystem or LocalFileSystem()
        if isinstance(self.filesystem, LocalFileSystem):
            destination = Path(destination)
            self.path = destination.with_name(f".{destination.name}.lock")
        else:  # BUCKET/KEY on an object store
            destination = str(destination).rstrip("/")
            self.path = self.filesystem.join(self.filesystem.parent(destination),
                                             f".{destination.rsplit('/', 1)[-1]}.lock")
        self.destination = destination
        self.timeout = timeout
        self.broken: list[ProcessInfo] = []  # stale locks this lock replaced
        self._mine: bytes | None = None

    def acquire(self) -> None:
        self.filesystem.makedirs(self.filesystem.parent(self.path))
        mine = ProcessInfo.current().to_bytes()
        for _ in range(5):
            if self.filesystem.create_exclusive(self.path, mine):
                self._mine = mine
                return
            held = self.filesystem.read_bytes(self.path)
            if held is None:
                continue  # released in the meantime: try again
            holder = ProcessInfo.from_bytes(held)
            if holder is None:
                # Being written this very moment (or damaged): a complete record takes microseconds.
                time.sleep(0.05)
                held_again = self.filesystem.read_bytes(self.path)
                if held_again != held or held_again is None:
                    continue
                raise StoreError(f"{self.destination}: lock file {self.path} is not readable; if no other "
                                 "mirdl job writes there, delete it")
            stale = not holder.is_alive() if holder.is_local() else holder.age() > self.timeout
            if not stale:
                where = "" if holder.is_local() else \
                    f"; a lock from another host is broken after {_duration(self.timeout)}"
                raise StoreError(f"{self.destination}: another mirdl job writes it ({holder.describe()}); "
                                 f"lock file {self.path}{where}")
            if self.filesystem.remove_if_unchanged(self.path, held):
                self.broken.append(holder)
        raise StoreError(f"{self.destination}: could not take the lock {self.path} (other jobs keep taking it)")

    def release(self) -> None:
        if self._mine is not None:
            self.filesystem.remove_if_unchanged(self.path, self._mine)
            self._mine = None

    def __enter__(self) -> DestinationLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


# ----------------------------------------------------------------------------------- temporaries
def write_owner(directory: str | os.PathLike) -> None:
    """Mark a temporary folder as written by this process (removed by :func:`atomic_path`)."""
    (Path(directory) / OWNER_NAME).write_bytes(ProcessInfo.current().to_bytes())


@dataclass(frozen=True)
class StaleTemporary:
    """A temporary folder next to a destination left by a run that is no longer running."""

    path: Path
    bytes: int
    owner: ProcessInfo | None
    removed: bool

    def describe(self) -> str:
        size = f"{self.bytes / 1e6:.1f} MB"
        if self.removed:
            return f"removed {self.path.name} ({size}) left by a run that died ({self.owner.describe()})"
        return f"left {self.path.name} ({size}) alone: it has no mirdl owner file, delete it by hand if unused"


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def sweep_stale_temporaries(destination: str | os.PathLike) -> list[StaleTemporary]:
    """Remove the temporary folders of ``destination`` whose writer died; report the others.

    Only folders named ``.NAME.tmp-<uuid>`` / ``.NAME.old-<uuid>`` next to ``destination``
    are looked at. One with an owner file whose process is dead on this host is removed; one
    whose owner is alive (or on another host) is left alone silently; one without an owner
    file (not written by this version, or not by mirdl) is reported and left alone.
    """
    destination = Path(destination)
    found: list[StaleTemporary] = []
    if not destination.parent.is_dir():
        return found
    for candidate in sorted(destination.parent.iterdir()):
        match = _TMP_RE.match(candidate.name)
        if match is None or match["name"] != destination.name or not candidate.is_dir() or candidate.is_symlink():
            continue
        owner_bytes = LocalFileSystem().read_bytes(candidate / OWNER_NAME)
        owner = ProcessInfo.from_bytes(owner_bytes) if owner_bytes is not None else None
        if owner is not None and (owner.is_alive() if owner.is_local() else True):
            continue
        size = _tree_bytes(candidate)
        if owner is None:
            found.append(StaleTemporary(path=candidate, bytes=size, owner=None, removed=False))
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        found.append(StaleTemporary(path=candidate, bytes=size, owner=owner, removed=not candidate.exists()))
    return found
