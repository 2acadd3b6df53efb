"""The manifest a precompute job writes last: fingerprint, contents, counts, checksums, stats.

``manifest.json`` is the store's whole contract (schema in ``docs/store-format.md``); this
module builds it from the job's config, its :class:`~mirdl.pipelines.transforms.RecordLayout`
sections and what the pipeline reported. Whether an existing store is already the one a
config describes is :func:`mirdl.store.manifest.check_destination` (same fingerprint, same
input sizes and times, shards intact: nothing to do).

The store fingerprint is :func:`mirdl.features.spec.stable_hash` of everything that changes the
store's bytes: the feature specs' fingerprints (and names), the augmentation fingerprint
(and background files), the segment, splits and corpus settings, the task, the corpus
listing hash (file names, labels and sizes), the store format, compression and shard size,
and the store format version. Paths and the time of the run are not part of it, so a
moved corpus or a rerun gives the same fingerprint.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mirdl.features.spec import stable_hash
from mirdl.pipelines.config import PrepareConfig
from mirdl.pipelines.corpus import Track
from mirdl.store.build import new_manifest, split_entry
from mirdl.store.format import ERRORS_NAME, FORMAT_VERSION

if TYPE_CHECKING:  # pragma: no cover - the layout comes from the job, which imports Beam
    from mirdl.pipelines.transforms import RecordLayout

__all__ = ["store_fingerprint", "inputs_sha256", "build_manifest"]


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


def inputs_sha256(tracks: Iterable[Track]) -> str:
    """sha256 of every input file's size and modification time, by track id.

    Only the "up to date" check compares it (a file rewritten with the same size changes it);
    it is never part of the fingerprint, and it holds no absolute path, so a corpus moved
    with its times kept (``mv``, ``cp -p``, ``rsync -a``) is still up to date.
    """
    entries = []
    for track in sorted(tracks, key=lambda track: track.track_id):
        try:
            stat = os.stat(track.path)
            state = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            state = None
        entries.append([track.track_id, state])
    return stable_hash(entries, n_hex=64)


def build_manifest(*, config: PrepareConfig, layout: RecordLayout, fingerprint: str, listing_sha256: str,
                   inputs: str, n_files: int, split_names: list[str], stats_split: str, outputs: Mapping[str, Any],
                   provenance: Mapping[str, Any], version: int = 1, created: str | None = None,
                   split_warnings: list[str] | None = None) -> dict[str, Any]:
    """The manifest dict (schema: ``docs/store-format.md``).

    Parameters
    ----------
    config : PrepareConfig
    layout : RecordLayout
        Gives the ``features`` (without stats), ``task`` and segment frames sections.
    fingerprint, listing_sha256 : str
    inputs : str
        :func:`inputs_sha256` of the listed tracks.
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
    provenance : mapping
        :func:`mirdl.store.manifest.provenance` of the run.
    version : int
        The dataset's version (1 for a new store).
    created : str, optional
        UTC ISO time; now by default. With ``provenance.command``, the only fields that differ
        between two runs on the same machine type and package versions.
    split_warnings : list of str, optional
        :func:`mirdl.pipelines.corpus.split_warnings` of the listing (``corpus.split_warnings``).
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
        splits[split] = split_entry(entries, tracks=int(tracks_per_split.get(split, 0)), counts=counts)
    features = {name: {**entry, "stats": None if stats.get(name) is None else {"split": stats_split, **stats[name]}}
                for name, entry in layout.features.items()}
    return new_manifest(
        name=config.name, store_format=config.store.format, compression=config.store.compression,
        fingerprint=fingerprint, features=features, task=task, splits=splits, version=version, created=created,
        provenance_info=provenance,
        shard_bytes=config.store.shard_bytes,
        augment={
            **config.augment.to_dict(),
            "fingerprint": config.augment.fingerprint(),
            "background_files": len(config.background_files()),
        },
        segment={**config.segment.to_dict(), **layout.segment_frames()},
        # Fractions as [name, fraction] pairs: their order decides the assignment, JSON objects have none.
        split_config={**config.splits.to_dict(), "fractions": [list(pair) for pair in config.splits.fractions]},
        corpus={
            "type": config.corpus.type,
            "listing_sha256": listing_sha256,
            "inputs_sha256": inputs,
            "files": n_files,
            "tracks": int(sum(tracks_per_split.values())),
            "failed": int(errors_summary["failed_files"]),
            "audio_seconds": corpus_summary["audio_seconds"],
            "decoded_tracks": corpus_summary["tracks"],
            "duration_histogram": corpus_summary["duration_histogram"],
            "split_warnings": list(split_warnings or []),
        },
        errors={
            "file": ERRORS_NAME,
            "count": int(errors_summary["count"]),
            "failed_files": int(errors_summary["failed_files"]),
            "warnings": int(errors_summary.get("warnings", 0)),
            "skipped_files": int(errors_summary.get("skipped_files", 0)),
            "by_stage": dict(errors_summary["by_stage"]),
        },
    )
