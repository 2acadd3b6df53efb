"""Frame-task prediction on new audio: the stitched frame outputs of ``mirdl_tf.predict`` equal
what evaluation stitches from the store for the same files (same decode, windows, patches)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest


@pytest.mark.slow
def test_onset_predictions_equal_evaluation_and_are_json_lines(job_store, tmp_path):
    from mirdl.errors import ConfigError
    from mirdl.features.spec import FeatureSpec
    from mirdl_tf.evaluate import load_trained, track_outputs
    from mirdl_tf.predict import _file_outputs, predict
    from mirdl_tf.train import TrainConfig, train

    store = job_store("hdf5")  # frame_onset, 1 s windows, hop 0.5 s
    config = TrainConfig.from_dict({"store": str(store), "model": {"name": "temporal_cnn", "args": {"n_layers": 2}},
                                    "epochs": 1, "batch_size": 8, "valid_split": None, "out": str(tmp_path / "run")})
    train(config, log=lambda line: None)
    model, info = load_trained(tmp_path / "run")
    expected = track_outputs(lambda x: model.predict_on_batch(x), store, "train", feature="logmel",
                             patch_frames=int(info["patch_frames"]), task="frame_onset", frame_level=True,
                             normalization=info["normalization"])
    corpus = store.parent / "corpus"
    with open(corpus / "annotations.csv", encoding="utf-8") as handle:
        path_of = {row["path"].rsplit(".", 1)[0]: corpus / row["path"] for row in csv.DictReader(handle)}
    spec = FeatureSpec.from_dict(info["feature"]["spec"])
    mean = np.asarray(info["normalization"]["mean"], np.float32)[..., None]
    std = np.maximum(np.asarray(info["normalization"]["std"], np.float32), 1e-6)[..., None]
    for track_id, stitched in zip(expected.track_ids[:3], expected.outputs[:3]):
        frames, seconds = _file_outputs(model, path_of[track_id], spec=spec, info=info, mean=mean, std=std,
                                        batch_size=16)
        assert seconds == pytest.approx(2.0, abs=0.01)
        np.testing.assert_allclose(frames, stitched[:len(frames)], rtol=1e-4, atol=1e-5)
    files = [path_of[track_id] for track_id in expected.track_ids[:3]]
    result = predict(tmp_path / "run", files, out=tmp_path / "onsets.jsonl", threshold=0.0)
    lines = [json.loads(line) for line in (tmp_path / "onsets.jsonl").read_text().splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files] and lines == result.rows
    assert all(isinstance(line["onsets"], list) and line["onsets"] == sorted(line["onsets"]) for line in lines)
    with pytest.raises(ConfigError, match="write .jsonl"):
        predict(tmp_path / "run", files, out=tmp_path / "onsets.csv")

    # JAMS: a folder with one file per input, in the onset namespace, valid against the JAMS schema.
    import jams

    from mirdl.cli import main

    out = tmp_path / "onsets"
    assert main(["predict", "--model", str(tmp_path / "run"), *map(str, files), "--out", str(out),
                 "--threshold", "0"]) == 0
    written = sorted(out.rglob("*.jams"))
    common = corpus / "audio"  # the inputs' common folder: audio/CLASS/tNNNN.wav -> out/CLASS/tNNNN.jams
    assert [p.relative_to(out).with_suffix("") for p in written] == \
        sorted(f.relative_to(common).with_suffix("") for f in files)
    for line, file in zip(lines, files):
        jam = jams.load(str(out / file.relative_to(common).with_suffix(".jams")), validate=True, strict=True)
        assert jam.file_metadata.duration == pytest.approx(2.0, abs=0.01)
        (ann,) = jam.search(namespace="onset")
        assert [obs.time for obs in ann.data] == line["onsets"]
        assert ann.annotation_metadata.data_source == "machine prediction (mirdl predict)"
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holding other files than .jams"):
        predict(tmp_path / "run", files, out=out)  # a folder of the user's own files is never replaced
