"""mirdl_tf.evaluate and mirdl_tf.metrics: patch windows, per-track aggregation and stitching, metrics with known
answers, plots."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mirdl.errors import ConfigError, StoreError
from mirdl_tf.evaluate import check_compatible, evaluate, track_outputs, window_offsets
from mirdl_tf.metrics import ONSET_WINDOW, clip_metrics, frame_metrics, pick_onsets, roll_to_notes
from mirdl_tf.train import TrainConfig, train

N_FREQ, N_FRAMES = 6, 20  # geometry of the known-answer stores (conftest.write_known_store)
HOP = 0.016  # seconds per frame in the frame-metric tests
IDENTITY = {"mean": [0.0] * N_FREQ, "std": [1.0] * N_FREQ}  # known-store features stay exact


# --------------------------------------------------------------------------- windows
@pytest.mark.parametrize("n_frames,patch,expected", [(10, 4, [0, 4, 6]), (8, 4, [0, 4]), (4, 4, [0]),
                                                     (20, 7, [0, 7, 13])])
def test_window_offsets_cover_every_frame(n_frames, patch, expected):
    offsets = window_offsets(n_frames, patch)
    assert offsets == expected
    covered = np.zeros(n_frames, bool)
    for offset in offsets:
        covered[offset:offset + patch] = True
    assert covered.all()


def test_window_longer_than_segment_is_a_config_error():
    with pytest.raises(ConfigError, match="patch_frames=5 is longer"):
        window_offsets(4, 5)


# --------------------------------------------------------------------------- aggregation on known stores
def test_frame_outputs_are_stitched_by_start_frame(known_store):
    # Known store: feature row 0 of a record is start_frame + t, its onset label is start_frame + t.
    store = known_store("tfrecord", "frame_onset")
    outputs = track_outputs(lambda x: x[:, 0, :, None], store, "train", feature="logmel", patch_frames=8,
                            task="frame_onset", frame_level=True, normalization=IDENTITY, batch_size=5)
    assert outputs.track_ids == [f"synth/t{i:03d}" for i in range(6)]
    assert outputs.patches == 6 * 2 * 3  # tracks x segments x windows (0, 8, 12) of clean records only
    for output, label in zip(outputs.outputs, outputs.labels):
        np.testing.assert_allclose(output[:, 0], np.arange(2 * N_FRAMES))  # overlaps averaged exactly
        np.testing.assert_allclose(label, np.arange(2 * N_FRAMES))


def test_frame_note_labels_come_out_time_first(known_store):
    store = known_store("hdf5", "frame_notes")  # label (2, T): row k is start_frame + t + k / 4
    outputs = track_outputs(lambda x: np.repeat(x[:, 0, :, None], 2, axis=2), store, "train", feature="logmel",
                            patch_frames=N_FRAMES, task="frame_notes", frame_level=True, normalization=IDENTITY)
    label = outputs.labels[0]
    assert label.shape == (2 * N_FRAMES, 2)
    np.testing.assert_allclose(label[:, 1] - label[:, 0], 0.25)
    np.testing.assert_allclose(label[:, 0], np.arange(2 * N_FRAMES))


def test_clip_outputs_are_the_mean_over_patches(known_store):
    store = known_store("parquet", "single_label")
    outputs = track_outputs(lambda x: x[:, 0, :].mean(axis=1, keepdims=True), store, "train", feature="logmel",
                            patch_frames=N_FRAMES // 2, task="single_label", frame_level=False,
                            normalization=IDENTITY)
    # Row 0 of segment s is 20 s + t: the mean over both segments' windows is the mean of 0..39.
    for track, output, label in zip(outputs.track_ids, outputs.outputs, outputs.labels):
        np.testing.assert_allclose(output, [np.arange(2 * N_FRAMES).mean()])
        assert int(label) == int(track[-3:]) % 3


def test_training_normalisation_is_applied(known_store):
    store = known_store("parquet", "single_label")
    shifted = {"mean": [5.0] * N_FREQ, "std": [2.0] * N_FREQ}
    outputs = track_outputs(lambda x: x[:, 0, :].mean(axis=1, keepdims=True), store, "train", feature="logmel",
                            patch_frames=N_FRAMES, task="single_label", frame_level=False, normalization=shifted)
    np.testing.assert_allclose(outputs.outputs[0], [(np.arange(2 * N_FRAMES).mean() - 5.0) / 2.0])


# --------------------------------------------------------------------------- clip metrics
def test_single_label_metrics_with_baseline():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    scores = np.eye(3)[[0, 1, 1, 2, 2, 0]]
    metrics = clip_metrics("single_label", y_true, scores, vocabulary=["a", "b", "c"], train_label_counts=[1, 1, 5])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert metrics["chance_accuracy"] == pytest.approx(1 / 3)
    assert metrics["baseline"]["accuracy"] == pytest.approx(3 / 6)  # always "c", the training majority
    assert "'c'" in metrics["baseline"]["method"]
    perfect = clip_metrics("single_label", y_true, np.eye(3)[y_true])
    assert perfect["accuracy"] == perfect["macro_f1"] == 1.0


def test_multi_label_metrics_skip_tags_without_both_classes():
    rng = np.random.default_rng(0)
    y_true = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1], [1, 0, 1]], dtype=np.float32)
    y_true[:, 0] = [1, 0, 1, 0, 0]
    scores = rng.uniform(size=y_true.shape)
    metrics = clip_metrics("multi_label", y_true, scores, vocabulary=["x", "never", "always"])
    assert metrics["tags_evaluated"] == 1 and metrics["tags_skipped"] == ["never", "always"]
    assert metrics["roc_auc_macro"] == pytest.approx(roc_auc_score(y_true[:, 0], scores[:, 0]))
    assert metrics["pr_auc_macro"] == pytest.approx(average_precision_score(y_true[:, 0], scores[:, 0]))
    assert metrics["per_tag"]["x"]["positives"] == 2


def test_regression_metrics():
    y_true = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    metrics = clip_metrics("regression", y_true, y_true + [[0.5, 0.0]], vocabulary=["a", "b"])
    assert metrics["mae"] == pytest.approx(0.25)
    assert metrics["per_target"]["b"] == {"mae": 0.0, "r2": 1.0}
    assert metrics["per_target"]["a"]["r2"] == pytest.approx(1 - 0.75 / 2)


def test_clip_metrics_reject_frame_tasks():
    with pytest.raises(ConfigError, match="clip tasks"):
        clip_metrics("frame_onset", np.zeros(2), np.zeros((2, 1)))


# --------------------------------------------------------------------------- peak picking, notes
def test_pick_onsets_local_maxima_above_threshold_and_apart():
    activation = np.array([0.0, 0.9, 0.2, 0.6, 0.7, 0.1, 0.4, 0.3, 0.8, 0.8, 0.0])
    assert pick_onsets(activation).tolist() == [1, 4, 8]  # 0.4 is below 0.5; the plateau counts once
    assert pick_onsets(activation, threshold=0.3).tolist() == [1, 4, 6, 8]
    assert pick_onsets(activation, min_distance=4).tolist() == [1, 8]  # of 1 and 4 the higher stays


def test_roll_to_notes():
    roll = np.zeros((10, 88), bool)
    roll[2:5, 48] = True  # A4
    roll[7:8, 48] = True
    roll[0:10, 0] = True  # A0, the whole clip
    intervals, pitches = roll_to_notes(roll, hop_seconds=0.1)
    order = np.argsort(intervals[:, 0] + pitches)
    np.testing.assert_allclose(intervals[order], [[0.0, 1.0], [0.2, 0.5], [0.7, 0.8]])
    np.testing.assert_allclose(pitches[order], [27.5, 440.0, 440.0])


# --------------------------------------------------------------------------- frame metrics (mir_eval)
def _onset_track(onset_frames, n_frames=200, widen=True):
    label = np.zeros(n_frames, np.float32)
    for frame in onset_frames:
        if widen:
            label[max(frame - 1, 0):frame + 2] = 0.5
        label[frame] = 1.0
    return label


def _activation(peak_frames, n_frames=200):
    activation = np.full((n_frames, 1), 0.05)
    for frame in peak_frames:
        activation[frame, 0] = 0.95
        activation[frame - 1, 0] = activation[frame + 1, 0] = 0.6  # a broad peak is still one onset
    return activation


def test_onset_f_measure_known_answers():
    onsets = [20, 60, 100, 150]
    labels = [_onset_track(onsets), _onset_track([30, 90])]
    exact = frame_metrics("frame_onset", [_activation(onsets), _activation([30, 90])], labels, hop_seconds=HOP)
    assert exact["onset_f"] == exact["onset_f_pooled"] == 1.0
    assert exact["reference_onsets"] == 6  # the 0.5 neighbours are not onsets
    shifted = frame_metrics("frame_onset", [_activation([o + 3 for o in onsets]), _activation([32, 93])], labels,
                            hop_seconds=HOP)  # 48 ms late: inside the 50 ms window
    assert shifted["onset_f"] == 1.0
    late = frame_metrics("frame_onset", [_activation([o + 4 for o in onsets]), _activation([30, 90])], labels,
                         hop_seconds=HOP)  # 64 ms late on track 1 only
    assert late["onset_f"] == pytest.approx(0.5) and late["onset_f_pooled"] == pytest.approx(2 / 6)
    assert ONSET_WINDOW == 0.05


def test_onset_metrics_count_false_alarms_and_silence():
    labels = [_onset_track([50]), np.zeros(200, np.float32)]
    metrics = frame_metrics("frame_onset", [_activation([50, 120]), _activation([80])], labels, hop_seconds=HOP)
    assert metrics["tracks_with_onsets"] == 1
    assert metrics["onset_precision"] == pytest.approx(0.5) and metrics["onset_recall"] == 1.0
    assert metrics["estimated_onsets"] == 3 and metrics["onset_f_pooled"] == pytest.approx(0.5)


def test_note_onset_f_measure():
    reference = np.zeros((100, 88), np.float32)
    reference[10:30, 40] = reference[50:60, 45] = 1.0
    perfect = frame_metrics("frame_notes", [reference * 0.9], [reference], hop_seconds=HOP)
    assert perfect["note_onset_f"] == 1.0 and perfect["reference_notes"] == 2
    half = reference.copy()
    half[50:60, 45] = 0
    half[50:60, 46] = 1  # wrong pitch
    metrics = frame_metrics("frame_notes", [half], [reference], hop_seconds=HOP)
    assert metrics["note_onset_f"] == pytest.approx(0.5)


def test_chord_weighted_accuracy():
    vocabulary = ["N", "C:maj", "C:min", "G:maj"]
    reference = np.array([1] * 50 + [3] * 50)
    right = np.eye(4)[reference]
    assert frame_metrics("frame_chords", [right], [reference], hop_seconds=HOP, vocabulary=vocabulary)["majmin"] == 1.0
    wrong_quality = np.eye(4)[np.array([2] * 50 + [3] * 50)]  # C:min for C:maj: right root, wrong quality
    metrics = frame_metrics("frame_chords", [wrong_quality], [reference], hop_seconds=HOP, vocabulary=vocabulary)
    assert metrics["majmin"] == pytest.approx(0.5) and metrics["root"] == 1.0
    assert metrics["frame_accuracy"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- evaluate() end to end
def _with_spec(store_copy, store):
    """A copy of a known store whose feature has a spec (hop 256 at 16 kHz) and a fingerprint."""
    copy = store_copy(store)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["features"]["logmel"].update(
        fingerprint="known", spec={"representation": "logmel", "sample_rate": 16000, "params": {"hop_length": 256}})
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def _tiny_run(store, out, model, args, task_epochs=1):
    config = TrainConfig.from_dict({"store": str(store), "model": {"name": model, "args": args}, "epochs": task_epochs,
                                    "batch_size": 8, "valid_split": None, "out": str(out)})
    train(config, log=lambda line: None)
    return out


@pytest.mark.parametrize("fmt,task,model,args,plot", [
    ("tfrecord", "frame_onset", "temporal_cnn", {"n_layers": 1, "filters": 2}, "onsets.png"),
    ("parquet", "single_label", "fcn", {"n_layers": 2, "base_filters": 2}, "confusion_matrix.png"),
    ("hdf5", "multi_label", "fcn", {"n_layers": 1, "base_filters": 2, "global_pool": "avg"}, "tag_auc.png"),
])
def test_evaluate_writes_metrics_and_plot(known_store, store_copy, tmp_path, fmt, task, model, args, plot):
    store = _with_spec(store_copy, known_store(fmt, task))
    run = _tiny_run(store, tmp_path / "run", model, args)
    result = evaluate(run, store, "train", out=tmp_path / "eval", plot=True)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["task"] == task and written["tracks"] == 6 and written["split"] == "train"
    assert written["metrics"] == json.loads(json.dumps(result["metrics"]))
    png = tmp_path / "eval" / plot
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if task == "single_label":
        assert 0.0 <= written["metrics"]["accuracy"] <= 1.0
        assert sum(map(sum, written["metrics"]["confusion_matrix"])) == 6
    if task == "frame_onset":  # known labels are start_frame + t: every frame but the first is >= 1
        assert written["metrics"]["reference_onsets"] == 6 * (2 * N_FRAMES - 1)
        assert 0.0 <= written["metrics"]["onset_f"] <= 1.0


def test_evaluate_refuses_another_feature(known_store, store_copy, tmp_path):
    store = _with_spec(store_copy, known_store("parquet", "single_label"))
    run = _tiny_run(store, tmp_path / "run", "fcn", {"n_layers": 1, "base_filters": 2})
    info = json.loads((run / "model_info.json").read_text())
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["features"]["logmel"]["fingerprint"] = "other"
    with pytest.raises(StoreError, match="not the one the model was trained on"):
        check_compatible(info, manifest, store=store)
    manifest["features"]["logmel"]["fingerprint"] = "known"
    manifest["task"]["vocabulary"] = ["x", "y", "z"]
    with pytest.raises(StoreError, match="is not the model's"):
        check_compatible(info, manifest, store=store)
    with pytest.raises(StoreError, match="split 'test' is not in"):
        evaluate(run, store, "test")
    with pytest.raises(StoreError, match="not a mirdl train run directory"):
        evaluate(tmp_path, store, "train")


def _outputs(track_outputs_list, labels):
    from mirdl_tf.evaluate import TrackOutputs

    return TrackOutputs(track_ids=[f"t{i}" for i in range(len(labels))], outputs=list(track_outputs_list),
                        labels=list(labels), patches=len(labels))


@pytest.mark.parametrize("task", ["regression", "frame_notes", "frame_chords", "frame_onset"])
def test_plots_of_the_other_tasks(tmp_path, task):
    from mirdl_tf.evaluate import plot_metrics, task_metrics

    rng = np.random.default_rng(0)
    vocabulary = None
    if task == "regression":
        labels = [rng.normal(size=2) for _ in range(5)]
        outputs = [label + rng.normal(scale=0.1, size=2) for label in labels]
        vocabulary = ["tempo", "brightness"]
    elif task == "frame_notes":
        labels = [np.zeros((100, 88), np.float32) for _ in range(2)]
        labels[1][20:40, 39] = 1.0
        outputs = [label * 0.8 for label in labels]
    elif task == "frame_chords":
        vocabulary = ["N", "C:maj", "C:min"]
        labels = [np.array([0] * 30 + [1] * 40 + [2] * 30)]
        outputs = [np.eye(3)[labels[0]]]
    else:
        labels = [_onset_track([20, 60])]
        outputs = [_activation([20, 61])]
    tracks = _outputs(outputs, labels)
    metrics = task_metrics(task, tracks, vocabulary=vocabulary, hop_seconds=HOP)
    path = plot_metrics(tmp_path / "plot.png", task=task, metrics=metrics, outputs=tracks, hop_seconds=HOP,
                        vocabulary=vocabulary, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if task == "frame_notes":
        assert metrics["note_onset_f"] == 1.0 and metrics["tracks_with_notes"] == 1
    if task == "frame_chords":
        assert metrics["majmin"] == 1.0


# --------------------------------------------------------------------------- metrics without TensorFlow
def test_metrics_score_predictions_without_importing_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, json, numpy as np\n"
        "from mirdl_tf.metrics import clip_metrics, frame_metrics\n"
        "clip = clip_metrics('single_label', np.array([0, 1]), np.array([[0.9, 0.1], [0.3, 0.7]]))\n"
        "onset = np.zeros((50, 1)); onset[[10, 30], 0] = 1.0\n"
        "frame = frame_metrics('frame_onset', [onset], [onset[:, 0]], hop_seconds=0.01)\n"
        "print(json.dumps([clip['accuracy'], frame['onset_f'],\n"
        "                  sorted(m for m in ('tensorflow', 'keras', 'apache_beam') if m in sys.modules)]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [1.0, 1.0, []]
