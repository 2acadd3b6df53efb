"""Balanced sampling (``mirdl_tf.data.load(balance=...)``) and class weights in training."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from mirdl.store import format as store_format
from mirdl_tf import data

N_FREQ, N_FRAMES = 4, 8


def write_imbalanced_store(root, fmt="tfrecord", *, sizes=((0, 10, 6), (1, 2, 1), (2, 3, 2))):
    """``sizes``: (class, tracks, segments per track); 60 + 2 + 6 records by default."""
    from mirdl.store.build import write_store

    records = []
    for label, n_tracks, n_segments in sizes:
        for track in range(n_tracks):
            track_id = f"c{label}/t{track:02d}"
            for segment in range(n_segments):
                records.append({
                    "key": store_format.record_key(track_id=track_id, variant=0, segment=segment),
                    "track_id": track_id, "variant": 0, "segment": segment, "start_frame": segment * N_FRAMES,
                    "logmel": np.full((N_FREQ, N_FRAMES), label, np.float32), "label": np.int64(label),
                })
    n_classes = len(sizes)
    task = {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": n_classes,
            "vocabulary": [f"c{i}" for i in range(n_classes)]}
    feature = {"shape": [N_FREQ, N_FRAMES], "dtype": "float32",
               "stats": {"mean": [0.0] * N_FREQ, "std": [1.0] * N_FREQ}}
    write_store(root, {"train": records}, name="imbalanced", store_format=fmt, features={"logmel": feature},
                task=task, fingerprint="imbalanced", n_shards=3, overwrite=True)
    return root


def epochs_of(store, n_epochs, **kwargs):
    ds = data.load(store, "train", batch_size=7, seed=3, deterministic=True, with_metadata=True,
                   standardize=False, **kwargs)
    epochs = []
    for _ in range(n_epochs):
        labels, tracks = [], []
        for _, y, meta in ds:
            labels += y.numpy().tolist()
            tracks += [t.decode() for t in meta["track_id"].numpy()]
        epochs.append((labels, tracks))
    return epochs


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet"])
def test_class_balance_gives_equal_class_rates_and_keeps_the_epoch_size(tmp_path, fmt):
    store = write_imbalanced_store(tmp_path / "s", fmt)
    epochs = epochs_of(store, 12, balance="class")
    labels = [label for epoch, _ in epochs for label in epoch]
    shares = np.bincount(labels, minlength=3) / len(labels)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.05)  # unbalanced: 0.88 / 0.03 / 0.09
    sizes = [len(epoch) for epoch, _ in epochs]
    assert abs(np.mean(sizes) - 68) < 6
    assert len({tuple(epoch) for epoch, _ in epochs}) == len(epochs)  # a new draw every epoch
    plain = epochs_of(store, 1)[0][0]
    assert np.bincount(plain).tolist() == [60, 2, 6]


def test_track_balance_draws_patches_per_track_and_is_reproducible(tmp_path):
    store = write_imbalanced_store(tmp_path / "s")
    epochs = epochs_of(store, 10, balance="track", patches_per_track=2)
    per_track = collections.Counter(track for _, tracks in epochs for track in tracks)
    assert len(per_track) == 15
    assert all(abs(count / 10 - 2) <= 0.8 for count in per_track.values()), per_track
    assert epochs_of(store, 2, balance="track", patches_per_track=2) == epochs[:2]
    rates = data.balance_rates(store, "train", mode="track")  # default: the mean, 68 / 15 -> 5 per track
    assert rates["c0/t00"] == pytest.approx(5 / 6) and rates["c1/t00"] == pytest.approx(5.0)


def test_balance_arguments_are_checked(tmp_path, known_store):
    store = write_imbalanced_store(tmp_path / "s")
    with pytest.raises(ValueError, match="balance must be one of"):
        data.load(store, "train", batch_size=2, balance="classes")
    with pytest.raises(ValueError, match="patches_per_track must be a positive integer"):
        data.load(store, "train", batch_size=2, balance="class", patches_per_track=3)
    with pytest.raises(ValueError, match='balance="class" needs a single_label store'):
        data.load(known_store("tfrecord", "multi_label"), "train", batch_size=2, balance="class")


def train_config(store, out, **changes):
    from mirdl_tf.train import TrainConfig

    data = {"store": str(store), "model": {"name": "dense", "args": {"context": 0, "units": 4, "n_layers": 1}},
            "epochs": 2, "batch_size": 8, "valid_split": None, "seed": 0, "out": str(out), **changes}
    return TrainConfig.from_dict(data)


@pytest.mark.parametrize("changes", [{"balance": "class"}, {"class_weight": "balanced"}])
def test_train_logs_counts_per_class_and_balances(tmp_path, changes):
    from mirdl_tf import train as train_module

    store = write_imbalanced_store(tmp_path / "s")
    lines = []
    result = train_module.train(train_config(store, tmp_path / "run", **changes), log=lines.append)
    assert result["epochs_run"] == 2
    assert "  train: 68 records: c0 60, c2 6, c1 2  (largest/smallest class 30x)" in lines
    assert not any("consider balance" in line for line in lines)
    unbalanced = []
    train_module.train(train_config(store, tmp_path / "run0", epochs=1), log=unbalanced.append)
    assert "  note: the classes are imbalanced; consider balance: track or class (or class_weight: balanced)" in unbalanced


def test_balance_fields_are_checked_and_new_defaults_keep_old_fingerprints(tmp_path):
    from mirdl.errors import ConfigError
    from mirdl_tf.train import TrainConfig

    with pytest.raises(ConfigError, match="balance="):
        train_config("s", "o", balance="yes")
    with pytest.raises(ConfigError, match="patches_per_track=4 needs balance: track"):
        train_config("s", "o", patches_per_track=4)
    with pytest.raises(ConfigError, match="both correct for class sizes"):
        train_config("s", "o", balance="class", class_weight="balanced")
    config = train_config("s", "o", balance="track", patches_per_track=4)
    assert TrainConfig.from_dict(config.to_dict()) == config
    plain = train_config("s", "o")
    payload_keys = set(plain.to_dict()) - {"balance", "patches_per_track", "class_weight"}
    from mirdl.features.spec import stable_hash
    from mirdl_tf.train import RUN_FORMAT_VERSION

    old = {key: value for key, value in plain.to_dict().items()
           if key in payload_keys and key not in ("out", "epochs", "early_stopping", "store")}
    old.update(store_fingerprint="f", run_format_version=RUN_FORMAT_VERSION)
    assert plain.fingerprint(store_fingerprint="f") == stable_hash(old)  # runs from before resume
    assert config.fingerprint(store_fingerprint="f") != plain.fingerprint(store_fingerprint="f")
    with pytest.raises(ConfigError, match="needs a single_label store"):
        from mirdl_tf.train import _class_weight

        _class_weight(train_config("s", "o", class_weight="balanced"), {"task": {"type": "regression"}})
