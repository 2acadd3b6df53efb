"""Musically motivated CNN (Pons et al. 2016, 2017; musicnn): the ``musically_motivated`` family."""
from __future__ import annotations

from collections.abc import Sequence

import keras

from mirdl.features import checks
from mirdl_tf.models import skeleton

__all__ = ["musically_motivated"]


def musically_motivated(
    input_shape: Sequence[int | None],
    n_outputs: int,
    *,
    task: str = "multi_label",
    timbral_heights: Sequence[float] = (0.4, 0.7),
    timbral_width: int = 7,
    temporal_widths: Sequence[int] = (32, 64, 128),
    filters: int = 32,
    backend_filters: int = 64,
    dense_units: int = 64,
    dropout: float = 0.5,
    input_norm: bool = True,
    name: str = "musically_motivated",
) -> keras.Model:
    """Musically motivated CNN (Pons et al. 2016, 2017; the musicnn front end).

    Front end: parallel branches on the spectrogram, each a conv + batchnorm + ReLU then a
    max-pool over all remaining frequency, so every branch gives ``(time, filters)``:

    - timbral (vertical) filters of height ``round(h * n_freq)`` for each ``h`` in
      ``timbral_heights`` and width ``timbral_width`` (valid along frequency, ``same`` along
      time, as musicnn pads only time);
    - temporal (horizontal) filters of height 1 and each width in ``temporal_widths`` (clipped
      to ``n_time`` when known).

    The branches are concatenated; the back end is two ``Conv1D(backend_filters, 7)`` layers
    (the second residual), global max + mean pooling over time, a ``Dense(dense_units)``
    penultimate layer and the head.

    Parameters
    ----------
    input_shape : (n_freq, n_time) or (n_freq, n_time, n_channels)
    n_outputs : int >= 1
    task : {"single_label", "multi_label", "regression"}
    timbral_heights : sequence of float in (0, 1]
        Fractions of ``n_freq``.
    timbral_width : int >= 1
        Frames covered by the timbral filters (1 to 7 in the papers).
    temporal_widths : sequence of int >= 1
        Frames covered by the temporal filters.
    filters : int >= 1
        Filters per branch.
    backend_filters, dense_units : int >= 1
    dropout : float in [0, 1)
        Before the penultimate and the output layer.
    input_norm : bool
    name : str

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> musically_motivated((32, 40), 5, filters=4, temporal_widths=(8,)).output_shape
    (None, 5)
    """
    shape, n_outputs, head = skeleton.check_io("musically_motivated", input_shape, n_outputs, task, skeleton.CLIP_TASKS)
    if (
        isinstance(timbral_heights, (str, bytes)) or not isinstance(timbral_heights, Sequence)
        or not all(skeleton.passes(checks.fraction, h) and h > 0 for h in timbral_heights)
    ):
        raise skeleton.KerasCheckError("timbral_heights", timbral_heights, "must be a sequence of fractions in (0, 1]")
    timbral_width = skeleton.check_int("timbral_width", timbral_width)
    temporal_widths = () if not temporal_widths else skeleton.check_ints("temporal_widths", temporal_widths)
    if not timbral_heights and not temporal_widths:
        raise ValueError("musically_motivated needs at least one timbral or temporal branch. "
                         f"Received: timbral_heights={timbral_heights!r}, temporal_widths={temporal_widths!r}")
    filters = skeleton.check_int("filters", filters)
    backend_filters = skeleton.check_int("backend_filters", backend_filters)
    dense_units = skeleton.check_int("dense_units", dense_units)
    dropout = skeleton.check_rate("dropout", dropout)
    n_freq, n_time = shape[0], shape[1]

    inputs = skeleton.input_layer(shape)
    x = skeleton.as_image(inputs, shape)
    if input_norm:
        x = keras.layers.BatchNormalization(axis=1, name="input_norm")(x)
    branches = []
    for i, fraction in enumerate(timbral_heights, start=1):
        height = min(n_freq, max(1, round(fraction * n_freq)))
        left = (timbral_width - 1) // 2  # Keras' own split of `same` padding
        y = keras.layers.ZeroPadding2D(((0, 0), (left, timbral_width - 1 - left)), name=f"timbral_{i}_pad")(x)
        y = keras.layers.Conv2D(filters, (height, timbral_width), use_bias=False, name=f"timbral_{i}_conv")(y)
        branches.append(_frequency_max(y, f"timbral_{i}", n_freq - height + 1))
    for i, width in enumerate(temporal_widths, start=1):
        width = width if n_time is None else min(width, n_time)
        y = keras.layers.Conv2D(filters, (1, width), padding="same", use_bias=False, name=f"temporal_{i}_conv")(x)
        branches.append(_frequency_max(y, f"temporal_{i}", n_freq))
    x = branches[0] if len(branches) == 1 else keras.layers.Concatenate(name="frontend_concat")(branches)
    x = keras.layers.Identity(name="frontend_out")(x)

    for i in (1, 2):
        y = keras.layers.Conv1D(backend_filters, 7, padding="same", use_bias=False, name=f"backend_{i}_conv")(x)
        y = keras.layers.BatchNormalization(name=f"backend_{i}_bn")(y)
        y = keras.layers.Activation("relu", name=f"backend_{i}_act")(y)
        x = y if i == 1 else keras.layers.Add(name=f"backend_{i}_residual")([x, y])
        x = keras.layers.Identity(name=f"backend_{i}_out")(x)
    x = keras.layers.Concatenate(name="global_pool")([
        keras.layers.GlobalMaxPooling1D(name="global_max_pool")(x),
        keras.layers.GlobalAveragePooling1D(name="global_avg_pool")(x),
    ])
    if dropout:
        x = keras.layers.Dropout(dropout, name="penultimate_dropout")(x)
    x = keras.layers.Dense(dense_units, use_bias=False, name="penultimate_dense")(x)
    x = keras.layers.BatchNormalization(name="penultimate_bn")(x)
    x = keras.layers.Activation("relu", name="penultimate_act")(x)
    x = keras.layers.Identity(name="penultimate_out")(x)
    return keras.Model(inputs, skeleton.output_layer(x, n_outputs, head, dropout), name=name)


def _frequency_max(x: keras.KerasTensor, prefix: str, n_freq: int) -> keras.KerasTensor:
    """batchnorm + ReLU, then max over all ``n_freq`` rows: (freq, time, ch) -> (time, ch)."""
    x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
    x = keras.layers.Activation("relu", name=f"{prefix}_act")(x)
    x = keras.layers.MaxPooling2D((n_freq, 1), name=f"{prefix}_pool")(x)
    return keras.layers.Reshape((-1, x.shape[-1]), name=f"{prefix}_squeeze")(x)
