"""Base-128 varints as protobuf (TFRecord's ``tf.train.Example``) and Thrift's compact protocol
(Parquet page headers) both encode unsigned integers: seven bits a byte, least significant first."""
from __future__ import annotations


def read_varint(buf, pos: int, *, error: type[Exception] = ValueError) -> tuple[int, int]:
    """The unsigned varint at ``buf[pos]`` and the position after it.

    Parameters
    ----------
    buf : bytes-like
        Indexable bytes (``bytes``, ``memoryview``).
    pos : int
        Where the varint starts.
    error : type of Exception
        Raised (with the reason) for a varint cut by the end of ``buf`` or longer than 10 bytes.

    Returns
    -------
    tuple of (int, int)
        The value and the position of the byte after it.

    >>> read_varint(b"\\xac\\x02", 0)
    (300, 2)
    """
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise error("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
