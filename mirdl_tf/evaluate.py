"""Evaluate a trained model on a store split: per-track predictions, standard metrics, a plot.

Predictions are made per track, as the tasks are defined:

1. Every stored segment of the split's clean records (variant 0) is cut into patches of the
   model's ``patch_frames``: all of it when the segment is that long, else sliding windows
   with hop ``patch_frames`` plus one window flush with the segment's end, so every frame
   is covered (:func:`window_offsets`). Features are standardised with the *training*
   statistics saved in ``model_info.json``, not the evaluated store's.
2. Clip tasks: the track's output is the mean of its patch outputs (over all windows of all
   segments). Frame tasks: patch outputs are placed at ``start_frame + offset`` on the
   track's frame grid and averaged where they overlap; the reference is stitched the same
   way from the stored frame labels (which the job derived from the annotations).
3. Metrics (:mod:`mirdl_tf.metrics`, no TensorFlow), from scikit-learn and mir_eval (nothing reimplemented):

   - ``single_label``: accuracy, macro F1, confusion matrix, per-class recall; with chance
     (1 / classes), the trivial baseline (always the majority class of the training split)
     and the per-track-statistics baseline (``statistics_baseline``, also for the other
     clip tasks: :func:`~mirdl_tf.metrics.statistics_baseline` fitted on the store's
     training split, :func:`store_track_statistics`).
   - ``multi_label``: macro ROC-AUC and PR-AUC (average precision) over the tags that have
     both positives and negatives in the split, and per tag.
   - ``regression``: MAE and R², overall and per target.
   - ``frame_onset``: ``mir_eval.onset.f_measure`` (window 50 ms) per track, averaged over
     tracks with reference onsets (MIREX style), and pooled over all onsets. Peak picking
     (:func:`~mirdl_tf.metrics.pick_onsets`): local maxima of the activation above ``threshold`` (0.5), at
     least :data:`~mirdl_tf.metrics.ONSET_MIN_DISTANCE` s apart (``scipy.signal.find_peaks``). Reference
     onsets are the frames whose label is 1 (widened neighbours, 0.5, are not onsets);
     frame ``k`` is at ``k * hop_length / sample_rate`` s.
   - ``frame_notes``: ``mir_eval.transcription.precision_recall_f1_overlap`` with
     ``offset_ratio=None`` (onset-only note F, 50 ms) on notes read off the thresholded
     piano roll (:func:`~mirdl_tf.metrics.roll_to_notes`), averaged over tracks with reference notes, and pooled.
   - ``frame_chords``: ``mir_eval.chord`` majmin and root weighted accuracy (by duration,
     pooled over tracks) of the per-frame argmax, and frame accuracy.

Examples
--------
>>> window_offsets(10, 4)
[0, 4, 6]
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirdl.errors import ConfigError, StoreError
from mirdl.store.files import atomic_path, is_remote, write_json_atomic
from mirdl.store.manifest import read_manifest
from mirdl_tf.metrics import (MIN_PITCH, ONSET_THRESHOLD, clip_metrics, frame_metrics, pick_onsets,
                              statistics_baseline, track_statistics)

__all__ = [
    "TrackOutputs",
    "window_offsets",
    "load_trained",
    "check_compatible",
    "track_outputs",
    "task_metrics",
    "plot_metrics",
    "ONSET_EXCERPT_SECONDS",
    "hop_seconds_of",
    "store_track_statistics",
    "evaluate",
]

#: Seconds of a track the onset plot shows.
ONSET_EXCERPT_SECONDS = 10.0
#: What the tracks' outputs are, for metrics.json.
AGGREGATION = ("clean records (variant 0); patches of patch_frames frames (sliding, hop patch_frames, last "
               "window flush with the segment end); clip tasks: mean of patch outputs per track; frame tasks: "
               "patch outputs stitched per track by start_frame, overlaps averaged")


@dataclass
class TrackOutputs:
    """Per-track outputs and references of one split, in track-id order.

    Attributes
    ----------
    track_ids : list of str
    outputs : list of np.ndarray
        Clip tasks: ``(n_outputs,)``; frame tasks: ``(n_frames, n_outputs)`` on the track's grid.
    labels : list of np.ndarray
        Clip tasks: the stored label; frame tasks: time first, ``(n_frames,)`` or
        ``(n_frames, n_outputs)``.
    patches : int
        Patches the model saw.
    """

    track_ids: list[str] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    patches: int = 0


def window_offsets(n_frames: int, patch_frames: int) -> list[int]:
    """Start frames of the patches that cover ``n_frames`` frames: hop ``patch_frames``, last flush with the end."""
    if patch_frames > n_frames:
        raise ConfigError(f"patch_frames={patch_frames} is longer than the stored segments ({n_frames} frames)")
    offsets = list(range(0, n_frames - patch_frames + 1, patch_frames))
    if offsets[-1] != n_frames - patch_frames:
        offsets.append(n_frames - patch_frames)
    return offsets


# --------------------------------------------------------------------------------------------
# Model directory


def load_trained(model_dir: str | os.PathLike, *, checkpoint: str = "best"):
    """``(model, model_info)`` of a ``mirdl train`` run directory.

    ``checkpoint`` is ``"best"`` (``best.keras``) or ``"last"`` (``last.keras``).
    """
    import keras

    from mirdl_tf import layers  # noqa: F401 - registers the custom layers a model may hold
    from mirdl_tf.train import RUN_FILES, read_model_info

    if checkpoint not in ("best", "last"):
        raise ConfigError(f"checkpoint={checkpoint!r} must be 'best' or 'last'")
    info = read_model_info(model_dir)
    path = Path(model_dir) / RUN_FILES[checkpoint]
    if not path.is_file():
        raise StoreError(f"{path}: missing (the run has not finished an epoch)")
    return keras.models.load_model(path, compile=False), info


def check_compatible(info: Mapping[str, Any], manifest: Mapping[str, Any], *, store: Any,
                     same_task: bool = True) -> None:
    """Raise StoreError unless ``manifest``'s feature is the one the model was trained on (and, if
    ``same_task``, its task type and vocabulary are the model's)."""
    name = info["feature"]["name"]
    feature = manifest["features"].get(name)
    if feature is None:
        raise StoreError(f"{store}: has no feature {name!r}, which the model was trained on "
                         f"(features: {', '.join(sorted(manifest['features']))})")
    expected, found = info["feature"].get("fingerprint"), feature.get("fingerprint")
    if expected != found or list(feature["shape"][:-1]) != list(info["feature"]["shape"][:-1]):
        raise StoreError(f"{store}: feature {name!r} (fingerprint {found}, shape {feature['shape']}) is not the one "
                         f"the model was trained on (fingerprint {expected}, shape {info['feature']['shape']})")
    if same_task:
        task, trained = manifest["task"], info["task"]
        if task["type"] != trained["type"] or task.get("vocabulary") != trained.get("vocabulary"):
            raise StoreError(f"{store}: task {task['type']!r} with {task.get('n_outputs')} outputs is not the "
                             f"model's ({trained['type']!r}, {trained.get('n_outputs')} outputs)")


# --------------------------------------------------------------------------------------------
# Predictions per track


def _bar_iter(items, bar):
    """``items``, advancing ``bar`` by one per item."""
    for item in items:
        yield item
        bar.update(1)


def _time_first(label: np.ndarray, task: str) -> np.ndarray:
    return label.T if task == "frame_notes" else label


def track_outputs(predict: Callable[[np.ndarray], np.ndarray], store: str | os.PathLike, split: str, *,
                  feature: str, patch_frames: int, task: str, frame_level: bool,
                  normalization: Mapping[str, Any] | None, batch_size: int = 32) -> TrackOutputs:
    """Run ``predict`` over every patch of a split's clean records and aggregate per track.

    Parameters
    ----------
    predict : callable
        Model-layout patches ``(n, freq, patch_frames[, channels])`` -> outputs ``(n, k)`` or,
        if ``frame_level``, ``(n, patch_frames, k)``.
    store, split, feature : the records to read
    patch_frames : int
        Model input length (see :func:`window_offsets`).
    task : str
        The store's task type (frame labels are turned time first).
    frame_level : bool
        Frame outputs are stitched per track; clip outputs averaged.
    normalization : mapping or None
        ``mean`` and ``std`` (the training statistics) applied to the features; None applies the
        store's own (as :func:`mirdl_tf.data.load` does).
    batch_size : int
        Records per batch (each gives one or more patches).

    Returns
    -------
    TrackOutputs
    """
    from mirdl_tf import data

    ds = data.load(store, split, feature=feature, batch_size=batch_size, patch_frames=None, shuffle=False,
                   standardize=normalization is None, variants="clean", with_metadata=True, deterministic=True)
    if normalization is not None:
        mean = np.asarray(normalization["mean"], dtype=np.float32)[..., None]
        std = np.maximum(np.asarray(normalization["std"], dtype=np.float32), data.STD_FLOOR)[..., None]
    sums: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    labels: dict[str, list[tuple[int, np.ndarray]]] = {}
    patches = 0
    from tqdm import tqdm

    described = data.describe(store, feature=feature)
    n_batches = -(-described["splits"][split] // len(described["variants"]) // batch_size)  # clean records
    bar = tqdm(total=n_batches, desc=f"{split}", unit="batch", leave=False, disable=None, file=sys.stderr)
    for x, y, meta in _bar_iter(data.iterate_named(ds, store, split), bar):
        if normalization is not None:
            x = (x - mean) / std
        n_records, n_frames = x.shape[0], x.shape[-1]
        offsets = window_offsets(n_frames, patch_frames)
        windows = np.stack([x[..., o:o + patch_frames] for o in offsets], axis=1)
        windows = windows.reshape((-1,) + windows.shape[2:])
        if windows.ndim == 4:  # (n, channels, freq, time) -> the models' (n, freq, time, channels)
            windows = np.moveaxis(windows, 1, -1)
        outputs = np.asarray(predict(windows), dtype=np.float64)
        outputs = outputs.reshape((n_records, len(offsets)) + outputs.shape[1:])
        patches += n_records * len(offsets)
        for i in range(n_records):
            track = meta["track_id"][i].decode()
            if frame_level:
                start = int(meta["start_frame"][i])
                record_sum = np.zeros((n_frames, outputs.shape[-1]))
                record_count = np.zeros((n_frames, 1))
                for w, o in enumerate(offsets):
                    record_sum[o:o + patch_frames] += outputs[i, w]
                    record_count[o:o + patch_frames] += 1
                sums.setdefault(track, []).append((start, record_sum, record_count))
                labels.setdefault(track, []).append((start, _time_first(np.asarray(y[i]), task)))
            else:
                sums[track] = sums.get(track, 0.0) + outputs[i].sum(axis=0)
                counts[track] = counts.get(track, 0) + len(offsets)
                labels.setdefault(track, []).append((0, np.asarray(y[i])))
    bar.close()
    result = TrackOutputs(patches=patches)
    for track in sorted(sums):
        result.track_ids.append(track)
        if not frame_level:
            result.outputs.append(sums[track] / counts[track])
            result.labels.append(labels[track][0][1])
            continue
        pieces = sums[track]
        length = max(start + piece.shape[0] for start, piece, _ in pieces)
        total, count = np.zeros((length, pieces[0][1].shape[1])), np.zeros((length, 1))
        for start, piece_sum, piece_count in pieces:
            total[start:start + piece_sum.shape[0]] += piece_sum
            count[start:start + piece_count.shape[0]] += piece_count
        result.outputs.append(total / np.maximum(count, 1))
        first_label = labels[track][0][1]
        stitched = np.zeros((length,) + first_label.shape[1:], dtype=first_label.dtype)
        for start, label in labels[track]:  # overlapping windows carry the same labels
            stitched[start:start + label.shape[0]] = label
        result.labels.append(stitched)
    return result


# --------------------------------------------------------------------------------------------
# Metrics of a split


def task_metrics(task: str, outputs: TrackOutputs, *, vocabulary: Sequence[str] | None, hop_seconds: float | None,
                 train_label_counts: Sequence[float] | None = None,
                 threshold: float = ONSET_THRESHOLD) -> dict[str, Any]:
    """:func:`clip_metrics` or :func:`frame_metrics` of a split's :class:`TrackOutputs`."""
    if task.startswith("frame_"):
        return frame_metrics(task, outputs.outputs, outputs.labels, hop_seconds=hop_seconds, vocabulary=vocabulary,
                             threshold=threshold)
    return clip_metrics(task, np.stack(outputs.labels), np.stack(outputs.outputs), vocabulary=vocabulary,
                        train_label_counts=train_label_counts)


# --------------------------------------------------------------------------------------------
# Plot


def plot_metrics(path: str | os.PathLike, *, task: str, metrics: Mapping[str, Any], outputs: TrackOutputs,
                 hop_seconds: float | None = None, vocabulary: Sequence[str] | None = None,
                 title: str = "") -> Path:
    """One PNG per task kind: confusion matrix (single label), per-tag AUC bars (multi label),
    predicted vs true (regression), activation vs reference onsets, piano rolls, chord classes
    (frame tasks, for the first track with events). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(8, 6) if task in ("single_label", "multi_label") else (10, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    names = list(vocabulary) if vocabulary is not None else None
    if task == "single_label":
        from sklearn.metrics import ConfusionMatrixDisplay

        matrix = np.asarray(metrics["confusion_matrix"])
        recall = metrics.get("per_class_recall") or {}
        shown = [f"{name} ({100 * recall[name]:.0f}%)" if name in recall else name for name in (names or [])] or None
        size = max(6.0, 0.6 * len(matrix) + 3)
        fig.set_size_inches(size, size * 0.85)
        ConfusionMatrixDisplay(matrix, display_labels=shown).plot(ax=ax, colorbar=False, cmap="Blues",
                                                                   xticks_rotation=45)
        if names:  # recall belongs to the true labels (rows); the columns keep the plain names
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_ylabel("true label (recall)")
        ax.set_title(f"{title} accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}")
    elif task == "multi_label":
        tags = list(metrics["per_tag"])
        roc = [metrics["per_tag"][t]["roc_auc"] or 0.0 for t in tags]
        pr = [metrics["per_tag"][t]["pr_auc"] or 0.0 for t in tags]
        positions = np.arange(len(tags))
        ax.bar(positions - 0.2, roc, width=0.4, label="ROC-AUC")
        ax.bar(positions + 0.2, pr, width=0.4, label="PR-AUC")
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(positions, tags, rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.legend()
        ax.set_title(f"{title} macro ROC-AUC {_number(metrics['roc_auc_macro'])}, "
                     f"PR-AUC {_number(metrics['pr_auc_macro'])}")
    elif task == "regression":
        true, predicted = np.stack(outputs.labels).reshape(len(outputs.labels), -1), np.stack(outputs.outputs)
        for j in range(predicted.shape[1]):
            label = names[j] if names else str(j)
            ax.scatter(true[:, j], predicted[:, j], s=12, label=label)
        low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
        ax.legend()
        ax.set_title(f"{title} MAE {metrics['mae']:.3g}, R² {_number(metrics['r2'])}")
    else:
        index = _first_track_with_events(task, outputs)
        output, label = outputs.outputs[index], outputs.labels[index]
        times = np.arange(len(output)) * hop_seconds
        track = outputs.track_ids[index]
        if task == "frame_onset":
            min_distance = metrics["peak_picking"]["min_distance_frames"]
            threshold = metrics["peak_picking"]["threshold"]
            reference = np.flatnonzero(np.asarray(label) >= 1.0)
            # A 10 s excerpt from shortly before the first reference onset: a minute is a solid block.
            first = (reference[0] * hop_seconds - 0.5) if len(reference) else 0.0
            start = max(0.0, min(first, times[-1] - ONSET_EXCERPT_SECONDS))
            view = (times >= start) & (times <= start + ONSET_EXCERPT_SECONDS)
            ax.plot(times[view], output[view, 0], label="activation", linewidth=1)
            shown = [t for t in reference * hop_seconds if start <= t <= start + ONSET_EXCERPT_SECONDS]
            for i, t in enumerate(shown):
                ax.axvline(t, color="green", alpha=0.6, linewidth=1, label="reference onset" if i == 0 else None)
            peaks = pick_onsets(output[:, 0], threshold=threshold, min_distance=min_distance)
            peaks = peaks[view[peaks]]
            ax.plot(peaks * hop_seconds, output[peaks, 0], "rx", markersize=8, label="picked onset")
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
            ax.set_xlim(start, start + ONSET_EXCERPT_SECONDS)
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("onset activation")
            ax.set_title(f"{title} {track}: onset F {_number(metrics['onset_f'])} (all tracks)")
        elif task == "frame_notes":
            shown = np.where(np.asarray(label) >= 0.5, 1.0, 0.0) - np.asarray(output)
            extent = (0, len(output) * hop_seconds, MIN_PITCH - 0.5, MIN_PITCH + output.shape[1] - 0.5)
            image = ax.imshow(shown.T, origin="lower", aspect="auto", extent=extent, cmap="coolwarm", vmin=-1, vmax=1)
            fig.colorbar(image, ax=ax, label="reference - activation")
            ax.set_ylabel("MIDI pitch")
            ax.set_title(f"{title} {track}: note onset F {_number(metrics['note_onset_f'])} (all tracks)")
        else:
            ax.step(times, np.asarray(label), where="post", label="reference")
            ax.step(times, np.asarray(output).argmax(axis=1), where="post", label="estimate", alpha=0.7)
            ax.set_ylabel("chord class")
            ax.set_title(f"{title} {track}: majmin {_number(metrics['majmin'])} (all tracks)")
        ax.set_xlabel("time (s)")
        if task != "frame_notes":  # the piano roll has a colorbar instead
            ax.legend(loc="upper right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _first_track_with_events(task: str, outputs: TrackOutputs) -> int:
    for i, label in enumerate(outputs.labels):
        events = np.asarray(label) >= 1.0 if task != "frame_chords" else np.asarray(label) > 0
        if events.any():
            return i
    return 0


_PLOT_NAMES = {"single_label": "confusion_matrix.png", "multi_label": "tag_auc.png", "regression": "regression.png",
               "frame_onset": "onsets.png", "frame_notes": "notes.png", "frame_chords": "chords.png"}


# --------------------------------------------------------------------------------------------
# Evaluate


def hop_seconds_of(feature: Mapping[str, Any]) -> float | None:
    """Seconds per frame of a manifest feature entry (``spec.params.hop_length / spec.sample_rate``)."""
    spec = feature.get("spec") or {}
    hop, sr = (spec.get("params") or {}).get("hop_length"), spec.get("sample_rate")
    return None if not hop or not sr else float(hop) / float(sr)


def store_track_statistics(store: str | os.PathLike, split: str, *, feature: str | None = None
                           ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(track ids, statistics (n, 2 * bins), labels)`` of a split's clean records
    (:func:`~mirdl_tf.metrics.track_statistics` of each track's segments), read with numpy."""
    from mirdl.store.adapters import read_shard
    from mirdl.store.manifest import shard_paths
    from mirdl.store.remote import fetched

    manifest = read_manifest(store)
    feature = feature or next(iter(manifest["features"]))
    segments: dict[str, list[np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    for path in shard_paths(store, manifest, split):
        with fetched(str(path)) as local:  # a store on object storage: one shard at a time
            for record in read_shard(local, manifest=manifest, features=[feature]):
                if int(record["variant"]) == 0:
                    segments.setdefault(record["track_id"], []).append(record[feature])
                    labels[record["track_id"]] = np.asarray(record["label"])
    ids = sorted(segments)
    if not ids:
        return [], np.zeros((0, 0)), np.zeros((0,))
    return ids, np.stack([track_statistics(segments[t]) for t in ids]), np.stack([labels[t] for t in ids])


def _statistics_baseline(store, manifest, info, split, outputs: TrackOutputs, *,
                         vocabulary) -> dict[str, Any]:
    """The per-track-statistics baseline of the evaluated split, fitted on the store's training split."""
    train_split = (info.get("store") or {}).get("train_split") or "train"
    first = next(iter(manifest["features"]))
    if train_split not in manifest["splits"] or train_split == split:
        return {"method": f"per-track statistics: not fitted (no training split {train_split!r} besides {split!r})"}
    _, train_x, train_y = store_track_statistics(store, train_split, feature=first)
    test_ids, test_x, test_y = store_track_statistics(store, split, feature=first)
    if len(train_x) < 2 or not len(test_x):
        return {"method": "per-track statistics: not fitted (too few tracks)"}
    result = statistics_baseline(info["task"]["type"], train_x, train_y, test_x, test_y, vocabulary=vocabulary)
    result["feature"] = first
    return result


def evaluate(model_dir: str | os.PathLike, store: str | os.PathLike, split: str = "test", *,
             out: str | os.PathLike | None = None, plot: bool = False, checkpoint: str = "best",
             batch_size: int = 32, threshold: float = ONSET_THRESHOLD) -> dict[str, Any]:
    """Evaluate a ``mirdl train`` run on ``store``'s ``split``; write ``OUT/metrics.json`` (and a PNG).

    Parameters
    ----------
    model_dir : path-like
        The run directory (``model_info.json``, ``best.keras`` / ``last.keras``).
    store : path-like
        A store with the model's feature (same spec fingerprint) and task.
    split : str
    out : path-like, optional
        Default ``MODEL_DIR/eval-SPLIT``.
    plot : bool
        Also write the task's PNG (:func:`plot_metrics`).
    checkpoint : {"best", "last"}
    batch_size : int
        Records per prediction batch.
    threshold : float
        Onset / note activation threshold.

    Returns
    -------
    dict
        What ``metrics.json`` holds: ``task``, ``split``, ``store``, ``model_dir``, ``checkpoint``,
        ``tracks``, ``patches``, ``aggregation``, ``metrics`` (and ``plot``).
    """
    model, info = load_trained(model_dir, checkpoint=checkpoint)
    manifest = read_manifest(store)
    check_compatible(info, manifest, store=store)
    if split not in manifest["splits"]:
        raise StoreError(f"split {split!r} is not in {store} (splits: {', '.join(sorted(manifest['splits']))})")
    task = info["task"]["type"]
    feature = manifest["features"][info["feature"]["name"]]
    hop = hop_seconds_of(feature)
    if task.startswith("frame_") and hop is None:
        raise StoreError(f"{store}: feature {info['feature']['name']!r} has no spec hop_length / sample_rate")
    outputs = track_outputs(lambda x: model.predict_on_batch(x), store, split, feature=info["feature"]["name"],
                            patch_frames=int(info["patch_frames"]), task=task, frame_level=task.startswith("frame_"),
                            normalization=info.get("normalization"), batch_size=batch_size)
    if not outputs.track_ids:
        raise StoreError(f"{store}: split {split!r} has no clean records to evaluate")
    vocabulary = info["task"].get("vocabulary")
    metrics = task_metrics(task, outputs, vocabulary=vocabulary, hop_seconds=hop,
                           train_label_counts=info.get("train_label_counts"), threshold=threshold)
    if task in ("single_label", "multi_label", "regression"):
        metrics["statistics_baseline"] = _statistics_baseline(store, manifest, info, split, outputs,
                                                              vocabulary=vocabulary)
    out = Path(out) if out is not None else Path(model_dir) / f"eval-{split}"
    out.mkdir(parents=True, exist_ok=True)
    result = {"task": task, "split": split, "store": str(store) if is_remote(store) else str(Path(store).resolve()),
              "store_fingerprint": manifest.get("fingerprint"), "model_dir": str(Path(model_dir).resolve()),
              "model": info["model"]["name"], "checkpoint": checkpoint, "tracks": len(outputs.track_ids),
              "patches": outputs.patches, "aggregation": AGGREGATION, "metrics": metrics}
    if plot:
        result["plot"] = str(plot_metrics(out / _PLOT_NAMES[task], task=task, metrics=metrics, outputs=outputs,
                                          hop_seconds=hop, vocabulary=vocabulary,
                                          title=f"{info['model']['name']} {split}:"))
    write_json_atomic(out / "metrics.json", result)
    result["out"] = str(out)
    return result
