"""Time-frequency representations of Choi et al. (2017), computed with librosa.

Every representation is a registered pure function with the same call shape::

    fn(y, *, sr, **params) -> np.ndarray  # shape (n_bins, n_frames) for mono y

``y`` is float32 audio, ``(n,)`` (mono) or ``(channels, n)``; the result keeps any leading
channel axis, so it is ``(..., n_bins, n_frames)``: time is always the last axis.

STFT-based representations (``stft``, ``mel``, ``logmel``, ``chroma_stft``, ``mfcc``) are
computed block by block over frames: each block is an exact slice of librosa's centred
framing, so the result equals the whole-signal librosa call (to float32 rounding) while
keeping the working set small; a whole-file STFT of a long track is several times slower.
The arithmetic is librosa's (window product and FFT in float64) with three changes that only
move float32 rounding: frames on rows (each FFT reads contiguous samples), power as
``re**2 + im**2`` (no square root), and the mel filter bank applied as a sparse matrix
(a filter covers a few bins; ~1/60 of the dense product's work).
CQT-based ones (``cqt``, ``chroma_cqt``) use librosa's multirate filter bank on the whole
signal, because its early downsampling is not frame-local. ``cqt`` runs librosa.cqt's own
arithmetic (the same numbers: bit for bit on this machine's corpus) with each octave's filter
bank built once per process and parameters (:func:`_cqt_plan`, an ``lru_cache`` of 16 entries
on a pure function of the spec's CQT fields), and without librosa.core (numba, scipy.signal):
with ``chroma_stft`` (filter bank and normalisation) and ``mfcc`` (DCT) computed here too, a job
of these four representations does not pay those imports (~2 s a process).

The parameters a representation takes are the keyword arguments of its function; the
:class:`mirdl.features.spec.FeatureSpec` of that representation has exactly those fields.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import librosa
import numpy as np
import scipy.fft
import scipy.sparse
import soxr

from mirdl.features.checks import integer
from mirdl.errors import AudioError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from mirdl.features.spec import FeatureSpec

__all__ = [
    "REPRESENTATIONS",
    "representation_params",
    "stft",
    "mel",
    "logmel",
    "cqt",
    "chroma_stft",
    "chroma_cqt",
    "mfcc",
    "waveform",
    "DEFAULT_BLOCK_FRAMES",
    "compute",
    "compute_many",
    "silence_column",
]

#: Frames per block for the STFT-based representations (about 24 s at hop 512 / 22.05 kHz).
DEFAULT_BLOCK_FRAMES = 1024

REPRESENTATIONS: dict[str, Callable[..., np.ndarray]] = {}


def _register(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    REPRESENTATIONS[fn.__name__] = fn
    return fn


def representation_params(name: str) -> dict[str, object]:
    """Parameters (name -> default) of representation ``name``, as its spec fields.

    Parameters
    ----------
    name : str
        A key of :data:`REPRESENTATIONS`.

    Returns
    -------
    dict
        Keyword parameters of the representation function with their defaults,
        excluding ``y``, ``sr`` and ``block_frames`` (which do not change the numbers).

    Examples
    --------
    >>> sorted(representation_params("logmel"))[:3]
    ['amin', 'center', 'fmax']
    """
    if name not in REPRESENTATIONS:
        raise ConfigError(
            f"representation={name!r} is not one of {sorted(REPRESENTATIONS)}"
        )
    signature = inspect.signature(REPRESENTATIONS[name])
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("sr", "block_frames")
    }


def _stft_power_blocks(
    y: np.ndarray,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int | None,
    window: str,
    center: bool,
    power: float,
    block_frames: int,
    basis: np.ndarray | scipy.sparse.csr_array | None = None,
    single: bool = False,
    db_floor: float | None = None,
) -> np.ndarray:
    """``|STFT(y)| ** power`` as librosa computes it, frame blocks at a time.

    ``single`` runs the window product and the FFT in float32 instead of librosa's float64: about
    twice as fast, with errors of float32 rounding relative to each frame's own magnitude (1e-7),
    so only for features that are linear in the power and normalised per frame (``chroma_stft``),
    never for a dB scale, where quiet bins would carry that error as decibels.

    ``db_floor`` (no ``basis``) turns each block into decibels while it is in cache:
    ``10 * log10(max(db_floor, block))``, librosa's ``power_to_db`` with ``ref=1.0`` (float32).

    With ``basis`` (as :func:`_apply_basis` takes it), each block is projected onto it before the
    next is computed, so neither the complex STFT nor the full-resolution spectrogram of the
    whole signal is ever held: memory is the input, the output and one block. Centre padding
    (zeros, librosa's ``pad_mode="constant"``) is applied to the edge blocks only.

    Returns
    -------
    np.ndarray [shape=(..., 1 + n_fft // 2 or n_bins, n_frames)], float32
    """
    return _stft_power_targets(
        y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=center, power=power,
        block_frames=block_frames, targets=[(basis, db_floor)], single=single,
    )[0]


def _stft_power_targets(
    y: np.ndarray,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int | None,
    window: str,
    center: bool,
    power: float,
    block_frames: int,
    targets: list[tuple[np.ndarray | scipy.sparse.csr_array | None, float | None]],
    single: bool = False,
) -> list[np.ndarray]:
    """:func:`_stft_power_blocks` for several ``(basis, db_floor)`` targets from one STFT: each block of
    ``|STFT(y)| ** power`` is computed once and handed to every target, one output per target.

    A target's output is the one :func:`_stft_power_blocks` gives for it alone (the same blocks,
    the same arithmetic), so specs that share their framing can share the STFT.
    """
    integer(block_frames, name="block_frames", minimum=1)
    y = np.asarray(y, dtype=np.float32)
    offset = n_fft // 2 if center else 0
    n_samples = y.shape[-1] + 2 * offset
    if n_samples < n_fft:
        raise ConfigError(
            f"n_fft={n_fft} is longer than the padded signal ({n_samples} samples); "
            "use a smaller n_fft or center=True"
        )
    n_frames = 1 + (n_samples - n_fft) // hop_length
    n_freq = 1 + n_fft // 2
    fft_window = _fft_window(window, n_fft if win_length is None else win_length, n_fft, single)
    outputs, dense = [], []
    for basis, _ in targets:
        n_bins = n_freq if basis is None else (basis.shape[0] if scipy.sparse.issparse(basis) else basis.shape[1])
        outputs.append(np.empty(y.shape[:-1] + (n_bins, n_frames), dtype=np.float32))
        dense.append(basis is not None and not scipy.sparse.issparse(basis))
    # Sub-blocks of ~1 MB of float64 frames keep the frames and their spectrum in a core's L2
    # cache; the block boundaries change no number (every frame is computed alone).
    step = min(block_frames, max(8, _CACHE_BYTES // (8 * n_fft)))
    # A dense filter bank (chroma: 12 bins) is applied in one BLAS product over the whole signal,
    # as librosa does: each BLAS call costs a hand-off to OpenBLAS's threads, which on busy cores
    # outweighs a product this small, so one call beats one per block (the power spectrogram of
    # the whole signal is held, float32, as in librosa).
    buffer = np.empty(y.shape[:-1] + (n_frames, n_freq), np.float32) if any(dense) else None
    # Each dB floor as a block-sized array: numpy's maximum against a scalar runs a scalar loop,
    # ~4x slower than against an array (the same numbers).
    floors = {db_floor: np.full((step, n_freq), db_floor, dtype=np.float32)
              for basis, db_floor in targets if basis is None and db_floor is not None}
    stop = 0
    while stop < n_frames:
        # Sub-blocks of `step` frames within blocks of `block_frames` (as two nested loops would cut them).
        start = stop
        stop = min(start + step, (start // block_frames + 1) * block_frames, n_frames)
        chunk = _zero_padded_slice(y, start * hop_length - offset, (stop - 1) * hop_length + n_fft - offset)
        block = _frame_power(chunk, n_fft=n_fft, hop_length=hop_length, fft_window=fft_window, power=power)
        if buffer is not None:
            buffer[..., start:stop, :] = block
        for (basis, db_floor), out, is_dense in zip(targets, outputs, dense):
            if is_dense:
                continue
            if basis is not None:
                out[..., start:stop] = _apply_basis(basis, block)
            elif db_floor is not None:
                # In place when no other target reads the block (a new block is page-faulted in);
                # the log written straight into the output's (freq, time) slice: no transpose pass.
                db = np.maximum(block, floors[db_floor][: stop - start], out=block if len(targets) == 1 else None)
                rows = out[..., start:stop]
                np.log10(db, out=np.swapaxes(rows, -1, -2))
                rows *= np.float32(10.0)
            else:
                out[..., start:stop] = np.swapaxes(block, -1, -2)
    for (basis, _), out, is_dense in zip(targets, outputs, dense):
        if is_dense:
            out[...] = _apply_basis(basis, buffer)
    return outputs


#: Bytes of float64 frames per FFT sub-block: 64 frames at n_fft 2048. Against 256 frames (4 MB),
#: every STFT-based representation ran 10-25 % faster on 30 s and 6 min tracks (one alternated
#: run against librosa, 64/96/128/256 frames; BENCHMARKS.md "make bench", round 4).
_CACHE_BYTES = 1 << 20


@functools.lru_cache(maxsize=32)
def _fft_window(window: str, win_length: int, n_fft: int, single: bool = False) -> np.ndarray:
    """librosa.stft's analysis window: ``get_window(fftbins=True)`` centred in ``n_fft``, float64
    (float32 if ``single``)."""
    if window == "hann" and 1 < win_length <= n_fft:
        fft_window = np.zeros(n_fft, dtype=np.float64)
        lpad = (n_fft - win_length) // 2
        fft_window[lpad : lpad + win_length] = _periodic_hann(win_length)
    else:
        fft_window = librosa.util.pad_center(librosa.filters.get_window(window, win_length, fftbins=True),
                                             size=n_fft)
    fft_window = np.ascontiguousarray(fft_window, dtype=np.float32 if single else np.float64)
    fft_window.setflags(write=False)
    return fft_window


def _frame_power(chunk: np.ndarray, *, n_fft: int, hop_length: int, fft_window: np.ndarray,
                 power: float) -> np.ndarray:
    """``|rfft(window * frame)| ** power`` of every frame of ``chunk`` (no padding), shape (..., time, freq), float32.

    librosa.stft's arithmetic (the window product and the FFT in float64, the spectrum rounded
    to complex64), laid out with the frames on rows so that each FFT reads contiguous samples,
    and the power taken as ``re**2 + im**2`` without the square root of ``abs``: the two differ
    by float32 rounding (relative 1e-7).
    """
    frames = np.lib.stride_tricks.sliding_window_view(chunk, n_fft, axis=-1)[..., ::hop_length, :]
    spectrum = scipy.fft.rfft(frames * fft_window, axis=-1, overwrite_x=True)
    # The spectrum rounded to complex64 as librosa stores it, then float32 arithmetic.
    spectrum = spectrum.astype(np.complex64, copy=False)
    if power == 2.0:
        magnitude = np.square(spectrum.real)
        magnitude += np.square(spectrum.imag)
        return magnitude
    magnitude = np.abs(spectrum)  # a float32 hypot, as librosa
    if power != 1.0:
        magnitude **= power
    return magnitude


def _zero_padded_slice(y: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``y[..., lo:hi]`` where samples outside ``[0, n)`` are zeros (lo may be < 0, hi > n)."""
    n = y.shape[-1]
    if lo >= 0 and hi <= n:
        return y[..., lo:hi]
    chunk = np.zeros(y.shape[:-1] + (hi - lo,), dtype=y.dtype)
    src_lo, src_hi = max(lo, 0), min(hi, n)
    if src_hi > src_lo:
        chunk[..., src_lo - lo : src_hi - lo] = y[..., src_lo:src_hi]
    return chunk


@functools.lru_cache(maxsize=32)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool,
               norm: str | None) -> scipy.sparse.csr_array:
    # A mel filter covers a few bins (about 2 non-zeros per FFT bin in all): as a sparse
    # matrix the projection costs ~1/60 of the dense product, with the same float32 sums.
    if norm == "slaney":
        weights = _slaney_mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    if norm != "slaney" or weights is None:
        weights = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    return scipy.sparse.csr_array(weights)


# The window, mel filter bank and dB scale of the common case (hann, slaney-normalised mel,
# power_to_db) are computed here with librosa's and scipy's own arithmetic, operation for
# operation: the first ``librosa.filters`` / ``librosa.core.spectrum`` call imports scipy.signal,
# numba and librosa.core (~2.5 s, once per process), which a log-mel job needs nothing else of.
# tests/features/test_representations_fast.py checks them bit for bit against librosa.
def _periodic_hann(n: int) -> np.ndarray:
    """``scipy.signal.get_window("hann", n, fftbins=True)``, float64 (n > 1)."""
    fac = np.linspace(-np.pi, np.pi, n + 1, dtype=np.float64)
    w = np.zeros(n + 1, dtype=np.float64)
    for k, a in enumerate((0.5, 1.0 - 0.5)):
        w += a * np.cos(k * fac)
    return w[:-1]


def _hz_to_mel(frequencies: np.ndarray, *, htk: bool) -> np.ndarray:
    """``librosa.hz_to_mel`` (0-d or 1-d arrays)."""
    frequencies = np.asanyarray(frequencies)
    if htk:
        return 2595.0 * np.log10(1.0 + frequencies / 700.0)
    f_sp = 200.0 / 3
    mels = (frequencies - 0.0) / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, (1000.0 - 0.0) / f_sp, np.log(6.4) / 27.0
    if frequencies.ndim:
        log_t = frequencies >= min_log_hz
        mels[log_t] = min_log_mel + np.log(frequencies[log_t] / min_log_hz) / logstep
    elif frequencies >= min_log_hz:
        mels = min_log_mel + np.log(frequencies / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray, *, htk: bool) -> np.ndarray:
    """``librosa.mel_to_hz`` (1-d arrays)."""
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = 0.0 + f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, (1000.0 - 0.0) / f_sp, np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


def _slaney_mel_filters(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None,
                        htk: bool) -> np.ndarray | None:
    """``librosa.filters.mel(norm="slaney")``, float32; None where librosa would warn of empty
    filters (the caller asks librosa, which warns)."""
    if fmax is None:
        fmax = float(sr) / 2
    n_mels = int(n_mels)
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk=htk), _hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        return None
    return weights


def _power_to_db(spectrogram: np.ndarray, *, amin: float, top_db: float | None) -> np.ndarray:
    """``librosa.power_to_db(spectrogram, ref=1.0, amin=amin, top_db=top_db)`` of a real array."""
    log_spec = 10.0 * np.log10(np.maximum(amin, spectrogram))
    log_spec -= 10.0 * np.log10(np.maximum(amin, np.abs(1.0)))
    if top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec


@functools.lru_cache(maxsize=32)
def _chroma_basis(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    """librosa's chroma filter bank, transposed: (freq, n_chroma), C-contiguous (dense: every bin counts)."""
    basis = np.ascontiguousarray(_chroma_filters(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning).T)
    basis.setflags(write=False)
    return basis


def _chroma_filters(*, sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    """``librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning)`` (its defaults:
    ``ctroct=5``, ``octwidth=2``, ``norm=2``, ``base_c=True``), float32, operation for operation."""
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)  # librosa.hz_to_octs
    frqbins = n_chroma * np.log2(np.asanyarray(frequencies) / (float(a440) / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    distance = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    distance = np.remainder(distance + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * distance / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    wts = _normalize(wts, norm=2, axis=0)
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)


def _normalize(S: np.ndarray, *, norm: float | None, axis: int) -> np.ndarray:
    """``librosa.util.normalize(S, norm=norm, axis=axis)`` (``threshold=None``, ``fill=None``) of a real array."""
    if norm is None:
        return S
    if not np.all(np.isfinite(S)):
        raise ConfigError("cannot normalise a feature with non-finite values (is the audio finite?)")
    mag = np.abs(S).astype(float)
    if norm == np.inf:
        length = np.max(mag, axis=axis, keepdims=True)
    elif norm == -np.inf:
        length = np.min(mag, axis=axis, keepdims=True)
    elif norm == 0:
        length = np.sum(mag > 0, axis=axis, keepdims=True, dtype=mag.dtype)
    elif np.issubdtype(type(norm), np.number) and norm > 0:
        length = np.sum(mag**norm, axis=axis, keepdims=True) ** (1.0 / norm)
    else:
        raise ConfigError(f"norm={norm!r} must be inf, -inf, 0, a positive number or None")
    length[length < np.finfo(S.dtype).tiny] = 1.0
    normalized = np.empty_like(S)
    normalized[:] = S / length
    return normalized


def _dct_mfcc(log_power: np.ndarray, *, n_mfcc: int, dct_type: int, lifter: float) -> np.ndarray:
    """``librosa.feature.mfcc(S=log_power, n_mfcc=n_mfcc, dct_type=dct_type, norm="ortho", lifter=lifter)``."""
    if lifter < 0:
        raise ConfigError(f"lifter={lifter} must be a non-negative number")
    coefficients = scipy.fft.dct(log_power, axis=-2, type=dct_type, norm="ortho")[..., :n_mfcc, :]
    if lifter > 0:
        weights = np.sin(np.pi * np.arange(1, 1 + n_mfcc, dtype=coefficients.dtype) / lifter)
        coefficients *= 1 + (lifter / 2) * weights[:, np.newaxis]
    return coefficients


def _apply_basis(basis: np.ndarray | scipy.sparse.csr_array, block: np.ndarray) -> np.ndarray:
    """A filter bank applied to ``block`` (..., time, freq): (..., bins, time), float32.

    ``basis`` is sparse (bins, freq) (:func:`_mel_basis`) or dense and transposed, (freq, bins)
    (:func:`_chroma_basis`).
    """
    if scipy.sparse.issparse(basis):
        flat = block.reshape(-1, *block.shape[-2:])
        projected = np.stack([basis @ np.ascontiguousarray(channel.T) for channel in flat])
        return projected.reshape(*block.shape[:-2], basis.shape[0], block.shape[-2]).astype(np.float32, copy=False)
    # One float32 BLAS product per block (sgemm, (time, freq) @ (freq, bins)): ~15x faster than
    # numpy's einsum loop, which made chroma_stft slower than librosa's single product.
    return np.swapaxes(np.matmul(block, basis.astype(block.dtype, copy=False)), -1, -2)



def _clip_top_db(db: np.ndarray, *, top_db: float | None) -> np.ndarray:
    """``db`` clipped in place to ``top_db`` below its maximum (librosa's ``top_db``)."""
    if top_db is not None:
        if top_db < 0:
            raise ConfigError(f"top_db={top_db!r} must be non-negative")
        np.maximum(db, db.max() - np.float32(top_db), out=db)
    return db


def _to_db(spectrogram: np.ndarray, *, power: float, amin: float, top_db: float | None) -> np.ndarray:
    if power == 2.0 and amin > 0 and (top_db is None or top_db >= 0) \
            and not np.iscomplexobj(spectrogram):
        return _power_to_db(np.asarray(spectrogram), amin=amin, top_db=top_db).astype(np.float32)
    if power == 1.0 and amin > 0 and (top_db is None or top_db >= 0):
        # librosa.amplitude_to_db(S, ref=1.0) is power_to_db(|S| ** 2, ref=1.0, amin=amin ** 2).
        return _power_to_db(np.square(np.abs(spectrogram)), amin=amin**2, top_db=top_db).astype(np.float32)
    if power == 2.0:
        return librosa.power_to_db(spectrogram, ref=1.0, amin=amin, top_db=top_db).astype(np.float32)
    if power == 1.0:
        return librosa.amplitude_to_db(spectrogram, ref=1.0, amin=amin, top_db=top_db).astype(np.float32)
    raise ConfigError(f"power={power!r} must be 1.0 (magnitude) or 2.0 (power) for a dB scale")


# ------------------------------------------------------------------------------------------ CQT
# librosa.cqt's arithmetic with librosa's defaults (hann wavelets, L1 norm, sparsity 0.01, soxr_hq
# octave downsampling, scale=True, zero padding), with the filter bank of each octave built once
# per process and parameters (librosa rebuilds it, and its FFT, on every call: ~40 ms a track) and
# without librosa.core / numba / scipy.signal, whose imports cost ~2 s per process.
_HANN_BANDWIDTH = 1.50018310546875  # librosa.filters.WINDOW_BANDWIDTHS["hann"]
_CQT_SPARSITY = 0.01
_CQT_FRAMES = 2048  # frames per block of the per-octave STFT (~4 MB of float64 frames at n_fft 256)


@dataclasses.dataclass(frozen=True)
class _CqtPlan:
    """Everything of a CQT that depends on its parameters only (:func:`_cqt_plan`).

    ``early`` is the factor of the early downsampling (1: none); ``octaves`` holds, top octave first,
    ``(basis, n_fft, hop_length, downsample_after)`` with ``basis`` librosa's sparsified filter FFT,
    (filters, 1 + n_fft // 2), complex64 CSR; ``sqrt_lengths`` is the square root
    of each bin's filter length, shape (n_bins, 1), which librosa divides the response by.
    """

    early: int
    hop_length: int
    octaves: tuple[tuple[scipy.sparse.csr_array, int, int, bool], ...]
    sqrt_lengths: np.ndarray
    n_bins: int


def _relative_bandwidth(freqs: np.ndarray) -> np.ndarray:
    """``librosa.filters._relative_bandwidth`` (2 or more frequencies)."""
    bpo = np.empty_like(freqs)
    logf = np.log2(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    return (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)


def _wavelet_lengths(freqs: np.ndarray, *, sr: float, filter_scale: float, alpha: np.ndarray) -> tuple[np.ndarray, float]:
    """``librosa.filters.wavelet_lengths(window="hann", gamma=0)``: lengths and the highest cutoff."""
    q = float(filter_scale) / alpha
    cutoff = max(freqs * (1 + 0.5 * _HANN_BANDWIDTH / q) + 0.5 * 0)
    return q * sr / (freqs + 0 / alpha), float(cutoff)


def _octave_filter_fft(sr: float, freqs: np.ndarray, *, filter_scale: float, alpha: np.ndarray) -> tuple[np.ndarray, int]:
    """librosa's ``__vqt_filter_fft`` (norm 1, hann, sparsity 0.01, complex64), dense: (filters, 1 + n_fft // 2)."""
    lengths, _ = _wavelet_lengths(freqs, sr=sr, filter_scale=filter_scale, alpha=alpha)
    filters = []
    for ilen, freq in zip(lengths, freqs):
        angles = np.arange(-ilen // 2, ilen // 2, dtype=float) * 2 * np.pi * freq / sr
        sig = np.cos(angles) + 1j * np.sin(angles)
        sig *= _periodic_hann(len(sig)) if len(sig) > 1 else np.ones(len(sig))
        length = np.sum(np.abs(sig))
        sig = sig / (length if length >= np.finfo(np.float64).tiny else 1.0)
        filters.append(sig)
    n_fft = int(2.0 ** (np.ceil(np.log2(max(lengths)))))
    basis = np.zeros((len(filters), n_fft), dtype=np.complex64)
    for row, sig in zip(basis, filters):
        lpad = (n_fft - len(sig)) // 2
        row[lpad : lpad + len(sig)] = sig
    basis *= lengths[:, np.newaxis] / float(n_fft)
    fft_basis = scipy.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    # librosa.util.sparsify_rows: drop the smallest magnitudes holding 1 % of each row's L1 norm.
    mags = np.abs(fft_basis)
    mag_sort = np.sort(mags, axis=1)
    cumulative = np.cumsum(mag_sort / np.sum(mags, axis=1, keepdims=True), axis=1)
    keep = mag_sort[np.arange(len(mags)), np.argmin(cumulative < _CQT_SPARSITY, axis=1)]
    fft_basis = np.where(mags >= keep[:, np.newaxis], fft_basis, 0).astype(np.complex64)
    return fft_basis, n_fft


@functools.lru_cache(maxsize=16)
def _cqt_plan(sr: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int, tuning: float,
              filter_scale: float) -> _CqtPlan:
    """The filter banks of :func:`cqt` for these parameters, built once per process.

    A pure function of its arguments (the spec's fields that change the filter banks) behind an
    ``lru_cache`` of 16 entries: a job computes one or two CQT specs, each track reuses them.
    """
    n_octaves = int(np.ceil(float(n_bins) / bins_per_octave))
    n_filters = min(bins_per_octave, n_bins)
    fmin = fmin * 2.0 ** (tuning / bins_per_octave)
    ratios = 2.0 ** (np.arange(0, bins_per_octave, dtype=float) / bins_per_octave)
    freqs = np.sort(np.multiply.outer(2.0 ** np.arange(n_octaves), ratios).flatten()[:n_bins]) * fmin
    if n_bins == 1:  # librosa's __et_relative_bw
        r = 2 ** (1 / bins_per_octave)
        alpha = np.atleast_1d((r**2 - 1) / (r**2 + 1))
    else:
        alpha = _relative_bandwidth(freqs)
    _, cutoff = _wavelet_lengths(freqs, sr=sr, filter_scale=filter_scale, alpha=alpha)
    nyquist = sr / 2.0
    if cutoff > nyquist:
        raise ConfigError(f"n_bins={n_bins} from fmin={fmin} reaches a filter cutoff of {cutoff:.0f} Hz, above "
                          f"the Nyquist frequency {nyquist:.0f} Hz of sample_rate={sr}; use fewer bins")
    # librosa's __early_downsample_count: octaves dropped before the first filter bank.
    twos = (hop_length & -hop_length).bit_length() - 1
    early = min(max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1), max(0, twos - n_octaves + 1))
    factor = 2**early
    hop = hop_length // factor
    sr_early = sr / float(factor)
    octaves = []
    my_sr, my_hop = sr_early, hop
    for i in range(n_octaves):
        sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
        basis, n_fft = _octave_filter_fft(my_sr, freqs[sl], filter_scale=filter_scale, alpha=alpha[sl])
        basis *= np.sqrt(sr_early / my_sr)
        halve = my_hop % 2 == 0
        octaves.append((scipy.sparse.csr_array(basis), n_fft, my_hop, halve and i < n_octaves - 1))
        if halve:
            my_hop //= 2
            my_sr /= 2.0
    lengths, _ = _wavelet_lengths(freqs, sr=sr_early, filter_scale=filter_scale, alpha=alpha)
    return _CqtPlan(early=factor, hop_length=hop, octaves=tuple(octaves),
                    sqrt_lengths=_frozen(np.sqrt(lengths)[:, np.newaxis]), n_bins=n_bins)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _halve_rate(y: np.ndarray, factor: int = 2) -> np.ndarray:
    """``librosa.resample(y, orig_sr=factor, target_sr=1, res_type="soxr_hq", scale=True)`` of mono float32 ``y``."""
    y_hat = soxr.resample(y, factor, 1, quality="soxr_hq")
    n = int(np.ceil(y.shape[-1] / factor))
    if y_hat.shape[-1] != n:  # librosa.util.fix_length
        y_hat = y_hat[:n] if y_hat.shape[-1] > n else np.pad(y_hat, (0, n - y_hat.shape[-1]))
    y_hat /= np.sqrt(1.0 / factor)
    return np.asarray(y_hat, dtype=y.dtype)


def _octave_response(y: np.ndarray, basis: scipy.sparse.csr_array, *, n_fft: int, hop_length: int) -> np.ndarray:
    """librosa's ``__cqt_response``: the centred, zero-padded STFT (window of ones; FFT in float64
    rounded to complex64, as librosa.stft) projected onto the octave's filters, (filters, frames), complex64.

    The spectrum is laid out (freq, time) in C order, so the sparse product reads it in place
    (librosa's Fortran-ordered STFT is copied by scipy.sparse first), and the sums run in librosa's
    order; no BLAS call (a small product per block waits for OpenBLAS's threads on busy cores).
    """
    n_frames = 1 + (y.shape[-1] + 2 * (n_fft // 2) - n_fft) // hop_length
    out = np.empty((basis.shape[0], n_frames), dtype=np.complex64)
    offset = n_fft // 2
    for start in range(0, n_frames, _CQT_FRAMES):
        stop = min(start + _CQT_FRAMES, n_frames)
        chunk = _zero_padded_slice(y, start * hop_length - offset, (stop - 1) * hop_length + n_fft - offset)
        frames = np.lib.stride_tricks.sliding_window_view(chunk, n_fft)[::hop_length]
        spectrum = scipy.fft.rfft(frames.astype(np.float64).T, axis=0).astype(np.complex64, order="C")
        out[:, start:stop] = basis @ spectrum
    return out


def _cqt_magnitude(y: np.ndarray, plan: _CqtPlan) -> np.ndarray:
    """``np.abs(librosa.cqt(y, ...))`` for the parameters of ``plan``: (..., n_bins, n_frames), float32."""
    outputs = []
    for x in y.reshape(-1, y.shape[-1]):
        if plan.early > 1:
            if x.shape[-1] < plan.early:
                raise AudioError(f"audio of {x.shape[-1]} samples is too short for this CQT")
            x = _halve_rate(x, plan.early)
        responses = []
        for basis, n_fft, hop, halve in plan.octaves:
            responses.append(_octave_response(x, basis, n_fft=n_fft, hop_length=hop))
            if halve:
                x = _halve_rate(x)
        # librosa's __trim_stack: octaves stacked from the top, cut to the shortest.
        n_frames = min(r.shape[-1] for r in responses)
        stacked = np.empty((plan.n_bins, n_frames), dtype=np.complex64)
        end = plan.n_bins
        for response in responses:
            n_oct = response.shape[0]
            if end < n_oct:
                stacked[:end] = response[-end:, :n_frames]
            else:
                stacked[end - n_oct : end] = response[:, :n_frames]
            end -= n_oct
        stacked /= plan.sqrt_lengths
        outputs.append(np.abs(stacked))
    return np.stack(outputs).reshape(*y.shape[:-1], *outputs[0].shape)


@_register
def stft(
    y: np.ndarray,
    *,
    sr: int,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    log: bool = True,
    amin: float = 1e-5,
    top_db: float | None = None,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> np.ndarray:
    """STFT magnitude, linear or in dB, shape (..., 1 + n_fft // 2, n_frames), float32.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], finite float32
        Audio.
    sr : int > 0
        Sample rate of ``y`` (unused by the STFT itself; kept for the common call shape).
    n_fft, hop_length, win_length, window, center
        As :func:`librosa.stft` (``pad_mode="constant"``).
    log : bool
        If True, ``librosa.amplitude_to_db(|S|, ref=1.0, amin=amin, top_db=top_db)``.
    amin : float > 0
        Floor of the magnitude before the log.
    top_db : float > 0 or None
        Dynamic range below the clip's peak kept by the log; None keeps absolute dB.
    block_frames : int > 0
        Frames computed per block (does not change the numbers).

    Returns
    -------
    np.ndarray [shape=(..., 1 + n_fft // 2, n_frames)], float32

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    >>> stft(y, sr=22050, n_fft=1024, hop_length=256).shape
    (513, 87)
    """
    if log:
        # librosa.amplitude_to_db(|S|, ref=1.0) is power_to_db(|S| ** 2, amin=amin ** 2): the power
        # re**2 + im**2 turned into dB block by block (float32 rounding apart from squaring |S|).
        db = _stft_power_blocks(
            y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
            center=center, power=2.0, block_frames=block_frames, db_floor=amin ** 2,
        )
        return _clip_top_db(db, top_db=top_db)
    return _stft_power_blocks(
        y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
        center=center, power=1.0, block_frames=block_frames,
    )


@_register
def mel(
    y: np.ndarray,
    *,
    sr: int,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> np.ndarray:
    """Mel spectrogram (linear amplitude), shape (..., n_mels, n_frames), float32.

    Equal to ``librosa.feature.melspectrogram`` with the same parameters.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], finite float32
    sr : int > 0
    n_fft, hop_length, win_length, window, center, power
        As :func:`librosa.feature.melspectrogram`.
    n_mels, fmin, fmax, htk, norm
        As :func:`librosa.filters.mel`.
    block_frames : int > 0

    Returns
    -------
    np.ndarray [shape=(..., n_mels, n_frames)], float32

    Examples
    --------
    >>> y = np.zeros(22050, dtype=np.float32)
    >>> mel(y, sr=22050, n_mels=64).shape
    (64, 44)
    """
    return _stft_power_blocks(
        y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
        center=center, power=power, block_frames=block_frames,
        basis=_mel_basis(sr, n_fft, n_mels, fmin, fmax, htk, norm),
    )


@_register
def logmel(
    y: np.ndarray,
    *,
    sr: int,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
    amin: float = 1e-10,
    top_db: float | None = None,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> np.ndarray:
    """Log-mel power spectrogram in dB, shape (..., n_mels, n_frames), float32.

    ``librosa.power_to_db(librosa.feature.melspectrogram(power=2.0, ...), ref=1.0,
    amin=amin, top_db=top_db)``. The default ``top_db=None`` keeps absolute dB, so the
    value of a frame does not depend on the loudest frame of the clip; silence is
    ``10 * log10(amin)`` (-100 dB).

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], finite float32
    sr : int > 0
    n_fft, hop_length, win_length, window, center, n_mels, fmin, fmax, htk, norm
        As :func:`mel`.
    amin : float > 0
        Power floor before the log.
    top_db : float > 0 or None
        Dynamic range kept below the clip's peak; None keeps absolute dB.
    block_frames : int > 0

    Returns
    -------
    np.ndarray [shape=(..., n_mels, n_frames)], float32

    Examples
    --------
    >>> y = np.zeros(22050, dtype=np.float32)
    >>> round(float(logmel(y, sr=22050, n_mels=32).max()), 3)  # last bits depend on the CPU's SIMD
    -100.0
    """
    power_mel = mel(
        y, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
        center=center, power=2.0, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
        block_frames=block_frames,
    )
    return _to_db(power_mel, power=2.0, amin=amin, top_db=top_db)


@_register
def cqt(
    y: np.ndarray,
    *,
    sr: int,
    hop_length: int = 512,
    fmin: float = 32.70319566257483,
    n_bins: int = 84,
    bins_per_octave: int = 12,
    tuning: float = 0.0,
    filter_scale: float = 1.0,
    log: bool = True,
    amin: float = 1e-5,
    top_db: float | None = None,
) -> np.ndarray:
    """Constant-Q transform magnitude, linear or in dB, shape (..., n_bins, n_frames), float32.

    ``np.abs(librosa.cqt(y, sr=sr, ...))``; ``fmin`` defaults to C1 (32.70 Hz), 7 octaves.
    With ``log``, ``librosa.amplitude_to_db(ref=1.0, amin=amin, top_db=top_db)``.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], finite float32
    sr : int > 0
    hop_length : int > 0
        Must be a multiple of ``2 ** (n_octaves - 1)`` as librosa requires.
    fmin, n_bins, bins_per_octave, tuning, filter_scale
        As :func:`librosa.cqt`; ``tuning`` is fixed (not estimated) so the numbers
        depend on the spec only.
    log, amin, top_db
        As :func:`stft`.

    Returns
    -------
    np.ndarray [shape=(..., n_bins, n_frames)], float32

    Examples
    --------
    >>> y = np.zeros(22050, dtype=np.float32)
    >>> cqt(y, sr=22050, n_bins=48).shape
    (48, 44)
    """
    plan = _cqt_plan(int(sr), int(hop_length), float(fmin), int(n_bins), int(bins_per_octave), float(tuning),
                     float(filter_scale))
    magnitude = _cqt_magnitude(np.asarray(y, dtype=np.float32), plan)
    return _to_db(magnitude, power=1.0, amin=amin, top_db=top_db) if log else magnitude


@_register
def chroma_stft(
    y: np.ndarray,
    *,
    sr: int,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    n_chroma: int = 12,
    tuning: float = 0.0,
    norm: float | None = np.inf,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> np.ndarray:
    """Chromagram from the STFT power spectrum, shape (..., n_chroma, n_frames), float32.

    Equal to ``librosa.feature.chroma_stft`` with a fixed ``tuning``; each frame is
    normalised by its ``norm`` (``inf``: max), frame by frame.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], finite float32
    sr : int > 0
    n_fft, hop_length, win_length, window, center
        As :func:`stft`.
    n_chroma : int > 0
    tuning : float
        Tuning deviation in fractions of a bin, fixed rather than estimated.
    norm : float or None
        Per-frame normalisation (``np.inf``, 1, 2, or None).
    block_frames : int > 0

    Returns
    -------
    np.ndarray [shape=(..., n_chroma, n_frames)], float32

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    >>> int(chroma_stft(y, sr=22050)[:, 10].argmax())  # A
    9
    """
    chroma = _stft_power_blocks(
        y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
        center=center, power=2.0, block_frames=block_frames, basis=_chroma_basis(sr, n_fft, n_chroma, tuning),
        single=True,
    )
    return _normalize(chroma, norm=norm, axis=-2).astype(np.float32, copy=False)


@_register
def chroma_cqt(
    y: np.ndarray,
    *,
    sr: int,
    hop_length: int = 512,
    fmin: float = 32.70319566257483,
    n_chroma: int = 12,
    n_octaves: int = 7,
    bins_per_octave: int = 36,
    tuning: float = 0.0,
    norm: float | None = np.inf,
) -> np.ndarray:
    """Chromagram from the constant-Q transform, shape (..., n_chroma, n_frames), float32.

    Equal to ``librosa.feature.chroma_cqt`` with a fixed ``tuning``.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], finite float32
    sr : int > 0
    hop_length, fmin, n_chroma, n_octaves, bins_per_octave, tuning, norm
        As :func:`librosa.feature.chroma_cqt`.

    Returns
    -------
    np.ndarray [shape=(..., n_chroma, n_frames)], float32

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    >>> int(chroma_cqt(y, sr=22050)[:, 20].argmax())  # A
    9
    """
    return librosa.feature.chroma_cqt(
        y=np.asarray(y, dtype=np.float32), sr=sr, hop_length=hop_length, fmin=fmin, n_chroma=n_chroma,
        n_octaves=n_octaves, bins_per_octave=bins_per_octave, tuning=tuning, norm=norm,
    ).astype(np.float32)


@_register
def mfcc(
    y: np.ndarray,
    *,
    sr: int,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    n_mfcc: int = 20,
    dct_type: int = 2,
    lifter: float = 0.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> np.ndarray:
    """Mel-frequency cepstral coefficients, shape (..., n_mfcc, n_frames), float32.

    Equal to ``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=..., ...)``, i.e. the DCT of
    ``power_to_db(mel power, top_db=80)`` (librosa's default, relative to the clip peak).

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], finite float32
    sr : int > 0
    n_fft, hop_length, win_length, window, center, n_mels, fmin, fmax, htk
        As :func:`mel` (Slaney-normalised filters).
    n_mfcc : int > 0
    dct_type : {1, 2, 3}
    lifter : float >= 0
    amin, top_db
        As :func:`logmel`.
    block_frames : int > 0

    Returns
    -------
    np.ndarray [shape=(..., n_mfcc, n_frames)], float32

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    >>> mfcc(y, sr=22050, n_mfcc=13).shape
    (13, 44)
    """
    log_power = logmel(
        y, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
        center=center, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm="slaney", amin=amin,
        top_db=top_db, block_frames=block_frames,
    )
    return _dct_mfcc(log_power, n_mfcc=n_mfcc, dct_type=dct_type, lifter=lifter).astype(np.float32, copy=False)


@_register
def waveform(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Raw waveform as a one-bin "spectrogram", shape (..., 1, n), float32.

    For end-to-end models (sample-level convnets); one frame per sample.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], finite float32
    sr : int > 0

    Returns
    -------
    np.ndarray [shape=(..., 1, n)], float32

    Examples
    --------
    >>> waveform(np.zeros(4, dtype=np.float32), sr=8000).shape
    (1, 4)
    """
    return np.asarray(y, dtype=np.float32)[..., np.newaxis, :]


def compute(y: np.ndarray, *, spec: FeatureSpec, block_frames: int = DEFAULT_BLOCK_FRAMES) -> np.ndarray:
    """Compute the feature ``spec`` describes from audio already at its rate and channels.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) if spec.channels == 1 else (spec.channels, n)], finite float
        Audio at ``spec.sample_rate`` (see :func:`mirdl.features.audio.load`).
    spec : FeatureSpec
    block_frames : int > 0
        Frames per block for STFT-based representations (does not change the numbers).

    Returns
    -------
    np.ndarray [shape=(n_bins, n_frames) or (channels, n_bins, n_frames)], ``spec.dtype``

    Examples
    --------
    >>> from mirdl.features.spec import FeatureSpec
    >>> spec = FeatureSpec(representation="logmel", params={"n_mels": 40})
    >>> compute(np.zeros(22050, dtype=np.float32), spec=spec).shape
    (40, 44)
    """
    y = _checked_audio(y, spec)
    params = dict(spec.params)
    if "block_frames" in inspect.signature(REPRESENTATIONS[spec.representation]).parameters:
        params["block_frames"] = block_frames
    try:
        out = REPRESENTATIONS[spec.representation](y, sr=spec.sample_rate, **params)
    except librosa.ParameterError as err:
        raise ConfigError(f"spec {spec.name!r} ({spec.representation}): {err}") from err
    return out.astype(spec.dtype, copy=False)


def _checked_audio(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """``y`` as float32, after checking it has the channels of ``spec`` and samples."""
    y = np.asarray(y)
    expected_ndim = 1 if spec.channels == 1 else 2
    if y.ndim != expected_ndim or (spec.channels > 1 and y.shape[0] != spec.channels):
        raise AudioError(
            f"audio of shape {y.shape} does not match spec.channels={spec.channels} "
            f"(expected {'(n,)' if spec.channels == 1 else f'({spec.channels}, n)'})"
        )
    if y.shape[-1] == 0:
        raise AudioError("audio has no samples")
    return y.astype(np.float32, copy=False)


#: The parameters of an STFT's framing: specs that agree on these (and on the sample rate) can share one STFT.
_FRAMING = ("n_fft", "hop_length", "win_length", "window", "center")


def _from_power(spec: FeatureSpec) -> tuple[tuple[Any, float | None], Callable[[np.ndarray], np.ndarray]] | None:
    """How ``spec`` is computed from the power spectrogram ``|STFT|**2`` of its framing: its
    :func:`_stft_power_targets` target and the step that turns that target's output into the
    feature (the same helpers as its own function), or None if it is not (a linear STFT, a mel of
    another power, CQT, waveform)."""
    p, sr, name = spec.param_dict, spec.sample_rate, spec.representation
    if name in ("logmel", "mfcc") or (name == "mel" and p["power"] == 2.0):
        basis = _mel_basis(sr, p["n_fft"], p["n_mels"], p["fmin"], p["fmax"], p["htk"], p.get("norm", "slaney"))
        if name == "mel":
            return (basis, None), lambda out: out
        if name == "logmel":
            return (basis, None), lambda out: _to_db(out, power=2.0, amin=p["amin"], top_db=p["top_db"])
        return (basis, None), lambda out: _dct_mfcc(
            _to_db(out, power=2.0, amin=p["amin"], top_db=p["top_db"]), n_mfcc=p["n_mfcc"], dct_type=p["dct_type"],
            lifter=p["lifter"]).astype(np.float32, copy=False)
    if name == "chroma_stft":
        basis = _chroma_basis(sr, p["n_fft"], p["n_chroma"], p["tuning"])
        return (basis, None), lambda out: _normalize(out, norm=p["norm"], axis=-2).astype(np.float32, copy=False)
    if name == "stft" and p["log"]:
        return (None, p["amin"] ** 2), lambda out: _clip_top_db(out, top_db=p["top_db"])
    return None


def compute_many(y: np.ndarray, *, specs: Sequence[FeatureSpec],
                 block_frames: int = DEFAULT_BLOCK_FRAMES) -> dict[str, np.ndarray]:
    """Every feature of ``specs`` from the same audio, sharing the STFT of specs with the same framing.

    Specs computed from the power spectrogram (``logmel``, ``mfcc``, ``mel`` with ``power=2``,
    ``chroma_stft``, ``stft`` in dB) that agree on sample rate, ``n_fft``, ``hop_length``,
    ``win_length``, ``window`` and ``center`` are computed from one STFT, block by block, and
    log-mel and MFCC of the same mel filter bank from one mel projection. Each feature equals
    :func:`compute` of its spec, bit for bit, except ``chroma_stft`` next to a dB feature: it then
    comes from the shared float64 FFT (librosa's arithmetic) instead of its own float32 one, a
    difference of float32 rounding (about 1e-7 of each frame's maximum). Other specs are computed
    alone.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
        Audio at the specs' sample rate and channels.
    specs : sequence of FeatureSpec
        With distinct names.
    block_frames : int > 0
        Frames per block for STFT-based representations (does not change the numbers).

    Returns
    -------
    dict
        Spec name -> feature, in the order of ``specs``.

    Examples
    --------
    >>> from mirdl.features.spec import FeatureSpec
    >>> specs = [FeatureSpec(representation="logmel", params={"n_mels": 40}, name="logmel"),
    ...          FeatureSpec(representation="mfcc", params={"n_mels": 40}, name="mfcc")]
    >>> {name: x.shape for name, x in compute_many(np.zeros(22050, np.float32), specs=specs).items()}
    {'logmel': (40, 44), 'mfcc': (20, 44)}
    """
    groups: dict[tuple, list[FeatureSpec]] = {}
    for spec in specs:
        if _from_power(spec) is None:
            continue
        key = (spec.sample_rate, spec.channels, *(spec.param_dict[k] for k in _FRAMING))
        groups.setdefault(key, []).append(spec)
    shared: dict[str, np.ndarray] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        first = group[0]
        audio = _checked_audio(y, first)
        framing = {k: first.param_dict[k] for k in _FRAMING}
        plans = [_from_power(spec) for spec in group]
        targets: list[tuple[Any, float | None]] = []
        slots = []
        for target, _ in plans:
            # One projection per distinct filter bank (log-mel and MFCC of the same mel bank share it).
            same = [i for i, t in enumerate(targets) if t[0] is not None and t[0] is target[0]]
            if not same:
                targets.append(target)
            slots.append(same[0] if same else len(targets) - 1)
        single = all(spec.representation == "chroma_stft" for spec in group)
        try:
            outputs = _stft_power_targets(audio, **framing, power=2.0, block_frames=block_frames, targets=targets,
                                          single=single)
            for spec, (_, finish), slot in zip(group, plans, slots):
                shared[spec.name] = finish(outputs[slot]).astype(spec.dtype, copy=False)
        except librosa.ParameterError as err:
            names = ", ".join(repr(spec.name) for spec in group)
            raise ConfigError(f"specs {names}: {err}") from err
    return {spec.name: shared[spec.name] if spec.name in shared else compute(y, spec=spec, block_frames=block_frames)
            for spec in specs}


def silence_column(spec: FeatureSpec) -> np.ndarray:
    """The feature of silence for one frame, shape (..., n_bins, 1): the padding value for segments.

    Computed by applying ``spec`` to a short zero signal, so it is right for every
    representation (-100 dB for log-mel, 0 for linear ones, the MFCC of silence, ...).

    Parameters
    ----------
    spec : FeatureSpec

    Returns
    -------
    np.ndarray [shape=(n_bins, 1) or (channels, n_bins, 1)], ``spec.dtype``
    """
    n = max(dict(spec.params).get("n_fft", 1), 4 * dict(spec.params).get("hop_length", 1), 2 * spec.sample_rate)
    zeros = np.zeros((n,) if spec.channels == 1 else (spec.channels, n), dtype=np.float32)
    with warnings.catch_warnings():
        # CQT's lowest octaves are computed on a heavily downsampled signal; harmless here.
        warnings.simplefilter("ignore", UserWarning)
        feature = compute(zeros, spec=spec)
    middle = feature.shape[-1] // 2
    return np.ascontiguousarray(feature[..., middle : middle + 1])
