"""``manifest.json``: read and validate it, resolve its shard paths, describe who wrote it.

The manifest is the contract between the writer and every reader (schema in
``docs/store-format.md``). :func:`read_manifest` validates all of it when a store is opened
(types, shapes, dtypes, counts, shard paths), so a damaged or forged manifest is a
:class:`~mirdl.errors.StoreError` naming the field, never a raw ``KeyError`` or, worse,
silently different numbers. :func:`shard_paths` refuses any shard path that leaves the store.

:func:`check_destination` decides what a writer may do with its output folder: only a
recognisable mirdl store (the :data:`~mirdl.store.format.MARKER_NAME` file of format version 2,
or a version-1 manifest with mirdl's keys) is ever replaced.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mirdl import __version__
from mirdl.errors import StoreError
from mirdl.store.files import filesystem_for, is_remote, write_text_atomic
from mirdl.store.format import (
    COMPRESSIONS,
    FEATURE_DTYPES,
    FORMAT_VERSION,
    LABEL_LAYOUT,
    MANIFEST_NAME,
    MARKER_NAME,
    STORE_FORMATS,
    SUPPORTED_FORMAT_VERSIONS,
    TASK_TYPES,
)

__all__ = [
    "StoreFormatWarning",
    "read_manifest",
    "validate_manifest",
    "shard_entries",
    "shard_paths",
    "write_marker",
    "is_mirdl_store",
    "check_destination",
    "provenance",
    "numpy_cpu_dispatch",
]

_V1_KEYS = ("format_version", "name", "format", "features", "task", "splits", "fingerprint", "mirdl_version")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class StoreFormatWarning(UserWarning):
    """A store is readable but lacks a protection of the current format (e.g. version 1: no checksums)."""


# ------------------------------------------------------------------------------------------ schema
class _Checker:
    """Field checks that raise StoreError with ``FILE: dotted.field=value ...``."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, value: Any, problem: str) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise StoreError(f"{self.where}: {field}={shown} {problem}")

    def mapping(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(field, value, "must be a JSON object")
        return value

    def sequence(self, value: Any, field: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(field, value, "must be a JSON list")
        return value

    def string(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(field, value, "must be a non-empty string")
        return value

    def integer(self, value: Any, field: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(field, value, f"must be an integer >= {minimum}")
        return value

    def choice(self, value: Any, field: str, choices: Sequence[Any]) -> Any:
        if value not in choices:
            self.fail(field, value, f"must be one of {list(choices)}")
        return value

    def shape(self, value: Any, field: str, *, minimum: int = 1) -> tuple[int, ...]:
        items = self.sequence(value, field)
        return tuple(self.integer(n, f"{field}[{i}]", minimum=minimum) for i, n in enumerate(items))

    def numbers(self, value: Any, field: str, shape: tuple[int, ...]) -> None:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            self.fail(field, value, "must be (nested lists of) numbers")
        if array.shape != shape:
            self.fail(field, value, f"must have shape {list(shape)}, has {list(array.shape)}")
        if not np.all(np.isfinite(array)):
            self.fail(field, value, "must be finite")


def _check_stats(check: _Checker, stats: Any, field: str, *, shape: tuple[int, ...], has_time: bool) -> None:
    if stats is None:
        return
    stats = check.mapping(stats, field)
    bins = shape[:-1] if has_time else shape
    for key in ("mean", "std"):
        if stats.get(key) is not None:
            check.numbers(stats[key], f"{field}.{key}", bins)
    for key in ("sum", "sum_sq"):
        if key in stats:
            check.numbers(stats[key], f"{field}.{key}", bins)
    if "count" in stats:
        check.integer(stats["count"], f"{field}.count")


def validate_manifest(manifest: Any, *, where: str = MANIFEST_NAME) -> dict[str, Any]:
    """Check every field readers rely on; return the manifest.

    Raises
    ------
    StoreError
        ``WHERE: field=value problem`` for the first field that is missing, of the wrong
        type, out of range or inconsistent with another (shard records not adding up to the
        split's, a label shape that does not fit the task, stats of the wrong shape, a
        shard path that is absolute or climbs out of the store).

    Examples
    --------
    >>> validate_manifest({"format_version": 7})
    Traceback (most recent call last):
    ...
    mirdl.errors.StoreError: manifest.json: format_version=7 is not supported by this reader (supported: [1, 2]); upgrade mirdl
    """
    check = _Checker(where)
    manifest = dict(check.mapping(manifest, "manifest"))
    version = manifest.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        raise StoreError(f"{where}: format_version={version!r} is not supported by this reader "
                         f"(supported: {list(SUPPORTED_FORMAT_VERSIONS)}); upgrade mirdl")
    for key in ("name", "format", "features", "task", "splits"):
        if key not in manifest:
            raise StoreError(f"{where}: required key {key!r} is missing")
    check.string(manifest["name"], "name")
    store_format = check.choice(manifest["format"], "format", STORE_FORMATS)
    check.choice(manifest.get("compression", "none") or "none", "compression", COMPRESSIONS[store_format])
    if version >= 2:
        check.integer(manifest.get("version"), "version", minimum=1)
        check.mapping(manifest.get("provenance"), "provenance")

    features = check.mapping(manifest["features"], "features")
    if not features:
        check.fail("features", features, "must name at least one feature")
    for name, entry in features.items():
        field = f"features.{name}"
        entry = check.mapping(entry, field)
        shape = check.shape(entry.get("shape"), f"{field}.shape")
        if not shape:
            check.fail(f"{field}.shape", entry.get("shape"), "must have at least one axis")
        check.choice(entry.get("dtype"), f"{field}.dtype", FEATURE_DTYPES)
        axes = entry.get("axes")
        if axes is not None and len(check.sequence(axes, f"{field}.axes")) != len(shape):
            check.fail(f"{field}.axes", axes, f"must name the {len(shape)} axes of shape {list(shape)}")
        _check_stats(check, entry.get("stats"), f"{field}.stats", shape=shape, has_time=axes is None or "time" in axes)

    task = check.mapping(manifest["task"], "task")
    task_type = check.choice(task.get("type"), "task.type", TASK_TYPES)
    label_shape = check.shape(task.get("label_shape"), "task.label_shape")
    n_outputs = check.integer(task.get("n_outputs"), "task.n_outputs", minimum=1)
    dtype, rank = LABEL_LAYOUT[task_type]
    check.choice(task.get("label_dtype"), "task.label_dtype", (dtype,))
    if len(label_shape) != rank:
        check.fail("task.label_shape", list(label_shape), f"must have {rank} axes for task {task_type!r}")
    if task_type in ("multi_label", "regression", "frame_notes") and label_shape[0] != n_outputs:
        check.fail("task.label_shape", list(label_shape), f"must start with task.n_outputs={n_outputs}")
    vocabulary = task.get("vocabulary")
    if vocabulary is not None and len(check.sequence(vocabulary, "task.vocabulary")) != n_outputs:
        check.fail("task.vocabulary", vocabulary, f"must have task.n_outputs={n_outputs} entries")

    augment = manifest.get("augment")
    if augment is not None:
        check.integer(check.mapping(augment, "augment").get("n_variants", 1), "augment.n_variants", minimum=1)

    splits = check.mapping(manifest["splits"], "splits")
    for split, entry in splits.items():
        field = f"splits.{split}"
        entry = check.mapping(entry, field)
        records = check.integer(entry.get("records"), f"{field}.records")
        shards = check.sequence(entry.get("shards"), f"{field}.shards")
        total = 0
        for i, shard in enumerate(shards):
            sfield = f"{field}.shards[{i}]"
            shard = check.mapping(shard, sfield)
            _check_relative_path(check, shard.get("path"), f"{sfield}.path")
            total += check.integer(shard.get("records"), f"{sfield}.records")
            check.integer(shard.get("bytes"), f"{sfield}.bytes")
            if not isinstance(shard.get("sha256"), str) or not _SHA256_RE.match(shard["sha256"]):
                check.fail(f"{sfield}.sha256", shard.get("sha256"), "must be 64 lowercase hex digits")
        if total != records:
            check.fail(f"{field}.records", records, f"does not equal the sum of its shards' records ({total})")
    return manifest


def _check_relative_path(check: _Checker, value: Any, field: str) -> None:
    path = check.string(value, field)
    if "\\" in path or "\x00" in path:
        check.fail(field, value, "must be a plain relative file path")
    parts = Path(path).parts
    if Path(path).is_absolute() or os.path.isabs(path) or ".." in parts or not parts or path.startswith("~"):
        check.fail(field, value, "must be a path inside the store (no absolute path, no '..')")


def read_manifest(store: str | os.PathLike) -> dict[str, Any]:
    """Read ``STORE/manifest.json`` and validate it (:func:`validate_manifest`).

    A version-1 store is read with one :class:`StoreFormatWarning` (its HDF5 and Parquet
    shards carry no checksums of their own, only the manifest's sha256).

    Raises
    ------
    StoreError
        The directory or its manifest is missing (an incomplete store has none), the
        manifest is not JSON, or it fails validation. The message names the file.
    """
    if is_remote(store):
        return _read_remote_manifest(str(store))
    store = Path(store)
    manifest_path = store / MANIFEST_NAME
    if not store.is_dir():
        raise StoreError(f"{store}: no such store directory")
    if not manifest_path.is_file():
        raise StoreError(f"{manifest_path}: missing; {store} is not a complete mirdl store")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise StoreError(f"{manifest_path}: cannot be read as JSON ({err})") from err
    manifest = validate_manifest(manifest, where=str(manifest_path))
    if manifest["format_version"] == 1 and manifest["format"] != "tfrecord":
        warnings.warn(f"{store}: a format_version 1 store: its {manifest['format']} shards carry no checksums of "
                      "their own, so corruption is only found by `mirdl verify` (sha256); rebuild it with this "
                      "mirdl to get checks on every read", StoreFormatWarning, stacklevel=2)
    return manifest


def _read_remote_manifest(store: str) -> dict[str, Any]:
    filesystem, path = filesystem_for(store)
    where = f"{store.rstrip('/')}/{MANIFEST_NAME}"
    data = filesystem.read_bytes(filesystem.join(path, MANIFEST_NAME))
    if data is None:
        raise StoreError(f"{where}: missing; {store} is not a complete mirdl store")
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise StoreError(f"{where}: cannot be read as JSON ({err})") from err
    return validate_manifest(manifest, where=where)


def shard_entries(manifest: Mapping[str, Any], split: str) -> list[dict[str, Any]]:
    """The shard entries (path, records, bytes, sha256) of ``split``; StoreError if it is unknown."""
    splits = manifest["splits"]
    if split not in splits:
        raise StoreError(f"split {split!r} is not in the store (splits: {sorted(splits)})")
    return list(splits[split]["shards"])


def shard_paths(store: str | os.PathLike, manifest: Mapping[str, Any], split: str) -> list[Path]:
    """Paths of the shards of ``split``, in manifest order, each checked to lie inside ``store``
    (URL strings for a store on object storage).

    Raises
    ------
    StoreError
        For a path that is absolute, climbs out with ``..`` or resolves (through a symlink)
        to a file outside the store.
    """
    if is_remote(store):  # URLs: an object key cannot be a symlink, the relative-path check is enough
        where = f"{str(store).rstrip('/')}/{MANIFEST_NAME}"
        for i, entry in enumerate(shard_entries(manifest, split)):
            _check_relative_path(_Checker(where), entry["path"], f"splits.{split}.shards[{i}].path")
        return [f"{str(store).rstrip('/')}/{entry['path']}" for entry in shard_entries(manifest, split)]
    store = Path(store)
    root = store.resolve()
    paths = []
    for i, entry in enumerate(shard_entries(manifest, split)):
        _check_relative_path(_Checker(str(store / MANIFEST_NAME)), entry["path"], f"splits.{split}.shards[{i}].path")
        path = store / entry["path"]
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise StoreError(f"{store / MANIFEST_NAME}: splits.{split}.shards[{i}].path={entry['path']!r} "
                             f"resolves to {resolved}, outside the store")
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------ marker
def write_marker(directory: str | os.PathLike) -> None:
    """Write the store marker file into a (temporary) store directory."""
    write_text_atomic(Path(directory) / MARKER_NAME,
                      json.dumps({"kind": "mirdl-store", "format_version": FORMAT_VERSION}) + "\n")


def _has_marker(path: Path) -> bool:
    try:
        return json.loads((path / MARKER_NAME).read_text(encoding="utf-8")).get("kind") == "mirdl-store"
    except (OSError, ValueError, AttributeError):
        return False


def _is_v1_store(path: Path) -> bool:
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format_version") == 1 and all(k in manifest for k in _V1_KEYS)


def is_mirdl_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is recognisably a mirdl store (marker file, or a version-1 manifest with
    mirdl's keys): the only kind of folder a writer may replace."""
    path = Path(path)
    return path.is_dir() and not path.is_symlink() and (_has_marker(path) or _is_v1_store(path))


def check_destination(out: str | os.PathLike, *, param: str, overwrite: bool, fingerprint: str | None = None,
                      inputs_sha256: str | None = None) -> str:
    """What a writer may do with its destination: ``"write"`` or ``"up to date"``.

    Parameters
    ----------
    out : path-like
        The destination store directory.
    param : str
        How the caller names it in messages (``"store.out"``, ``"--out"``, ``"out"``).
    overwrite : bool
        Replace an existing mirdl store (forces a rebuild even of an up-to-date one).
    fingerprint : str, optional
        The fingerprint the new store would have; with it, an existing store of the same
        fingerprint, whose inputs have not changed (``inputs_sha256``, compared only if both
        have it) and whose shards all have their listed sizes, is ``"up to date"``.

    Raises
    ------
    StoreError
        ``out`` is a file or a symlink; a non-empty directory that is not a mirdl store
        (refused with or without ``overwrite``); or, without ``overwrite``, a store that is
        not up to date (the message says why and names ``--overwrite``).
    """
    out = Path(out)
    if out.is_symlink():
        raise StoreError(f"{param}={str(out)!r} is a symbolic link; give the real directory")
    if not out.exists():
        return "write"
    if not out.is_dir():
        raise StoreError(f"{param}={str(out)!r} exists and is not a directory")
    if not any(out.iterdir()):
        return "write"
    if not is_mirdl_store(out):
        raise StoreError(f"{param}={str(out)!r} is a non-empty directory that is not a mirdl store (no {MARKER_NAME}, "
                         "no mirdl manifest); refusing to replace it, with or without --overwrite")
    if overwrite:
        return "write"
    try:
        manifest = read_manifest(out)
    except StoreError as err:
        raise StoreError(f"{param}={str(out)!r} holds a damaged store ({err}); pass --overwrite to replace it") from err
    if fingerprint is None:
        raise StoreError(f"{param}={str(out)!r} holds a store already; pass --overwrite to replace it")
    if manifest.get("fingerprint") != fingerprint:
        raise StoreError(f"{param}={str(out)!r} holds a store with fingerprint {manifest.get('fingerprint')}, this "
                         f"config gives {fingerprint}; pass --overwrite to replace it")
    stored_inputs = manifest.get("corpus", {}).get("inputs_sha256")
    if inputs_sha256 is not None and stored_inputs is not None and stored_inputs != inputs_sha256:
        raise StoreError(f"{param}={str(out)!r}: input files changed since the store was written (sizes or "
                         "modification times); pass --overwrite to rebuild it")
    for split in manifest["splits"]:
        for entry, path in zip(shard_entries(manifest, split), shard_paths(out, manifest, split)):
            size = path.stat().st_size if path.is_file() else None
            if size != entry["bytes"]:
                problem = "is missing" if size is None else f"has {size} bytes, the manifest says {entry['bytes']}"
                raise StoreError(f"{param}={str(out)!r} holds a damaged store (shard {entry['path']} {problem}); "
                                 "pass --overwrite to replace it")
    return "up to date"


# ------------------------------------------------------------------------------------------ provenance
def numpy_cpu_dispatch() -> dict[str, Any]:
    """numpy's SIMD baseline and the dispatch targets this CPU runs (what decides last-bit
    differences between machines), and the BLAS library with its core type."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as umath
    found = [name for name, on in umath.__cpu_features__.items() if on]
    dispatch = list(umath.__cpu_dispatch__)
    info: dict[str, Any] = {
        "baseline": list(umath.__cpu_baseline__),
        "dispatch_available": [name for name in dispatch if name in found],
        "disabled_by_env": os.environ.get("NPY_DISABLE_CPU_FEATURES") or None,
        "blas": None,
    }
    try:
        from threadpoolctl import threadpool_info

        blas = [entry for entry in threadpool_info() if entry.get("user_api") == "blas"]
        if blas:
            # numpy's own BLAS (a wheel's numpy.libs), whatever else is loaded (scipy's openblas
            # appears once scipy is imported, in load order): the same entry on every run.
            numpy_dir = os.path.dirname(os.path.dirname(os.path.abspath(umath.__file__)))
            blas.sort(key=lambda e: (not str(e.get("filepath", "")).startswith(numpy_dir), str(e.get("filepath"))))
            entry = blas[0]
            info["blas"] = {"library": entry.get("internal_api"), "version": entry.get("version"),
                            "core": entry.get("architecture"), "threading": entry.get("threading_layer")}
    except ImportError:
        pass
    return info


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance(*, command: Sequence[str] | None = None, decoders: Mapping[str, Any] | None = None,
               decode: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What wrote a store: package versions, numpy's CPU dispatch and BLAS core, the command line.

    Two stores with equal provenance (apart from ``command``) and the same fingerprint hold
    byte-identical shards; stores written on CPUs with other SIMD features
    (``numpy.dispatch_available``: AVX2 vs AVX-512) agree only to the last bits of their floats.

    Parameters
    ----------
    command : sequence of str, optional
        The command line (default ``sys.argv``).
    decoders : mapping, optional
        Decoder name -> version (or description) the job used, e.g. ``{"libsndfile": "1.2.2"}``.
    decode : mapping, optional
        How files were decoded (``audio.decoder`` of the config: mode, decoders used, the stated
        bound of the fast Opus decoder): :meth:`mirdl.pipelines.config.AudioConfig.provenance`.
    """
    import soundfile

    packages = {name: _version(name) for name in
                ("numpy", "scipy", "librosa", "soundfile", "soxr", "av", "apache-beam", "tensorflow", "h5py", "pyarrow")}
    return {
        "mirdl": __version__,
        "python": platform.python_version(),
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "packages": {name: version for name, version in packages.items() if version is not None},
        "libsndfile": soundfile.__libsndfile_version__,
        "decoders": dict(decoders or {}),
        "decode": dict(decode or {}),
        "numpy": {"version": np.__version__, **numpy_cpu_dispatch()},
        "command": list(sys.argv if command is None else command),
    }
