"""The feature-store format: versions, file names, record columns, task types, shard naming.

Every constant of the layout is defined here once; :mod:`mirdl.store.adapters` (shard bytes),
:mod:`mirdl.store.manifest` (the manifest schema) and both sides of the store (the writer in
:mod:`mirdl.pipelines`, the readers in :mod:`mirdl_tf`) import them. ``docs/store-format.md``
describes the same contract for readers without mirdl. Standard library only.

A store is a directory::

    STORE/
      .mirdl-store                                  # marker: "this folder is a mirdl store" (version 2)
      manifest.json                                 # written last: a store without it is incomplete
      errors.jsonl                                  # one JSON line per input file that failed or warned
      NAME-train.tfrecord-00000-of-00004            # TFRecord shards (TFDS naming)
      NAME-train-00000-of-00004.parquet             # Parquet / HDF5 shards end with their extension
      NAME-train-00000-of-00004.h5

Every record (one segment of one augmentation variant of one track) has the columns of
:data:`RECORD_COLUMNS` plus one column per feature (named by ``FeatureSpec.name``) and
``label``; features are row-major arrays whose shape and dtype the manifest gives.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import PurePath
from typing import Any

from mirdl.errors import StoreError

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "MANIFEST_NAME",
    "ERRORS_NAME",
    "TRACKS_NAME",
    "MARKER_NAME",
    "STORE_FORMATS",
    "EXTENSIONS",
    "COMPRESSIONS",
    "DEFAULT_ROW_GROUP_RECORDS",
    "TASK_TYPES",
    "CLIP_TASKS",
    "FRAME_TASKS",
    "LABEL_LAYOUT",
    "RECORD_COLUMNS",
    "STRING_COLUMNS",
    "INT_COLUMNS",
    "LABEL_COLUMN",
    "HDF5_FEATURES_GROUP",
    "HDF5_CHUNK_BYTES",
    "FEATURE_DTYPES",
    "LABEL_DTYPES",
    "shard_filename",
    "parse_shard_filename",
    "record_key",
    "shard_count",
    "shard_for_key",
]

#: Version of the store layout and manifest schema written by this code. Version 2 added the
#: marker file, extension-last Parquet/HDF5 shard names, the formats' own checksums (HDF5
#: fletcher32, Parquet page CRCs), nested Parquet arrays with Hugging Face schema metadata,
#: sufficient statistics, the ``provenance`` block and the dataset ``version``.
FORMAT_VERSION = 2
#: Versions a reader of this code understands.
SUPPORTED_FORMAT_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
ERRORS_NAME = "errors.jsonl"
#: One JSON line per decoded track (id, samples, sha256 of its bytes, listing entry): what
#: ``mirdl prepare --update`` and ``mirdl merge`` need to know of each track.
TRACKS_NAME = "tracks.jsonl"
#: A small file whose presence says "this folder is a mirdl store": only such folders (or
#: version-1 stores, recognised by their manifest) are ever replaced by ``--overwrite``.
MARKER_NAME = ".mirdl-store"
STORE_FORMATS = ("tfrecord", "hdf5", "parquet")
#: Store format -> shard file extension.
EXTENSIONS = {"tfrecord": "tfrecord", "hdf5": "h5", "parquet": "parquet"}
#: Compression each store format supports ("none" first: the default).
COMPRESSIONS = {
    "tfrecord": ("none", "gzip"),
    "hdf5": ("none", "gzip", "lzf"),
    "parquet": ("none", "gzip", "zstd"),
}
#: Records per Parquet row group unless the config says otherwise.
DEFAULT_ROW_GROUP_RECORDS = 256
#: Label layouts: single_label (int64 class index), multi_label (float32 multi-hot),
#: regression (float32 targets), frame_onset (float32 (T,)), frame_notes (float32 (88, T)),
#: frame_chords (int64 (T,) chord index).
TASK_TYPES = ("single_label", "multi_label", "regression", "frame_onset", "frame_notes", "frame_chords")
#: Task type -> (label dtype, number of axes of its label shape).
LABEL_LAYOUT = {
    "single_label": ("int64", 0),  # class index
    "multi_label": ("float32", 1),  # (n_outputs,) multi-hot
    "regression": ("float32", 1),  # (n_outputs,) targets
    "frame_onset": ("float32", 1),  # (T,)
    "frame_notes": ("float32", 2),  # (88, T)
    "frame_chords": ("int64", 1),  # (T,) chord index
}
#: Tasks whose labels are per track (one label for every segment of a track).
CLIP_TASKS = ("single_label", "multi_label", "regression")
#: Tasks whose labels are per frame (time last).
FRAME_TASKS = ("frame_onset", "frame_notes", "frame_chords")
#: Columns every record has besides the features and the label.
RECORD_COLUMNS = ("key", "track_id", "variant", "segment", "start_frame")
STRING_COLUMNS = ("key", "track_id")
INT_COLUMNS = ("variant", "segment", "start_frame")
LABEL_COLUMN = "label"
#: HDF5 group holding one dataset per feature (``features/NAME``).
HDF5_FEATURES_GROUP = "features"
#: Target bytes of one HDF5 chunk (whole records along axis 0, at least one): a reader fetches
#: (and checks the fletcher32 of) one chunk per ~1 MB, not one per record. Readers take the
#: chunk shape from the file, so any chunking reads the same (shards written before this used
#: one record per chunk).
HDF5_CHUNK_BYTES = 1 << 20
FEATURE_DTYPES = ("float32", "float16")
LABEL_DTYPES = ("int64", "float32")

_SPLIT = r"[A-Za-z0-9_]+"
_SHARD_PATTERNS = (
    # TFRecord, every version; HDF5 and Parquet in version 1: NAME-SPLIT.EXT-00000-of-00004
    re.compile(rf"^(?P<name>.+)-(?P<split>{_SPLIT})\.(?P<ext>tfrecord|h5|parquet)-(?P<index>\d{{5}})-of-(?P<count>\d{{5}})$"),
    # HDF5 and Parquet from version 2: NAME-SPLIT-00000-of-00004.EXT
    re.compile(rf"^(?P<name>.+)-(?P<split>{_SPLIT})-(?P<index>\d{{5}})-of-(?P<count>\d{{5}})\.(?P<ext>h5|parquet)$"),
)


def shard_filename(*, name: str, split: str, store_format: str, index: int, n_shards: int,
                   format_version: int = FORMAT_VERSION) -> str:
    """File name of one shard.

    TFRecord keeps the TFDS naming ``NAME-SPLIT.tfrecord-00003-of-00016``; from format
    version 2, HDF5 and Parquet shards end with their extension
    (``NAME-SPLIT-00003-of-00016.parquet``), so ``*.parquet`` globs find them.

    Examples
    --------
    >>> shard_filename(name="demo", split="train", store_format="tfrecord", index=3, n_shards=16)
    'demo-train.tfrecord-00003-of-00016'
    >>> shard_filename(name="demo", split="train", store_format="parquet", index=3, n_shards=16)
    'demo-train-00003-of-00016.parquet'
    """
    if store_format not in EXTENSIONS:
        raise StoreError(f"store_format={store_format!r} must be one of {sorted(EXTENSIONS)}")
    if not re.fullmatch(_SPLIT, split):
        raise StoreError(f"split={split!r} must be letters, digits or '_'")
    if not 0 <= index < n_shards:
        raise StoreError(f"index={index} is outside 0..{n_shards - 1}")
    ext = EXTENSIONS[store_format]
    if store_format == "tfrecord" or format_version < 2:
        return f"{name}-{split}.{ext}-{index:05d}-of-{n_shards:05d}"
    return f"{name}-{split}-{index:05d}-of-{n_shards:05d}.{ext}"


def parse_shard_filename(filename: str) -> dict[str, Any]:
    """Inverse of :func:`shard_filename` (either version): name, split, ext, index and count.

    Examples
    --------
    >>> parse_shard_filename("demo-valid-00001-of-00002.h5")["split"]
    'valid'
    """
    for pattern in _SHARD_PATTERNS:
        match = pattern.match(PurePath(filename).name)
        if match is not None:
            parts = match.groupdict()
            return {**parts, "index": int(parts["index"]), "count": int(parts["count"])}
    raise StoreError(f"{filename!r} is not a shard file name (NAME-SPLIT.tfrecord-00000-of-00001 or "
                     "NAME-SPLIT-00000-of-00001.parquet/.h5)")


def record_key(*, track_id: str, variant: int, segment: int) -> str:
    """The key that identifies a record and orders records inside a shard.

    Zero-padded so that string order equals (track, variant, segment) order.

    Examples
    --------
    >>> record_key(track_id="pluck/t0001", variant=2, segment=7)
    'pluck/t0001#v002#s000007'
    """
    return f"{track_id}#v{variant:03d}#s{segment:06d}"


def shard_count(total_bytes: int, *, shard_bytes: int) -> int:
    """Shards of a split holding ``total_bytes`` of records: ``ceil(total_bytes / shard_bytes)``,
    at least one. The job's writer and ``mirdl merge`` both use it, so a merged store has the
    single run's shards.

    Examples
    --------
    >>> shard_count(0, shard_bytes=64), shard_count(64, shard_bytes=64), shard_count(65, shard_bytes=64)
    (1, 1, 2)
    """
    return max(1, -(-int(total_bytes) // int(shard_bytes)))


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
