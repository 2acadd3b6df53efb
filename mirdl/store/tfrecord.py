"""TFRecord files and ``tf.train.Example`` bytes written without TensorFlow.

A precompute worker that writes TFRecord shards used to import TensorFlow only to frame records
and serialise ``tf.train.Example`` protos: 10-20 s of start-up per process for work that is a few
lines of byte packing. This module writes the same bytes with numpy, :mod:`struct`, :mod:`zlib`
and ``google-crc32c`` (a C implementation of CRC32C; a pure-Python fallback is used if it is
missing, correct but slow).

Byte-identical to ``tf.io.TFRecordWriter`` + ``tf.train.Example.SerializeToString(
deterministic=True)`` for the records a store holds (tested in ``tests/store/test_tfrecord.py``):

* A record on disk is ``uint64 length`` (little endian), ``masked_crc32c(length bytes)``,
  ``data``, ``masked_crc32c(data)``; the mask is ``((crc >> 15) | (crc << 17)) + 0xa282ead8``.
* An ``Example`` is ``features`` (field 1) holding one map entry (field 1) per feature, sorted by
  key as deterministic serialisation sorts them, each entry ``key`` (field 1) and ``value``
  (field 2, a ``Feature``: ``bytes_list`` 1, ``float_list`` 2, ``int64_list`` 3; numbers packed).
* GZIP (``compression="gzip"``): zlib's gzip wrapper as TensorFlow's ``ZlibOutputBuffer`` sets it
  up (default level, 15-bit window, memory level 9, no file name, no time), fed without flushes.

Examples
--------
>>> import numpy as np
>>> example_bytes({"label": ("int64", np.array([3])), "key": ("bytes", [b"a"])}).hex()
'0a1e0a0c0a036b657912050a030a01610a0e0a056c6162656c12051a030a0103'
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mirdl.store.varint import read_varint

__all__ = ["masked_crc32c", "frame", "example_bytes", "framed_example", "TFRecordFileWriter",
           "crc32c_implementation", "CorruptRecord", "read_records", "record_offsets", "record_at",
           "parse_example"]

_MASK_DELTA = 0xA282EAD8

try:  # google-crc32c: C (hardware CRC32C where the CPU has it), wheels for every platform
    import google_crc32c as _google_crc32c

    if _google_crc32c.implementation != "c":  # its own pure-Python fallback: use ours (same speed class)
        raise ImportError("google-crc32c without its C extension")

    def _crc32c(data: bytes) -> int:
        return _google_crc32c.value(data)

    def _crc32c_of(pieces: Iterable[bytes]) -> int:
        crc = 0
        for piece in pieces:
            crc = _google_crc32c.extend(crc, piece)
        return crc

    _IMPLEMENTATION = "google-crc32c (c)"
except ImportError:  # pragma: no cover - exercised only where google-crc32c is missing
    _TABLE = []
    for _n in range(256):
        _c = _n
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def _crc32c(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in memoryview(data).cast("B"):
            crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF

    def _crc32c_of(pieces: Iterable[bytes]) -> int:
        return _crc32c(b"".join(pieces))

    _IMPLEMENTATION = "pure python"


def crc32c_implementation() -> str:
    """Which CRC32C implementation this process uses (``"google-crc32c (c)"`` or ``"pure python"``)."""
    return _IMPLEMENTATION


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data`` (``uint32``).

    >>> hex(masked_crc32c(b"123456789"))  # CRC32C check value 0xe3069283, masked
    '0xc78ab0e5'
    """
    return _masked(_crc32c(data))


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord record: ``length, masked_crc32c(length), data, masked_crc32c(data)``."""
    return _framed([data], len(data))


def _framed(pieces: list[bytes], size: int) -> bytes:
    """:func:`frame` of the concatenation of ``pieces`` (``size`` bytes), with one copy of them."""
    length = struct.pack("<Q", size)
    return b"".join((length, struct.pack("<I", masked_crc32c(length)), *pieces,
                     struct.pack("<I", _masked(_crc32c_of(pieces)))))


_SMALL_VARINTS = tuple(bytes((value,)) for value in range(0x80))


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values as their 64-bit two's complement (10 bytes)."""
    if 0 <= value < 0x80:
        return _SMALL_VARINTS[value]
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


#: ``Feature``'s field of each kind: ``bytes_list`` 1, ``float_list`` 2, ``int64_list`` 3.
_KIND_FIELD = {"bytes": 1, "float": 2, "int64": 3}


@functools.lru_cache(maxsize=4096)
def _entry_head(name: str, kind_field: int, size: int) -> bytes:
    """The bytes of a ``features`` map entry that come before its one payload of ``size`` bytes
    (one ``bytes_list`` value, or a packed ``float_list`` / ``int64_list``): a store's records
    share them, field by field, so they are built once per name, kind and payload size."""
    key = _field(1, name.encode())
    list_head = _varint(1 << 3 | 2) + _varint(size)  # the list's field 1 (value / packed values)
    feature_size = len(list_head) + size
    feature_head = _varint(kind_field << 3 | 2) + _varint(feature_size)
    value_size = len(feature_head) + feature_size
    value_head = _varint(2 << 3 | 2) + _varint(value_size)  # the entry's field 2 (the Feature)
    body_size = len(key) + len(value_head) + value_size
    return _varint(1 << 3 | 2) + _varint(body_size) + key + value_head + feature_head + list_head


def _payload(kind: str, values: Any) -> bytes | None:
    """A feature's one payload (one ``bytes`` value, or its numbers packed); None where the
    feature is not one payload (several or no ``bytes`` values, no numbers). ``bytes`` values
    come as a list."""
    if kind == "bytes":
        if len(values) != 1:
            return None
        value = values[0]
        return value if type(value) is bytes else bytes(value)
    if kind == "float":
        packed = np.asarray(values, dtype="<f4").reshape(-1).tobytes()
    elif kind == "int64":
        packed = b"".join([_varint(int(value)) for value in np.asarray(values, dtype=np.int64).reshape(-1)])
    else:
        raise ValueError(f"kind={kind!r} must be 'bytes', 'float' or 'int64'")
    return packed or None


def _entry(name: str, kind: str, values: Any) -> bytes:
    """A ``features`` map entry that is not one payload (:func:`_payload` gave None), built field by
    field: a ``bytes_list`` of several or no values, or a numeric list without numbers."""
    if kind == "bytes":
        feature = _field(1, b"".join(_field(1, bytes(value)) for value in values))
    else:
        feature = _field(_KIND_FIELD[kind], b"")
    return _field(1, _field(1, name.encode()) + _field(2, feature))


def _example_pieces(features: Mapping[str, tuple[str, Any]]) -> tuple[list[bytes], int]:
    """The ``Example``'s bytes as pieces, and their total size: each payload appears once, after
    its entry's head (:func:`_entry_head`), and is not copied into every enclosing field."""
    pieces: list[bytes] = []
    size = 0
    for name in sorted(features, key=lambda name: name.encode()):
        kind, values = features[name]
        if kind == "bytes":
            values = list(values)  # read twice where it is not one payload
        payload = _payload(kind, values)
        if payload is None:
            entry = _entry(name, kind, values)
            pieces.append(entry)
            size += len(entry)
            continue
        head = _entry_head(name, _KIND_FIELD[kind], len(payload))
        pieces += (head, payload)
        size += len(head) + len(payload)
    outer = _varint(1 << 3 | 2) + _varint(size)  # the Example's field 1 (Features)
    return [outer, *pieces], len(outer) + size


def example_bytes(features: Mapping[str, tuple[str, Any]]) -> bytes:
    """``tf.train.Example(...).SerializeToString(deterministic=True)`` for ``name -> (kind, values)``.

    ``kind`` is ``"bytes"`` (an iterable of ``bytes``), ``"float"`` or ``"int64"`` (array-likes,
    flattened). Map entries are sorted by the UTF-8 bytes of their names, as protobuf's
    deterministic serialisation sorts string map keys.
    """
    return b"".join(_example_pieces(features)[0])


def framed_example(features: Mapping[str, tuple[str, Any]]) -> bytes:
    """``frame(example_bytes(features))``: the ``tf.train.Example`` as one TFRecord record.

    Assembled from pieces: each payload is copied once, into the record, after its entry's head,
    built once per store layout (:func:`_entry_head`); nesting the fields one by one and framing
    them cost ~54 us a record of a 128 x 130 float32 log-mel patch, mostly Python.

    >>> columns = {"label": ("int64", np.array([3])), "x": ("bytes", [np.arange(3, dtype="<f4").tobytes()])}
    >>> framed_example(columns) == frame(example_bytes(columns))
    True
    """
    return _framed(*_example_pieces(features))


class TFRecordFileWriter:
    """Write framed records to ``path``, plain or GZIP, as ``tf.io.TFRecordWriter`` does.

    A context manager; :meth:`write` takes one serialised record (``bytes``).
    """

    def __init__(self, path: str | Path, *, compression: str = "none"):
        if compression not in ("none", "gzip"):
            raise ValueError(f"compression={compression!r} must be 'none' or 'gzip'")
        self._path = str(path)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        # TensorFlow's ZlibCompressionOptions::GZIP(): window_bits MAX_WBITS + 16, mem_level 9,
        # Z_DEFAULT_COMPRESSION, default strategy; zlib writes the gzip header without name or time.
        self._zlib = (zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, zlib.MAX_WBITS + 16, 9)
                      if compression == "gzip" else None)

    def write(self, record: bytes) -> None:
        """Frame one serialised record (:func:`frame`) and write it."""
        self.write_framed(frame(record))

    def write_framed(self, data: bytes | bytearray | memoryview) -> None:
        """Write one record already framed by :func:`frame`."""
        self._write(self._zlib.compress(data) if self._zlib is not None else data)

    def _write(self, data: bytes) -> None:
        with self._naming_the_file():
            self._file.write(data)

    @contextlib.contextmanager
    def _naming_the_file(self):
        """A full disk raises ENOSPC without a file name from ``write()``: name the file."""
        try:
            yield
        except OSError as err:
            if err.filename is None:
                raise OSError(err.errno, err.strerror, self._path) from err
            raise

    def write_all(self, records: Iterable[bytes]) -> int:
        n = 0
        for record in records:
            self.write(record)
            n += 1
        return n

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self._zlib is not None:
                self._write(self._zlib.flush(zlib.Z_FINISH))
        finally:
            with self._naming_the_file():
                self._file.close()

    def __enter__(self) -> TFRecordFileWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ reading
class CorruptRecord(ValueError):
    """A record whose framing, checksum or ``Example`` bytes are not valid."""


def read_records(path: str | Path, *, compression: str = "none", check: bool = True) -> Iterator[bytes]:
    """The records of a TFRecord file, each checked against its two masked CRC32Cs (``check``).

    Read as a stream (a record at a time through a 1 MB buffer; GZIP decompressed as it goes):
    the first records of a large shard cost what they weigh, and memory is one record.
    Raises :class:`CorruptRecord` for a truncated record, a checksum that does not match or a
    GZIP stream that is not valid, as ``tf.data.TFRecordDataset`` raises ``DataLossError``.
    """
    if compression not in ("none", "gzip"):
        raise ValueError(f"compression={compression!r} must be 'none' or 'gzip'")
    with open(path, "rb", buffering=_READ_BUFFER) as handle:
        if compression == "gzip":
            try:
                yield from _framed_records(gzip.GzipFile(fileobj=handle, mode="rb"), size=None, check=check)
            except (EOFError, zlib.error, gzip.BadGzipFile) as err:
                raise CorruptRecord(f"not a valid GZIP stream ({err})") from None
        else:
            yield from _framed_records(handle, size=os.fstat(handle.fileno()).st_size, check=check)


#: Read buffer of :func:`read_records` (records larger than it are read straight into their bytes).
_READ_BUFFER = 1 << 20


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    """``n`` bytes of ``stream``, fewer only at its end; read in pieces of at most
    :data:`_READ_BUFFER` where ``n`` is not known to fit (a GZIP stream: no size to check a
    length against before reading)."""
    if n <= _READ_BUFFER:
        return stream.read(n)
    pieces, left = [], n
    while left:
        piece = stream.read(min(left, _READ_BUFFER))
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def _framed_records(stream: BinaryIO, *, size: int | None, check: bool) -> Iterator[bytes]:
    """The records framed in ``stream`` (``size``: its length in bytes when known)."""
    offset = 0
    while True:
        header = stream.read(12)
        if not header:
            return
        if len(header) < 12:
            raise CorruptRecord(f"truncated record header at byte {offset}")
        (length,) = struct.unpack_from("<Q", header)
        if check and struct.unpack_from("<I", header, 8)[0] != masked_crc32c(header[:8]):
            raise CorruptRecord(f"length checksum does not match at byte {offset}")
        if size is not None and size - offset - 12 < length + 4:
            raise CorruptRecord(f"truncated record at byte {offset}")
        record = _read_exactly(stream, length)
        footer = stream.read(4)
        yield _checked(record, footer, length=length, offset=offset, check=check)
        offset += 12 + length + 4


def _checked(record: bytes, footer: bytes, *, length: int, offset: int, check: bool = True) -> bytes:
    """``record``, the data of the record whose header is at byte ``offset``, once its size and
    (``check``) its masked CRC32C (``footer``) are as framed."""
    if len(record) < length or len(footer) < 4:
        raise CorruptRecord(f"truncated record at byte {offset}")
    if check and struct.unpack_from("<I", footer)[0] != masked_crc32c(record):
        raise CorruptRecord(f"data checksum does not match at byte {offset}")
    return record


def record_offsets(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Where each record of an uncompressed TFRecord file starts (the byte of its 12-byte
    header) and how many bytes of data it holds, both int64 ``(n_records,)``, from the headers
    alone: one 12-byte read per record, each length checked against its own CRC32C.

    With them :func:`record_at` reads any record alone, in any order. Raises
    :class:`CorruptRecord` for a header that is truncated, fails its checksum or frames more
    bytes than the file has.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "two.tfrecord"
    >>> _ = path.write_bytes(frame(b"abc") + frame(b"de"))
    >>> offsets, lengths = record_offsets(path)
    >>> offsets.tolist(), lengths.tolist()
    ([0, 19], [3, 2])
    """
    offsets, lengths = [], []
    with open(path, "rb", buffering=0) as handle:
        fd = handle.fileno()
        size, offset = os.fstat(fd).st_size, 0
        while offset < size:
            header = os.pread(fd, 12, offset)
            if len(header) < 12:
                raise CorruptRecord(f"truncated record header at byte {offset}")
            (length,) = struct.unpack_from("<Q", header)
            if struct.unpack_from("<I", header, 8)[0] != masked_crc32c(header[:8]):
                raise CorruptRecord(f"length checksum does not match at byte {offset}")
            if size - offset - 12 < length + 4:
                raise CorruptRecord(f"truncated record at byte {offset}")
            offsets.append(offset)
            lengths.append(length)
            offset += 12 + length + 4
    return np.asarray(offsets, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


def record_at(data, offset: int, length: int) -> bytes:
    """The data of the record whose header is at byte ``offset`` of ``data`` (a file's bytes, or
    its read-only ``mmap``; offsets and lengths as :func:`record_offsets` gives them), its CRC32C
    checked. Only the record's bytes are copied out of ``data``. Raises :class:`CorruptRecord` as
    :func:`read_records` does.

    >>> record_at(frame(b"abc") + frame(b"de"), 19, 2)
    b'de'
    """
    start = offset + 12
    return _checked(data[start:start + length], data[start + length:start + length + 4], length=length,
                    offset=offset)


def _read_varint(view: memoryview, pos: int) -> tuple[int, int]:
    return read_varint(view, pos, error=CorruptRecord)


def _fields(view: memoryview) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of a protobuf message: an int (varint, fixed) or a
    memoryview (length-delimited)."""
    pos = 0
    while pos < len(view):
        key, pos = _read_varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(view, pos)
        elif wire == 2:
            length, pos = _read_varint(view, pos)
            if pos + length > len(view):
                raise CorruptRecord("length-delimited field runs past its message")
            value, pos = view[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = view[pos : pos + 4], pos + 4
        elif wire == 1:
            value, pos = view[pos : pos + 8], pos + 8
        else:
            raise CorruptRecord(f"unsupported wire type {wire}")
        if pos > len(view):
            raise CorruptRecord("field runs past its message")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _feature_values(view: memoryview) -> tuple[str, Any]:
    kind, values = "bytes", []  # an empty Feature reads as an empty list
    for number, _, inner in _fields(view):
        if number == 1:
            kind, values = "bytes", [bytes(value) for n, w, value in _fields(inner) if n == 1 and w == 2]
        elif number == 2:
            kind, parts = "float", []
            for n, w, value in _fields(inner):
                if n == 1:
                    parts.append(np.frombuffer(value, dtype="<f4"))
            values = np.concatenate(parts) if parts else np.zeros(0, "<f4")
        elif number == 3:
            kind, values = "int64", []
            for n, w, value in _fields(inner):
                if n == 1 and w == 2:  # packed
                    pos = 0
                    while pos < len(value):
                        item, pos = _read_varint(value, pos)
                        values.append(_signed(item))
                elif n == 1 and w == 0:
                    values.append(_signed(value))
            values = np.asarray(values, dtype=np.int64)
    return kind, values


def parse_example(data: bytes) -> dict[str, tuple[str, Any]]:
    """``name -> (kind, values)`` of a serialised ``tf.train.Example``, the inverse of
    :func:`example_bytes`: ``("bytes", [bytes, ...])``, ``("float", float32 array)``,
    ``("int64", int64 array)``.

    >>> parse_example(example_bytes({"label": ("int64", np.array([-3])), "key": ("bytes", [b"a"])}))
    {'key': ('bytes', [b'a']), 'label': ('int64', array([-3]))}
    """
    out: dict[str, tuple[str, Any]] = {}
    for number, wire, features in _fields(memoryview(data)):
        if number != 1 or wire != 2:
            continue
        for n, w, entry in _fields(features):
            if n != 1 or w != 2:
                continue
            name, value = None, memoryview(b"")
            for field, kind, item in _fields(entry):
                if field == 1 and kind == 2:
                    name = bytes(item).decode("utf-8")
                elif field == 2 and kind == 2:
                    value = item
            if name is None:
                raise CorruptRecord("a feature map entry without a name")
            out[name] = _feature_values(value)
    return out
