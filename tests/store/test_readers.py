"""Tests of the planned shard reads (``read_plan`` / ``read_range``: what ``mirdl_tf.data.load`` reads
HDF5 and Parquet shards with) and of HDF5's chunk reads with the fletcher32 check done in numpy.

The reference is :meth:`read_batches` (and h5py's own reads, which check fletcher32 in HDF5):
the same records, the same numbers, the same errors for a damaged shard.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mirdl.errors import StoreError  # noqa: E402
from mirdl.store import adapters  # noqa: E402
from mirdl.store.adapters import adapter_for, write_shard  # noqa: E402
from mirdl.store.format import record_key  # noqa: E402

FEATURES = {"logmel": {"shape": [5, 7], "dtype": "float32"}, "wave": {"shape": [1, 9], "dtype": "float16"}}
TASK = {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": 3,
        "vocabulary": ["a", "b", "c"]}


def make_records(n, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        track_id = f"cls/t{i // 3:02d}é"
        records.append({
            "key": record_key(track_id=track_id, variant=0, segment=i % 3), "track_id": track_id, "variant": 0,
            "segment": i % 3, "start_frame": 7 * (i % 3),
            "logmel": rng.standard_normal((5, 7)).astype(np.float32),
            "wave": rng.standard_normal((1, 9)).astype(np.float16), "label": np.int64(i % 3),
        })
    return sorted(records, key=lambda record: record["key"])


def manifest_of(fmt, compression="none"):
    return {"format": fmt, "features": FEATURES, "task": TASK, "compression": compression}


def fletcher32_reference(data: bytes) -> int:
    """HDF5's H5_checksum_fletcher32 as its C code runs: big-endian 16-bit words (a last odd byte is
    a high byte), both sums folded into 16 bits every 360 words and twice at the end."""
    if len(data) % 2:
        data += b"\0"
    sum1 = sum2 = 0
    for at in range(0, len(data), 2):
        sum1 += data[at] << 8 | data[at + 1]
        sum2 += sum1
        if (at // 2) % 360 == 359:
            sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
            sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    for _ in range(2):
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    return sum2 << 16 | sum1


@pytest.mark.parametrize("n", [0, 1, 2, 3, 719, 720, 721, 8191, 8192, 8193, 20001])
def test_fletcher32_is_hdf5s(n):
    rng = np.random.default_rng(n)
    for data in (rng.integers(0, 256, n, dtype=np.uint8).tobytes(), b"\xff" * n, b"\0" * n,
                 b"\0" * max(n - 1, 0) + b"\1"[:n]):
        assert adapters._fletcher32(np.frombuffer(data, np.uint8)) == fletcher32_reference(data), data[:8]


def test_fletcher32_matches_the_checksums_hdf5_stored(tmp_path):
    path = tmp_path / "demo-train-00000-of-00001.h5"
    write_shard(make_records(40), path=path, store_format="hdf5", features=FEATURES, task=TASK)
    with h5py.File(path) as h5:
        for name in ("features/logmel", "features/wave", "label", "key"):
            dataset = h5[name]
            for first in range(0, dataset.shape[0], dataset.chunks[0]):
                _, raw = dataset.id.read_direct_chunk((first,) + (0,) * (dataset.ndim - 1))
                stored = int.from_bytes(raw[-4:], "little")
                assert adapters._fletcher32(np.frombuffer(raw[:-4], np.uint8)) == stored, (name, first)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_hdf5_rows_read_from_checked_chunks_equal_hdf5s_read(tmp_path, monkeypatch, compression):
    """Uncompressed: chunks read raw, checked in numpy; gzip: HDF5's own read. Same numbers, any range."""
    monkeypatch.setattr(adapters, "HDF5_CHUNK_BYTES", 5 * 7 * 4 * 6)  # 6 records a chunk
    path = tmp_path / "demo-train-00000-of-00001.h5"
    write_shard(make_records(40), path=path, store_format="hdf5", features=FEATURES, task=TASK,
                compression=compression)
    with h5py.File(path) as h5:
        dataset = h5["features/logmel"]
        assert dataset.chunks[0] == 6
        out = adapters._aligned_empty((40, 5, 7), np.dtype("float32"))
        assert adapters._read_checked_chunks(dataset, 0, 40, out) is (compression == "none")
        for start, stop in [(0, 40), (0, 6), (5, 7), (13, 14), (17, 40), (36, 40)]:
            np.testing.assert_array_equal(adapters._read_rows(dataset, start, stop, "float32"), dataset[start:stop])


def test_a_chunk_never_written_is_read_by_hdf5(tmp_path):
    """A chunk HDF5 never stored (a file mirdl did not write) has no storage to read raw: the range is
    read by HDF5 itself, which gives the fill value, where the raw read raised RuntimeError."""
    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as h5:
        dataset = h5.create_dataset("x", shape=(12, 4), dtype="<f4", chunks=(3, 4), fletcher32=True)
        dataset[0:3] = 1.0
        dataset[9:12] = 2.0
    with h5py.File(path) as h5:
        dataset = h5["x"]
        out = adapters._aligned_empty((12, 4), np.dtype("float32"))
        assert adapters._read_checked_chunks(dataset, 0, 3, out[:3]) is True
        assert adapters._read_checked_chunks(dataset, 0, 12, out) is False
        np.testing.assert_array_equal(adapters._read_rows(dataset, 0, 12, "float32"), dataset[...])
        assert adapters._read_rows(dataset, 2, 10, "float32")[:, 0].tolist() == [1, 0, 0, 0, 0, 0, 0, 2]


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
@pytest.mark.parametrize("n_records, group", [(0, 256), (1, 256), (40, 6), (41, 7), (300, 256), (300, 100)])
@pytest.mark.parametrize("metadata", [True, False])
def test_planned_ranges_read_what_read_batches_reads(tmp_path, monkeypatch, fmt, n_records, group, metadata):
    """Every record once, in order, with every column, whatever the chunk / row group size."""
    monkeypatch.setattr(adapters, "HDF5_CHUNK_BYTES", 5 * 7 * 4 * group)
    path = tmp_path / f"demo-train-00000-of-00001.{fmt}"
    write_shard(make_records(n_records), path=path, store_format=fmt, features=FEATURES, task=TASK,
                row_group_records=group)
    adapter, manifest = adapter_for(fmt), manifest_of(fmt)
    starts, stops = adapter.read_plan(path, manifest=manifest, batch_size=64)
    assert len(starts) == len(stops) and (starts < stops).all() and (starts[1:] == stops[:-1]).all()
    got = [adapter.read_range(path, start, stop, manifest=manifest, metadata=metadata)
           for start, stop in zip(starts, stops)]
    assert all(len(batch["label"]) <= max(64, group) for batch in got)
    expected = list(adapter.read_batches(path, manifest=manifest, metadata=metadata))
    assert {name for batch in got for name in batch} == {name for batch in expected for name in batch}
    for name in expected[0] if expected else ():
        a = np.concatenate([batch[name] for batch in got])
        b = np.concatenate([batch[name] for batch in expected])
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert sum(len(batch["label"]) for batch in got) == n_records


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_a_flipped_value_byte_fails_the_planned_read(tmp_path, fmt):
    records = make_records(40)
    path = tmp_path / f"demo-train-00000-of-00001.{fmt}"
    write_shard(records, path=path, store_format=fmt, features=FEATURES, task=TASK)
    data = bytearray(path.read_bytes())
    at = data.find(records[17]["logmel"].tobytes()[:8])
    assert at >= 0
    data[at + 1] ^= 0x01
    path.write_bytes(bytes(data))
    adapter = adapter_for(fmt)
    starts, stops = adapter.read_plan(path, manifest=manifest_of(fmt))
    with pytest.raises(StoreError, match=f"{path.name}.*corrupt.*checksum"):
        for start, stop in zip(starts, stops):
            adapter.read_range(path, start, stop, manifest=manifest_of(fmt))


def test_hdf5_chunk_reads_from_many_threads_at_once(tmp_path):
    """The raw chunk reads take h5py's library lock (h5py 3.14's read_direct_chunk does not): read
    concurrently, unlocked, they fail inside HDF5 (``H5Dread_chunk``, "No vol object wrap context")."""
    from concurrent.futures import ThreadPoolExecutor

    features = {"logmel": {"shape": [96, 128], "dtype": "float32"}}  # 48 KB records, 21 a chunk
    rng = np.random.default_rng(0)
    records = [{**record, "logmel": rng.standard_normal((96, 128)).astype(np.float32)}
               for record in make_records(84)]
    for record in records:
        del record["wave"]
    path = tmp_path / "demo-train-00000-of-00001.h5"
    write_shard(records, path=path, store_format="hdf5", features=features, task=TASK)
    adapter, manifest = adapter_for("hdf5"), {"format": "hdf5", "features": features, "task": TASK}
    starts, stops = adapter.read_plan(path, manifest=manifest, batch_size=21)
    assert len(starts) == 4

    def read(i):
        start, stop = int(starts[i % 4]), int(stops[i % 4])
        return start, adapter.read_range(path, start, stop, manifest=manifest, metadata=False)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for start, batch in pool.map(read, range(200)):
            np.testing.assert_array_equal(batch["logmel"], np.stack([r["logmel"] for r in records[start:start + 21]]))
