"""Parquet feature and label pages read raw (``mirdl.store.parquet_pages``, used by
``ParquetAdapter.read_range``, which ``mirdl_tf.data.load`` reads Parquet shards with).

The reference is the same ``read_range`` with ``raw_pages=False`` (every column through pyarrow's
decoder): the raw read is a copy, not a computation, so the arrays must be the same bits (NaN,
infinities and -0.0 included). Shards are written by the real writer (``write_shard``); where a
test needs a layout that writer does not make (small pages, DataPage v2, dictionary pages), it
patches ``pyarrow.parquet.ParquetWriter``'s arguments for that write only.
"""
import os
from unittest.mock import patch

import numpy as np
import pyarrow.parquet as pq
import pytest

from mirdl.errors import StoreError
from mirdl.store import adapters, parquet_pages
from mirdl.store.adapters import ParquetAdapter, adapter_for, write_shard
from mirdl.store.format import COMPRESSIONS, record_key

TASK = {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": 3,
        "vocabulary": ["a", "b", "c"]}
FRAME_TASK = {"type": "frame_notes", "label_shape": [3, 4], "label_dtype": "float32", "n_outputs": 3,
              "vocabulary": ["a", "b", "c"]}


def make_records(n, features, task, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        track_id = f"cls/t{i // 3:02d}"
        record = {"key": record_key(track_id=track_id, variant=0, segment=i % 3), "track_id": track_id,
                  "variant": 0, "segment": i % 3, "start_frame": 7 * (i % 3)}
        for name, entry in features.items():
            x = rng.standard_normal(entry["shape"]).astype(entry["dtype"])
            if i == 1 and x.size >= 4:  # bits a computation would not keep: NaN, infinities, -0.0
                x.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, -0.0]
            record[name] = x
        record["label"] = (np.int64(i % 3) if task["label_dtype"] == "int64"
                           else rng.random(task["label_shape"]).astype(np.float32))
        records.append(record)
    return sorted(records, key=lambda record: record["key"])


@pytest.fixture
def writer_options(monkeypatch):
    """``writer_options(**kw)``: the next shards are written with these ParquetWriter arguments added."""
    original = pq.ParquetWriter

    def patch(**extra):
        def writer(*args, **kwargs):
            return original(*args, **{**kwargs, **extra})

        monkeypatch.setattr(pq, "ParquetWriter", writer)

    return patch


@pytest.fixture
def raw_calls(monkeypatch):
    """The results of every ``parquet_pages.read_chunk`` call (True: a chunk read raw)."""
    calls = []
    original = parquet_pages.read_chunk

    def counted(*args, **kwargs):
        calls.append(original(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(parquet_pages, "read_chunk", counted)
    return calls


def read_both(path, manifest, *, metadata):
    """Every planned range of a shard read raw and through pyarrow: lists of batches."""
    adapter = adapter_for("parquet")
    starts, stops = adapter.read_plan(path, manifest=manifest, batch_size=64)
    got = {}
    for raw in (None, False):  # None: the adapter as it is (raw pages by default)
        with patch.object(adapter, "raw_pages", adapter.raw_pages if raw is None else raw):
            got[raw] = [adapter.read_range(path, start, stop, manifest=manifest, metadata=metadata)
                        for start, stop in zip(starts, stops)]
    return got[None], got[False]


def assert_same_bits(raw, reference):
    assert len(raw) == len(reference)
    for a, b in zip(raw, reference):
        assert list(a) == list(b)
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
            if a[name].dtype == object:
                assert a[name].tolist() == b[name].tolist(), name
            else:
                assert a[name].tobytes() == b[name].tobytes(), name  # bit for bit
                assert a[name].ctypes.data % 64 == 0 or not a[name].size, name  # aligned for TensorFlow


def pages_of(path, row_group, column):
    """The page headers of one column chunk, walked with the parser under test."""
    meta = pq.ParquetFile(path).metadata.row_group(row_group).column(column)
    with open(path, "rb") as f:
        f.seek(meta.data_page_offset)
        data = f.read(meta.total_compressed_size)
    headers, pos = [], 0
    while pos < len(data):
        header, pos = parquet_pages.parse_page_header(data, pos)
        headers.append(header)
        pos += header.compressed_size
    assert pos == len(data)
    return headers, meta


@pytest.mark.parametrize("compression", COMPRESSIONS["parquet"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shape, task", [([5, 7], TASK), ([9], FRAME_TASK), ([1, 1], TASK), ([3, 4, 2], FRAME_TASK)])
@pytest.mark.parametrize("metadata", [False, True])
def test_raw_pages_are_pyarrows_arrays(tmp_path, raw_calls, compression, dtype, shape, task, metadata):
    """Every compression the store offers, float32 and float16, 1-D to 3-D and tiny records, several
    row groups (the last one short): the same arrays bit for bit, read raw (not fallen back)."""
    features = {"logmel": {"shape": shape, "dtype": dtype}, "extra": {"shape": [2], "dtype": "float32"}}
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    write_shard(make_records(45, features, task), path=path, store_format="parquet", features=features, task=task,
                compression=compression, row_group_records=10)
    manifest = {"format": "parquet", "features": features, "task": task}
    raw, reference = read_both(path, manifest, metadata=metadata)
    assert_same_bits(raw, reference)
    assert sum(len(batch["label"]) for batch in raw) == 45
    # 5 row groups x 3 columns (two features, the label), every chunk raw
    assert raw_calls == [True] * 15


def test_many_pages_a_chunk_and_data_page_v2(tmp_path, writer_options, raw_calls):
    features = {"logmel": {"shape": [16, 8], "dtype": "float32"}, "half": {"shape": [4, 4], "dtype": "float16"}}
    manifest = {"format": "parquet", "features": features, "task": TASK}
    for version in ("1.0", "2.0"):
        for compression in ("none", "zstd"):
            writer_options(data_page_size=300, write_batch_size=100, data_page_version=version)
            path = tmp_path / f"v{version}-{compression}-train-00000-of-00001.parquet"
            write_shard(make_records(40, features, TASK), path=path, store_format="parquet", features=features,
                        task=TASK, compression=compression, row_group_records=16)
            headers, meta = pages_of(path, 0, 5)
            assert meta.path_in_schema.startswith("logmel") and len(headers) > 3
            kind = parquet_pages.DATA_PAGE if version == "1.0" else parquet_pages.DATA_PAGE_V2
            assert {header.type for header in headers} == {kind}
            assert sum(header.num_values for header in headers) == meta.num_values == 16 * 128
            del raw_calls[:]
            assert_same_bits(*read_both(path, manifest, metadata=False))
            assert raw_calls == [True] * 9, (version, compression)  # 3 row groups x 3 columns


def test_dictionary_pages_fall_back_to_pyarrow(tmp_path, writer_options, raw_calls):
    """A feature column written with a dictionary (not this store's writer): pyarrow reads it."""
    features = {"logmel": {"shape": [2, 3], "dtype": "float32"}}
    manifest = {"format": "parquet", "features": features, "task": TASK}
    writer_options(use_dictionary=True)
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    records = make_records(30, features, TASK)
    for record in records:  # few distinct values: the writer keeps the dictionary
        record["logmel"] = np.round(record["logmel"]).astype(np.float32)
    write_shard(records, path=path, store_format="parquet", features=features, task=TASK, row_group_records=10)
    assert pq.ParquetFile(path).metadata.row_group(0).column(5).has_dictionary_page
    raw, reference = read_both(path, manifest, metadata=False)
    assert_same_bits(raw, reference)
    np.testing.assert_array_equal(np.concatenate([batch["logmel"] for batch in raw]),
                                  np.stack([record["logmel"] for record in records]))
    assert raw_calls == []  # every column has a dictionary page (labels too): none reaches read_chunk


def test_a_null_record_falls_back_and_fails_as_before(tmp_path):
    """A feature with a null record (a file this writer never makes): not read raw (a page's values
    then fall short of its value count); the read fails as pyarrow's path alone fails."""
    import pyarrow as pa

    features = {"logmel": {"shape": [2, 3], "dtype": "float32"}}
    adapter = ParquetAdapter()
    schema = adapter.schema(features, TASK)
    records = make_records(4, features, TASK)
    table = adapter._table(records, schema)
    column = table.column("logmel").to_pylist()
    column[2] = None
    table = table.set_column(5, "logmel", pa.array(column, type=schema.field("logmel").type))
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    pq.write_table(table, path, write_page_checksum=True, use_dictionary=["track_id"])
    manifest = {"format": "parquet", "features": features, "task": TASK}
    assert adapters._read_raw_columns(pq.ParquetFile(path), path, [0], {"logmel": ([2, 3], "float32")}, rows=4) == {}
    messages = []
    for raw in (True, False):
        adapter.raw_pages = raw
        with pytest.raises(StoreError, match="corrupt Parquet shard") as err:
            adapter.read_range(path, 0, 1, manifest=manifest, metadata=False)
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_the_raw_path_is_taken_for_an_uncompressed_store(tmp_path, monkeypatch):
    """With pyarrow's column reads made to fail, a feature-and-label read still works (raw pages); a
    read with the record columns (strings, ints: pyarrow's) does not."""
    features = {"logmel": {"shape": [5, 7], "dtype": "float32"}}
    manifest = {"format": "parquet", "features": features, "task": TASK}
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    records = make_records(20, features, TASK)
    write_shard(records, path=path, store_format="parquet", features=features, task=TASK, row_group_records=8)

    def broken(*args, **kwargs):
        raise AssertionError("pyarrow's decoder was called")

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", broken)
    adapter = adapter_for("parquet")
    batch = adapter.read_range(path, 0, 3, manifest=manifest, metadata=False)
    np.testing.assert_array_equal(batch["logmel"], np.stack([record["logmel"] for record in records]))
    np.testing.assert_array_equal(batch["label"], [record["label"] for record in records])
    with pytest.raises(AssertionError, match="decoder was called"):
        adapter.read_range(path, 0, 3, manifest=manifest, metadata=True)


@pytest.mark.parametrize("column, name", [(5, "logmel"), (6, "label")])
def test_a_flipped_byte_in_a_page_is_a_crc_error_naming_shard_and_row_group(tmp_path, column, name):
    features = {"logmel": {"shape": [5, 7], "dtype": "float32"}}
    manifest = {"format": "parquet", "features": features, "task": TASK}
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    write_shard(make_records(30, features, TASK), path=path, store_format="parquet", features=features, task=TASK,
                row_group_records=10)
    meta = pq.ParquetFile(path).metadata.row_group(1).column(column)
    data = bytearray(path.read_bytes())
    data[meta.data_page_offset + meta.total_compressed_size - 3] ^= 0x10  # inside the last page's values
    path.write_bytes(bytes(data))
    adapter = adapter_for("parquet")
    assert adapter.read_range(path, 0, 1, manifest=manifest, metadata=False)["label"].shape == (10,)
    with pytest.raises(StoreError, match=rf"{path.name}: row group 1, column '{name}': corrupt .*checksum mismatch"):
        adapter.read_range(path, 1, 2, manifest=manifest, metadata=False)
    with patch.object(adapter, "raw_pages", False):  # pyarrow's own check agrees that the page is damaged
        with pytest.raises(StoreError, match="corrupt.*checksum"):
            adapter.read_range(path, 1, 2, manifest=manifest, metadata=False)


def test_a_damaged_page_header_falls_back_to_pyarrows_error(tmp_path, raw_calls):
    features = {"logmel": {"shape": [5, 7], "dtype": "float32"}}
    manifest = {"format": "parquet", "features": features, "task": TASK}
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    write_shard(make_records(10, features, TASK), path=path, store_format="parquet", features=features, task=TASK)
    meta = pq.ParquetFile(path).metadata.row_group(0).column(5)
    data = bytearray(path.read_bytes())
    data[meta.data_page_offset] = 0xFF  # the first field header of the page header: not Thrift any more
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"{path.name}: corrupt Parquet shard"):
        adapter_for("parquet").read_range(path, 0, 1, manifest=manifest, metadata=False)
    assert raw_calls[0] is False


def test_page_header_parser_reads_compact_thrift():
    """Long-form field ids, a nested struct skipped (statistics with binaries), a list, bools, i64,
    double and negative numbers: the fields that matter come out right."""
    def varint(value):
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    def zigzag(value):
        return varint((value << 1) ^ (value >> 63))

    statistics = (bytes([0x18]) + varint(4) + b"\x00\x00\x80\x3f"  # 1: binary max
                  + bytes([0x16]) + zigzag(-5)  # 2: i64
                  + bytes([0x11, 0x17]) + b"\0" * 8  # 3: bool true, 4: double
                  + bytes([0x19, 0x35]) + zigzag(1) + zigzag(-2) + zigzag(3)  # 5: list<i32> of 3
                  + b"\x00")
    v2 = (bytes([0x15]) + zigzag(12) + bytes([0x15]) + zigzag(0) + bytes([0x15]) + zigzag(2)
          + bytes([0x15]) + zigzag(0) + bytes([0x15]) + zigzag(5) + bytes([0x15]) + zigzag(7)
          + bytes([0x12])  # 7: is_compressed false
          + bytes([0x1C]) + statistics + b"\x00")
    header = (bytes([0x15]) + zigzag(3) + bytes([0x15]) + zigzag(60) + bytes([0x15]) + zigzag(60)
              + bytes([0x05]) + zigzag(4) + zigzag(-1)  # long form: field 4 (crc) = -1
              + bytes([0x0C]) + zigzag(8) + v2  # long form: field 8, a struct
              + b"\x00")
    parsed, end = parquet_pages.parse_page_header(b"junk" + header + b"page", 4)
    assert end == 4 + len(header)
    assert parsed == parquet_pages.PageHeader(
        type=3, uncompressed_size=60, compressed_size=60, crc=0xFFFFFFFF, num_values=12, num_nulls=0,
        encoding=0, definition_levels_byte_length=5, repetition_levels_byte_length=7, is_compressed=False)
    with pytest.raises(parquet_pages.ThriftError):
        parquet_pages.parse_page_header(header[:9], 0)
    with pytest.raises(parquet_pages.ThriftError):
        parquet_pages.parse_page_header(b"\x00", 0)  # no required fields


def test_page_crcs_are_parquets(tmp_path):
    """The CRC-32 checked is the one pyarrow wrote: of each page's bytes after its header."""
    import zlib

    features = {"logmel": {"shape": [5, 7], "dtype": "float32"}}
    path = tmp_path / "demo-train-00000-of-00001.parquet"
    records = make_records(12, features, TASK)
    write_shard(records, path=path, store_format="parquet", features=features, task=TASK)
    meta = pq.ParquetFile(path).metadata.row_group(0).column(5)
    with open(path, "rb") as f:
        f.seek(meta.data_page_offset)
        data = f.read(meta.total_compressed_size)
    header, pos = parquet_pages.parse_page_header(data, 0)
    page = data[pos:pos + header.compressed_size]
    assert header.crc == zlib.crc32(page) == parquet_pages._crc32(page)
    out = np.empty(12 * 35 * 4, np.uint8)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert parquet_pages.read_chunk(fd, meta.data_page_offset, meta.total_compressed_size, out,
                                        codec="UNCOMPRESSED", itemsize=4, max_repetition=2, max_definition=5, where="x")
        assert out.tobytes() == np.stack([record["logmel"] for record in records]).tobytes()
        assert not parquet_pages.read_chunk(fd, meta.data_page_offset, meta.total_compressed_size, out[:-4],
                                            codec="UNCOMPRESSED", itemsize=4, max_repetition=2, max_definition=5,
                                            where="x")  # more values than the rows hold
        assert not parquet_pages.read_chunk(fd, meta.data_page_offset, meta.total_compressed_size, out,
                                            codec="LZO", itemsize=4, max_repetition=2, max_definition=5, where="x")
    finally:
        os.close(fd)
