"""Write a store: the destination protocol and the manifest fields every store has.

Every writer of a store (``mirdl prepare``, ``mirdl extract``, tests, benchmarks) goes through
:func:`open_destination`, which holds the destination's lock, sweeps the temporaries of dead
runs, decides whether the destination may be written (:func:`~mirdl.store.manifest.
check_destination`) and hands out a temporary store directory (owner file, marker) that is
renamed into place complete, after checking that nobody changed the destination meanwhile::

    with open_destination(out, param="store.out", overwrite=False, fingerprint=fp) as destination:
        if destination.status == "write":
            with destination.write() as tmp:
                ...  # shards, errors.jsonl, then manifest.json (last)

:func:`new_manifest` gives the fields of the current format version that every manifest has
(versions, provenance, time), :func:`split_entry` a split's section from its shard list, and
:func:`write_store` writes a whole small store from records in memory.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirdl import __version__
from mirdl.errors import StoreError
from mirdl.store.adapters import write_shard
from mirdl.store.describe import write_card_with_plots, write_descriptions
from mirdl.store.files import (
    DestinationLock,
    ProcessInfo,
    StaleTemporary,
    atomic_path,
    sha256_file,
    sweep_stale_temporaries,
    write_json_atomic,
    write_owner,
)
from mirdl.store.format import FORMAT_VERSION, LABEL_COLUMN, MANIFEST_NAME, shard_filename, shard_for_key
from mirdl.store.manifest import check_destination, provenance, write_marker

__all__ = [
    "Destination",
    "open_destination",
    "new_manifest",
    "split_entry",
    "label_counts",
    "counting_labels",
    "write_store",
]


def _state(path: Path) -> tuple[Any, ...]:
    if not path.exists():
        return ("missing",)
    manifest = path / MANIFEST_NAME
    return ("present", sha256_file(manifest) if manifest.is_file() else None)


@dataclass
class Destination:
    """A locked destination: what :func:`check_destination` said, and how to write it.

    Attributes
    ----------
    path : Path
    param : str
        How messages name it (``store.out``, ``out``).
    status : {"write", "up to date"}
    broken_locks : list of ProcessInfo
        Locks of dead runs that were broken to take this one.
    stale : list of StaleTemporary
        Temporary folders of dead runs found next to it (removed, or reported).
    """

    path: Path
    param: str
    status: str
    broken_locks: list[ProcessInfo] = field(default_factory=list)
    stale: list[StaleTemporary] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per broken lock and stale temporary, for the command's output."""
        lines = [f"{self.path}: broke the lock of a run that is no longer running ({holder.describe()})"
                 for holder in self.broken_locks]
        return lines + [f"{self.path}: {stale.describe()}" for stale in self.stale]

    @contextlib.contextmanager
    def write(self) -> Iterator[Path]:
        """A temporary store directory (owner file and marker written) that replaces the
        destination when the block ends without an exception, and is deleted otherwise."""
        before = _state(self.path)

        def unchanged(path: Path) -> None:
            if _state(path) != before:
                raise StoreError(f"{self.param}={str(path)!r} changed while this job ran (a process that does not "
                                 "take mirdl's lock wrote it); nothing was written, run again")

        with atomic_path(self.path, before_replace=unchanged) as tmp:
            tmp.mkdir()
            write_owner(tmp)
            write_marker(tmp)
            yield tmp


@contextlib.contextmanager
def open_destination(out: str | os.PathLike, *, param: str, overwrite: bool, fingerprint: str | None = None,
                     inputs_sha256: str | None = None) -> Iterator[Destination]:
    """Lock ``out``, sweep dead runs' temporaries, check it; yield a :class:`Destination`.

    Raises
    ------
    StoreError
        Another live job holds the lock, or the destination may not be written (see
        :func:`mirdl.store.manifest.check_destination`).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with DestinationLock(out) as lock:
        stale = sweep_stale_temporaries(out)
        status = check_destination(out, param=param, overwrite=overwrite, fingerprint=fingerprint,
                                   inputs_sha256=inputs_sha256)
        yield Destination(path=out, param=param, status=status, broken_locks=list(lock.broken), stale=stale)


def new_manifest(*, name: str, store_format: str, compression: str, fingerprint: str,
                 features: Mapping[str, Any], task: Mapping[str, Any], splits: Mapping[str, Any],
                 version: int = 1, created: str | None = None, provenance_info: Mapping[str, Any] | None = None,
                 **sections: Any) -> dict[str, Any]:
    """A manifest of the current format version: the fields every store has, plus ``sections``.

    ``created`` (now, UTC) and ``provenance`` (:func:`mirdl.store.manifest.provenance` of this
    process) are filled in unless given.
    """
    return {
        "format_version": FORMAT_VERSION,
        "version": int(version),
        "name": name,
        "format": store_format,
        "compression": compression,
        "created": created or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "mirdl_version": __version__,
        "provenance": dict(provenance_info) if provenance_info is not None else provenance(),
        "fingerprint": fingerprint,
        "features": dict(features),
        "task": dict(task),
        "splits": dict(splits),
        **sections,
    }


def split_entry(shards: Sequence[Mapping[str, Any]], *, tracks: int, counts: Sequence[int] | None) -> dict[str, Any]:
    """A split's manifest section from its shards (in index order: ``path``, ``records``,
    ``bytes``, ``sha256``)."""
    return {
        "records": sum(int(shard["records"]) for shard in shards),
        "tracks": int(tracks),
        "bytes": sum(int(shard["bytes"]) for shard in shards),
        "label_counts": None if counts is None else [int(n) for n in counts],
        "shards": [{key: shard[key] for key in ("path", "records", "bytes", "sha256")} for shard in shards],
    }


def counting_labels(records: Iterable[Mapping[str, Any]], counts: np.ndarray | None,
                    task: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The records, unchanged, adding each one's :func:`label_counts` to ``counts`` on the way
    (so a shard's records are counted as they stream to the writer); ``counts`` None: nothing."""
    task_type, n_outputs = task["type"], task["n_outputs"]
    for record in records:
        if counts is not None:
            label = np.asarray(record[LABEL_COLUMN])
            if task_type in ("single_label", "frame_chords"):
                counts += np.bincount(label.reshape(-1), minlength=n_outputs)[:n_outputs]
            elif task_type == "frame_onset":
                counts[0] += int(np.count_nonzero(label == 1))
            else:  # multi-hot (n_outputs,) or piano roll (n_outputs, frames)
                counts += np.count_nonzero(label.reshape(n_outputs, -1), axis=-1)
        yield record


def label_counts(records: Iterable[Mapping[str, Any]], task: Mapping[str, Any]) -> list[int] | None:
    """How often each vocabulary entry occurs: records per class / tag, positive frames per
    onset / pitch / chord; None for regression.

    Examples
    --------
    >>> task = {"type": "single_label", "n_outputs": 3}
    >>> label_counts([{"label": 0}, {"label": 2}, {"label": 2}], task)
    [1, 0, 2]
    """
    counts = None if task["type"] == "regression" else np.zeros(task["n_outputs"], dtype=np.int64)
    for _ in counting_labels(records, counts, task):
        pass
    return None if counts is None else counts.tolist()


def write_store(out: str | os.PathLike, records: Mapping[str, Iterable[Mapping[str, Any]]], *, name: str,
                store_format: str, features: Mapping[str, Any], task: Mapping[str, Any], fingerprint: str,
                n_shards: int = 1, compression: str = "none", overwrite: bool = False, param: str = "out",
                dataset: Mapping[str, Any] | None = None, plots: bool = True,
                log: Callable[[str], None] = print, **sections: Any) -> dict[str, Any]:
    """Write a small store whose records are in memory; return its manifest.

    Parameters
    ----------
    out : path-like
        The store directory (locked, checked and replaced as :func:`open_destination` says).
    records : mapping
        Split -> records (any order; each split's are sharded by key hash and sorted).
    name, store_format, compression, fingerprint
        As in the manifest.
    features : mapping
        ``manifest.features`` (name -> ``shape``, ``dtype``, and ``stats``, ``spec``, ...).
    task : mapping
        ``manifest.task``.
    n_shards : int
        Shards per split.
    dataset : mapping, optional
        ``description``, ``license``, ``source`` of the data, for the dataset card and Croissant.
    plots : bool
        Draw the store's plots (label counts, examples where the feature is a spectrogram) into
        ``plots/`` and show them on the card.
    log : callable
        Where a plot that could not be drawn is reported.
    sections
        Further manifest sections (``augment``, ``segment``, ``source``, ...).
    """
    shard_features = {feature: {"shape": entry["shape"], "dtype": entry["dtype"]} for feature, entry in features.items()}
    with open_destination(out, param=param, overwrite=overwrite) as destination, destination.write() as tmp:
        splits = {}
        for split, split_records in records.items():
            split_records = list(split_records)
            shards = []
            counts = None if task["type"] == "regression" else np.zeros(task["n_outputs"], dtype=np.int64)
            # Grouped once: a scan of every record per shard would be quadratic (10^4 shards).
            by_shard: dict[int, list[Mapping[str, Any]]] = {}
            for record in split_records:
                by_shard.setdefault(shard_for_key(record["key"], n_shards=n_shards), []).append(record)
            for index in range(n_shards if split_records else 0):
                mine = sorted(by_shard.get(index, ()), key=lambda r: r["key"])
                path = tmp / shard_filename(name=name, split=split, store_format=store_format, index=index,
                                            n_shards=n_shards)
                shards.append(write_shard(counting_labels(mine, counts, task), path=path, store_format=store_format,
                                          features=shard_features, task=task, compression=compression).to_dict())
            tracks = len({record["track_id"] for record in split_records})
            splits[split] = split_entry(shards, tracks=tracks, counts=None if counts is None else counts.tolist())
        manifest = new_manifest(name=name, store_format=store_format, compression=compression,
                                fingerprint=fingerprint, features=features, task=task, splits=splits, **sections)
        if plots:
            write_card_with_plots(tmp, manifest, dataset=dataset, log=log)
        else:
            write_descriptions(tmp, manifest, dataset=dataset)
        write_json_atomic(tmp / MANIFEST_NAME, manifest)  # last: a store without it is incomplete
    return manifest
