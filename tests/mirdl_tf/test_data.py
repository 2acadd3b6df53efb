"""Tests for mirdl_tf.data.load / describe on small stores of every format.

Known-answer stores (conftest.write_known_store) check crops, alignment, variants, sharding,
determinism and errors exactly; stores written by the real job check that ``load`` returns
the very records plain h5py / pyarrow / TFRecordDataset code reads from the shards.
"""
from __future__ import annotations

import itertools
import json
import mmap
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mirdl.store import format as store_format
from mirdl.store.adapters import read_shard  # noqa: E402
from mirdl.store.manifest import read_manifest  # noqa: E402
from mirdl.errors import StoreError  # noqa: E402
from mirdl_tf import data  # noqa: E402

FORMATS = ("tfrecord", "hdf5", "parquet")
N_FREQ, N_FRAMES = 6, 20  # geometry of the known-answer stores (conftest.write_known_store)
SPEC_AUGMENT = {"freq_masks": 1, "freq_width": 2, "time_masks": 1, "time_width": 3}


def records_of(ds) -> dict[str, tuple]:
    """key -> (x, y, meta) of every example of a ``with_metadata=True`` dataset (one pass)."""
    out = {}
    for x, y, meta in ds.as_numpy_iterator():
        for i, key in enumerate(meta["key"]):
            out[key.decode()] = (x[i], y[i], {name: value[i] for name, value in meta.items()})
    return out


def batches(ds) -> list:
    return [tuple(np.asarray(part) for part in element[:2]) for element in ds.as_numpy_iterator()]


def all_keys(store: Path, split: str = "train") -> list[str]:
    return sorted(records_of(data.load(store, split, batch_size=64, shuffle=False, standardize=False,
                                       with_metadata=True)))


# --------------------------------------------------------------------------- raw readers (no mirdl code)
def read_raw(store: Path, split: str, feature: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """key -> (feature, label) read with plain tf / h5py / pyarrow, as docs/store-format.md shows."""
    m = json.loads((store / "manifest.json").read_text())
    f, task = m["features"][feature], m["task"]
    files = [store / s["path"] for s in m["splits"][split]["shards"]]
    out = {}
    if m["format"] == "tfrecord":
        label_t = tf.int64 if task["label_dtype"] == "int64" else tf.float32
        desc = {"key": tf.io.FixedLenFeature([], tf.string), feature: tf.io.FixedLenFeature([], tf.string),
                "label": tf.io.FixedLenFeature(task["label_shape"], label_t)}
        compression = "GZIP" if m.get("compression") == "gzip" else ""
        for serialized in tf.data.TFRecordDataset([str(p) for p in files], compression_type=compression):
            ex = tf.io.parse_single_example(serialized, desc)
            x = np.frombuffer(ex[feature].numpy(), dtype=f["dtype"]).reshape(f["shape"])
            out[ex["key"].numpy().decode()] = (x, ex["label"].numpy())
    elif m["format"] == "hdf5":
        import h5py

        for path in files:
            with h5py.File(path, "r") as h5:
                for i, key in enumerate(h5["key"].asstr()[:]):
                    out[key] = (h5[f"features/{feature}"][i], h5["label"][i])
    else:
        import pyarrow.parquet as pq

        for path in files:
            table = pq.read_table(path).to_pydict()
            for i, key in enumerate(table["key"]):
                out[key] = (np.asarray(table[feature][i], dtype=f["dtype"]).reshape(f["shape"]),
                            np.asarray(table["label"][i]).reshape(task["label_shape"]))
    return out


# --------------------------------------------------------------------------- job stores: same records as raw
@pytest.mark.parametrize("fmt", FORMATS)
def test_load_returns_the_raw_records_of_a_job_store(job_store, fmt):
    store = job_store(fmt)
    info = data.describe(store)
    raw = read_raw(store, "train", info["feature"])
    got = records_of(data.load(store, "train", batch_size=5, shuffle=False, standardize=False, crop="center",
                               with_metadata=True))
    assert sorted(got) == sorted(raw) and raw
    for key, (x, y) in raw.items():
        np.testing.assert_array_equal(got[key][0], x.astype(np.float32), err_msg=key)
        np.testing.assert_array_equal(got[key][1], y, err_msg=key)


@pytest.mark.parametrize("fmt", FORMATS)
def test_job_store_standardised_with_manifest_stats(job_store, fmt):
    store = job_store(fmt)
    info = data.describe(store)
    stats = json.loads((store / "manifest.json").read_text())["features"][info["feature"]]["stats"]
    kwargs = dict(batch_size=8, shuffle=False, crop="center", with_metadata=True)
    plain = records_of(data.load(store, "train", standardize=False, **kwargs))
    scaled = records_of(data.load(store, "train", standardize=True, **kwargs))
    mean = np.asarray(stats["mean"], np.float32)[:, None]
    std = np.maximum(np.asarray(stats["std"], np.float32), data.STD_FLOOR)[:, None]
    for key, (x, _, _) in plain.items():
        np.testing.assert_allclose(scaled[key][0], (x - mean) / std, rtol=1e-5, atol=1e-5)


def test_job_frame_store_crops_features_and_labels_together(job_store):
    store = job_store("hdf5")  # frame_onset labels from the onset annotations
    info = data.describe(store, patch_frames=21)
    assert info["task"] == "frame_onset" and info["label_shape"] == (21,)
    raw = read_raw(store, "train", "logmel")
    got = records_of(data.load(store, "train", batch_size=8, patch_frames=21, standardize=False, seed=0,
                               with_metadata=True))
    assert got.keys() == raw.keys()
    assert len({int(meta["crop_offset"]) for _, _, meta in got.values()}) > 1
    for key, (x, y, meta) in got.items():
        start = int(meta["crop_offset"])
        np.testing.assert_array_equal(x, raw[key][0][:, start:start + 21])
        np.testing.assert_array_equal(y, raw[key][1][start:start + 21])
    assert any(y.max() > 0 for _, y, _ in got.values())  # some onsets in the crops


def test_job_store_second_feature(job_store):
    store = job_store("parquet")  # logmel and mfcc, multi-hot tags
    info = data.describe(store, feature="mfcc")
    assert info["features"] == ["logmel", "mfcc"] and info["input_shape"][0] == 13
    raw = read_raw(store, "valid", "mfcc")
    got = records_of(data.load(store, "valid", feature="mfcc", batch_size=8, shuffle=False, standardize=False,
                               with_metadata=True))
    assert got.keys() == raw.keys()
    for key, (x, y) in raw.items():
        np.testing.assert_array_equal(got[key][0], x)
        np.testing.assert_array_equal(got[key][1], y)


def test_job_store_trains_a_keras_model(job_store):
    keras = pytest.importorskip("keras")
    store = job_store("tfrecord")
    info = data.describe(store, patch_frames=16)
    ds = data.load(store, "train", batch_size=8, patch_frames=16, seed=0, repeat=False)
    model = keras.Sequential([keras.Input(info["input_shape"]), keras.layers.Flatten(),
                              keras.layers.Dense(info["n_outputs"])])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                  if info["task"] == "single_label" else "mse")
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


# --------------------------------------------------------------------------- known stores: shapes and values
@pytest.mark.parametrize("fmt", FORMATS)
def test_known_store_reads_every_record_exactly(known_store, fmt):
    store = known_store(fmt)
    got = records_of(data.load(store, "train", batch_size=5, shuffle=False, standardize=False, with_metadata=True))
    assert len(got) == 6 * 2 * 2
    for key, (x, y, meta) in got.items():
        start, variant = int(meta["start_frame"]), int(meta["variant"])
        expected = (start + np.arange(N_FRAMES))[None] + 1000.0 * np.arange(N_FREQ)[:, None] + 0.25 * variant
        np.testing.assert_array_equal(x, expected.astype(np.float32), err_msg=key)
        assert meta["crop_offset"] == 0 and meta["key"].decode() == key


@pytest.mark.parametrize("fmt", FORMATS)
def test_static_shapes(known_store, fmt):
    ds = data.load(known_store(fmt), "train", batch_size=4, patch_frames=8, drop_remainder=True, seed=0)
    x_spec, y_spec = ds.element_spec
    assert x_spec.shape == (4, N_FREQ, 8) and x_spec.dtype == tf.float32
    label_shape = {"tfrecord": (4, 8), "hdf5": (4, 2, 8), "parquet": (4, 8)}[fmt]
    assert y_spec.shape == label_shape
    assert ds.cardinality().numpy() == 24 // 4
    x, y = next(iter(ds))
    assert x.shape == (4, N_FREQ, 8) and y.shape == label_shape


@pytest.mark.parametrize("fmt", FORMATS)
def test_frame_labels_stay_aligned_after_random_crop(known_store, fmt):
    ds = data.load(known_store(fmt), "train", batch_size=6, patch_frames=7, standardize=False, seed=3,
                   with_metadata=True)
    offsets = set()
    for x, y, meta in ds.as_numpy_iterator():
        # Row 0 of the feature is the track frame index (+ variant / 4), as is the label.
        frame_index = x[:, 0, :] - 0.25 * meta["variant"][:, None]
        label = y if y.ndim == 2 else y[:, 0, :]
        np.testing.assert_array_equal(label, frame_index.astype(label.dtype))
        expected_first = meta["start_frame"] + meta["crop_offset"]
        np.testing.assert_array_equal(frame_index[:, 0], expected_first)
        offsets.update(meta["crop_offset"].tolist())
    assert len(offsets) > 3 and max(offsets) <= N_FRAMES - 7


def test_center_crop_is_fixed_and_matches_features_segment(known_store):
    from mirdl.features.segment import center_crop

    store = known_store("parquet")
    got = records_of(data.load(store, "train", batch_size=8, patch_frames=7, crop="center", standardize=False,
                               shuffle=False, with_metadata=True))
    raw = read_raw(store, "train", "logmel")
    for key, (x, y, meta) in got.items():
        expected, start = center_crop(raw[key][0], n_frames=7)
        assert meta["crop_offset"] == start == (N_FRAMES - 7) // 2
        np.testing.assert_array_equal(x, expected)
        np.testing.assert_array_equal(y, raw[key][1][start:start + 7])


def test_random_crop_changes_every_epoch_and_is_reproducible(known_store):
    store = known_store("tfrecord")

    def offsets_by_epoch():
        ds = data.load(store, "train", batch_size=8, patch_frames=5, seed=11, deterministic=True, repeat=2,
                       with_metadata=True)
        keys, offsets = [], []
        for _, _, meta in ds.as_numpy_iterator():
            keys += meta["key"].tolist()
            offsets += meta["crop_offset"].tolist()
        n = len(keys) // 2
        return [dict(zip(keys[:n], offsets[:n])), dict(zip(keys[n:], offsets[n:]))]

    first, again = offsets_by_epoch(), offsets_by_epoch()
    assert first == again
    epoch1, epoch2 = first
    assert sorted(epoch1) == sorted(epoch2)
    assert sum(epoch1[k] != epoch2[k] for k in epoch1) > len(epoch1) // 2


def test_standardize_uses_manifest_stats_with_std_floor(known_store, store_copy):
    store = store_copy(known_store("hdf5"))
    manifest = json.loads((store / "manifest.json").read_text())
    stats = manifest["features"]["logmel"]["stats"]
    stats["std"][2] = 0.0  # a silent bin: divided by the floor, not by zero
    (store / "manifest.json").write_text(json.dumps(manifest))
    kwargs = dict(batch_size=24, shuffle=False, with_metadata=True)
    plain = records_of(data.load(store, "train", standardize=False, **kwargs))
    scaled = records_of(data.load(store, "train", standardize=True, **kwargs))
    mean = np.asarray(stats["mean"], np.float32)[:, None]
    std = np.maximum(np.asarray(stats["std"], np.float32), 1e-6)[:, None]
    for key, (x, _, _) in plain.items():
        np.testing.assert_allclose(scaled[key][0], (x - mean) / std, rtol=1e-6)
    assert np.isfinite(np.stack([v[0] for v in scaled.values()])).all()


# --------------------------------------------------------------------------- variants
@pytest.mark.parametrize(("variants", "expected"), [("all", {0, 1}), ("clean", {0}), ([1], {1})])
def test_variant_selection(known_store, variants, expected):
    got = records_of(data.load(known_store("hdf5"), "train", batch_size=8, variants=variants, seed=0,
                               with_metadata=True))
    counts = Counter(int(meta["variant"]) for _, _, meta in got.values())
    assert set(counts) == expected and all(n == 12 for n in counts.values())


def test_variant_choice_random_keeps_one_variant_per_track_per_epoch(known_store):
    store = known_store("parquet")

    def choices():
        ds = data.load(store, "train", batch_size=8, seed=5, deterministic=True, variant_choice="random", repeat=4,
                       with_metadata=True)
        metas = [meta for _, _, meta in ds.as_numpy_iterator()]
        tracks = np.concatenate([m["track_id"] for m in metas])
        variants = np.concatenate([m["variant"] for m in metas])
        per_epoch = len(tracks) // 4
        assert len(tracks) == 4 * per_epoch == 4 * 6 * 2  # 6 tracks x 2 segments of one variant, per epoch
        epochs = []
        for e in range(4):
            chosen: dict[bytes, set] = {}
            for track, variant in zip(tracks[e * per_epoch:(e + 1) * per_epoch],
                                      variants[e * per_epoch:(e + 1) * per_epoch]):
                chosen.setdefault(track, set()).add(int(variant))
            assert all(len(v) == 1 for v in chosen.values()) and len(chosen) == 6
            epochs.append({track: v.pop() for track, v in chosen.items()})
        return epochs

    epochs = choices()
    assert epochs == choices()
    assert len({tuple(sorted(e.items())) for e in epochs}) > 1  # a new draw in some epoch
    assert {v for e in epochs for v in e.values()} == {0, 1}


# --------------------------------------------------------------------------- multi-worker
def test_workers_shard_by_files_disjoint_and_complete(known_store):
    store = known_store("tfrecord")  # 3 shard files, 2 workers: whole files per worker
    manifest = read_manifest(store)
    parts = []
    for worker in range(2):
        parts.append(set(records_of(data.load(store, "train", batch_size=8, seed=worker, num_shards=2,
                                              shard_index=worker, with_metadata=True))))
        from_files = set(read_raw_keys(store, manifest["splits"]["train"]["shards"][worker::2]))
        assert parts[-1] == from_files
    assert not parts[0] & parts[1]
    assert parts[0] | parts[1] == set(all_keys(store))


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_workers_of_an_unshuffled_planned_read_take_whole_shards(known_store, fmt):
    """shuffle=False over HDF5/Parquet (the planned read), 2 workers, 3 shards: each worker reads its
    own shards (every 2nd), whole; together every record once."""
    store = known_store(fmt, task_type="multi_label")
    shards = read_manifest(store)["splits"]["train"]["shards"]
    parts = []
    for worker in range(2):
        ds = data.load(store, "train", batch_size=4, shuffle=False, num_shards=2, shard_index=worker,
                       with_metadata=True)
        keys = list(records_of(ds))
        assert len(keys) == sum(int(entry["records"]) for entry in shards[worker::2])
        parts.append(set(keys))
    assert not parts[0] & parts[1]
    assert parts[0] | parts[1] == set(all_keys(store))


def read_raw_keys(store: Path, shards: list[dict]) -> list[str]:
    files = [str(store / s["path"]) for s in shards]
    return [tf.io.parse_single_example(s, {"key": tf.io.FixedLenFeature([], tf.string)})["key"].numpy().decode()
            for s in tf.data.TFRecordDataset(files)]


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_workers_shard_by_records_disjoint_and_complete(known_store, fmt):
    store = known_store(fmt)  # 3 shard files, 4 workers: every 4th record of a fixed order
    parts = []
    for worker in range(4):
        # Different seeds per worker on purpose: record sharding must not depend on them.
        context = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=worker,
                                             num_replicas_in_sync=4)
        ds = data.load(store, "train", batch_size=4, seed=100 + worker, deterministic=False,
                       input_context=context, with_metadata=True)
        keys = records_of(ds)
        assert len(keys) == 6  # 24 records / 4 workers
        assert ds.cardinality().numpy() == 2
        parts.append(set(keys))
    assert sum(len(p) for p in parts) == 24
    assert set().union(*parts) == set(all_keys(store))


def test_worker_arguments_are_checked(known_store):
    store = known_store("tfrecord")
    with pytest.raises(ValueError, match="shard_index must be in"):
        data.load(store, "train", batch_size=2, num_shards=2, shard_index=2)
    with pytest.raises(ValueError, match="go together"):
        data.load(store, "train", batch_size=2, num_shards=2)


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("fmt", FORMATS)
def test_same_seed_same_batches(known_store, fmt):
    store = known_store(fmt, task_type="multi_label")

    def build():
        return data.load(store, "train", batch_size=5, patch_frames=9, seed=7, deterministic=True, repeat=2,
                         spec_augment=SPEC_AUGMENT, mixup_alpha=0.4)

    first, second = batches(build()), batches(build())
    assert len(first) == len(second) == 2 * 5
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    epoch1 = np.concatenate([x for x, _ in first[:5]])
    epoch2 = np.concatenate([x for x, _ in first[5:]])
    assert not np.array_equal(epoch1, epoch2)
    other = batches(data.load(store, "train", batch_size=5, patch_frames=9, seed=8, deterministic=True))
    assert not np.array_equal(np.concatenate([x for x, _ in other]), epoch1)


@pytest.mark.parametrize(("repeat", "drop_remainder", "expected"), [(1, False, 5), (3, False, 15), (3, True, 14)])
def test_cardinality_counts_batches_across_epochs(known_store, repeat, drop_remainder, expected):
    # Batches run across epoch boundaries: 3 epochs of 24 records in batches of 5 are 15 batches, not 3 x 5.
    ds = data.load(known_store("tfrecord"), "train", batch_size=5, repeat=repeat, drop_remainder=drop_remainder,
                   seed=0)
    assert ds.cardinality().numpy() == expected == sum(1 for _ in ds)


@pytest.mark.parametrize("fmt", ["tfrecord", "hdf5"])
def test_shuffled_epochs_stay_whole_when_repeated(known_store, fmt):
    # README "Shuffling": with repeat, tf.data fuses shuffle and repeat and keeps filling the buffer
    # from the next epoch while this one drains (no refill stall), but draws only from this epoch's
    # records: every block of N records is one whole epoch, each in its own order.
    store = known_store(fmt)
    n = 24
    ds = data.load(store, "train", batch_size=5, seed=6, repeat=3, shuffle_buffer=16, with_metadata=True,
                   deterministic=True)
    keys = np.concatenate([meta["key"] for _, _, meta in ds.as_numpy_iterator()]).tolist()
    epochs = [keys[i * n:(i + 1) * n] for i in range(3)]
    assert len(keys) == 3 * n
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(epochs[2]) == sorted(set(keys))
    assert epochs[0] != epochs[1] != epochs[2]


@pytest.fixture
def permutations(monkeypatch):
    """Calls of ``data._records_at_offsets`` made by ``load``: ``True`` for a permutation of the split
    (instead of a buffer), ``False`` for unshuffled records read at their offsets."""
    calls = []
    real = data._records_at_offsets

    def spy(*args, **kwargs):
        calls.append(kwargs["shuffle"])
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "_records_at_offsets", spy)
    return calls


@pytest.fixture(params=["global shuffle", "stateless_shuffle"])
def id_source(request, monkeypatch):
    """Where shuffled record ids come from: tf.data's global shuffle, or (as where a TensorFlow lacks
    it) the permutation drawn per iteration."""
    if request.param == "global shuffle" and data._global_shuffle is None:
        pytest.skip("this TensorFlow has no global shuffle")
    if request.param == "stateless_shuffle":
        monkeypatch.setattr(data, "_global_shuffle", None)
    return request.param


def test_tfrecord_epochs_are_permutations_of_the_whole_split(known_store, permutations, id_source):
    """README "Shuffling": a local, uncompressed TFRecord store is read in a permutation of the whole
    split every epoch, each record at its byte offset (no buffer to fill): every epoch each record
    once in an order of its own, records of several shards from the first batches on, the same seed
    the same order, and each record's numbers those it has unshuffled. The same with tf.data's global
    shuffle and with the permutation drawn per iteration where a TensorFlow has no global shuffle."""
    store = known_store("tfrecord")
    manifest = read_manifest(store)

    def keys(seed):
        ds = data.load(store, "train", batch_size=5, seed=seed, repeat=3, with_metadata=True)
        return np.concatenate([meta["key"] for _, _, meta in ds.as_numpy_iterator()]).astype(str).tolist()

    first = keys(6)
    assert permutations == [True]
    n = 24
    epochs = [first[i * n:(i + 1) * n] for i in range(3)]
    stored = read_raw_keys(store, manifest["splits"]["train"]["shards"])
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(epochs[2]) == sorted(stored)
    assert len({tuple(epoch) for epoch in epochs + [stored]}) == 4
    shard_of = {key: index for index, shard in enumerate(manifest["splits"]["train"]["shards"])
                for key in read_raw_keys(store, [shard])}
    assert len({shard_of[key] for epoch in epochs for key in epoch[:5]}) > 1
    assert keys(6) == first
    assert keys(7) != first
    shuffled = records_of(data.load(store, "train", batch_size=5, seed=3, with_metadata=True))
    plain = records_of(data.load(store, "train", batch_size=5, shuffle=False, with_metadata=True))
    assert sorted(shuffled) == sorted(plain)
    for key, (x, y, _) in plain.items():
        np.testing.assert_array_equal(shuffled[key][0], x)
        np.testing.assert_array_equal(shuffled[key][1], y)


@pytest.mark.parametrize(("fmt", "kwargs"), [
    ("tfrecord", {"shuffle_buffer": 8}), ("tfrecord", {"cache": True}), ("tfrecord", {"variants": [0]}),
    ("tfrecord", {"balance": "track"}), ("tfrecord", {"compression": "gzip"}),
    ("hdf5", {}), ("parquet", {})])
def test_other_reads_shuffle_through_the_buffer(known_store, permutations, fmt, kwargs):
    # A buffer where a permutation does not apply: asked for (shuffle_buffer, for storage slow to seek),
    # records looked at one by one (variants, balance), a cache, GZIP shards (no offsets), HDF5, Parquet.
    store = known_store(fmt, **({"compression": kwargs.pop("compression")} if "compression" in kwargs else {}))
    ds = data.load(store, "train", batch_size=5, seed=1, **kwargs)
    assert sum(int(x.shape[0]) for x, _ in ds) > 0
    assert not permutations


def test_a_split_larger_than_the_page_cache_streams_through_the_buffer(known_store, permutations, monkeypatch):
    # Random offsets are for splits a machine keeps in its page cache; the cap is on this worker's shards.
    store = known_store("tfrecord")
    shards = read_manifest(store)["splits"]["train"]["shards"]
    monkeypatch.setattr(data, "PERMUTATION_MAX_BYTES", sum(s["bytes"] for s in shards) - 1)
    data.load(store, "train", batch_size=5, seed=1)
    assert not permutations
    data.load(store, "train", batch_size=5, seed=1, num_shards=2, shard_index=1)  # shard 1 alone fits
    assert permutations == [True]


@pytest.mark.parametrize("workers", [{}, {"num_shards": 2, "shard_index": 1}])
def test_unshuffled_tfrecord_reads_at_offsets_in_the_streamed_order(known_store, permutations, monkeypatch,
                                                                     workers):
    """``shuffle=False`` reads a TFRecord split at its records' offsets too, in the order the shards
    stream in (``interleave``, one record a shard in turn, a shard's slot taken by the next shard
    when it ends): the same batches as the streamed read. Five shards of unequal sizes, two read at
    a time."""
    store = known_store("tfrecord", n_shards=5)
    counts = [shard["records"] for shard in read_manifest(store)["splits"]["train"]["shards"]]
    assert len(set(counts)) > 1
    monkeypatch.setattr(data, "MAX_CYCLE_LENGTH", 2)

    def batches(**kwargs):
        ds = data.load(store, "train", batch_size=5, shuffle=False, patch_frames=4, crop="center",
                       with_metadata=True, **workers, **kwargs)
        return [(meta["key"].tolist(), x, y) for x, y, meta in ds.as_numpy_iterator()]

    at_offsets = batches()
    assert permutations == [False]
    streamed = batches(shuffle_buffer=8)  # a buffer asked for: the shards streamed (shuffle=False: unused)
    assert permutations == [False]
    assert [keys for keys, _, _ in at_offsets] == [keys for keys, _, _ in streamed]
    assert len(sum((keys for keys, _, _ in at_offsets), [])) == sum(counts[workers.get("shard_index", 0)::
                                                                         workers.get("num_shards", 1)])
    for (_, x1, y1), (_, x2, y2) in zip(at_offsets, streamed):
        np.testing.assert_allclose(x1, x2, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(y1, y2)


def test_a_permutation_maps_at_most_max_mapped_shards(known_store, monkeypatch):
    """Shards are memory-mapped as they are first read, at most MAX_MAPPED_SHARDS at once (each map
    holds a file descriptor): with one at a time, shards are mapped again and again, and the epochs
    are the same records in the same order as with every shard mapped."""
    store = known_store("tfrecord")
    n_shards = len(read_manifest(store)["splits"]["train"]["shards"])
    assert n_shards > 1
    opened = []
    real = mmap.mmap

    def counted(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    def epochs():
        ds = data.load(store, "train", batch_size=5, seed=2, repeat=2, patch_frames=4, with_metadata=True)
        return [(meta["key"].tolist(), x, y) for x, y, meta in ds.as_numpy_iterator()]

    monkeypatch.setattr(mmap, "mmap", counted)
    every = epochs()
    assert len(opened) == n_shards
    opened.clear()
    monkeypatch.setattr(data, "MAX_MAPPED_SHARDS", 1)
    one = epochs()
    assert len(opened) > n_shards
    assert [keys for keys, _, _ in one] == [keys for keys, _, _ in every]
    for (_, x1, y1), (_, x2, y2) in zip(one, every):
        np.testing.assert_allclose(x1, x2, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("when", ["before the first batch", "between batches"])
def test_a_shard_that_changes_while_read_is_a_store_error(known_store, store_copy, when):
    """A shard's size is checked each batch before its records are copied out of its memory map:
    a shard cut short under a map would end the process with SIGBUS. (The shard grows here, between
    batches: cutting it while a prefetching thread reads its map would be that SIGBUS.)"""
    store = store_copy(known_store("tfrecord"))
    manifest = read_manifest(store)
    victims = [store / shard["path"] for shard in manifest["splits"]["train"]["shards"]]
    ds = data.load(store, "train", batch_size=1, seed=5, repeat=True)  # maps nothing yet
    if when == "before the first batch":  # before any iterator, whose prefetch would start reading
        os.truncate(victims[0], victims[0].stat().st_size // 2)
    batches = iter(ds)
    if when == "between batches":
        next(batches)
        for victim in victims:
            with open(victim, "ab") as handle:
                handle.write(b"\0" * 16)
    with pytest.raises(StoreError, match="train.*bytes, .* when the store was opened: the shard changed"):
        with data.named_store_errors(store, "train"):
            for _ in itertools.islice(batches, 1000):  # more than any prefetch reads ahead
                pass


def test_without_pread_the_split_streams_through_the_buffer(known_store, permutations, monkeypatch):
    monkeypatch.delattr(os, "pread")  # Windows' os module has no pread
    assert sum(int(x.shape[0]) for x, _ in data.load(known_store("tfrecord"), "train", batch_size=5, seed=1)) == 24
    assert not permutations


def test_a_new_iteration_is_a_new_epoch(known_store):
    # Keras fit iterates the dataset again each epoch (repeat=False): crops and order change.
    ds = data.load(known_store("parquet"), "train", batch_size=24, patch_frames=5, seed=4, with_metadata=True)
    first, second = [next(iter(ds))[2] for _ in range(2)]
    assert not np.array_equal(first["key"], second["key"])
    assert not np.array_equal(first["crop_offset"], second["crop_offset"])


def test_cache_gives_the_same_records(known_store):
    store = known_store("hdf5")
    kwargs = dict(batch_size=7, shuffle=False, standardize=False, with_metadata=True)
    cached = data.load(store, "train", cache=True, **kwargs)
    first, second = records_of(cached), records_of(cached)
    plain = records_of(data.load(store, "train", **kwargs))
    assert first.keys() == second.keys() == plain.keys()
    for key in plain:
        np.testing.assert_array_equal(first[key][0], plain[key][0])


def test_gzip_tfrecord_store(known_store):
    store = known_store("tfrecord", task_type="single_label", compression="gzip", n_shards=2)
    assert json.loads((store / "manifest.json").read_text())["compression"] == "gzip"
    got = records_of(data.load(store, "train", batch_size=8, shuffle=False, standardize=False, with_metadata=True))
    raw = read_raw(store, "train", "logmel")
    assert got.keys() == raw.keys()
    for key, (x, y) in raw.items():
        np.testing.assert_array_equal(got[key][0], x)
        assert got[key][1] == y


# --------------------------------------------------------------------------- augmentation
def test_spec_augment_masks_to_the_mean(known_store):
    store = known_store("tfrecord", task_type="multi_label")
    kwargs = dict(batch_size=24, patch_frames=10, crop="center", shuffle=False, seed=1, with_metadata=True)
    plain = records_of(data.load(store, "train", **kwargs))
    masked = records_of(data.load(store, "train", spec_augment={"freq_masks": 1, "freq_width": 3,
                                                                 "time_masks": 2, "time_width": 4}, **kwargs))
    n_changed_rows = n_changed_cols = 0
    for key, (x, _, _) in plain.items():
        changed = masked[key][0] != x
        assert np.all(masked[key][0][changed] == 0.0)  # the train mean after standardisation
        rows, cols = changed.all(axis=1), changed.all(axis=0)
        assert np.array_equal(changed, rows[:, None] | cols[None, :])  # whole bands and whole frames
        assert rows.sum() <= 3 and cols.sum() <= 8
        n_changed_rows += rows.sum()
        n_changed_cols += cols.sum()
    assert n_changed_rows > 0 and n_changed_cols > 0
    none = records_of(data.load(store, "train", spec_augment={"freq_masks": 0, "time_masks": 0}, **kwargs))
    for key, (x, _, _) in plain.items():
        np.testing.assert_array_equal(none[key][0], x)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 40), count=st.integers(0, 3), max_width=st.integers(0, 50),
       seed=st.integers(0, 2**31 - 1))
def test_spec_augment_mask_bounds_and_seed(size, count, max_width, seed):
    stateless_seed = tf.constant([seed, 1], tf.int64)
    mask = data._interval_mask(stateless_seed, size=size, count=count, max_width=max_width).numpy()
    assert mask.shape == (size,) and mask.dtype == bool
    assert mask.sum() <= count * min(max_width, size)
    again = data._interval_mask(stateless_seed, size=size, count=count, max_width=max_width).numpy()
    np.testing.assert_array_equal(mask, again)


def test_mixup_mixes_examples_and_one_hot_labels(known_store):
    store = known_store("parquet", task_type="single_label")
    ds = data.load(store, "train", batch_size=8, mixup_alpha=0.5, seed=2, standardize=False)
    assert ds.element_spec[1].shape.as_list() == [None, 3] and ds.element_spec[1].dtype == tf.float32
    for x, y in ds.as_numpy_iterator():
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
        assert (y >= 0).all() and (y.max(axis=1) < 1).any()
        assert np.isfinite(x).all()
    with pytest.raises(ValueError, match="mixup is for clip tasks"):
        data.load(known_store("hdf5"), "train", batch_size=8, mixup_alpha=0.5)


# --------------------------------------------------------------------------- describe
def test_describe_input_shape_and_n_outputs(known_store):
    store = known_store("hdf5")  # frame_notes, label (2, T)
    info = data.describe(store, patch_frames=8)
    assert info["task"] == "frame_notes" and info["format"] == "hdf5"
    assert info["input_shape"] == (N_FREQ, 8) and info["label_shape"] == (2, 8)
    assert info["n_outputs"] == 2 and info["splits"] == {"train": 24} and info["variants"] == [0, 1]
    assert data.input_shape(store) == (N_FREQ, N_FRAMES)
    assert data.n_outputs(known_store("parquet", task_type="single_label")) == 3


# --------------------------------------------------------------------------- errors
def test_missing_shard_is_a_store_error_before_iteration(known_store, store_copy):
    store = store_copy(known_store("hdf5"))
    victim = sorted(store.glob("*.h5"))[1]
    victim.unlink()
    with pytest.raises(StoreError, match=f"{victim.name}.*missing"):
        data.load(store, "train", batch_size=4)


def test_checksum_mismatch_with_verify(known_store, store_copy):
    store = store_copy(known_store("parquet"))
    victim = sorted(store.glob("*.parquet"))[0]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, different bytes
    victim.write_bytes(bytes(raw))
    data.load(store, "train", batch_size=4)  # size is checked always, sha256 only with verify
    with pytest.raises(StoreError, match=f"{victim.name}.*sha256"):
        data.load(store, "train", batch_size=4, verify=True)


@pytest.mark.parametrize(("fmt", "shuffle"), [(fmt, False) for fmt in FORMATS] + [("tfrecord", True)])
def test_corrupt_shard_read_by_load_is_a_store_error_naming_it(known_store, store_copy, fmt, shuffle):
    """One flipped bit in a feature value: the format's checksum catches it on read (no verify=True),
    and named_store_errors names the shard (TFRecord's DataLossError does not; a TFRecord record read
    at its offset, ``shuffle=True``, is checked as TFRecordDataset checks it)."""
    store = store_copy(known_store(fmt))
    manifest = read_manifest(store)
    victim = store / manifest["splits"]["train"]["shards"][1]["path"]
    record = next(read_shard(victim, manifest=manifest))
    raw = bytearray(victim.read_bytes())
    at = raw.find(record["logmel"][1].tobytes())
    assert at >= 0
    raw[at + 2] ^= 0x10
    victim.write_bytes(bytes(raw))
    dataset = data.load(store, "train", batch_size=4, shuffle=shuffle)
    with pytest.raises(StoreError, match=f"{victim.name}.*(corrupt|checksum)"):
        with data.named_store_errors(store, "train"):
            for _ in dataset:
                pass


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_a_damaged_shard_of_an_unshuffled_split_is_a_store_error_from_load(known_store, store_copy, fmt):
    """An unshuffled HDF5/Parquet split is planned in load(): a shard whose file structure is damaged
    (HDF5's superblock, Parquet's footer; same size, so the size check passes) is a StoreError naming it
    there, before any read."""
    store = store_copy(known_store(fmt))
    manifest = read_manifest(store)
    victim = store / manifest["splits"]["train"]["shards"][1]["path"]
    raw = bytearray(victim.read_bytes())
    at = slice(0, 8) if fmt == "hdf5" else slice(len(raw) - 8, len(raw) - 4)  # the signature; the footer's length
    raw[at] = bytes(len(raw[at]))
    victim.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=f"{victim.name}.*(corrupt|damaged)"):
        data.load(store, "train", batch_size=4, shuffle=False)


def test_unknown_format_version(known_store, store_copy):
    store = store_copy(known_store("tfrecord"))
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["format_version"] = 99
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="format_version=99"):
        data.load(store, "train", batch_size=4)


def test_unknown_split_feature_and_missing_manifest(known_store, tmp_path):
    store = known_store("tfrecord")
    with pytest.raises(StoreError, match="split 'test'"):
        data.load(store, "test", batch_size=4)
    with pytest.raises(StoreError, match="feature 'mfcc'.*logmel"):
        data.load(store, "train", feature="mfcc", batch_size=4)
    with pytest.raises(StoreError, match="manifest.json: missing"):
        data.load(tmp_path, "train", batch_size=4)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"batch_size": 0}, "batch_size must be"),
    ({"batch_size": 2, "patch_frames": N_FRAMES + 1}, "longer than the stored segments"),
    ({"batch_size": 2, "crop": "left"}, "crop must be"),
    ({"batch_size": 2, "variants": "noisy"}, "variants must be"),
    ({"batch_size": 2, "spec_augment": {"freq_mask": 1}}, "unknown key 'freq_mask'"),
    ({"batch_size": 2, "hdf5_backend": "pytables"}, "hdf5_backend must be"),
])
def test_argument_errors(known_store, kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(known_store("tfrecord"), "train", **kwargs)


# --------------------------------------------------------------------------- tensorflow-io
def _tfio_or_skip():
    pytest.importorskip("tensorflow_io", reason="tensorflow-io is not installed (make test-tfio)")
    from mirdl.store import adapters

    try:
        tfio = adapters.load_tfio()
        # A tiny op: tensorflow-io imports fine with other TF versions and fails only here.
        tfio.IODataset.from_tensor_slices(tf.constant([1])).cardinality()
    except (StoreError, Exception) as err:  # noqa: B014 - any load failure means skip
        pytest.skip(f"tensorflow-io's native ops do not load here: {err}")


def test_tfio_backend_unloadable_is_a_store_error(known_store):
    try:
        from mirdl.store import adapters

        adapters.load_tfio()
    except StoreError:
        with pytest.raises(StoreError, match="not loadable here"):
            data.load(known_store("hdf5"), "train", batch_size=4, hdf5_backend="tfio")
    else:
        pytest.skip("tensorflow-io loads here; the tfio tests cover it")


@pytest.mark.tfio
@pytest.mark.parametrize("which", ["known", "job"])
def test_tfio_backend_reads_the_same_arrays_as_h5py(request, which):
    _tfio_or_skip()
    # The known store is uncompressed; the job's HDF5 store is gzip-compressed, with frame labels.
    store = request.getfixturevalue(f"{which}_store")("hdf5")
    kwargs = dict(batch_size=5, shuffle=False, with_metadata=True)
    h5py_records = records_of(data.load(store, "train", hdf5_backend="h5py", **kwargs))
    tfio_records = records_of(data.load(store, "train", hdf5_backend="tfio", **kwargs))
    assert tfio_records.keys() == h5py_records.keys()
    for key, (x, y, meta) in h5py_records.items():
        np.testing.assert_array_equal(tfio_records[key][0], x)
        np.testing.assert_array_equal(tfio_records[key][1], y)
        assert tfio_records[key][2]["track_id"] == meta["track_id"]


def test_tfio_backend_refuses_lzf_stores(known_store):
    store = known_store("hdf5", compression="lzf")
    assert data.describe(store)["splits"] == {"train": 24}
    with pytest.raises(StoreError, match="lzf.*hdf5_backend='h5py'"):
        data.load(store, "train", batch_size=4, hdf5_backend="tfio")
    assert sum(1 for _ in data.load(store, "train", batch_size=24)) == 1  # h5py reads it


@pytest.mark.tfio
def test_tfio_backend_is_deterministic_with_seed(known_store):
    _tfio_or_skip()
    store = known_store("hdf5")

    def build():
        return data.load(store, "train", batch_size=4, patch_frames=6, seed=3, deterministic=True,
                         hdf5_backend="tfio")

    for (x1, y1), (x2, y2) in zip(batches(build()), batches(build())):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_batched_read_paths_give_the_same_batches(known_store):
    """TFRecord through the shuffle buffer parsed a batch at a time and parsed before the variant filter
    (``variants=[0, 1]`` keeps every record but takes the per-record path) give the same shuffled,
    cropped, standardised, masked batches; so do the two batch readers (HDF5, Parquet), whose shards
    interleave a read chunk at a time; all formats give every record the same numbers."""
    def build(fmt, **kwargs):
        return batches(data.load(known_store(fmt, task_type="multi_label"), "train", batch_size=5, patch_frames=9,
                                 seed=4, deterministic=True, spec_augment=SPEC_AUGMENT, repeat=2, **kwargs))

    for reference, other in [(build("tfrecord", shuffle_buffer=data.DEFAULT_SHUFFLE_BUFFER),
                              build("tfrecord", variants=[0, 1])),
                             (build("hdf5"), build("parquet"))]:
        assert len(reference) == len(other) == 10
        for (x1, y1), (x2, y2) in zip(reference, other):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
    by_format = [records_of(data.load(known_store(fmt, task_type="multi_label"), "train", batch_size=7,
                                      patch_frames=9, crop="center", shuffle=False, with_metadata=True))
                 for fmt in FORMATS]
    assert sorted(by_format[0]) == sorted(by_format[1]) == sorted(by_format[2])
    for key, (x, y, _) in by_format[0].items():
        for other in by_format[1:]:
            np.testing.assert_array_equal(other[key][0], x)
            np.testing.assert_array_equal(other[key][1], y)


@pytest.mark.parametrize("shape", [(3, 6, 20), (3, 2, 6, 20), (3, 20)])
def test_batched_crop_is_a_slice_per_record(shape):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    offsets = np.array([0, 13, 5], np.int32)
    got = data._crop_time_batch(tf.constant(x), tf.constant(offsets), 7).numpy()
    expected = np.stack([x[i, ..., o:o + 7] for i, o in enumerate(offsets)])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("variants", ["all", [0, 1]])
def test_each_record_gets_its_own_random_value_whatever_the_batch_size(known_store, fmt, variants):
    """The i-th record of a seeded read gets the i-th random value (its crop offset, its masks),
    across epochs and in a last, shorter batch: batches of 5 give every position the crop offset
    and the features that batches of 1 give it. Where the records are counted the random batches
    are cut to the record batches' sizes; with ``variants`` (filtered record by record, not
    counted) a batch takes the head of its random batch."""
    store = known_store(fmt)

    def positions(batch_size):
        ds = data.load(store, "train", batch_size=batch_size, patch_frames=N_FRAMES - 6, seed=3, repeat=2,
                       variants=variants, spec_augment=SPEC_AUGMENT, with_metadata=True)
        got = list(ds.as_numpy_iterator())
        return got, [(k, int(o)) for _, _, meta in got for k, o in zip(meta["key"], meta["crop_offset"])]

    fives, by_five = positions(5)
    ones, by_one = positions(1)
    assert by_five == by_one and len(by_one) == 2 * len(all_keys(store))
    assert len(fives[-1][0]) < 5  # the last batch is short
    assert len({offset for _, offset in by_one}) > 3  # and the offsets are drawn, not fixed
    np.testing.assert_array_equal(np.concatenate([x for x, _, _ in fives]), np.concatenate([x for x, _, _ in ones]))


def _dataset_ops(ds) -> str:
    """The serialised graph of a dataset, as text (op names and attributes)."""
    return ds._as_serialized_graph().numpy().decode("latin-1")


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_unshuffled_batch_reader_is_rebatched_not_unbatched(known_store, fmt):
    """shuffle=False over a reader that yields batches (HDF5, Parquet) keeps them and rebatches
    (whole slices, no record crossing tf.data alone); batches, across epochs and with the last one
    short, are those of the per-record path (``variants=[0, 1]`` keeps every record, one by one)."""
    store = known_store(fmt, task_type="multi_label")

    def build(**kwargs):
        return data.load(store, "train", batch_size=5, shuffle=False, repeat=2, **kwargs)

    assert "RebatchDatasetV2" in _dataset_ops(build()) and "UnbatchDataset" not in _dataset_ops(build())
    fast, reference = batches(build()), batches(build(variants=[0, 1]))
    assert [len(x) for x, _ in fast] == [len(x) for x, _ in reference] == [5] * 9 + [3]
    for (x1, y1), (x2, y2) in zip(fast, reference):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_record_columns_are_read_only_when_needed(known_store, fmt):
    """Without metadata, variant selection or balancing, only the feature and the label are
    parsed (TFRecord) or read (HDF5, Parquet); with_metadata still gives every column."""
    store = known_store(fmt, task_type="multi_label")
    plain = data.load(store, "train", batch_size=4, shuffle=False)
    assert "track_id" not in _dataset_ops(plain) and "start_frame" not in _dataset_ops(plain)
    meta = data.load(store, "train", batch_size=4, shuffle=False, with_metadata=True)
    if fmt == "tfrecord":  # the parse op names the columns it parses
        assert "track_id" in _dataset_ops(meta)
    x_plain = np.concatenate([x for x, _ in plain.as_numpy_iterator()])
    x_meta = np.concatenate([x for x, _, _ in meta.as_numpy_iterator()])
    np.testing.assert_array_equal(x_plain, x_meta)
    raw = read_raw(store, "train", "logmel")
    keys = [k.decode() for _, _, m in meta.as_numpy_iterator() for k in m["key"]]
    assert sorted(keys) == sorted(raw)


def test_hdf5_shards_are_read_one_after_another_parquet_shards_in_parallel(known_store):
    """Shuffled, shards stream through an interleave: h5py serialises every call behind one
    library-wide lock, so HDF5 shards are interleaved sequentially (a parallel interleave only adds
    thread hand-offs); pyarrow decodes without the GIL, so Parquet shards are read in parallel."""
    def ops(fmt):
        return _dataset_ops(data.load(known_store(fmt, task_type="multi_label"), "train", batch_size=4,
                                      shuffle=True, seed=0))

    hdf5, parquet = ops("hdf5"), ops("parquet")
    assert "InterleaveDataset" in hdf5 and "ParallelInterleaveDataset" not in hdf5
    assert "ParallelInterleaveDataset" in parquet


@pytest.mark.parametrize("n", [0, 1, 2, 37])
def test_permuted_ids_are_a_new_permutation_every_round_and_iteration(n, id_source):
    """The shuffled record ids: every round of ``repeat`` and every new iterator a permutation of
    ``0 .. n - 1``, the rounds in their own orders, the same seed the same orders (an empty split: no ids)."""
    ds = data._permuted_ids(n, seed=5).repeat(3)
    first = [int(i) for i in ds]
    rounds = [first[k * n:(k + 1) * n] for k in range(3)]
    assert len(first) == 3 * n
    assert all(sorted(r) == list(range(n)) for r in rounds)
    again = [int(i) for i in ds]  # a second iterator of the same dataset
    assert sorted(again) == sorted(first)
    assert [int(i) for i in data._permuted_ids(n, seed=5).repeat(3)] == first
    if n > 2:
        assert len({tuple(r) for r in rounds}) == 3
        assert again != first
        assert [int(i) for i in data._permuted_ids(n, seed=6).repeat(3)] != first


@pytest.mark.parametrize("lengths, cycle_length", [([3, 1, 2], 2), ([0, 2, 0, 3, 1], 2), ([2, 2, 2], 8),
                                                   ([1] * 11, 8), ([4, 0, 1, 3, 2, 5, 1, 0, 2, 3], 3), ([], 1)])
def test_interleave_order_is_tf_datas(lengths, cycle_length):
    """The order the planned read gives the shards' ranges is ``tf.data``'s own interleave order."""
    first = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    streamed = tf.data.Dataset.from_tensor_slices((first[:-1], np.asarray(lengths, np.int64))).interleave(
        lambda start, count: tf.data.Dataset.range(start, start + count), cycle_length=cycle_length, block_length=1)
    planned = [int(first[shard] + position)
               for shard, position in data._interleave_order(lengths, cycle_length=cycle_length)]
    assert planned == [int(v) for v in streamed]


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_unshuffled_random_access_shards_are_planned_up_front_in_the_interleaves_order(known_store, monkeypatch,
                                                                                     fmt):
    """shuffle=False over HDF5/Parquet: every shard planned in load() and all their ranges read by
    one map, no interleave; the batches are those the interleave of one pipeline per shard gives
    (9 shards, more than the cycle of 8; HDF5 ranges of 2 records, several a shard), epoch after
    epoch, with the last batch short."""
    from mirdl.store import adapters

    store = known_store(fmt, task_type="multi_label", n_shards=9)
    adapter = type(adapters.adapter_for(fmt))
    planned_by = adapter.read_plan
    monkeypatch.setattr(adapter, "read_plan", lambda self, path, *, manifest, batch_size=2: planned_by(
        self, path, manifest=manifest, batch_size=batch_size))

    def build():
        return data.load(store, "train", batch_size=5, shuffle=False, repeat=2, with_metadata=True)

    planned = build()
    shard_reader = data._shard_reader

    def streamed_reader(*args, **kwargs):  # the same reader without its plan: a pipeline per shard
        read, parse = shard_reader(*args, **kwargs)

        def per_shard(path):
            return read(path)

        per_shard.batched = True
        return per_shard, parse

    monkeypatch.setattr(data, "_shard_reader", streamed_reader)
    streamed = build()
    assert "InterleaveDataset" not in _dataset_ops(planned) and "InterleaveDataset" in _dataset_ops(streamed)
    got, want = list(planned.as_numpy_iterator()), list(streamed.as_numpy_iterator())
    assert len(got) == len(want) == -(-2 * 24 // 5)
    for (x, y, meta), (x_ref, y_ref, meta_ref) in zip(got, want):
        assert meta["key"].tolist() == meta_ref["key"].tolist()
        np.testing.assert_allclose(x, x_ref, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(y, y_ref)
    monkeypatch.setattr(data, "_shard_reader", shard_reader)  # a format whose ranges are read one at a time
    monkeypatch.setattr(adapter, "parallel_ranges", False)
    one_at_a_time = list(build().as_numpy_iterator())
    assert [meta["key"].tolist() for _, _, meta in one_at_a_time] == [meta["key"].tolist() for _, _, meta in want]
