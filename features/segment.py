"""Cut features into fixed-length pieces: the decision time scale of Choi et al. (2017), Sec. 3.

Time is always the LAST axis of a feature (``(..., n_frames)``); leading axes (channels,
frequency) are carried along. Two decision scales:

- long (clip labels, e.g. tagging): :func:`patches` cuts ``x`` into ``patch_frames``-long
  patches; every patch inherits the track's label.
- short (frame labels, e.g. onsets, chords, notes): :func:`frame_windows` cuts ``x`` and
  a frame-aligned label array identically.

Which pieces exist
------------------
Starts are ``0, hop, 2 * hop, ...`` while ``start < n_frames``, stopping after the first
piece that reaches the last frame (``start + patch_frames >= n_frames``). So at most one
piece, the last, is partial, and no piece covers only padding or frames already covered
by an earlier full piece. What happens to the partial piece depends on ``pad``:

- ``"silence"``: padded at its end with ``pad_column``, the feature of silence
  (e.g. :func:`mirdl.features.representations.silence_column`; default zeros, right for linear
  spectrograms but not for dB-scaled ones). A track shorter than one piece gives one
  padded piece.
- ``"wrap"``: padded by looping the track from its start (frame ``i`` is frame
  ``i % n_frames``), for short clips that repeat naturally. A track shorter than one
  piece is repeated as often as needed.
- ``"drop"``: the partial piece is discarded, so a track shorter than one piece gives
  **zero** pieces.

A track with zero frames gives zero pieces in every mode. The number of pieces is::

    n_frames == 0                -> 0
    pad == "drop"                -> 0 if n_frames < patch else (n_frames - patch) // hop + 1
    pad in ("silence", "wrap")   -> min(ceil(n_frames / hop), 1 + ceil(max(n_frames - patch, 0) / hop))

(see :func:`n_patches`). With ``hop > patch`` frames between pieces are skipped.

Examples
--------
>>> x = np.arange(10, dtype=np.float32)[np.newaxis]          # (1 bin, 10 frames)
>>> out, starts = patches(x, patch_frames=4, hop_frames=4)
>>> out.shape, starts
((3, 1, 4), array([0, 4, 8]))
>>> out[-1, 0]
array([8., 9., 0., 0.], dtype=float32)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mirdl.errors import ConfigError
from mirdl.features.checks import choice, generator
from mirdl.features.checks import integer as _integer

__all__ = ["PAD_MODES", "n_patches", "patches", "frame_windows", "center_crop", "random_crop"]

#: Ways to fill or discard a partial piece, see the module docstring.
PAD_MODES = ("silence", "wrap", "drop")


def _check_pad(pad: Any, *, allowed: tuple[str, ...] = PAD_MODES) -> str:
    return choice(pad, name="pad", options=allowed)


def _check_features(x: Any, *, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 1:
        raise ConfigError(f"{name} must have a time axis (its last axis); got a scalar")
    return x


def _extend(x: np.ndarray, *, length: int, pad: str, pad_column: Any) -> np.ndarray:
    """``x`` made exactly ``length`` frames long: cut, or padded by ``pad`` at its end."""
    n_frames = x.shape[-1]
    if length <= n_frames:
        return x[..., :length]
    if pad == "wrap":
        if n_frames == 0:
            raise ConfigError("pad='wrap' cannot loop an array with 0 frames")
        return np.take(x, np.arange(length) % n_frames, axis=-1)
    fill_shape = x.shape[:-1] + (length - n_frames,)
    column = np.zeros((1,), dtype=x.dtype) if pad_column is None else np.asarray(pad_column, dtype=x.dtype)
    try:
        fill = np.broadcast_to(column, fill_shape)
    except ValueError:
        raise ConfigError(
            f"pad_column of shape {column.shape} does not broadcast to the padding of shape {fill_shape} "
            f"(expected shape {x.shape[:-1] + (1,)})"
        ) from None
    return np.concatenate([x, fill], axis=-1)


def n_patches(n_frames: int, *, patch_frames: int, hop_frames: int, pad: str = "silence") -> int:
    """Number of pieces :func:`patches` cuts from ``n_frames`` frames.

    Parameters
    ----------
    n_frames : int >= 0
    patch_frames : int > 0
    hop_frames : int > 0
    pad : {"silence", "wrap", "drop"}

    Returns
    -------
    int >= 0

    Examples
    --------
    >>> n_patches(10, patch_frames=4, hop_frames=4), n_patches(10, patch_frames=4, hop_frames=4, pad="drop")
    (3, 2)
    >>> n_patches(3, patch_frames=4, hop_frames=2), n_patches(3, patch_frames=4, hop_frames=2, pad="drop")
    (1, 0)
    """
    patch_frames = _integer(patch_frames, name="patch_frames", minimum=1)
    hop_frames = _integer(hop_frames, name="hop_frames", minimum=1)
    pad = _check_pad(pad)
    n_frames = _integer(n_frames, name="n_frames", minimum=0)
    if n_frames == 0:
        return 0
    if pad == "drop":
        return 0 if n_frames < patch_frames else (n_frames - patch_frames) // hop_frames + 1
    return min(-(-n_frames // hop_frames), 1 + -(-max(n_frames - patch_frames, 0) // hop_frames))


def patches(
    x: np.ndarray, *, patch_frames: int, hop_frames: int, pad: str = "silence", pad_column: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``x`` along its last (time) axis into fixed-length patches (long decision scale).

    Starts are ``0, hop_frames, 2 * hop_frames, ...`` while ``start < n_frames``, up to
    the first patch reaching the last frame; the last patch may be partial and is padded
    or dropped according to ``pad`` (details and the count formula in the module
    docstring and :func:`n_patches`).

    Parameters
    ----------
    x : np.ndarray [shape=(..., n_frames)]
        A feature, time last (e.g. ``(n_mels, n_frames)`` or ``(channels, n_mels, n_frames)``).
    patch_frames : int > 0
    hop_frames : int > 0
        ``hop_frames < patch_frames`` overlaps patches; ``>`` skips frames.
    pad : {"silence", "wrap", "drop"}
        ``"silence"`` pads with ``pad_column``; ``"wrap"`` loops the track; ``"drop"``
        discards a partial last patch (a track shorter than one patch then gives 0 patches).
    pad_column : np.ndarray [shape=(..., 1)] or broadcastable, optional
        The feature value of one silent frame (``silence`` mode only); default zeros.

    Returns
    -------
    patches : np.ndarray [shape=(n_patches, ..., patch_frames)], dtype of ``x``
        A new contiguous array (not a view of ``x``).
    starts : np.ndarray [shape=(n_patches,)], int64
        First frame of each patch in ``x``.

    Raises
    ------
    ConfigError
        ``patch_frames`` or ``hop_frames`` not a positive integer, unknown ``pad``, a
        ``pad_column`` that does not broadcast to the leading axes of ``x``.

    Examples
    --------
    >>> x = np.arange(5, dtype=np.float32)
    >>> patches(x, patch_frames=4, hop_frames=2, pad="wrap")[0]
    array([[0., 1., 2., 3.],
           [2., 3., 4., 0.]], dtype=float32)
    >>> patches(x, patch_frames=4, hop_frames=2, pad="drop")[1]
    array([0])
    """
    x = _check_features(x)
    count = n_patches(x.shape[-1], patch_frames=patch_frames, hop_frames=hop_frames, pad=pad)
    patch_frames, hop_frames = int(patch_frames), int(hop_frames)
    starts = np.arange(count, dtype=np.int64) * hop_frames
    if count == 0:
        return np.empty((0,) + x.shape[:-1] + (patch_frames,), dtype=x.dtype), starts
    extended = _extend(x, length=int(starts[-1]) + patch_frames, pad=pad, pad_column=pad_column)
    windows = np.lib.stride_tricks.sliding_window_view(extended, patch_frames, axis=-1)[..., ::hop_frames, :]
    return np.ascontiguousarray(np.moveaxis(windows, -2, 0)), starts


def frame_windows(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    window_frames: int,
    hop_frames: int,
    pad: str = "silence",
    pad_column: Any = None,
    label_pad: Any = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a feature and its frame-level labels into aligned windows (short decision scale).

    Both arrays are cut by :func:`patches` with the same starts, so
    ``window_labels[i, ..., j]`` is the label of frame ``starts[i] + j`` of ``x``. Padded
    label frames get ``label_pad`` in ``"silence"`` mode; in ``"wrap"`` mode they are the
    labels of the looped frames.

    Parameters
    ----------
    x : np.ndarray [shape=(..., n_frames)]
    labels : np.ndarray [shape=(..., n_frames)]
        E.g. ``(n_frames,)`` onset targets or chord indices, ``(n_pitches, n_frames)`` piano roll.
    window_frames : int > 0
    hop_frames : int > 0
    pad : {"silence", "wrap", "drop"}
    pad_column : np.ndarray [shape=(..., 1)] or broadcastable, optional
        Feature of a silent frame; default zeros.
    label_pad : scalar or np.ndarray broadcastable to ``labels.shape[:-1] + (1,)``
        Label of padded frames (e.g. 0 for onsets, the index of ``"N"`` for chords).

    Returns
    -------
    windows : np.ndarray [shape=(n_windows, ..., window_frames)], dtype of ``x``
    window_labels : np.ndarray [shape=(n_windows, ..., window_frames)], dtype of ``labels``
    starts : np.ndarray [shape=(n_windows,)], int64

    Raises
    ------
    ConfigError
        If ``labels`` and ``x`` have different numbers of frames, or as :func:`patches`.

    Examples
    --------
    >>> x, labels = np.zeros((2, 5), np.float32), np.arange(5)
    >>> windows, window_labels, starts = frame_windows(x, labels, window_frames=3, hop_frames=3, label_pad=-1)
    >>> windows.shape, window_labels
    ((2, 2, 3), array([[ 0,  1,  2],
           [ 3,  4, -1]]))
    """
    x = _check_features(x)
    labels = _check_features(labels, name="labels")
    if labels.shape[-1] != x.shape[-1]:
        raise ConfigError(
            f"labels have {labels.shape[-1]} frames but x has {x.shape[-1]}: they must be aligned frame by frame"
        )
    windows, starts = patches(x, patch_frames=window_frames, hop_frames=hop_frames, pad=pad, pad_column=pad_column)
    window_labels, _ = patches(labels, patch_frames=window_frames, hop_frames=hop_frames, pad=pad,
                               pad_column=label_pad)
    return windows, window_labels, starts


def center_crop(
    x: np.ndarray, *, n_frames: int, pad: str = "silence", pad_column: Any = None
) -> tuple[np.ndarray, int]:
    """The middle ``n_frames`` frames of ``x`` (time last), padded at the end if ``x`` is shorter.

    Parameters
    ----------
    x : np.ndarray [shape=(..., n)]
    n_frames : int > 0
    pad : {"silence", "wrap"}
        How a shorter ``x`` is extended (as in :func:`patches`); ``"drop"`` has no
        meaning for a single crop and raises.
    pad_column : np.ndarray [shape=(..., 1)] or broadcastable, optional
        Feature of a silent frame; default zeros.

    Returns
    -------
    crop : np.ndarray [shape=(..., n_frames)], dtype of ``x``
    start : int
        First frame of the crop in ``x`` (``(n - n_frames) // 2``, or 0 if ``x`` is shorter),
        to crop aligned labels the same way.

    Examples
    --------
    >>> center_crop(np.arange(6), n_frames=3)
    (array([1, 2, 3]), 1)
    >>> center_crop(np.arange(2), n_frames=3, pad="wrap")
    (array([0, 1, 0]), 0)
    """
    x = _check_features(x)
    n_frames = _integer(n_frames, name="n_frames", minimum=1)
    pad = _check_pad(pad, allowed=("silence", "wrap"))
    start = max(x.shape[-1] - n_frames, 0) // 2
    crop = _extend(x[..., start:], length=n_frames, pad=pad, pad_column=pad_column)
    return np.ascontiguousarray(crop), start


def random_crop(
    x: np.ndarray, *, n_frames: int, rng: np.random.Generator, pad: str = "silence", pad_column: Any = None
) -> tuple[np.ndarray, int]:
    """``n_frames`` frames of ``x`` (time last) from a uniformly random start; padded if ``x`` is shorter.

    The start is ``rng.integers(0, n - n_frames + 1)``; it is 0, and ``x`` is padded by
    ``pad``, when ``x`` is not longer than ``n_frames``.

    Parameters
    ----------
    x : np.ndarray [shape=(..., n)]
    n_frames : int > 0
    rng : np.random.Generator
    pad : {"silence", "wrap"}
    pad_column : np.ndarray [shape=(..., 1)] or broadcastable, optional

    Returns
    -------
    crop : np.ndarray [shape=(..., n_frames)], dtype of ``x``
    start : int
        In ``[0, max(n - n_frames, 0)]``.

    Examples
    --------
    >>> crop, start = random_crop(np.arange(10), n_frames=4, rng=np.random.default_rng(0))
    >>> bool((crop == np.arange(start, start + 4)).all())
    True
    """
    x = _check_features(x)
    n_frames = _integer(n_frames, name="n_frames", minimum=1)
    pad = _check_pad(pad, allowed=("silence", "wrap"))
    generator(rng, name="rng")
    start = int(rng.integers(0, max(x.shape[-1] - n_frames, 0) + 1))
    crop = _extend(x[..., start:], length=n_frames, pad=pad, pad_column=pad_column)
    return np.ascontiguousarray(crop), start
