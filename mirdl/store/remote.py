"""Stores on object storage (``s3://``, ``gs://``): written atomically, read shard by shard.

A store on an object store is the same files under a prefix. Object stores have no rename,
so :func:`upload_store` writes every file under a temporary prefix (``.NAME.tmp-<uuid>/``)
first, then, holding the destination's lock (a conditional write), removes the old manifest
(the old store stops existing to readers), copies the files into place server-side and
writes ``manifest.json`` last: a prefix without a manifest is no store to any reader.

Readers never copy a whole store: :func:`fetched` brings one shard to a temporary local file
while it is read (the format's own checksums are checked as always) and deletes it after,
so a reader holds at most the shards it reads at the same time.

Examples
--------
>>> remote_join("s3://lab/stores/demo/", "manifest.json")
's3://lab/stores/demo/manifest.json'
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from mirdl.errors import StoreError
from mirdl.store.files import DestinationLock, filesystem_for, sha256_file
from mirdl.store.format import MANIFEST_NAME, MARKER_NAME

__all__ = ["remote_join", "read_remote_bytes", "fetched", "upload_store", "download_store", "store_files"]


def remote_join(url: str, *names: str) -> str:
    """``url`` with ``names`` appended as path components."""
    return "/".join([str(url).rstrip("/"), *names])


def read_remote_bytes(url: str) -> bytes | None:
    """The bytes of one object, None if it does not exist."""
    filesystem, path = filesystem_for(url)
    return filesystem.read_bytes(path)


@contextlib.contextmanager
def fetched(url: str | os.PathLike, *, directory: str | os.PathLike | None = None) -> Iterator[Path]:
    """A local copy of one remote file for the length of the block (a local path is yielded as is).

    The copy is a uuid-named file in ``directory`` (default the system's temporary folder),
    deleted when the block ends.
    """
    filesystem, path = filesystem_for(url)
    if filesystem.scheme is None:
        yield Path(path)
        return
    local = Path(directory or tempfile.gettempdir()) / f".mirdl-fetch-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
    try:
        filesystem.download(path, local)
        yield local
    finally:
        local.unlink(missing_ok=True)


def store_files(location: str | os.PathLike) -> dict[str, int]:
    """Every file of a store (local or remote): relative path -> size."""
    filesystem, path = filesystem_for(location)
    return filesystem.list_files(path)


def upload_store(local: str | os.PathLike, url: str, *, overwrite: bool = False, param: str = "store.out",
                 lock: bool = True) -> None:
    """Copy a complete local store to ``url`` atomically (temporary prefix, manifest last).

    Parameters
    ----------
    local : path-like
        A complete store directory (its manifest is read first: an incomplete one is refused).
    url : str
        ``s3://BUCKET/PREFIX`` (or ``gs://``); a local path is copied the same way.
    overwrite : bool
        Replace a store already at ``url``; without it, an existing store is a StoreError.
    lock : bool
        Hold the destination's lock (``.NAME.lock``, a conditional write) while writing.
        The catalog, which claims a fresh version prefix first, writes without it.

    Raises
    ------
    StoreError
        The destination holds a store (without ``overwrite``) or other files (never replaced),
        another writer holds its lock, or a write fails.
    """
    local = Path(local)
    if not (local / MANIFEST_NAME).is_file():
        raise StoreError(f"{local}: {MANIFEST_NAME} is missing; only a complete store is copied")
    filesystem, path = filesystem_for(url, param=param)
    path = path.rstrip("/") if isinstance(path, str) else path
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    guard = DestinationLock(path, filesystem=filesystem) if lock else contextlib.nullcontext()
    with guard:
        existing = filesystem.list_files(path)
        if existing:
            is_store = MARKER_NAME in existing or MANIFEST_NAME in existing
            if not is_store:
                raise StoreError(f"{param}={url!r} holds other files and no mirdl store; refusing to replace them")
            if not overwrite:
                raise StoreError(f"{param}={url!r} holds a store already; pass --overwrite to replace it")
        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        staging = filesystem.join(filesystem.parent(path), f".{name}.tmp-{uuid.uuid4().hex}")
        try:
            for relative in files:
                filesystem.upload(local / relative, filesystem.join(staging, relative))
            # From here the old store is gone for readers until the new manifest lands.
            filesystem.remove(filesystem.join(path, MANIFEST_NAME))
            for relative in files:
                if relative != MANIFEST_NAME:
                    _move(filesystem, filesystem.join(staging, relative), filesystem.join(path, relative))
            for relative in existing:
                if relative not in files:
                    filesystem.remove(filesystem.join(path, relative))
            _move(filesystem, filesystem.join(staging, MANIFEST_NAME), filesystem.join(path, MANIFEST_NAME))
        finally:
            for relative in files:
                filesystem.remove(filesystem.join(staging, relative))


def _move(filesystem, source, target) -> None:
    if filesystem.scheme is None:
        filesystem.makedirs(filesystem.parent(target))
        os.replace(source, target)
    else:
        filesystem.copy(source, target)


def download_store(url: str, local: str | os.PathLike) -> Path:
    """Copy the store at ``url`` into the new directory ``local`` (atomically: a temporary
    sibling renamed into place), checking every shard's size and sha256 against the manifest
    read first; the manifest is written last. Returns ``local``."""
    import json

    from mirdl.store.files import atomic_path
    from mirdl.store.manifest import shard_entries, validate_manifest

    filesystem, path = filesystem_for(url)
    raw = filesystem.read_bytes(filesystem.join(path, MANIFEST_NAME))
    if raw is None:
        raise StoreError(f"{remote_join(url, MANIFEST_NAME)}: missing; {url} is not a complete mirdl store")
    try:
        manifest = validate_manifest(json.loads(raw.decode("utf-8")), where=remote_join(url, MANIFEST_NAME))
    except (UnicodeDecodeError, ValueError) as err:
        raise StoreError(f"{remote_join(url, MANIFEST_NAME)}: cannot be read as JSON ({err})") from err
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    listed = {entry["path"]: entry for split in manifest["splits"] for entry in shard_entries(manifest, split)}
    with atomic_path(local, overwrite=False) as tmp:
        tmp.mkdir()
        for relative in filesystem.list_files(path):
            if relative == MANIFEST_NAME or relative.startswith("."):
                if relative != MARKER_NAME:
                    continue
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            filesystem.download(filesystem.join(path, relative), target)
            entry = listed.get(relative)
            if entry is not None and (target.stat().st_size != entry["bytes"] or sha256_file(target) != entry["sha256"]):
                raise StoreError(f"{remote_join(url, relative)}: size or sha256 does not match the manifest")
        missing = sorted(set(listed) - {p.relative_to(tmp).as_posix() for p in tmp.rglob("*")})
        if missing:
            raise StoreError(f"{remote_join(url, missing[0])}: shard listed in the manifest is missing")
        (tmp / MANIFEST_NAME).write_bytes(raw)
    return local
