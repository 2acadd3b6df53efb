"""Audio decoding, resampling, channel matching and block-wise writing.

Decoders
--------
Each file goes to one decoder, chosen by its extension (:data:`DECODERS`, :func:`decoder_for`):

``soundfile``
    libsndfile through :mod:`soundfile`: WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, AIFF, CAF, W64, RF64.
    The reference decoder: FFmpeg's own Opus and Vorbis decoders differ from libopus/libvorbis, so
    everything libsndfile opens stays here.
``pyav``
    FFmpeg through PyAV (``av``), for what libsndfile cannot open: AAC/ALAC in MP4/M4A, raw ADTS
    AAC, WMA, WebM/Matroska audio. PyAV is imported only when such a file is opened; without it,
    those files fail with an :class:`~mirdl.errors.AudioError` saying so.

A file with an extension no decoder claims goes to libsndfile, which looks at its content.
:data:`AUDIO_EXTENSIONS` (every decoder's extensions) is what a corpus lists by default, so a
decoder added here extends the listing too.

Both decoders stream: the file is read in blocks, each block is downmixed and resampled with a
streaming :mod:`soxr` resampler, and only output blocks (target rate, target channels) are kept,
so a long file is never held in memory at its native rate and channel count.

Lengths and truncation
----------------------
WAV, AIFF and RF64 declare their length in the header; libsndfile quietly shortens a truncated file
to the frames present, so its log is read for the declared count. FLAC and MP3 are checked by
decoding to the declared count. Ogg lengths come from granule positions, which encoders do not
always set exactly: a cut Ogg file is recognised from its page structure instead
(:func:`mirdl.features.ogg.ogg_status`: the file must end with a whole page, and every stream
with an end-of-stream page), and a decode that falls short of the header by at most
:data:`LENGTH_TOLERANCE_SECONDS` is accepted with a warning. The same tolerance applies to the
lengths MP4/M4A and ASF (WMA) containers declare; other PyAV containers (ADTS, Matroska) declare
no reliable length and are decoded to their end. MP4/M4A: FFmpeg drops the encoder's priming
samples (the edit list); the decode stops at the declared length, dropping the end padding. Raw
ADTS ``.aac`` files carry neither, so their first 1024-2112 samples are the encoder's delay.

Warnings (decoded, but the length differs from the header within the tolerance) come back in
:attr:`DecodeResult.warnings` from :func:`decode`; :func:`load` and :func:`iter_blocks` issue them as
:class:`AudioWarning` with :func:`warnings.warn`.

Layout is channels-first, as in librosa: mono is shape ``(n,)``, multichannel ``(channels, n)``; samples
are float32. Every failure to produce usable samples raises :class:`~mirdl.errors.AudioError` naming the
path and the reason; bad arguments raise :class:`~mirdl.errors.ConfigError`.

Compressed audio is written with :func:`write_audio`, in blocks of :data:`WRITE_BLOCK_FRAMES`:
libsndfile's Ogg encoders overflow the stack when a long signal is written in one call
(python-soundfile #233/#426, libsndfile #1095).
"""
from __future__ import annotations

import abc
import importlib.util
import os
import re
import stat
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from mirdl.errors import AudioError, ConfigError
from mirdl.features import ogg
from mirdl.features.checks import choice, integer, non_negative_float, positive_float


__all__ = [
    "LENGTH_TOLERANCE_SECONDS",
    "WRITE_BLOCK_FRAMES",
    "RESAMPLE_QUALITIES",
    "DECODER_MODES",
    "OPUS_FAST_BOUND_DB",
    "AudioWarning",
    "Decoder",
    "DECODERS",
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "DecodeResult",
    "decoder_for",
    "decoder_versions",
    "probe",
    "decode",
    "load",
    "iter_blocks",
    "write_audio",
    "resample",
    "to_channels",
    "check_audio",
]

#: soxr quality recipes, lowest to highest: quick, low, medium, high (default), very high.
RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")

#: Largest shortfall (seconds) of the decoded length against the declared one that is accepted, with a
#: warning, for lengths that are not exact: Ogg granule positions (a valid Opus file can declare 10
#: frames more than it decodes, a valid Vorbis file 0.13 s more) and MP4/M4A/WMA containers. Beyond it
#: the file is "truncated" (an AudioError). Cut Ogg files are recognised from their pages whatever the
#: lengths say; WAV, AIFF, FLAC and MP3 lengths are checked exactly.
LENGTH_TOLERANCE_SECONDS = 0.5

#: What ``decoder=`` (and a prepare config's ``audio.decoder``) may say. ``"reference"``: every file
#: libsndfile opens goes to libsndfile (libopus for Opus). ``"fast"``: Ogg Opus streams that libsndfile
#: would decode at 48 kHz go to FFmpeg's own Opus decoder through PyAV (``pyav_opus``, about twice as
#: fast; its samples differ from libopus's within :data:`OPUS_FAST_BOUND_DB` on log-mel); every other
#: file is decoded as with ``"reference"``.
DECODER_MODES = ("fast", "reference")

#: Stated bound on ``|log-mel dB (fast) - log-mel dB (reference)|`` for Ogg Opus files (22.05 kHz,
#: n_fft 2048, hop 512, 128 mels): ``mean`` over the bins of a file, ``p999`` its 99.9th percentile,
#: ``max`` over any bin. Measured (benchmarks/measure_opus_decoders.py, README "Faster Opus decoding")
#: on 36 files of synthetic music, 30 s stereo, encoded by libopus at 63, 264 and 514 kb/s: worst file
#: mean 0.010 dB, p99.9 0.97 dB, max 4.9 dB (all at 63 kb/s; at 264 kb/s and above max 0.10 dB);
#: the bound is about twice that. Recorded in a store's ``provenance.decode``.
OPUS_FAST_BOUND_DB = {"mean": 0.02, "p999": 2.0, "max": 10.0}

# libsndfile decodes an Opus stream at its header's input rate when libopus can (these rates), else at
# 48 kHz; FFmpeg's decoder always gives 48 kHz, so only the 48 kHz case can take the fast path.
_OPUS_LOWER_RATES = (8000, 12000, 16000, 24000)
_OGG_EXTENSIONS = ("opus", "ogg", "oga")

#: Frames per ``write`` call of :func:`write_audio`.
WRITE_BLOCK_FRAMES = 65536

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
_SOUNDFILE_ERRORS = (sf.SoundFileError, RuntimeError, OSError)
# PyAV containers whose declared stream duration is used as the length (FFmpeg's demuxer names):
# MP4/M4A store the exact sample count, ASF (WMA) milliseconds. ADTS durations are guesses from the
# bit rate and Matroska gives none per stream: those files are decoded to their end, unchecked.
_PYAV_DECLARED_LENGTH = ("mov,mp4,m4a,3gp,3g2,mj2", "asf")


class AudioWarning(UserWarning):
    """A file decoded, but something about it is worth knowing (its length differs from its header)."""


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
    frames : int > 0 or None
        Number of sample frames (samples per channel) the file declares; None when its container
        declares none (raw ADTS AAC, Matroska/WebM): only decoding tells.
    duration : float > 0 or None
        ``frames / sample_rate`` in seconds (None with ``frames``).
    format : str
        Container, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"`` (soundfile's major format),
        ``"MOV"`` (MP4/M4A), ``"ASF"`` (WMA), ``"AAC"`` (ADTS).
    subtype : str
        Encoding, e.g. ``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``, ``"MPEG_LAYER_III"`` (soundfile's
        subtype), ``"AAC"``, ``"ALAC"``, ``"WMAV2"`` (FFmpeg's codec name).
    decoder : str
        Name of the decoder in :data:`DECODERS` that read the file.
    """

    path: str
    sample_rate: int
    channels: int
    frames: int | None
    duration: float | None
    format: str
    subtype: str
    decoder: str


@dataclass(frozen=True, eq=False)
class DecodeResult:
    """What :func:`decode` returns.

    Attributes
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], float32, finite
        The samples, as :func:`load` returns them.
    sample_rate : int
        Rate of ``y`` in Hz.
    decoder : str
        Name of the decoder in :data:`DECODERS` that read the file (its version:
        :func:`decoder_versions`).
    warnings : tuple of str
        One message per thing worth knowing that did not stop the decode (the decoded length is
        short of the declared one by at most :data:`LENGTH_TOLERANCE_SECONDS`); each names the path.
    """

    y: np.ndarray
    sample_rate: int
    decoder: str
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# public functions


def decoder_for(path: str | os.PathLike, *, mode: str = "reference") -> Decoder:
    """The decoder :func:`load` uses for ``path``, from its extension (case-insensitive).

    Extensions no decoder claims go to ``soundfile`` (libsndfile recognises formats by content).
    With ``mode="fast"``, an existing ``.opus``/``.ogg``/``.oga`` file whose first stream is Opus
    (decoded at 48 kHz by libsndfile) goes to ``pyav_opus`` (:data:`DECODER_MODES`).

    Examples
    --------
    >>> decoder_for("a/b.FLAC").name, decoder_for("song.m4a").name, decoder_for("noext").name
    ('soundfile', 'pyav', 'soundfile')
    """
    choice(mode, name="decoder", options=DECODER_MODES)
    extension = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if mode == "fast" and extension in _OGG_EXTENSIONS:
        try:
            head = ogg.opus_head(path)
        except OSError:
            head = None  # the reference decoder's open reports it
        if head is not None and head.input_sample_rate not in _OPUS_LOWER_RATES:
            return DECODERS["pyav_opus"]
    return _DECODER_FOR_EXTENSION.get(extension, DECODERS["soundfile"])


def decoder_versions(names: Iterable[str] | None = None) -> dict[str, str | None]:
    """Each decoder's library version, for provenance; None for a decoder that is not installed.

    Parameters
    ----------
    names : iterable of str, optional
        Decoders (keys of :data:`DECODERS`) to report, e.g. those a job used; default all. A
        PyAV decoder's version imports PyAV (~0.1 s): a job whose files all go to libsndfile
        asks for ``["soundfile"]`` and does not pay it.

    Examples
    --------
    >>> versions = decoder_versions()
    >>> sorted(versions), versions["soundfile"].startswith("soundfile ")
    (['pyav', 'pyav_opus', 'soundfile'], True)
    >>> list(decoder_versions(["soundfile"]))
    ['soundfile']
    """
    chosen = list(DECODERS) if names is None else sorted(set(names))
    unknown = [name for name in chosen if name not in DECODERS]
    if unknown:
        raise ValueError(f"names={unknown!r}: not decoders (known: {sorted(DECODERS)})")
    return {name: DECODERS[name].version() for name in chosen}


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read an audio file's header (no samples are decoded).

    A file ``probe`` accepts is one :func:`load` can start decoding: the same checks run (exists, is a
    regular non-empty file, its decoder recognises it, at least one frame, not truncated according to
    its header or, for Ogg, its page structure). Corruption inside compressed data is only found by
    decoding.

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
        If the file is missing, a directory, empty, not audio, malformed, has no frames, its header
        declares more frames than the file holds, or it is an Ogg file cut short.

    Examples
    --------
    >>> info = probe("tests/data/sine.wav")  # doctest: +SKIP
    >>> info.sample_rate, info.channels, info.subtype, info.decoder  # doctest: +SKIP
    (22050, 1, 'PCM_16', 'soundfile')
    """
    with _open(path) as source:
        return AudioInfo(path=os.fspath(path), sample_rate=source.samplerate, channels=source.channels,
                         frames=source.frames,
                         duration=None if source.frames is None else source.frames / source.samplerate,
                         format=source.format, subtype=source.subtype, decoder=source.decoder)


def decode(path: str | os.PathLike, *, sample_rate: int | None = None, channels: int = 1,
           block_frames: int = 262144, offset: float = 0.0, duration: float | None = None,
           quality: str = "HQ", decoder: str = "reference") -> DecodeResult:
    """Decode an audio file like :func:`load`, and say which decoder read it and what to know about it.

    Parameters
    ----------
    path, sample_rate, channels, block_frames, offset, duration, quality, decoder
        As in :func:`load`.

    Returns
    -------
    result : DecodeResult
        ``y`` and ``sample_rate`` as :func:`load` returns them, the decoder's name and the
        warnings (as strings; nothing is issued with :mod:`warnings`).

    Raises
    ------
    ConfigError, AudioError
        As in :func:`load`.

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.flac")
    >>> write_audio(path, np.zeros(4410, dtype=np.float32), sample_rate=44100)
    >>> result = decode(path, sample_rate=22050)
    >>> result.y.shape, result.sample_rate, result.decoder, result.warnings
    ((2205,), 22050, 'soundfile', ())
    """
    _check_decode_args(sample_rate=sample_rate, channels=channels, block_frames=block_frames,
                       offset=offset, duration=duration, quality=quality, decoder=decoder)
    notes: list[str] = []
    with _open(path, mode=decoder) as source:
        start, n_in = _excerpt(source, path=path, offset=offset, duration=duration)
        sr_out = source.samplerate if sample_rate is None else int(sample_rate)
        blocks = _decode(source, path=path, start=start, n_frames=n_in, sample_rate=sr_out, channels=channels,
                         block_frames=block_frames, quality=quality, notes=notes)
        if n_in is None:
            # No declared length: keep the blocks and join them once at the end.
            parts = [block.T for block in blocks]
            shape = (0,) if channels == 1 else (channels, 0)
            y = np.concatenate(parts, axis=-1) if parts else np.empty(shape, dtype=np.float32)
            if channels > 1 and y.ndim == 1:
                y = np.repeat(y.reshape(1, -1), channels, axis=0)
        else:
            n_out = _resampled_length(n_in, orig_sr=source.samplerate, target_sr=sr_out)
            y = np.empty((n_out,) if channels == 1 else (channels, n_out), dtype=np.float32)
            pos = 0
            for block in blocks:
                # block is (m,) or (m, channels); .T puts it channels-first, a mono block broadcasts to
                # every channel when a mono file is duplicated.
                m = min(len(block), n_out - pos)
                y[..., pos:pos + m] = block[:m].T
                pos += m
            y = y[..., :pos]
    return DecodeResult(y=y, sample_rate=sr_out, decoder=source.decoder, warnings=tuple(notes))


def load(path: str | os.PathLike, *, sample_rate: int | None = None, channels: int = 1,
         block_frames: int = 262144, offset: float = 0.0, duration: float | None = None,
         quality: str = "HQ", decoder: str = "reference") -> tuple[np.ndarray, int]:
    """Decode an audio file (or an excerpt) to float32 at a target rate and channel count.

    The file is decoded ``block_frames`` frames at a time by its decoder (:func:`decoder_for`); each
    block is downmixed and resampled with a streaming soxr resampler, and only the output is stored,
    in an array preallocated from the header's frame count. The result equals a one-shot
    ``soxr.resample`` of the whole decode.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file in any format a decoder reads (:data:`AUDIO_EXTENSIONS`).
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
    decoder : {"reference", "fast"}
        ``"reference"``: libsndfile for everything it opens. ``"fast"``: Ogg Opus through FFmpeg's
        own Opus decoder (:data:`DECODER_MODES`, within :data:`OPUS_FAST_BOUND_DB` of the reference).

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
        ("truncated: expected N frames, read M"; beyond :data:`LENGTH_TOLERANCE_SECONDS` for Ogg and
        PyAV containers) and NaN/Inf samples (float files can hold them).

    Warns
    -----
    AudioWarning
        The warnings of :func:`decode`.

    Examples
    --------
    >>> y, sr = load("tests/data/stereo_44k.wav", sample_rate=22050)  # doctest: +SKIP
    >>> y.dtype, y.ndim, sr  # doctest: +SKIP
    (dtype('float32'), 1, 22050)
    """
    result = decode(path, sample_rate=sample_rate, channels=channels, block_frames=block_frames, offset=offset,
                    duration=duration, quality=quality, decoder=decoder)
    for message in result.warnings:
        warnings.warn(message, AudioWarning, stacklevel=2)
    return result.y, result.sample_rate


def iter_blocks(path: str | os.PathLike, *, sample_rate: int | None = None, channels: int = 1,
                block_frames: int = 262144, offset: float = 0.0, duration: float | None = None,
                quality: str = "HQ", decoder: str = "reference") -> Iterator[np.ndarray]:
    """Decode an audio file block by block, already resampled and channel-matched.

    Concatenating the blocks along the last axis gives exactly what :func:`load` returns with the same
    arguments. Arguments are checked when this is called; the file is opened, and file errors are
    raised, when iteration starts. The file stays open until the iterator is exhausted or closed.

    Parameters
    ----------
    path, sample_rate, channels, block_frames, offset, duration, quality, decoder
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

    Warns
    -----
    AudioWarning
        As :func:`load`, when the last block has been read.

    Examples
    --------
    >>> for block in iter_blocks("long.flac", sample_rate=16000):  # doctest: +SKIP
    ...     process(block)
    """
    _check_decode_args(sample_rate=sample_rate, channels=channels, block_frames=block_frames,
                       offset=offset, duration=duration, quality=quality, decoder=decoder)
    return _iter_blocks(path, sample_rate=sample_rate, channels=channels, block_frames=block_frames,
                        offset=offset, duration=duration, quality=quality, decoder=decoder)


def write_audio(file: str | os.PathLike | BinaryIO, y: np.ndarray, *, sample_rate: int,
                format: str | None = None, subtype: str | None = None,
                block_frames: int = WRITE_BLOCK_FRAMES) -> None:
    """Write a signal with soundfile, ``block_frames`` frames per call.

    Use this rather than ``soundfile.write`` for anything compressed: libsndfile's Ogg Vorbis/Opus
    encoders overflow the stack (a segfault, not an exception) when a long signal (about a minute of
    44.1 kHz stereo) is written in one call. Block writes make identical WAV and FLAC files; Vorbis
    output depends on how the samples are handed to the encoder, so it is reproducible for the
    same ``block_frames``.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        Destination; a file object needs ``format``.
    y : np.ndarray [shape=(n,) or (channels, n)], floating
        Signal, channels-first (not checked for finiteness: a float WAV may hold NaN on purpose).
    sample_rate : int > 0
        Rate in Hz.
    format, subtype : str or None
        soundfile's major format and subtype (``"OGG"``, ``"VORBIS"``); None: from the file name /
        libsndfile's default subtype.
    block_frames : int > 0
        Frames per write call.

    Raises
    ------
    ConfigError
        If an argument is invalid (including a format/subtype pair libsndfile does not write).
    AudioError
        If libsndfile fails to write the file.

    Examples
    --------
    >>> import io
    >>> buffer = io.BytesIO()
    >>> write_audio(buffer, np.zeros((2, 48000), dtype=np.float32), sample_rate=48000, format="OGG",
    ...             subtype="VORBIS")
    >>> _ = buffer.seek(0)
    >>> probe_frames = sf.info(buffer).frames
    >>> probe_frames
    48000
    """
    integer(sample_rate, name="sample_rate", minimum=1)
    integer(block_frames, name="block_frames", minimum=1)
    if not isinstance(y, np.ndarray) or y.ndim not in (1, 2) or not np.issubdtype(y.dtype, np.floating):
        raise ConfigError(f"y must be a floating numpy array of shape (n,) or (channels, n), got "
                          f"{type(y).__name__} {getattr(y, 'shape', '')}")
    frames = y.reshape(-1, 1) if y.ndim == 1 else y.T
    where = os.fspath(file) if isinstance(file, (str, os.PathLike)) else "<file object>"
    try:
        handle = sf.SoundFile(file, "w", samplerate=int(sample_rate), channels=frames.shape[1], format=format,
                              subtype=subtype)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"format={format!r}, subtype={subtype!r}: {err}") from err
    except _SOUNDFILE_ERRORS as err:
        raise AudioError(f"{where}: cannot write audio: {_reason(err)}") from err
    with handle:
        try:
            for begin in range(0, len(frames), block_frames):
                handle.write(frames[begin:begin + block_frames])
        except _SOUNDFILE_ERRORS as err:
            raise AudioError(f"{where}: cannot write audio: {_reason(err)}") from err


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
# decoders: one source class per library, all with the same small interface


class _ReadError(Exception):
    """A decoder library failed while reading samples; the message is its reason."""


class _Source(abc.ABC):
    """An open audio file, read as float32 frames ``(m, channels)``.

    Subclasses set ``samplerate``, ``channels``, ``frames`` (declared; None when unknown), ``format``,
    ``subtype`` and ``tolerance`` (frames a decode may fall short of ``frames`` with a warning).
    """

    decoder = ""
    samplerate: int
    channels: int
    frames: int | None
    format: str
    subtype: str
    tolerance = 0

    @abc.abstractmethod
    def seek(self, frame: int) -> int:
        """Go to ``frame`` (from the start); return the frame reached (less at the end of the file)."""

    @abc.abstractmethod
    def read(self, n: int) -> np.ndarray:
        """Up to ``n`` frames, shape ``(m, channels)``, float32; ``m == 0`` at the end. Raises _ReadError."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _SoundFileSource(_Source):
    """libsndfile, with its header checks: truncated PCM from its log, cut Ogg files from their pages."""

    decoder = "soundfile"

    def __init__(self, path: str) -> None:
        is_ogg = _starts_with(path, ogg.CAPTURE)
        if is_ogg:
            # Before libsndfile: it opens a cut Ogg file as a shorter whole one (or calls it malformed).
            _whole_ogg(path)
        try:
            self._file = sf.SoundFile(path)
        except _SOUNDFILE_ERRORS as err:
            raise AudioError(f"{path}: cannot open as audio: {_reason(err)}") from err
        f = self._file
        try:
            if f.frames <= 0:
                raise AudioError(f"{path}: no samples (0 frames)")
            declared = _declared_frames(f.extra_info)
            if declared is not None and declared > f.frames:
                raise AudioError(f"{path}: truncated: expected {declared} frames, read {f.frames}")
        except BaseException:
            f.close()
            raise
        self.samplerate, self.channels, self.frames = f.samplerate, f.channels, f.frames
        self.format, self.subtype = f.format, f.subtype
        if is_ogg:
            self.tolerance = int(round(LENGTH_TOLERANCE_SECONDS * f.samplerate))

    def seek(self, frame: int) -> int:
        try:
            return self._file.seek(frame)
        except _SOUNDFILE_ERRORS as err:
            raise _ReadError(_reason(err)) from err

    def read(self, n: int) -> np.ndarray:
        try:
            return self._file.read(n, dtype="float32", always_2d=True)
        except _SOUNDFILE_ERRORS as err:
            raise _ReadError(_reason(err)) from err

    def close(self) -> None:
        self._file.close()


class _PyAVSource(_Source):
    """FFmpeg through PyAV: the first audio stream, converted to packed float32 by libswresample."""

    decoder = "pyav"
    #: FFmpeg decoder to use by name; None: the one FFmpeg picks for the stream's codec.
    codec: str | None = None

    def __init__(self, path: str) -> None:
        try:
            import av
        except ImportError as err:
            extension = os.path.splitext(path)[1] or "these"
            raise AudioError(f"{path}: needs PyAV to decode {extension} files, and it is not installed "
                             "(pip install av)") from err
        self._errors = (av.error.FFmpegError, OSError, ValueError)
        try:
            self._container = av.open(path, metadata_errors="ignore")
        except self._errors as err:
            raise AudioError(f"{path}: cannot open as audio: {_av_reason(err)}") from err
        try:
            streams = self._container.streams.audio
            if not streams:
                raise AudioError(f"{path}: no audio stream (container {self._container.format.name})")
            stream = streams[0]
            context = stream.codec_context
            if self.codec is not None and context.name != self.codec:
                extradata = context.extradata
                context = av.codec.CodecContext.create(self.codec, "r")
                context.extradata = extradata
            self._context = context
            self.samplerate, self.channels = int(context.sample_rate or 0), int(context.channels or 0)
            if self.samplerate <= 0 or self.channels <= 0:
                raise AudioError(f"{path}: the audio stream has no sample rate or channel count")
            self.format = self._container.format.name.split(",")[0].upper()
            self.subtype = context.name.upper()
            self.frames = None
            if (self._container.format.name in _PYAV_DECLARED_LENGTH and stream.duration
                    and stream.time_base):
                self.frames = int(round(stream.duration * stream.time_base * self.samplerate))
                if self.frames <= 0:
                    raise AudioError(f"{path}: no samples (0 frames)")
                self.tolerance = int(round(LENGTH_TOLERANCE_SECONDS * self.samplerate))
            self._packets = self._container.demux(stream)
            self._resampler = av.AudioResampler(format="flt")
            self._path = path
            self._decoded = 0  # frames converted so far
            try:
                self._next_packet = self._demux()  # one packet ahead: an error in the last one means a cut file
            except _ReadError as err:
                raise AudioError(f"{path}: cannot read audio: {err}") from err
        except BaseException:
            self._container.close()
            raise
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._ended = False

    def seek(self, frame: int) -> int:
        # Exact, by decoding from the start (compressed streams have no sample-exact seek).
        reached = 0
        while reached < frame:
            block = self.read(min(frame - reached, 262144))
            if not len(block):
                break
            reached += len(block)
        return reached

    def read(self, n: int) -> np.ndarray:
        while self._n_pending < n and not self._ended:
            for part in self._convert(self._decode_packet()):
                samples = part.to_ndarray()
                if samples.size % self.channels or len(part.layout.channels) != self.channels:
                    raise _ReadError(f"the channel count changes from {self.channels} to "
                                     f"{len(part.layout.channels)}")
                if samples.size:
                    self._pending.append(samples.reshape(-1, self.channels))
                    self._n_pending += samples.size // self.channels
                    self._decoded += samples.size // self.channels
        pending = (np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]) \
            if self._pending else np.empty((0, self.channels), dtype=np.float32)
        out, rest = pending[:n], pending[n:]
        self._pending, self._n_pending = ([rest] if len(rest) else []), len(rest)
        return out

    def close(self) -> None:
        self._container.close()

    def _demux(self) -> Any:
        try:
            return next(self._packets, None)
        except self._errors as err:
            raise _ReadError(_av_reason(err)) from err

    def _decode_packet(self) -> list | None:
        """The frames of the next packet; None at the end of the stream (after the decoder's flush)."""
        packet = self._next_packet
        if packet is None:
            return None
        self._next_packet = self._demux()
        # PyAV's demuxer ends with an empty packet that flushes the decoder.
        last = packet.size > 0 and (self._next_packet is None or self._next_packet.size == 0)
        try:
            frames = self._context.decode(packet if packet.size > 0 else None)
        except self._errors as err:
            if last:
                raise self._cut(_av_reason(err)) from err
            raise _ReadError(_av_reason(err)) from err
        if last and packet.is_corrupt:  # the demuxer read less than the packet's size
            raise self._cut("the last packet is incomplete")
        return frames

    def _convert(self, frames: list | None) -> list:
        """Packed float32 frames; with None, flush the converter and mark the end."""
        try:
            if frames is None:
                self._ended = True
                return self._resampler.resample(None)
            for frame in frames:
                if frame.sample_rate != self.samplerate:
                    raise _ReadError(f"the sample rate changes from {self.samplerate} to {frame.sample_rate} Hz")
            return [part for frame in frames for part in self._resampler.resample(frame)]
        except self._errors as err:
            raise _ReadError(_av_reason(err)) from err

    def _cut(self, reason: str) -> AudioError:
        declared = "" if self.frames is None else f" of the {self.frames} declared"
        return AudioError(f"{self._path}: truncated: the file ends inside its last packet, after {self._decoded} "
                          f"frames{declared} ({reason})")


class _PyAVOpusSource(_PyAVSource):
    """Ogg Opus through FFmpeg's own Opus decoder (not libopus), with libsndfile's length and cut-file checks.

    FFmpeg's Ogg demuxer marks the OpusHead pre-skip and the end trimming of the last page's granule
    position on the packets, and the decoder drops those samples: the output starts and ends on the
    same samples as libsndfile's (tests/features/test_opus_fast.py checks the alignment).
    """

    decoder = "pyav_opus"
    codec = "opus"

    def __init__(self, path: str) -> None:
        status = _whole_ogg(path)
        super().__init__(path)
        try:
            if self.samplerate != 48000:
                raise AudioError(f"{path}: FFmpeg's Opus decoder gave {self.samplerate} Hz, not 48000")
            # libsndfile's length: the last granule position less the pre-skip (both at 48 kHz).
            self.frames = status.last_granule - status.pre_skip
            if self.frames <= 0:
                raise AudioError(f"{path}: no samples (0 frames)")
            self.format, self.subtype = "OGG", "OPUS"
            self.tolerance = int(round(LENGTH_TOLERANCE_SECONDS * self.samplerate))
        except BaseException:
            self._container.close()
            raise


@dataclass(frozen=True)
class Decoder:
    """A decoding library and the file extensions it reads (an entry of :data:`DECODERS`).

    Attributes
    ----------
    name : str
        Registry key (``"soundfile"``, ``"pyav"``).
    module : str
        The Python module it needs.
    extensions : tuple of str
        Lower-case extensions without the dot.
    """

    name: str
    module: str
    extensions: tuple[str, ...]
    source: type[_Source] = field(repr=False, compare=False)

    def available(self) -> bool:
        """True when the module can be imported."""
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str | None:
        """Library versions (``"soundfile 0.13.1 (libsndfile 1.2.2)"``), or None when not installed."""
        if not self.available():
            return None
        if self.module == "soundfile":
            return f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__})"
        module = importlib.import_module(self.module)
        ffmpeg = getattr(module, "ffmpeg_version_info", None)
        return f"{self.module} {module.__version__}" + (f" (FFmpeg {ffmpeg})" if ffmpeg else "")

    def open(self, path: str) -> _Source:
        """Open ``path`` for reading (an existing, non-empty regular file); AudioError on failure."""
        return self.source(path)


#: Decoders by name, in order of preference: an extension belongs to the first one that lists it.
DECODERS = {
    "soundfile": Decoder(name="soundfile", module="soundfile", source=_SoundFileSource,
                         extensions=("wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "aifc",
                                     "caf", "w64", "rf64")),
    "pyav": Decoder(name="pyav", module="av", source=_PyAVSource,
                    extensions=("m4a", "m4b", "mp4", "aac", "wma", "webm", "mka")),
    # Claims no extension: decoder_for(path, mode="fast") picks it for Ogg Opus files.
    "pyav_opus": Decoder(name="pyav_opus", module="av", source=_PyAVOpusSource, extensions=()),
}
_DECODER_FOR_EXTENSION = {ext: decoder for decoder in reversed(DECODERS.values()) for ext in decoder.extensions}
#: Every extension some decoder reads: the default ``corpus.extensions``.
AUDIO_EXTENSIONS = tuple(dict.fromkeys(ext for decoder in DECODERS.values() for ext in decoder.extensions))


# --------------------------------------------------------------------------------------------------
# private helpers


def _iter_blocks(path, *, sample_rate, channels, block_frames, offset, duration, quality, decoder):
    """Generator behind :func:`iter_blocks` (arguments already checked)."""
    notes: list[str] = []
    with _open(path, mode=decoder) as source:
        start, n_in = _excerpt(source, path=path, offset=offset, duration=duration)
        sr_out = source.samplerate if sample_rate is None else int(sample_rate)
        for block in _decode(source, path=path, start=start, n_frames=n_in, sample_rate=sr_out,
                             channels=channels, block_frames=block_frames, quality=quality, notes=notes):
            if channels == 1:
                yield block
            elif block.ndim == 1:
                yield np.repeat(block.reshape(1, -1), channels, axis=0)
            else:
                yield np.ascontiguousarray(block.T)
    for message in notes:
        warnings.warn(message, AudioWarning, stacklevel=2)


def _decode(source: _Source, *, path, start: int, n_frames: int | None, sample_rate: int, channels: int,
            block_frames: int, quality: str, notes: list[str]) -> Iterator[np.ndarray]:
    """Decode ``n_frames`` frames (None: to the end) from ``start``; yield non-empty output blocks
    channels-last; append warning messages (a length short of the header, within tolerance) to ``notes``.

    Blocks are ``(m,)`` when the output is mono or the file is mono (duplication to ``channels`` is
    left to the caller, so only one channel is resampled), else ``(m, channels)``.
    """
    p = os.fspath(path)
    _check_channel_match(source.channels, channels=channels, what=p)
    n_resampled = 1 if channels == 1 or source.channels == 1 else channels
    stream = None
    if sample_rate != source.samplerate:
        stream = soxr.ResampleStream(source.samplerate, sample_rate, n_resampled, dtype="float32",
                                     quality=quality)
    done, flushed = 0, stream is None
    try:
        if source.seek(start) < start:
            raise AudioError(f"{p}: offset={start / source.samplerate:g} s is at or past the end of the file")
        # Not SoundFile.blocks(): it ignores short reads and yields stale buffer contents past the real
        # end of a file whose header overstates its length (seen with truncated MP3).
        while n_frames is None or done < n_frames:
            want = block_frames if n_frames is None else min(block_frames, n_frames - done)
            raw = source.read(want)
            if len(raw) == 0:
                break
            bad = _nonfinite(raw)
            if bad is not None:
                count, (row, _) = bad
                raise AudioError(
                    f"{p}: {count} NaN/Inf sample(s) in frames {start + done}.."
                    f"{start + done + len(raw) - 1}; first at frame {start + done + row} "
                    f"({(start + done + row) / source.samplerate:.3f} s)")
            if n_resampled == 1:
                mixed = raw[:, 0] if source.channels == 1 else _downmix(raw)
            else:
                mixed = raw
            done += len(raw)
            if stream is None:
                out = mixed
            else:
                flushed = done == n_frames
                out = stream.resample_chunk(mixed, last=flushed)
            if len(out):
                yield out
    except _ReadError as err:
        raise AudioError(f"{p}: corrupt data, decoding failed in the block from frame "
                         f"{start + done}: {err}") from err
    if not flushed:  # the file ended before the frame count it declares: flush the resampler's tail
        tail = stream.resample_chunk(np.empty((0,) if n_resampled == 1 else (0, n_resampled), dtype=np.float32),
                                     last=True)
        if len(tail):
            yield tail
    if n_frames is not None and done < n_frames and source.frames is not None:
        read = start + done
        missing = source.frames - read
        if missing > source.tolerance:
            raise AudioError(f"{p}: truncated: expected {source.frames} frames, read {read}")
        notes.append(f"{p}: decoded {read} frames, {missing} ({missing / source.samplerate:.3f} s) fewer than "
                        f"the {source.format} header declares ({source.frames}); accepted, within the "
                        f"{LENGTH_TOLERANCE_SECONDS:g} s tolerance for {source.format} lengths")
    if start > 0 and done == 0:
        raise AudioError(f"{p}: offset={start / source.samplerate:g} s is at or past the end of the file")


def _downmix(raw: np.ndarray) -> np.ndarray:
    """``raw.mean(axis=1)`` of channels-last float32 frames, bit for bit.

    numpy's mean over a short last axis is a strided reduction (~35x slower than an add); for
    two channels ``(a + b) * 0.5`` is the same float32 sum and an exact halving, so the same
    bits (subnormals and overflow included). Other channel counts keep ``mean``.
    """
    if raw.shape[1] == 2 and raw.dtype == np.float32:
        mixed = np.add(raw[:, 0], raw[:, 1])
        mixed *= np.float32(0.5)
        return mixed
    return raw.mean(axis=1)


def _open(path, *, mode: str = "reference") -> _Source:
    """Open ``path`` for reading with its decoder, turning every failure into an AudioError with the reason."""
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
    return decoder_for(p, mode=mode).open(p)


def _whole_ogg(path: str) -> ogg.OggStatus:
    """The page structure of an Ogg file; AudioError when it was cut (:func:`mirdl.features.ogg.ogg_status`)."""
    try:
        status = ogg.ogg_status(path)
    except OSError as err:
        raise AudioError(f"{path}: cannot read: {err.strerror or err}") from err
    if status.truncated:
        raise AudioError(f"{path}: truncated: {status.problem()}")
    return status


def _starts_with(path: str, prefix: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(prefix)) == prefix
    except OSError:
        return False  # the decoder's own open reports it


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


def _excerpt(source: _Source, *, path, offset: float, duration: float | None) -> tuple[int, int | None]:
    """First frame and frame count of the excerpt, at the file's rate, cut at the end of the file
    (the count is None for a file of unknown length read to its end)."""
    start = int(round(offset * source.samplerate))
    wanted = None if duration is None else max(1, int(round(duration * source.samplerate)))
    if source.frames is None:
        return start, wanted
    if start >= source.frames:
        raise AudioError(f"{os.fspath(path)}: offset={offset} s is at or past the end of the file "
                         f"({source.frames / source.samplerate:.3f} s)")
    n_frames = source.frames - start
    return start, n_frames if wanted is None else min(n_frames, wanted)


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


def _av_reason(err: BaseException) -> str:
    """A readable reason from a PyAV/FFmpeg exception (without the path it repeats)."""
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _check_channel_match(n_in: int, *, channels: int, what: str) -> None:
    """Raise unless ``n_in`` channels can become ``channels`` (downmix, duplicate mono, or keep)."""
    if channels != 1 and n_in not in (1, channels):
        raise AudioError(f"{what} has {n_in} channels; spec expects {channels}")


def _check_quality(quality) -> None:
    choice(quality, name="quality", options=RESAMPLE_QUALITIES)


def _check_decode_args(*, sample_rate, channels, block_frames, offset, duration, quality,
                       decoder="reference") -> None:
    """Validate :func:`load` / :func:`iter_blocks` arguments once, before any I/O."""
    if sample_rate is not None:
        integer(sample_rate, name="sample_rate", minimum=1)
    integer(channels, name="channels", minimum=1)
    integer(block_frames, name="block_frames", minimum=1)
    non_negative_float(offset, name="offset")  # seconds
    if duration is not None:
        positive_float(duration, name="duration")  # seconds
    _check_quality(quality)
    choice(decoder, name="decoder", options=DECODER_MODES)
