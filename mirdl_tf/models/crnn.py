"""Convolutional recurrent network (Choi et al. 2017): the ``crnn`` family."""
from __future__ import annotations

from collections.abc import Sequence

import keras

from mirdl_tf.models import skeleton

__all__ = ["crnn"]


def crnn(
    input_shape: Sequence[int | None],
    n_outputs: int,
    *,
    task: str = "multi_label",
    conv_filters: Sequence[int] = (32, 32, 32),
    pool_sizes: Sequence[tuple[int, int]] | None = None,
    rnn_units: int = 32,
    rnn_layers: int = 2,
    rnn: str = "gru",
    dropout: float = 0.1,
    input_norm: bool = True,
    name: str = "crnn",
) -> keras.Model:
    """Convolutional recurrent network (Choi et al. 2017, music tagging).

    A 2-D conv front end (3x3 conv + batchnorm + ELU + max-pool per block) pooling mostly along
    frequency, then ``rnn_layers`` GRU/LSTM layers over time; the clip label comes from the last
    state of the last layer.

    Pool sizes: with ``pool_sizes=None``, frequency shrinks evenly to 1 over the blocks (as in
    :func:`fcn`) and time is pooled by 2 in every block but the last (a 4x shorter sequence
    for 3 blocks); pooling uses ``same`` padding, so no size reaches 0. Frequency left over by
    explicit pools is folded into the features of each time step.

    Parameters
    ----------
    input_shape : (n_freq, n_time) or (n_freq, n_time, n_channels)
    n_outputs : int >= 1
    task : {"single_label", "multi_label", "regression"}
    conv_filters : sequence of int >= 1
        Filters per conv block (one block per entry).
    pool_sizes : sequence of (freq, time) pairs, one per block, or None
    rnn_units : int >= 1
    rnn_layers : int >= 1
    rnn : {"gru", "lstm"}
    dropout : float in [0, 1)
        After each conv block and before the output.
    input_norm : bool
    name : str

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> crnn((32, None), 3, task="regression", conv_filters=(4, 4), rnn_units=4).output_shape
    (None, 3)
    """
    shape, n_outputs, head = skeleton.check_io("crnn", input_shape, n_outputs, task, skeleton.CLIP_TASKS)
    conv_filters = skeleton.check_ints("conv_filters", conv_filters)
    rnn_units = skeleton.check_int("rnn_units", rnn_units)
    rnn_layers = skeleton.check_int("rnn_layers", rnn_layers)
    rnn = skeleton.check_choice("rnn", rnn, ("gru", "lstm"))
    dropout = skeleton.check_rate("dropout", dropout)
    n_blocks = len(conv_filters)
    if pool_sizes is None:
        time_plan = [2] * (n_blocks - 1) + [1]
        pools = tuple(zip(skeleton.reduction_plan(shape[0], n_blocks), time_plan))
    else:
        pools = skeleton.check_pool_sizes(pool_sizes, n_blocks)

    inputs = skeleton.input_layer(shape)
    x = skeleton.as_image(inputs, shape)
    if input_norm:
        x = keras.layers.BatchNormalization(axis=1, name="input_norm")(x)
    for i, (n_filters, pool) in enumerate(zip(conv_filters, pools), start=1):
        x = skeleton.conv2d_block(x, "block", i, filters=n_filters, pool=pool, activation="elu", dropout=dropout)
    x = skeleton.image_to_sequence(x, "to_sequence")
    for i in range(1, rnn_layers + 1):
        x = skeleton.rnn_layer(rnn, rnn_units, return_sequences=i < rnn_layers, name=f"rnn_{i}_{rnn}")(x)
        x = keras.layers.Identity(name=f"rnn_{i}_out")(x)
    return keras.Model(inputs, skeleton.output_layer(x, n_outputs, head, dropout), name=name)
