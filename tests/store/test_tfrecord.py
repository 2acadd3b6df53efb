"""mirdl.store.tfrecord writes TFRecord files without TensorFlow: the same bytes as
``tf.io.TFRecordWriter`` + ``tf.train.Example.SerializeToString(deterministic=True)``, read back by
tf.data, and a store's TFRecord shards byte-identical to the TensorFlow writer's (the one ``main``
used before)."""
import errno
import mmap
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from mirdl.store.adapters import write_shard  # noqa: E402
from mirdl.store.files import sha256_file  # noqa: E402
from mirdl.store.format import INT_COLUMNS, LABEL_COLUMN, STRING_COLUMNS, record_key  # noqa: E402
from mirdl.errors import StoreError  # noqa: E402
from mirdl.store.adapters import read_shard  # noqa: E402
from mirdl.store.tfrecord import (  # noqa: E402
    CorruptRecord,
    TFRecordFileWriter,
    example_bytes,
    frame,
    framed_example,
    masked_crc32c,
    parse_example,
    record_at,
    read_records,
    record_offsets,
)


def tf_example(columns):
    """The reference: the same columns through tf.train.Example."""
    feature = {}
    for name, (kind, values) in columns.items():
        if kind == "bytes":
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))
        elif kind == "float":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values).reshape(-1)))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values).reshape(-1)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def random_columns(rng, i):
    return {
        "key": ("bytes", [f"cls/t{i:02d}é#v000#s{i:06d}".encode()]),  # non-ASCII survives
        "variant": ("int64", [int(rng.integers(-2**63, 2**63 - 1))]),  # negative: 10-byte varints
        "start_frame": ("int64", [i, 2**40 + i, 0]),
        "logmel": ("bytes", [rng.standard_normal((int(rng.integers(1, 40)), 17)).astype(np.float32).tobytes()]),
        "empty": ("bytes", [b""]),
        "tags": ("bytes", [b"a", b"bc" * (i * 40)]),  # several values, one over 127 bytes
        "none": ("bytes", []),
        "no_values": ("int64", []),
        "label": ("float", rng.standard_normal(i % 4).astype(np.float32)),  # 0 values too
        "Zeta": ("float", np.array([np.inf, -0.0, 1e-45], np.float32)),  # sorted before lower case
    }


def test_example_bytes_are_tf_train_example_bytes():
    rng = np.random.default_rng(0)
    for i in range(40):
        columns = random_columns(rng, i)
        assert example_bytes(columns) == tf_example(columns), i
        # framed_example: the same record framed, assembled from pieces (each payload copied once)
        assert framed_example(columns) == frame(example_bytes(columns)), i


def test_masked_crc32c_matches_tensorflow_framing(tmp_path):
    data = b"123456789"
    with tf.io.TFRecordWriter(str(tmp_path / "one")) as writer:
        writer.write(data)
    raw = (tmp_path / "one").read_bytes()
    assert int.from_bytes(raw[-4:], "little") == masked_crc32c(data)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_files_are_byte_identical_to_tf_io_tfrecordwriter_and_read_back_by_tf_data(tmp_path, compression):
    rng = np.random.default_rng(1)
    # ~1.5 MB: more than TensorFlow's 256 KiB zlib buffers, so GZIP blocks cross buffer boundaries.
    records = [example_bytes(random_columns(rng, i)) + rng.bytes(int(rng.integers(0, 9000))) for i in range(300)]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    with TFRecordFileWriter(ours, compression=compression) as writer:
        assert writer.write_all(records) == len(records)
    options = tf.io.TFRecordOptions(compression_type="GZIP" if compression == "gzip" else "")
    with tf.io.TFRecordWriter(str(theirs), options) as writer:
        for record in records:
            writer.write(record)
    assert ours.read_bytes() == theirs.read_bytes()
    dataset = tf.data.TFRecordDataset([str(ours)], compression_type="GZIP" if compression == "gzip" else "")
    assert [r.numpy() for r in dataset] == records
    assert list(read_records(theirs, compression=compression)) == records  # our reader reads TF's file


def test_parse_example_reads_what_tf_train_example_wrote():
    rng = np.random.default_rng(4)
    for i in range(40):
        columns = random_columns(rng, i)
        parsed = parse_example(tf_example(columns))
        assert sorted(parsed) == sorted(columns)
        for name, (kind, values) in columns.items():
            assert parsed[name][0] == kind
            if kind == "bytes":
                assert parsed[name][1] == list(values)
            else:
                np.testing.assert_array_equal(parsed[name][1], np.asarray(values).reshape(-1))


@pytest.mark.parametrize("where", ["length", "length crc", "data", "data crc", "truncated"])
def test_read_records_refuses_what_tf_data_refuses(tmp_path, where):
    path = tmp_path / "one"
    with TFRecordFileWriter(path) as writer:
        writer.write(b"0123456789" * 3)
    raw = bytearray(path.read_bytes())
    if where == "truncated":
        raw = raw[:-3]
    else:
        raw[{"length": 0, "length crc": 9, "data": 15, "data crc": -2}[where]] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptRecord):
        list(read_records(path))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset([str(path)]))


def test_records_read_at_their_offsets_are_the_records_in_any_order(tmp_path):
    path = tmp_path / "three"
    records = [b"a" * 70_000, b"", b"0123456789" * 3]
    with TFRecordFileWriter(path) as writer:
        writer.write_all(records)
    offsets, lengths = record_offsets(path)
    assert lengths.tolist() == [len(r) for r in records]
    assert offsets.tolist() == [0, 70_016, 70_032]
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert [record_at(mapped, int(offsets[i]), int(lengths[i])) for i in (2, 0, 1, 2)] == \
            [records[2], records[0], records[1], records[2]]


@pytest.mark.parametrize("where", ["length", "length crc", "data", "data crc", "truncated"])
def test_records_at_offsets_refuse_what_tf_data_refuses(tmp_path, where):
    # The header scan catches a broken length or a truncated file; the read, a broken record.
    path = tmp_path / "two"
    with TFRecordFileWriter(path) as writer:
        writer.write_all([b"0123456789" * 3, b"abcdef"])
    raw = bytearray(path.read_bytes())
    if where == "truncated":
        raw = raw[:-3]
    else:
        raw[{"length": 0, "length crc": 9, "data": 15, "data crc": 44}[where]] ^= 0x10
    path.write_bytes(bytes(raw))
    if where in ("length", "length crc", "truncated"):
        with pytest.raises(CorruptRecord, match="length checksum|truncated"):
            record_offsets(path)
        return
    offsets, lengths = record_offsets(path)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert record_at(mapped, int(offsets[1]), int(lengths[1])) == b"abcdef"
        with pytest.raises(CorruptRecord, match="data checksum does not match at byte 0"):
            record_at(mapped, int(offsets[0]), int(lengths[0]))
    # A record cut short by the end of the bytes given (a shard that shrank after its scan).
    with pytest.raises(CorruptRecord, match="truncated record at byte 46"):
        record_at(bytes(raw[:-2]), int(offsets[1]), int(lengths[1]))


@pytest.mark.parametrize("where", ["member crc", "cut", "not gzip"])
def test_read_records_refuses_a_broken_gzip_stream(tmp_path, where):
    path = tmp_path / "one.gz"
    with TFRecordFileWriter(path, compression="gzip") as writer:
        writer.write_all([b"0123456789" * 30, b"abc" * 50])
    raw = bytearray(path.read_bytes())
    if where == "member crc":
        raw[-6] ^= 0x10  # the gzip trailer's CRC-32 of the stream
    elif where == "cut":
        raw = raw[: len(raw) // 2]
    else:
        raw[:2] = b"PK"
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptRecord):
        list(read_records(path, compression="gzip"))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset([str(path)], compression_type="GZIP"))


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_read_records_streams_records_larger_than_its_buffer(tmp_path, monkeypatch, compression):
    """Records are read one at a time (a huge shard is never held whole), in pieces where a
    record is larger than the read buffer; a declared length past the data is a truncated record,
    not a giant allocation, even unchecked."""
    from mirdl.store import tfrecord

    rng = np.random.default_rng(3)
    records = [rng.bytes(int(n)) for n in (0, 5, 70, 33, 200)]
    path = tmp_path / "big"
    with TFRecordFileWriter(path, compression=compression) as writer:
        writer.write_all(records)
    monkeypatch.setattr(tfrecord, "_READ_BUFFER", 16)
    assert list(read_records(path, compression=compression)) == records
    stream = read_records(path, compression=compression)
    assert next(stream) == records[0] and next(stream) == records[1]
    stream.close()

    framed = bytearray((2 ** 40).to_bytes(8, "little") + b"\0" * 4 + b"x" * 100)
    (tmp_path / "lying").write_bytes(bytes(framed))
    with pytest.raises(CorruptRecord, match="truncated record"):
        list(read_records(tmp_path / "lying", check=False))
    import gzip
    (tmp_path / "lying.gz").write_bytes(gzip.compress(bytes(framed)))
    with pytest.raises(CorruptRecord, match="truncated record"):
        list(read_records(tmp_path / "lying.gz", compression="gzip", check=False))


def store_records(label_dtype, n=6):
    rng = np.random.default_rng(2)
    records = []
    for i in range(n):
        track_id = f"cls/t{i:02d}é"
        records.append({
            "key": record_key(track_id=track_id, variant=0, segment=i), "track_id": track_id, "variant": 0,
            "segment": i, "start_frame": 7 * i,
            "logmel": rng.standard_normal((4, 6)).astype(np.float32),
            "wave": rng.standard_normal((1, 9)).astype(np.float16),
            "label": np.int64(i % 3) if label_dtype == "int64" else rng.random((3, 6)).astype(np.float32),
        })
    return sorted(records, key=lambda record: record["key"])


def write_with_tensorflow(records, path, *, features, label_dtype, compression):
    """The TFRecord writer of ``main`` before this change, verbatim in what it builds."""
    options = tf.io.TFRecordOptions(compression_type="GZIP" if compression == "gzip" else "")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            feature = {name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[record[name].encode()]))
                       for name in STRING_COLUMNS}
            feature.update({name: tf.train.Feature(int64_list=tf.train.Int64List(value=[record[name]]))
                            for name in INT_COLUMNS})
            feature.update({name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[record[name].tobytes()]))
                            for name in features})
            label = np.asarray(record[LABEL_COLUMN]).reshape(-1)
            feature[LABEL_COLUMN] = (tf.train.Feature(int64_list=tf.train.Int64List(value=label))
                                     if label_dtype == "int64"
                                     else tf.train.Feature(float_list=tf.train.FloatList(value=label)))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString(deterministic=True))


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("label_dtype", ["int64", "float32"])
def test_store_shards_are_byte_identical_to_the_tensorflow_writer(tmp_path, compression, label_dtype):
    features = {"logmel": {"shape": [4, 6], "dtype": "float32"}, "wave": {"shape": [1, 9], "dtype": "float16"}}
    task = ({"type": "single_label", "label_shape": [], "label_dtype": "int64", "vocabulary": ["a", "b", "c"]}
            if label_dtype == "int64" else
            {"type": "frame_notes", "label_shape": [3, 6], "label_dtype": "float32", "n_outputs": 3})
    records = store_records(label_dtype)
    path = tmp_path / "demo-train.tfrecord-00000-of-00001"
    info = write_shard(records, path=path, store_format="tfrecord", features=features, task=task,
                       compression=compression)
    write_with_tensorflow(records, tmp_path / "reference", features=features, label_dtype=label_dtype,
                          compression=compression)
    assert info.sha256 == sha256_file(tmp_path / "reference") == sha256_file(path)


def test_a_full_disk_names_the_file():
    with pytest.raises(OSError) as caught:
        with TFRecordFileWriter("/dev/full") as writer:
            writer.write(b"x" * 100)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == "/dev/full"


def test_writing_and_reading_a_tfrecord_shard_in_numpy_does_not_import_tensorflow(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from mirdl.store.adapters import write_shard\n"
        "record = {'key': 'a#v000#s000000', 'track_id': 'a', 'variant': 0, 'segment': 0, 'start_frame': 0,\n"
        "          'logmel': np.ones((2, 3), np.float32), 'label': 1}\n"
        "write_shard([record], path=sys.argv[1], store_format='tfrecord',\n"
        "            features={'logmel': {'shape': [2, 3], 'dtype': 'float32'}},\n"
        "            task={'type': 'single_label', 'label_shape': [], 'label_dtype': 'int64', 'vocabulary': ['a']})\n"
        "from mirdl.store.adapters import read_shard\n"
        "manifest = {'format': 'tfrecord', 'features': {'logmel': {'shape': [2, 3], 'dtype': 'float32'}},\n"
        "            'task': {'type': 'single_label', 'label_shape': [], 'label_dtype': 'int64', 'vocabulary': ['a']}}\n"
        "assert next(read_shard(sys.argv[1], manifest=manifest))['label'] == 1\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.tfrecord-00000-of-00001")],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "False"
