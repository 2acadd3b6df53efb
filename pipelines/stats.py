"""Statistics the precompute job gathers on its way: normalisation moments and track durations.

:class:`FeatureStatsFn` is a :class:`apache_beam.CombineFn` giving, for every feature, the
mean and standard deviation of each frequency bin (the feature's shape without its time
axis) over all frames of the records it sees; the job feeds it the training split, so a
reader normalises with statistics that never saw the test data, and no second pass over
the store is needed. Accumulators are ``(count, mean, M2)`` in float64, merged with Chan
et al.'s parallel update, so the result does not depend on how the runner bundles records
beyond float64 rounding (about 1e-15 relative).

:class:`DurationSummaryFn` counts decoded tracks, their samples and a histogram of their
durations (fixed bin edges, integer counts: exactly reproducible).

:class:`JobSummaryFn` is the job's one global combine: the two above, the tracks with records
per split, the decoded tracks' list and the error records, from one PCollection of small
elements (:class:`RecordSummary`, decoded-track dicts, :class:`~mirdl.store.dead_letter.ErrorRecord`).
On Beam's local engine each global combine costs a stage of its own and another for its
default; one combine instead of five saves most of the job's small stages (BENCHMARKS.md
"Fixed costs, round 3").

Examples
--------
>>> x = np.arange(6, dtype=np.float32).reshape(1, 6)
>>> a, b = frame_moments(x[:, :2]), frame_moments(x[:, 2:])
>>> merged = merge_moments(a, b)
>>> merged.count, merged.mean.round(6).tolist(), (merged.m2 / merged.count).round(6).tolist()
(6, [2.5], [2.916667])
"""
from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from mirdl.store.dead_letter import ErrorRecord

__all__ = [
    "Moments",
    "frame_moments",
    "merge_moments",
    "moments_summary",
    "from_sums",
    "FeatureStatsFn",
    "DURATION_BIN_EDGES",
    "DurationSummaryFn",
    "RecordSummary",
    "record_summary",
    "JobSummaryFn",
]

#: Upper edges (seconds) of the track-duration histogram; the last bin is open-ended.
DURATION_BIN_EDGES = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Moments(NamedTuple):
    """Running moments of each bin: frame count, mean and sum of squared deviations (float64)."""

    count: int
    mean: np.ndarray
    m2: np.ndarray


def frame_moments(x: np.ndarray) -> Moments:
    """Moments over the last (time) axis of one feature array ``(..., n_frames)``."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1)
    return Moments(int(x.shape[-1]), mean, np.square(x - mean[..., np.newaxis]).sum(axis=-1))


def merge_moments(a: Moments | None, b: Moments | None) -> Moments | None:
    """Chan et al. (1979) parallel combination of two sets of moments (either may be None)."""
    if a is None or a.count == 0:
        return b
    if b is None or b.count == 0:
        return a
    count = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / count)
    m2 = a.m2 + b.m2 + np.square(delta) * (a.count * b.count / count)
    return Moments(count, mean, m2)


def moments_summary(moments: Moments | None) -> dict[str, Any] | None:
    """``{"mean", "std", "frames", "count", "sum", "sum_sq"}`` or None if nothing was seen.

    ``mean`` and ``std`` (population, ddof=0) are what readers standardise with; ``count``
    (= ``frames``), ``sum`` and ``sum_sq`` (float64 per bin) are the sufficient statistics,
    so that statistics of stores built in parts can be merged exactly (:func:`from_sums`).
    """
    if moments is None or moments.count == 0:
        return None
    total = moments.mean * moments.count
    sum_sq = moments.m2 + np.square(moments.mean) * moments.count
    return {"mean": moments.mean.tolist(), "std": np.sqrt(moments.m2 / moments.count).tolist(),
            "frames": int(moments.count), "count": int(moments.count), "sum": total.tolist(),
            "sum_sq": sum_sq.tolist()}


def from_sums(summary: Mapping[str, Any]) -> Moments:
    """The :class:`Moments` behind a :func:`moments_summary` (from its sufficient statistics).

    Examples
    --------
    >>> m = frame_moments(np.array([[1.0, 2.0, 4.0]]))
    >>> back = from_sums(moments_summary(m))
    >>> back.count, np.allclose(back.mean, m.mean), np.allclose(back.m2, m.m2)
    (3, True, True)
    """
    count = int(summary["count"])
    total = np.asarray(summary["sum"], dtype=np.float64)
    mean = total / count
    m2 = np.maximum(np.asarray(summary["sum_sq"], dtype=np.float64) - total * mean, 0.0)
    return Moments(count, mean, m2)


class FeatureStatsFn(beam.CombineFn):
    """Per-bin mean and std of each feature over the frames of every record combined.

    Parameters
    ----------
    feature_names : iterable of str
        Record keys of the features (arrays of shape ``(..., n_frames)``).

    Output: ``{name: moments_summary or None}`` (:func:`moments_summary`); the lists have
    the feature's shape without the time axis; None when no record was seen.
    """

    def __init__(self, feature_names: Iterable[str]) -> None:
        self.feature_names = tuple(feature_names)

    def create_accumulator(self) -> dict[str, Moments]:
        return {}

    def add_input(self, accumulator: dict[str, Moments], record: Mapping[str, Any]) -> dict[str, Moments]:
        for name in self.feature_names:
            accumulator[name] = merge_moments(accumulator.get(name), frame_moments(record[name]))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[dict[str, Moments]]) -> dict[str, Moments]:
        merged: dict[str, Moments] = {}
        for accumulator in accumulators:
            for name, moments in accumulator.items():
                merged[name] = merge_moments(merged.get(name), moments)
        return merged

    def extract_output(self, accumulator: dict[str, Moments]) -> dict[str, Any]:
        return {name: moments_summary(accumulator.get(name)) for name in self.feature_names}


class DurationSummaryFn(beam.CombineFn):
    """Tracks, samples and a duration histogram of decoded tracks; inputs are sample counts.

    Parameters
    ----------
    sample_rate : int
        Rate of the decoded audio.

    Output: ``{"tracks", "audio_seconds", "duration_histogram": {"upper_edges_seconds",
    "counts"}}``: ``counts[0]`` is the number of tracks shorter than ``edges[0]`` seconds,
    ``counts[i]`` of those in ``[edges[i-1], edges[i])``, and the one extra last count of
    those of at least ``edges[-1]`` seconds.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)

    def create_accumulator(self) -> tuple[int, int, list[int]]:
        return 0, 0, [0] * (len(DURATION_BIN_EDGES) + 1)

    def add_input(self, accumulator, n_samples: int):
        tracks, samples, counts = accumulator
        counts[bisect.bisect_right(DURATION_BIN_EDGES, n_samples / self.sample_rate)] += 1
        return tracks + 1, samples + int(n_samples), counts

    def merge_accumulators(self, accumulators):
        tracks, samples, counts = self.create_accumulator()
        for other_tracks, other_samples, other_counts in accumulators:
            tracks, samples = tracks + other_tracks, samples + other_samples
            counts = [a + b for a, b in zip(counts, other_counts)]
        return tracks, samples, counts

    def extract_output(self, accumulator) -> dict[str, Any]:
        tracks, samples, counts = accumulator
        return {
            "tracks": tracks,
            "audio_seconds": samples / self.sample_rate,
            "duration_histogram": {"upper_edges_seconds": list(DURATION_BIN_EDGES), "counts": counts},
        }


class RecordSummary(NamedTuple):
    """What the job's summary keeps of one record: its split, its track, and for a record of the
    statistics split the frame moments of each feature (None otherwise)."""

    split: str
    track_id: str
    moments: dict[str, Moments] | None


def record_summary(record: Mapping[str, Any], *, feature_names: Iterable[str], stats_split: str) -> RecordSummary:
    """The :class:`RecordSummary` of a record (a few KB, where the record holds its features).

    Examples
    --------
    >>> summary = record_summary({"split": "train", "track_id": "t", "x": np.ones((2, 3))},
    ...                          feature_names=["x"], stats_split="train")
    >>> summary.split, summary.moments["x"].count, summary.moments["x"].mean.tolist()
    ('train', 3, [1.0, 1.0])
    >>> record_summary({"split": "test", "track_id": "t", "x": np.ones((2, 3))},
    ...                feature_names=["x"], stats_split="train").moments is None
    True
    """
    moments = None
    if record["split"] == stats_split:
        moments = {name: frame_moments(record[name]) for name in feature_names}
    return RecordSummary(record["split"], record["track_id"], moments)


class JobSummaryFn(beam.CombineFn):
    """Everything the precompute job summarises over the whole corpus, in one combine.

    Inputs, told apart by type: :class:`RecordSummary` (one per record), a decoded track's dict
    (:meth:`mirdl.pipelines.transforms.Decoded.summary`: ``track_id``, ``samples``, ...) and
    :class:`~mirdl.store.dead_letter.ErrorRecord`. ``listing_errors`` (the driver's, known before
    the pipeline runs) are added to the errors of the output.

    Output: ``{"stats": FeatureStatsFn's output over the statistics split, "tracks_per_split":
    {split: tracks with records}, "corpus": DurationSummaryFn's output, "decoded": [decoded
    track dicts], "errors": [ErrorRecord]}``. The statistics are the same numbers, merged in the
    same order, as :class:`FeatureStatsFn` over the records of the statistics split.

    Examples
    --------
    >>> fn = JobSummaryFn(feature_names=["x"], sample_rate=10)
    >>> accumulator = fn.create_accumulator()
    >>> for element in (record_summary({"split": "train", "track_id": "t", "x": np.zeros((1, 4))},
    ...                                feature_names=["x"], stats_split="train"),
    ...                 {"track_id": "t", "samples": 25, "sha256": None, "annotation_sha256": None}):
    ...     accumulator = fn.add_input(accumulator, element)
    >>> out = fn.extract_output(fn.merge_accumulators([accumulator, fn.create_accumulator()]))
    >>> out["tracks_per_split"], out["corpus"]["audio_seconds"], out["stats"]["x"]["frames"]
    ({'train': 1}, 2.5, 4)
    """

    def __init__(self, *, feature_names: Iterable[str], sample_rate: int,
                 listing_errors: Iterable[ErrorRecord] = ()) -> None:
        self.stats = FeatureStatsFn(feature_names)
        self.durations = DurationSummaryFn(sample_rate)
        self.listing_errors = tuple(listing_errors)

    def create_accumulator(self) -> dict[str, Any]:
        return {"stats": self.stats.create_accumulator(), "tracks": set(),
                "durations": self.durations.create_accumulator(), "decoded": [], "errors": []}

    def add_input(self, accumulator: dict[str, Any], element: Any) -> dict[str, Any]:
        if isinstance(element, RecordSummary):
            accumulator["tracks"].add((element.split, element.track_id))
            if element.moments is not None:
                stats = accumulator["stats"]
                for name in self.stats.feature_names:  # FeatureStatsFn.add_input on precomputed moments
                    stats[name] = merge_moments(stats.get(name), element.moments[name])
        elif isinstance(element, ErrorRecord):
            accumulator["errors"].append(element)
        else:  # a decoded track
            accumulator["decoded"].append(element)
            accumulator["durations"] = self.durations.add_input(accumulator["durations"], element["samples"])
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[dict[str, Any]]) -> dict[str, Any]:
        accumulators = list(accumulators)
        merged = self.create_accumulator()
        merged["stats"] = self.stats.merge_accumulators(a["stats"] for a in accumulators)
        merged["durations"] = self.durations.merge_accumulators(a["durations"] for a in accumulators)
        for accumulator in accumulators:
            merged["tracks"] |= accumulator["tracks"]
            merged["decoded"] += accumulator["decoded"]
            merged["errors"] += accumulator["errors"]
        return merged

    def extract_output(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return {"stats": self.stats.extract_output(accumulator["stats"]),
                "tracks_per_split": dict(Counter(split for split, _ in accumulator["tracks"])),
                "corpus": self.durations.extract_output(accumulator["durations"]),
                "decoded": list(accumulator["decoded"]),
                "errors": [*self.listing_errors, *accumulator["errors"]]}
