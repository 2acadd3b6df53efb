"""Audio decoding, resampling and channel matching.

Files are decoded with :mod:`soundfile` (libsndfile: WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, AIFF, ...) in
blocks, each block is downmixed and resampled with a streaming :mod:`soxr` resampler, and only output
blocks (target rate, target channels) are kept, so a long file is never held in memory at its native
rate and channel count.

Layout is channels-first, as in librosa: mono is shape ``(n,)``, multichannel ``(channels, n)``; samples
are float32. Every failure to produce usable samples raises :class:`~mirdl.errors.AudioError` naming the
path and the reason; bad arguments raise :class:`~mirdl.errors.ConfigError`.
"""
from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from mirdl.features.checks import choice, integer, non_negative_float, positive_float
from mirdl.errors import AudioError


__all__ = ["AudioInfo", "probe", "load", "iter_blocks", "resample", "to_channels", "check_audio"]

#: soxr quality recipes, lowest to highest: quick, low, medium, high (default), very high.
RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")

# libsndfile shortens a truncated PCM file to the frames present and only says so in its log;
# these lines give the frame count the header declares (W64 and CAF log nothing usable: not covered).
# Each pattern: (regex, group holding the declared count, whether that count is in bytes).
_TRUNCATION_LOG_PATTERNS = (
    # WAV / WAVEX: "data : 44100 (should be 22028)", sizes in bytes.
    (re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE), 1, True),
    # AIFF: "Frame count read from 'COMM' chunk (22050) not equal to ... 'SSND' chunk (11011)."
    (re.compile(r"from 'COMM' chunk \((\d+)\) not equal to frame count\s+"
                r"\*\*\* calculated from length of 'SSND' chunk \((\d+)\)"), 1, False),
    # RF64: "Calculated frame count 10999 does not match value from 'ds64' chunk of 22050."
    (re.compile(r"Calculated frame count (\d+) does not match value from 'ds64' chunk of (\d+)"), 2, False),
)
# Streaming writers leave the WAV data size as a placeholder: that is an unknown length, not truncation.
_UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)
# libsndfile's open error codes, for when its error string comes back empty (it does for OGG).
_OPEN_ERROR_REASONS = {
    1: "format not recognised (not an audio file?)",
    2: "system error while opening",
    3: "malformed file (corrupt or truncated?)",
    4: "unsupported encoding",
}
_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, OSError)


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says, as returned by :func:`probe`.

    Attributes
    ----------
    path : str
        The path as given.
    sample_rate : int > 0
        Native sampling rate in Hz.
    channels : int > 0
        Number of channels.
    frames : int > 0
        Number of sample frames (samples per channel).
    duration : float > 0
        ``frames / sample_rate`` in seconds.
    format : str
        soundfile's major format, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``.
    subtype : str
        soundfile's subtype, e.g. ``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``, ``"MPEG_LAYER_III"``.
    """

    path: str
    sample_rate: int
    channels: int
    frames: int
    duration: float
    format: str
    subtype: str


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read an audio file's header (no samples are decoded).

    A file ``probe`` accepts is one :func:`load` can start decoding: the same checks run (exists, is a
    regular non-empty file, libsndfile recognises it, at least one frame, not truncated according to
    its header). Corruption inside compressed data is only found by decoding.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file.

    Returns
    -------
    info : AudioInfo

    Raises
    ------
    AudioError
        If the file is missing, a directory, empty, not audio, malformed, has no frames, or its header
        declares more frames than the file holds.

    Examples
    --------
    >>> info = probe("tests/data/sine.wav")  # doctest: +SKIP
    >>> info.sample_rate, info.channels, info.subtype  # doctest: +SKIP
    (22050, 1, 'PCM_16')
    """
    with _open(path) as f:
        return AudioInfo(path=os.fspath(path), sample_rate=f.samplerate, channels=f.channels,
                         frames=f.frames, duration=f.frames / f.samplerate, format=f.format,
                         subtype=f.subtype)


def load(path: str | os.PathLike, *, sample_rate: int | None = None, channels: int = 1,
         block_frames: int = 262144, offset: float = 0.0, duration: float | None = None,
         quality: str = "HQ") -> tuple[np.ndarray, int]:
    """Decode an audio file (or an excerpt) to float32 at a target rate and channel count.

    The file is decoded ``block_frames`` frames at a time; each block is downmixed and resampled with a
    streaming soxr resampler, and only the output is stored, in an array preallocated from the header's
    frame count. The result equals a one-shot ``soxr.resample`` of the whole decode.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file in any format libsndfile reads (WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, AIFF, ...).
    sample_rate : int > 0 or None
        Target rate in Hz; ``None`` keeps the file's rate (no resampling).
    channels : int > 0
        1: mean downmix to shape ``(n,)``. ``k > 1``: shape ``(k, n)``; a mono file is duplicated to
        ``k`` channels, a ``k``-channel file is kept, any other channel count is an error.
    block_frames : int > 0
        Frames decoded per block (at the file's rate); bounds the decode memory.
    offset : float >= 0
        Start of the excerpt in seconds (rounded to the nearest frame at the file's rate).
    duration : float > 0 or None
        Length of the excerpt in seconds; ``None`` reads to the end. An excerpt running past the end
        of the file is cut at the end.
    quality : {"QQ", "LQ", "MQ", "HQ", "VHQ"}
        soxr resampling quality; "HQ" (high quality, soxr's default) unless a spec says otherwise.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (channels, n)], float32, finite
        ``n = floor(n_in * sample_rate / file_rate + 0.5)`` where ``n_in`` is the excerpt's frame count
        at the file's rate (the length ``soxr.resample`` gives).
    sr : int
        Rate of ``y``: ``sample_rate``, or the file's rate if ``sample_rate`` is None.

    Raises
    ------
    ConfigError
        If an argument is out of range.
    AudioError
        On any failure to decode usable samples: see :func:`probe`, plus a channel count that cannot be
        matched, an offset past the end, corrupt data, fewer frames decoded than the header declares
        ("truncated: expected N frames, read M") and NaN/Inf samples (float files can hold them).

    Examples
    --------
    >>> y, sr = load("tests/data/stereo_44k.wav", sample_rate=22050)  # doctest: +SKIP
    >>> y.dtype, y.ndim, sr  # doctest: +SKIP
    (dtype('float32'), 1, 22050)
    """
    _check_decode_args(sample_rate=sample_rate, channels=channels, block_frames=block_frames,
                       offset=offset, duration=duration, quality=quality)
    with _open(path) as f:
        start, n_in = _excerpt(f, path=path, offset=offset, duration=duration)
        sr_out = f.samplerate if sample_rate is None else int(sample_rate)
        n_out = _resampled_length(n_in, orig_sr=f.samplerate, target_sr=sr_out)
        y = np.empty((n_out,) if channels == 1 else (channels, n_out), dtype=np.float32)
        pos = 0
        for block in _decode(f, path=path, start=start, n_frames=n_in, sample_rate=sr_out,
                             channels=channels, block_frames=block_frames, quality=quality):
            # block is (m,) or (m, channels); .T puts it channels-first, a mono block broadcasts to
            # every channel when a mono file is duplicated.
            m = min(len(block), n_out - pos)
            y[..., pos:pos + m] = block[:m].T
            pos += m
    return y[..., :pos], sr_out


def iter_blocks(path: str | os.PathLike, *, sample_rate: int | None = None, channels: int = 1,
                block_frames: int = 262144, offset: float = 0.0, duration: float | None = None,
                quality: str = "HQ") -> Iterator[np.ndarray]:
    """Decode an audio file block by block, already resampled and channel-matched.

    Concatenating the blocks along the last axis gives exactly what :func:`load` returns with the same
    arguments. Arguments are checked when this is called; the file is opened, and file errors are
    raised, when iteration starts. The file stays open until the iterator is exhausted or closed.

    Parameters
    ----------
    path, sample_rate, channels, block_frames, offset, duration, quality
        As in :func:`load`.

    Yields
    ------
    block : np.ndarray [shape=(m,) or (channels, m)], float32, finite
        Non-empty output blocks; ``m`` is about ``block_frames * sample_rate / file_rate`` but varies
        with the resampler's delay.

    Raises
    ------
    ConfigError
        If an argument is out of range (at call time).
    AudioError
        As in :func:`load` (during iteration).

    Examples
    --------
    >>> for block in iter_blocks("long.flac", sample_rate=16000):  # doctest: +SKIP
    ...     process(block)
    """
    _check_decode_args(sample_rate=sample_rate, channels=channels, block_frames=block_frames,
                       offset=offset, duration=duration, quality=quality)
    return _iter_blocks(path, sample_rate=sample_rate, channels=channels, block_frames=block_frames,
                        offset=offset, duration=duration, quality=quality)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int, quality: str = "HQ") -> np.ndarray:
    """Resample a signal with soxr.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], floating, finite
        Signal, channels-first.
    orig_sr : int > 0
        Rate of ``y`` in Hz.
    target_sr : int > 0
        Rate wanted in Hz.
    quality : {"QQ", "LQ", "MQ", "HQ", "VHQ"}
        soxr quality recipe; "HQ" by default.

    Returns
    -------
    y_hat : np.ndarray [shape=(m,) or (channels, m)]
        ``m = floor(n * target_sr / orig_sr + 0.5)``; float64 input stays float64, other floats become
        float32. ``y`` itself is returned when the rates are equal.

    Raises
    ------
    ConfigError
        If a rate or the quality is invalid.
    AudioError
        If ``y`` fails :func:`check_audio`.

    Examples
    --------
    >>> y = np.zeros(44100, dtype=np.float32)
    >>> resample(y, orig_sr=44100, target_sr=22050).shape
    (22050,)
    """
    check_audio(y)
    integer(orig_sr, name="orig_sr", minimum=1)
    integer(target_sr, name="target_sr", minimum=1)
    _check_quality(quality)
    if orig_sr == target_sr:
        return y
    if y.dtype != np.float64:
        y = y.astype(np.float32, copy=False)
    # soxr is channels-last.
    y_hat = soxr.resample(y.T, int(orig_sr), int(target_sr), quality=quality)
    return np.ascontiguousarray(y_hat.T)


def to_channels(y: np.ndarray, *, channels: int) -> np.ndarray:
    """Match a signal to a channel count.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (c, n)], floating, finite
        Signal, channels-first.
    channels : int > 0
        1: mean over channels, shape ``(n,)``. ``k > 1``: shape ``(k, n)``; mono input (``(n,)`` or
        ``c == 1``) is duplicated, ``c == k`` is returned unchanged, any other ``c`` is an error.

    Returns
    -------
    y_out : np.ndarray [shape=(n,) or (channels, n)]
        Same dtype as ``y``. ``y`` itself when nothing needs to change.

    Raises
    ------
    ConfigError
        If ``channels`` is not a positive integer.
    AudioError
        If ``y`` fails :func:`check_audio`, or has ``c`` channels with ``1 < c != channels > 1``.

    Examples
    --------
    >>> stereo = np.array([[0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    >>> to_channels(stereo, channels=1)
    array([0.5, 1. ], dtype=float32)
    >>> to_channels(np.zeros(3, dtype=np.float32), channels=2).shape
    (2, 3)
    """
    check_audio(y)
    integer(channels, name="channels", minimum=1)
    n_in = 1 if y.ndim == 1 else y.shape[0]
    _check_channel_match(n_in, channels=channels, what="y")
    if channels == 1:
        return y if y.ndim == 1 else y.mean(axis=0)
    if n_in == 1:
        return np.repeat(y.reshape(1, -1), channels, axis=0)
    return y


def check_audio(y: np.ndarray, *, name: str = "y") -> None:
    """Check that an array is a usable signal: floating, shape (n,) or (c, n), every sample finite.

    Parameters
    ----------
    y : np.ndarray
        Signal to check.
    name : str
        What to call ``y`` in the error message.

    Raises
    ------
    AudioError
        If ``y`` is not a numpy array, not floating-point, not 1-D or 2-D, or holds NaN/Inf (the
        message gives how many and the index of the first).

    Examples
    --------
    >>> check_audio(np.zeros(4, dtype=np.float32))
    >>> check_audio(np.array([0.0, np.nan]))
    Traceback (most recent call last):
    ...
    mirdl.errors.AudioError: y has 1 non-finite sample(s) (NaN/Inf); first at index 1
    """
    if not isinstance(y, np.ndarray):
        raise AudioError(f"{name} must be a numpy.ndarray, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.floating):
        raise AudioError(f"{name} must be floating-point, got dtype={y.dtype}")
    if y.ndim not in (1, 2):
        raise AudioError(f"{name} must have shape (n,) or (channels, n), got shape={y.shape}")
    bad = _nonfinite(y)
    if bad is not None:
        count, first = bad
        first = first[0] if y.ndim == 1 else first
        raise AudioError(f"{name} has {count} non-finite sample(s) (NaN/Inf); first at index {first}")


# --------------------------------------------------------------------------------------------------
# private helpers


def _iter_blocks(path, *, sample_rate, channels, block_frames, offset, duration, quality):
    """Generator behind :func:`iter_blocks` (arguments already checked)."""
    with _open(path) as f:
        start, n_in = _excerpt(f, path=path, offset=offset, duration=duration)
        sr_out = f.samplerate if sample_rate is None else int(sample_rate)
        for block in _decode(f, path=path, start=start, n_frames=n_in, sample_rate=sr_out,
                             channels=channels, block_frames=block_frames, quality=quality):
            if channels == 1:
                yield block
            elif block.ndim == 1:
                yield np.repeat(block.reshape(1, -1), channels, axis=0)
            else:
                yield np.ascontiguousarray(block.T)


def _decode(f: sf.SoundFile, *, path, start: int, n_frames: int, sample_rate: int, channels: int,
            block_frames: int, quality: str) -> Iterator[np.ndarray]:
    """Decode ``n_frames`` frames from ``start``; yield non-empty output blocks channels-last.

    Blocks are ``(m,)`` when the output is mono or the file is mono (duplication to ``channels`` is
    left to the caller, so only one channel is resampled), else ``(m, channels)``.
    """
    _check_channel_match(f.channels, channels=channels, what=os.fspath(path))
    n_resampled = 1 if channels == 1 or f.channels == 1 else channels
    stream = None
    if sample_rate != f.samplerate:
        stream = soxr.ResampleStream(f.samplerate, sample_rate, n_resampled, dtype="float32",
                                     quality=quality)
    done = 0
    try:
        f.seek(start)
        # Not SoundFile.blocks(): it ignores short reads and yields stale buffer contents past the real
        # end of a file whose header overstates its length (seen with truncated MP3).
        while done < n_frames:
            raw = f.read(min(block_frames, n_frames - done), dtype="float32", always_2d=True)
            if len(raw) == 0:
                break
            bad = _nonfinite(raw)
            if bad is not None:
                count, (row, _) = bad
                raise AudioError(
                    f"{os.fspath(path)}: {count} NaN/Inf sample(s) in frames {start + done}.."
                    f"{start + done + len(raw) - 1}; first at frame {start + done + row} "
                    f"({(start + done + row) / f.samplerate:.3f} s)")
            if n_resampled == 1:
                mixed = raw[:, 0] if f.channels == 1 else raw.mean(axis=1)
            else:
                mixed = raw
            done += len(raw)
            out = mixed if stream is None else stream.resample_chunk(mixed, last=done == n_frames)
            if len(out):
                yield out
    except _DECODE_ERRORS as err:
        raise AudioError(f"{os.fspath(path)}: corrupt data, decoding failed in the block from frame "
                         f"{start + done}: {_reason(err)}") from err
    if done < n_frames:
        raise AudioError(f"{os.fspath(path)}: truncated: expected {start + n_frames} frames, "
                         f"read {start + done}")


def _open(path) -> sf.SoundFile:
    """Open ``path`` for reading, turning every failure into an AudioError with the reason."""
    try:
        p = os.fspath(path)
    except TypeError as err:
        raise AudioError(f"path must be a str or os.PathLike, got {type(path).__name__}") from err
    try:
        st = os.stat(p)
    except FileNotFoundError as err:
        raise AudioError(f"{p}: file not found") from err
    except OSError as err:
        raise AudioError(f"{p}: cannot access file: {err.strerror or err}") from err
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{p}: is a directory, not an audio file")
    if st.st_size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    try:
        f = sf.SoundFile(p)
    except _DECODE_ERRORS as err:
        raise AudioError(f"{p}: cannot open as audio: {_reason(err)}") from err
    try:
        if f.frames <= 0:
            raise AudioError(f"{p}: no samples (0 frames)")
        declared = _declared_frames(f.extra_info)
        if declared is not None and declared > f.frames:
            raise AudioError(f"{p}: truncated: expected {declared} frames, read {f.frames}")
    except BaseException:
        f.close()
        raise
    return f


def _declared_frames(log: str) -> int | None:
    """Frame count a header declares, when libsndfile's log says the file holds a different amount."""
    for pattern, declared_group, in_bytes in _TRUNCATION_LOG_PATTERNS:
        match = pattern.search(log)
        if match is None:
            continue
        declared = int(match.group(declared_group))
        if in_bytes:
            if declared in _UNKNOWN_DATA_SIZES:
                return None
            block_align = re.search(r"Block Align\s*:\s*(\d+)", log)
            if block_align is None or int(block_align.group(1)) <= 0:
                return None
            return declared // int(block_align.group(1))
        return declared
    return None


def _excerpt(f: sf.SoundFile, *, path, offset: float, duration: float | None) -> tuple[int, int]:
    """First frame and frame count of the excerpt, at the file's rate, cut at the end of the file."""
    start = int(round(offset * f.samplerate))
    if start >= f.frames:
        raise AudioError(f"{os.fspath(path)}: offset={offset} s is at or past the end of the file "
                         f"({f.frames / f.samplerate:.3f} s)")
    n_frames = f.frames - start
    if duration is not None:
        n_frames = min(n_frames, max(1, int(round(duration * f.samplerate))))
    return start, n_frames


def _resampled_length(n: int, *, orig_sr: int, target_sr: int) -> int:
    """Samples soxr produces for ``n`` input samples: ``floor(n * target_sr / orig_sr + 0.5)``."""
    return (2 * n * target_sr + orig_sr) // (2 * orig_sr)


def _nonfinite(y: np.ndarray) -> tuple[int, tuple[int, ...]] | None:
    """``(count, index of the first)`` of the non-finite values of ``y``, or None if all are finite."""
    finite = np.isfinite(y)
    if finite.all():
        return None
    flat_bad = np.flatnonzero(~finite)
    first = tuple(int(i) for i in np.unravel_index(flat_bad[0], y.shape))
    return len(flat_bad), first


def _reason(err: BaseException) -> str:
    """A readable reason from a soundfile/libsndfile exception."""
    if isinstance(err, sf.LibsndfileError):
        text = (err.error_string or "").strip()
        if text and text.lower() != "no error.":
            return text
        return _OPEN_ERROR_REASONS.get(err.code, f"libsndfile error code {err.code}")
    return str(err) or type(err).__name__


def _check_channel_match(n_in: int, *, channels: int, what: str) -> None:
    """Raise unless ``n_in`` channels can become ``channels`` (downmix, duplicate mono, or keep)."""
    if channels != 1 and n_in not in (1, channels):
        raise AudioError(f"{what} has {n_in} channels; spec expects {channels}")


def _check_quality(quality) -> None:
    choice(quality, name="quality", options=RESAMPLE_QUALITIES)


def _check_decode_args(*, sample_rate, channels, block_frames, offset, duration, quality) -> None:
    """Validate :func:`load` / :func:`iter_blocks` arguments once, before any I/O."""
    if sample_rate is not None:
        integer(sample_rate, name="sample_rate", minimum=1)
    integer(channels, name="channels", minimum=1)
    integer(block_frames, name="block_frames", minimum=1)
    non_negative_float(offset, name="offset")  # seconds
    if duration is not None:
        positive_float(duration, name="duration")  # seconds
    _check_quality(quality)
