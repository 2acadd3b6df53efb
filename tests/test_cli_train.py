"""``mirdl train / evaluate / extract / probe`` end to end on a tiny store, and their error exits.

One store is prepared through the real job (:func:`mirdl.pipelines.precompute.run`) from the
session's synthetic corpus; the commands then run in this process through
:func:`mirdl.cli.main`, as ``mirdl ...`` would, and the files they write are checked.
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import yaml  # noqa: E402

from mirdl.store.manifest import read_manifest  # noqa: E402
from mirdl.store.verify import check_shards  # noqa: E402
from mirdl.cli import main  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
PREPARE = """\
name: tiny
seed: 0
corpus: {{type: csv, csv: {corpus}/labels.csv}}
splits: {{fractions: {{train: 0.5, valid: 0.25, test: 0.25}}, group_by: track}}
features:
  - {{name: logmel, representation: logmel, sample_rate: 16000, params: {{n_mels: 24, n_fft: 512, hop_length: 256}}}}
segment: {{mode: clip, patch_seconds: 1.0}}
store: {{out: {out}, format: tfrecord}}
"""
TRAIN = """\
store: {store}
model: {{name: fcn, args: {{n_layers: 2, base_filters: 4}}}}
optimizer: {{name: adam, learning_rate: 0.01}}
epochs: 2
batch_size: 8
patch_frames: 48
early_stopping: {{monitor: val_accuracy, patience: 5}}
seed: 0
out: {out}
"""


@pytest.fixture(scope="module")
def tiny_store(synth_corpus, tmp_path_factory):
    from mirdl.pipelines.precompute import run

    base = tmp_path_factory.mktemp("cli-train")
    config = base / "prepare.yaml"
    config.write_text(PREPARE.format(corpus=synth_corpus.root, out=base / "store"))
    assert run(["--config", str(config), "--workers", "1"]) == 0
    return base / "store"


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"mirdl {command}: error: ")
    return err


def test_train_evaluate_extract_probe(tiny_store, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(TRAIN.format(store=tiny_store, out=tmp_path / "run"))
    run = tmp_path / "run"

    assert main(["train", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("epoch ")] == [
        ["epoch", "1/2"], ["epoch", "2/2"]]
    for name in ("best.keras", "last.keras", "state.json", "metrics.json", "model_info.json", "train_config.yaml"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["monitor"] == "val_accuracy" and metrics["epochs_run"] == 2
    assert 0.0 <= metrics["best_value"] <= 1.0
    info = json.loads((run / "model_info.json").read_text())
    assert info["store"]["fingerprint"] == read_manifest(tiny_store)["fingerprint"]

    assert main(["train", "--config", str(config), "--epochs", "3"]) == 0  # resumes
    out = capsys.readouterr().out
    assert "resume" in out and [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["3/3"]

    assert main(["evaluate", "--model", str(run), "--store", str(tiny_store), "--split", "test", "--plot"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "baseline" in out
    evaluated = json.loads((run / "eval-test" / "metrics.json").read_text())
    assert evaluated["task"] == "single_label" and evaluated["tracks"] >= 1
    assert set(evaluated["metrics"]) >= {"accuracy", "macro_f1", "confusion_matrix", "chance_accuracy", "baseline"}
    assert 0.0 <= evaluated["metrics"]["accuracy"] <= 1.0 and 0.0 <= evaluated["metrics"]["macro_f1"] <= 1.0
    assert evaluated["metrics"]["chance_accuracy"] == 0.25
    assert (run / "eval-test" / "confusion_matrix.png").read_bytes()[:8] == PNG

    transfer = tmp_path / "transfer"
    assert main(["extract", "--model", str(run), "--store", str(tiny_store), "--out", str(transfer)]) == 0
    manifest = read_manifest(transfer)
    check_shards(transfer, manifest, checksums=True)
    feature = manifest["features"]["transfer"]
    assert manifest["format"] == "parquet" and feature["shape"] == [4 + 8]
    assert feature["spec"]["source_model"]["kind"] == "trained"
    assert feature["spec"]["source_store_fingerprint"] == read_manifest(tiny_store)["fingerprint"]
    assert sum(split["records"] for split in manifest["splits"].values()) == 16  # one record per track

    random = tmp_path / "random"
    assert main(["extract", "--random-weights", "--model-name", "fcn", "--model-args", "{n_layers: 3, base_filters: 2}",
                 "--seed", "1", "--store", str(tiny_store), "--out", str(random), "--format", "tfrecord",
                 "--layers", "block_2_out", "block_3_out"]) == 0
    manifest = read_manifest(random)
    assert manifest["format"] == "tfrecord" and manifest["features"]["transfer"]["shape"] == [4 + 8]
    capsys.readouterr()

    assert main(["probe", "--store", str(transfer), "--out", str(tmp_path / "probe.json")]) == 0
    out = capsys.readouterr().out
    assert "LogisticRegression" in out and "accuracy" in out
    probed = json.loads((tmp_path / "probe.json").read_text())
    assert 0.0 <= probed["metrics"]["accuracy"] <= 1.0 and probed["split_test"] == "test"

    # Errors after a good run: one line, exit 2.
    assert main(["extract", "--model", str(run), "--store", str(tiny_store), "--out", str(transfer)]) == 2
    assert "holds a store already" in one_line_error(capsys, "extract")
    assert main(["probe", "--store", str(tiny_store)]) == 2
    assert "has no feature 'transfer'" in one_line_error(capsys, "probe")
    assert main(["evaluate", "--model", str(run), "--store", str(transfer)]) == 2
    assert "has no feature 'logmel'" in one_line_error(capsys, "evaluate")
    assert main(["evaluate", "--model", str(run), "--store", str(tiny_store), "--split", "nope"]) == 2
    assert "split 'nope' is not in" in one_line_error(capsys, "evaluate")


def test_missing_store_is_one_line_exit_2(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(TRAIN.format(store=tmp_path / "no-store", out=tmp_path / "run"))
    assert main(["train", "--config", str(config)]) == 2
    assert "no such store directory" in one_line_error(capsys, "train")
    assert main(["evaluate", "--model", str(tmp_path), "--store", str(tmp_path / "no-store")]) == 2
    assert "not a mirdl train run directory" in one_line_error(capsys, "evaluate")
    assert main(["extract", "--random-weights", "--store", str(tmp_path / "no-store"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "no such store directory" in one_line_error(capsys, "extract")
    assert main(["probe", "--store", str(tmp_path / "no-store")]) == 2
    assert "no such store directory" in one_line_error(capsys, "probe")


@pytest.mark.parametrize("text,message", [
    ("store: s\nmodel: {name: fcn}\nout: o\nlearning_rate: 0.1\n", "learning_rate is not a field"),
    ("store: s\nmodel: {name: fcn}\nout: o\noptimizer: {name: adam, learning_rate: -1}\n",
     "optimizer.learning_rate=-1 must be > 0"),
    ("store: s\nmodel: {name: vgg}\n", "model.name='vgg' must be one of"),
    ("store: [unclosed\n", "not valid YAML"),
])
def test_bad_config_is_one_line_naming_the_field(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["train", "--config", str(config)]) == 2
    err = one_line_error(capsys, "train")
    assert str(config) in err and message in err


def test_seed_flag_overrides_the_config_seed(tiny_store, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(TRAIN.format(store=tiny_store, out=tmp_path / "run").replace("epochs: 2", "epochs: 1"))
    histories = {}
    for name, flags in (("config", []), ("seed0", ["--seed", "0"]), ("seed5", ["--seed", "5"])):
        run = tmp_path / name
        assert main(["train", "--config", str(config), "--out", str(run), *flags]) == 0
        histories[name] = json.loads((run / "metrics.json").read_text())["history"]["loss"]
        assert yaml.safe_load((run / "train_config.yaml").read_text())["seed"] == (5 if name == "seed5" else 0)
    capsys.readouterr()
    # Same seed, same machine: the same run bit for bit; another seed: other weights and batches.
    assert histories["seed0"] == histories["config"] and histories["seed5"] != histories["config"]
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(config), "--seed", "-1"])
    assert exit_info.value.code == 2
    assert "--seed: -1 must be an integer >= 0" in capsys.readouterr().err


def test_bad_arguments_exit_2(tiny_store, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "--store", str(tiny_store), "--out", str(tmp_path / "x")])  # neither --model nor random
    assert exit_info.value.code == 2
    capsys.readouterr()
    assert main(["extract", "--random-weights", "--model-args", "[1, 2]", "--store", str(tiny_store),
                 "--out", str(tmp_path / "x")]) == 2
    assert "must be a mapping" in one_line_error(capsys, "extract")
    config = tmp_path / "train.yaml"
    config.write_text(TRAIN.format(store=tiny_store, out=tmp_path / "run").replace("patch_frames: 48",
                                                                                   "patch_frames: 500"))
    assert main(["train", "--config", str(config)]) == 2
    assert "patch_frames=500 is longer than the stored segments" in one_line_error(capsys, "train")


def test_train_on_a_corrupt_shard_stops_with_one_line_naming_it(tiny_store, tmp_path, capsys):
    """Format checksums are checked on every read: a flipped bit stops training with the shard's
    name (TensorFlow's own DataLossError names no file)."""
    import shutil

    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    manifest = read_manifest(store)
    victim = store / manifest["splits"]["train"]["shards"][0]["path"]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    config = tmp_path / "train.yaml"
    config.write_text(TRAIN.format(store=store, out=tmp_path / "run"))
    capsys.readouterr()
    assert main(["train", "--config", str(config)]) == 2
    assert victim.name in one_line_error(capsys, "train")
