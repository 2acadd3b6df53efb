"""Records on disk between computing them and writing their shard: the job's spill files.

Beam's local runner keeps every element it shuffles in memory, so if the records (their
feature arrays) went through the shuffle that groups them by shard, a local run would need
RAM for the whole store. They do not: a worker appends each record to a spill file of its
bundle (:class:`SpillWriter`) and only a small index entry goes through the shuffle,
:data:`IndexEntry` ``(split, key, record_bytes, location)``, where the location is 32 bytes
(spill file id, offset, length); the shard writer reads its records back by location
(:class:`SpillReader`). The spill files live in the store's temporary directory (a
filesystem every worker sees on a cluster) and are deleted with it.

Framing of one record (no pickle; the bytes are a function of the record alone)::

    u32 little-endian header length | header (UTF-8 JSON) | each array's raw C-order bytes, in header order

    header = {"fields": {name: str | int | float, ...}, "arrays": [[name, dtype.str, shape], ...]}

:func:`encode_record` and :func:`decode_record` are the framing; decoding gives back the
same strings and ints, and arrays of the same dtype (byte order included), shape and bytes.

A writer may also spill bytes of its own (:meth:`SpillWriter.append_bytes`, read back by
:meth:`SpillReader.read_bytes`): the job spills a TFRecord store's records as their label
and final TFRecord frame (:func:`mirdl.pipelines.transforms.framed_spill_pieces`).

Examples
--------
>>> import tempfile
>>> record = {"key": "a#v000#s000000", "variant": 0, "logmel": np.ones((2, 3), np.float32)}
>>> directory = tempfile.mkdtemp()
>>> with SpillWriter(directory) as writer:
...     location = writer.append(record)
>>> unpack_location(location)[1:]  # offset and length in the spill file: 4 + 81 header + 24 array bytes
(0, 109)
>>> with SpillReader(directory) as reader:
...     back = reader.read(location)
>>> back["key"], back["logmel"].shape, back["logmel"].dtype
('a#v000#s000000', (2, 3), dtype('float32'))
"""
from __future__ import annotations

import json
import os
import struct
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mirdl.errors import StoreError

__all__ = [
    "SPILL_SUFFIX",
    "IndexEntry",
    "encode_record",
    "decode_record",
    "pack_location",
    "unpack_location",
    "SpillWriter",
    "SpillReader",
]

SPILL_SUFFIX = ".spill"
#: What the shuffle carries per record, a plain tuple (Beam's cheapest coder):
#: ``(split, key, record_bytes, location)``; ``record_bytes`` is the size estimate of
#: :func:`mirdl.store.adapters.record_nbytes` the shard count is computed from, ``location``
#: where the record is (:func:`pack_location`).
IndexEntry = tuple[str, str, int, bytes]
_HEADER_LENGTH = struct.Struct("<I")
# 16-byte spill file id (a uuid), offset and length (u64 each): one small bytes object per
# record instead of a file name and two ints, in a shuffle the local runner holds in memory.
_LOCATION = struct.Struct("<16sQQ")


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One record as bytes: strings and ints in a JSON header, arrays as raw bytes after it.

    Parameters
    ----------
    record : mapping
        Values are ``str``, ``int``, ``float`` or numpy arrays / scalars of a numeric or bool
        dtype (``np.generic`` comes back as a 0-d array).

    Raises
    ------
    StoreError
        A value of another type (an object array, None, a list): it would need pickle.
    """
    fields: dict[str, Any] = {}
    arrays: list[np.ndarray] = []
    layout: list[list[Any]] = []
    for name, value in record.items():
        if isinstance(value, (np.ndarray, np.generic)):
            array = np.asarray(value)  # tobytes() is C order whatever the strides (and keeps 0-d)
            if array.dtype.kind not in "biufc":
                raise StoreError(f"record field {name!r}: dtype {array.dtype} cannot be spilled without pickle")
            arrays.append(array)
            layout.append([name, array.dtype.str, list(array.shape)])
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            fields[name] = value
        else:
            raise StoreError(f"record field {name!r}: a {type(value).__name__} cannot be spilled "
                             "(str, int, float or numeric array)")
    header = json.dumps({"fields": fields, "arrays": layout}, ensure_ascii=False, separators=(",", ":"),
                        allow_nan=False).encode("utf-8")
    return b"".join([_HEADER_LENGTH.pack(len(header)), header, *(array.tobytes() for array in arrays)])


def decode_record(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The record :func:`encode_record` framed: its fields, then its arrays (which share
    ``data``'s memory, writable if ``data`` is).

    Raises
    ------
    StoreError
        ``data`` is shorter or longer than its header says (a truncated or misread spill).
    """
    view = memoryview(data)
    if len(view) < _HEADER_LENGTH.size:
        raise StoreError(f"spilled record of {len(view)} bytes is truncated (no header)")
    (header_length,) = _HEADER_LENGTH.unpack_from(view)
    start = _HEADER_LENGTH.size + header_length
    if len(view) < start:
        raise StoreError(f"spilled record of {len(view)} bytes is truncated (header of {header_length} bytes)")
    header = json.loads(bytes(view[_HEADER_LENGTH.size:start]).decode("utf-8"))
    record = dict(header["fields"])
    for name, dtype, shape in header["arrays"]:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        end = start + count * dtype.itemsize
        if end > len(view):
            raise StoreError(f"spilled record of {len(view)} bytes is truncated (array {name!r})")
        record[name] = np.frombuffer(view, dtype=dtype, count=count, offset=start).reshape(shape)
        start = end
    if start != len(view):
        raise StoreError(f"spilled record has {len(view) - start} bytes after its last array")
    return record


def pack_location(file_id: bytes, offset: int, length: int) -> bytes:
    """The 32-byte location of a spilled record: spill file id (16 bytes), offset, length."""
    return _LOCATION.pack(file_id, offset, length)


def unpack_location(location: bytes) -> tuple[str, int, int]:
    """``(spill file name, offset, length)`` of a :func:`pack_location` location.

    Raises
    ------
    StoreError
        ``location`` is not 32 bytes.
    """
    if len(location) != _LOCATION.size:
        raise StoreError(f"a spill location is {_LOCATION.size} bytes, not {len(location)}")
    file_id, offset, length = _LOCATION.unpack(location)
    return f"{file_id.hex()}{SPILL_SUFFIX}", offset, length


class SpillWriter:
    """Appends framed records to one new spill file (``<uuid>.spill``) in ``directory``.

    One writer per bundle: the file name is unique, so retried or concurrent bundles never
    share a file (a failed attempt's file is simply never read). The file is created on the
    first :meth:`append`; :meth:`close` flushes it, and must run before the index entries
    are read (Beam runs ``finish_bundle`` before it commits a bundle's outputs).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self._file_id = uuid.uuid4().bytes
        self.name = f"{self._file_id.hex()}{SPILL_SUFFIX}"
        self._handle: BinaryIO | None = None
        self._offset = 0

    @property
    def bytes_written(self) -> int:
        return self._offset

    def append(self, record: Mapping[str, Any]) -> bytes:
        """Frame and append ``record``; return its location (:func:`pack_location`) to read it back."""
        return self.append_bytes(encode_record(record))

    def append_bytes(self, *pieces: bytes) -> bytes:
        """Append ``pieces`` as they are, one after another; return the location of the whole,
        for :meth:`SpillReader.read_bytes`."""
        if self._handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.directory / self.name, "xb")  # noqa: SIM115 - closed in close()
        self._handle.writelines(pieces)
        length = sum(len(piece) for piece in pieces)
        offset, self._offset = self._offset, self._offset + length
        return pack_location(self._file_id, offset, length)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> SpillWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class SpillReader:
    """Reads records back from the spill files in ``directory`` by location (:func:`pack_location`).

    Keeps up to ``max_open`` files open (least recently used closed first): a shard's
    records come from every bundle that made one of them.
    """

    def __init__(self, directory: str | os.PathLike, *, max_open: int = 32) -> None:
        self.directory = Path(directory)
        self.max_open = max_open
        self._handles: OrderedDict[str, BinaryIO] = OrderedDict()

    def _handle(self, name: str) -> BinaryIO:
        handle = self._handles.pop(name, None)
        if handle is None:
            try:
                handle = open(self.directory / name, "rb")  # noqa: SIM115 - closed in close()
            except OSError as err:
                raise StoreError(f"spill file {self.directory / name} cannot be read ({err})") from err
            while len(self._handles) >= self.max_open:
                self._handles.popitem(last=False)[1].close()
        self._handles[name] = handle
        return handle

    def read(self, location: bytes) -> dict[str, Any]:
        """The record spilled at ``location`` (by :meth:`SpillWriter.append`)."""
        return decode_record(self.read_bytes(location))

    def read_bytes(self, location: bytes) -> bytearray:
        """The bytes spilled at ``location``."""
        name, offset, length = unpack_location(location)
        handle = self._handle(name)
        handle.seek(offset)
        data = bytearray(length)
        if handle.readinto(data) != length:
            raise StoreError(f"spill file {self.directory / name} ends before {offset} + {length} bytes")
        return data

    def close(self) -> None:
        while self._handles:
            self._handles.popitem()[1].close()

    def __enter__(self) -> SpillReader:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
