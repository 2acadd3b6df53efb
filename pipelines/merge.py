"""Combine stores built in parts: ``mirdl merge`` (array jobs) and ``mirdl prepare --update``.

``mirdl prepare --partition I/K`` lists the whole corpus, assigns every split on the whole
listing, and computes only the tracks whose id hashes to part ``I``
(:func:`mirdl.pipelines.corpus.partition_of`) into a *partial store*: a store like any other
whose manifest has a ``partition`` section (index, count, the fingerprint and listing hash of
the whole store, the corpus' file count and split warnings). :func:`merge_partials` checks
that K partials belong together and combines them (:func:`combine`) into the store one run
would have written:

- records: read from every part's shards (streamed, one record at a time), spilled to one
  file in the new store's temporary directory (:mod:`mirdl.pipelines.spill`), then written
  to shard ``sha256(key)[:8] mod n_shards`` with ``n_shards = ceil(record bytes /
  shard_bytes)`` per split, each shard sorted by key: exactly what the pipeline's writer
  does, so the shards are byte-identical to a single run's on the same machine type;
- statistics: per feature, ``count``, ``sum`` and ``sum_sq`` added in float64, and ``mean`` /
  ``std`` from the parts' ``(count, mean, std)`` by Chan's parallel update (no cancellation of
  ``sum_sq / count - mean^2``), so they equal a single run's up to float64 rounding;
- splits, label counts (counted while writing), tracks per split, errors (``errors.jsonl``
  concatenated and sorted), ``tracks.jsonl`` and the duration histogram (from the tracks'
  decoded samples) are recombined; the manifest is rebuilt from the parts' sections.

:func:`combine` also serves ``--update``: the old store is one part, with only its unchanged
tracks kept (``keep``) and its statistics recomputed from the records it copies
(``stats="records"``; it stores only totals, and subtracting removed tracks' sums would
cancel), the new tracks' partial store the other.

Everything is written into the temporary sibling of the destination and renamed into place
(:func:`mirdl.store.build.open_destination`); memory is one record per part plus the index
(key and 32-byte location per record) of one split, disk one extra copy of a split's records.
"""
from __future__ import annotations

import dataclasses
import os
import datetime
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mirdl.errors import StoreError
from mirdl.features.spec import stable_hash
from mirdl.pipelines.dead_letter import error_summary, read_error_records, write_error_records
from mirdl.pipelines.manifest import read_track_list, write_track_lines
from mirdl.pipelines.spill import SpillReader, SpillWriter
from mirdl.pipelines.stats import DurationSummaryFn, Moments, frame_moments, merge_moments, moments_summary
from mirdl.store.adapters import read_shard, record_nbytes, write_shard
from mirdl.store.build import counting_labels, open_destination, split_entry
from mirdl.store.describe import write_card_with_plots
from mirdl.store.files import is_remote, write_json_atomic
from mirdl.store.format import (ERRORS_NAME, MANIFEST_NAME, TRACKS_NAME, shard_count, shard_filename,
                                shard_for_key)
from mirdl.store.manifest import read_manifest, shard_paths

__all__ = ["Part", "merge_partials", "combine", "merge_stats"]

#: Fields every partial of one store has in common (besides ``partition.store_fingerprint``).
_SAME = ("name", "format", "compression", "shard_bytes", "config_fingerprint")


@dataclasses.dataclass
class Part:
    """One store going into :func:`combine`.

    Attributes
    ----------
    store : Path
    manifest : dict
    keep : set of str, optional
        Track ids whose records, error records and ``tracks.jsonl`` lines are taken; None: all.
    stats : {"sums", "records"}
        Statistics from the manifest's sufficient statistics, or recomputed from the kept
        records of the statistics split (when ``keep`` drops tracks).
    """

    store: Path
    manifest: dict[str, Any]
    keep: set[str] | None = None
    stats: str = "sums"

    def kept(self, track_id: str | None) -> bool:
        return self.keep is None or track_id in self.keep


def merge_stats(parts: Sequence[tuple[Moments | None, Mapping[str, Any] | None]]) -> dict[str, Any] | None:
    """One feature's statistics from those of disjoint parts, as :func:`~mirdl.pipelines.stats.moments_summary` gives them.

    Each part is ``(moments, sums)``: its :class:`~mirdl.pipelines.stats.Moments` (count, mean,
    m2) and its stored sufficient statistics (``count``, ``sum``, ``sum_sq``), either None
    for a part without records. ``count``, ``sum`` and ``sum_sq`` are added in float64;
    ``mean`` and ``std`` come from the moments merged by Chan's update.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 4.0, 8.0]])
    >>> a, b = frame_moments(x[:, :1]), frame_moments(x[:, 1:])
    >>> merged = merge_stats([(a, moments_summary(a)), (b, moments_summary(b))])
    >>> whole = moments_summary(frame_moments(x))
    >>> merged["count"], np.allclose(merged["std"], whole["std"], rtol=1e-12), merged["sum"]
    (4, True, [15.0])
    """
    moments, sums = None, None
    for part_moments, part_sums in parts:
        if part_moments is None or part_moments.count == 0:
            continue
        moments = merge_moments(moments, part_moments)
        if sums is None:
            sums = {key: np.asarray(part_sums[key], dtype=np.float64) for key in ("sum", "sum_sq")}
        else:
            for key in ("sum", "sum_sq"):
                sums[key] = sums[key] + np.asarray(part_sums[key], dtype=np.float64)
    summary = moments_summary(moments)
    if summary is not None:
        summary.update({key: value.tolist() for key, value in sums.items()})
    return summary


def _stored_moments(stats: Mapping[str, Any] | None) -> tuple[Moments | None, Mapping[str, Any] | None]:
    """A manifest's feature statistics as ``(moments, sums)`` for :func:`merge_stats`."""
    if stats is None or not stats.get("count"):
        return None, None
    count = int(stats["count"])
    std = np.asarray(stats["std"], dtype=np.float64)
    return Moments(count, np.asarray(stats["mean"], dtype=np.float64), np.square(std) * count), stats


def _check_partials(partials: Sequence[Part]) -> None:
    """Raise StoreError unless the partials are the K parts of one store, each once."""
    first = partials[0]
    for part in partials:
        if not isinstance(part.manifest.get("partition"), Mapping):
            raise StoreError(f"{part.store} is not a partial store (its manifest has no partition section; "
                             "partial stores are written by mirdl prepare --partition I/K)")
    section0 = first.manifest["partition"]
    for part in partials[1:]:
        section = part.manifest["partition"]
        for key in _SAME:
            if part.manifest.get(key) != first.manifest.get(key):
                raise StoreError(f"{part.store} and {first.store} are not parts of one store: {key} "
                                 f"{part.manifest.get(key)!r} vs {first.manifest.get(key)!r}")
        for name in first.manifest["features"]:
            other = part.manifest["features"].get(name, {}).get("fingerprint")
            if other != first.manifest["features"][name]["fingerprint"]:
                raise StoreError(f"{part.store} and {first.store} are not parts of one store: feature {name!r} "
                                 f"has spec fingerprint {other} vs {first.manifest['features'][name]['fingerprint']}")
        if section.get("listing_sha256") != section0.get("listing_sha256"):
            raise StoreError(f"{part.store} and {first.store} are not parts of one store: they listed different "
                             "corpora (corpus listing hash differs; was the corpus changed between the array tasks?)")
        if section.get("count") != section0.get("count"):
            raise StoreError(f"{part.store} and {first.store} are not parts of one store: partition "
                             f"{section.get('index')}/{section.get('count')} vs {section0.get('index')}/"
                             f"{section0.get('count')}")
        if section.get("store_fingerprint") != section0.get("store_fingerprint"):
            raise StoreError(f"{part.store} and {first.store} are not parts of one store: store fingerprint "
                             f"{section.get('store_fingerprint')} vs {section0.get('store_fingerprint')}")
    count = int(section0["count"])
    seen: dict[int, Path] = {}
    for part in partials:
        index = int(part.manifest["partition"]["index"])
        if index in seen:
            raise StoreError(f"partition {index}/{count} is given twice: {seen[index]} and {part.store}")
        seen[index] = part.store
    missing = [f"{index}/{count}" for index in range(count) if index not in seen]
    if missing:
        raise StoreError(f"partition {', '.join(missing)} missing: a merge needs all {count} partial stores "
                         f"(given {len(partials)})")


def _merged_decoders(provenances: list[dict[str, Any]], *, base: dict[str, Any]) -> dict[str, Any]:
    """``decoders`` and ``decode`` of a merged store: each part lists the decoders its own tracks
    used, so the merged store's are their union (``base``'s version where parts disagree).

    Examples
    --------
    >>> parts = [{"decoders": {"soundfile": "1"}, "decode": {"mode": "reference", "decoders_used": ["soundfile"]}},
    ...          {"decoders": {"pyav": "2"}, "decode": {"mode": "reference", "decoders_used": ["pyav"]}}]
    >>> merged = _merged_decoders(parts, base=parts[0])
    >>> merged["decoders"], merged["decode"]["decoders_used"]
    ({'pyav': '2', 'soundfile': '1'}, ['pyav', 'soundfile'])
    """
    versions: dict[str, Any] = {}
    for provenance in provenances:
        versions.update(provenance.get("decoders") or {})
    versions.update(base.get("decoders") or {})
    used = sorted({name for provenance in provenances
                   for name in (provenance.get("decode") or {}).get("decoders_used", [])})
    decode = dict(base.get("decode") or {})
    if decode or used:
        decode["decoders_used"] = used
    return {"decoders": dict(sorted(versions.items())), "decode": decode}


def merge_partials(partials: Sequence[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False,
                   param: str = "--out", log: Callable[[str], None] = print,
                   command: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Merge the K partial stores of ``mirdl prepare --partition I/K`` into ``out``.

    Parameters
    ----------
    partials : sequence of path-like
        Every partial store of one job, each once, in any order.
    out : path-like
        The store to write (replaced only if it is a mirdl store and ``overwrite``; a store
        already equal to this merge is left alone: "up to date").
    overwrite : bool
    param : str
        How messages name ``out``.
    log : callable
        Where progress lines go.
    command : sequence of str, optional
        The command line, for ``provenance.command``.

    Returns
    -------
    dict or None
        The manifest written, None when ``out`` was up to date.

    Raises
    ------
    StoreError
        A partial cannot be read, is not a partial store, or the partials do not belong
        together (another config, corpus listing or K; a part missing or given twice).
    """
    if not partials:
        raise StoreError("give at least one partial store")
    for store in (*partials, out):
        if is_remote(store, param="partial"):
            raise StoreError(f"{store}: mirdl merge reads and writes stores on a local or shared filesystem; copy "
                             "the partials there (or publish the merged store afterwards)")
    parts = [Part(Path(store), read_manifest(store)) for store in partials]
    _check_partials(parts)
    parts.sort(key=lambda part: int(part.manifest["partition"]["index"]))
    section = parts[0].manifest["partition"]
    fingerprint = section["store_fingerprint"]
    if len({stable_hash(part.manifest["provenance"].get("numpy", {}).get("dispatch_available")) for part in parts}) > 1:
        log("warning: the partials were computed on CPUs with other SIMD targets (provenance.numpy): their "
            "features may differ in the last bits from a single run's")
    with open_destination(out, param=param, overwrite=overwrite, fingerprint=fingerprint,
                          inputs_sha256=section.get("inputs_sha256")) as destination:
        for note in destination.notes():
            log(note)
        if destination.status == "up to date":
            log(f"{out}: up to date (fingerprint {fingerprint}); nothing to do")
            return None
        with destination.write() as tmp:
            manifest = combine(parts, tmp, base=parts[0].manifest, fingerprint=fingerprint,
                               version=int(section.get("version", 1)), command=command, log=log)
    return manifest


def combine(parts: Sequence[Part], tmp: Path, *, base: Mapping[str, Any], fingerprint: str, version: int,
            command: Sequence[str] | None = None, log: Callable[[str], None] = print,
            before_manifest: Callable[[], None] | None = None) -> dict[str, Any]:
    """Write the store of ``parts`` into the temporary store directory ``tmp``; return its manifest.

    ``base`` is the manifest whose sections (config, task, features, ``partition``) the new
    one starts from; its ``partition`` section gives what the parts say of the whole corpus.
    ``before_manifest`` is called just before ``manifest.json`` is written (last).
    """
    section = base["partition"]
    name, store_format, compression = base["name"], base["format"], base["compression"]
    shard_bytes, task = int(base["shard_bytes"]), base["task"]
    feature_entries = base["features"]
    feature_names = list(feature_entries)
    stats_split = next((entry["stats"]["split"] for entry in feature_entries.values() if entry.get("stats")),
                       "train" if "train" in base["splits"] else sorted(base["splits"])[0])
    work = tmp / "_merge"  # spill files of the records on their way to their new shard
    splits: dict[str, Any] = {}
    recomputed: dict[int, dict[str, Moments | None]] = {i: {} for i, part in enumerate(parts) if part.stats == "records"}
    for split in sorted(set().union(*(part.manifest["splits"] for part in parts))):
        spill_dir = work / split
        spill_dir.mkdir(parents=True)
        index: list[tuple[str, bytes]] = []
        total_bytes, track_ids = 0, set()
        with SpillWriter(spill_dir) as spill:
            for i, part in enumerate(parts):
                if split not in part.manifest["splits"]:
                    continue
                for path in shard_paths(part.store, part.manifest, split):
                    for record in read_shard(path, manifest=part.manifest):
                        if not part.kept(record["track_id"]):
                            continue
                        if i in recomputed and split == stats_split:
                            for feature in feature_names:
                                recomputed[i][feature] = merge_moments(recomputed[i].get(feature),
                                                                       frame_moments(record[feature]))
                        index.append((record["key"], spill.append(record)))
                        total_bytes += record_nbytes(record, feature_names=feature_names)
                        track_ids.add(record["track_id"])
        index.sort()
        for (key, _), (next_key, _) in zip(index, index[1:]):
            if key == next_key:
                raise StoreError(f"record {key!r} of split {split!r} is in two of the parts: they overlap")
        n_shards = shard_count(total_bytes, shard_bytes=shard_bytes) if index else 0
        by_shard: list[list[bytes]] = [[] for _ in range(n_shards)]
        for key, location in index:  # in key order, so each shard's list is too
            by_shard[shard_for_key(key, n_shards=n_shards)].append(location)
        counts = None if task["type"] == "regression" else np.zeros(task["n_outputs"], dtype=np.int64)
        shards = []
        with SpillReader(spill_dir) as reader:
            for shard_index, locations in enumerate(by_shard):
                filename = shard_filename(name=name, split=split, store_format=store_format, index=shard_index,
                                          n_shards=n_shards)
                records = (reader.read(location) for location in locations)
                info = write_shard(counting_labels(records, counts, task), path=tmp / filename,
                                   store_format=store_format, features=feature_entries, task=task,
                                   compression=compression,
                                   row_group_records=int(section.get("row_group_records", 256)))
                shards.append(info.to_dict())
        shutil.rmtree(spill_dir)
        splits[split] = split_entry(shards, tracks=len(track_ids), counts=None if counts is None else counts.tolist())
        log(f"  {split}: {len(index)} records of {len(track_ids)} tracks in {n_shards} shard(s)")
    shutil.rmtree(work, ignore_errors=True)

    features = {}
    for feature, entry in feature_entries.items():
        inputs = []
        for i, part in enumerate(parts):
            if i in recomputed:
                moments = recomputed[i].get(feature)
                inputs.append((moments, moments_summary(moments)))
            else:
                inputs.append(_stored_moments(part.manifest["features"][feature].get("stats")))
        stats = merge_stats(inputs)
        features[feature] = {**entry, "stats": None if stats is None else {"split": stats_split, **stats}}

    # A part that keeps only some tracks (the old store of an update) gives their decode, augment,
    # features and segment records; listing records come from the part that listed the corpus anew.
    errors = [error for part in parts for error in read_error_records(part.store / ERRORS_NAME)
              if part.kept(error.track_id) and (part.keep is None or error.stage != "list")]
    errors_summary = error_summary(write_error_records(tmp / ERRORS_NAME, errors))
    track_lines = [line for part in parts for line in read_track_list(part.store) if part.kept(line["track_id"])]
    write_track_lines(tmp / TRACKS_NAME, track_lines)
    sample_rate = int(next(iter(feature_entries.values()))["spec"]["sample_rate"])
    durations = DurationSummaryFn(sample_rate)
    accumulator = durations.create_accumulator()
    for line in track_lines:
        accumulator = durations.add_input(accumulator, line["samples"])
    corpus_summary = durations.extract_output(accumulator)

    manifest = {key: value for key, value in base.items()}
    provenance = {**base["provenance"], **_merged_decoders([part.manifest["provenance"] for part in parts],
                                                          base=base["provenance"])}
    if command is not None:
        provenance["command"] = list(command)
    manifest.update(
        version=int(version), fingerprint=fingerprint,
        created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(), features=features, splits=splits, partition=None,
        provenance=provenance,
        corpus={**base["corpus"], "listing_sha256": section["listing_sha256"], "inputs_sha256": section["inputs_sha256"],
                "files": int(section["files"]), "tracks": sum(entry["tracks"] for entry in splits.values()),
                "failed": int(errors_summary["failed_files"]), "audio_seconds": corpus_summary["audio_seconds"],
                "decoded_tracks": corpus_summary["tracks"], "duration_histogram": corpus_summary["duration_histogram"],
                "split_warnings": list(section["split_warnings"])},
        errors={"file": ERRORS_NAME, **errors_summary},
    )
    write_card_with_plots(tmp, manifest, dataset=section.get("dataset") or {}, log=log)
    if before_manifest is not None:
        before_manifest()
    write_json_atomic(tmp / MANIFEST_NAME, manifest)  # last: a store without it is incomplete
    return manifest
