"""Parquet column chunks of PLAIN fixed-width values read page by page, without pyarrow's decoder.

The Parquet analogue of the HDF5 raw-chunk read (:func:`mirdl.store.adapters._read_rows`). A
feature column is a ``fixed_size_list<...<float>>``: Parquet stores it as a list column, with a
repetition and a definition level per value, and pyarrow's reader decodes both for every float
(~100 us of CPU for a 96 x 128 record, against ~50 for the whole TFRecord read). For the columns
this store's writer makes (PLAIN values, no dictionary, no nulls, one column chunk per row group),
the values of a page are simply its last ``num_values * itemsize`` bytes. So the chunk's bytes
are read with one ``pread``, each page header (Thrift compact protocol, ``parquet.thrift``'s
``PageHeader``) is parsed here, each page's CRC-32 checked (as pyarrow does with
``page_checksum_verification``), the page decompressed if the chunk's codec is not
UNCOMPRESSED, its level runs skipped by their byte lengths, and its values copied into the output.

The levels are skipped, not decoded: the record structure is the schema's (a fixed-size list of
the manifest's shape, checked by the caller), the levels' bytes are covered by the page CRC, and
every count must add up (each page's values bytes are exactly ``num_values * itemsize`` -- a
null or an empty list leaves a level without a value; the chunk's values are ``rows *
prod(shape)``). Anything else -- a dictionary page, another encoding, nulls, a header that does
not parse, counts that do not add up, a page without a CRC -- makes :func:`read_chunk` return
False, and the caller reads that range with pyarrow: never different numbers, only slower ones.

Examples
--------
A DataPageHeader (v1) of 3 PLAIN float values, 12 bytes, with a CRC:

>>> raw = bytes([0x15, 0x00, 0x15, 0x18, 0x15, 0x18, 0x15, 0x02, 0x1c, 0x15, 0x06, 0x15, 0x00,
...              0x15, 0x06, 0x15, 0x06, 0x00, 0x00])
>>> header, end = parse_page_header(raw, 0)
>>> header.type, header.compressed_size, header.crc, header.num_values, header.encoding, end
(0, 12, 1, 3, 0, 19)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mirdl.errors import StoreError
from mirdl.store.varint import read_varint

try:  # ISA-L's CRC-32 (carry-less multiply): ~15 GB/s here against zlib 1.2's ~1 GB/s
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; a platform without its wheel keeps zlib's
    from zlib import crc32 as _crc32

__all__ = ["PageHeader", "ThriftError", "parse_page_header", "read_chunk", "PAGE_TYPES", "CODECS"]

# parquet.thrift: enum PageType, enum Encoding
DATA_PAGE, INDEX_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 1, 2, 3
PAGE_TYPES = {DATA_PAGE: "DATA_PAGE", INDEX_PAGE: "INDEX_PAGE", DICTIONARY_PAGE: "DICTIONARY_PAGE",
              DATA_PAGE_V2: "DATA_PAGE_V2"}
PLAIN, RLE = 0, 3
#: pyarrow's name of a column chunk's codec (``ColumnChunkMetaData.compression``) -> the codec of
#: ``pyarrow.decompress`` that reads its pages; codecs not listed (LZ4 with Hadoop framing, LZO)
#: fall back to pyarrow's reader.
CODECS = {"UNCOMPRESSED": None, "SNAPPY": "snappy", "GZIP": "gzip", "ZSTD": "zstd", "BROTLI": "brotli",
          "LZ4_RAW": "lz4_raw"}

# Thrift compact protocol type ids (field headers and list element types)
_STOP, _TRUE, _FALSE, _I8, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT, _UUID = range(14)


class ThriftError(ValueError):
    """A page header that does not parse (the caller falls back to pyarrow, which names the damage)."""


@dataclass(frozen=True)
class PageHeader:
    """The fields of a Parquet ``PageHeader`` this reader uses (``None`` where absent)."""

    type: int
    uncompressed_size: int
    compressed_size: int
    crc: int | None  # unsigned
    num_values: int | None = None
    encoding: int | None = None
    definition_level_encoding: int | None = None  # v1
    repetition_level_encoding: int | None = None  # v1
    num_nulls: int | None = None  # v2
    definition_levels_byte_length: int | None = None  # v2
    repetition_levels_byte_length: int | None = None  # v2
    is_compressed: bool = True  # v2 (thrift default true)


def _varint(buf, pos: int) -> tuple[int, int]:
    return read_varint(buf, pos, error=ThriftError)


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _value(buf, pos: int, kind: int):
    """``(value, pos)`` of one compact-protocol value of type ``kind`` (not a bool field)."""
    if kind in (_I16, _I32, _I64):
        value, pos = _varint(buf, pos)
        return _zigzag(value), pos
    if kind == _I8:
        return buf[pos] - 256 * (buf[pos] > 127), pos + 1
    if kind in (_TRUE, _FALSE):  # a bool element of a list: one byte
        return buf[pos] == _TRUE, pos + 1
    if kind == _DOUBLE:
        return bytes(buf[pos:pos + 8]), pos + 8
    if kind == _UUID:
        return bytes(buf[pos:pos + 16]), pos + 16
    if kind == _BINARY:
        size, pos = _varint(buf, pos)
        if pos + size > len(buf):
            raise ThriftError("binary past the end of the buffer")
        return bytes(buf[pos:pos + size]), pos + size
    if kind in (_LIST, _SET):
        head = buf[pos]
        pos += 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(buf, pos)
        items = []
        for _ in range(size):
            item, pos = _value(buf, pos, element)
            items.append(item)
        return items, pos
    if kind == _MAP:
        size, pos = _varint(buf, pos)
        if not size:
            return {}, pos
        kinds = buf[pos]
        pos += 1
        items = {}
        for _ in range(size):
            key, pos = _value(buf, pos, kinds >> 4)
            items[key if not isinstance(key, list) else tuple(key)], pos = _value(buf, pos, kinds & 0x0F)
        return items, pos
    if kind == _STRUCT:
        return _struct(buf, pos)
    raise ThriftError(f"unknown compact type {kind}")


def _struct(buf, pos: int) -> tuple[dict[int, object], int]:
    """``({field id: value}, pos)`` of a compact-protocol struct starting at ``pos``."""
    fields: dict[int, object] = {}
    last = 0
    while True:
        head = buf[pos]
        pos += 1
        if head == _STOP:
            return fields, pos
        delta, kind = head >> 4, head & 0x0F
        if delta:
            field = last + delta
        else:
            field, pos = _varint(buf, pos)
            field = _zigzag(field)
        if kind in (_TRUE, _FALSE):
            fields[field] = kind == _TRUE
        else:
            fields[field], pos = _value(buf, pos, kind)
        last = field


def parse_page_header(buf, pos: int) -> tuple[PageHeader, int]:
    """``(header, end)``: the ``PageHeader`` starting at ``buf[pos]`` and the offset of its page.

    Field ids are ``parquet.thrift``'s: PageHeader 1 type, 2 uncompressed_page_size, 3
    compressed_page_size, 4 crc, 5 data_page_header (1 num_values, 2 encoding, 3
    definition_level_encoding, 4 repetition_level_encoding), 8 data_page_header_v2 (1 num_values,
    2 num_nulls, 3 num_rows, 4 encoding, 5 definition_levels_byte_length, 6
    repetition_levels_byte_length, 7 is_compressed). Raises :class:`ThriftError` where the bytes do
    not make a page header.
    """
    try:
        fields, end = _struct(buf, pos)
    except IndexError as err:
        raise ThriftError("page header past the end of the column chunk") from err
    try:
        page_type, uncompressed, compressed = fields[1], fields[2], fields[3]
    except KeyError as err:
        raise ThriftError(f"page header without its required field {err}") from err
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (page_type, uncompressed, compressed)) \
            or uncompressed < 0 or compressed < 0:
        raise ThriftError("page header fields of the wrong type")
    crc = fields.get(4)
    common = {"type": page_type, "uncompressed_size": uncompressed, "compressed_size": compressed,
              "crc": None if not isinstance(crc, int) else crc & 0xFFFFFFFF}
    v1, v2 = fields.get(5), fields.get(8)
    if page_type == DATA_PAGE and isinstance(v1, dict):
        return PageHeader(**common, num_values=v1.get(1), encoding=v1.get(2), definition_level_encoding=v1.get(3),
                          repetition_level_encoding=v1.get(4)), end
    if page_type == DATA_PAGE_V2 and isinstance(v2, dict):
        return PageHeader(**common, num_values=v2.get(1), num_nulls=v2.get(2), encoding=v2.get(4),
                          definition_levels_byte_length=v2.get(5), repetition_levels_byte_length=v2.get(6),
                          is_compressed=v2.get(7, True) is not False), end
    return PageHeader(**common), end


def _decompress(data, size: int, codec: str):
    """``size`` bytes decompressed from ``data``, or None (the caller falls back) where they do not."""
    import pyarrow as pa

    try:
        out = memoryview(pa.decompress(data, decompressed_size=size, codec=codec, asbytes=False))
    except (pa.ArrowException, ValueError, OSError):
        return None
    return out if len(out) == size else None


def _level_section(page, at: int, max_level: int, encoding) -> int | None:
    """The offset past one DataPage v1 level section (4-byte little-endian length + RLE runs)."""
    if max_level == 0:
        return at
    if encoding != RLE or at + 4 > len(page):
        return None
    return at + 4 + int.from_bytes(page[at:at + 4], "little")


def _page_values(page, header: PageHeader, codec: str | None, *, max_repetition: int, max_definition: int):
    """The PLAIN values bytes of one data page (a memoryview), or None where this page is not one
    read here."""
    if header.encoding != PLAIN or not isinstance(header.num_values, int):
        return None
    if header.type == DATA_PAGE:
        if codec is not None:
            page = _decompress(page, header.uncompressed_size, codec)
            if page is None:
                return None
        if len(page) != header.uncompressed_size:
            return None
        at = _level_section(page, 0, max_repetition, header.repetition_level_encoding)
        at = None if at is None else _level_section(page, at, max_definition, header.definition_level_encoding)
        return None if at is None or at > len(page) else page[at:]
    # DATA_PAGE_V2: levels uncompressed, their byte lengths in the header; values compressed if flagged
    levels = (header.repetition_levels_byte_length or 0) + (header.definition_levels_byte_length or 0)
    if header.num_nulls != 0 or levels < 0 or levels > len(page):
        return None
    values = page[levels:]
    if codec is not None and header.is_compressed:
        values = _decompress(values, header.uncompressed_size - levels, codec)
    return values


def read_chunk(fd: int, offset: int, length: int, out: np.ndarray, *, codec: str, itemsize: int,
               max_repetition: int, max_definition: int, where: str) -> bool:
    """Fill ``out`` (a flat uint8 array) with the values of the column chunk at ``offset`` (``length``
    bytes, pages and their headers) of the open file ``fd``; False, with ``out`` partly written,
    where the chunk is not one read here (see the module's docstring).

    Raises
    ------
    StoreError
        A page's CRC-32 does not match its bytes (``where`` names the shard, row group and column).
    """
    if codec not in CODECS:
        return False
    codec = CODECS[codec]
    data = os.pread(fd, length, offset)
    if len(data) != length:  # truncated file: pyarrow's read names it
        return False
    view = memoryview(data)
    pos = filled = 0
    while pos < length:
        try:
            header, pos = parse_page_header(view, pos)
        except ThriftError:
            return False
        end = pos + header.compressed_size
        if end > length or header.type not in (DATA_PAGE, DATA_PAGE_V2) or header.crc is None:
            return False
        page = view[pos:end]
        if _crc32(page) != header.crc:
            raise StoreError(f"{where}: corrupt Parquet shard (checksum mismatch: CRC-32 of the page at byte "
                             f"{offset + pos} does not match its header)")
        values = _page_values(page, header, codec, max_repetition=max_repetition, max_definition=max_definition)
        if values is None:
            return False
        nbytes = header.num_values * itemsize
        if len(values) != nbytes or filled + nbytes > len(out):  # nulls, or more values than the rows hold
            return False
        out[filled:filled + nbytes] = np.frombuffer(values, np.uint8)
        filled += nbytes
        pos = end
    return filled == len(out)
