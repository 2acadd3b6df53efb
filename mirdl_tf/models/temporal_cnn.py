"""1-D convolutions along time (Dieleman & Schrauwen 2014): the ``temporal_cnn`` family."""
from __future__ import annotations

from collections.abc import Sequence

import keras

from mirdl_tf.models import skeleton

__all__ = ["temporal_cnn"]


def temporal_cnn(
    input_shape: Sequence[int | None],
    n_outputs: int,
    *,
    task: str = "multi_label",
    n_layers: int = 3,
    filters: int | Sequence[int] = 32,
    kernel_size: int = 8,
    pool_size: int = 4,
    dropout: float = 0.1,
    input_norm: bool = True,
    name: str = "temporal_cnn",
) -> keras.Model:
    """1-D convolutions along time with frequency bins as channels (Dieleman & Schrauwen 2014).

    Each block is ``Conv1D(kernel_size)`` + batchnorm + ReLU; for clip tasks it is followed by
    max-pooling over time (``pool_size``) and the model ends with global temporal pooling
    (mean and max, concatenated); for frame tasks nothing pools over time and the head is
    per frame.

    Parameters
    ----------
    input_shape : (n_freq, n_time) or (n_freq, n_time, n_channels)
    n_outputs : int >= 1
    task : str
        Any of :data:`~mirdl_tf.models.skeleton.TASKS`.
    n_layers : int >= 1
    filters : int >= 1 or sequence of n_layers ints
    kernel_size : int >= 1
        Frames per filter.
    pool_size : int >= 1
        Time pooling after each block (clip tasks only).
    dropout : float in [0, 1)
    input_norm : bool
    name : str

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> temporal_cnn((40, None), 1, task="frame_onset", filters=8).output_shape
    (None, None, 1)
    """
    shape, n_outputs, head = skeleton.check_io("temporal_cnn", input_shape, n_outputs, task, skeleton.TASKS)
    n_layers = skeleton.check_int("n_layers", n_layers)
    filters = skeleton.check_ints("filters", filters, length=n_layers)
    kernel_size = skeleton.check_int("kernel_size", kernel_size)
    pool_size = skeleton.check_int("pool_size", pool_size)
    dropout = skeleton.check_rate("dropout", dropout)

    inputs = skeleton.input_layer(shape)
    x = skeleton.as_sequence(inputs, shape)
    if input_norm:
        x = keras.layers.BatchNormalization(name="input_norm")(x)
    for i, n_filters in enumerate(filters, start=1):
        x = keras.layers.Conv1D(n_filters, kernel_size, padding="same", use_bias=False, name=f"temporal_{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"temporal_{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"temporal_{i}_act")(x)
        if not head.frame_level and pool_size > 1:
            x = keras.layers.MaxPooling1D(pool_size, padding="same", name=f"temporal_{i}_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"temporal_{i}_dropout")(x)
        x = keras.layers.Identity(name=f"temporal_{i}_out")(x)
    if not head.frame_level:
        x = keras.layers.Concatenate(name="global_pool")([
            keras.layers.GlobalAveragePooling1D(name="global_avg_pool")(x),
            keras.layers.GlobalMaxPooling1D(name="global_max_pool")(x),
        ])
    return keras.Model(inputs, skeleton.output_layer(x, n_outputs, head, 0.0), name=name)
