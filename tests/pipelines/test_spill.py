"""Tests of mirdl.pipelines.spill: the record framing and the spill files records wait in for their shard."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirdl.errors import StoreError
from mirdl.pipelines.spill import (
    SPILL_SUFFIX,
    SpillReader,
    SpillWriter,
    decode_record,
    encode_record,
    pack_location,
    unpack_location,
)


def assert_same_record(back, record):
    """Same keys; strings and ints equal; arrays of the same dtype (byte order too), shape and bytes."""
    assert sorted(back) == sorted(record)
    for name, value in record.items():
        if isinstance(value, (np.ndarray, np.generic)):
            value = np.asarray(value)
            assert (back[name].dtype.str, back[name].shape) == (value.dtype.str, value.shape), name
            assert back[name].tobytes() == value.tobytes(), name
        else:
            assert type(back[name]) is type(value) and back[name] == value, name


def a_record(i=0):
    rng = np.random.default_rng(i)
    return {"key": f"pluck/t{i:04d}#v000#s000000", "track_id": f"pluck/t{i:04d}", "variant": 0, "segment": i,
            "start_frame": 31 * i, "split": "train", "logmel": rng.standard_normal((16, 31)).astype(np.float32),
            "label": np.asarray(i % 4, dtype=np.int64)}


def test_round_trip_keeps_every_field_dtype_shape_and_byte():
    wide = np.arange(24, dtype=np.float64).reshape(4, 6)
    record = {
        **a_record(),
        "track_id": "ünïcødé/t0",                             # any UTF-8 text
        "start_frame": 2**62,                                  # ints beyond float precision
        "half": np.linspace(-1, 1, 7).astype(np.float16),      # odd byte count
        "big_endian": np.arange(3, dtype=">f4"),               # byte order kept, not normalised
        "strided": wide[:, ::2],                               # not C-contiguous: written in C order
        "fortran": np.asfortranarray(wide),
        "empty": np.zeros((0, 5), np.float32),
        "flags": np.array([True, False]),
        "scalar": np.float32(2.5),                             # numpy scalar -> 0-d array
        "roll": np.zeros((88, 31), np.float32),
    }
    data = encode_record(record)
    back = decode_record(data)
    expected = {**record, "scalar": np.asarray(record["scalar"])}
    assert_same_record(back, expected)
    assert back["label"].shape == () and back["label"].dtype == np.int64
    assert encode_record(back) == data  # the framing is a function of the record alone
    writable = decode_record(bytearray(data))
    writable["logmel"][0, 0] = 1.0  # arrays over a bytearray can be changed in place


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 5), max_size=3),
       dtype=st.sampled_from(["<f4", "<f2", "<i8", ">f8", "|u1", "<c8"]),
       key=st.text(max_size=20), number=st.integers(-2**63, 2**63 - 1))
def test_round_trip_of_any_array_and_fields(shape, dtype, key, number):
    array = (np.arange(int(np.prod(shape)), dtype=np.int64) % 200).astype(dtype).reshape(shape)
    record = {"key": key, "n": number, "x": array}
    assert_same_record(decode_record(encode_record(record)), record)


@pytest.mark.parametrize("value, message", [
    (np.array(["a", "b"], dtype=object), "cannot be spilled without pickle"),
    (np.array(["a", "b"]), "cannot be spilled without pickle"),
    (None, "a NoneType cannot be spilled"),
    ([1, 2], "a list cannot be spilled"),
    (True, "a bool cannot be spilled"),
])
def test_values_that_would_need_pickle_are_refused(value, message):
    with pytest.raises(StoreError, match=message):
        encode_record({"key": "k", "bad": value})


def test_truncated_or_padded_frames_are_refused():
    data = encode_record(a_record())
    for cut, message in ((2, "no header"), (10, "header of"), (len(data) - 1, "array 'label'")):
        with pytest.raises(StoreError, match=f"truncated.*{message}"):
            decode_record(data[:cut])
    with pytest.raises(StoreError, match="1 bytes after its last array"):
        decode_record(data + b"\0")


def test_location_round_trip():
    location = pack_location(bytes(range(16)), 2**40 + 3, 131_072)
    assert len(location) == 32
    assert unpack_location(location) == ("000102030405060708090a0b0c0d0e0f" + SPILL_SUFFIX, 2**40 + 3, 131_072)
    with pytest.raises(StoreError, match="a spill location is 32 bytes, not 31"):
        unpack_location(location[:-1])


def test_writers_and_reader_round_trip_across_files(tmp_path):
    spill = tmp_path / "spill"
    locations, offsets = {}, []
    for bundle in range(3):  # one writer per bundle, each its own file
        with SpillWriter(spill) as writer:
            for i in range(bundle * 5, bundle * 5 + 5):
                locations[i] = writer.append(a_record(i))
                name, offset, length = unpack_location(locations[i])
                assert name == writer.name and offset == sum(offsets[bundle * 5:])
                offsets.append(length)
            assert writer.bytes_written == sum(offsets[bundle * 5:])
    files = sorted(path.name for path in spill.iterdir())
    assert len(files) == 3 and all(name.endswith(SPILL_SUFFIX) for name in files)
    assert sum((spill / name).stat().st_size for name in files) == sum(offsets)
    with SpillReader(spill, max_open=2) as reader:  # fewer handles than files: the LRU closes and reopens
        for i in [14, 0, 7, 3, 12, 9, 1, 14]:
            assert_same_record(reader.read(locations[i]), a_record(i))
    assert SpillWriter(spill).bytes_written == 0 and len(list(spill.iterdir())) == 3  # no file until an append


def test_reader_refuses_missing_files_and_short_reads(tmp_path):
    with SpillWriter(tmp_path) as writer:
        location = writer.append(a_record())
    file_id, offset, length = bytes.fromhex(writer.name[:32]), *unpack_location(location)[1:]
    with SpillReader(tmp_path) as reader:
        with pytest.raises(StoreError, match="cannot be read"):
            reader.read(pack_location(bytes(16), 0, 10))
        with pytest.raises(StoreError, match=f"ends before {offset} \\+ {length + 1} bytes"):
            reader.read(pack_location(file_id, offset, length + 1))


# --------------------------------------------------------------------------- TFRecord stores: records spilled framed
LABELS = {  # task -> (label_shape, label_dtype, a label)
    "single_label": ((), "int64", np.asarray(3, np.int64)),
    "multi_label": ((5,), "float32", np.asarray([1, 0, 0, 1, 1], np.float32)),
    "frame_notes": ((4, 31), "float32", (np.arange(124).reshape(4, 31) % 3 == 0).astype(np.float32)),
    "frame_chords": ((31,), "int64", np.arange(31, dtype=np.int64) % 7),
}


@pytest.mark.parametrize("task_type", sorted(LABELS))
def test_a_framed_spill_gives_back_the_label_and_the_shards_frame(tmp_path, task_type):
    from mirdl.pipelines.transforms import framed_spill_pieces, split_framed_spill
    from mirdl.store.adapters import checked_record, tfrecord_frame
    from mirdl.store.tfrecord import parse_example

    shape, dtype, label = LABELS[task_type]
    features = {"logmel": {"shape": [16, 31], "dtype": "float16"}}  # a float16 store: the cast happens here
    task = {"type": task_type, "n_outputs": 5, "label_shape": list(shape), "label_dtype": dtype}
    records = [{**a_record(i), "label": label.astype(">f8") if i else label} for i in range(3)]  # any dtype in
    locations = []
    with SpillWriter(tmp_path) as writer:
        for record in records:
            locations.append(writer.append_bytes(*framed_spill_pieces(record, features=features, task=task)))
    with SpillReader(tmp_path) as reader:
        for record, location in zip(records, locations):
            back, frame = split_framed_spill(reader.read_bytes(location), task=task)
            assert back.dtype == np.dtype(dtype).newbyteorder("<") and back.shape == shape
            np.testing.assert_array_equal(back, label)
            checked = checked_record(record, features=features, task=task)
            assert bytes(frame) == tfrecord_frame(checked, features=features, task=task)
            example = parse_example(bytes(frame)[12:-4])  # length + its CRC, the Example, its CRC
            assert example["logmel"][1][0] == record["logmel"].astype("<f2").tobytes()
            assert example["key"][1] == [record["key"].encode()]


def test_a_record_of_the_wrong_shape_fails_where_it_is_spilled():
    from mirdl.pipelines.transforms import framed_spill_pieces

    task = {"type": "single_label", "n_outputs": 4, "label_shape": [], "label_dtype": "int64"}
    with pytest.raises(StoreError, match=r"feature 'logmel' has shape \(16, 31\), the store's is \(16, 30\)"):
        framed_spill_pieces(a_record(), features={"logmel": {"shape": [16, 30], "dtype": "float32"}}, task=task)
    with pytest.raises(StoreError, match=r"label has shape \(\), the store's is \(4,\)"):
        framed_spill_pieces(a_record(), features={"logmel": {"shape": [16, 31], "dtype": "float32"}},
                            task={**task, "label_shape": [4]})


def test_append_bytes_spills_pieces_as_one_entry(tmp_path):
    with SpillWriter(tmp_path) as writer:
        first = writer.append_bytes(b"ab", b"", b"cde")
        second = writer.append_bytes(b"f")
    assert unpack_location(first)[1:] == (0, 5) and unpack_location(second)[1:] == (5, 1)
    with SpillReader(tmp_path) as reader:
        assert reader.read_bytes(first) == b"abcde" and reader.read_bytes(second) == b"f"


def test_write_shard_copies_spilled_frames_into_the_file_write_shard_writes(tmp_path):
    """WriteShard's TFRecord path: frames copied in key order, labels counted, same bytes as write_shard;
    a repeated key is refused as write_shard refuses it."""
    from types import SimpleNamespace

    from mirdl.pipelines.transforms import WriteShard, framed_spill_pieces
    from mirdl.store.adapters import write_shard

    features = {"logmel": {"shape": [16, 31], "dtype": "float32"}}
    task = {"type": "single_label", "n_outputs": 4, "label_shape": [], "label_dtype": "int64"}
    records = [a_record(i) for i in (3, 1, 2, 5)]  # spilled out of key order
    with SpillWriter(tmp_path / "spill") as writer:
        entries = [(r["key"], writer.append_bytes(*framed_spill_pieces(r, features=features, task=task)))
                   for r in records]
    fn = WriteShard(directory=str(tmp_path / "store"), spill_directory=str(tmp_path / "spill"), name="tiny",
                    store_format="tfrecord", compression="gzip", row_group_records=64,
                    layout=SimpleNamespace(features=features, task=task))
    (tmp_path / "store").mkdir()
    [entry] = list(fn.process((("train", 0, 1), entries[::-1])))
    expected = write_shard(sorted(records, key=lambda r: r["key"]), path=tmp_path / "expected.tfrecord.gz",
                           store_format="tfrecord", features=features, task=task, compression="gzip")
    assert (tmp_path / "store" / entry["path"]).read_bytes() == (tmp_path / "expected.tfrecord.gz").read_bytes()
    assert (entry["records"], entry["sha256"]) == (4, expected.sha256)
    assert entry["label_counts"] == [0, 2, 1, 1]  # labels 3 % 4, 1, 2, 5 % 4
    with pytest.raises(StoreError, match="sorted by key with no repeats"):
        list(fn.process((("train", 1, 2), entries + entries[:1])))


def test_framed_shard_with_an_unknown_compression_is_refused_and_writes_nothing(tmp_path):
    from mirdl.store.adapters import write_tfrecord_frames

    with pytest.raises(StoreError, match=r"compression='zstd' is not supported by tfrecord"):
        write_tfrecord_frames([b"x"], path=tmp_path / "a.tfrecord", compression="zstd")
    assert list(tmp_path.iterdir()) == []
