"""A lab's catalog of stores: a shared root (local, NFS, ``s3://``) holding stores by name and version.

Layout of a catalog root::

    ROOT/
      NAME/
        .claims/1, .claims/2, ...      # one small file per version taken (who, when): created exclusively
        1/  (a complete store)         # manifest.json written last
        2/  ...

There is no shared index file to corrupt: the catalog is a listing. :func:`publish` takes the
next version by creating ``NAME/.claims/V`` exclusively (``O_EXCL`` locally, a conditional
``PUT`` with ``If-None-Match: *`` on S3); two people publishing at once get two versions. The
store is then copied under ``NAME/V/`` with its manifest last (a temporary folder renamed
into place locally; a temporary prefix and manifest last on object storage), so a version
without a manifest (being written, or abandoned) is not listed.

A store is referred to as ``catalog://NAME`` (latest version) or ``catalog://NAME@VERSION``;
the root comes from the caller (``--catalog``) or the ``MIRDL_CATALOG`` environment variable.
:func:`pull` copies a version into the local cache (``MIRDL_CACHE``, default
``~/.cache/mirdl`` or ``$XDG_CACHE_HOME/mirdl``) and verifies it.

Examples
--------
>>> parse_reference("catalog://demo@3")
('demo', 3)
>>> parse_reference("demo")
('demo', None)
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirdl.errors import ConfigError, StoreError
from mirdl.store.files import ProcessInfo, atomic_path, filesystem_for, is_remote
from mirdl.store.format import MANIFEST_NAME
from mirdl.store.manifest import read_manifest
from mirdl.store.remote import download_store, upload_store

__all__ = [
    "CATALOG_PREFIX",
    "CATALOG_ENV",
    "CACHE_ENV",
    "CatalogEntry",
    "parse_reference",
    "catalog_root",
    "cache_dir",
    "list_catalog",
    "resolve",
    "resolve_store",
    "publish",
    "pull",
    "describe_entry",
]

CATALOG_PREFIX = "catalog://"
CATALOG_ENV = "MIRDL_CATALOG"
CACHE_ENV = "MIRDL_CACHE"
CLAIMS_DIR = ".claims"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class CatalogEntry:
    """One published version: where it is and what its manifest says."""

    name: str
    version: int
    location: str
    fingerprint: str
    created: str
    bytes: int
    splits: dict[str, int]  # split -> records

    def line(self) -> str:
        counts = ", ".join(f"{split} {n}" for split, n in self.splits.items())
        return (f"{self.name:<20} {self.version:>4}  {self.fingerprint}  {self.created:<25} "
                f"{self.bytes / 1e6:>9.2f} MB  {counts}")


def _check_name(name: str, param: str = "--name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{param}={name!r} must be letters, digits, '_', '.', '-' (not starting with '.' or '-')")
    return name


def parse_reference(reference: str) -> tuple[str, int | None]:
    """``NAME`` / ``NAME@VERSION`` (with or without ``catalog://``) -> ``(name, version or None)``."""
    text = reference[len(CATALOG_PREFIX):] if reference.startswith(CATALOG_PREFIX) else reference
    name, _, version = text.partition("@")
    _check_name(name, "reference")
    if not version:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ConfigError(f"reference={reference!r}: the version after '@' must be an integer >= 1")
    return name, int(version)


def catalog_root(root: str | os.PathLike | None = None, *, param: str = "--catalog") -> str | Path:
    """The catalog root: ``root`` if given, else ``$MIRDL_CATALOG``; ConfigError if neither."""
    value = root if root is not None else os.environ.get(CATALOG_ENV)
    if not value:
        raise ConfigError(f"{param} is not given and {CATALOG_ENV} is not set: which catalog root?")
    return str(value).rstrip("/") if is_remote(value, param=param) else Path(value)


def cache_dir() -> Path:
    """Where :func:`pull` puts stores: ``$MIRDL_CACHE``, else the user's cache folder + ``mirdl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mirdl"


def _join(root, *names: str):
    return "/".join([str(root).rstrip("/"), *names]) if isinstance(root, str) else Path(root).joinpath(*names)


def _versions(root, name: str) -> tuple[list[int], list[int]]:
    """``(claimed, published)`` versions of ``name``: claims taken, and those with a manifest."""
    filesystem, path = filesystem_for(root, param="ROOT")
    base = filesystem.join(path, name)
    claimed = sorted(int(n) for n in filesystem.list_files(filesystem.join(base, CLAIMS_DIR)) if n.isdigit())
    published = sorted(int(d) for d in filesystem.list_dirs(base) if d.isdigit()
                       and filesystem.size(filesystem.join(base, d, MANIFEST_NAME)) is not None)
    return claimed, published


def list_catalog(root: str | os.PathLike) -> list[CatalogEntry]:
    """Every published version under ``root``, by name then version."""
    root = catalog_root(root, param="ROOT")
    filesystem, path = filesystem_for(root, param="ROOT")
    entries = []
    for name in filesystem.list_dirs(path):
        if name.startswith("."):
            continue
        for version in _versions(root, name)[1]:
            location = _join(root, name, str(version))
            manifest = read_manifest(location)
            entries.append(CatalogEntry(
                name=name, version=version, location=str(location), fingerprint=str(manifest.get("fingerprint")),
                created=str(manifest.get("created")),
                bytes=sum(int(entry.get("bytes", 0)) for entry in manifest["splits"].values()),
                splits={split: int(entry["records"]) for split, entry in manifest["splits"].items()}))
    return entries


def resolve(reference: str, root: str | os.PathLike | None = None) -> tuple[str | Path, str, int]:
    """``(location, name, version)`` of a catalog reference (latest version if none is given)."""
    name, version = parse_reference(reference)
    root = catalog_root(root)
    published = _versions(root, name)[1]
    if not published:
        raise StoreError(f"{CATALOG_PREFIX}{name}: no published version in catalog {root}")
    if version is None:
        version = published[-1]
    elif version not in published:
        raise StoreError(f"{CATALOG_PREFIX}{name}@{version}: not in catalog {root} (versions: "
                         f"{', '.join(map(str, published))})")
    return _join(root, name, str(version)), name, version


def resolve_store(store: str | os.PathLike, *, catalog: str | os.PathLike | None = None,
                  param: str = "store") -> str | Path:
    """Where a store is: a local path (``Path``), an object-store URL (``str``), or the location
    a ``catalog://NAME[@VERSION]`` reference points to. ConfigError for an unsupported scheme."""
    text = os.fspath(store)
    if text.startswith(CATALOG_PREFIX):
        return resolve(text, catalog)[0]
    return text.rstrip("/") if is_remote(text, param=param) else Path(text)


def publish(store: str | os.PathLike, root: str | os.PathLike, *, name: str | None = None) -> CatalogEntry:
    """Copy a complete store into the catalog as the next version of ``name``; return its entry.

    Parameters
    ----------
    store : path-like or str
        A store directory or ``s3://`` URL (verified first: a damaged store is never published).
    root : path-like or str
        The catalog root (local, NFS, ``s3://BUCKET/PREFIX``).
    name : str, optional
        Default: the store's manifest name.

    Raises
    ------
    StoreError
        The store fails verification, or a write fails.
    """
    import tempfile

    if is_remote(store, param="STORE"):  # copied (and checked) through a local staging folder
        with tempfile.TemporaryDirectory(prefix="mirdl-publish-") as staging:
            return publish(download_store(str(store), Path(staging) / "store"), root, name=name)
    from mirdl.store.verify import verify

    root = catalog_root(root, param="ROOT")
    store = Path(store)
    verify(store)
    manifest = read_manifest(store)
    name = _check_name(name if name is not None else manifest["name"])
    filesystem, path = filesystem_for(root, param="ROOT")
    claims = filesystem.join(path, name, CLAIMS_DIR)
    filesystem.makedirs(claims)
    claimed, published = _versions(root, name)
    version = max(claimed + published + [0]) + 1
    claim = {"fingerprint": manifest.get("fingerprint"), **json.loads(ProcessInfo.current().to_bytes())}
    while not filesystem.create_exclusive(filesystem.join(claims, str(version)),
                                          (json.dumps(claim, sort_keys=True) + "\n").encode()):
        version += 1  # someone else took it a moment ago: the next one
    location = _join(root, name, str(version))
    if isinstance(root, str):
        upload_store(store, str(location), lock=False, param="ROOT")
    else:
        import shutil

        with atomic_path(location, overwrite=False) as tmp:
            shutil.copytree(store, tmp, ignore=lambda _dir, names: [MANIFEST_NAME] if _dir == str(store) else [])
            shutil.copyfile(store / MANIFEST_NAME, tmp / MANIFEST_NAME)  # last
    return next(entry for entry in list_catalog(root) if entry.name == name and entry.version == version)


def pull(reference: str, root: str | os.PathLike | None = None, *, cache: str | os.PathLike | None = None,
         ) -> tuple[Path, bool, dict[str, Any]]:
    """Copy a catalog version into the local cache and verify it; ``(path, fetched, verified)``
    (``verified``: what :func:`mirdl.store.verify.verify` checked).

    A version already in the cache (``CACHE/NAME/VERSION``) with the catalog's fingerprint is
    verified and reused (``fetched`` False).
    """
    from mirdl.store.verify import verify

    location, name, version = resolve(reference, root)
    remote_manifest = read_manifest(location)
    local = Path(cache) if cache is not None else cache_dir()
    target = local / name / str(version)
    fetched = False
    if target.exists():
        try:
            cached = read_manifest(target)
        except StoreError:
            cached = None
        if cached is None or cached.get("fingerprint") != remote_manifest.get("fingerprint"):
            raise StoreError(f"{target}: holds another store than {CATALOG_PREFIX}{name}@{version}; delete it and "
                             "pull again")
    else:
        try:
            if isinstance(location, Path):
                _copy_local(location, target)
            else:
                download_store(location, target)
            fetched = True
        except StoreError:
            if not target.exists():  # else another pull of the same version finished first: verify theirs
                raise
    return target, fetched, verify(target)


def _copy_local(source: Path, target: Path) -> None:
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, overwrite=False) as tmp:
        shutil.copytree(source, tmp)


def describe_entry(entry: CatalogEntry) -> dict[str, Any]:
    """An entry as a JSON-ready dict."""
    return {"name": entry.name, "version": entry.version, "fingerprint": entry.fingerprint,
            "created": entry.created, "bytes": entry.bytes, "splits": entry.splits, "location": entry.location}
