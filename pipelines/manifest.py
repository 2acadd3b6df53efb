"""The manifest a precompute job writes last: fingerprint, contents, counts, checksums, stats.

``manifest.json`` is the store's whole contract (schema in ``docs/store-format.md``); this
module builds it from the job's config, its :class:`~mirdl.pipelines.transforms.RecordLayout`
sections and what the pipeline reported, and decides whether an existing store is already
the one a config describes (same fingerprint: nothing to do).

The store fingerprint is :func:`mirdl.features.spec.stable_hash` of everything that changes the
store's bytes: the feature specs' fingerprints (and names), the augmentation fingerprint
(and background files), the segment, splits and corpus settings, the task, the corpus
listing hash (file names, labels and sizes), the store format, compression and shard size,
and the store format version. Paths and the time of the run are not part of it, so a
moved corpus or a rerun gives the same fingerprint.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirdl.errors import StoreError
from mirdl.features.spec import stable_hash
from mirdl.store.format import ERRORS_NAME, FORMAT_VERSION, MANIFEST_NAME, read_manifest, verify_store
from mirdl import __version__
from mirdl.pipelines.config import PrepareConfig

if TYPE_CHECKING:  # pragma: no cover - the layout comes from the job, which imports Beam
    from mirdl.pipelines.transforms import RecordLayout

__all__ = ["store_fingerprint", "destination_status", "build_manifest"]


def store_fingerprint(config: PrepareConfig, *, task: Mapping[str, Any], listing_sha256: str) -> str:
    """16 hex digits that change whenever the store ``config`` describes would change.

    Parameters
    ----------
    config : PrepareConfig
    task : mapping
        The task with its label layout (``RecordLayout.task``).
    listing_sha256 : str
        :func:`mirdl.pipelines.corpus.listing_hash` of the listed tracks.
    """
    return stable_hash({"format_version": FORMAT_VERSION, "config": config.fingerprint_payload(),
                        "task": dict(task), "listing_sha256": listing_sha256})


def destination_status(out: str | os.PathLike, *, fingerprint: str, overwrite: bool) -> str:
    """What to do with ``store.out``: ``"write"`` (nothing there, or replace) or ``"up to date"``.

    Raises
    ------
    StoreError
        ``out`` is a file; a directory that is not a mirdl store and not empty (never
        replaced, even with ``overwrite``); or a store with another fingerprint, or a
        damaged one, without ``overwrite``.
    """
    out = Path(out)
    if not out.exists():
        return "write"
    if not out.is_dir():
        raise StoreError(f"store.out={str(out)!r} exists and is not a directory")
    if not (out / MANIFEST_NAME).exists():
        if any(out.iterdir()):
            raise StoreError(f"store.out={str(out)!r} is a non-empty directory without {MANIFEST_NAME} "
                             "(not a mirdl store); refusing to replace it")
        return "write"
    try:
        manifest = read_manifest(out)
        problem = None if manifest.get("fingerprint") == fingerprint else \
            f"holds a store with fingerprint {manifest.get('fingerprint')}, this config gives {fingerprint}"
        if problem is None:
            verify_store(out, manifest, checksums=False)
    except StoreError as err:
        problem = f"holds a damaged store ({err})"
    if problem is None:
        return "up to date"
    if not overwrite:
        raise StoreError(f"store.out={str(out)!r} {problem}; pass --overwrite to replace it")
    return "write"


def build_manifest(*, config: PrepareConfig, layout: RecordLayout, fingerprint: str, listing_sha256: str,
                   n_files: int, split_names: list[str], stats_split: str, outputs: Mapping[str, Any],
                   created: str | None = None) -> dict[str, Any]:
    """The manifest dict (schema: ``docs/store-format.md``).

    Parameters
    ----------
    config : PrepareConfig
    layout : RecordLayout
        Gives the ``features`` (without stats), ``task`` and segment frames sections.
    fingerprint, listing_sha256 : str
    n_files : int
        Input files listed (tracks plus files the listing rejected).
    split_names : list of str
        Every split of the listing (those without records get empty entries).
    stats_split : str
        Split the normalisation statistics were computed on.
    outputs : mapping
        What the pipeline reported: ``shards`` (one dict per shard written: ``split``,
        ``index``, ``path``, ``records``, ``bytes``, ``sha256``, ``label_counts``), ``stats``
        (:class:`mirdl.pipelines.stats.FeatureStatsFn` output), ``tracks_per_split`` (split ->
        tracks with records), ``corpus`` (:class:`mirdl.pipelines.stats.DurationSummaryFn`
        output), ``errors`` (``count``, ``failed_files``, ``by_stage``).
    created : str, optional
        UTC ISO time; now by default. The only field that differs between two runs.
    """
    task, shards, stats = layout.task, outputs["shards"], outputs["stats"]
    tracks_per_split, corpus_summary, errors_summary = outputs["tracks_per_split"], outputs["corpus"], outputs["errors"]
    splits: dict[str, Any] = {}
    for split in sorted(set(split_names) | {shard["split"] for shard in shards}):
        entries = sorted((shard for shard in shards if shard["split"] == split), key=lambda shard: shard["index"])
        counts = None
        if task["type"] != "regression":
            counts = [sum(values) for values in zip(*(shard["label_counts"] for shard in entries))] \
                or [0] * task["n_outputs"]
        splits[split] = {
            "records": sum(shard["records"] for shard in entries),
            "tracks": int(tracks_per_split.get(split, 0)),
            "bytes": sum(shard["bytes"] for shard in entries),
            "label_counts": counts,
            "shards": [{key: shard[key] for key in ("path", "records", "bytes", "sha256")} for shard in entries],
        }
    features = {name: {**entry, "stats": None if stats.get(name) is None else {"split": stats_split, **stats[name]}}
                for name, entry in layout.features.items()}
    return {
        "format_version": FORMAT_VERSION,
        "name": config.name,
        "format": config.store.format,
        "compression": config.store.compression,
        "shard_bytes": config.store.shard_bytes,
        "created": created or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "mirdl_version": __version__,
        "fingerprint": fingerprint,
        "features": features,
        "augment": {
            **config.augment.to_dict(),
            "fingerprint": config.augment.fingerprint(),
            "background_files": len(config.background_files()),
        },
        "segment": {**config.segment.to_dict(), **layout.segment_frames()},
        "task": dict(task),
        "splits": splits,
        # Fractions as [name, fraction] pairs: their order decides the assignment, JSON objects have none.
        "split_config": {**config.splits.to_dict(), "fractions": [list(pair) for pair in config.splits.fractions]},
        "corpus": {
            "type": config.corpus.type,
            "listing_sha256": listing_sha256,
            "files": n_files,
            "tracks": int(sum(tracks_per_split.values())),
            "failed": int(errors_summary["failed_files"]),
            "audio_seconds": corpus_summary["audio_seconds"],
            "decoded_tracks": corpus_summary["tracks"],
            "duration_histogram": corpus_summary["duration_histogram"],
        },
        "errors": {
            "file": ERRORS_NAME,
            "count": int(errors_summary["count"]),
            "failed_files": int(errors_summary["failed_files"]),
            "by_stage": dict(errors_summary["by_stage"]),
        },
    }
