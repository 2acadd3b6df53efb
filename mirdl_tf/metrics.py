"""Metrics of per-track predictions, with their baselines: numpy, scikit-learn and mir_eval, no TensorFlow.

:mod:`mirdl_tf.evaluate` reports them for a trained model, :func:`mirdl_tf.transfer.probe`
for a linear probe on extracted features; a user can score their own predictions without
importing TensorFlow. What each task reports is described in :mod:`mirdl_tf.evaluate`.

- :func:`clip_metrics`: ``single_label`` (accuracy, macro F1, confusion matrix, chance and
  majority-class baseline), ``multi_label`` (macro ROC-AUC / PR-AUC, per tag, constant-score
  baseline), ``regression`` (MAE, R², per target, mean-target baseline).
- :func:`statistics_baseline`: the per-track-statistics baseline a model should beat: each
  track's mean and std over time of a feature (:func:`track_statistics`), standardised on the
  training split, then logistic regression (single label, one per tag for multi label) or ridge
  regression, fitted on the training split.
- :func:`frame_metrics`: ``frame_onset`` and ``frame_notes`` (mir_eval onset / note-onset F,
  per track and pooled), ``frame_chords`` (mir_eval majmin and root weighted accuracy).

Examples
--------
>>> clip_metrics("single_label", np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))["accuracy"]
0.6666666666666666
>>> pick_onsets(np.array([0, 0.9, 0.2, 0.1, 0.8, 0.7, 0]), min_distance=1)
array([1, 4])
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from mirdl.errors import ConfigError

__all__ = [
    "ONSET_THRESHOLD",
    "ONSET_MIN_DISTANCE",
    "ONSET_WINDOW",
    "MIN_PITCH",
    "clip_metrics",
    "track_statistics",
    "statistics_baseline",
    "frame_metrics",
    "pick_onsets",
    "roll_to_notes",
]

#: Activation a peak must reach to be an onset (and a piano-roll cell to be a note).
ONSET_THRESHOLD = 0.5
#: Minimum distance between two picked onsets, seconds.
ONSET_MIN_DISTANCE = 0.03
#: mir_eval's tolerance window for onsets and note onsets, seconds.
ONSET_WINDOW = 0.05
#: MIDI pitch of row 0 of a ``frame_notes`` label (as mirdl.features.labels.note_roll).
MIN_PITCH = 21


def clip_metrics(task: str, y_true: np.ndarray, y_score: np.ndarray, *, vocabulary: Sequence[str] | None = None,
                 train_label_counts: Sequence[float] | None = None) -> dict[str, Any]:
    """scikit-learn metrics of per-track clip predictions (see the module docstring).

    Parameters
    ----------
    task : {"single_label", "multi_label", "regression"}
    y_true : np.ndarray
        Class indices ``(n,)``, multi-hot ``(n, k)`` or targets ``(n, k)``.
    y_score : np.ndarray [shape=(n, k)]
        Class probabilities, tag probabilities or predicted targets.
    vocabulary : sequence of str, optional
        Names of the classes, tags or targets (per-output entries are keyed by them).
    train_label_counts : sequence, optional
        Records per class in the training split: the majority-class baseline.

    Returns
    -------
    dict
        Numbers as Python floats; see the module docstring for the keys.
    """
    from sklearn import metrics

    y_score = np.asarray(y_score, dtype=np.float64)
    n_outputs = y_score.shape[1]
    names = list(vocabulary) if vocabulary is not None else [str(i) for i in range(n_outputs)]
    if task == "single_label":
        y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
        y_pred = y_score.argmax(axis=1)
        labels = list(range(n_outputs))
        result = {
            "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
            "macro_f1": float(metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
            "chance_accuracy": 1.0 / n_outputs,
            "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            "classes": names,
            "per_class_recall": dict(zip(names, (float(r) for r in metrics.recall_score(
                y_true, y_pred, labels=labels, average=None, zero_division=0)))),
        }
        if train_label_counts is not None and len(train_label_counts) == n_outputs:
            majority = int(np.argmax(train_label_counts))
            constant = np.full_like(y_true, majority)
            result["baseline"] = {
                "method": f"always the training split's majority class {names[majority]!r}",
                "accuracy": float(metrics.accuracy_score(y_true, constant)),
                "macro_f1": float(metrics.f1_score(y_true, constant, labels=labels, average="macro",
                                                   zero_division=0)),
            }
        return result
    if task == "multi_label":
        y_true = np.asarray(y_true, dtype=np.float64) >= 0.5
        per_tag, roc, pr = {}, [], []
        for j, name in enumerate(names):
            positives = int(y_true[:, j].sum())
            entry = {"positives": positives, "roc_auc": None, "pr_auc": None}
            if 0 < positives < len(y_true):
                entry["roc_auc"] = float(metrics.roc_auc_score(y_true[:, j], y_score[:, j]))
                entry["pr_auc"] = float(metrics.average_precision_score(y_true[:, j], y_score[:, j]))
                roc.append(entry["roc_auc"])
                pr.append(entry["pr_auc"])
            per_tag[name] = entry
        evaluated = [j for j, name in enumerate(names) if per_tag[name]["roc_auc"] is not None]
        return {
            "roc_auc_macro": float(np.mean(roc)) if roc else None,
            "pr_auc_macro": float(np.mean(pr)) if pr else None,
            "tags_evaluated": len(roc),
            "tags_skipped": [name for name in names if per_tag[name]["roc_auc"] is None],
            "per_tag": per_tag,
            # A constant score: ROC-AUC 0.5, PR-AUC the positive rate.
            "baseline": {"method": "constant score", "roc_auc_macro": 0.5,
                         "pr_auc_macro": float(np.mean(y_true[:, evaluated].mean(axis=0))) if evaluated else None},
        }
    if task == "regression":
        y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_score), -1)
        per_target = {name: {"mae": float(metrics.mean_absolute_error(y_true[:, j], y_score[:, j])),
                             "r2": float(metrics.r2_score(y_true[:, j], y_score[:, j])) if len(y_true) > 1 else None}
                      for j, name in enumerate(names)}
        return {
            "mae": float(metrics.mean_absolute_error(y_true, y_score)),
            "r2": float(metrics.r2_score(y_true, y_score)) if len(y_true) > 1 else None,
            "per_target": per_target,
            "baseline": {"method": "the split's mean target (R² 0 by definition)", "r2": 0.0,
                         "mae": float(np.mean(np.abs(y_true - y_true.mean(axis=0))))},
        }
    raise ConfigError(f"clip_metrics is for clip tasks. Received: task={task!r}")


def track_statistics(segments: Sequence[np.ndarray]) -> np.ndarray:
    """One track's mean and standard deviation over time of a feature, concatenated: ``(2 * n_bins,)``.

    Parameters
    ----------
    segments : sequence of np.ndarray [shape=(..., n_bins, n_frames)]
        The track's stored segments (leading axes, e.g. channels, are flattened into bins).

    Examples
    --------
    >>> track_statistics([np.array([[0.0, 2.0]]), np.array([[4.0, 6.0]])])
    array([3.        , 2.23606798])
    """
    frames = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1, np.shape(s)[-1]) for s in segments], axis=-1)
    return np.concatenate([frames.mean(axis=-1), frames.std(axis=-1)])


def statistics_baseline(task: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                        test_y: np.ndarray, *, vocabulary: Sequence[str] | None = None,
                        seed: int = 0) -> dict[str, Any]:
    """Fit the per-track-statistics baseline on the training split and score it on the test split.

    Parameters
    ----------
    task : {"single_label", "multi_label", "regression"}
    train_x, test_x : np.ndarray [shape=(n_tracks, d)]
        :func:`track_statistics` of each track.
    train_y, test_y : np.ndarray
        Labels as :func:`clip_metrics` takes them.
    vocabulary : sequence of str, optional
    seed : int
        ``random_state`` of the solvers (lbfgs is deterministic; kept for completeness).

    Returns
    -------
    dict
        ``method`` and the task's headline numbers from :func:`clip_metrics` of the baseline's
        predictions (``accuracy``, ``macro_f1``; ``roc_auc_macro``, ``pr_auc_macro``; ``mae``, ``r2``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> x = rng.normal(size=(40, 4)) + y[:, None]
    >>> statistics_baseline("single_label", x[::2], y[::2], x[1::2], y[1::2])["accuracy"] > 0.7
    True
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    n_outputs = len(vocabulary) if vocabulary is not None else None
    method = "per-track mean and std over time of the feature, standardised, "
    if task == "single_label":
        train_y = np.asarray(train_y).astype(np.int64).reshape(-1)
        n_outputs = n_outputs or int(max(train_y.max(), np.max(test_y)) + 1)
        if len(np.unique(train_y)) < 2:
            return {"method": method + "logistic regression: not fitted (one class in the training split)"}
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        model.fit(train_x, train_y)
        scores = np.zeros((len(test_x), n_outputs))
        scores[:, model.classes_] = model.predict_proba(test_x)
        keys, method = ("accuracy", "macro_f1"), method + "logistic regression on the training split"
    elif task == "multi_label":
        train_y = np.asarray(train_y, dtype=np.float64) >= 0.5
        keep = [j for j in range(train_y.shape[1]) if 0 < train_y[:, j].sum() < len(train_y)]
        scores = np.full((len(test_x), train_y.shape[1]), 0.5)
        if keep:
            model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=2000)))
            model.fit(train_x, train_y[:, keep].astype(int))
            scores[:, keep] = model.predict_proba(test_x)
        keys, method = ("roc_auc_macro", "pr_auc_macro"), method + "one logistic regression per tag"
    elif task == "regression":
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
        model.fit(train_x, np.asarray(train_y, dtype=np.float64).reshape(len(train_x), -1))
        scores = model.predict(test_x).reshape(len(test_x), -1)
        keys, method = ("mae", "r2"), method + "ridge regression on the training split"
    else:
        raise ConfigError(f"statistics_baseline is for clip tasks. Received: task={task!r}")
    scored = clip_metrics(task, test_y, scores, vocabulary=vocabulary)
    return {"method": method, **{key: scored[key] for key in keys}}


def pick_onsets(activation: np.ndarray, *, threshold: float = ONSET_THRESHOLD, min_distance: int = 1) -> np.ndarray:
    """Frames of the onsets in a per-frame activation: local maxima >= ``threshold``, ``min_distance`` frames apart.

    ``scipy.signal.find_peaks`` (a plateau counts once, at its middle); of two peaks closer
    than ``min_distance`` the higher is kept.
    """
    import scipy.signal

    peaks, _ = scipy.signal.find_peaks(np.asarray(activation, dtype=np.float64).reshape(-1), height=threshold,
                                       distance=max(1, int(min_distance)))
    return peaks


def roll_to_notes(roll: np.ndarray, *, hop_seconds: float, min_pitch: int = MIN_PITCH) -> tuple[np.ndarray, np.ndarray]:
    """Notes of a binary piano roll ``(n_frames, n_pitches)``: ``(intervals (n, 2) s, pitches (n,) Hz)``.

    A note is a run of active frames of one pitch, from its first frame's time to the end of its last.
    """
    roll = np.asarray(roll, dtype=bool)
    padded = np.pad(roll, ((1, 1), (0, 0)))
    change = np.diff(padded.astype(np.int8), axis=0)
    intervals, pitches = [], []
    for row in range(roll.shape[1]):
        starts = np.flatnonzero(change[:, row] == 1)
        ends = np.flatnonzero(change[:, row] == -1)
        for start, end in zip(starts, ends):
            intervals.append((start * hop_seconds, end * hop_seconds))
            pitches.append(440.0 * 2.0 ** ((min_pitch + row - 69) / 12.0))
    return np.asarray(intervals, dtype=np.float64).reshape(-1, 2), np.asarray(pitches, dtype=np.float64)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _event_scores(prefix: str, per_track: list[tuple[float, float, float]], *, matched: int, n_ref: int,
                  n_est: int) -> dict[str, float | None]:
    """Mean over tracks of mir_eval's per-track (F, P, R), and the F of all tracks' events pooled."""
    precision = matched / n_est if n_est else 0.0
    recall = matched / n_ref if n_ref else 0.0
    return {
        f"{prefix}_f": _mean([f for f, _, _ in per_track]),
        f"{prefix}_precision": _mean([p for _, p, _ in per_track]),
        f"{prefix}_recall": _mean([r for _, _, r in per_track]),
        f"{prefix}_f_pooled": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


def frame_metrics(task: str, outputs: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, hop_seconds: float,
                  vocabulary: Sequence[str] | None = None, threshold: float = ONSET_THRESHOLD) -> dict[str, Any]:
    """mir_eval metrics of stitched per-track frame outputs (see the module docstring).

    Parameters
    ----------
    task : {"frame_onset", "frame_notes", "frame_chords"}
    outputs : sequence of np.ndarray [shape=(n_frames, k)]
    labels : sequence of np.ndarray
        Time first: onsets ``(n_frames,)`` in {0, 0.5, 1}, piano roll ``(n_frames, 88)``, chord
        indices ``(n_frames,)``.
    hop_seconds : float
        Seconds per frame.
    vocabulary : sequence of str
        Chord labels (``frame_chords``).
    threshold : float
        Onset peak height / piano-roll activation threshold.
    """
    import mir_eval

    if task == "frame_onset":
        min_distance = max(1, math.ceil(ONSET_MIN_DISTANCE / hop_seconds))
        per_track, matched, n_ref, n_est = [], 0, 0, 0
        for output, label in zip(outputs, labels):
            reference = np.flatnonzero(np.asarray(label).reshape(-1) >= 1.0) * hop_seconds
            estimated = pick_onsets(output[:, 0], threshold=threshold, min_distance=min_distance) * hop_seconds
            n_ref, n_est = n_ref + len(reference), n_est + len(estimated)
            matched += len(mir_eval.util.match_events(reference, estimated, ONSET_WINDOW))
            if len(reference):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "estimated onsets are empty" is a score of 0, not news
                    per_track.append(mir_eval.onset.f_measure(reference, estimated, window=ONSET_WINDOW))
        return {
            **_event_scores("onset", per_track, matched=matched, n_ref=n_ref, n_est=n_est),
            "tracks_with_onsets": len(per_track),
            "reference_onsets": n_ref,
            "estimated_onsets": n_est,
            "window_seconds": ONSET_WINDOW,
            "peak_picking": {"threshold": threshold, "min_distance_frames": min_distance,
                             "method": "scipy.signal.find_peaks local maxima"},
        }
    if task == "frame_notes":
        per_track, matched, n_ref, n_est = [], 0, 0, 0
        for output, label in zip(outputs, labels):
            ref_intervals, ref_pitches = roll_to_notes(np.asarray(label) >= 0.5, hop_seconds=hop_seconds)
            est_intervals, est_pitches = roll_to_notes(np.asarray(output) >= threshold, hop_seconds=hop_seconds)
            n_ref, n_est = n_ref + len(ref_pitches), n_est + len(est_pitches)
            if len(ref_pitches) and len(est_pitches):
                matched += len(mir_eval.transcription.match_notes(
                    ref_intervals, ref_pitches, est_intervals, est_pitches, onset_tolerance=ONSET_WINDOW,
                    offset_ratio=None))
            if len(ref_pitches):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    precision, recall, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
                        ref_intervals, ref_pitches, est_intervals, est_pitches, onset_tolerance=ONSET_WINDOW,
                        offset_ratio=None)
                per_track.append((f, precision, recall))
        return {
            **_event_scores("note_onset", per_track, matched=matched, n_ref=n_ref, n_est=n_est),
            "tracks_with_notes": len(per_track),
            "reference_notes": n_ref,
            "estimated_notes": n_est,
            "threshold": threshold,
        }
    if task == "frame_chords":
        if vocabulary is None:
            raise ConfigError("frame_chords metrics need the chord vocabulary")
        vocabulary = list(vocabulary)
        majmin, root, durations, frames_right, frames = [], [], [], 0, 0
        for output, label in zip(outputs, labels):
            estimated = np.asarray(output).argmax(axis=1)
            reference = np.asarray(label).astype(np.int64).reshape(-1)
            frames_right += int((estimated == reference).sum())
            frames += len(reference)
            grid = np.arange(len(reference) + 1) * hop_seconds
            frame_intervals = np.stack([grid[:-1], grid[1:]], axis=1)
            intervals, ref_labels, est_labels = mir_eval.util.merge_labeled_intervals(
                frame_intervals, [vocabulary[i] for i in reference], frame_intervals,
                [vocabulary[i] for i in estimated])
            durations.append(np.diff(intervals, axis=1).reshape(-1))
            majmin.append(mir_eval.chord.majmin(ref_labels, est_labels))
            root.append(mir_eval.chord.root(ref_labels, est_labels))
        weights = np.concatenate(durations) if durations else np.zeros(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {
                "majmin": float(mir_eval.chord.weighted_accuracy(np.concatenate(majmin), weights)) if frames else None,
                "root": float(mir_eval.chord.weighted_accuracy(np.concatenate(root), weights)) if frames else None,
                "frame_accuracy": frames_right / frames if frames else None,
            }
    raise ConfigError(f"frame_metrics is for frame tasks. Received: task={task!r}")
