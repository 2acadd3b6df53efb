"""Predict on new audio with a trained run: decode, compute, cut and aggregate exactly as in training.

A ``mirdl train`` run directory records what its model was trained on (``model_info.json``:
the feature spec, the store's segmentation, the training normalisation and the task with its
vocabulary). :func:`predict` applies that to audio files the store never saw:

1. decode at the spec's sample rate and channels (:func:`mirdl.features.audio.load`) and compute
   the feature (:func:`mirdl.features.representations.compute`);
2. cut it into the store's segments (:func:`mirdl.features.segment.patches`: same length, hop
   and padding), standardise with the training statistics, and cover every segment with
   patches of the model's ``patch_frames`` as evaluation does
   (:func:`mirdl_tf.evaluate.window_offsets`);
3. clip tasks: the mean of the patch outputs per file (as ``mirdl evaluate``); frame tasks: patch
   outputs stitched on the file's frame grid, overlaps averaged, then read off as onset times
   (peak picking), notes (thresholded piano roll) or chord segments (per-frame argmax).

A file that cannot be decoded (or is too short for a patch with ``pad: drop``) is an
:class:`~mirdl.store.dead_letter.ErrorRecord` (``decode``, ``features`` or ``segment`` stage),
never a stopped run.

Output rows (:func:`write_predictions`): clip tasks give one row per file (CSV with a header or
JSON lines): ``file``, then ``label`` + ``score`` + one ``score:CLASS`` column per class
(single label), ``tags`` (``;``-joined, score >= threshold) + ``score:TAG`` columns (multi
label), one column per target (regression). Frame tasks give JSON lines: ``onsets`` (seconds),
``notes`` (``[onset_s, offset_s, midi_pitch]``) or ``chords`` (``[start_s, end_s, label]``).

JAMS (the MIR annotation format, read by ``jams``, ``mir_eval`` and annotation tools): ``out``
a folder (a name without extension) gets one ``.jams`` file per input file
(:data:`JAMS_NAMESPACES`: ``onset``, ``note_midi``, ``chord``, and ``tag_open`` for clip
labels and tags, with their scores as confidence), each validated against the JAMS schema
before it is written; ``file_metadata.duration`` is the decoded audio's duration.

Examples
--------
>>> result = predict("runs/fcn", ["new/song.ogg"])  # doctest: +SKIP
>>> result.rows[0]["label"], round(result.rows[0]["score"], 2)  # doctest: +SKIP
('pluck', 0.91)
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mirdl.errors import ConfigError, MirdlError, StoreError
from mirdl.features import audio, representations, segment
from mirdl.features.spec import FeatureSpec
from mirdl.store.dead_letter import ErrorRecord, write_error_records
from mirdl.store.files import atomic_path

__all__ = ["Prediction", "PredictResult", "list_inputs", "predict", "write_predictions", "to_jams", "CLIP_TASKS",
           "JAMS_NAMESPACES"]

CLIP_TASKS = ("single_label", "multi_label", "regression")
_OUTPUT_SUFFIXES = (".csv", ".jsonl")
#: Task type -> the JAMS namespace its predictions are written in (regression has none).
JAMS_NAMESPACES = {"frame_onset": "onset", "frame_notes": "note_midi", "frame_chords": "chord",
                   "single_label": "tag_open", "multi_label": "tag_open"}


@dataclass
class PredictResult:
    """Rows (one dict per file that was read, in input order) and error records (the others)."""

    task: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    #: Seconds of decoded audio of each row's file (JAMS ``file_metadata.duration``).
    durations: list[float] = field(default_factory=list)
    #: How the predictions were made (run folder name, checkpoint, threshold), for JAMS metadata.
    settings: dict[str, Any] = field(default_factory=dict)


Prediction = PredictResult  # the name the Python API exports


def list_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Files to predict: each file given, and every audio file below each folder given (sorted;
    extensions of :data:`mirdl.features.audio.AUDIO_EXTENSIONS`, hidden files and folders left out)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = []
            for folder, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
                found += [Path(folder) / name for name in filenames if not name.startswith(".")
                          and Path(name).suffix.lower().lstrip(".") in audio.AUDIO_EXTENSIONS]
            files += sorted(found)
        else:
            files.append(path)  # a missing or odd file becomes an error record when decoded
    if not files:
        raise ConfigError(f"inputs={[str(item) for item in inputs]!r} hold no audio file")
    return files


def _segmentation(info: Mapping[str, Any], spec: FeatureSpec) -> tuple[int, int, str]:
    """``(segment frames, hop frames, pad)`` of the model's feature, from ``model_info.json``."""
    seg = info.get("segment")
    if not seg:
        raise StoreError("model_info.json has no 'segment' (a run from before mirdl recorded it): "
                         "train it again to predict on new audio")
    name = info["feature"]["name"]
    patch_frames = int(seg["patch_frames"][name])
    hop_frames = int(seg["hop_frames"])
    grid = seg.get("grid_feature", name)
    if grid != name:  # the hop is counted on the grid feature's frames; rescale to this feature's hop
        hop_seconds = float(seg["hop_seconds"])
        hop_frames = max(1, round(hop_seconds * spec.sample_rate / int(spec.params["hop_length"])))
    return patch_frames, hop_frames, str(seg.get("pad", "silence"))


def _file_outputs(model, path: Path, *, spec: FeatureSpec, info: Mapping[str, Any], mean, std,
                  batch_size: int) -> tuple[np.ndarray, float]:
    """``(outputs, seconds of audio)``: clip: ``(n_outputs,)``; frame tasks: ``(n_frames,
    n_outputs)`` on the file's frame grid."""
    from mirdl_tf.evaluate import window_offsets

    stage = "decode"
    try:
        y, _ = audio.load(path, sample_rate=spec.sample_rate, channels=spec.channels)
        seconds = y.shape[-1] / spec.sample_rate
        stage = "features"
        x = representations.compute(y, spec=spec).astype(np.float32)
        stage = "segment"
        seg_frames, hop_frames, pad = _segmentation(info, spec)
        segments, starts = segment.patches(x, patch_frames=seg_frames, hop_frames=hop_frames, pad=pad,
                                           pad_column=representations.silence_column(spec))
        if len(segments) == 0:
            raise ConfigError(f"{x.shape[-1]} frames give no segment of {seg_frames} frames with pad {pad!r}")
    except (MirdlError, OSError, ValueError) as err:
        raise _Failed(stage, err) from err
    if mean is not None:
        segments = (segments - mean) / std
    patch = int(info["patch_frames"])
    offsets = window_offsets(seg_frames, patch)
    windows = np.stack([segments[..., o:o + patch] for o in offsets], axis=1)
    windows = windows.reshape((-1,) + windows.shape[2:])
    if windows.ndim == 4:  # (n, channels, freq, time) -> the models' (n, freq, time, channels)
        windows = np.moveaxis(windows, 1, -1)
    outputs = np.concatenate([np.asarray(model.predict_on_batch(windows[i:i + batch_size]), dtype=np.float64)
                              for i in range(0, len(windows), batch_size)])
    outputs = outputs.reshape((len(starts), len(offsets)) + outputs.shape[1:])
    if info["task"]["type"] in CLIP_TASKS:
        return outputs.reshape((-1, outputs.shape[-1])).mean(axis=0), seconds
    n_frames = x.shape[-1]
    total = np.zeros((max(n_frames, int(starts[-1]) + seg_frames), outputs.shape[-1]))
    count = np.zeros((total.shape[0], 1))
    for i, start in enumerate(starts):
        for w, offset in enumerate(offsets):
            total[start + offset:start + offset + patch] += outputs[i, w]
            count[start + offset:start + offset + patch] += 1
    return (total / np.maximum(count, 1))[:n_frames], seconds


class _Failed(Exception):
    def __init__(self, stage: str, err: BaseException) -> None:
        super().__init__(str(err))
        self.stage, self.err = stage, err


def _row(task: str, output: np.ndarray, *, vocabulary: Sequence[str], hop_seconds: float | None,
         threshold: float) -> dict[str, Any]:
    from mirdl_tf.metrics import ONSET_MIN_DISTANCE, pick_onsets, roll_to_notes

    if task == "single_label":
        best = int(np.argmax(output))
        return {"label": vocabulary[best], "score": float(output[best]),
                **{f"score:{name}": float(value) for name, value in zip(vocabulary, output)}}
    if task == "multi_label":
        return {"tags": ";".join(name for name, value in zip(vocabulary, output) if value >= threshold),
                **{f"score:{name}": float(value) for name, value in zip(vocabulary, output)}}
    if task == "regression":
        return {name: float(value) for name, value in zip(vocabulary, output)}
    if task == "frame_onset":
        min_distance = max(1, math.ceil(ONSET_MIN_DISTANCE / hop_seconds))
        peaks = pick_onsets(output[:, 0], threshold=threshold, min_distance=min_distance)
        return {"onsets": [round(float(t), 4) for t in peaks * hop_seconds]}
    if task == "frame_notes":
        intervals, pitches = roll_to_notes(output >= threshold, hop_seconds=hop_seconds)
        midi = np.round(69 + 12 * np.log2(pitches / 440.0)).astype(int) if len(pitches) else []
        return {"notes": sorted([round(float(a), 4), round(float(b), 4), int(m)] for (a, b), m in zip(intervals, midi))}
    classes = np.argmax(output, axis=1)  # frame_chords: runs of one argmax class
    chords, start = [], 0
    for i in range(1, len(classes) + 1):
        if i == len(classes) or classes[i] != classes[start]:
            chords.append([round(start * hop_seconds, 4), round(i * hop_seconds, 4), vocabulary[int(classes[start])]])
            start = i
    return {"chords": chords}


def predict(model_dir: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], *,
            out: str | os.PathLike | None = None, checkpoint: str = "best", batch_size: int = 32,
            threshold: float = 0.5) -> PredictResult:
    """Predict every input file with a ``mirdl train`` run; optionally write the predictions.

    Parameters
    ----------
    model_dir : path-like
        The run directory (``model_info.json`` + ``best.keras`` / ``last.keras``).
    inputs : path-like or iterable of path-likes
        Audio files and folders (every audio file below them, :func:`list_inputs`).
    out : path-like, optional
        ``.csv`` (clip tasks), ``.jsonl`` (any task), or a folder (a name without extension:
        one ``.jams`` file per input file; not for regression): written atomically by
        :func:`write_predictions`, with ``OUT.errors.jsonl`` beside it when a file failed.
    checkpoint : {"best", "last"}
    batch_size : int > 0
        Patches per model call.
    threshold : float
        Tag / onset / piano-roll threshold.

    Returns
    -------
    PredictResult
        ``rows`` (``file`` as given, then the task's fields), ``errors`` (one
        :class:`~mirdl.store.dead_letter.ErrorRecord` per unreadable file) and ``columns``.

    Raises
    ------
    ConfigError
        No input file, an ``out`` that is neither ``.csv`` nor ``.jsonl``, CSV for a frame task.
    StoreError
        ``model_dir`` is not a run directory, or its run did not record the segmentation.
    """
    from mirdl_tf import data
    from mirdl_tf.evaluate import hop_seconds_of, load_trained

    if out is not None:
        _check_out(out, task=None)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1")
    files = list_inputs(inputs)
    model, info = load_trained(model_dir, checkpoint=checkpoint)
    task = info["task"]["type"]
    if out is not None:
        _check_out(out, task=task)
    spec = FeatureSpec.from_dict(info["feature"]["spec"])
    _segmentation(info, spec)  # a run without segmentation fails before any file is read
    vocabulary = list(info["task"].get("vocabulary") or [str(i) for i in range(int(info["n_outputs"]))])
    mean = std = None
    if info.get("normalization"):
        mean = np.asarray(info["normalization"]["mean"], dtype=np.float32)[..., None]
        std = np.maximum(np.asarray(info["normalization"]["std"], dtype=np.float32), data.STD_FLOOR)[..., None]
    hop = hop_seconds_of(info["feature"])
    from mirdl import __version__

    result = PredictResult(task=task, settings={"model": Path(model_dir).resolve().name, "checkpoint": checkpoint,
                                                "threshold": threshold, "mirdl": __version__})
    for path in tqdm(files, desc="predict", unit="file", file=sys.stderr, disable=None, leave=False):
        try:
            output, seconds = _file_outputs(model, path, spec=spec, info=info, mean=mean, std=std,
                                            batch_size=batch_size)
        except _Failed as failed:
            result.errors.append(ErrorRecord.from_exc(path=str(path), track_id=None, stage=failed.stage,
                                                      exc=failed.err))
            continue
        result.rows.append({"file": str(path), **_row(task, output, vocabulary=vocabulary, hop_seconds=hop,
                                                      threshold=threshold)})
        result.durations.append(float(seconds))
    result.columns = ["file"] + ([key for key in result.rows[0] if key != "file"] if result.rows else [])
    if out is not None:
        write_predictions(out, result)
    return result


def _is_folder(out: str | os.PathLike) -> bool:
    """A JAMS folder: an existing directory, or a name without extension."""
    return Path(out).is_dir() or not Path(out).suffix


def _check_out(out: str | os.PathLike, *, task: str | None) -> None:
    path = Path(out)
    if _is_folder(path):
        if task is not None and task not in JAMS_NAMESPACES:
            raise ConfigError(f"out={str(out)!r}: JAMS has no namespace for {task!r} predictions; write .csv or .jsonl")
        if path.is_dir():
            others = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() != ".jams"]
            if others:  # never replace a folder of the user's own files (their audio, say)
                raise ConfigError(f"out={str(out)!r} is a folder holding other files than .jams ({others[0].name}); "
                                  "give a new folder for the JAMS files")
        return
    suffix = path.suffix.lower()
    if suffix not in _OUTPUT_SUFFIXES:
        raise ConfigError(f"out={str(out)!r} must end in .csv or .jsonl, or name a folder (one .jams file per input "
                          "file)")
    if task is not None and suffix == ".csv" and task not in CLIP_TASKS:
        raise ConfigError(f"out={str(out)!r}: a {task!r} model predicts events per file; write .jsonl")


def write_predictions(out: str | os.PathLike, result: PredictResult) -> Path:
    """Write ``result.rows`` to ``out`` atomically: ``.csv`` with a header, ``.jsonl``, or a folder
    of ``.jams`` files (one per row, :func:`to_jams`); and its error records to
    ``OUT.errors.jsonl`` (removed when there are none)."""
    out = Path(out)
    _check_out(out, task=result.task)
    out.parent.mkdir(parents=True, exist_ok=True)
    if _is_folder(out):
        _write_jams_folder(out, result)
    else:
        with atomic_path(out) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                if out.suffix.lower() == ".csv":
                    writer = csv.DictWriter(handle, fieldnames=result.columns or ["file"])
                    writer.writeheader()
                    for row in result.rows:
                        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value)
                                         for key, value in row.items()})
                else:
                    for row in result.rows:
                        handle.write(json.dumps(row, sort_keys=False) + "\n")
    errors_path = out.with_name(out.name + ".errors.jsonl")
    if result.errors:
        write_error_records(errors_path, result.errors)
    else:
        errors_path.unlink(missing_ok=True)
    return out


def to_jams(row: Mapping[str, Any], *, task: str, duration: float, settings: Mapping[str, Any] | None = None):
    """One file's predictions (a row of :func:`predict`) as a ``jams.JAMS`` object.

    ``onset`` (``time`` = onset, ``duration`` 0), ``note_midi`` (``value`` = MIDI pitch),
    ``chord`` (``value`` = the chord label) or ``tag_open`` (``value`` = class / tag over the
    whole file, ``confidence`` = its score); ``annotation_metadata`` says it is a mirdl
    prediction, with the run, checkpoint and threshold in ``annotation_rules`` and the sandbox.

    Examples
    --------
    >>> jam = to_jams({"file": "take1.wav", "onsets": [0.5, 1.25]}, task="frame_onset", duration=2.0)
    >>> ann = jam.annotations[0]
    >>> ann.namespace, [obs.time for obs in ann.data]
    ('onset', [0.5, 1.25])
    """
    import jams

    settings = dict(settings or {})
    if task not in JAMS_NAMESPACES:
        raise ConfigError(f"task={task!r}: JAMS has no namespace for these predictions (write .csv or .jsonl)")
    jam = jams.JAMS()
    jam.file_metadata.duration = float(duration)
    jam.file_metadata.title = Path(str(row["file"])).stem
    ann = jams.Annotation(namespace=JAMS_NAMESPACES[task], time=0.0, duration=float(duration))
    rules = ", ".join(f"{key} {settings[key]}" for key in ("model", "checkpoint", "threshold") if key in settings)
    ann.annotation_metadata = jams.AnnotationMetadata(
        data_source="machine prediction (mirdl predict)", annotation_tools=f"mirdl {settings.get('mirdl', '')}".strip(),
        annotation_rules=rules)
    ann.sandbox.update(mirdl={"file": str(row["file"]), **settings})
    if task == "frame_onset":
        for time in row["onsets"]:
            ann.append(time=float(time), duration=0.0, value=None)
    elif task == "frame_notes":
        for onset, offset, pitch in row["notes"]:
            ann.append(time=float(onset), duration=float(offset) - float(onset), value=float(pitch))
    elif task == "frame_chords":
        for start, end, label in row["chords"]:
            ann.append(time=float(start), duration=float(end) - float(start), value=str(label))
    elif task == "single_label":
        ann.append(time=0.0, duration=float(duration), value=str(row["label"]), confidence=float(row["score"]))
    else:  # multi_label: every tag at or above the threshold
        for tag in filter(None, str(row["tags"]).split(";")):
            ann.append(time=0.0, duration=float(duration), value=tag, confidence=float(row[f"score:{tag}"]))
    jam.annotations.append(ann)
    return jam


def _jams_names(files: Sequence[str]) -> list[Path]:
    """Each file's JAMS path inside the folder: its path relative to the inputs' common folder,
    extension ``.jams`` (``song.wav`` -> ``song.jams``; ``song.wav.jams`` when two share a stem)."""
    paths = [Path(file).resolve() for file in files]
    if not paths:
        return []
    base = Path(os.path.commonpath([path.parent for path in paths]))
    names = [path.parent.relative_to(base) / (path.stem + ".jams") for path in paths]
    clashes = {name for name in names if names.count(name) > 1}
    return [path.parent.relative_to(base) / (path.name + ".jams") if name in clashes else name
            for path, name in zip(paths, names)]


def _write_jams_folder(out: Path, result: PredictResult) -> None:
    """One validated ``.jams`` per row in a new folder that replaces ``out`` in one rename."""
    jams_objects = [to_jams(row, task=result.task, duration=duration, settings=result.settings)
                    for row, duration in zip(result.rows, result.durations)]
    for jam in jams_objects:  # every file valid before anything is written
        jam.validate(strict=True)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, jam in zip(_jams_names([row["file"] for row in result.rows]), jams_objects):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(tmp / name) as file_tmp:
                jam.save(str(file_tmp), strict=True, fmt="jams")
