"""Plots people read: label counts (log scale when skewed, counts on the bars), confusion matrices
(rotated names with per-class recall), onset excerpts (10 s, not a minute)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mirdl.store.summary import plot_label_counts  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_label_counts_use_a_log_scale_only_when_skewed():
    names = ["acoustic_guitar", "snare", "voice"]
    skewed = plot_label_counts(plt, names, {"train": [551, 9, 40], "test": [60, 1, 5]}, title="t", unit="records")
    axis = skewed.axes[0]
    assert axis.get_yscale() == "log" and axis.get_ylabel() == "records (log scale)"
    assert [text.get_text() for text in axis.texts][:3] == ["551", "9", "40"]  # counts on the bars
    assert axis.get_xticklabels()[0].get_rotation() == 45  # long names do not overlap
    even = plot_label_counts(plt, ["a", "b"], {"train": [10, 12]}, title="t", unit="records")
    assert even.axes[0].get_yscale() == "linear" and even.axes[0].get_xticklabels()[0].get_rotation() == 0
    plt.close("all")


def _outputs(n_frames, onset_frames):
    from mirdl_tf.evaluate import TrackOutputs

    activation = np.zeros((n_frames, 1))
    label = np.zeros(n_frames)
    activation[onset_frames, 0] = 0.9
    label[onset_frames] = 1.0
    return TrackOutputs(track_ids=["t"], outputs=[activation], labels=[label], patches=1)


def test_confusion_matrix_and_onset_plots(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from mirdl_tf import evaluate
    from mirdl_tf.metrics import clip_metrics, frame_metrics

    drawn = []
    monkeypatch.setattr(Figure, "savefig", lambda self, path, **kw: (drawn.append(self), Path_write(path)))
    names = ["acoustic_guitar", "electric_bass", "snare_drum"]
    y = np.array([0, 0, 1, 2, 2, 2])
    scores = np.eye(3)[[0, 1, 1, 2, 2, 0]]
    metrics = clip_metrics("single_label", y, scores, vocabulary=names)
    assert metrics["per_class_recall"] == {"acoustic_guitar": 0.5, "electric_bass": 1.0, "snare_drum": 2 / 3}
    evaluate.plot_metrics(tmp_path / "cm.png", task="single_label", metrics=metrics, outputs=None, vocabulary=names)
    axis = drawn[-1].axes[0]
    ticks = [label.get_text() for label in axis.get_yticklabels()]
    assert ticks == ["acoustic_guitar (50%)", "electric_bass (100%)", "snare_drum (67%)"]
    assert [(label.get_text(), label.get_rotation()) for label in axis.get_xticklabels()] == [(n, 45) for n in names]

    hop = 0.032
    onsets = np.arange(40, 1900, 25)  # about a minute of onsets every 0.8 s
    outputs = _outputs(1900, onsets)
    metrics = frame_metrics("frame_onset", outputs.outputs, outputs.labels, hop_seconds=hop)
    evaluate.plot_metrics(tmp_path / "on.png", task="frame_onset", metrics=metrics, outputs=outputs, hop_seconds=hop)
    axis = drawn[-1].axes[0]
    low, high = axis.get_xlim()
    assert high - low == evaluate.ONSET_EXCERPT_SECONDS and low == 40 * hop - 0.5
    in_view = [t for t in onsets * hop if low <= t <= high]
    assert len(in_view) == 12  # of 75 onsets
    assert len([line for line in axis.lines if line.get_color() == "green"]) == len(in_view)


def Path_write(path):
    from pathlib import Path

    Path(path).write_bytes(PNG)
