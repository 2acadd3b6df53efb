"""The steps of the precompute job: thin Beam DoFns over pure functions.

The work is done by plain functions that a test calls without Beam:

- :class:`RecordLayout` fixes, once per job, how features are cut and labelled: segment
  frames per feature, padding columns, record shapes, label shape and dtype.
- :func:`clip_label`, :func:`frame_labels` make a record's ``label``;
  :func:`segment_track` cuts all features of one track variant on one time grid;
  :func:`make_records` turns them into the record dicts the writers take.

Each DoFn (``Annotations`` -> ``Decode`` -> ``Augment`` -> ``Features`` -> ``Segment``)
calls one of them (or :mod:`mirdl.features`) and sends any failure of one file to the tagged
``errors`` output as an :class:`~mirdl.pipelines.dead_letter.ErrorRecord` with its stage, never
failing the bundle. ``SpillRecords`` and ``WriteShard`` move the records to their shards
through spill files (:mod:`mirdl.pipelines.spill`), so that only a small index entry per record
is shuffled; their failures (a full disk) fail the job. Counters (namespace ``mirdl``)
count files read and failed, audio seconds, variants, segments, spilled bytes, record
bytes and shards.

Time grid of a record
---------------------
The first feature of the config sets the segment grid: ``patch_frames`` and ``hop_frames``
are the segment's seconds in its frames (:meth:`mirdl.pipelines.config.SegmentConfig.frames`) and
its segments are those of :func:`mirdl.features.segment.patches` (or ``frame_windows``). Every
other feature covers the same time span: ``patch_frames * hop0 / hop`` of its own frames
and starts at ``start * hop0 / hop``, both rounded to the nearest frame (halves up), padded
the same way (with ``pad: drop``, a feature whose rounded last segment runs a frame past its
end is padded with silence). ``start_frame`` is in frames of the first feature.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import pickle
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from mirdl.features import audio, augment, labels, representations, segment
from mirdl.errors import ConfigError, MirdlError
from mirdl.features.labels import Annotations
from mirdl.features.spec import FeatureSpec
from mirdl.store.format import (FRAME_TASKS, LABEL_COLUMN, LABEL_LAYOUT, record_key, shard_count, shard_filename,
                                shard_for_key)
from mirdl.pipelines.config import PrepareConfig
from mirdl.features.annotations import load_annotations
from mirdl.pipelines.corpus import Track
from mirdl.pipelines.dead_letter import ErrorRecord
from mirdl.pipelines.spill import IndexEntry, SpillReader, SpillWriter
from mirdl.store.adapters import (check_key_order, checked_record, record_nbytes, tfrecord_frame, write_shard,
                                  write_tfrecord_frames)
from mirdl.store.build import counting_labels
from mirdl.store.files import sha256_file

__all__ = [
    "ERRORS",
    "METRICS_NAMESPACE",
    "RecordLayout",
    "Decoded",
    "Variant",
    "TrackFeatures",
    "track_to_json",
    "track_from_json",
    "clip_label",
    "frame_labels",
    "segment_track",
    "make_records",
    "pick_background",
    "LoadAnnotations",
    "DecodeAudio",
    "AugmentVariants",
    "ComputeFeatures",
    "SegmentRecords",
    "SpillRecords",
    "WriteShard",
    "assign_shard",
    "ComputeRecords",
    "WriteShards",
    "ArraysCoder",
]

#: Tag of the dead-letter output of every DoFn.
ERRORS = "errors"
METRICS_NAMESPACE = "mirdl"
# Name of the bin axis of each representation (the manifest's "axes").
_BIN_AXES = {"stft": "frequency", "mel": "mel", "logmel": "mel", "cqt": "cqt_bin", "chroma_stft": "chroma",
             "chroma_cqt": "chroma", "mfcc": "mfcc", "waveform": "bin"}
_log = logging.getLogger(__name__)


def _hop_length(spec: FeatureSpec) -> int:
    """Samples between frames of ``spec`` (1 for the waveform)."""
    return int(spec.param_dict.get("hop_length", 1))


def _rescale(frames: int | np.ndarray, *, hop_from: int, hop_to: int) -> Any:
    """Frames on a grid of hop ``hop_from`` as the nearest frames (halves up) on a grid of hop ``hop_to``."""
    return (2 * np.asarray(frames, dtype=np.int64) * hop_from + hop_to) // (2 * hop_to)


# ------------------------------------------------------------------------------------------ layout
@dataclasses.dataclass(frozen=True)
class RecordLayout:
    """How one job cuts and labels records; built once by :meth:`build` in the driver.

    Attributes
    ----------
    specs : tuple of FeatureSpec
        The first one sets the time grid.
    patch_frames : dict
        Feature name -> frames per segment.
    hop_frames : int
        Frames of the first feature between segment starts.
    pad : str
    onset_widen : int
    pad_columns : dict
        Feature name -> the feature of one silent frame (:func:`mirdl.features.representations.silence_column`).
    task : dict
        The manifest's ``task``: ``type``, ``vocabulary``, ``n_outputs``, ``label_shape``, ``label_dtype``.
    features : dict
        The manifest's ``features`` without stats: name -> ``spec``, ``fingerprint``,
        ``shape``, ``dtype``, ``axes``; in config order.
    """

    specs: tuple[FeatureSpec, ...]
    patch_frames: dict[str, int]
    hop_frames: int
    pad: str
    onset_widen: int
    pad_columns: dict[str, np.ndarray]
    task: dict[str, Any]
    features: dict[str, dict[str, Any]]

    @classmethod
    def build(cls, config: PrepareConfig, task: Mapping[str, Any]) -> RecordLayout:
        """The layout of ``config`` for ``task`` (:func:`mirdl.pipelines.corpus.task_for`'s dict)."""
        specs = config.features
        first = specs[0]
        patch0 = config.segment.frames(config.segment.seconds, first)
        patch_frames = {first.name: patch0}
        for spec in specs[1:]:
            patch_frames[spec.name] = max(1, int(_rescale(patch0, hop_from=_hop_length(first),
                                                          hop_to=_hop_length(spec))))
        pad_columns = {spec.name: representations.silence_column(spec) for spec in specs}
        features = {}
        for spec in specs:
            bins = pad_columns[spec.name].shape[:-1]
            features[spec.name] = {
                "spec": spec.to_dict(),
                "fingerprint": spec.fingerprint(),
                "shape": [*bins, patch_frames[spec.name]],
                "dtype": spec.dtype,
                "axes": (["channel"] if spec.channels > 1 else []) + [_BIN_AXES[spec.representation], "time"],
            }
        task_type = task["type"]
        if task_type in FRAME_TASKS:
            label_shape = ([task["n_outputs"]] if task_type == "frame_notes" else []) + [patch0]
        else:
            label_shape = [] if task_type == "single_label" else [task["n_outputs"]]
        full_task = {**task, "label_shape": label_shape, "label_dtype": LABEL_LAYOUT[task_type][0]}
        return cls(specs=tuple(specs), patch_frames=patch_frames,
                   hop_frames=config.segment.frames(config.segment.hop_seconds, first),
                   pad=config.segment.pad, onset_widen=config.segment.onset_widen, pad_columns=pad_columns,
                   task=full_task, features=features)

    def segment_frames(self) -> dict[str, Any]:
        """The manifest's frame view of the segment: grid feature, hop and patch frames per feature."""
        return {"grid_feature": self.specs[0].name, "hop_frames": self.hop_frames,
                "patch_frames": dict(self.patch_frames)}

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)

    @property
    def frame_task(self) -> bool:
        return self.task["type"] in FRAME_TASKS

    @property
    def label_pad(self) -> int:
        """Label of padded frames: no onset / note, or the no-chord class."""
        return self.task["vocabulary"].index(labels.NO_CHORD) if self.task["type"] == "frame_chords" else 0


# ------------------------------------------------------------------------------------------ elements
@dataclasses.dataclass(frozen=True)
class Decoded:
    """A track's audio at the specs' rate and channels, with its annotations (frame tasks)."""

    track: Track
    audio: np.ndarray
    annotations: Annotations | None = None
    sha256: str | None = None
    annotation_sha256: str | None = None

    def summary(self) -> dict[str, Any]:
        """What ``tracks.jsonl`` keeps of a decoded track: id, samples decoded, sha256 of its audio
        (and annotation) file's bytes (:mod:`mirdl.store.format`, ``TRACKS_NAME``)."""
        return {"track_id": self.track.track_id, "samples": int(self.audio.shape[-1]), "sha256": self.sha256,
                "annotation_sha256": self.annotation_sha256}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One augmentation variant of a track (variant 0: the clean audio)."""

    track: Track
    variant: int
    audio: np.ndarray
    annotations: Annotations | None = None


@dataclasses.dataclass(frozen=True)
class TrackFeatures:
    """Every feature of one variant of a track, time last."""

    track: Track
    variant: int
    features: dict[str, np.ndarray]
    annotations: Annotations | None = None


class ArraysCoder(beam.coders.Coder):
    """Pickle coder of the elements that carry a whole track's audio or features
    (:class:`Decoded`, :class:`Variant`, :class:`TrackFeatures`), whose size estimate is the
    arrays' bytes.

    Beam's sampled byte counters estimate an element's size by encoding it; with the fallback
    (pickle) coder that copied every sampled decoded track and its features (about half the
    tracks of a 60-file job, all of a small one) only to measure them. Elements are still
    pickled where a runner moves them between processes.
    """

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: Any) -> int:
        arrays = [getattr(value, "audio", None), *getattr(value, "features", {}).values()]
        return 256 + sum(int(array.nbytes) for array in arrays if isinstance(array, np.ndarray))

    def to_type_hint(self) -> Any:
        return Any


for _element_type in (Decoded, Variant, TrackFeatures):
    beam.coders.registry.register_coder(_element_type, ArraysCoder)


# ------------------------------------------------------------------------------------------ pure steps
def track_to_json(track: Track) -> str:
    """One line of the job's listing file; :func:`track_from_json` inverts it."""
    return json.dumps(dataclasses.asdict(track), sort_keys=True, ensure_ascii=False)


def track_from_json(line: str) -> Track:
    """A :class:`~mirdl.pipelines.corpus.Track` from a line written by :func:`track_to_json`."""
    data = json.loads(line)
    return Track(**{**data, "tags": tuple(data["tags"]), "targets": tuple(data["targets"])})


def clip_label(track: Track, task: Mapping[str, Any]) -> np.ndarray:
    """The label of every segment of a track: class index, multi-hot tags or targets.

    Examples
    --------
    >>> task = {"type": "multi_label", "vocabulary": ["a", "b", "c"]}
    >>> clip_label(Track("t", "/t.wav", tags=("c", "a")), task)
    array([1., 0., 1.], dtype=float32)
    """
    task_type, vocabulary = task["type"], task["vocabulary"]
    if task_type == "single_label":
        if track.label not in vocabulary:
            raise ConfigError(f"label {track.label!r} is not in the task vocabulary")
        return np.asarray(vocabulary.index(track.label), dtype=np.int64)
    if task_type == "multi_label":
        return np.isin(np.asarray(vocabulary, dtype=object), list(track.tags)).astype(np.float32)
    if task_type == "regression":
        if len(track.targets) != len(vocabulary):
            raise ConfigError(f"track has {len(track.targets)} targets, the task {len(vocabulary)}")
        return np.asarray(track.targets, dtype=np.float32)
    raise ConfigError(f"task type {task_type!r} has frame labels, not clip labels")


def frame_labels(annotations: Annotations | None, task: Mapping[str, Any], *, n_frames: int, spec: FeatureSpec,
                 onset_widen: int = 0) -> np.ndarray:
    """Frame targets on the grid of ``spec`` (``n_frames`` frames) from a track's annotations.

    ``frame_onset``: (n_frames,) float32; ``frame_notes``: (n_outputs, n_frames) float32 piano
    roll from MIDI 21; ``frame_chords``: (n_frames,) int64 index in the vocabulary.
    """
    if annotations is None:
        raise ConfigError("frame labels need the track's annotations")
    grid = {"n_frames": n_frames, "sr": spec.sample_rate, "hop_length": _hop_length(spec)}
    task_type = task["type"]
    if task_type == "frame_onset":
        return labels.onset_frames(annotations.onsets, widen=onset_widen, **grid)
    if task_type == "frame_notes":
        return labels.note_roll(annotations.notes, n_pitches=task["n_outputs"], **grid)
    if task_type == "frame_chords":
        return labels.chord_frames(annotations.chords, vocabulary=tuple(task["vocabulary"]), **grid).astype(np.int64)
    raise ConfigError(f"task type {task_type!r} has clip labels, not frame labels")


def _cut_at(x: np.ndarray, starts: np.ndarray, *, patch_frames: int, pad: str, pad_column: np.ndarray) -> np.ndarray:
    """Segments ``x[..., s:s + patch_frames]`` for each start, padded past the end as ``pad`` says."""
    if len(starts) == 0:
        return np.empty((0, *x.shape[:-1], patch_frames), dtype=x.dtype)
    needed = int(starts[-1]) + patch_frames
    # One patch of exactly `needed` frames: x cut or padded by mirdl.features.segment's own rule.
    extended = segment.patches(x[..., :needed], patch_frames=needed, hop_frames=needed,
                               pad="silence" if pad == "drop" else pad, pad_column=pad_column)[0][0]
    windows = np.lib.stride_tricks.sliding_window_view(extended, patch_frames, axis=-1)[..., starts, :]
    return np.ascontiguousarray(np.moveaxis(windows, -2, 0))


def segment_track(features: Mapping[str, np.ndarray], *, layout: RecordLayout,
                  frame_targets: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray]:
    """Cut every feature of one track variant into segments on the first feature's grid.

    Parameters
    ----------
    features : mapping
        Feature name -> array ``(..., n_frames)`` (each on its own frame grid).
    layout : RecordLayout
    frame_targets : np.ndarray [shape=(..., n_frames of the first feature)], optional
        Frame labels, cut with the first feature (:func:`mirdl.features.segment.frame_windows`).

    Returns
    -------
    segments : dict
        Name -> ``(n_segments, *layout.features[name]["shape"])``.
    window_targets : np.ndarray or None
        ``(n_segments, *label_shape)`` when ``frame_targets`` is given.
    starts : np.ndarray [shape=(n_segments,)], int64
        First frame of each segment, in frames of the first feature.
    """
    first = layout.specs[0]
    cut = {"hop_frames": layout.hop_frames, "pad": layout.pad, "pad_column": layout.pad_columns[first.name]}
    window_targets = None
    if frame_targets is None:
        windows, starts = segment.patches(features[first.name], patch_frames=layout.patch_frames[first.name], **cut)
    else:
        windows, window_targets, starts = segment.frame_windows(
            features[first.name], frame_targets, window_frames=layout.patch_frames[first.name],
            label_pad=layout.label_pad, **cut)
    segments = {first.name: windows}
    for spec in layout.specs[1:]:
        spec_starts = _rescale(starts, hop_from=_hop_length(first), hop_to=_hop_length(spec))
        segments[spec.name] = _cut_at(features[spec.name], spec_starts, patch_frames=layout.patch_frames[spec.name],
                                      pad=layout.pad, pad_column=layout.pad_columns[spec.name])
    return segments, window_targets, starts


def make_records(item: TrackFeatures, *, layout: RecordLayout) -> list[dict[str, Any]]:
    """The records of one track variant: one per segment, with key, split, features and label.

    Each record has the columns of ``docs/store-format.md`` plus ``split`` (used to route
    it; not written).
    """
    track, first = item.track, layout.specs[0]
    targets = None
    if layout.frame_task:
        targets = frame_labels(item.annotations, layout.task, n_frames=item.features[first.name].shape[-1],
                               spec=first, onset_widen=layout.onset_widen)
    segments, window_targets, starts = segment_track(item.features, layout=layout, frame_targets=targets)
    clip = None if layout.frame_task else clip_label(track, layout.task)
    records = []
    for index, start in enumerate(starts.tolist()):
        record = {
            "key": record_key(track_id=track.track_id, variant=item.variant, segment=index),
            "track_id": track.track_id,
            "variant": item.variant,
            "segment": index,
            "start_frame": start,
            "split": track.split,
        }
        record.update({name: segments[name][index] for name in layout.feature_names})
        record[LABEL_COLUMN] = clip if window_targets is None else window_targets[index]
        records.append(record)
    return records


def pick_background(files: list[str], *, seed: int, track_id: str, variant: int) -> str:
    """The background recording of one variant: drawn from its own generator (seed, track, variant)."""
    rng = augment.variant_rng(seed=seed, track_id=f"background:{track_id}", variant=variant)
    return files[int(rng.integers(len(files)))]


# ------------------------------------------------------------------------------------------ DoFns
def _count(name: str, value: int = 1) -> None:
    Metrics.counter(METRICS_NAMESPACE, name).inc(value)


def _dead_letter(track: Track, *, stage: str, exc: Exception, path: str | None = None,
                 context: str | None = None) -> beam.pvalue.TaggedOutput:
    """The ``errors`` output for ``exc`` (reason prefixed by ``context``, e.g. the variant).

    Exception types that are not a :class:`~mirdl.errors.MirdlError` (a bug, or a library
    failing on odd data) are dead letters too, so one file never stops a long job, but they
    are also logged with their traceback and counted as ``errors_unexpected``.
    """
    if not isinstance(exc, MirdlError):
        _log.warning("unexpected %s at stage %s for %s", type(exc).__name__, stage, track.path, exc_info=exc)
        _count("errors_unexpected")
    _count(f"errors_{stage}")
    record = ErrorRecord.from_exc(path=path or track.path, track_id=track.track_id, stage=stage, exc=exc)
    if context:
        record = dataclasses.replace(record, reason=f"{context}: {record.reason}")
    return beam.pvalue.TaggedOutput(ERRORS, record)


def _report_progress(progress_path: str | None, seconds: float) -> None:
    """Append one line (a file done) to the progress file the driver's bar follows; best effort."""
    if progress_path is None:
        return
    try:
        # One short O_APPEND write per line: lines from several processes do not interleave.
        fd = os.open(progress_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{seconds:.3f}\n".encode())
        finally:
            os.close(fd)
    except OSError:
        pass


class LoadAnnotations(beam.DoFn):
    """``(track, None)`` -> ``(track, Annotations)``: the track's annotation file (frame tasks)."""

    def __init__(self, *, kind: str, progress_path: str | None = None) -> None:
        self.kind, self.progress_path = kind, progress_path

    def process(self, element: tuple[Track, None]) -> Iterator[Any]:
        track = element[0]
        try:
            annotations = load_annotations(track.annotation_path, kind=self.kind)
        except Exception as err:  # noqa: BLE001 - every failure is one file's dead letter
            _report_progress(self.progress_path, 0.0)
            yield _dead_letter(track, stage="annotations", exc=err, path=track.annotation_path)
            return
        yield track, annotations


def _file_sha256(path: str | None) -> str | None:
    try:
        return None if path is None else sha256_file(path)
    except OSError:
        return None


class DecodeAudio(beam.DoFn):
    """``(track, annotations)`` -> :class:`Decoded` at the specs' rate and channels (:func:`mirdl.features.audio.decode`);
    a file that decodes with warnings also gets one ``severity="warning"`` error record per warning."""

    def __init__(self, *, sample_rate: int, channels: int, progress_path: str | None = None,
                 decoder: str = "reference") -> None:
        self.sample_rate, self.channels, self.progress_path = sample_rate, channels, progress_path
        self.decoder = decoder
        self._hasher: ThreadPoolExecutor | None = None

    def setup(self) -> None:
        # One thread hashes a file's bytes while this one decodes it: hashlib and libsndfile (cffi)
        # release the GIL, so on a 1-worker job the hash (~0.45 s per 430 MB) rides on the idle core.
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mirdl-sha256")

    def teardown(self) -> None:
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)
            self._hasher = None

    def process(self, element: tuple[Track, Annotations | None]) -> Iterator[Any]:
        track, annotations = element
        if self._hasher is None:  # process() called without setup() (a plain call in a test)
            self.setup()
        hashes = self._hasher.submit(lambda: (_file_sha256(track.path), _file_sha256(track.annotation_path)))
        try:
            decoded = audio.decode(track.path, sample_rate=self.sample_rate, channels=self.channels,
                                   decoder=self.decoder)
        except Exception as err:  # noqa: BLE001
            hashes.cancel()
            _count("files_failed")
            _report_progress(self.progress_path, 0.0)
            yield _dead_letter(track, stage="decode", exc=err)
            return
        for message in decoded.warnings:  # decoded all the same: a warning record, not a failed file
            _count("warnings_decode")
            yield beam.pvalue.TaggedOutput(ERRORS, ErrorRecord.from_exc(
                path=track.path, track_id=track.track_id, stage="decode", exc=audio.AudioWarning(message),
                severity="warning"))
        y = decoded.y
        seconds = y.shape[-1] / self.sample_rate
        _count("files_read")
        _count("audio_ms", round(1000 * seconds))
        # The bytes' hashes let `mirdl prepare --update` copy this track's records instead of
        # decoding it again; hashed while it was decoded (the second read comes from the page cache).
        sha256, annotation_sha256 = hashes.result()
        yield Decoded(track, y, annotations, sha256=sha256, annotation_sha256=annotation_sha256)
        # The fused steps after this one have processed the track when the runner comes back here.
        _report_progress(self.progress_path, seconds)


class AugmentVariants(beam.DoFn):
    """:class:`Decoded` -> one :class:`Variant` per augmentation variant (:func:`mirdl.features.augment.apply_variant`)."""

    def __init__(self, *, spec: augment.AugmentSpec, sample_rate: int, channels: int,
                 background_files: list[str] | None = None) -> None:
        self.spec, self.sample_rate, self.channels = spec, sample_rate, channels
        self.background_files = list(background_files or [])

    def setup(self) -> None:
        # Background recordings are few and short: decode each once per worker.
        self._background = functools.lru_cache(maxsize=16)(self._load_background)

    def _load_background(self, path: str) -> np.ndarray:
        return audio.load(path, sample_rate=self.sample_rate, channels=self.channels)[0]

    def process(self, item: Decoded) -> Iterator[Any]:
        track = item.track
        for variant in range(self.spec.n_variants):
            if variant == 0 and item.audio.dtype == np.float32 and item.audio.shape[-1] > 0:
                # The clean variant is the decoded audio itself (float32, finite: the decoder checks
                # every block), as apply_variant returns it, without apply_variant's copy of the track.
                _count("variants")
                yield Variant(track, variant, item.audio, item.annotations)
                continue
            try:
                background = None
                if variant > 0 and self.background_files:
                    background = self._background(pick_background(
                        self.background_files, seed=self.spec.seed, track_id=track.track_id, variant=variant))
                y, _, annotations = augment.apply_variant(
                    item.audio, sr=self.sample_rate, spec=self.spec, track_id=track.track_id, variant=variant,
                    background=background, annotations=item.annotations)
            except Exception as err:  # noqa: BLE001
                yield _dead_letter(track, stage="augment", exc=err, context=f"variant {variant}")
                continue
            _count("variants")
            yield Variant(track, variant, y, annotations)


class ComputeFeatures(beam.DoFn):
    """:class:`Variant` -> :class:`TrackFeatures`: every spec on the same audio
    (:func:`mirdl.features.representations.compute_many`: specs of the same framing share one STFT)."""

    def __init__(self, *, specs: tuple[FeatureSpec, ...]) -> None:
        self.specs = specs

    def process(self, item: Variant) -> Iterator[Any]:
        try:
            computed = representations.compute_many(item.audio, specs=self.specs)
        except Exception as err:  # noqa: BLE001
            yield _dead_letter(item.track, stage="features", exc=err, context=f"variant {item.variant}")
            return
        yield TrackFeatures(item.track, item.variant, computed, item.annotations)


class SegmentRecords(beam.DoFn):
    """:class:`TrackFeatures` -> records (:func:`make_records`)."""

    def __init__(self, *, layout: RecordLayout) -> None:
        self.layout = layout

    def process(self, item: TrackFeatures) -> Iterator[Any]:
        try:
            records = make_records(item, layout=self.layout)
        except Exception as err:  # noqa: BLE001
            yield _dead_letter(item.track, stage="segment", exc=err, context=f"variant {item.variant}")
            return
        _count("segments", len(records))
        yield from records


def framed_spill_pieces(record: Mapping[str, Any], *, features: Mapping[str, Any],
                        task: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """A record of a TFRecord store as it is spilled: its checked label's bytes (the store's
    label dtype, little-endian, C order) and its final TFRecord frame (:func:`tfrecord_frame`).

    The record is checked against the store's shapes here (StoreError), and framed where it
    was computed: the shard stage only counts labels and copies frames.
    """
    checked = checked_record(record, features=features, task=task)
    return checked[LABEL_COLUMN].tobytes(), tfrecord_frame(checked, features=features, task=task)


def split_framed_spill(data: bytearray, *, task: Mapping[str, Any]) -> tuple[np.ndarray, memoryview]:
    """``(label, frame)`` of what :func:`framed_spill_pieces` spilled (both share ``data``'s memory)."""
    shape = tuple(task["label_shape"])
    dtype = np.dtype(task["label_dtype"]).newbyteorder("<")
    count = int(np.prod(shape, dtype=np.int64))
    label = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
    return label, memoryview(data)[count * dtype.itemsize:]


class SpillRecords(beam.DoFn):
    """Record -> its :data:`~mirdl.pipelines.spill.IndexEntry`, after appending the record to this
    bundle's spill file in ``spill_directory`` (:class:`~mirdl.pipelines.spill.SpillWriter`).

    The index entry (key and 32-byte location) is what the runner shuffles, not the record.
    For a TFRecord store the record is spilled as its label and its final TFRecord frame
    (:func:`framed_spill_pieces`), so the serialisation runs here, on every worker, and not in
    the shard stage; other formats spill the record (:func:`~mirdl.pipelines.spill.encode_record`).
    A spill failure (a full disk) or a record of the wrong shape is not one file's fault: it
    fails the job, which publishes nothing.
    """

    def __init__(self, *, spill_directory: str, layout: RecordLayout, store_format: str) -> None:
        self.spill_directory, self.store_format = spill_directory, store_format
        self.feature_names, self.features, self.task = layout.feature_names, layout.features, layout.task
        self._writer: SpillWriter | None = None

    def start_bundle(self) -> None:
        self._writer = SpillWriter(self.spill_directory)

    def process(self, record: dict[str, Any]) -> Iterator[IndexEntry]:
        if self.store_format == "tfrecord":
            location = self._writer.append_bytes(*framed_spill_pieces(record, features=self.features, task=self.task))
        else:
            location = self._writer.append(record)
        yield record["split"], record["key"], record_nbytes(record, feature_names=self.feature_names), location

    def finish_bundle(self) -> None:
        # Closed (flushed) here: the runner commits the bundle's index entries after this.
        self._writer.close()
        _count("spilled_bytes", self._writer.bytes_written)
        self._writer = None

    def teardown(self) -> None:
        if self._writer is not None:  # a failed bundle: its partial file is never read
            self._writer.close()


class WriteShard(beam.DoFn):
    """``((split, index, n_shards), [(key, location), ...])`` -> the shard's manifest entry, after writing it.

    The records are read back from the spill files (``spill_directory``) one at a time in
    key order, so a shard's bytes do not depend on the order the runner delivers its
    entries in, and a worker holds one record (TFRecord), one row group (Parquet) or one
    shard (HDF5) at a time. TFRecord records were spilled framed (:class:`SpillRecords`):
    their frames are copied into the shard (:func:`~mirdl.store.adapters.write_tfrecord_frames`),
    the same bytes :func:`~mirdl.store.adapters.write_shard` writes from the records. With
    ``abort`` (a side input: too many files failed) nothing is written. A write failure is not
    one file's fault: it fails the job, which publishes nothing.
    """

    def __init__(self, *, directory: str, spill_directory: str, name: str, store_format: str, compression: str,
                 row_group_records: int, layout: RecordLayout) -> None:
        self.directory, self.spill_directory, self.name = directory, spill_directory, name
        self.store_format, self.compression, self.row_group_records = store_format, compression, row_group_records
        self.features, self.task = layout.features, layout.task

    def process(self, element: tuple[tuple[str, int, int], Iterable[tuple[str, bytes]]],
                abort: bool = False) -> Iterator[dict[str, Any]]:
        if abort:
            return
        (split, index, n_shards), locations = element
        locations = sorted(locations)  # by key
        filename = shard_filename(name=self.name, split=split, store_format=self.store_format, index=index,
                                  n_shards=n_shards)
        path = os.path.join(self.directory, filename)
        counts = None if self.task["type"] == "regression" else np.zeros(self.task["n_outputs"], dtype=np.int64)
        with SpillReader(self.spill_directory) as spill:
            # Generators: records are read as the writer takes them, never a whole list here.
            if self.store_format == "tfrecord":
                previous = None
                for key, _ in locations:  # unique keys (sorted above): as write_shard checks them
                    previous = check_key_order(previous, key)
                entries = (split_framed_spill(spill.read_bytes(location), task=self.task) for _, location in locations)
                labelled = counting_labels(({LABEL_COLUMN: label, "frame": frame} for label, frame in entries),
                                           counts, self.task)
                info = write_tfrecord_frames((entry["frame"] for entry in labelled), path=path,
                                             compression=self.compression)
            else:
                records = (spill.read(location) for _, location in locations)
                info = write_shard(counting_labels(records, counts, self.task), path=path,
                                   store_format=self.store_format, features=self.features, task=self.task,
                                   compression=self.compression, row_group_records=self.row_group_records)
        _count("shards")
        _count("shard_bytes", info.bytes)
        yield {"split": split, "index": index, **info.to_dict(),
               "label_counts": None if counts is None else counts.tolist()}


# ------------------------------------------------------------------------------------------ composites
@beam.ptransform_fn
def ComputeRecords(tracks, *, config: PrepareConfig, layout: RecordLayout,  # noqa: N802 - Beam naming
                   progress_path: str | None = None):
    """Tracks -> ``{"records", "errors", "decoded"}`` (decoded: :meth:`Decoded.summary` of each track).

    Annotations (frame tasks) -> Decode -> Augment -> Features -> Segment, each a labelled
    step with a dead-letter output; ``errors`` is the tuple of those outputs, for the caller to
    flatten with whatever else it gathers (on Beam's local engine every multi-input Flatten is a
    stage of its own: one Flatten, not a Flatten of Flattens).
    """
    pending = tracks | "Pending" >> beam.Map(lambda track: (track, None))
    errors = []
    if layout.frame_task:
        annotated = pending | "Annotations" >> beam.ParDo(
            LoadAnnotations(kind=config.corpus.annotation_kind, progress_path=progress_path)
        ).with_outputs(ERRORS, main="main")
        pending = annotated.main
        errors.append(annotated[ERRORS])
    # The main output's type picks its coder (ArraysCoder: no pickling to estimate its size).
    steps = [
        ("Decode", DecodeAudio(sample_rate=config.sample_rate, channels=config.channels,
                               progress_path=progress_path, decoder=config.audio.decoder), Decoded),
        ("Augment", AugmentVariants(spec=config.augment, sample_rate=config.sample_rate, channels=config.channels,
                                    background_files=config.background_files()), Variant),
        ("Features", ComputeFeatures(specs=config.features), TrackFeatures),
        ("Segment", SegmentRecords(layout=layout), Any),
    ]
    outputs = {}
    for label, fn, element_type in steps:
        result = pending | label >> beam.ParDo(fn).with_output_types(element_type).with_outputs(ERRORS, main="main")
        errors.append(result[ERRORS])
        pending = outputs[label] = result.main
    return {
        "records": pending,
        "errors": tuple(errors),
        "decoded": outputs["Decode"] | "DecodedTracks" >> beam.Map(Decoded.summary),
    }


def assign_shard(entry: IndexEntry, n_shards: Mapping[str, int]) -> tuple[tuple[str, int, int], tuple[str, bytes]]:
    """``((split, shard index, shard count), (key, location))``: the shard is a stable hash of the key.

    Only what :class:`WriteShard` needs is grouped: the local runner holds it all in memory.
    """
    split, key, _, location = entry
    count = n_shards[split]
    return (split, shard_for_key(key, n_shards=count), count), (key, location)


@beam.ptransform_fn
def WriteShards(records, *, directory: str, spill_directory: str, config: PrepareConfig,  # noqa: N802
                layout: RecordLayout, abort):
    """Records -> one manifest entry per shard written into ``directory``.

    Each record is appended to a spill file in ``spill_directory`` (:class:`SpillRecords`)
    and only its index entry goes on. The shard count of a split is ``ceil(record bytes /
    store.shard_bytes)`` (at least 1), from a global sum of the entries' record sizes used as
    a side input; each entry goes to shard ``shard_for_key(key)``, a GroupByKey per (split,
    shard) gathers them and :class:`WriteShard` reads the records back and writes them
    sorted. ``abort`` is a PCollection of at most one bool (none: False). The caller deletes the
    spill directory when the job is over.
    """
    shard_bytes = config.store.shard_bytes
    index = records | "SpillRecords" >> beam.ParDo(
        SpillRecords(spill_directory=spill_directory, layout=layout, store_format=config.store.format))
    n_shards = (
        index
        | "RecordBytes" >> beam.Map(lambda entry: (entry[0], entry[2]))
        | "BytesPerSplit" >> beam.CombinePerKey(sum)
        | "ShardsPerSplit" >> beam.MapTuple(lambda split, total: (split, shard_count(total, shard_bytes=shard_bytes)))
    )
    return (
        index
        | "AssignShard" >> beam.Map(assign_shard, n_shards=beam.pvalue.AsDict(n_shards))
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShard" >> beam.ParDo(
            WriteShard(directory=directory, spill_directory=spill_directory, name=config.name,
                       store_format=config.store.format, compression=config.store.compression,
                       row_group_records=config.store.row_group_records, layout=layout),
            abort=beam.pvalue.AsSingleton(abort, default_value=False))
    )
