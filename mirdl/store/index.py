"""Which record sits where: a split's records by shard and position, from their cheap columns.

Balanced reading (:func:`mirdl_tf.data.load` with ``balance``) draws each epoch's records
from this index first and then reads only those (HDF5 and Parquet by position, TFRecord
filtered by position before parsing the feature). The index is built from the columns every
record has besides its features (``track_id``, ``variant``, and the class index for
single-label stores): no feature array is read (a TFRecord shard is still read through,
its records parsed without the feature). Stores need no extra file for it, so every store,
of either format version, can be read balanced. It is kept in memory per process, keyed by
the shards' sha256 from the manifest.

Examples
--------
>>> index = record_index("demo-out/stores/demo", read_manifest("demo-out/stores/demo"), "train")  # doctest: +SKIP
>>> index.n_records, index.track_id[:2], index.shard[:2], index.position[:2]               # doctest: +SKIP
(1024, array(['brass/t0001', 'brass/t0001'], dtype=object), array([0, 0]), array([0, 1]))
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mirdl.errors import StoreError
from mirdl.store.adapters import adapter_for
from mirdl.store.manifest import shard_entries, shard_paths
from mirdl.store.remote import fetched

__all__ = ["RecordIndex", "record_index"]


@dataclass(frozen=True, eq=False)
class RecordIndex:
    """One row per record of a split, in shard order then position in the shard.

    Attributes
    ----------
    shard : np.ndarray [shape=(n,)], int64
        Index of the record's shard in the manifest's shard list of the split.
    position : np.ndarray [shape=(n,)], int64
        Position of the record in its shard (0 = first).
    track_id : np.ndarray [shape=(n,)], object (str)
    variant : np.ndarray [shape=(n,)], int64
    label : np.ndarray [shape=(n,)], int64, or None
        The class index (single-label stores); None for other tasks.
    shard_records : tuple of int
        Records per shard; row ``offsets[s] + p`` is record ``p`` of shard ``s``.
    """

    shard: np.ndarray
    position: np.ndarray
    track_id: np.ndarray
    variant: np.ndarray
    label: np.ndarray | None
    shard_records: tuple[int, ...]

    @property
    def n_records(self) -> int:
        return len(self.shard)

    @property
    def offsets(self) -> np.ndarray:
        """Row of each shard's first record, int64 ``(n_shards,)``."""
        return np.concatenate([[0], np.cumsum(self.shard_records)[:-1]]).astype(np.int64)


def record_index(store: str | os.PathLike, manifest: Mapping[str, Any], split: str) -> RecordIndex:
    """The :class:`RecordIndex` of ``split``, read from the shards' cheap columns (cached).

    Raises
    ------
    StoreError
        For an unknown split, or a shard whose record count differs from the manifest's.
    """
    entries = shard_entries(manifest, split)
    key = (os.fspath(store), split, manifest.get("created"),
           tuple((entry["path"], entry.get("sha256"), int(entry["records"])) for entry in entries))
    return _INDEXES.get(key, lambda: _build_index(store, manifest, split))


class _BoundedCache:
    """The last ``maxsize`` indexes built in this process, by store, split and shard checksums.

    The key holds each shard's sha256 from the manifest, which fixes its records, so an entry
    never goes stale; a rewritten store has new checksums and a new key.
    """

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[tuple, RecordIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, build) -> RecordIndex:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        index = build()
        with self._lock:
            self._entries[key] = index
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        return index


_INDEXES = _BoundedCache(maxsize=16)


def _build_index(store: str | os.PathLike, manifest: Mapping[str, Any], split: str) -> RecordIndex:
    adapter = adapter_for(manifest["format"])
    single_label = manifest["task"]["type"] == "single_label"
    columns: dict[str, list[np.ndarray]] = {"track_id": [], "variant": [], "label": []}
    counts = []
    for path, entry in zip(shard_paths(store, manifest, split), shard_entries(manifest, split)):
        n = 0
        with fetched(str(path)) as local:
            for batch in adapter.read_batches(local, manifest=manifest, features=[]):
                n += len(batch["track_id"])
                columns["track_id"].append(batch["track_id"])
                columns["variant"].append(batch["variant"])
                if single_label:
                    columns["label"].append(np.asarray(batch["label"], np.int64).reshape(-1))
        if n != int(entry["records"]):
            raise StoreError(f"{path}: {n} records, the manifest says {entry['records']}")
        counts.append(n)
    shard = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    position = np.concatenate([np.arange(n, dtype=np.int64) for n in counts]) if counts else np.zeros(0, np.int64)

    def joined(name, dtype):
        return np.concatenate(columns[name]).astype(dtype) if columns[name] else np.zeros(0, dtype)

    return RecordIndex(shard=shard, position=position, track_id=joined("track_id", object),
                       variant=joined("variant", np.int64),
                       label=joined("label", np.int64) if single_label else None, shard_records=tuple(counts))
