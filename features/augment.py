"""Deterministic audio augmentation: every variant of every track can be recomputed alone.

Two layers:

- Pure ops on float32 audio ``(n,)`` or ``(channels, n)``, each returning
  ``(y_out, info)`` where ``info`` is a JSON-able dict of the parameters it used
  (including what it drew from ``rng``): :func:`time_stretch`, :func:`pitch_shift`,
  :func:`random_eq`, :func:`compress`, :func:`mix_background`, :func:`add_noise`,
  :func:`gain`.
- :class:`AugmentSpec` (the random ranges, fingerprinted like a feature spec) and
  :func:`apply_variant`, which draws one variant's parameters from
  :func:`variant_rng` ``(seed, track_id, variant)`` and applies the ops.

Variant 0 is always the clean signal. Variants ``1 .. n_variants - 1`` apply *every*
configured op (an op whose range is ``None`` is disabled), in the fixed order
:data:`AUGMENT_OPS`: musical changes first (tempo, key), then production (EQ,
compression), then environment (background, noise), then level. Each op draws from its
own child generator (``variant_rng(...).spawn``), so enabling or disabling one op does not
change the values the others draw.

Examples
--------
>>> spec = AugmentSpec(n_variants=3, seed=7, time_stretch_rate=None, pitch_shift_steps=None)
>>> y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000).astype(np.float32)
>>> y_aug, params, _ = apply_variant(y, sr=16000, spec=spec, track_id="track-001", variant=1)
>>> list(params)
['eq', 'noise', 'gain']
>>> same, _, _ = apply_variant(y, sr=16000, spec=spec, track_id="track-001", variant=1)
>>> bool((y_aug == same).all())
True
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import librosa
import numpy as np

from mirdl.features.audio import check_audio
from mirdl.errors import AudioError, ConfigError
from mirdl.features.checks import boolean as _boolean
from mirdl.features.checks import choice as _choice
from mirdl.features.checks import finite_float as _finite_float
from mirdl.features.checks import generator as _generator
from mirdl.features.checks import integer as _integer
from mirdl.features.checks import mapping as _mapping
from mirdl.features.checks import non_negative_float as _non_negative
from mirdl.features.checks import positive_float as _positive
from mirdl.features.labels import Annotations, transform_annotations
from mirdl.features.spec import stable_hash

__all__ = [
    "AUGMENT_FORMAT_VERSION",
    "AUGMENT_OPS",
    "NOISE_COLORS",
    "variant_rng",
    "pitch_shift",
    "time_stretch",
    "add_noise",
    "gain",
    "random_eq",
    "compress",
    "mix_background",
    "AugmentSpec",
    "sample_params",
    "apply_variant",
]

#: Bumped whenever the same spec, track id and variant would give different audio or params
#: (op order, the drawing scheme, an op's algorithm).
AUGMENT_FORMAT_VERSION = 1

#: The order :func:`apply_variant` applies the ops in; also the keys of its params dict.
AUGMENT_OPS = ("time_stretch", "pitch_shift", "eq", "compress", "background", "noise", "gain")

#: Noise spectra: power ~ 1/f**0 (white), 1/f (pink), 1/f**2 (brown).
NOISE_COLORS = ("white", "pink", "brown")
_NOISE_EXPONENTS = {"white": 0.0, "pink": 0.5, "brown": 1.0}  # of the amplitude spectrum

# Lowest mean-square level the compressor's detector resolves (-120 dBFS): avoids log(0).
_MIN_POWER = 1e-12


# --------------------------------------------------------------------------------------------------
# randomness


def variant_rng(*, seed: int, track_id: str, variant: int) -> np.random.Generator:
    """The random generator of one augmentation variant of one track.

    ``np.random.default_rng([seed, hi, lo, variant])`` where ``hi, lo`` are the two 32-bit
    words of the first 8 bytes (big-endian) of ``sha256(track_id.encode("utf-8"))``. It
    depends on nothing else (not Python's salted ``hash()``, not the process, not the
    order variants are computed in), so any variant can be recomputed alone anywhere.

    Parameters
    ----------
    seed : int >= 0
    track_id : str
    variant : int >= 0

    Returns
    -------
    np.random.Generator

    Examples
    --------
    >>> a = variant_rng(seed=0, track_id="t1", variant=2).integers(1 << 30)
    >>> b = variant_rng(seed=0, track_id="t1", variant=2).integers(1 << 30)
    >>> bool(a == b)
    True
    """
    seed = _integer(seed, name="seed", minimum=0)
    variant = _integer(variant, name="variant", minimum=0)
    if not isinstance(track_id, str):
        raise ConfigError(f"track_id={track_id!r} must be a str")
    word = int.from_bytes(hashlib.sha256(track_id.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([seed, word >> 32, word & 0xFFFFFFFF, variant])


# --------------------------------------------------------------------------------------------------
# ops


def _check_rng(rng: Any) -> np.random.Generator:
    return _generator(rng, name="rng")


def _check_signal(y: np.ndarray, *, name: str = "y") -> np.ndarray:
    check_audio(y, name=name)
    if y.shape[-1] == 0:
        raise AudioError(f"{name} has no samples (shape={y.shape})")
    return y


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def _mix_at_snr(y: np.ndarray, noise: np.ndarray, *, snr_db: float) -> tuple[np.ndarray, bool]:
    """``y + k * noise`` with ``k`` such that power(y) / power(k * noise) is exactly ``snr_db``.

    Powers are means over all samples of all channels (one SNR for the whole signal).
    Returns ``(y as float32, False)`` unchanged when ``y`` or ``noise`` is silent: no
    scale reaches the SNR then, and adding nothing is the honest result.
    """
    signal_power, noise_power = _power(y), _power(noise)
    if signal_power == 0 or noise_power == 0:
        return y.astype(np.float32), False
    scale = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (y.astype(np.float64) + scale * noise).astype(np.float32), True


def _check_n_fft(n_fft: Any, *, name: str = "n_fft") -> int:
    n_fft = _integer(n_fft, name=name, minimum=16)
    if n_fft % 2:
        raise ConfigError(f"{name}={n_fft!r} must be even")
    return n_fft


def pitch_shift(
    y: np.ndarray, *, sr: int, n_steps: float, n_fft: int = 2048
) -> tuple[np.ndarray, dict[str, Any]]:
    """Shift the pitch by ``n_steps`` semitones, keeping duration (:func:`librosa.effects.pitch_shift`).

    Phase-vocoder time stretch (STFT of ``n_fft`` samples, hop ``n_fft // 4``), then
    resampling with soxr (``res_type="soxr_hq"``). Like :func:`time_stretch` it blurs
    transients by up to about half a window.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
    sr : int > 0
    n_steps : float
        Semitones; may be fractional. ``0`` returns a copy of ``y``.
    n_fft : even int >= 16
        Phase-vocoder window; 2048 is librosa's default.

    Returns
    -------
    y_out : np.ndarray [shape=y.shape], float32
    info : dict
        ``{"n_steps": n_steps, "n_fft": n_fft}``

    Examples
    --------
    >>> y = np.zeros(4096, dtype=np.float32)
    >>> y_out, info = pitch_shift(y, sr=16000, n_steps=2)
    >>> y_out.shape, info
    ((4096,), {'n_steps': 2.0, 'n_fft': 2048})
    """
    _check_signal(y)
    sr = _integer(sr, name="sr", minimum=1)
    n_steps = _finite_float(n_steps, name="n_steps")
    n_fft = _check_n_fft(n_fft)
    info = {"n_steps": n_steps, "n_fft": n_fft}
    if n_steps == 0:
        return y.astype(np.float32), info
    y_out = librosa.effects.pitch_shift(y.astype(np.float32), sr=sr, n_steps=n_steps, res_type="soxr_hq",
                                        n_fft=n_fft)
    return y_out.astype(np.float32, copy=False), info


def time_stretch(y: np.ndarray, *, rate: float, n_fft: int = 2048) -> tuple[np.ndarray, dict[str, Any]]:
    """Change tempo by ``rate`` keeping pitch (:func:`librosa.effects.time_stretch`, phase vocoder).

    The phase vocoder moves a sharp transient by up to about half its window,
    ``n_fft / (2 * sr)`` seconds (an impulse also comes out as a short train of copies
    one hop apart). Measured on clicks at 22.05 kHz: up to ~45 ms with ``n_fft=2048``,
    ~12 ms with ``n_fft=512``. For onset targets use a short window (coarser frequency
    resolution, more "phasiness" on sustained tones).

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
    rate : float > 0
        ``> 1`` is faster (shorter): the output has ``round(n / rate)`` samples and an
        event at ``t`` seconds moves to ``t / rate`` (see
        :func:`mirdl.features.labels.transform_annotations`). ``1`` returns a copy.
    n_fft : even int >= 16
        Phase-vocoder window (hop ``n_fft // 4``); 2048 is librosa's default.

    Returns
    -------
    y_out : np.ndarray [shape=(..., round(n / rate))], float32
    info : dict
        ``{"rate": rate, "n_fft": n_fft}``

    Examples
    --------
    >>> y_out, info = time_stretch(np.zeros(8000, dtype=np.float32), rate=1.25)
    >>> y_out.shape, info
    ((6400,), {'rate': 1.25, 'n_fft': 2048})
    """
    _check_signal(y)
    rate = _positive(rate, name="rate")
    n_fft = _check_n_fft(n_fft)
    info = {"rate": rate, "n_fft": n_fft}
    if rate == 1:
        return y.astype(np.float32), info
    y_out = librosa.effects.time_stretch(y.astype(np.float32), rate=rate, n_fft=n_fft)
    return y_out.astype(np.float32, copy=False), info


def _colored_noise(shape: tuple[int, ...], *, color: str, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(shape)
    exponent = _NOISE_EXPONENTS[color]
    if exponent == 0:
        return white
    # Shape white noise in the frequency domain: amplitude ~ f**-exponent, no DC.
    spectrum = np.fft.rfft(white, axis=-1)
    bins = np.arange(spectrum.shape[-1], dtype=np.float64)
    bins[0] = 1.0
    spectrum *= bins**-exponent
    spectrum[..., 0] = 0.0
    return np.fft.irfft(spectrum, n=shape[-1], axis=-1)


def add_noise(
    y: np.ndarray, *, snr_db: float, rng: np.random.Generator, color: str = "white"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Add Gaussian noise of a given colour at an exact signal-to-noise ratio.

    The noise is scaled so that ``10 * log10(power(y) / power(noise)) == snr_db``, powers
    being means over all samples and channels (channels get independent noise). A silent
    ``y`` has no finite SNR: it is returned unchanged and ``info["applied"]`` is False.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
    snr_db : float
    rng : np.random.Generator
        Draws the noise samples.
    color : {"white", "pink", "brown"}
        Power spectrum flat, ~1/f or ~1/f**2 (shaped in the frequency domain, no DC).

    Returns
    -------
    y_out : np.ndarray [shape=y.shape], float32
    info : dict
        ``{"snr_db", "color", "applied"}``

    Examples
    --------
    >>> y = np.sin(np.arange(16000) / 10).astype(np.float32)
    >>> y_out, info = add_noise(y, snr_db=20, rng=np.random.default_rng(0), color="pink")
    >>> round(float(10 * np.log10(np.mean(y ** 2) / np.mean((y_out - y) ** 2))), 2)
    20.0
    """
    _check_signal(y)
    snr_db = _finite_float(snr_db, name="snr_db")
    _check_rng(rng)
    color = _choice(color, name="color", options=NOISE_COLORS)
    y_out, applied = _mix_at_snr(y, _colored_noise(y.shape, color=color, rng=rng), snr_db=snr_db)
    return y_out, {"snr_db": snr_db, "color": color, "applied": applied}


def gain(y: np.ndarray, *, gain_db: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Multiply by ``10 ** (gain_db / 20)``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
    gain_db : float

    Returns
    -------
    y_out : np.ndarray [shape=y.shape], float32
    info : dict
        ``{"gain_db": gain_db}``

    Examples
    --------
    >>> gain(np.ones(2, dtype=np.float32), gain_db=-20.0)
    (array([0.1, 0.1], dtype=float32), {'gain_db': -20.0})
    """
    _check_signal(y)
    gain_db = _finite_float(gain_db, name="gain_db")
    return (y.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(np.float32), {"gain_db": gain_db}


def _peaking_sos(center_hz: np.ndarray, gain_db: np.ndarray, *, q: float, sr: float) -> np.ndarray:
    """Second-order sections of peaking EQs (RBJ Audio EQ Cookbook), shape (n_bands, 6)."""
    amplitude = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * center_hz / sr
    alpha = np.sin(w0) / (2.0 * q)
    cos_w0 = np.cos(w0)
    b = np.stack([1 + alpha * amplitude, -2 * cos_w0, 1 - alpha * amplitude], axis=-1)
    a = np.stack([1 + alpha / amplitude, -2 * cos_w0, 1 - alpha / amplitude], axis=-1)
    return np.concatenate([b, a], axis=-1) / a[:, :1]


def random_eq(
    y: np.ndarray,
    *,
    sr: int,
    rng: np.random.Generator,
    n_bands: int = 3,
    max_gain_db: float = 6.0,
    q: float = 1.0,
    fmin: float = 60.0,
    fmax: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Random equaliser: ``n_bands`` peaking filters in series at random centre frequencies.

    ``[fmin, fmax]`` is split into ``n_bands`` equal bands on a log-frequency axis; each
    filter's centre is drawn log-uniformly inside its band (so centres spread over the
    spectrum) and its gain uniformly in ``[-max_gain_db, max_gain_db]``. Filters are RBJ
    cookbook peaking biquads (gain exactly ``gain_db`` at the centre, bandwidth set by
    ``q``), run as second-order sections with :func:`scipy.signal.sosfilt`.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
    sr : int > 0
    rng : np.random.Generator
        Draws ``n_bands`` centres, then ``n_bands`` gains.
    n_bands : int > 0
    max_gain_db : float >= 0
    q : float > 0
        Quality factor (1.0 is about 1.4 octaves between the half-gain points).
    fmin : float > 0
    fmax : float > fmin, optional
        Default ``0.4 * sr``; must stay below the Nyquist frequency ``sr / 2``.

    Returns
    -------
    y_out : np.ndarray [shape=y.shape], float32
    info : dict
        ``{"center_hz": [n_bands floats], "gain_db": [n_bands floats], "q": q}``

    Examples
    --------
    >>> y_out, info = random_eq(np.zeros(100, np.float32), sr=16000, rng=np.random.default_rng(0), n_bands=2)
    >>> len(info["center_hz"]), y_out.dtype
    (2, dtype('float32'))
    """
    import scipy.signal  # lazily: ~1 s of import that a job without augmentation never pays

    _check_signal(y)
    sr = _integer(sr, name="sr", minimum=1)
    _check_rng(rng)
    n_bands = _integer(n_bands, name="n_bands", minimum=1)
    max_gain_db = _non_negative(max_gain_db, name="max_gain_db")
    q = _positive(q, name="q")
    fmin = _positive(fmin, name="fmin")
    fmax = 0.4 * sr if fmax is None else _positive(fmax, name="fmax")
    if not fmin < fmax < sr / 2:
        raise ConfigError(f"fmin={fmin!r}, fmax={fmax!r} must satisfy fmin < fmax < sr / 2 = {sr / 2:g}")
    edges = np.log(np.geomspace(fmin, fmax, n_bands + 1))
    center_hz = np.exp(rng.uniform(edges[:-1], edges[1:]))
    gain_db = rng.uniform(-max_gain_db, max_gain_db, size=n_bands)
    sos = _peaking_sos(center_hz, gain_db, q=q, sr=sr)
    y_out = scipy.signal.sosfilt(sos, y.astype(np.float64), axis=-1).astype(np.float32)
    return y_out, {"center_hz": center_hz.tolist(), "gain_db": gain_db.tolist(), "q": q}


def _one_pole(x: np.ndarray, *, time_ms: float, sr: int) -> np.ndarray:
    """Exponential smoothing with time constant ``time_ms`` (vectorised with lfilter)."""
    import scipy.signal  # lazily, as in random_eq

    coefficient = math.exp(-1000.0 / (time_ms * sr))
    return scipy.signal.lfilter([1.0 - coefficient], [1.0, -coefficient], x, axis=-1)


def compress(
    y: np.ndarray,
    *,
    sr: int,
    threshold_db: float,
    ratio: float,
    attack_ms: float = 5.0,
    release_ms: float = 50.0,
    makeup_db: float = 0.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Feed-forward dynamic range compressor (hard knee, channels linked).

    1. Detector: mean square of the signal (the loudest channel at each sample),
       smoothed by a one-pole filter with time constant ``attack_ms``; its level
       ``L`` in dB RMS re full scale (a full-scale sine is -3 dB).
    2. Static curve: gain reduction ``min(0, (threshold_db - L) * (1 - 1 / ratio))`` dB,
       so in steady state a level ``L > threshold_db`` comes out at
       ``threshold_db + (L - threshold_db) / ratio``.
    3. Release: the reduction is also smoothed with time constant ``release_ms``; the
       gain applied is the larger reduction of the two, so reduction sets in at the
       attack speed and recovers at the release speed.

    Every step is a vectorised filter (:func:`scipy.signal.lfilter`), no per-sample
    Python loop. This approximates the branching attack/release ballistics of an
    analogue-style compressor (which switch coefficient sample by sample): attack is the
    detector's time constant, release a smoothing of the gain, so a long release also
    lets the gain recover along a smooth curve rather than a pure exponential.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
    sr : int > 0
    threshold_db : float
        dB RMS re full scale.
    ratio : float >= 1
        1 is no compression.
    attack_ms, release_ms : float > 0
    makeup_db : float
        Gain added after compression.

    Returns
    -------
    y_out : np.ndarray [shape=y.shape], float32
    info : dict
        ``{"threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db"}``

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> y = (0.9 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    >>> y_out, _ = compress(y, sr=16000, threshold_db=-20, ratio=4)
    >>> round(float(10 * np.log10(np.mean(y_out[8000:] ** 2))), 1)   # -3.9 dB in
    -16.0
    """
    _check_signal(y)
    sr = _integer(sr, name="sr", minimum=1)
    threshold_db = _finite_float(threshold_db, name="threshold_db")
    ratio = _finite_float(ratio, name="ratio")
    if ratio < 1:
        raise ConfigError(f"ratio={ratio!r} must be >= 1")
    attack_ms = _positive(attack_ms, name="attack_ms")
    release_ms = _positive(release_ms, name="release_ms")
    makeup_db = _finite_float(makeup_db, name="makeup_db")
    x = y.astype(np.float64)
    power = np.square(x) if x.ndim == 1 else np.max(np.square(x), axis=0)
    level_db = 10.0 * np.log10(np.maximum(_one_pole(power, time_ms=attack_ms, sr=sr), _MIN_POWER))
    reduction_db = np.minimum(0.0, (threshold_db - level_db) * (1.0 - 1.0 / ratio))
    gain_db = np.minimum(reduction_db, _one_pole(reduction_db, time_ms=release_ms, sr=sr)) + makeup_db
    y_out = (x * 10.0 ** (gain_db / 20.0)).astype(np.float32)
    info = {"threshold_db": threshold_db, "ratio": ratio, "attack_ms": attack_ms, "release_ms": release_ms,
            "makeup_db": makeup_db}
    return y_out, info


def mix_background(
    y: np.ndarray, background: np.ndarray, *, snr_db: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Mix a background recording into ``y`` at an exact signal-to-background ratio.

    The background is read from a random ``offset`` in ``[0, len(background))`` and
    looped as needed, so it is cropped or repeated to exactly ``len(y)`` samples. Its
    scale makes ``10 * log10(power(y) / power(background part)) == snr_db`` (powers over
    all samples and channels). If ``y`` or that part of the background is silent nothing
    is added and ``info["applied"]`` is False.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
    background : np.ndarray [shape=(m,) or (channels, m)], finite float
        Mono backgrounds are added to every channel of ``y``.
    snr_db : float
    rng : np.random.Generator
        Draws the offset.

    Returns
    -------
    y_out : np.ndarray [shape=y.shape], float32
    info : dict
        ``{"snr_db", "offset", "applied"}``

    Examples
    --------
    >>> y = np.ones(5, dtype=np.float32)
    >>> y_out, info = mix_background(y, np.array([1.0, -1.0]), snr_db=0.0, rng=np.random.default_rng(0))
    >>> np.abs(y_out - y).round(6).tolist(), info["applied"]
    ([1.0, 1.0, 1.0, 1.0, 1.0], True)
    """
    _check_signal(y)
    _check_signal(background, name="background")
    if background.ndim == 2 and background.shape[0] != (1 if y.ndim == 1 else y.shape[0]):
        raise AudioError(f"background of shape {background.shape} does not match the channels of y {y.shape}")
    snr_db = _finite_float(snr_db, name="snr_db")
    _check_rng(rng)
    offset = int(rng.integers(0, background.shape[-1]))
    part = np.take(background.astype(np.float64), (offset + np.arange(y.shape[-1])) % background.shape[-1], axis=-1)
    if y.ndim == 1 and part.ndim == 2:
        part = part[0]
    y_out, applied = _mix_at_snr(y, np.broadcast_to(part, y.shape), snr_db=snr_db)
    return y_out, {"snr_db": snr_db, "offset": offset, "applied": applied}


# --------------------------------------------------------------------------------------------------
# spec


def _range(name: str, value: Any, *, above: float | None = None) -> tuple[float, float] | None:
    """A ``(low, high)`` range of finite floats, ``low <= high``, optionally both ``> above``."""
    if value is None:
        return None
    where = f"augment.{name}={value!r}"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ConfigError(f"{where}: must be a [low, high] pair or null")
    try:
        low, high = (_finite_float(bound, name=f"augment.{name}") for bound in value)
    except ConfigError:
        raise ConfigError(f"{where}: bounds must be finite numbers") from None
    if low > high:
        raise ConfigError(f"{where}: low must be <= high")
    if above is not None and low <= above:
        raise ConfigError(f"{where}: values must be > {above:g}")
    return low, high


@dataclass(frozen=True)
class AugmentSpec:
    """The random ranges of an augmentation, fingerprinted and JSON/YAML round-trippable.

    Variant 0 is the clean signal; each variant ``1 .. n_variants - 1`` applies every op
    whose range is not ``None``, with values drawn uniformly in the ranges (see
    :func:`sample_params`). There are no per-op probabilities: to get variants with and
    without an op, use two specs or widen its range to include the identity value.

    Parameters
    ----------
    n_variants : int >= 1
        Variants per track, including the clean variant 0.
    seed : int >= 0
    time_stretch_rate : (low, high) with low > 0, or None
        librosa rate (``> 1`` faster).
    pitch_shift_steps : (low, high) semitones, or None
    pitch_shift_integer : bool
        Draw whole semitones only (uniform over the integers in the range), so that chord
        labels can be transposed (:func:`mirdl.features.labels.transform_annotations`).
    phase_vocoder_n_fft : even int >= 16
        Window of the phase vocoder behind time stretch and pitch shift. 2048 (librosa's
        default) suits tonal material; transients move by up to about half a window, so
        for onset targets use e.g. 512 (see :func:`time_stretch`).
    eq_max_gain_db : float >= 0, or None
        Band gains are drawn in ``[-eq_max_gain_db, eq_max_gain_db]`` (:func:`random_eq`).
    eq_n_bands : int >= 1
    compress_ratio : (low, high) with low >= 1, or None
        Disabled by default.
    compress_threshold_db : (low, high)
        dB RMS re full scale, used when ``compress_ratio`` is set.
    compress_attack_ms, compress_release_ms : float > 0
    background_snr_db : (low, high) dB, or None
        Disabled by default; when set, :func:`apply_variant` needs a ``background``.
    noise_snr_db : (low, high) dB, or None
    noise_colors : tuple of {"white", "pink", "brown"}
        Each variant picks one uniformly.
    gain_db : (low, high) dB, or None

    Raises
    ------
    ConfigError
        Naming the field and its value, e.g. ``augment.time_stretch_rate=(0.0, 1.1): values must be > 0``.

    Examples
    --------
    >>> spec = AugmentSpec(n_variants=4, pitch_shift_steps=[-1, 1])
    >>> spec.pitch_shift_steps
    (-1.0, 1.0)
    >>> AugmentSpec.from_dict(spec.to_dict()) == spec
    True
    """

    n_variants: int = 1
    seed: int = 0
    time_stretch_rate: tuple[float, float] | None = (0.9, 1.1)
    pitch_shift_steps: tuple[float, float] | None = (-2.0, 2.0)
    pitch_shift_integer: bool = False
    phase_vocoder_n_fft: int = 2048
    eq_max_gain_db: float | None = 6.0
    eq_n_bands: int = 3
    compress_ratio: tuple[float, float] | None = None
    compress_threshold_db: tuple[float, float] = (-30.0, -10.0)
    compress_attack_ms: float = 5.0
    compress_release_ms: float = 50.0
    background_snr_db: tuple[float, float] | None = None
    noise_snr_db: tuple[float, float] | None = (20.0, 40.0)
    noise_colors: tuple[str, ...] = NOISE_COLORS
    gain_db: tuple[float, float] | None = (-6.0, 6.0)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        def where(name: str) -> str:
            return f"augment.{name}={getattr(self, name)!r}"

        for name, low in (("n_variants", 1), ("seed", 0), ("eq_n_bands", 1)):
            put(name, _integer(getattr(self, name), name=f"augment.{name}", minimum=low))
        put("phase_vocoder_n_fft", _check_n_fft(self.phase_vocoder_n_fft, name="augment.phase_vocoder_n_fft"))
        put("time_stretch_rate", _range("time_stretch_rate", self.time_stretch_rate, above=0.0))
        put("pitch_shift_steps", _range("pitch_shift_steps", self.pitch_shift_steps))
        put("pitch_shift_integer", _boolean(self.pitch_shift_integer, name="augment.pitch_shift_integer"))
        if self.pitch_shift_integer and self.pitch_shift_steps is not None:
            low, high = self.pitch_shift_steps
            if math.ceil(low) > math.floor(high):
                raise ConfigError(f"{where('pitch_shift_steps')}: contains no integer but pitch_shift_integer=True")
        if self.eq_max_gain_db is not None:
            put("eq_max_gain_db", _non_negative(self.eq_max_gain_db, name="augment.eq_max_gain_db"))
        put("compress_ratio", _range("compress_ratio", self.compress_ratio))
        if self.compress_ratio is not None and self.compress_ratio[0] < 1:
            raise ConfigError(f"{where('compress_ratio')}: ratios must be >= 1")
        threshold = _range("compress_threshold_db", self.compress_threshold_db)
        if threshold is None:
            raise ConfigError(f"{where('compress_threshold_db')}: must be a [low, high] pair")
        put("compress_threshold_db", threshold)
        for name in ("compress_attack_ms", "compress_release_ms"):
            put(name, _positive(getattr(self, name), name=f"augment.{name}"))
        put("background_snr_db", _range("background_snr_db", self.background_snr_db))
        put("noise_snr_db", _range("noise_snr_db", self.noise_snr_db))
        colors = self.noise_colors
        if isinstance(colors, str) or not hasattr(colors, "__iter__"):
            raise ConfigError(f"{where('noise_colors')}: must be a list of {list(NOISE_COLORS)}")
        colors = tuple(colors)
        if not colors or any(color not in NOISE_COLORS for color in colors) or len(set(colors)) != len(colors):
            raise ConfigError(f"{where('noise_colors')}: must be distinct values of {list(NOISE_COLORS)}, at least one")
        put("noise_colors", colors)
        put("gain_db", _range("gain_db", self.gain_db))

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able form (tuples as lists); :meth:`from_dict` inverts it."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }

    @classmethod
    def from_dict(cls, data: Any) -> AugmentSpec:
        """Build a spec from a mapping; missing fields take their defaults, unknown ones raise."""
        return cls(**_mapping(data, name="augment", fields=cls))

    def fingerprint(self) -> str:
        """Stable 16-hex-digit hash of :meth:`to_dict` and :data:`AUGMENT_FORMAT_VERSION`."""
        return stable_hash({"augment": self.to_dict(), "augment_format_version": AUGMENT_FORMAT_VERSION})


# --------------------------------------------------------------------------------------------------
# variants


def _check_variant(spec: AugmentSpec, variant: Any) -> int:
    if not isinstance(spec, AugmentSpec):
        raise ConfigError(f"spec must be an AugmentSpec, got {type(spec).__name__}")
    variant = _integer(variant, name="variant", minimum=0)
    if variant >= spec.n_variants:
        raise ConfigError(f"variant={variant} must be < augment.n_variants={spec.n_variants}")
    return variant


def _op_rngs(spec: AugmentSpec, *, track_id: str, variant: int) -> dict[str, np.random.Generator]:
    children = variant_rng(seed=spec.seed, track_id=track_id, variant=variant).spawn(len(AUGMENT_OPS))
    return dict(zip(AUGMENT_OPS, children))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _draw(spec: AugmentSpec, rngs: dict[str, np.random.Generator]) -> dict[str, dict[str, Any]]:
    """The scalar parameters of every enabled op, keyed in :data:`AUGMENT_OPS` order."""
    params: dict[str, dict[str, Any]] = {}
    if spec.time_stretch_rate is not None:
        params["time_stretch"] = {"rate": _uniform(rngs["time_stretch"], spec.time_stretch_rate),
                                  "n_fft": spec.phase_vocoder_n_fft}
    if spec.pitch_shift_steps is not None:
        low, high = spec.pitch_shift_steps
        rng = rngs["pitch_shift"]
        steps = float(rng.integers(math.ceil(low), math.floor(high) + 1)) if spec.pitch_shift_integer \
            else _uniform(rng, (low, high))
        params["pitch_shift"] = {"n_steps": steps, "n_fft": spec.phase_vocoder_n_fft}
    if spec.eq_max_gain_db is not None:
        params["eq"] = {"n_bands": spec.eq_n_bands, "max_gain_db": spec.eq_max_gain_db}
    if spec.compress_ratio is not None:
        rng = rngs["compress"]
        params["compress"] = {
            "threshold_db": _uniform(rng, spec.compress_threshold_db),
            "ratio": _uniform(rng, spec.compress_ratio),
            "attack_ms": spec.compress_attack_ms,
            "release_ms": spec.compress_release_ms,
            "makeup_db": 0.0,
        }
    if spec.background_snr_db is not None:
        params["background"] = {"snr_db": _uniform(rngs["background"], spec.background_snr_db)}
    if spec.noise_snr_db is not None:
        rng = rngs["noise"]
        params["noise"] = {
            "snr_db": _uniform(rng, spec.noise_snr_db),
            "color": spec.noise_colors[int(rng.integers(len(spec.noise_colors)))],
        }
    if spec.gain_db is not None:
        params["gain"] = {"gain_db": _uniform(rngs["gain"], spec.gain_db)}
    return params


def sample_params(spec: AugmentSpec, *, track_id: str, variant: int) -> dict[str, dict[str, Any]]:
    """The concrete parameters of one variant, drawn from :func:`variant_rng`.

    Parameters
    ----------
    spec : AugmentSpec
    track_id : str
    variant : int in ``[0, spec.n_variants)``

    Returns
    -------
    dict
        ``{op: {param: value}}`` for each enabled op, in :data:`AUGMENT_OPS` order; ``{}``
        for variant 0. Values an op draws while running (EQ centre frequencies and gains,
        the background offset) are not known yet: :func:`apply_variant` adds them.

    Examples
    --------
    >>> spec = AugmentSpec(n_variants=2, pitch_shift_steps=(2, 2), time_stretch_rate=None,
    ...                    eq_max_gain_db=None, noise_snr_db=None, gain_db=None)
    >>> sample_params(spec, track_id="a", variant=1), sample_params(spec, track_id="a", variant=0)
    ({'pitch_shift': {'n_steps': 2.0, 'n_fft': 2048}}, {})
    """
    variant = _check_variant(spec, variant)
    if variant == 0:
        return {}
    return _draw(spec, _op_rngs(spec, track_id=track_id, variant=variant))


def _run_op(op: str, y: np.ndarray, *, sr: int, params: dict[str, Any], rng: np.random.Generator,
            background: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any]]:
    runners: dict[str, Callable[[], tuple[np.ndarray, dict[str, Any]]]] = {
        "time_stretch": lambda: time_stretch(y, rate=params["rate"], n_fft=params["n_fft"]),
        "pitch_shift": lambda: pitch_shift(y, sr=sr, n_steps=params["n_steps"], n_fft=params["n_fft"]),
        "eq": lambda: random_eq(y, sr=sr, rng=rng, n_bands=params["n_bands"], max_gain_db=params["max_gain_db"]),
        "compress": lambda: compress(y, sr=sr, **params),
        "background": lambda: mix_background(y, background, snr_db=params["snr_db"], rng=rng),
        "noise": lambda: add_noise(y, snr_db=params["snr_db"], rng=rng, color=params["color"]),
        "gain": lambda: gain(y, gain_db=params["gain_db"]),
    }
    return runners[op]()


def apply_variant(
    y: np.ndarray,
    *,
    sr: int,
    spec: AugmentSpec,
    track_id: str,
    variant: int,
    background: np.ndarray | None = None,
    annotations: Annotations | None = None,
) -> tuple[np.ndarray, dict[str, Any], Annotations | None]:
    """One augmentation variant of one track: audio, the parameters used, and moved annotations.

    Fully determined by ``(spec, track_id, variant)`` and the inputs: computing a variant
    alone, in any order or process, gives the same bytes.

    Variants ``>= 1`` whose result peaks above 1.0 (full scale) are scaled down to a peak
    of exactly 1.0, never clipped; ``params["peak_normalize_db"]`` then records the
    (negative) gain applied. Variant 0 returns ``y`` as float32, untouched.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)], finite float
    sr : int > 0
    spec : AugmentSpec
    track_id : str
    variant : int in ``[0, spec.n_variants)``
    background : np.ndarray [shape=(m,) or (channels, m)], optional
        Required when ``spec.background_snr_db`` is set (:func:`mix_background`).
    annotations : Annotations, optional
        Mapped through the variant's time stretch and pitch shift with
        :func:`mirdl.features.labels.transform_annotations`.

    Returns
    -------
    y_out : np.ndarray [shape=(..., n_out)], float32, finite
        ``n_out = round(n / rate)`` with a time stretch, else ``n``.
    params : dict
        JSON-able: ``{op: {param: value}}`` for the ops applied, in the order applied
        (:data:`AUGMENT_OPS`): :func:`sample_params` plus what each op drew while running
        (``eq.center_hz``/``eq.gain_db``/``eq.q``, ``background.offset``, and ``applied``
        False for noise/background on silent audio); plus ``"peak_normalize_db"`` when
        normalised. ``{}`` for variant 0.
    annotations : Annotations or None
        ``None`` if none were given.

    Raises
    ------
    ConfigError
        Variant out of range, or ``spec.background_snr_db`` set without a background.
    AudioError
        ``y`` or ``background`` not a finite float signal.

    Examples
    --------
    >>> spec = AugmentSpec(n_variants=2, time_stretch_rate=(2.0, 2.0), pitch_shift_steps=None,
    ...                    eq_max_gain_db=None, noise_snr_db=None, gain_db=None)
    >>> y_out, params, ann = apply_variant(np.zeros(8000, np.float32), sr=16000, spec=spec, track_id="a",
    ...                                    variant=1, annotations=Annotations(onsets=(0.4,)))
    >>> y_out.shape, params, ann.onsets
    ((4000,), {'time_stretch': {'rate': 2.0, 'n_fft': 2048}}, (0.2,))
    """
    _check_signal(y)
    variant = _check_variant(spec, variant)
    if annotations is not None and not isinstance(annotations, Annotations):
        raise ConfigError(f"annotations must be Annotations or None, got {type(annotations).__name__}")
    if variant == 0:
        return y.astype(np.float32), {}, annotations
    if spec.background_snr_db is not None and background is None:
        raise ConfigError(
            f"augment.background_snr_db={spec.background_snr_db!r} is set but no background was given"
        )
    rngs = _op_rngs(spec, track_id=track_id, variant=variant)
    params: dict[str, Any] = _draw(spec, rngs)
    y_out = y
    for op, op_params in list(params.items()):
        y_out, info = _run_op(op, y_out, sr=sr, params=op_params, rng=rngs[op], background=background)
        params[op] = {**op_params, **info}
    y_out = y_out.astype(np.float32, copy=False)
    peak = float(np.max(np.abs(y_out)))
    if peak > 1.0:
        y_out = (y_out.astype(np.float64) / peak).astype(np.float32)
        params["peak_normalize_db"] = -20.0 * math.log10(peak)
    if annotations is not None:
        annotations = transform_annotations(
            annotations,
            time_stretch_rate=params.get("time_stretch", {}).get("rate", 1.0),
            pitch_shift_steps=params.get("pitch_shift", {}).get("n_steps", 0.0),
        )
    return y_out, params, annotations
