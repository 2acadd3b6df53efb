"""Keras layers that compute features on the fly, numerically matching :mod:`mirdl.features`.

:class:`LogMel` turns a waveform batch into the same log-mel patches a store holds for a
``FeatureSpec`` of representation ``"logmel"`` (axis order (freq, time)), so a model
trained on stored features can be exported with the front end inside it and run on raw
audio.

Examples
--------
>>> import numpy as np
>>> from mirdl.features.spec import FeatureSpec
>>> spec = FeatureSpec(representation="logmel", params={"n_mels": 40})
>>> layer = LogMel.from_spec(spec)
>>> tuple(layer(np.zeros((2, 22050), dtype="float32")).shape)
(2, 40, 44)
"""
from __future__ import annotations

import math
from typing import Any

import keras
import librosa
import numpy as np
import tensorflow as tf

__all__ = ["LogMel"]


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1. Received: {name}={value!r}")
    return int(value)


def _check_optional_positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0 or None. Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="mirdl")
class LogMel(keras.layers.Layer):
    """Log-mel power spectrogram in dB, computed with TensorFlow ops inside the model.

    Waveform ``(batch, n_samples)`` (or ``(batch, channels, n_samples)``) float32 ->
    ``(batch, n_mels, n_frames)`` (or ``(batch, channels, n_mels, n_frames)``) float32,
    equal to :func:`mirdl.features.representations.logmel` with the same parameters (to float32
    FFT rounding): zero centre padding by ``n_fft // 2`` (librosa's ``pad_mode="constant"``),
    librosa's window (``get_window(window, win_length, fftbins=True)`` zero-padded centred to
    ``n_fft``), power 2, the filterbank of :func:`librosa.filters.mel` (Slaney by default;
    ``tf.signal``'s HTK mel matrix is deliberately not used), then
    ``10 * log10(max(amin, S))``; ``top_db`` clips each example at its own peak minus
    ``top_db`` (over all its channels, as librosa does on a ``(channels, n)`` signal).

    ``n_frames = 1 + n_samples // hop_length`` with ``center=True`` (and even ``n_fft``),
    ``1 + (n_samples - n_fft) // hop_length`` without.

    Parameters
    ----------
    sample_rate : int > 0
    n_fft : int > 0
    hop_length : int > 0
    win_length : int in [1, n_fft] or None
        None means ``n_fft``.
    window : str
        A window name :func:`librosa.filters.get_window` knows (``"hann"``: periodic Hann).
    center : bool
    n_mels : int > 0
    fmin : float >= 0
    fmax : float > fmin or None
        None means ``sample_rate / 2``.
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None}
        Filter normalisation, as :func:`librosa.filters.mel`.
    amin : float > 0
        Power floor before the log (silence is ``10 * log10(amin)`` dB).
    top_db : float > 0 or None
    **kwargs
        Passed to :class:`keras.layers.Layer` (``name``, ...). ``dtype`` defaults to float32
        so a mixed-precision policy never runs the FFT in float16.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
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
        **kwargs: Any,
    ) -> None:
        # Checked before the base class sees anything, with the received value in the message.
        self.sample_rate = _check_positive_int("sample_rate", sample_rate)
        self.n_fft = _check_positive_int("n_fft", n_fft)
        self.hop_length = _check_positive_int("hop_length", hop_length)
        self.win_length = None if win_length is None else _check_positive_int("win_length", win_length)
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ValueError(
                f"win_length must be <= n_fft={self.n_fft}. Received: win_length={win_length!r}"
            )
        if not isinstance(window, str) or not window:
            raise ValueError(f"window must be a window name such as 'hann'. Received: window={window!r}")
        if not isinstance(center, bool):
            raise ValueError(f"center must be True or False. Received: center={center!r}")
        if not isinstance(htk, bool):
            raise ValueError(f"htk must be True or False. Received: htk={htk!r}")
        self.n_mels = _check_positive_int("n_mels", n_mels)
        nyquist = self.sample_rate / 2
        if isinstance(fmin, bool) or not isinstance(fmin, (int, float)) or not 0 <= fmin < nyquist:
            raise ValueError(f"fmin must be in [0, {nyquist:g}). Received: fmin={fmin!r}")
        if fmax is not None and (
            isinstance(fmax, bool) or not isinstance(fmax, (int, float)) or not fmin < fmax <= nyquist
        ):
            raise ValueError(f"fmax must be in ({fmin:g}, {nyquist:g}] or None. Received: fmax={fmax!r}")
        if norm not in ("slaney", None):
            raise ValueError(f"norm must be 'slaney' or None. Received: norm={norm!r}")
        amin_checked = _check_optional_positive("amin", amin)
        if amin_checked is None:
            raise ValueError(f"amin must be a number > 0. Received: amin={amin!r}")
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.window = window
        self.center = center
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        self.htk = htk
        self.norm = norm
        self.amin = amin_checked
        self.top_db = _check_optional_positive("top_db", top_db)
        self._window_np: np.ndarray | None = None
        self._mel_basis_np: np.ndarray | None = None

    @classmethod
    def from_spec(cls, spec: Any, **kwargs: Any) -> LogMel:
        """The layer computing ``spec`` (a :class:`mirdl.features.spec.FeatureSpec` of ``"logmel"``).

        Parameters
        ----------
        spec : FeatureSpec
            ``spec.representation`` must be ``"logmel"``; its ``sample_rate`` and every
            parameter become layer arguments. A multichannel spec expects input
            ``(batch, spec.channels, n_samples)``. The output is float32 whatever ``spec.dtype``.
        **kwargs
            Layer arguments; ``name`` defaults to ``spec.name``.

        Returns
        -------
        LogMel
        """
        if getattr(spec, "representation", None) != "logmel":
            raise ValueError(
                "LogMel.from_spec needs a FeatureSpec of representation 'logmel'. "
                f"Received: representation={getattr(spec, 'representation', None)!r}"
            )
        kwargs.setdefault("name", spec.name)
        return cls(sample_rate=spec.sample_rate, **spec.param_dict, **kwargs)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) not in (2, 3):
            raise ValueError(
                "LogMel expects a waveform of shape (batch, n_samples) or (batch, channels, n_samples). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        win_length = self.win_length or self.n_fft
        # Exactly librosa.stft's window: periodic (fftbins=True) of win_length, zero-padded centred to n_fft.
        window = librosa.filters.get_window(self.window, win_length, fftbins=True)
        self._window_np = librosa.util.pad_center(window, size=self.n_fft).astype(np.float32)
        # Constants, not weights: recomputed from the config, never saved, never trained.
        self._mel_basis_np = np.ascontiguousarray(
            librosa.filters.mel(
                sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin,
                fmax=self.fmax, htk=self.htk, norm=self.norm, dtype=np.float32,
            ).T
        )
        super().build(input_shape)

    def n_frames(self, n_samples: int | None) -> int | None:
        """Frames produced for ``n_samples`` samples (librosa's framing), or None if unknown."""
        if n_samples is None:
            return None
        padded = n_samples + 2 * (self.n_fft // 2) if self.center else n_samples
        return max(0, 1 + (padded - self.n_fft) // self.hop_length)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape[:-1]) + (self.n_mels, self.n_frames(input_shape[-1]))

    def call(self, waveform: Any) -> Any:
        waveform = tf.cast(waveform, tf.float32)
        if self.center:
            pad = self.n_fft // 2
            paddings = [[0, 0]] * (len(waveform.shape) - 1) + [[pad, pad]]
            waveform = tf.pad(waveform, paddings, mode="CONSTANT")
        frames = tf.signal.frame(waveform, self.n_fft, self.hop_length, axis=-1)  # (..., n_frames, n_fft)
        spectrum = tf.signal.rfft(frames * tf.constant(self._window_np), fft_length=[self.n_fft])
        power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        mel_power = tf.linalg.matmul(power, tf.constant(self._mel_basis_np))  # (..., n_frames, n_mels)
        log_mel = (10.0 / math.log(10.0)) * tf.math.log(tf.math.maximum(mel_power, self.amin))
        if self.top_db is not None:
            axes = list(range(1, len(log_mel.shape)))
            peak = tf.math.reduce_max(log_mel, axis=axes, keepdims=True)
            log_mel = tf.math.maximum(log_mel, peak - self.top_db)
        rank = len(log_mel.shape)
        # Stores keep (freq, time): swap the last two axes.
        return tf.transpose(log_mel, perm=list(range(rank - 2)) + [rank - 1, rank - 2])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "n_fft": self.n_fft,
                "hop_length": self.hop_length,
                "win_length": self.win_length,
                "window": self.window,
                "center": self.center,
                "n_mels": self.n_mels,
                "fmin": self.fmin,
                "fmax": self.fmax,
                "htk": self.htk,
                "norm": self.norm,
                "amin": self.amin,
                "top_db": self.top_db,
            }
        )
        return config
