"""Keras 3 builders for the models of Choi, Fazekas et al. (2017), "A Tutorial on Deep Learning for MIR".

One module per model family (:mod:`~mirdl_tf.models.dense`, :mod:`~mirdl_tf.models.fcn`,
:mod:`~mirdl_tf.models.temporal_cnn`, :mod:`~mirdl_tf.models.musically_motivated`,
:mod:`~mirdl_tf.models.crnn`, :mod:`~mirdl_tf.models.birnn`) and a shared skeleton
(:mod:`~mirdl_tf.models.skeleton`: tasks, heads, losses, checks, blocks). :data:`MODELS` maps
each builder's name to it. Every builder is a plain function with explicit arguments
returning a named, uncompiled :class:`keras.Model`::

    fn(input_shape, n_outputs, *, task=..., <architecture args>, name=...) -> keras.Model

Inputs
    A feature patch from a store is ``(freq, time)`` or ``(channels, freq, time)``; models take
    ``input_shape=(n_freq, n_time)`` or ``(n_freq, n_time, n_channels)`` (channels last, so
    the data pipeline transposes multichannel patches). ``n_time`` may be None (variable
    length) for every builder here: all of them are convolutional or recurrent along time.
Tasks
    Clip tasks (``single_label``, ``multi_label``, ``regression``) output
    ``(batch, n_outputs)``; frame tasks (``frame_onset``, ``frame_notes``, ``frame_chords``)
    output ``(batch, n_time, n_outputs)`` with the input's time resolution (frame models pool
    only along frequency). :func:`head_for_task`, :func:`loss_for_task` and
    :func:`metrics_for_task` keep the output activation, loss and metrics of a task in one place.
Names
    Layers are named ``f"{block}_{i}_{role}"`` (``block_2_conv``, ``birnn_1_gru``); the output of
    each block is an :class:`keras.layers.Identity` named ``..._out``, which
    :func:`feature_layers` lists for transfer features (Choi et al. 2017b).

Examples
--------
>>> model = build_model("fcn", input_shape=(96, 128), n_outputs=50, task="multi_label")
>>> model.compile(optimizer="adam", loss=loss_for_task("multi_label"),
...               metrics=metrics_for_task("multi_label"))
>>> model.output_shape
(None, 50)
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import keras

from mirdl_tf.models.birnn import birnn
from mirdl_tf.models.crnn import crnn
from mirdl_tf.models.dense import dense
from mirdl_tf.models.fcn import VARIABLE_TIME_POOL, fcn
from mirdl_tf.models.musically_motivated import musically_motivated
from mirdl_tf.models.skeleton import (
    CLIP_TASKS,
    FRAME_TASKS,
    TASKS,
    Head,
    head_for_task,
    loss_for_task,
    metrics_for_task,
)
from mirdl_tf.models.temporal_cnn import temporal_cnn

__all__ = [
    "CLIP_TASKS",
    "FRAME_TASKS",
    "TASKS",
    "VARIABLE_TIME_POOL",
    "Head",
    "head_for_task",
    "loss_for_task",
    "metrics_for_task",
    "dense",
    "fcn",
    "temporal_cnn",
    "musically_motivated",
    "crnn",
    "birnn",
    "dense_frames",
    "musicnn_pons",
    "birnn_frames",
    "MODELS",
    "build_model",
    "feature_layers",
    "feature_extractor",
]

#: Model builders by name; each key is its builder's ``__name__`` (the ``model.name`` of a train config).
MODELS: dict[str, Callable[..., keras.Model]] = {
    builder.__name__: builder for builder in (dense, fcn, temporal_cnn, musically_motivated, crnn, birnn)
}

# The builders' earlier names, kept so existing code keeps working.
dense_frames = dense
musicnn_pons = musically_motivated
birnn_frames = birnn


def build_model(name: str, *, input_shape: Sequence[int | None], n_outputs: int, task: str,
                **kwargs: Any) -> keras.Model:
    """Build ``MODELS[name]`` with the common arguments and the builder's own ``kwargs``.

    Raises
    ------
    ValueError
        Unknown ``name`` or keyword argument (the message lists the choices), or any invalid
        argument value (from the builder).

    Examples
    --------
    >>> build_model("crnn", input_shape=(32, 40), n_outputs=4, task="single_label",
    ...             conv_filters=(4, 4), rnn_units=4).name
    'crnn'
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model name={name!r}. Choices: {sorted(MODELS)}")
    builder = MODELS[name]
    accepted = [p.name for p in inspect.signature(builder).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "task"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {unknown} for model {name!r}. Its arguments: {accepted}"
        )
    return builder(input_shape, n_outputs, task=task, **kwargs)


def feature_layers(model: keras.Model) -> list[str]:
    """Names of the block outputs to pool for transfer features (Choi et al. 2017b), input to output.

    Every builder here ends each block (conv block, recurrent layer, hidden layer, front end,
    back-end layer, penultimate layer) with an ``Identity`` named ``*_out``; these are they.

    Examples
    --------
    >>> feature_layers(fcn((32, 32), 4, n_layers=2, base_filters=4))
    ['block_1_out', 'block_2_out']
    """
    return [layer.name for layer in model.layers if layer.name.endswith("_out")]


def feature_extractor(model: keras.Model, layer_names: Sequence[str] | None = None, *,
                      name: str | None = None) -> keras.Model:
    """A model mapping the input to the concatenated time/frequency averages of feature layers.

    Each layer output is globally average-pooled over every axis but the last (channels), as in
    Choi et al. (2017b)'s transfer learning, and the results are concatenated:
    ``(batch, sum of channels)``. The weights are shared with ``model``.

    Parameters
    ----------
    model : keras.Model
    layer_names : sequence of str or None
        Defaults to :func:`feature_layers`.
    name : str or None
        Defaults to ``f"{model.name}_features"``.

    Returns
    -------
    keras.Model
    """
    names = feature_layers(model) if layer_names is None else list(layer_names)
    if not names:
        raise ValueError(
            f"model {model.name!r} has no feature layers (names ending in '_out'). "
            f"Received: layer_names={layer_names!r}"
        )
    pooled = []
    for layer_name in names:
        output = model.get_layer(layer_name).output
        rank = len(output.shape)
        if rank == 4:
            output = keras.layers.GlobalAveragePooling2D(name=f"{layer_name}_gap")(output)
        elif rank == 3:
            output = keras.layers.GlobalAveragePooling1D(name=f"{layer_name}_gap")(output)
        pooled.append(output)
    features = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="transfer_features")(pooled)
    return keras.Model(model.input, features, name=name or f"{model.name}_features")
