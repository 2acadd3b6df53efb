"""The parts every model family shares: tasks and their heads, losses and metrics; argument checks; blocks.

- Tasks: :data:`TASKS`, :class:`Head`, :func:`head_for_task`, :func:`loss_for_task`,
  :func:`metrics_for_task` keep a task's output activation, loss and metrics in one place.
- Checks: :func:`check_io` (input shape, output size, task) and the argument checks every
  builder runs before it builds a layer.
- Blocks: input reshaping (:func:`as_image`, :func:`as_sequence`), the 3x3 conv block, the
  recurrent layer and the output layer, with hierarchical layer names.

Examples
--------
>>> head_for_task("multi_label")
Head(activation='sigmoid', frame_level=False)
>>> reduction_plan(96, 5)
[2, 3, 3, 2, 3]
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from mirdl.features import checks
from mirdl.features.checks import CheckError
from mirdl.store.format import TASK_TYPES

__all__ = [
    "CLIP_TASKS",
    "FRAME_TASKS",
    "TASKS",
    "Head",
    "HEADS",
    "head_for_task",
    "loss_for_task",
    "metrics_for_task",
    "check_task",
    "check_one_hot",
    "KerasCheckError",
    "keras_check",
    "is_int",
    "passes",
    "check_int",
    "check_rate",
    "check_ints",
    "check_choice",
    "check_io",
    "check_pool_sizes",
    "reduction_plan",
    "input_layer",
    "as_image",
    "as_sequence",
    "image_to_sequence",
    "conv2d_block",
    "rnn_layer",
    "output_layer",
]

#: Every task a store can hold (defined once, in :data:`mirdl.store.format.TASK_TYPES`).
TASKS = TASK_TYPES
#: Tasks with one label per frame (``frame_*``), output ``(batch, n_time, n_outputs)``.
FRAME_TASKS = tuple(task for task in TASK_TYPES if task.startswith("frame_"))
#: Tasks with one label per clip, output ``(batch, n_outputs)``.
CLIP_TASKS = tuple(task for task in TASK_TYPES if task not in FRAME_TASKS)


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


HEADS = {
    "single_label": Head("softmax", frame_level=False),
    "multi_label": Head("sigmoid", frame_level=False),
    "regression": Head("linear", frame_level=False),
    "frame_onset": Head("sigmoid", frame_level=True),
    "frame_notes": Head("sigmoid", frame_level=True),
    "frame_chords": Head("softmax", frame_level=True),
}


def check_task(task: Any, supported: Sequence[str] = TASKS, *, builder: str | None = None) -> str:
    task = keras_check(checks.choice, "task", task, options=TASKS)
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
    return HEADS[check_task(task)]


def check_one_hot(task: str, one_hot: Any) -> bool:
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
    task = check_task(task)
    if check_one_hot(task, one_hot):
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
    task = check_task(task)
    if check_one_hot(task, one_hot):
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


def keras_check(check: Callable[..., Any], name: str, value: Any, **kwargs: Any) -> Any:
    """Run a :mod:`mirdl.features.checks` checker, re-raising in Keras' phrasing.

    The error is a :class:`~mirdl.features.checks.CheckError` (a ``ValueError``) whose text
    reads ``"dropout must be a number in [0, 1). Received: dropout=1.5"``; its parts let a
    config loader name the field instead (``model.args.dropout=1.5 ...``).
    """
    try:
        return check(value, name=name, **kwargs)
    except CheckError as err:
        raise KerasCheckError(name, value, err.requirement) from None


class KerasCheckError(CheckError):
    """A :class:`~mirdl.features.checks.CheckError` whose text is Keras-style."""

    def __str__(self) -> str:
        return f"{self.name} {self.requirement}. Received: {self.name}={self.value!r}"


def passes(check: Callable[..., Any], value: Any, **kwargs: Any) -> bool:
    """Whether ``value`` passes a :mod:`mirdl.features.checks` checker (for values inside sequences)."""
    try:
        check(value, name="value", **kwargs)
    except CheckError:
        return False
    return True


def is_int(value: Any) -> bool:
    """Python or numpy integer, not bool (sizes often come from array shapes)."""
    return passes(checks.integer, value)


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    return keras_check(checks.integer, name, value, minimum=minimum)


def check_rate(name: str, value: Any) -> float:
    """A dropout rate: a number in [0, 1)."""
    if not passes(checks.fraction, value) or float(value) == 1.0:
        raise KerasCheckError(name, value, "must be a number in [0, 1)")
    return float(value)


def check_ints(name: str, values: Any, *, length: int | None = None) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (an int is repeated ``length`` times when given)."""
    if is_int(values) and length is not None:
        values = (values,) * length
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values or any(
        not is_int(v) or v < 1 for v in values
    ):
        raise KerasCheckError(name, values, "must be a non-empty sequence of integers >= 1")
    if length is not None and len(values) != length:
        raise KerasCheckError(name, values, f"must have {length} entries")
    return tuple(int(v) for v in values)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    return keras_check(checks.choice, name, value, options=choices)


def check_io(
    builder: str, input_shape: Any, n_outputs: Any, task: Any, supported: Sequence[str]
) -> tuple[tuple[int | None, ...], int, Head]:
    """Validate the arguments every builder shares; return (input_shape, n_outputs, head)."""
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
    if (
        shape is None
        or len(shape) not in (2, 3)
        or any(
            (dim is not None or axis != 1) and (not is_int(dim) or dim < 1)
            for axis, dim in enumerate(shape)
        )
    ):
        raise ValueError(
            "input_shape must be (n_freq, n_time) or (n_freq, n_time, n_channels) of positive "
            f"integers (n_time may be None). Received: input_shape={input_shape!r}"
        )
    shape = tuple(None if dim is None else int(dim) for dim in shape)
    n_outputs = check_int("n_outputs", n_outputs)
    task = check_task(task, supported, builder=builder)
    if task == "frame_onset" and n_outputs != 1:
        raise ValueError(
            f"task='frame_onset' needs n_outputs=1 (one onset activation). Received: n_outputs={n_outputs}"
        )
    if task in ("single_label", "frame_chords") and n_outputs < 2:
        raise ValueError(f"task={task!r} (softmax) needs n_outputs >= 2 classes. Received: n_outputs={n_outputs}")
    return shape, n_outputs, HEADS[task]


def reduction_plan(size: int, n_steps: int) -> list[int]:
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


def check_pool_sizes(pool_sizes: Any, n_blocks: int) -> tuple[tuple[int, int], ...]:
    ok = isinstance(pool_sizes, Sequence) and len(pool_sizes) == n_blocks and all(
        isinstance(pool, Sequence) and len(pool) == 2 and all(is_int(p) and p >= 1 for p in pool)
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


def input_layer(shape: tuple[int | None, ...]) -> keras.KerasTensor:
    return keras.Input(shape=shape, name="input")


def as_image(x: keras.KerasTensor, shape: tuple[int | None, ...]) -> keras.KerasTensor:
    """(freq, time[, ch]) -> (freq, time, ch): 2-D convolutions see frequency as height."""
    if len(shape) == 2:
        n_freq, n_time = shape
        x = keras.layers.Reshape((n_freq, -1 if n_time is None else n_time, 1), name="input_reshape")(x)
    return x


def as_sequence(x: keras.KerasTensor, shape: tuple[int | None, ...]) -> keras.KerasTensor:
    """(freq, time[, ch]) -> (time, freq * ch): frequency bins (of every channel) become features."""
    if len(shape) == 2:
        return keras.layers.Permute((2, 1), name="input_permute")(x)
    n_freq, n_time, n_channels = shape
    x = keras.layers.Permute((2, 1, 3), name="input_permute")(x)
    return keras.layers.Reshape((-1 if n_time is None else n_time, n_freq * n_channels), name="input_reshape")(x)


def image_to_sequence(x: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
    """(freq', time', ch) -> (time', freq' * ch) after a conv front end."""
    n_freq, _, n_channels = x.shape[1:]
    x = keras.layers.Permute((2, 1, 3), name=f"{prefix}_permute")(x)
    return keras.layers.Reshape((-1, n_freq * n_channels), name=f"{prefix}_reshape")(x)


def conv2d_block(
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


def rnn_layer(kind: str, units: int, *, return_sequences: bool, name: str) -> keras.layers.Layer:
    cls = keras.layers.GRU if kind == "gru" else keras.layers.LSTM
    return cls(units, return_sequences=return_sequences, name=name)


def output_layer(x: keras.KerasTensor, n_outputs: int, head: Head, dropout: float) -> keras.KerasTensor:
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # float32 output keeps softmax/sigmoid and the loss stable under a mixed-precision policy.
    return keras.layers.Dense(n_outputs, activation=head.activation, dtype="float32", name="output")(x)
