"""Check a store end to end: the one ``verify`` behind ``mirdl verify`` and ``mirdl inspect --verify``.

:func:`check_shards` is the cheap check every reader runs when it opens a split (each shard
exists inside the store with its listed size; sha256 on request). :func:`verify` is the whole
check: the manifest against its schema, the marker, every shard's size and sha256, and every
record read back through its format adapter (so the format's own checksums are checked too),
with record counts, keys and shapes compared to the manifest.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mirdl.errors import StoreError
from mirdl.store.adapters import adapter_for
from mirdl.store.files import filesystem_for, is_remote, sha256_file
from mirdl.store.format import MARKER_NAME
from mirdl.store.manifest import read_manifest, shard_entries, shard_paths
from mirdl.store.remote import fetched

__all__ = ["check_shards", "verify", "find_corrupt_shard"]


def check_shards(store: str | os.PathLike, manifest: Mapping[str, Any], *, splits: list[str] | None = None,
                 checksums: bool = False) -> None:
    """Check that every shard of ``splits`` exists inside the store with its byte size (and sha256
    if ``checksums``).

    Raises
    ------
    StoreError
        Naming the first shard that is outside the store, missing, resized or changed.
    """
    if is_remote(store):
        _check_remote_shards(store, manifest, splits=splits, checksums=checksums)
        return
    for split in splits if splits is not None else sorted(manifest["splits"]):
        for entry, path in zip(shard_entries(manifest, split), shard_paths(store, manifest, split)):
            if not path.is_file():
                raise StoreError(f"{path}: shard listed in the manifest is missing")
            size = path.stat().st_size
            if size != entry["bytes"]:
                raise StoreError(f"{path}: size {size} bytes, the manifest says {entry['bytes']}")
            if checksums and sha256_file(path) != entry["sha256"]:
                raise StoreError(f"{path}: sha256 does not match the manifest (corrupt or changed shard)")


def _check_remote_shards(store: str, manifest: Mapping[str, Any], *, splits: list[str] | None,
                         checksums: bool) -> None:
    filesystem, root = filesystem_for(store)
    for split in splits if splits is not None else sorted(manifest["splits"]):
        for entry, url in zip(shard_entries(manifest, split), shard_paths(store, manifest, split)):
            size = filesystem.size(filesystem.join(root, entry["path"]))
            if size is None:
                raise StoreError(f"{url}: shard listed in the manifest is missing")
            if size != entry["bytes"]:
                raise StoreError(f"{url}: size {size} bytes, the manifest says {entry['bytes']}")
            if checksums:
                with fetched(url) as local:
                    if sha256_file(local) != entry["sha256"]:
                        raise StoreError(f"{url}: sha256 does not match the manifest (corrupt or changed shard)")


def _check_records(path: Path, entry: Mapping[str, Any], manifest: Mapping[str, Any], *, name: Any = None) -> int:
    """Read every record of one (local) shard; ``name`` is how messages call it (its URL)."""
    adapter = adapter_for(manifest["format"], param="format")
    path_shown, path = path, Path(path)
    if name is not None:
        path_shown = name
    n = 0
    previous = None
    for batch in adapter.read_batches(path, manifest=manifest):
        for key in batch["key"]:
            if previous is not None and not key > previous:
                raise StoreError(f"{path_shown}: records are not sorted by key ({key!r} after {previous!r})")
            previous = key
        n += len(batch["key"])
    if n != entry["records"]:
        raise StoreError(f"{path_shown}: holds {n} records, the manifest says {entry['records']}")
    return n


def verify(store: str | os.PathLike, *, splits: list[str] | None = None) -> dict[str, Any]:
    """Verify a store completely; return what was checked.

    Parameters
    ----------
    store : path-like
        Store directory.
    splits : list of str, optional
        Default every split.

    Returns
    -------
    dict
        ``store``, ``format_version``, ``splits``, ``shards``, ``records`` and ``bytes`` checked.

    Raises
    ------
    StoreError
        The first problem found, naming its file: manifest schema, missing marker (format
        version 2), a shard outside the store, missing, resized, with another sha256, failing
        its format's own checksums, unreadable, or holding other records than listed.
    """
    remote = is_remote(store)
    store = str(store).rstrip("/") if remote else Path(store)
    manifest = read_manifest(store)
    filesystem, root = filesystem_for(store)
    if manifest["format_version"] >= 2 and filesystem.size(filesystem.join(root, MARKER_NAME)) is None:
        raise StoreError(f"{store}: the {MARKER_NAME} marker of a format_version 2 store is missing")
    splits = sorted(manifest["splits"]) if splits is None else list(splits)
    check_shards(store, manifest, splits=splits, checksums=not remote)
    shards = records = size = 0
    for split in splits:
        for entry, path in zip(shard_entries(manifest, split), shard_paths(store, manifest, split)):
            # A remote shard is fetched once, to a temporary file, for both checks.
            with fetched(path) as local:
                if remote and sha256_file(local) != entry["sha256"]:
                    raise StoreError(f"{path}: sha256 does not match the manifest (corrupt or changed shard)")
                records += _check_records(local, entry, manifest, name=path)
            shards += 1
            size += entry["bytes"]
    return {"store": str(store), "format_version": manifest["format_version"], "splits": splits,
            "shards": shards, "records": records, "bytes": size}


def find_corrupt_shard(store: str | os.PathLike, manifest: Mapping[str, Any], split: str) -> tuple[Path, str] | None:
    """The first shard of ``split`` that fails its checks, with the reason; None if all pass.

    Used to name the file behind an error TensorFlow reports without one (a TFRecord
    ``DataLossError``).
    """
    for entry, path in zip(shard_entries(manifest, split), shard_paths(store, manifest, split)):
        try:
            check_shards(store, {"splits": {split: {"shards": [entry]}}}, splits=[split], checksums=True)
            _check_records(path, entry, manifest)
        except StoreError as err:
            return path, str(err)
    return None
