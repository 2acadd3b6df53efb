"""Keras 3 builders for the models of Choi, Fazekas et al. (2017), "A Tutorial on Deep Learning for MIR".

Every builder is a plain function with explicit arguments returning a named, uncompiled
:class:`keras.Model`::

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
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras

__all__ = [
    "CLIP_TASKS",
    "FRAME_TASKS",
    "TASKS",
    "Head",
    "head_for_task",
    "loss_for_task",
    "metrics_for_task",
    "dense_frames",
    "fcn",
    "temporal_cnn",
    "musicnn_pons",
    "crnn",
    "birnn_frames",
    "MODELS",
    "build_model",
    "feature_layers",
    "feature_extractor",
]

CLIP_TASKS = ("single_label", "multi_label", "regression")
FRAME_TASKS = ("frame_onset", "frame_notes", "frame_chords")
TASKS = CLIP_TASKS + FRAME_TASKS

#: Time pooling per block of :func:`fcn` when ``n_time`` is None (Choi et al. 2016 pool 4-8 per block).
VARIABLE_TIME_POOL = 4


# --------------------------------------------------------------------------------------------
# Tasks: output activation, loss, metrics


@dataclass(frozen=True)
class Head:
    """What a task asks of the output layer.

    Attributes
    ----------
    activation : str
        Keras activation of the output ``Dense`` (applied to the last axis).
    frame_level : bool
        True if the model outputs one prediction per input frame.
    """

    activation: str
    frame_level: bool


_HEADS = {
    "single_label": Head("softmax", frame_level=False),
    "multi_label": Head("sigmoid", frame_level=False),
    "regression": Head("linear", frame_level=False),
    "frame_onset": Head("sigmoid", frame_level=True),
    "frame_notes": Head("sigmoid", frame_level=True),
    "frame_chords": Head("softmax", frame_level=True),
}


def _check_task(task: Any, supported: Sequence[str] = TASKS, *, builder: str | None = None) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}. Received: task={task!r}")
    if task not in supported:
        raise ValueError(f"{builder} supports task in {list(supported)}. Received: task={task!r}")
    return task


def head_for_task(task: str) -> Head:
    """Output activation and time resolution of ``task``.

    ``single_label`` softmax, ``multi_label`` sigmoid, ``regression`` linear (per clip);
    ``frame_onset`` / ``frame_notes`` sigmoid and ``frame_chords`` softmax (per frame).

    Examples
    --------
    >>> head_for_task("frame_chords")
    Head(activation='softmax', frame_level=True)
    """
    return _HEADS[_check_task(task)]


def _check_one_hot(task: str, one_hot: Any) -> bool:
    if not isinstance(one_hot, bool) or (one_hot and task not in ("single_label", "frame_chords")):
        raise ValueError(
            "one_hot=True is for the softmax tasks 'single_label' and 'frame_chords'. "
            f"Received: task={task!r}, one_hot={one_hot!r}"
        )
    return one_hot


def loss_for_task(task: str, *, one_hot: bool = False) -> keras.losses.Loss:
    """A new loss for ``task``, matching the label format the stores produce.

    ``single_label`` labels are int class indices ``(batch,)``: sparse categorical
    cross-entropy (categorical with ``one_hot=True``, for the float one-hot labels mixup
    makes); ``multi_label`` multi-hot ``(batch, n_outputs)``: binary cross-entropy;
    ``regression``: mean squared error; ``frame_onset`` / ``frame_notes`` per-frame binary
    targets ``(batch, n_time, n_outputs)`` (``(batch, n_time)`` also works for onsets):
    binary cross-entropy; ``frame_chords`` per-frame int class indices ``(batch, n_time)``:
    sparse categorical cross-entropy.
    """
    task = _check_task(task)
    if _check_one_hot(task, one_hot):
        return keras.losses.CategoricalCrossentropy(name="categorical_crossentropy")
    if task in ("single_label", "frame_chords"):
        return keras.losses.SparseCategoricalCrossentropy(name="sparse_categorical_crossentropy")
    if task in ("multi_label", "frame_onset", "frame_notes"):
        return keras.losses.BinaryCrossentropy(name="binary_crossentropy")
    return keras.losses.MeanSquaredError(name="mean_squared_error")


def metrics_for_task(task: str, *, one_hot: bool = False) -> list[keras.metrics.Metric]:
    """New metric objects for ``task`` (metrics hold state: call once per compile).

    ``single_label`` / ``frame_chords``: accuracy (frame-wise for chords; on one-hot labels
    with ``one_hot=True``); ``multi_label``:
    macro ROC-AUC and PR-AUC over tags (the auto-tagging measures of Choi et al. 2016);
    ``regression``: mean absolute error; ``frame_onset`` / ``frame_notes``: frame-wise binary
    accuracy, precision and recall at threshold 0.5.
    """
    task = _check_task(task)
    if _check_one_hot(task, one_hot):
        return [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if task in ("single_label", "frame_chords"):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if task == "multi_label":
        return [
            keras.metrics.AUC(curve="ROC", multi_label=True, name="roc_auc"),
            keras.metrics.AUC(curve="PR", multi_label=True, name="pr_auc"),
        ]
    if task == "regression":
        return [keras.metrics.MeanAbsoluteError(name="mae")]
    return [
        keras.metrics.BinaryAccuracy(name="accuracy"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
    ]


# --------------------------------------------------------------------------------------------
# Argument checks (all run before any layer is built)


def _is_int(value: Any) -> bool:
    """Python or numpy integer, not bool (sizes often come from array shapes)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if not _is_int(value):
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _check_rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)


def _check_ints(name: str, values: Any, *, length: int | None = None) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (an int is repeated ``length`` times when given)."""
    if _is_int(values) and length is not None:
        values = (values,) * length
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values or any(
        not _is_int(v) or v < 1 for v in values
    ):
        raise ValueError(f"{name} must be a non-empty sequence of integers >= 1. Received: {name}={values!r}")
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} entries. Received: {name}={values!r}")
    return tuple(int(v) for v in values)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def _check_io(
    builder: str, input_shape: Any, n_outputs: Any, task: Any, supported: Sequence[str]
) -> tuple[tuple[int | None, ...], int, Head]:
    """Validate the arguments every builder shares; return (input_shape, n_outputs, head)."""
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
    if (
        shape is None
        or len(shape) not in (2, 3)
        or any(
            (dim is not None or axis != 1) and (not _is_int(dim) or dim < 1)
            for axis, dim in enumerate(shape)
        )
    ):
        raise ValueError(
            "input_shape must be (n_freq, n_time) or (n_freq, n_time, n_channels) of positive "
            f"integers (n_time may be None). Received: input_shape={input_shape!r}"
        )
    shape = tuple(None if dim is None else int(dim) for dim in shape)
    n_outputs = _check_int("n_outputs", n_outputs)
    task = _check_task(task, supported, builder=builder)
    if task == "frame_onset" and n_outputs != 1:
        raise ValueError(
            f"task='frame_onset' needs n_outputs=1 (one onset activation). Received: n_outputs={n_outputs}"
        )
    if task in ("single_label", "frame_chords") and n_outputs < 2:
        raise ValueError(f"task={task!r} (softmax) needs n_outputs >= 2 classes. Received: n_outputs={n_outputs}")
    return shape, n_outputs, _HEADS[task]


def _reduction_plan(size: int, n_steps: int) -> list[int]:
    """Pool factors, one per step, whose running ceil-division brings ``size`` to exactly 1.

    Factors are spread evenly in log scale (96 over 5 steps: 2, 3, 3, 2, 3), so a small input
    (32 x 32) still gets n_steps pooling layers without any dimension reaching 0.
    """
    factors, remaining = [], size
    for step in range(n_steps):
        steps_left = n_steps - step
        factor = remaining if steps_left == 1 else max(1, round(remaining ** (1.0 / steps_left)))
        factors.append(factor)
        remaining = -(-remaining // factor)
    return factors


def _check_pool_sizes(pool_sizes: Any, n_blocks: int) -> tuple[tuple[int, int], ...]:
    ok = isinstance(pool_sizes, Sequence) and len(pool_sizes) == n_blocks and all(
        isinstance(pool, Sequence) and len(pool) == 2 and all(_is_int(p) and p >= 1 for p in pool)
        for pool in pool_sizes
    )
    if not ok:
        raise ValueError(
            f"pool_sizes must be None or {n_blocks} (freq, time) pairs of integers >= 1. "
            f"Received: pool_sizes={pool_sizes!r}"
        )
    return tuple((int(f), int(t)) for f, t in pool_sizes)


# --------------------------------------------------------------------------------------------
# Shared pieces


def _input(shape: tuple[int | None, ...]) -> keras.KerasTensor:
    return keras.Input(shape=shape, name="input")


def _as_image(x: keras.KerasTensor, shape: tuple[int | None, ...]) -> keras.KerasTensor:
    """(freq, time[, ch]) -> (freq, time, ch): 2-D convolutions see frequency as height."""
    if len(shape) == 2:
        n_freq, n_time = shape
        x = keras.layers.Reshape((n_freq, -1 if n_time is None else n_time, 1), name="input_reshape")(x)
    return x


def _as_sequence(x: keras.KerasTensor, shape: tuple[int | None, ...]) -> keras.KerasTensor:
    """(freq, time[, ch]) -> (time, freq * ch): frequency bins (of every channel) become features."""
    if len(shape) == 2:
        return keras.layers.Permute((2, 1), name="input_permute")(x)
    n_freq, n_time, n_channels = shape
    x = keras.layers.Permute((2, 1, 3), name="input_permute")(x)
    return keras.layers.Reshape((-1 if n_time is None else n_time, n_freq * n_channels), name="input_reshape")(x)


def _image_to_sequence(x: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
    """(freq', time', ch) -> (time', freq' * ch) after a conv front end."""
    n_freq, _, n_channels = x.shape[1:]
    x = keras.layers.Permute((2, 1, 3), name=f"{prefix}_permute")(x)
    return keras.layers.Reshape((-1, n_freq * n_channels), name=f"{prefix}_reshape")(x)


def _conv2d_block(
    x: keras.KerasTensor, block: str, i: int, *, filters: int, pool: tuple[int, int],
    activation: str, dropout: float,
) -> keras.KerasTensor:
    """3x3 conv + batchnorm + activation + max-pool (+ dropout); ``same`` padding everywhere.

    ``same`` pooling rounds sizes up (ceil), so a dimension smaller than its pool becomes 1,
    never 0.
    """
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{block}_{i}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{block}_{i}_bn")(x)
    x = keras.layers.Activation(activation, name=f"{block}_{i}_act")(x)
    if pool != (1, 1):
        x = keras.layers.MaxPooling2D(pool, padding="same", name=f"{block}_{i}_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{block}_{i}_dropout")(x)
    return keras.layers.Identity(name=f"{block}_{i}_out")(x)


def _rnn_layer(kind: str, units: int, *, return_sequences: bool, name: str) -> keras.layers.Layer:
    cls = keras.layers.GRU if kind == "gru" else keras.layers.LSTM
    return cls(units, return_sequences=return_sequences, name=name)


def _output(x: keras.KerasTensor, n_outputs: int, head: Head, dropout: float) -> keras.KerasTensor:
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # float32 output keeps softmax/sigmoid and the loss stable under a mixed-precision policy.
    return keras.layers.Dense(n_outputs, activation=head.activation, dtype="float32", name="output")(x)


# --------------------------------------------------------------------------------------------
# Builders


def dense_frames(
    input_shape: Sequence[int | None],
    n_outputs: int,
    *,
    task: str = "frame_notes",
    context: int = 4,
    units: int = 256,
    n_layers: int = 3,
    dropout: float = 0.25,
    input_norm: bool = True,
    name: str = "dense_frames",
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
        Any of :data:`TASKS`.
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
    >>> dense_frames((40, 100), 88, task="frame_notes", context=2).output_shape
    (None, 100, 88)
    """
    shape, n_outputs, head = _check_io("dense_frames", input_shape, n_outputs, task, TASKS)
    context = _check_int("context", context, 0)
    units = _check_int("units", units)
    n_layers = _check_int("n_layers", n_layers)
    dropout = _check_rate("dropout", dropout)

    inputs = _input(shape)
    x = _as_sequence(inputs, shape)
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
    return keras.Model(inputs, _output(x, n_outputs, head, 0.0), name=name)


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
    shape, n_outputs, head = _check_io("fcn", input_shape, n_outputs, task, CLIP_TASKS)
    n_layers = _check_int("n_layers", n_layers)
    base_filters = _check_int("base_filters", base_filters)
    dropout = _check_rate("dropout", dropout)
    global_pool = _check_choice("global_pool", global_pool, ("max", "avg"))
    if pool_sizes is None:
        n_freq, n_time = shape[0], shape[1]
        time_plan = [VARIABLE_TIME_POOL] * n_layers if n_time is None else _reduction_plan(n_time, n_layers)
        pools = tuple(zip(_reduction_plan(n_freq, n_layers), time_plan))
    else:
        pools = _check_pool_sizes(pool_sizes, n_layers)

    inputs = _input(shape)
    x = _as_image(inputs, shape)
    if input_norm:
        x = keras.layers.BatchNormalization(axis=1, name="input_norm")(x)
    for i, pool in enumerate(pools, start=1):
        x = _conv2d_block(x, "block", i, filters=base_filters * 2 ** (i - 1), pool=pool,
                          activation=activation, dropout=dropout)
    pooling = keras.layers.GlobalMaxPooling2D if global_pool == "max" else keras.layers.GlobalAveragePooling2D
    x = pooling(name="global_pool")(x)
    return keras.Model(inputs, _output(x, n_outputs, head, 0.0), name=name)


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
        Any of :data:`TASKS`.
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
    shape, n_outputs, head = _check_io("temporal_cnn", input_shape, n_outputs, task, TASKS)
    n_layers = _check_int("n_layers", n_layers)
    filters = _check_ints("filters", filters, length=n_layers)
    kernel_size = _check_int("kernel_size", kernel_size)
    pool_size = _check_int("pool_size", pool_size)
    dropout = _check_rate("dropout", dropout)

    inputs = _input(shape)
    x = _as_sequence(inputs, shape)
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
    return keras.Model(inputs, _output(x, n_outputs, head, 0.0), name=name)


def musicnn_pons(
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
    >>> musicnn_pons((32, 40), 5, filters=4, temporal_widths=(8,)).output_shape
    (None, 5)
    """
    shape, n_outputs, head = _check_io("musically_motivated", input_shape, n_outputs, task, CLIP_TASKS)
    if (
        isinstance(timbral_heights, (str, bytes)) or not isinstance(timbral_heights, Sequence)
        or any(isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 < h <= 1 for h in timbral_heights)
    ):
        raise ValueError(
            f"timbral_heights must be a sequence of fractions in (0, 1]. Received: timbral_heights={timbral_heights!r}"
        )
    timbral_width = _check_int("timbral_width", timbral_width)
    temporal_widths = () if not temporal_widths else _check_ints("temporal_widths", temporal_widths)
    if not timbral_heights and not temporal_widths:
        raise ValueError("musically_motivated needs at least one timbral or temporal branch. "
                         f"Received: timbral_heights={timbral_heights!r}, temporal_widths={temporal_widths!r}")
    filters = _check_int("filters", filters)
    backend_filters = _check_int("backend_filters", backend_filters)
    dense_units = _check_int("dense_units", dense_units)
    dropout = _check_rate("dropout", dropout)
    n_freq, n_time = shape[0], shape[1]

    inputs = _input(shape)
    x = _as_image(inputs, shape)
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
    return keras.Model(inputs, _output(x, n_outputs, head, dropout), name=name)


def _frequency_max(x: keras.KerasTensor, prefix: str, n_freq: int) -> keras.KerasTensor:
    """batchnorm + ReLU, then max over all ``n_freq`` rows: (freq, time, ch) -> (time, ch)."""
    x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
    x = keras.layers.Activation("relu", name=f"{prefix}_act")(x)
    x = keras.layers.MaxPooling2D((n_freq, 1), name=f"{prefix}_pool")(x)
    return keras.layers.Reshape((-1, x.shape[-1]), name=f"{prefix}_squeeze")(x)


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
    shape, n_outputs, head = _check_io("crnn", input_shape, n_outputs, task, CLIP_TASKS)
    conv_filters = _check_ints("conv_filters", conv_filters)
    rnn_units = _check_int("rnn_units", rnn_units)
    rnn_layers = _check_int("rnn_layers", rnn_layers)
    rnn = _check_choice("rnn", rnn, ("gru", "lstm"))
    dropout = _check_rate("dropout", dropout)
    n_blocks = len(conv_filters)
    if pool_sizes is None:
        time_plan = [2] * (n_blocks - 1) + [1]
        pools = tuple(zip(_reduction_plan(shape[0], n_blocks), time_plan))
    else:
        pools = _check_pool_sizes(pool_sizes, n_blocks)

    inputs = _input(shape)
    x = _as_image(inputs, shape)
    if input_norm:
        x = keras.layers.BatchNormalization(axis=1, name="input_norm")(x)
    for i, (n_filters, pool) in enumerate(zip(conv_filters, pools), start=1):
        x = _conv2d_block(x, "block", i, filters=n_filters, pool=pool, activation="elu", dropout=dropout)
    x = _image_to_sequence(x, "to_sequence")
    for i in range(1, rnn_layers + 1):
        x = _rnn_layer(rnn, rnn_units, return_sequences=i < rnn_layers, name=f"rnn_{i}_{rnn}")(x)
        x = keras.layers.Identity(name=f"rnn_{i}_out")(x)
    return keras.Model(inputs, _output(x, n_outputs, head, dropout), name=name)


def birnn_frames(
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
    name: str = "birnn_frames",
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
        Any of :data:`TASKS`.
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
    >>> birnn_frames((32, 40), 24, task="frame_chords", units=4, conv_filters=(4,)).output_shape
    (None, 40, 24)
    """
    shape, n_outputs, head = _check_io("birnn_frames", input_shape, n_outputs, task, TASKS)
    rnn = _check_choice("rnn", rnn, ("gru", "lstm"))
    units = _check_int("units", units)
    n_layers = _check_int("n_layers", n_layers)
    if not isinstance(conv_front, bool):
        raise ValueError(f"conv_front must be True or False. Received: conv_front={conv_front!r}")
    conv_filters = _check_ints("conv_filters", conv_filters) if conv_front else ()
    dropout = _check_rate("dropout", dropout)

    inputs = _input(shape)
    if conv_front:
        x = _as_image(inputs, shape)
        if input_norm:
            x = keras.layers.BatchNormalization(axis=1, name="input_norm")(x)
        freq_plan = _reduction_plan(shape[0], len(conv_filters))
        for i, (n_filters, freq_pool) in enumerate(zip(conv_filters, freq_plan), start=1):
            x = _conv2d_block(x, "block", i, filters=n_filters, pool=(freq_pool, 1), activation="elu",
                              dropout=dropout)
        x = _image_to_sequence(x, "to_sequence")
    else:
        x = _as_sequence(inputs, shape)
        if input_norm:
            x = keras.layers.BatchNormalization(name="input_norm")(x)
    for i in range(1, n_layers + 1):
        layer = _rnn_layer(rnn, units, return_sequences=True, name=f"birnn_{i}_{rnn}")
        x = keras.layers.Bidirectional(layer, merge_mode="concat", name=f"birnn_{i}_bidirectional")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"birnn_{i}_dropout")(x)
        x = keras.layers.Identity(name=f"birnn_{i}_out")(x)
    if not head.frame_level:
        x = keras.layers.GlobalAveragePooling1D(name="global_pool")(x)
    return keras.Model(inputs, _output(x, n_outputs, head, 0.0), name=name)


# --------------------------------------------------------------------------------------------
# Registry, transfer features

MODELS: dict[str, Callable[..., keras.Model]] = {
    "dense": dense_frames,
    "fcn": fcn,
    "temporal_cnn": temporal_cnn,
    "musically_motivated": musicnn_pons,
    "crnn": crnn,
    "birnn": birnn_frames,
}


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
