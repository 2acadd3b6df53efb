"""Tests of mirdl.store.adapters: one interface, three formats, same records back, reproducible bytes,
the formats' own checksums checked on every read.

Records are read back twice: through :func:`read_shard`, and with the plain libraries exactly as
``docs/store-format.md`` shows a reader without mirdl (tf.data, h5py, pyarrow/pandas).
"""
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from mirdl.errors import StoreError  # noqa: E402
from mirdl.store.adapters import ShardInfo, huggingface_features, read_shard, record_nbytes, write_shard  # noqa: E402
from mirdl.store.files import sha256_file  # noqa: E402
from mirdl.store.format import COMPRESSIONS, record_key  # noqa: E402

FORMATS = ("tfrecord", "hdf5", "parquet")
FEATURES = {"logmel": {"shape": [4, 6], "dtype": "float32"}, "wave": {"shape": [1, 9], "dtype": "float16"}}
TASKS = {
    "single_label": {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": 3,
                     "vocabulary": ["a", "b", "c"]},
    "frame_notes": {"type": "frame_notes", "label_shape": [3, 6], "label_dtype": "float32", "n_outputs": 3},
}


def make_records(task, n_tracks=3, n_segments=2, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for track in range(n_tracks):
        for segment in range(n_segments):
            track_id = f"cls/t{track:02d}é"  # non-ASCII ids survive every format
            label = np.int64(track % 3) if task["label_dtype"] == "int64" else \
                rng.random(task["label_shape"]).astype(np.float32)
            records.append({
                "key": record_key(track_id=track_id, variant=segment % 2, segment=segment),
                "track_id": track_id, "variant": segment % 2, "segment": segment, "start_frame": 6 * segment,
                "logmel": rng.standard_normal((4, 6)).astype(np.float32),
                "wave": rng.standard_normal((1, 9)).astype(np.float16),
                "label": label, "split": "train",
            })
    return sorted(records, key=lambda record: record["key"])


def assert_same(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        for name in ("key", "track_id", "variant", "segment", "start_frame"):
            assert a[name] == b[name]
        for name, entry in FEATURES.items():
            assert a[name].dtype == np.dtype(entry["dtype"]) and a[name].shape == tuple(entry["shape"])
            np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_array_equal(a["label"], b["label"])


def manifest_of(task, compression="none", fmt="hdf5"):
    return {"format": fmt, "features": FEATURES, "task": task, "compression": compression}


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("store_format", FORMATS)
def test_round_trip_through_read_shard(tmp_path, store_format, task_name):
    task, records = TASKS[task_name], make_records(TASKS[task_name])
    compression = COMPRESSIONS[store_format][-1]
    path = tmp_path / "demo-train.x-00000-of-00001"
    info = write_shard(records, path=path, store_format=store_format, features=FEATURES, task=task,
                       compression=compression, row_group_records=4)
    assert info == ShardInfo(path=path.name, records=len(records), bytes=path.stat().st_size,
                             sha256=sha256_file(path))
    got = list(read_shard(path, manifest=manifest_of(task, compression, store_format)))
    assert_same(got, records)
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_plain_tf_data_reads_tfrecord(tmp_path):
    import tensorflow as tf

    task, records = TASKS["frame_notes"], make_records(TASKS["frame_notes"])
    path = tmp_path / "demo-train.tfrecord-00000-of-00001"
    write_shard(records, path=path, store_format="tfrecord", features=FEATURES, task=task, compression="gzip")
    m = manifest_of(task, "gzip")
    desc = {"logmel": tf.io.FixedLenFeature([], tf.string), "key": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature(m["task"]["label_shape"], tf.float32)}

    def parse(x):
        ex = tf.io.parse_single_example(x, desc)
        f = m["features"]["logmel"]
        return tf.reshape(tf.io.decode_raw(ex["logmel"], f["dtype"]), f["shape"]), ex["label"], ex["key"]

    ds = tf.data.TFRecordDataset([str(path)], compression_type="GZIP").map(parse)
    got = [(x.numpy(), y.numpy(), k.numpy().decode()) for x, y, k in ds]
    assert [k for _, _, k in got] == [r["key"] for r in records]
    for (x, y, _), record in zip(got, records):
        np.testing.assert_array_equal(x, record["logmel"])
        np.testing.assert_array_equal(y, record["label"])


def test_plain_h5py_reads_hdf5(tmp_path):
    task, records = TASKS["single_label"], make_records(TASKS["single_label"])
    path = tmp_path / "demo-train-00000-of-00001.h5"
    write_shard(records, path=path, store_format="hdf5", features=FEATURES, task=task, compression="gzip")
    with h5py.File(path) as h5:
        np.testing.assert_array_equal(h5["features/logmel"][:], np.stack([r["logmel"] for r in records]))
        np.testing.assert_array_equal(h5["label"][:], [r["label"] for r in records])
        assert list(h5["key"].asstr()[:]) == [r["key"] for r in records]
        # whole records per chunk, up to ~1 MB (all of these small records in one chunk)
        assert h5["features/logmel"].chunks == (len(records), 4, 6)
        assert h5["features/logmel"].compression == "gzip"
        assert h5["features/wave"].dtype == np.float16
        # format version 2: every dataset, strings included, is chunked with a fletcher32 checksum
        for name in ("key", "track_id", "variant", "segment", "start_frame", "label", "features/logmel", "features/wave"):
            assert h5[name].fletcher32, name


def test_hdf5_chunks_hold_several_records_and_batches_end_on_chunk_boundaries(tmp_path, monkeypatch):
    """Chunks of ~HDF5_CHUNK_BYTES hold whole records (a reader fetches and checks one chunk per
    several records, not one per record); batches are cut on chunk boundaries; the records read
    back, through mirdl and through plain h5py, are those written."""
    from mirdl.store import adapters

    logmel_bytes = 4 * 6 * 4
    monkeypatch.setattr(adapters, "HDF5_CHUNK_BYTES", 2 * logmel_bytes + 1)  # 2 log-mel records per chunk
    task, records = TASKS["frame_notes"], make_records(TASKS["frame_notes"], n_tracks=4, n_segments=2)
    path = tmp_path / "demo-train-00000-of-00001.h5"
    write_shard(records, path=path, store_format="hdf5", features=FEATURES, task=task)
    with h5py.File(path) as h5:
        assert h5["features/logmel"].chunks == (2, 4, 6)
        assert h5["features/wave"].chunks == (8, 1, 9)  # 18-byte records: all 8 (10 would fit)
        assert h5["key"].chunks[0] > 1 and h5["features/logmel"].fletcher32
        np.testing.assert_array_equal(h5["features/logmel"][:], np.stack([r["logmel"] for r in records]))
    m = manifest_of(task)
    batches = list(adapters.ADAPTER_FOR_FORMAT["hdf5"].read_batches(path, manifest=m, features=["logmel"],
                                                                   batch_size=5))
    assert [len(batch["key"]) for batch in batches] == [4, 4]  # 5 rounded down to whole chunks of 2
    # features land in 64-byte aligned arrays, which TensorFlow takes as tensors without a copy
    assert all(batch["logmel"].ctypes.data % 64 == 0 for batch in batches)
    assert_same(list(read_shard(path, manifest=m)), records)


def test_hdf5_edge_chunks_waste_less_than_a_record_per_chunk(tmp_path, monkeypatch):
    """HDF5 stores a dataset's last chunk at full size: chunks are spread evenly over the records
    (7 records, at most 6 a chunk: 2 chunks of 4, not 6 + a 6-slot chunk holding 1), so the file
    holds less than one record of padding per chunk (a greedy chunk size made a small
    float16 store 0.67x of its float32 one instead of 0.5x)."""
    from mirdl.store import adapters

    logmel_bytes = 4 * 6 * 4
    monkeypatch.setattr(adapters, "HDF5_CHUNK_BYTES", 6 * logmel_bytes)  # at most 6 log-mel records a chunk
    task = TASKS["frame_notes"]
    records = make_records(task, n_tracks=7, n_segments=1)
    path = tmp_path / "demo-train-00000-of-00001.h5"
    write_shard(records, path=path, store_format="hdf5", features=FEATURES, task=task)
    with h5py.File(path) as h5:
        dataset = h5["features/logmel"]
        assert dataset.chunks == (4, 4, 6)  # 2 chunks for 7 records (6 + 1 would store 12 slots)
        chunks = -(-len(records) // dataset.chunks[0])
        assert dataset.id.get_storage_size() < (len(records) + chunks) * logmel_bytes
        np.testing.assert_array_equal(dataset[:], np.stack([r["logmel"] for r in records]))


@pytest.mark.parametrize("store_format", FORMATS)
def test_read_batches_without_metadata_reads_only_features_and_label(tmp_path, store_format):
    from mirdl.store.adapters import adapter_for

    task, records = TASKS["frame_notes"], make_records(TASKS["frame_notes"])
    path = tmp_path / f"demo-train-00000-of-00001.{store_format}"
    write_shard(records, path=path, store_format=store_format, features=FEATURES, task=task)
    m = manifest_of(task, fmt=store_format)
    batches = list(adapter_for(store_format).read_batches(path, manifest=m, features=["wave"], metadata=False))
    assert all(sorted(batch) == ["label", "wave"] for batch in batches)
    np.testing.assert_array_equal(np.concatenate([batch["wave"] for batch in batches]),
                                  np.stack([r["wave"] for r in records]))
    np.testing.assert_array_equal(np.concatenate([batch["label"] for batch in batches]),
                                  np.stack([r["label"] for r in records]))


def test_parquet_feature_columns_are_plain_encoded(tmp_path):
    """No dictionary for feature and label values (never smaller, a lookup per value to read)."""
    task, records = TASKS["frame_notes"], make_records(TASKS["frame_notes"])
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    write_shard(records, path=path, store_format="parquet", features=FEATURES, task=task)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema.split(".")[0]: meta.column(i).encodings
                 for i in range(meta.num_columns)}
    for name in ("logmel", "wave", "label"):
        assert not any("DICTIONARY" in encoding for encoding in encodings[name]), (name, encodings[name])
    assert any("DICTIONARY" in encoding for encoding in encodings["track_id"])


def test_plain_pandas_and_pyarrow_read_parquet(tmp_path):
    task, records = TASKS["frame_notes"], make_records(TASKS["frame_notes"])
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    write_shard(records, path=path, store_format="parquet", features=FEATURES, task=task, compression="zstd",
                row_group_records=4)
    m = manifest_of(task)
    df = pd.read_parquet(path)
    # arrays are nested lists in their stored shape (4 x 6), as Hugging Face datasets expects them
    assert len(df["logmel"][0]) == 4 and len(df["logmel"][0][0]) == 6
    x = np.stack([np.stack(row) for row in df["logmel"]])
    np.testing.assert_array_equal(x, np.stack([r["logmel"] for r in records]))
    labels = np.stack([np.stack(row) for row in df["label"]])
    assert labels.shape == (len(records), *m["task"]["label_shape"])
    np.testing.assert_array_equal(labels, np.stack([r["label"] for r in records]))
    assert list(df["key"]) == [r["key"] for r in records]
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 2  # 6 records, 4 per row group
    logmel = parquet.schema_arrow.field("logmel").type
    assert logmel == pa.list_(pa.list_(pa.float32(), 6), 4)
    metadata = json.loads(parquet.schema_arrow.metadata[b"huggingface"])
    assert metadata["info"]["features"] == huggingface_features(FEATURES, task)
    assert metadata["info"]["features"]["logmel"]["length"] == 4


def test_writing_twice_gives_identical_bytes(tmp_path):
    """No timestamps or other run-dependent bytes in any format (HDF5 keeps whole seconds: wait one)."""
    task, records = TASKS["single_label"], make_records(TASKS["single_label"])
    cases = [(fmt, compression) for fmt in FORMATS for compression in COMPRESSIONS[fmt]]

    def write_all(folder):
        return [write_shard(records, path=tmp_path / folder / f"{fmt}-{compression}", store_format=fmt,
                            features=FEATURES, task=task, compression=compression).sha256
                for fmt, compression in cases]

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_all("a")
    time.sleep(1.1)
    assert write_all("b") == first


def test_empty_shard_is_readable(tmp_path):
    task = TASKS["single_label"]
    for fmt in FORMATS:
        path = tmp_path / f"empty-{fmt}"
        info = write_shard([], path=path, store_format=fmt, features=FEATURES, task=task)
        assert info.records == 0
        assert list(read_shard(path, manifest=manifest_of(task, fmt=fmt))) == []


def test_unsorted_records_and_bad_shapes_are_refused(tmp_path):
    task, records = TASKS["single_label"], make_records(TASKS["single_label"])
    with pytest.raises(StoreError, match="sorted by key"):
        write_shard(records[::-1], path=tmp_path / "x", store_format="hdf5", features=FEATURES, task=task)
    bad = [dict(records[0], logmel=np.zeros((4, 5), np.float32))]
    with pytest.raises(StoreError, match="feature 'logmel' has shape"):
        write_shard(bad, path=tmp_path / "y", store_format="parquet", features=FEATURES, task=task)
    with pytest.raises(StoreError, match="compression='lzf' is not supported by parquet"):
        write_shard(records, path=tmp_path / "z", store_format="parquet", features=FEATURES, task=task,
                    compression="lzf")
    assert not any(tmp_path.iterdir())  # failed writes leave nothing behind


def test_record_nbytes_counts_arrays_and_strings():
    record = make_records(TASKS["single_label"])[0]
    expected = 4 * 6 * 4 + 9 * 2 + 8 + 3 * 8 + len(record["key"].encode()) + len(record["track_id"].encode())
    assert record_nbytes(record, feature_names=FEATURES) == expected


def test_single_label_parquet_labels_are_class_labels(tmp_path):
    task, records = TASKS["single_label"], make_records(TASKS["single_label"])
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    write_shard(records, path=path, store_format="parquet", features=FEATURES, task=task)
    features = json.loads(pq.ParquetFile(path).schema_arrow.metadata[b"huggingface"])["info"]["features"]
    assert features["label"] == {"names": ["a", "b", "c"], "_type": "ClassLabel"}
    assert features["key"] == {"dtype": "string", "_type": "Value"}


def _flip_byte_in(path, needle: bytes) -> None:
    """Flip one bit of the first occurrence of ``needle`` (a value's bytes) in a file."""
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, "value not found in the file"
    data[at] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("store_format", FORMATS)
def test_a_flipped_value_byte_is_a_store_error_naming_the_file(tmp_path, store_format):
    """Format version 2 checks its format's own checksums on every read (TFRecord CRC32C, HDF5
    fletcher32, Parquet page CRC): one flipped bit in a feature value is found, not read as data."""
    task, records = TASKS["single_label"], make_records(TASKS["single_label"])
    path = tmp_path / f"demo-train-00000-of-00001.{store_format}"
    write_shard(records, path=path, store_format=store_format, features=FEATURES, task=task)
    _flip_byte_in(path, records[3]["logmel"].tobytes()[:8])
    with pytest.raises(StoreError, match=f"{path.name}.*corrupt"):
        list(read_shard(path, manifest=manifest_of(task, fmt=store_format)))


def test_a_flipped_key_byte_in_hdf5_is_found(tmp_path):
    """Strings are fixed-length and chunked in version 2, so their bytes are checksummed too."""
    task, records = TASKS["single_label"], make_records(TASKS["single_label"])
    path = tmp_path / "demo-train-00000-of-00001.h5"
    write_shard(records, path=path, store_format="hdf5", features=FEATURES, task=task)
    _flip_byte_in(path, records[2]["key"].encode())
    with pytest.raises(StoreError, match="corrupt HDF5 shard"):
        list(read_shard(path, manifest=manifest_of(task, fmt="hdf5")))
