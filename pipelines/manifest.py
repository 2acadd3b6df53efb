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

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirdl.features.spec import stable_hash
from mirdl.pipelines.config import PrepareConfig
from mirdl.errors import StoreError
from mirdl.pipelines.corpus import Track, listing_entry
from mirdl.store.build import new_manifest, split_entry
from mirdl.store.files import atomic_path
from mirdl.store.format import ERRORS_NAME, FORMAT_VERSION, TRACKS_NAME

if TYPE_CHECKING:  # pragma: no cover - the layout comes from the job, which imports Beam
    from mirdl.pipelines.transforms import RecordLayout

__all__ = ["store_fingerprint", "config_fingerprint", "inputs_sha256", "build_manifest", "write_track_list",
           "read_track_list"]


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


def config_fingerprint(config: PrepareConfig) -> str:
    """16 hex digits of everything in ``config`` that changes the records of a track (the store
    fingerprint without the corpus listing and the task): two stores with the same one hold the
    same records for a track with the same bytes and listing entry (``mirdl prepare --update``)."""
    return stable_hash({"format_version": FORMAT_VERSION, "config": config.fingerprint_payload()})


def write_track_list(path: str | os.PathLike, *, decoded: Iterable[Mapping[str, Any]], tracks: Iterable[Track]) -> None:
    """Write ``tracks.jsonl``: one line per decoded track, sorted by id: ``track_id``, ``samples``
    (decoded, at the features' rate), ``sha256`` and ``annotation_sha256`` (of the files' bytes),
    ``listing`` (:func:`mirdl.pipelines.corpus.listing_entry`, with the track's split)."""
    by_id = {track.track_id: track for track in tracks}
    lines = [{**entry, "listing": listing_entry(by_id[entry["track_id"]])} for entry in decoded]
    write_track_lines(path, lines)


def write_track_lines(path: str | os.PathLike, lines: Iterable[Mapping[str, Any]]) -> None:
    """Write ``tracks.jsonl`` lines (dicts as :func:`write_track_list` makes them), sorted by id, atomically."""
    ordered = sorted(lines, key=lambda line: line["track_id"])
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n" for line in ordered),
                       encoding="utf-8")


def read_track_list(store: str | os.PathLike) -> list[dict[str, Any]]:
    """The lines of ``STORE/tracks.jsonl``.

    Raises
    ------
    StoreError
        The store has none (written before mirdl kept it: rebuild with ``--overwrite``), or a
        line is not a track entry.
    """
    path = Path(store) / TRACKS_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(f"{store}: no {TRACKS_NAME} (stores written before mirdl 0.4 do not list their tracks); "
                         "rebuild the store with --overwrite") from None
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("track_id"), str) \
                    or not isinstance(entry.get("samples"), int) or not isinstance(entry.get("listing"), dict):
                raise ValueError("not a track entry")
        except ValueError as err:
            raise StoreError(f"{path}:{number}: {err}") from None
        lines.append(entry)
    return lines


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
                   split_warnings: list[str] | None = None, partition: Mapping[str, Any] | None = None,
                   ) -> dict[str, Any]:
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
    partition : mapping, optional
        A partial store's ``partition`` section (``mirdl prepare --partition I/K``; null otherwise).
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
        config_fingerprint=config_fingerprint(config),
        partition=None if partition is None else dict(partition),
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
