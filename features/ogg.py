"""Ogg page structure (RFC 3533), read in pure Python: enough to tell a whole Ogg file from a cut one.

An Ogg file is a sequence of pages. Each page starts with the capture pattern ``OggS``, a version
byte (0), header-type flags (1 continued packet, 2 beginning of stream, 4 end of stream), a 64-bit
granule position (for audio: the sample position at the end of the last packet finished on the
page, -1 if none is), the stream serial number, the page sequence number, a CRC-32, and a segment
table whose lacing values sum to the body length.

libsndfile takes an Ogg file's length from the granule position of the last page it finds, so a
file cut short (at a page boundary or inside a page) opens as a shorter, apparently whole file.
:func:`ogg_status` walks the page headers (seeking over the bodies, so a long file costs one small
read per page) and reports whether the file ends exactly at the end of a page and whether every
logical stream ended with an end-of-stream page: a file written to the end always does both.

Checksums are not verified here (libogg does that while decoding); :func:`crc` computes them and
:func:`set_page_fields` edits a page's header with a new checksum.

See :func:`ogg_status` for an example.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["CAPTURE", "FLAG_CONTINUED", "FLAG_BOS", "FLAG_EOS", "OggPage", "OggStatus", "OpusHead", "iter_pages",
           "ogg_status", "opus_head", "crc", "set_page_fields"]

#: Capture pattern at the start of every page.
CAPTURE = b"OggS"
#: Header-type flags.
FLAG_CONTINUED, FLAG_BOS, FLAG_EOS = 1, 2, 4
_HEADER_SIZE = 27
# First bytes of the first packet of a stream -> codec name.
_CODEC_SIGNATURES = ((b"\x01vorbis", "vorbis"), (b"OpusHead", "opus"), (b"\x7fFLAC", "flac"),
                     (b"Speex   ", "speex"))
_RESYNC_CHUNK = 65536


@dataclass(frozen=True)
class OggPage:
    """One page header, as found in the file.

    Attributes
    ----------
    offset : int >= 0
        Byte offset of the page's capture pattern.
    size : int >= 27
        Bytes the page declares (header, segment table and body).
    flags : int
        Header-type flags (:data:`FLAG_CONTINUED`, :data:`FLAG_BOS`, :data:`FLAG_EOS`).
    granule : int
        Granule position; -1 when no packet ends on this page.
    serial : int
        Logical stream serial number.
    sequence : int
        Page sequence number within the stream.
    complete : bool
        False when the file ends before the page does (then ``size`` may be a lower bound).
    """

    offset: int
    size: int
    flags: int
    granule: int
    serial: int
    sequence: int
    complete: bool

    @property
    def end(self) -> int:
        """Byte offset just past the page."""
        return self.offset + self.size

    @property
    def eos(self) -> bool:
        """The page carries the end-of-stream flag."""
        return bool(self.flags & FLAG_EOS)


@dataclass(frozen=True)
class OpusHead:
    """The identification header of an Ogg Opus stream (RFC 7845, section 5.1).

    Attributes
    ----------
    channels : int
        Output channel count.
    pre_skip : int
        Samples at 48 kHz the decoder drops at the start.
    input_sample_rate : int
        The rate the encoder was given (informational: Opus always codes at 48 kHz; 0 if unknown).
    """

    channels: int
    pre_skip: int
    input_sample_rate: int


@dataclass(frozen=True)
class OggStatus:
    """What the page structure of an Ogg file says about its completeness (see :func:`ogg_status`).

    Attributes
    ----------
    size : int
        File size in bytes.
    pages : int
        Pages found (the last one possibly incomplete).
    codec : str
        ``"vorbis"``, ``"opus"``, ``"flac"``, ``"speex"`` or ``"unknown"``: the first stream's codec.
    pre_skip : int
        Opus pre-skip (samples at 48 kHz the decoder drops at the start); 0 for other codecs.
    complete : bool
        The last page found is whole (the file does not end inside a page).
    end_of_stream : bool
        Every logical stream's last page carries the end-of-stream flag.
    last_granule : int
        Granule position of the last whole page of the first stream (-1 if there is none).
    skipped_bytes : int
        Bytes between pages that are not a page (libogg skips them too); a file ending in such
        bytes (a tag appended after the last page) is not cut.
    """

    size: int
    pages: int
    codec: str
    pre_skip: int
    complete: bool
    end_of_stream: bool
    last_granule: int
    skipped_bytes: int

    @property
    def truncated(self) -> bool:
        """True when the file was cut: it ends inside a page, or a stream never ended."""
        return not (self.complete and self.end_of_stream)

    def problem(self) -> str | None:
        """Why the file looks cut, in words, or None when it is whole."""
        if not self.pages:
            return "no Ogg page found"
        if not self.complete:
            return f"the file ends inside an Ogg page (at byte {self.size})"
        if not self.end_of_stream:
            return (f"the last Ogg page (granule position {self.last_granule}) has no end-of-stream flag: "
                    "the stream stops before its end")
        return None


def crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, initial value 0, no final xor.

    Computed over the whole page with the checksum field (bytes 22-25) set to zero.

    Examples
    --------
    >>> import io, numpy as np
    >>> from mirdl.features.audio import write_audio
    >>> buffer = io.BytesIO()
    >>> write_audio(buffer, np.zeros(800, dtype=np.float32), sample_rate=8000, format="OGG", subtype="VORBIS")
    >>> page = bytearray(buffer.getvalue()[:58])  # the first page: 27 + 1 + 30 bytes
    >>> stored = int.from_bytes(page[22:26], "little")
    >>> page[22:26] = bytes(4)
    >>> crc(bytes(page)) == stored
    True
    """
    value = 0
    table = _CRC_TABLE
    for byte in data:
        value = ((value << 8) & 0xFFFFFFFF) ^ table[((value >> 24) ^ byte) & 0xFF]
    return value


def set_page_fields(data: bytearray, page: OggPage, *, flags: int | None = None, granule: int | None = None,
                    serial: int | None = None) -> None:
    """Change header fields of one whole page of ``data`` in place, and recompute its checksum.

    Parameters
    ----------
    data : bytearray
        The file's bytes.
    page : OggPage
        A complete page of ``data`` (from :func:`iter_pages`).
    flags, granule, serial : int or None
        New header-type flags, granule position, stream serial number; None keeps the field.

    Examples
    --------
    >>> import io, numpy as np
    >>> from mirdl.features.audio import write_audio
    >>> buffer = io.BytesIO()
    >>> write_audio(buffer, np.zeros(800, dtype=np.float32), sample_rate=8000, format="OGG", subtype="VORBIS")
    >>> data = bytearray(buffer.getvalue())
    >>> last = list(iter_pages(io.BytesIO(data)))[-1]
    >>> set_page_fields(data, last, flags=last.flags & ~FLAG_EOS)
    >>> list(iter_pages(io.BytesIO(data)))[-1].eos
    False
    """
    start = page.offset
    if flags is not None:
        data[start + 5] = flags & 0xFF
    if granule is not None:
        data[start + 6:start + 14] = int(granule).to_bytes(8, "little", signed=True)
    if serial is not None:
        data[start + 14:start + 18] = (int(serial) & 0xFFFFFFFF).to_bytes(4, "little")
    data[start + 22:start + 26] = bytes(4)
    data[start + 22:start + 26] = crc(bytes(data[start:page.end])).to_bytes(4, "little")


def iter_pages(handle: BinaryIO, *, size: int | None = None) -> Iterator[OggPage]:
    """The pages of an Ogg file open for binary reading, from its current position.

    Bodies are skipped with ``seek``; bytes that are not a page are skipped up to the next capture
    pattern (as libogg does). The last page yielded has ``complete=False`` when the file ends
    inside it; nothing follows such a page.

    Parameters
    ----------
    handle : binary file object
        Seekable; read from ``handle.tell()``.
    size : int or None
        File size in bytes; measured with ``seek`` when None.
    """
    if size is None:
        here = handle.tell()
        size = handle.seek(0, os.SEEK_END)
        handle.seek(here)
    pos = handle.tell()
    while pos < size:
        handle.seek(pos)
        header = handle.read(_HEADER_SIZE)
        if header[:4] != CAPTURE or (len(header) >= 5 and header[4] != 0):
            if CAPTURE.startswith(header[:4]) and len(header) < 4:
                # The file ends inside a capture pattern: a page was cut right at its start.
                yield OggPage(offset=pos, size=_HEADER_SIZE, flags=0, granule=-1, serial=-1, sequence=-1,
                              complete=False)
                return
            found = _next_capture(handle, pos + 1, size)
            if found is None:
                return
            pos = found
            continue
        if len(header) < _HEADER_SIZE:
            yield OggPage(offset=pos, size=_HEADER_SIZE, flags=0, granule=-1, serial=-1, sequence=-1,
                          complete=False)
            return
        flags = header[5]
        granule = int.from_bytes(header[6:14], "little", signed=True)
        serial = int.from_bytes(header[14:18], "little")
        sequence = int.from_bytes(header[18:22], "little")
        n_segments = header[26]
        lacing = handle.read(n_segments)
        page_size = _HEADER_SIZE + n_segments + sum(lacing)
        complete = len(lacing) == n_segments and pos + page_size <= size
        yield OggPage(offset=pos, size=page_size, flags=flags, granule=granule, serial=serial,
                      sequence=sequence, complete=complete)
        if not complete:
            return
        pos += page_size


def ogg_status(path: str | os.PathLike) -> OggStatus:
    """Walk an Ogg file's pages and say whether it is whole.

    Parameters
    ----------
    path : str or os.PathLike
        An Ogg file (Vorbis, Opus, FLAC, Speex; chained or multiplexed streams too).

    Returns
    -------
    status : OggStatus
        ``status.truncated`` is True when the file ends inside a page or a logical stream's last
        page lacks the end-of-stream flag; ``status.problem()`` says which.

    Raises
    ------
    OSError
        If the file cannot be read.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from mirdl.features.audio import write_audio
    >>> path = os.path.join(tempfile.mkdtemp(), "a.ogg")
    >>> write_audio(path, np.zeros(8000, dtype=np.float32), sample_rate=8000, format="OGG", subtype="VORBIS")
    >>> status = ogg_status(path)
    >>> status.codec, status.truncated, status.last_granule
    ('vorbis', False, 8000)
    >>> data = open(path, "rb").read()
    >>> _ = open(path, "wb").write(data[:-10])
    >>> ogg_status(path).problem()
    'the file ends inside an Ogg page (at byte ...)'
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        n_pages, codec, pre_skip, first_serial, last_granule = 0, "unknown", 0, None, -1
        complete = True
        last_flags: dict[int, int] = {}
        accounted = 0
        for page in iter_pages(handle, size=size):
            n_pages += 1
            if not page.complete:
                complete = False
                break
            accounted += page.size
            last_flags[page.serial] = page.flags
            if first_serial is None:
                first_serial = page.serial
                codec, pre_skip = _codec(handle, page)
            if page.serial == first_serial and page.granule >= 0:
                last_granule = page.granule
    return OggStatus(size=size, pages=n_pages, codec=codec, pre_skip=pre_skip, complete=complete,
                     end_of_stream=bool(last_flags) and all(flags & FLAG_EOS for flags in last_flags.values()),
                     last_granule=last_granule,
                     skipped_bytes=0 if not complete else size - accounted)


def opus_head(path: str | os.PathLike) -> OpusHead | None:
    """The OpusHead of an Ogg file whose first stream is Opus, from its first page; None otherwise.

    Reads only the first page (a few dozen bytes), so it is cheap enough to sniff every file.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from mirdl.features.audio import write_audio
    >>> path = os.path.join(tempfile.mkdtemp(), "a.opus")
    >>> write_audio(path, np.zeros(4800, dtype=np.float32), sample_rate=48000, format="OGG", subtype="OPUS")
    >>> opus_head(path)
    OpusHead(channels=1, pre_skip=312, input_sample_rate=48000)
    """
    with open(path, "rb") as handle:
        page = handle.read(_HEADER_SIZE + 255 + 19)
    if len(page) < _HEADER_SIZE or page[:4] != CAPTURE:
        return None
    body = page[_HEADER_SIZE + page[26]:]
    if len(body) < 19 or not body.startswith(b"OpusHead"):
        return None
    return OpusHead(channels=body[9], pre_skip=int.from_bytes(body[10:12], "little"),
                    input_sample_rate=int.from_bytes(body[12:16], "little"))


# --------------------------------------------------------------------------------------------------
# private helpers


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        r = byte << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def _next_capture(handle: BinaryIO, start: int, size: int) -> int | None:
    """Offset of the next capture pattern at or after ``start``, or None before the end of the file."""
    pos = start
    while pos < size:
        handle.seek(pos)
        chunk = handle.read(_RESYNC_CHUNK + len(CAPTURE) - 1)
        at = chunk.find(CAPTURE)
        if at >= 0:
            return pos + at
        pos += _RESYNC_CHUNK
    return None


def _codec(handle: BinaryIO, page: OggPage) -> tuple[str, int]:
    """Codec of the stream beginning on ``page``, and the Opus pre-skip (0 otherwise)."""
    here = handle.tell()
    handle.seek(page.offset + 26)
    n_segments = handle.read(1)[0]
    handle.seek(page.offset + _HEADER_SIZE + n_segments)
    head = handle.read(19)
    handle.seek(here)
    for signature, name in _CODEC_SIGNATURES:
        if head.startswith(signature):
            pre_skip = int.from_bytes(head[10:12], "little") if name == "opus" and len(head) >= 12 else 0
            return name, pre_skip
    return "unknown", 0
