"""Bidirectional GRU/LSTM with one prediction per frame: the ``birnn`` family."""
from __future__ import annotations

from collections.abc import Sequence

import keras

from mirdl.features import checks
from mirdl_tf.models import skeleton

__all__ = ["birnn"]


def birnn(
    input_shape: Sequence[int | None],
    n_outputs: int,
    *,
    task: str = "frame_notes",
    rnn: str = "gru",
    units: int = 32,
    n_layers: int = 2,
    conv_front: bool = True,
    conv_filters: Sequence[int] = (16, 16),
    dropout: float = 0.1,
    input_norm: bool = True,
    name: str = "birnn",
) -> keras.Model:
    """Bidirectional GRU/LSTM with one prediction per frame (onsets, notes, chords).

    An optional conv front end (3x3 conv blocks pooling only along frequency, which shrinks
    evenly to 1) feeds ``n_layers`` bidirectional recurrent layers (forward and backward
    outputs concatenated) whose every time step goes through the head: the decision scale is
    one frame. For clip tasks the last recurrent outputs are averaged over time first.

    Parameters
    ----------
    input_shape : (n_freq, n_time) or (n_freq, n_time, n_channels)
    n_outputs : int >= 1
    task : str
        Any of :data:`~mirdl_tf.models.skeleton.TASKS`.
    rnn : {"gru", "lstm"}
    units : int >= 1
        Units of each direction.
    n_layers : int >= 1
        Bidirectional layers.
    conv_front : bool
    conv_filters : sequence of int >= 1
        Filters per front-end block (ignored without ``conv_front``).
    dropout : float in [0, 1)
        After each conv block and recurrent layer.
    input_norm : bool
    name : str

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> birnn((32, 40), 24, task="frame_chords", units=4, conv_filters=(4,)).output_shape
    (None, 40, 24)
    """
    shape, n_outputs, head = skeleton.check_io("birnn", input_shape, n_outputs, task, skeleton.TASKS)
    rnn = skeleton.check_choice("rnn", rnn, ("gru", "lstm"))
    units = skeleton.check_int("units", units)
    n_layers = skeleton.check_int("n_layers", n_layers)
    conv_front = skeleton.keras_check(checks.boolean, "conv_front", conv_front)
    conv_filters = skeleton.check_ints("conv_filters", conv_filters) if conv_front else ()
    dropout = skeleton.check_rate("dropout", dropout)

    inputs = skeleton.input_layer(shape)
    if conv_front:
        x = skeleton.as_image(inputs, shape)
        if input_norm:
            x = keras.layers.BatchNormalization(axis=1, name="input_norm")(x)
        freq_plan = skeleton.reduction_plan(shape[0], len(conv_filters))
        for i, (n_filters, freq_pool) in enumerate(zip(conv_filters, freq_plan), start=1):
            x = skeleton.conv2d_block(x, "block", i, filters=n_filters, pool=(freq_pool, 1), activation="elu",
                              dropout=dropout)
        x = skeleton.image_to_sequence(x, "to_sequence")
    else:
        x = skeleton.as_sequence(inputs, shape)
        if input_norm:
            x = keras.layers.BatchNormalization(name="input_norm")(x)
    for i in range(1, n_layers + 1):
        layer = skeleton.rnn_layer(rnn, units, return_sequences=True, name=f"birnn_{i}_{rnn}")
        x = keras.layers.Bidirectional(layer, merge_mode="concat", name=f"birnn_{i}_bidirectional")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"birnn_{i}_dropout")(x)
        x = keras.layers.Identity(name=f"birnn_{i}_out")(x)
    if not head.frame_level:
        x = keras.layers.GlobalAveragePooling1D(name="global_pool")(x)
    return keras.Model(inputs, skeleton.output_layer(x, n_outputs, head, 0.0), name=name)
