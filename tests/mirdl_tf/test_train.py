"""mirdl_tf.train: the config, model/label layouts for every store task, the run directory and resuming,
and (slow) what the tutorial's models learn on the synthetic corpus.

The quality tests build one small corpus (128 tracks x 1 s, 4 timbre classes, onsets) and two
stores through the real job, train FCN and CRNN (clip classification) and the BiRNN (onsets), and
check each against chance and a trivial baseline; the transfer features of the trained FCN are
compared with random-weight ones there too, since they need the same trained model.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf
import yaml

from mirdl.errors import ConfigError, StoreError
from mirdl.store.manifest import read_manifest
from mirdl_tf import data
from mirdl_tf.models import CLIP_TASKS, FRAME_TASKS, MODELS, TASKS, loss_for_task
from mirdl_tf.train import (
    RUN_FILES,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
    build_for_store,
    model_labels,
    train,
)

TINY_ARGS = {
    "dense": {"units": 4, "n_layers": 1, "context": 1},
    "fcn": {"n_layers": 2, "base_filters": 2},
    "temporal_cnn": {"n_layers": 1, "filters": 4},
    "musically_motivated": {"filters": 2, "temporal_widths": [4], "backend_filters": 4, "dense_units": 4},
    "crnn": {"conv_filters": [2], "rnn_units": 2, "rnn_layers": 1},
    "birnn": {"units": 2, "n_layers": 1, "conv_filters": [2]},
}
SUPPORTED = {name: CLIP_TASKS if name in ("fcn", "musically_motivated", "crnn") else TASKS for name in MODELS}


def quiet(line: str) -> None:
    pass


def minimal(**changes) -> dict:
    config = {"store": "stores/demo", "model": {"name": "fcn"}, "out": "runs/demo"}
    config.update(changes)
    return config


# --------------------------------------------------------------------------- config
def test_defaults_and_relative_paths(tmp_path):
    config = TrainConfig.from_dict(minimal(), base_dir=tmp_path)
    assert config.store == str(tmp_path / "stores" / "demo") and config.out == str(tmp_path / "runs" / "demo")
    assert (config.optimizer.name, config.optimizer.learning_rate) == ("adam", 1e-3)
    assert (config.train_split, config.valid_split, config.epochs, config.batch_size) == ("train", "valid", 20, 16)
    assert (config.monitor, config.monitor_mode) == ("val_loss", "min")
    assert config.augment.variants == "all" and config.augment.spec_augment is None
    no_valid = TrainConfig.from_dict(minimal(valid_split=None, early_stopping=None), base_dir=tmp_path)
    assert no_valid.monitor == "loss" and no_valid.early_stopping.patience is None
    accuracy = TrainConfig.from_dict(minimal(early_stopping={"monitor": "val_accuracy"}), base_dir=tmp_path)
    assert accuracy.monitor_mode == "max"


def test_config_file_round_trip(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(minimal(
        feature="logmel", model={"name": "crnn", "args": {"rnn_units": 4}}, patch_frames=32,
        optimizer={"name": "sgd", "learning_rate": 0.1}, augment={"variants": [0, 1], "spec_augment": {},
                                                                   "mixup_alpha": 0.2},
        early_stopping={"monitor": "val_accuracy", "patience": 3}, seed=7)))
    config = TrainConfig.from_file(path)
    assert config.augment.variants == (0, 1) and config.augment.mixup_alpha == 0.2
    again = TrainConfig.from_dict(config.to_dict(), base_dir="/elsewhere")  # paths are absolute already
    assert again == config


@pytest.mark.parametrize("changes,message", [
    ({"batch_sise": 8}, "batch_sise is not a field"),
    ({"model": {"name": "resnet"}}, "model.name='resnet' must be one of"),
    ({"model": {"name": "fcn", "args": {"task": "x"}}}, "model.args.task is set from the store"),
    ({"model": {"name": "fcn", "size": 3}}, "model.size is not a field"),
    ({"optimizer": {"name": "adagrad"}}, "optimizer.name='adagrad'"),
    ({"optimizer": {"learning_rate": 0}}, "optimizer.learning_rate=0 must be > 0"),
    ({"optimizer": {"schedule": "step"}}, "optimizer.schedule='step' must be one of ['constant', 'cosine']"),
    ({"optimizer": {"warmup_epochs": -1}}, "optimizer.warmup_epochs=-1 must be an integer >= 0"),
    ({"optimizer": {"warmup_epochs": 3}, "epochs": 3}, "optimizer.warmup_epochs=3 must be < epochs=3"),
    ({"optimizer": {"decay": 0.1}}, "optimizer.decay is not a field"),
    ({"epochs": 0}, "epochs=0 must be an integer >= 1"),
    ({"batch_size": "8"}, "batch_size='8'"),
    ({"patch_frames": -3}, "patch_frames=-3"),
    ({"valid_split": "train"}, "valid_split='train' is the train split"),
    ({"augment": {"variants": "noisy"}}, "augment.variants='noisy'"),
    ({"augment": {"spec_augment": {"freq_mask": 1}}}, "augment.spec_augment.freq_mask is not a field"),
    ({"augment": {"mixup_alpha": -1}}, "augment.mixup_alpha=-1"),
    ({"early_stopping": {"patience": 0}}, "early_stopping.patience=0"),
    ({"early_stopping": {"mode": "up"}}, "early_stopping.mode='up'"),
    ({"seed": -1}, "seed=-1"),
    ({"cache": "yes"}, "cache='yes'"),
    ({"shuffle_buffer": 0}, "shuffle_buffer=0 must be an integer >= 1"),
])
def test_bad_fields_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TrainConfig.from_dict(minimal(**changes))


def test_numpy_integers_from_python_callers_count_as_integers():
    import numpy as np

    config = TrainConfig.from_dict(minimal(epochs=np.int64(3), batch_size=np.int32(8), seed=np.int64(1),
                                           early_stopping={"patience": np.int64(2)},
                                           augment={"spec_augment": {"freq_masks": np.int64(2)}}))
    assert config == TrainConfig.from_dict(minimal(epochs=3, batch_size=8, seed=1, early_stopping={"patience": 2},
                                                   augment={"spec_augment": {"freq_masks": 2}}))
    assert type(config.epochs) is int and type(config.augment.spec_augment["freq_masks"]) is int
    json.dumps(config.to_dict())  # model_info.json and the run's config must stay writable


def test_missing_store_and_model():
    with pytest.raises(ConfigError, match="store is missing"):
        TrainConfig.from_dict({"model": {"name": "fcn"}})
    with pytest.raises(ConfigError, match="model is missing"):
        TrainConfig.from_dict({"store": "s"})
    with pytest.raises(ConfigError, match="x.yaml: cannot read config"):
        TrainConfig.from_file("/nonexistent/x.yaml")


def test_fingerprint_ignores_out_epochs_and_patience_only():
    config = TrainConfig.from_dict(minimal(), base_dir="/")
    same = replace(config, out="/other", epochs=99, early_stopping=replace(config.early_stopping, patience=2))
    assert same.fingerprint(store_fingerprint="a") == config.fingerprint(store_fingerprint="a")
    assert config.fingerprint(store_fingerprint="b") != config.fingerprint(store_fingerprint="a")
    faster = replace(config, optimizer=replace(config.optimizer, learning_rate=0.01))
    assert faster.fingerprint(store_fingerprint="a") != config.fingerprint(store_fingerprint="a")


# --------------------------------------------------------------------------- every builder x every store task
def _store_tasks():
    """(task, n_outputs, label shape as data.load yields it) with the corpus adapters' real vocabularies."""
    from mirdl.features.synth import CLASSES, TAGS, TARGETS
    from mirdl.features.labels import CHORD_VOCABULARY, NOTE_NAMES

    n_time = 24
    return {
        "single_label": (len(CLASSES), ()),
        "multi_label": (len(TAGS), (len(TAGS),)),
        "regression": (len(TARGETS), (len(TARGETS),)),
        "frame_onset": (1, (n_time,)),
        "frame_notes": (len(NOTE_NAMES), (len(NOTE_NAMES), n_time)),
        "frame_chords": (len(CHORD_VOCABULARY), (n_time,)),
    }, n_time


CASES = [(name, task) for name in MODELS for task in SUPPORTED[name]]


@pytest.mark.parametrize("name,task", CASES, ids=[f"{n}-{t}" for n, t in CASES])
def test_every_builder_fits_every_store_task_it_supports(name, task):
    tasks, n_time = _store_tasks()
    n_outputs, label_shape = tasks[task]
    info = {"task": task, "n_outputs": n_outputs, "input_shape": (16, n_time)}
    model = build_for_store(ModelConfig(name=name, args=TINY_ARGS[name]), info)
    x = np.zeros((2, 16, n_time), np.float32)
    y = tf.zeros((2,) + label_shape, tf.int64 if task in ("single_label", "frame_chords") else tf.float32)
    y = model_labels(y, task, n_outputs=n_outputs)
    output = model(x)
    if task in FRAME_TASKS:
        assert output.shape == (2, n_time, n_outputs)
        expected = (2, n_time) if task == "frame_chords" else (2, n_time, n_outputs)
        assert tuple(y.shape) == expected
    else:
        assert output.shape == (2, n_outputs)
    assert np.isfinite(float(loss_for_task(task)(y, output)))


def test_builder_rejects_a_task_as_a_config_error():
    with pytest.raises(ConfigError, match="model: fcn supports task in"):
        build_for_store(ModelConfig(name="fcn"), {"task": "frame_onset", "n_outputs": 1, "input_shape": (8, 8)})


def test_multichannel_stores_become_channels_last():
    model = build_for_store(ModelConfig(name="fcn", args=TINY_ARGS["fcn"]),
                            {"task": "single_label", "n_outputs": 3, "input_shape": (2, 16, 24)})
    assert model.input_shape == (None, 16, 24, 2)


def test_labels_already_time_first_are_left_alone():
    notes = tf.zeros((2, 24, 88))
    assert model_labels(notes, "frame_notes", n_outputs=88).shape == (2, 24, 88)
    onsets = tf.zeros((2, 24, 1))
    assert model_labels(onsets, "frame_onset", n_outputs=1).shape == (2, 24, 1)


# --------------------------------------------------------------------------- the run directory, resuming
def _known_config(store, out, **changes) -> TrainConfig:
    base = {"store": str(store), "model": {"name": "fcn", "args": TINY_ARGS["fcn"]}, "epochs": 2, "batch_size": 8,
            "valid_split": None, "out": str(out), "seed": 0}
    base.update(changes)
    return TrainConfig.from_dict(base)


def test_run_directory_and_resume(known_store, tmp_path):
    store = known_store("parquet", "single_label")
    out = tmp_path / "run"
    lines = []
    first = train(_known_config(store, out), log=lines.append)
    names = {p.name for p in out.iterdir()}
    assert set(RUN_FILES.values()) - {"logs"} <= names <= set(RUN_FILES.values())  # logs/ needs TensorBoard
    assert len([line for line in lines if line.startswith("epoch ")]) == 2
    assert first["epochs_run"] == 2 and len(first["history"]["loss"]) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["monitor"] == "loss" and metrics["best_epoch"] in (1, 2)
    info = json.loads((out / "model_info.json").read_text())
    manifest = read_manifest(store)
    assert info["normalization"]["mean"] == manifest["features"]["logmel"]["stats"]["mean"]
    assert info["task"] == manifest["task"] and info["patch_frames"] == 20
    assert yaml.safe_load((out / "train_config.yaml").read_text())["store"] == str(store)

    lines.clear()
    resumed = train(_known_config(store, out), epochs=3, log=lines.append)  # same config: resumes at epoch 3
    assert lines[0].startswith(f"resume {out} after epoch 2")
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["3/3"]
    assert resumed["epochs_run"] == 3 and resumed["history"]["epoch"] == [1, 2, 3]
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 3

    lines.clear()
    train(_known_config(store, out), epochs=3, log=lines.append)
    assert any("nothing to do" in line for line in lines)

    with pytest.raises(ConfigError, match="holds a run of another config or store"):
        train(_known_config(store, out, optimizer={"learning_rate": 0.01}), log=quiet)
    fresh = train(_known_config(store, out, optimizer={"learning_rate": 0.01}, epochs=1), overwrite=True, log=quiet)
    assert fresh["epochs_run"] == 1


def _fit_calls(monkeypatch) -> list[dict]:
    """Every ``keras.Model.fit`` call of the test: its train dataset's cardinality and steps per epoch."""
    import keras

    calls, fit = [], keras.Model.fit

    def spy(self, x=None, *args, **kwargs):
        calls.append({"cardinality": int(x.cardinality()), "steps": kwargs.get("steps_per_epoch")})
        return fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    return calls


def test_epochs_stream_through_one_iterator_when_their_length_is_known(known_store, tmp_path, monkeypatch):
    """fit gets an endless train dataset and ceil(records / batch) steps an epoch, so the shuffle
    buffer fills once a run; with a variant filter (epoch length unknown) one finite epoch at a time,
    unless the epochs are balanced (an epoch is its plan)."""
    store = known_store("tfrecord", "single_label")
    n_train = read_manifest(store)["splits"]["train"]["records"]
    calls = _fit_calls(monkeypatch)
    lines = []
    result = train(_known_config(store, tmp_path / "streamed", epochs=3), log=lines.append)
    assert calls == [{"cardinality": int(tf.data.INFINITE_CARDINALITY), "steps": -(-n_train // 8)}]
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert result["epochs_run"] == 3

    calls.clear()
    train(_known_config(store, tmp_path / "filtered", augment={"variants": [0]}), log=quiet)
    assert len(calls) == 1 and calls[0]["steps"] is None
    assert calls[0]["cardinality"] != int(tf.data.INFINITE_CARDINALITY)

    calls.clear()  # shuffle_buffer: the train split read through the buffer (streamed as well)
    loads = []
    real_load = data.load
    monkeypatch.setattr(data, "load", lambda *args, **kwargs: loads.append(kwargs) or real_load(*args, **kwargs))
    train(_known_config(store, tmp_path / "buffered", shuffle_buffer=16), log=quiet)
    assert {kwargs.get("shuffle_buffer") for kwargs in loads if kwargs.get("shuffle")} == {16}
    assert calls == [{"cardinality": int(tf.data.INFINITE_CARDINALITY), "steps": -(-n_train // 8)}]
    monkeypatch.setattr(data, "load", real_load)

    calls.clear()  # a balanced epoch is its plan: known ahead, streamed too
    train(_known_config(store, tmp_path / "balanced", augment={"variants": [0]}, balance="class"), log=quiet)
    epoch = data.load(store, "train", batch_size=8, variants=[0], balance="class")
    assert calls == [{"cardinality": int(tf.data.INFINITE_CARDINALITY), "steps": int(epoch.cardinality())}]


def test_learning_rate_schedules():
    constant = OptimizerConfig(learning_rate=0.01)
    assert [constant.learning_rate_at(e, epochs=4) for e in range(4)] == [0.01] * 4
    warm = OptimizerConfig(learning_rate=0.01, warmup_epochs=3)
    np.testing.assert_allclose([warm.learning_rate_at(e, epochs=5) for e in range(5)],
                               [0.0025, 0.005, 0.0075, 0.01, 0.01])
    cosine = OptimizerConfig(learning_rate=0.01, schedule="cosine")
    rates = [cosine.learning_rate_at(e, epochs=4) for e in range(4)]
    np.testing.assert_allclose(rates, 0.005 * (1 + np.cos(np.pi * np.arange(4) / 4)))
    assert rates[0] == 0.01 and all(a > b > 0 for a, b in zip(rates, rates[1:]))  # decreasing, last epoch > 0


def test_cosine_schedule_sets_each_epochs_rate_and_resumes_along_it(known_store, tmp_path):
    store = known_store("parquet", "single_label")
    out = tmp_path / "run"
    optimizer = {"learning_rate": 0.01, "schedule": "cosine", "warmup_epochs": 1}
    lines = []
    first = train(_known_config(store, out, optimizer=optimizer, epochs=2), epochs=2, log=lines.append)
    schedule = TrainConfig.from_dict({"store": "s", "model": {"name": "fcn"}, "optimizer": optimizer}).optimizer
    expected = [schedule.learning_rate_at(e, epochs=4) for e in range(4)]
    # The run is configured for 2 epochs: its cosine spans those two.
    np.testing.assert_allclose(first["history"]["learning_rate"],
                               [schedule.learning_rate_at(e, epochs=2) for e in range(2)], rtol=1e-6)
    # The warm-up epoch runs at half the rate, shown on its epoch line.
    assert "learning_rate 0.005" in next(line for line in lines if line.startswith("epoch 1/"))
    # Resumed with epochs=4, epochs 3 and 4 follow the 4-epoch cosine (the rate comes from the epoch number).
    resumed = train(_known_config(store, out, optimizer=optimizer, epochs=2), epochs=4, log=quiet)
    np.testing.assert_allclose(resumed["history"]["learning_rate"][2:], expected[2:], rtol=1e-6)


def test_tensorboard_logs(known_store, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorFlow >= 2.20 does not install TensorBoard")
    train(_known_config(known_store("parquet", "single_label"), tmp_path / "run", epochs=1), log=quiet)
    assert list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*")), "no TensorBoard event files"


def test_early_stopping_and_best_checkpoint(known_store, tmp_path):
    store = known_store("parquet", "single_label")
    # No batch norm, no dropout, a learning rate of ~0: the accuracy of epoch 2 equals epoch 1's, no improvement.
    model = {"name": "dense", "args": {"units": 4, "n_layers": 1, "dropout": 0.0, "input_norm": False}}
    config = _known_config(store, tmp_path / "run", epochs=5, model=model,
                           optimizer={"name": "sgd", "learning_rate": 1e-12},
                           early_stopping={"monitor": "accuracy", "patience": 1})
    result = train(config, log=quiet)
    assert result["stopped_early"] and result["epochs_run"] == 2 and result["best_epoch"] == 1
    assert (tmp_path / "run" / "best.keras").is_file()


def test_resume_without_a_run_fails(known_store, tmp_path):
    store = known_store("parquet", "single_label")
    with pytest.raises(ConfigError, match="--resume: out=.* holds no run to resume"):
        train(_known_config(store, tmp_path / "run"), resume=True, log=quiet)


@pytest.mark.parametrize("changes,error,message", [
    ({"early_stopping": {"monitor": "val_accuracy"}}, ConfigError, r"must be one of \['loss', 'accuracy'\]"),
    ({"train_split": "training"}, ConfigError, "train_split='training' is not a split"),
    ({"patch_frames": 50}, ConfigError, "patch_frames: patch_frames=50 is longer"),
    ({"model": {"name": "fcn", "args": {"n_layers": 0}}}, ConfigError, r"^model\.args\.n_layers=0 must be an integer >= 1$"),
    ({"model": {"name": "fcn", "args": {"dropout": 1.5}}}, ConfigError,
     r"^model\.args\.dropout=1\.5 must be a number in \[0, 1\)$"),
    ({"feature": "mfcc"}, StoreError, "feature 'mfcc' is not in the store"),
])
def test_train_errors(known_store, tmp_path, changes, error, message):
    with pytest.raises(error, match=message):
        train(_known_config(known_store("parquet", "single_label"), tmp_path / "run", **changes), log=quiet)


def test_mixup_on_frame_labels_is_a_config_error(known_store, tmp_path):
    config = _known_config(known_store("tfrecord", "frame_onset"), tmp_path / "run",
                           model={"name": "birnn", "args": TINY_ARGS["birnn"]}, augment={"mixup_alpha": 0.2})
    with pytest.raises(ConfigError, match="mixup is for clip tasks"):
        train(config, log=quiet)


def test_frame_labels_train_and_augmentation_runs(known_store, tmp_path):
    store = known_store("hdf5", "frame_notes")
    config = _known_config(store, tmp_path / "run", epochs=1, patch_frames=12,
                           model={"name": "temporal_cnn", "args": TINY_ARGS["temporal_cnn"]},
                           augment={"variants": "clean", "spec_augment": {"freq_width": 2, "time_width": 3}})
    result = train(config, log=quiet)
    assert np.isfinite(result["final"]["loss"])


def with_valid_split(store_copy, store):
    """A copy of a known store whose "valid" split lists the train shards again."""
    copy = store_copy(store)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["splits"]["valid"] = manifest["splits"]["train"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_mixup_with_validation_of_single_labels(known_store, store_copy, tmp_path):
    store = with_valid_split(store_copy, known_store("parquet", "single_label"))
    config = _known_config(store, tmp_path / "run", epochs=1, valid_split="valid", augment={"mixup_alpha": 0.4},
                           early_stopping={"monitor": "val_accuracy"})
    result = train(config, log=quiet)
    assert 0.0 <= result["final"]["val_accuracy"] <= 1.0 and np.isfinite(result["final"]["val_loss"])


def test_missing_store_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="no such store directory"):
        train(_known_config(tmp_path / "nothing", tmp_path / "run"), log=quiet)


# --------------------------------------------------------------------------- quality on the synthetic corpus (slow)
QUALITY_TRACKS, QUALITY_SECONDS = 128, 1.0
PREPARE = """\
name: {name}
seed: 0
corpus: {corpus}
splits: {{fractions: {{train: 0.6, valid: 0.2, test: 0.2}}, group_by: track}}
features:
  - {{name: logmel, representation: logmel, sample_rate: 16000, params: {{n_mels: 32, n_fft: 512, hop_length: 256}}}}
segment: {segment}
store: {{out: {out}, format: tfrecord}}
"""


@pytest.fixture(scope="module")
def quality(tmp_path_factory):
    """The corpus, a clip store and an onset store, and a cache of trained runs."""
    from mirdl.features.synth import write_corpus
    from mirdl.pipelines.precompute import run

    base = tmp_path_factory.mktemp("quality")
    corpus = base / "corpus"
    write_corpus(corpus, n_tracks=QUALITY_TRACKS, seed=0, duration=QUALITY_SECONDS)
    stores = {}
    for name, corpus_section, segment in (
        ("clip", f"{{type: csv, csv: {corpus}/labels.csv}}", "{mode: clip, patch_seconds: 1.0}"),
        ("onsets", f"{{type: annotations, csv: {corpus}/annotations.csv, annotation_column: onsets}}",
         "{mode: frames, window_seconds: 1.0, onset_widen: 1}"),
    ):
        config = base / f"prepare-{name}.yaml"
        config.write_text(PREPARE.format(name=name, corpus=corpus_section, segment=segment, out=base / name))
        assert run(["--config", str(config), "--workers", "1"]) == 0
        stores[name] = base / name
    return {"base": base, "stores": stores, "runs": {}}


#: name -> (store, model, monitor, epochs, batch size). Measured (seed 0, 24 test tracks): FCN accuracy 0.75,
#: CRNN 0.75 (chance 0.25, majority class 0.21); BiRNN onset F 0.85 (P 0.96, R 0.81); about 15 s, 15 s, 40 s.
QUALITY_MODELS = {
    "fcn": ("clip", {"name": "fcn", "args": {"n_layers": 3, "base_filters": 8}}, "val_accuracy", 12, 8),
    "crnn": ("clip", {"name": "crnn", "args": {"conv_filters": [8, 16, 16], "rnn_units": 16, "rnn_layers": 1}},
             "val_accuracy", 12, 8),
    "birnn": ("onsets", {"name": "birnn", "args": {"units": 16, "n_layers": 1, "conv_filters": [8]}}, "val_loss",
              20, 4),
}


def trained(quality, name):
    """Train (once per module) and evaluate one of QUALITY_MODELS on its store's test split."""
    from mirdl_tf.evaluate import evaluate

    if name not in quality["runs"]:
        store, model, monitor, epochs, batch_size = QUALITY_MODELS[name]
        out = quality["base"] / f"run-{name}"
        config = TrainConfig.from_dict({
            "store": str(quality["stores"][store]), "model": model, "optimizer": {"learning_rate": 0.01},
            "epochs": epochs, "batch_size": batch_size, "cache": True, "seed": 0, "out": str(out),
            "early_stopping": {"monitor": monitor, "patience": epochs}})
        train(config, log=quiet)
        quality["runs"][name] = (out, evaluate(out, quality["stores"][store], "test"))
    return quality["runs"][name]


def test_real_store_tasks_build_every_supporting_model(quality):
    for store in quality["stores"].values():
        info = data.describe(store)
        manifest = read_manifest(store)
        assert info["task"] == manifest["task"]["type"] and info["n_outputs"] == manifest["task"]["n_outputs"]
        for name in MODELS:
            if info["task"] in SUPPORTED[name]:
                model = build_for_store(ModelConfig(name=name, args=TINY_ARGS[name]), info)
                frame = info["task"] in FRAME_TASKS
                assert model.output_shape == ((None, info["n_frames"], 1) if frame else (None, info["n_outputs"]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn", "crnn"])
def test_convnets_beat_chance_and_the_majority_baseline(quality, name):
    _, result = trained(quality, name)
    metrics = result["metrics"]
    print(name, {key: metrics[key] for key in ("accuracy", "macro_f1", "chance_accuracy")}, metrics["baseline"])
    assert result["tracks"] >= 20
    assert metrics["chance_accuracy"] == 0.25
    assert metrics["accuracy"] >= 0.5 and metrics["accuracy"] >= metrics["baseline"]["accuracy"] + 0.25
    assert metrics["macro_f1"] >= 0.45


@pytest.mark.slow
def test_birnn_finds_onsets(quality):
    _, result = trained(quality, "birnn")
    metrics = result["metrics"]
    print({key: metrics[key] for key in ("onset_f", "onset_precision", "onset_recall", "onset_f_pooled")})
    assert metrics["tracks_with_onsets"] >= 20
    assert metrics["onset_f"] >= 0.8


@pytest.mark.slow
def test_transfer_features_beat_random_weights_and_chance(quality):
    from mirdl_tf.transfer import extract, probe

    run, _ = trained(quality, "fcn")
    store = quality["stores"]["clip"]
    extract(store, quality["base"] / "transfer-fcn", model_dir=run, log=quiet)
    extract(store, quality["base"] / "transfer-random", random_model="fcn", model_args=QUALITY_MODELS["fcn"][1]["args"],
            seed=0, log=quiet)
    trained_probe = probe(quality["base"] / "transfer-fcn")["metrics"]
    random_probe = probe(quality["base"] / "transfer-random")["metrics"]
    print("probe accuracy: trained FCN", trained_probe["accuracy"], "random FCN", random_probe["accuracy"])
    assert random_probe["accuracy"] > random_probe["chance_accuracy"] + 0.1
    assert trained_probe["accuracy"] >= random_probe["accuracy"]
