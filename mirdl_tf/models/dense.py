"""Frame-wise dense network (MLP over a context window of frames): the ``dense`` family."""
from __future__ import annotations

from collections.abc import Sequence

import keras

from mirdl_tf.models import skeleton

__all__ = ["dense"]


def dense(
    input_shape: Sequence[int | None],
    n_outputs: int,
    *,
    task: str = "frame_notes",
    context: int = 4,
    units: int = 256,
    n_layers: int = 3,
    dropout: float = 0.25,
    input_norm: bool = True,
    name: str = "dense",
) -> keras.Model:
    """Early MIR DNN: an MLP on each frame with +-``context`` frames of context.

    The first hidden layer is a ``Conv1D`` of width ``2 * context + 1`` over time with
    frequency bins as channels, which is a dense layer on the flattened context window of
    every frame (zero-padded at the clip edges); the other hidden layers are per-frame
    ``Dense``. Frame tasks get one output per input frame; clip tasks average the last hidden
    layer over time first. Any ``n_time`` (or None) works.

    Parameters
    ----------
    input_shape : (n_freq, n_time) or (n_freq, n_time, n_channels)
    n_outputs : int >= 1
    task : str
        Any of :data:`~mirdl_tf.models.skeleton.TASKS`.
    context : int >= 0
        Frames of context on each side.
    units : int >= 1
        Width of every hidden layer.
    n_layers : int >= 1
        Hidden layers.
    dropout : float in [0, 1)
        After every hidden layer.
    input_norm : bool
        Batch-normalise the input per frequency bin (store features are unnormalised dB).
    name : str

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> dense((40, 100), 88, task="frame_notes", context=2).output_shape
    (None, 100, 88)
    """
    shape, n_outputs, head = skeleton.check_io("dense", input_shape, n_outputs, task, skeleton.TASKS)
    context = skeleton.check_int("context", context, 0)
    units = skeleton.check_int("units", units)
    n_layers = skeleton.check_int("n_layers", n_layers)
    dropout = skeleton.check_rate("dropout", dropout)

    inputs = skeleton.input_layer(shape)
    x = skeleton.as_sequence(inputs, shape)
    if input_norm:
        x = keras.layers.BatchNormalization(name="input_norm")(x)
    for i in range(1, n_layers + 1):
        if i == 1:
            x = keras.layers.Conv1D(units, 2 * context + 1, padding="same", name=f"hidden_{i}_dense")(x)
        else:
            x = keras.layers.Dense(units, name=f"hidden_{i}_dense")(x)
        x = keras.layers.Activation("relu", name=f"hidden_{i}_act")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"hidden_{i}_dropout")(x)
        x = keras.layers.Identity(name=f"hidden_{i}_out")(x)
    if not head.frame_level:
        x = keras.layers.GlobalAveragePooling1D(name="global_pool")(x)
    return keras.Model(inputs, skeleton.output_layer(x, n_outputs, head, 0.0), name=name)
