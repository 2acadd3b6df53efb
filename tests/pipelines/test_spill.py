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
