"""The fast read paths of ``mirdl_tf.data.load`` against the reference paths.

- HDF5 and Parquet shards are read by planned ranges (``read_plan`` / ``read_range`` in a parallel
  ``tf.numpy_function`` map); the reference is the per-shard generator (``_python_reader``, which
  remote stores still use): the very same batches, crops included.
- Every format, sorted by key: the records ``load`` yields are those ``read_shard`` reads (the
  numpy reader), standardised with the manifest's statistics and cropped at the offset it reports.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mirdl.store import adapters  # noqa: E402
from mirdl.store.adapters import read_shard  # noqa: E402
from mirdl.store.manifest import read_manifest  # noqa: E402
from mirdl_tf import data  # noqa: E402

FORMATS = ("tfrecord", "hdf5", "parquet")


def all_batches(ds) -> list:
    return [(x, y, {name: value for name, value in meta.items()}) for x, y, meta in ds.as_numpy_iterator()]


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_planned_reads_give_the_generator_readers_batches(known_store, monkeypatch, fmt, shuffle):
    store = known_store(fmt, n_tracks=8, n_shards=3)
    kwargs = dict(batch_size=5, patch_frames=13, seed=3, shuffle=shuffle, repeat=2, with_metadata=True,
                  deterministic=True)
    planned = all_batches(data.load(store, "train", **kwargs))
    monkeypatch.setattr(adapters.RandomAccessAdapter, "_planned_reader", adapters.ShardAdapter._python_reader)
    generator = all_batches(data.load(store, "train", **kwargs))
    assert len(planned) == len(generator) == -(-2 * 8 * 2 * 2 // 5)
    for (x, y, meta), (x_ref, y_ref, meta_ref) in zip(planned, generator):
        np.testing.assert_array_equal(meta["key"], meta_ref["key"])
        np.testing.assert_array_equal(meta["crop_offset"], meta_ref["crop_offset"])
        np.testing.assert_array_equal(x, x_ref)  # the same bytes through the same ops
        np.testing.assert_array_equal(y, y_ref)


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_yields_the_stored_records_standardised_and_cropped(known_store, fmt):
    store = known_store(fmt)
    manifest = read_manifest(store)
    entry = manifest["features"]["logmel"]
    mean = np.asarray(entry["stats"]["mean"], np.float32)[:, None]
    std = np.maximum(np.asarray(entry["stats"]["std"], np.float32), data.STD_FLOOR)[:, None]
    expected = {record["key"]: record for shard in manifest["splits"]["train"]["shards"]
                for record in read_shard(store / shard["path"], manifest=manifest)}
    frame_task = manifest["task"]["type"].startswith("frame_")
    for kwargs in (dict(shuffle=False), dict(shuffle=True, seed=1, patch_frames=11)):
        got = {}
        for x, y, meta in data.load(store, "train", batch_size=7, with_metadata=True, **kwargs).as_numpy_iterator():
            for i, key in enumerate(meta["key"]):
                got[key.decode()] = (x[i], y[i], int(meta["crop_offset"][i]))
        assert sorted(got) == sorted(expected)
        patch = kwargs.get("patch_frames", 20)
        offsets = set()
        for key, (x, y, offset) in got.items():
            record = expected[key]
            window = slice(offset, offset + patch)
            np.testing.assert_allclose(x, ((record["logmel"] - mean) / std)[:, window], rtol=1e-6, atol=1e-5)
            np.testing.assert_array_equal(y, record["label"][..., window] if frame_task else record["label"])
            offsets.add(offset)
        if patch == 20:
            assert offsets == {0}
        else:  # uniform offsets in 0..9: 24 records draw several of them
            assert offsets <= set(range(20 - patch + 1)) and len(offsets) >= 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_xla_crop_gives_the_uncompiled_crops_numbers(known_store, monkeypatch, fmt):
    """The random crop + standardisation compiled by XLA (one gather along time) and the uncompiled
    ops (transpose, row gather, transpose, standardise) give the same examples, crops and labels."""
    assert data._xla_works()  # XLA compiles on the CI hosts; elsewhere load() takes the uncompiled ops
    store = known_store(fmt, task_type="multi_label")
    kwargs = dict(batch_size=6, patch_frames=7, seed=2, repeat=2, with_metadata=True, deterministic=True)
    fused = all_batches(data.load(store, "train", **kwargs))
    monkeypatch.setattr(data, "_XLA_WORKS", False)
    plain = all_batches(data.load(store, "train", **kwargs))
    assert len(fused) == len(plain) == 8
    for (x, y, meta), (x_ref, y_ref, meta_ref) in zip(fused, plain):
        np.testing.assert_array_equal(meta["key"], meta_ref["key"])
        np.testing.assert_array_equal(meta["crop_offset"], meta_ref["crop_offset"])
        np.testing.assert_allclose(x, x_ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(y, y_ref)


@pytest.mark.parametrize("kwargs", [dict(shuffle=False),
                                    dict(shuffle=True, seed=2, patch_frames=9, with_metadata=True)])
def test_parquet_load_reads_pages_raw_and_gives_pyarrows_batches(known_store, monkeypatch, kwargs):
    """``load`` over a Parquet store reads feature and label pages raw (``parquet_pages``) and yields
    the batches of the pyarrow-decoded read (``raw_pages=False``), bit for bit."""
    from mirdl.store import parquet_pages

    store = known_store("parquet", n_tracks=8, n_shards=3)
    calls = []
    read_chunk = parquet_pages.read_chunk

    def counted(*args, **kw):
        calls.append(read_chunk(*args, **kw))
        return calls[-1]

    monkeypatch.setattr(parquet_pages, "read_chunk", counted)
    options = dict(batch_size=5, repeat=2, deterministic=True, **kwargs)
    raw = list(data.load(store, "train", **options).as_numpy_iterator())
    assert calls and all(calls)
    monkeypatch.setattr(adapters.ParquetAdapter, "raw_pages", False)
    del calls[:]
    reference = list(data.load(store, "train", **options).as_numpy_iterator())
    assert not calls
    assert len(raw) == len(reference) == -(-2 * 8 * 2 * 2 // 5)
    for got, expected in zip(raw, reference):
        assert len(got) == len(expected)
        for a, b in zip(got[:2], expected[:2]):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        if len(got) == 3:
            for name in expected[2]:
                np.testing.assert_array_equal(got[2][name], expected[2][name])
