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

__all__ = ["Prediction", "PredictResult", "list_inputs", "predict", "write_predictions", "CLIP_TASKS"]

CLIP_TASKS = ("single_label", "multi_label", "regression")
_OUTPUT_SUFFIXES = (".csv", ".jsonl")


@dataclass
class PredictResult:
    """Rows (one dict per file that was read, in input order) and error records (the others)."""

    task: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


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
                  batch_size: int) -> np.ndarray:
    """Clip: ``(n_outputs,)``; frame tasks: ``(n_frames, n_outputs)`` on the file's frame grid."""
    from mirdl_tf.evaluate import window_offsets

    stage = "decode"
    try:
        y, _ = audio.load(path, sample_rate=spec.sample_rate, channels=spec.channels)
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
        return outputs.reshape((-1, outputs.shape[-1])).mean(axis=0)
    n_frames = x.shape[-1]
    total = np.zeros((max(n_frames, int(starts[-1]) + seg_frames), outputs.shape[-1]))
    count = np.zeros((total.shape[0], 1))
    for i, start in enumerate(starts):
        for w, offset in enumerate(offsets):
            total[start + offset:start + offset + patch] += outputs[i, w]
            count[start + offset:start + offset + patch] += 1
    return (total / np.maximum(count, 1))[:n_frames]


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
        ``.csv`` (clip tasks) or ``.jsonl`` (any task): written atomically by
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
    result = PredictResult(task=task)
    for path in tqdm(files, desc="predict", unit="file", file=sys.stderr, disable=None, leave=False):
        try:
            output = _file_outputs(model, path, spec=spec, info=info, mean=mean, std=std, batch_size=batch_size)
        except _Failed as failed:
            result.errors.append(ErrorRecord.from_exc(path=str(path), track_id=None, stage=failed.stage,
                                                      exc=failed.err))
            continue
        result.rows.append({"file": str(path), **_row(task, output, vocabulary=vocabulary, hop_seconds=hop,
                                                      threshold=threshold)})
    result.columns = ["file"] + ([key for key in result.rows[0] if key != "file"] if result.rows else [])
    if out is not None:
        write_predictions(out, result)
    return result


def _check_out(out: str | os.PathLike, *, task: str | None) -> None:
    suffix = Path(out).suffix.lower()
    if suffix not in _OUTPUT_SUFFIXES:
        raise ConfigError(f"out={str(out)!r} must end in .csv or .jsonl")
    if task is not None and suffix == ".csv" and task not in CLIP_TASKS:
        raise ConfigError(f"out={str(out)!r}: a {task!r} model predicts events per file; write .jsonl")


def write_predictions(out: str | os.PathLike, result: PredictResult) -> Path:
    """Write ``result.rows`` to ``out`` (``.csv`` with a header, or ``.jsonl``) atomically, and its
    error records to ``OUT.errors.jsonl`` (removed when there are none)."""
    out = Path(out)
    _check_out(out, task=result.task)
    out.parent.mkdir(parents=True, exist_ok=True)
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
