"""The feature-store format: manifest schema, shard naming, record layout, atomic writes.

This is the one module both the writer (:mod:`mirdl.pipelines`) and the readers
(:mod:`mirdl_tf`) read; ``docs/store-format.md`` describes the same contract for
readers without mirdl. It imports only the standard library.

A store is a directory::

    STORE/
      manifest.json                                 # written last: a store without it is incomplete
      errors.jsonl                                  # one JSON line per file that failed (may be empty)
      NAME-train.tfrecord-00000-of-00004            # or .h5 / .parquet shards
      ...

Every record (one segment of one augmentation variant of one track) has the columns of
:data:`RECORD_COLUMNS` plus one column per feature (named by ``FeatureSpec.name``) and
``label``; features are row-major float arrays whose shape and dtype the manifest gives.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mirdl.errors import StoreError

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "MANIFEST_NAME",
    "ERRORS_NAME",
    "STORE_FORMATS",
    "TASK_TYPES",
    "RECORD_COLUMNS",
    "LABEL_COLUMN",
    "shard_filename",
    "parse_shard_filename",
    "record_key",
    "shard_for_key",
    "sha256_file",
    "atomic_path",
    "write_json_atomic",
    "read_manifest",
    "shard_entries",
    "shard_paths",
    "verify_store",
]

#: Version of the store layout and manifest schema written by this code.
FORMAT_VERSION = 1
#: Versions a reader of this code understands.
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_NAME = "manifest.json"
ERRORS_NAME = "errors.jsonl"
#: Store format -> shard file extension.
STORE_FORMATS = {"tfrecord": "tfrecord", "hdf5": "h5", "parquet": "parquet"}
#: Label layouts: single_label (int64 class index), multi_label (float32 multi-hot),
#: regression (float32 targets), frame_onset (float32 (T,)), frame_notes (float32 (88, T)),
#: frame_chords (int64 (T,) chord index).
TASK_TYPES = ("single_label", "multi_label", "regression", "frame_onset", "frame_notes", "frame_chords")
#: Columns every record has besides the features and the label.
RECORD_COLUMNS = ("key", "track_id", "variant", "segment", "start_frame")
LABEL_COLUMN = "label"

_SHARD_RE = re.compile(
    r"^(?P<name>.+)-(?P<split>[A-Za-z0-9_]+)\.(?P<ext>tfrecord|h5|parquet)-(?P<index>\d{5})-of-(?P<count>\d{5})$"
)
_REQUIRED_KEYS = ("format_version", "name", "format", "features", "task", "splits")


def shard_filename(*, name: str, split: str, store_format: str, index: int, n_shards: int) -> str:
    """File name of one shard, TFDS style: ``NAME-SPLIT.EXT-00003-of-00016``.

    Examples
    --------
    >>> shard_filename(name="demo", split="train", store_format="tfrecord", index=3, n_shards=16)
    'demo-train.tfrecord-00003-of-00016'
    """
    if store_format not in STORE_FORMATS:
        raise StoreError(f"store format {store_format!r} is not one of {sorted(STORE_FORMATS)}")
    if not 0 <= index < n_shards:
        raise StoreError(f"shard index {index} is outside 0..{n_shards - 1}")
    return f"{name}-{split}.{STORE_FORMATS[store_format]}-{index:05d}-of-{n_shards:05d}"


def parse_shard_filename(filename: str) -> dict[str, Any]:
    """Inverse of :func:`shard_filename`: name, split, ext, index and count of a shard file."""
    match = _SHARD_RE.match(Path(filename).name)
    if match is None:
        raise StoreError(f"{filename!r} is not a shard file name (NAME-SPLIT.EXT-00000-of-00001)")
    parts = match.groupdict()
    return {**parts, "index": int(parts["index"]), "count": int(parts["count"])}


def record_key(*, track_id: str, variant: int, segment: int) -> str:
    """The key that identifies a record and orders records inside a shard.

    Zero-padded so that string order equals (track, variant, segment) order.

    Examples
    --------
    >>> record_key(track_id="pluck/t0001", variant=2, segment=7)
    'pluck/t0001#v002#s000007'
    """
    return f"{track_id}#v{variant:03d}#s{segment:06d}"


def shard_for_key(key: str, *, n_shards: int) -> int:
    """Shard index of a record: a stable hash of its key (same on every runner and worker).

    Examples
    --------
    >>> shard_for_key("pluck/t0001#v000#s000000", n_shards=1)
    0
    """
    if n_shards < 1:
        raise StoreError(f"n_shards={n_shards} must be >= 1")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it replaces ``path`` in one rename.

    Works for files and directories. The temporary name carries a uuid, so concurrent
    writers never collide; whatever happens, it is deleted in ``finally``. A reader sees
    either the old ``path``, or the complete new one, never a partial write.

    Parameters
    ----------
    path : path-like
        Final destination.
    overwrite : bool
        If False and ``path`` exists when the write completes, raise :class:`StoreError`.

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
        if path.exists():
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
                _remove(old)
                return
        os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_manifest(store: str | os.PathLike) -> dict[str, Any]:
    """Read and check a store's ``manifest.json``.

    Raises
    ------
    StoreError
        If the directory or its manifest is missing (an incomplete store has none), the
        manifest is not JSON, lacks a required key, or has a format version this code
        does not know. The message names the file.
    """
    store = Path(store)
    manifest_path = store / MANIFEST_NAME
    if not store.is_dir():
        raise StoreError(f"{store}: no such store directory")
    if not manifest_path.is_file():
        raise StoreError(f"{manifest_path}: missing; {store} is not a complete mirdl store")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise StoreError(f"{manifest_path}: cannot be read as JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise StoreError(f"{manifest_path}: expected a JSON object")
    version = manifest.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise StoreError(
            f"{manifest_path}: format_version={version!r} is not supported by this reader "
            f"(supported: {list(SUPPORTED_FORMAT_VERSIONS)}); upgrade mirdl"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in manifest]
    if missing:
        raise StoreError(f"{manifest_path}: required key {missing[0]!r} is missing")
    if manifest["format"] not in STORE_FORMATS:
        raise StoreError(f"{manifest_path}: format={manifest['format']!r} is not one of {sorted(STORE_FORMATS)}")
    return manifest


def shard_entries(manifest: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """The shard entries (path, records, bytes, sha256) of ``split``; StoreError if it is unknown."""
    splits = manifest["splits"]
    if split not in splits:
        raise StoreError(f"split {split!r} is not in the store (splits: {sorted(splits)})")
    return list(splits[split]["shards"])


def shard_paths(store: str | os.PathLike, manifest: dict[str, Any], split: str) -> list[Path]:
    """Absolute paths of the shards of ``split``, in manifest order."""
    return [Path(store) / entry["path"] for entry in shard_entries(manifest, split)]


def verify_store(store: str | os.PathLike, manifest: dict[str, Any], *, splits: list[str] | None = None,
                 checksums: bool = True) -> None:
    """Check that every shard of ``splits`` exists with its byte size (and sha256 if ``checksums``).

    Raises
    ------
    StoreError
        Naming the first missing, resized or corrupt shard file.
    """
    for split in splits if splits is not None else sorted(manifest["splits"]):
        for entry, path in zip(shard_entries(manifest, split), shard_paths(store, manifest, split)):
            if not path.is_file():
                raise StoreError(f"{path}: shard listed in the manifest is missing")
            size = path.stat().st_size
            if size != entry["bytes"]:
                raise StoreError(f"{path}: size {size} bytes, manifest says {entry['bytes']}")
            if checksums and sha256_file(path) != entry["sha256"]:
                raise StoreError(f"{path}: sha256 does not match the manifest (corrupt or changed shard)")
