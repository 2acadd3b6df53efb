"""``mirdl predict`` (and :func:`mirdl_tf.predict.predict`): new audio through a trained run.

The known answer: predicting the original audio files of a store's split must give the same
per-track outputs as evaluating that split (same decode, feature, segments, normalisation,
patches and mean), since prediction promises to cut new audio exactly as training did.
"""
from __future__ import annotations

import csv
import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mirdl.cli import main  # noqa: E402
from mirdl.store.dead_letter import ErrorRecord  # noqa: E402

PREPARE = """\
name: tiny
seed: 0
corpus: {{type: csv, csv: {corpus}/labels.csv}}
splits: {{fractions: {{train: 0.5, valid: 0.25, test: 0.25}}, group_by: track}}
features:
  - {{name: logmel, representation: logmel, sample_rate: 16000, params: {{n_mels: 24, n_fft: 512, hop_length: 256}}}}
segment: {{mode: clip, patch_seconds: 1.0, hop_seconds: 0.5}}
store: {{out: {out}, format: tfrecord}}
"""
TRAIN = """\
store: {store}
model: {{name: fcn, args: {{n_layers: 2, base_filters: 4}}}}
epochs: 1
batch_size: 8
patch_frames: 48
seed: 0
out: {out}
"""


@pytest.fixture(scope="module")
def trained(synth_corpus, tmp_path_factory):
    """(corpus root, store, run directory): a store and a one-epoch run on it."""
    from mirdl.pipelines.precompute import run

    base = tmp_path_factory.mktemp("predict")
    (base / "prepare.yaml").write_text(PREPARE.format(corpus=synth_corpus.root, out=base / "store"))
    assert run(["--config", str(base / "prepare.yaml"), "--workers", "1"]) == 0
    (base / "train.yaml").write_text(TRAIN.format(store=base / "store", out=base / "run"))
    assert main(["train", "--config", str(base / "train.yaml")]) == 0
    return synth_corpus.root, base / "store", base / "run"


def test_predict_equals_evaluation_on_the_store_and_writes_one_csv_row_per_file(trained, tmp_path, capsys):
    from mirdl_tf.evaluate import load_trained, track_outputs

    root, store, run = trained
    model, info = load_trained(run)
    expected = track_outputs(lambda x: model.predict_on_batch(x), store, "test", feature="logmel",
                             patch_frames=48, task="single_label", frame_level=False,
                             normalization=info["normalization"])
    with open(root / "labels.csv", encoding="utf-8") as handle:
        path_of = {row["path"].rsplit(".", 1)[0].removeprefix("./"): root / row["path"] for row in csv.DictReader(handle)}
    files = [path_of[track_id] for track_id in expected.track_ids]
    bad = tmp_path / "not-audio.wav"
    bad.write_text("this is a text file")
    capsys.readouterr()
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(run), *map(str, files), str(bad), "--out", str(out)]) == 3
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"predict: {len(files)} file(s) -> {out}; 1 failed")
    vocabulary = info["task"]["vocabulary"]
    with open(out, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "label", "score", *(f"score:{name}" for name in vocabulary)]
    assert [row["file"] for row in rows] == [str(path) for path in files]
    scores = np.array([[float(row[f"score:{name}"]) for name in vocabulary] for row in rows])
    np.testing.assert_allclose(scores, np.stack(expected.outputs), rtol=1e-4, atol=1e-5)
    assert [row["label"] for row in rows] == [vocabulary[int(np.argmax(s))] for s in scores]
    errors = [ErrorRecord.from_json(line) for line in (tmp_path / "predictions.csv.errors.jsonl").read_text().splitlines()]
    assert [(e.path, e.stage, e.failed) for e in errors] == [(str(bad), "decode", True)]


def test_predict_a_folder_to_json_lines_and_the_run_has_no_absolute_path(trained, tmp_path):
    from mirdl_tf.predict import predict

    root, store, run = trained
    moved = tmp_path / "moved-run"
    shutil.copytree(run, moved)  # a run directory works wherever it is
    text = (moved / "model_info.json").read_text()
    assert str(tmp_path.parent) not in text and '"/' not in text
    info = json.loads(text)
    assert info["segment"]["patch_frames"] == {"logmel": 63} and info["segment"]["hop_frames"] == 31
    folder = root / "audio" / "pluck"
    result = predict(moved, folder, out=tmp_path / "p.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(lines) == len(result.rows) == len([p for p in folder.iterdir() if not p.name.startswith(".")])
    assert all(set(line) >= {"file", "label", "score"} for line in lines)
    assert not (tmp_path / "p.jsonl.errors.jsonl").exists()


def test_predict_errors_are_one_line(trained, tmp_path, capsys):
    root, store, run = trained
    assert main(["predict", "--model", str(run), str(root), "--out", str(tmp_path / "p.txt")]) == 2
    assert "must end in .csv or .jsonl, or name a folder" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path), str(root), "--out", str(tmp_path / "p.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--model", str(run), str(empty), "--out", str(tmp_path / "p.csv")]) == 2
    assert "hold no audio file" in capsys.readouterr().err


def test_rows_of_every_task():
    from mirdl_tf.predict import _row

    vocabulary = ["a", "b", "c"]
    assert _row("single_label", np.array([0.1, 0.7, 0.2]), vocabulary=vocabulary, hop_seconds=None, threshold=0.5) \
        == {"label": "b", "score": 0.7, "score:a": 0.1, "score:b": 0.7, "score:c": 0.2}
    assert _row("multi_label", np.array([0.6, 0.4, 0.9]), vocabulary=vocabulary, hop_seconds=None,
                threshold=0.5)["tags"] == "a;c"
    assert _row("regression", np.array([120.0]), vocabulary=["tempo"], hop_seconds=None, threshold=0.5) \
        == {"tempo": 120.0}
    activation = np.zeros((100, 1))
    activation[[10, 50], 0] = 0.9
    assert _row("frame_onset", activation, vocabulary=["onset"], hop_seconds=0.01, threshold=0.5) \
        == {"onsets": [0.1, 0.5]}
    roll = np.zeros((20, 88))
    roll[5:10, 60 - 21] = 0.9  # MIDI 60 from frame 5 to 10
    assert _row("frame_notes", roll, vocabulary=[], hop_seconds=0.1, threshold=0.5) == {"notes": [[0.5, 1.0, 60]]}
    chords = np.zeros((6, 3))
    chords[:2, 1] = chords[2:, 2] = 1.0
    assert _row("frame_chords", chords, vocabulary=["N", "C:maj", "A:min"], hop_seconds=0.5, threshold=0.5) \
        == {"chords": [[0.0, 1.0, "C:maj"], [1.0, 3.0, "A:min"]]}


def test_every_task_but_regression_has_a_valid_jams_annotation():
    from mirdl.errors import ConfigError
    from mirdl_tf.predict import to_jams

    rows = {
        "frame_onset": ({"file": "a.wav", "onsets": [0.1, 0.5]}, [(0.1, 0.0, None), (0.5, 0.0, None)]),
        "frame_notes": ({"file": "a.wav", "notes": [[0.5, 1.0, 60]]}, [(0.5, 0.5, 60.0)]),
        "frame_chords": ({"file": "a.wav", "chords": [[0.0, 1.0, "C:maj"], [1.0, 3.0, "A:min"]]},
                         [(0.0, 1.0, "C:maj"), (1.0, 2.0, "A:min")]),
        "single_label": ({"file": "a.wav", "label": "b", "score": 0.7}, [(0.0, 3.0, "b")]),
        "multi_label": ({"file": "a.wav", "tags": "a;c", "score:a": 0.6, "score:c": 0.9},
                        [(0.0, 3.0, "a"), (0.0, 3.0, "c")]),
    }
    namespaces = {"frame_onset": "onset", "frame_notes": "note_midi", "frame_chords": "chord",
                  "single_label": "tag_open", "multi_label": "tag_open"}
    for task, (row, expected) in rows.items():
        jam = to_jams(row, task=task, duration=3.0, settings={"model": "run", "threshold": 0.5})
        jam.validate(strict=True)  # the JAMS schema and the namespace's
        (ann,) = jam.annotations
        assert ann.namespace == namespaces[task]
        assert [(obs.time, obs.duration, obs.value) for obs in ann.data] == expected
        assert ann.annotation_metadata.annotation_rules == "model run, threshold 0.5"
    assert [obs.confidence for obs in to_jams(rows["multi_label"][0], task="multi_label", duration=3.0)
            .annotations[0].data] == [0.6, 0.9]
    with pytest.raises(ConfigError, match="no namespace"):
        to_jams({"file": "a.wav", "tempo": 120.0}, task="regression", duration=3.0)
