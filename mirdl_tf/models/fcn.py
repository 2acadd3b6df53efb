"""Fully convolutional network FCN-4 / FCN-5 (Choi et al. 2016): the ``fcn`` family."""
from __future__ import annotations

from collections.abc import Sequence

import keras

from mirdl_tf.models import skeleton

__all__ = ["fcn", "VARIABLE_TIME_POOL"]

#: Time pooling per block of :func:`fcn` when ``n_time`` is None (Choi et al. 2016 pool 4-8 per block).
VARIABLE_TIME_POOL = 4


def fcn(
    input_shape: Sequence[int | None],
    n_outputs: int,
    *,
    task: str = "multi_label",
    n_layers: int = 5,
    base_filters: int = 32,
    pool_sizes: Sequence[tuple[int, int]] | None = None,
    activation: str = "elu",
    dropout: float = 0.1,
    global_pool: str = "max",
    input_norm: bool = True,
    name: str = "fcn",
) -> keras.Model:
    """Fully convolutional network FCN-4 / FCN-5 (Choi et al. 2016, automatic tagging).

    ``n_layers`` blocks of 3x3 conv (``base_filters * 2**i`` filters) + batchnorm + ELU +
    max-pooling (+ dropout), a global pooling over what is left of (freq, time), the head.

    Pool sizes: with ``pool_sizes=None`` they are derived from the input shape so that
    frequency (and time, when ``n_time`` is known) shrink evenly to exactly 1 over the blocks
    (96 x 128, 5 blocks: freq 2, 3, 3, 2, 3 and time 3, 3, 2, 3, 3), so small inputs such as
    32 x 32 work; with ``n_time=None`` time is pooled by :data:`VARIABLE_TIME_POOL` per block.
    All pooling uses ``same`` padding (ceil), so explicit ``pool_sizes`` larger than what is
    left give a size of 1, never 0.

    Parameters
    ----------
    input_shape : (n_freq, n_time) or (n_freq, n_time, n_channels)
    n_outputs : int >= 1
    task : {"single_label", "multi_label", "regression"}
    n_layers : int >= 1
        4 or 5 in the paper.
    base_filters : int >= 1
        Filters of the first block, doubled at each block.
    pool_sizes : sequence of n_layers (freq, time) pairs, or None
    activation : str
        Keras activation of the blocks (the paper uses ELU).
    dropout : float in [0, 1)
        After each block.
    global_pool : {"max", "avg"}
    input_norm : bool
        Batch-normalise the input per frequency bin.
    name : str

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> fcn((32, 32), 10, task="single_label", n_layers=4, base_filters=4).output_shape
    (None, 10)
    """
    shape, n_outputs, head = skeleton.check_io("fcn", input_shape, n_outputs, task, skeleton.CLIP_TASKS)
    n_layers = skeleton.check_int("n_layers", n_layers)
    base_filters = skeleton.check_int("base_filters", base_filters)
    dropout = skeleton.check_rate("dropout", dropout)
    global_pool = skeleton.check_choice("global_pool", global_pool, ("max", "avg"))
    if pool_sizes is None:
        n_freq, n_time = shape[0], shape[1]
        time_plan = [VARIABLE_TIME_POOL] * n_layers if n_time is None else skeleton.reduction_plan(n_time, n_layers)
        pools = tuple(zip(skeleton.reduction_plan(n_freq, n_layers), time_plan))
    else:
        pools = skeleton.check_pool_sizes(pool_sizes, n_layers)

    inputs = skeleton.input_layer(shape)
    x = skeleton.as_image(inputs, shape)
    if input_norm:
        x = keras.layers.BatchNormalization(axis=1, name="input_norm")(x)
    for i, pool in enumerate(pools, start=1):
        x = skeleton.conv2d_block(x, "block", i, filters=base_filters * 2 ** (i - 1), pool=pool,
                          activation=activation, dropout=dropout)
    pooling = keras.layers.GlobalMaxPooling2D if global_pool == "max" else keras.layers.GlobalAveragePooling2D
    x = pooling(name="global_pool")(x)
    return keras.Model(inputs, skeleton.output_layer(x, n_outputs, head, 0.0), name=name)
