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


def test_balance_rates_are_the_plans_draws_per_record(tmp_path):
    store = write_imbalanced_store(tmp_path / "s")
    rates = data.balance_rates(store, "train", mode="track")  # default: the mean, 68 / 15 -> 5 per track
    assert rates["c0/t00"] == pytest.approx(5 / 6) and rates["c1/t00"] == pytest.approx(5.0)
    assert data.balance_rates(store, "train", mode="class") == pytest.approx({0: 23 / 60, 1: 23 / 2, 2: 23 / 6})


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
    if "balance" in changes:
        assert "  balance: class: 23 records of each of 3 classes per epoch (69 records; records per class: " \
               "c0 60, c1 2, c2 6)" in lines
    else:  # once is enough: the hint without either correction
        unbalanced = []
        train_module.train(train_config(store, tmp_path / "run0", epochs=1), log=unbalanced.append)
        assert "  note: the classes are imbalanced; consider balance: track or class (or class_weight: balanced)" \
            in unbalanced


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
    payload_keys = set(plain.to_dict()) - {"balance", "patches_per_track", "class_weight", "shuffle_buffer"}
    from mirdl.features.spec import stable_hash
    from mirdl_tf.train import RUN_FORMAT_VERSION

    old = {key: value for key, value in plain.to_dict().items()
           if key in payload_keys and key not in ("out", "epochs", "early_stopping", "store")}
    old.update(store_fingerprint="f", run_format_version=RUN_FORMAT_VERSION)
    assert plain.fingerprint(store_fingerprint="f") == stable_hash(old)  # runs from before resume
    assert config.fingerprint(store_fingerprint="f") != plain.fingerprint(store_fingerprint="f")
    buffered = train_config("s", "o", shuffle_buffer=16)
    assert buffered.fingerprint(store_fingerprint="f") != plain.fingerprint(store_fingerprint="f")
    with pytest.raises(ConfigError, match="needs a single_label store"):
        from mirdl_tf.train import _class_weight

        _class_weight(train_config("s", "o", class_weight="balanced"), {"task": {"type": "regression"}})


# --------------------------------------------------------------------------- planned epochs
def planned_epochs(store, n_epochs, *, seed=3, **kwargs):
    """Per epoch: the Counter of record keys read (each a separate iteration of one dataset)."""
    ds = data.load(store, "train", batch_size=16, seed=seed, deterministic=True, with_metadata=True,
                   standardize=False, **kwargs)
    return [collections.Counter(key.decode() for _, _, meta in ds for key in meta["key"].numpy())
            for _ in range(n_epochs)]


def per_track(keys):
    counts = collections.Counter()
    for key, n in keys.items():
        counts[key.split("#")[0]] += n
    return counts


@pytest.mark.parametrize("fmt,cache", [("tfrecord", False), ("hdf5", False), ("parquet", False),
                                       ("tfrecord", True)])
def test_every_epoch_reads_exactly_its_plan(tmp_path, fmt, cache):
    store = write_imbalanced_store(tmp_path / "s", fmt)
    epochs = planned_epochs(store, 2, balance="track", patches_per_track=2, cache=cache)
    for keys in epochs:
        assert per_track(keys) == {track: 2 for track in per_track(epochs[0])} and len(per_track(keys)) == 15
        # Without replacement while a track has records left: a 1-record track gives it twice.
        assert all(n == (2 if key.startswith("c1/") else 1) for key, n in keys.items()), keys
    assert epochs[0] != epochs[1]  # each epoch draws other patches
    assert planned_epochs(store, 2, balance="track", patches_per_track=2, cache=cache) == epochs  # same seed
    assert planned_epochs(store, 1, seed=4, balance="track", patches_per_track=2, cache=cache)[0] != epochs[0]


@pytest.mark.parametrize("fmt", ["tfrecord", "hdf5", "parquet"])
def test_class_plan_reads_equal_class_counts_every_epoch(tmp_path, fmt):
    store = write_imbalanced_store(tmp_path / "s", fmt)
    ds = data.load(store, "train", batch_size=16, seed=0, deterministic=True, standardize=False, balance="class",
                   repeat=2)
    assert int(ds.cardinality()) == -(-2 * 69 // 16)  # known ahead: mirdl train streams its epochs
    x, y = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    labels, x = np.concatenate(y), np.concatenate(x)
    # round(68 / 3) = 23 per class and epoch; shuffling happens within an epoch, before repeat.
    assert np.bincount(labels[:69]).tolist() == [23, 23, 23] and np.bincount(labels[69:]).tolist() == [23, 23, 23]
    np.testing.assert_array_equal(x[:, 0, 0], labels)  # each record's own feature came with its label


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_balanced_epochs_read_features_only_at_planned_positions(tmp_path, fmt, monkeypatch):
    from mirdl.store import adapters

    store = write_imbalanced_store(tmp_path / "s", fmt)
    adapter_class = type(adapters.adapter_for(fmt))
    feature_reads, planned = [], []
    read_batches, read_counted = adapter_class.read_batches, adapter_class.read_counted

    def spy_batches(self, path, *, manifest, features=None, **kwargs):
        feature_reads.append(features)
        return read_batches(self, path, manifest=manifest, features=features, **kwargs)

    def spy_counted(self, path, counts, **kwargs):
        planned.append(int(np.sum(counts)))
        return read_counted(self, path, counts, **kwargs)

    monkeypatch.setattr(adapter_class, "read_batches", spy_batches)
    monkeypatch.setattr(adapter_class, "read_counted", spy_counted)
    epochs = planned_epochs(store, 2, balance="track", patches_per_track=1)
    assert feature_reads and all(features == [] for features in feature_reads)  # the index: no feature read
    assert sum(planned) == 2 * 15 == sum(sum(keys.values()) for keys in epochs)


def test_plans_respect_variants_and_divide_records_between_workers(tmp_path):
    from mirdl.store.manifest import read_manifest
    from mirdl_tf import balance

    store = write_imbalanced_store(tmp_path / "s", "parquet")
    manifest = read_manifest(store)
    index, whole = balance.plan_for_split(store, manifest, "train", mode="class")
    assert whole.sizes == {0: 60, 1: 2, 2: 6} and whole.draws == {0: 23, 1: 23, 2: 23}
    parts = [balance.plan_for_split(store, manifest, "train", mode="track", num_workers=2, worker=w)[1]
             for w in (0, 1)]
    assert not set(parts[0].eligible) & set(parts[1].eligible)
    assert sorted([*parts[0].eligible, *parts[1].eligible]) == list(range(68))
    import tensorflow as tf

    counts = balance.draw_counts(whole, tf.constant([5, 7], tf.int64)).numpy()
    assert counts.sum() == 69 and np.bincount(index.label, weights=counts).tolist() == [23, 23, 23]
    _, none = balance.plan_for_split(store, manifest, "train", mode="track", variants=[1])
    assert none.epoch_records == 0


def test_tfrecord_balanced_epochs_parse_only_planned_records(tmp_path, monkeypatch):
    import tensorflow as tf

    from mirdl.store import adapters

    store = write_imbalanced_store(tmp_path / "s", "tfrecord")
    tf_reader = adapters.TFRecordAdapter.tf_reader
    parsed = []

    def counting_reader(self, layout, **kwargs):
        read, parse = tf_reader(self, layout, **kwargs)

        def counting_parse(serialized):
            tf.py_function(lambda n: parsed.append(int(n)), [tf.size(serialized)], [])
            return parse(serialized)

        return read, counting_parse

    monkeypatch.setattr(adapters.TFRecordAdapter, "tf_reader", counting_reader)
    epochs = planned_epochs(store, 2, balance="track", patches_per_track=1)
    assert [sum(keys.values()) for keys in epochs] == [15, 15]
    assert sum(parsed) == 30  # of the 68 records streamed each epoch, only the planned ones are parsed
