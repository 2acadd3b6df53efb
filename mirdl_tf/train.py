"""Train a Keras model from a feature store: config in, a self-contained model directory out.

Training is thin (STYLE.md section 4): the store's manifest (:func:`mirdl_tf.data.describe`)
gives the task, input shape and output size; :func:`mirdl_tf.models.build_model` the model;
:func:`mirdl_tf.data.load` the train and validation datasets; ``model.fit`` does the rest,
with callbacks for TensorBoard logs, checkpoints, early stopping and one progress line per
epoch.

The run directory ``OUT`` holds everything evaluation and extraction need, so they take
only ``--model OUT``::

    OUT/
      train_config.yaml     # the config, paths resolved
      model_info.json       # model, task + vocabulary, feature spec + fingerprint, segmentation,
                            # store (path relative to OUT) + fingerprint, normalisation
                            # (train mean/std), patch_frames, train label counts; no absolute path
      best.keras            # best epoch by early_stopping.monitor (weights + optimizer state)
      last.keras            # latest epoch (what a resumed run starts from)
      state.json            # epochs done, best value and epoch, early-stopping counter, history
      metrics.json          # final summary (written when the run ends)
      logs/                 # TensorBoard event files

Resuming: a run whose ``OUT`` holds ``state.json`` + ``last.keras`` with the same config
fingerprint (everything but ``out``, ``epochs`` and ``early_stopping``) continues from the
epoch after the last one saved, with the optimizer state, the best value so far and the
early-stopping counter restored; ``epochs`` may be raised to train longer. Checkpoints and
``state.json`` are replaced atomically after every epoch, so an interrupted run resumes from
its last complete epoch. The data order after a resume is drawn from ``seed + epoch``, so it
is reproducible, though not the order an uninterrupted run would have seen.

Config (YAML; relative paths resolve against the YAML file's folder, as in ``mirdl prepare``)::

    store: ../demo-out/store       # the store (required)
    feature: logmel                # optional: the store's first feature
    model: {name: fcn, args: {n_layers: 3, base_filters: 8}}   # name in mirdl_tf.models.MODELS
    optimizer: {name: adam, learning_rate: 0.001,              # adam | adamw | sgd | rmsprop
                schedule: constant, warmup_epochs: 0}          # constant | cosine (per epoch)
    epochs: 20
    batch_size: 16
    patch_frames: null             # frames per example (random crop); null: the stored segment
    train_split: train
    valid_split: valid             # null: no validation (monitor then defaults to loss)
    augment: {variants: all, spec_augment: null, mixup_alpha: null}
    early_stopping: {monitor: val_loss, patience: 5, mode: auto}   # null: never stop early
    cache: false                   # cache parsed records in memory (small stores)
    shuffle_buffer: null           # null: TFRecord read in a permutation of the split (README "Shuffling");
                                   # N: shards streamed through a buffer of N records (slow-to-seek storage)
    balance: none                  # none | class (equal class rates) | track (patches_per_track per track)
    patches_per_track: null        # balance: track; null: the split's mean records per track
    class_weight: none             # none | balanced (loss weight N / (K n_c) per class; single label)
    seed: 0
    out: ../demo-out/run           # run directory (or --out)

Examples
--------
>>> config = TrainConfig.from_dict({"store": "../demo-out/stores/demo", "model": {"name": "fcn"}}, base_dir="configs")
>>> config.store, config.optimizer.learning_rate, config.monitor
('demo-out/stores/demo', 0.001, 'val_loss')
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mirdl.features import checks
from mirdl.errors import ConfigError, StoreError
from mirdl.features.spec import load_config, stable_hash
from mirdl.store.files import atomic_path, write_json_atomic
from mirdl.store.manifest import read_manifest, shard_entries

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "ModelConfig",
    "OptimizerConfig",
    "AugmentConfig",
    "EarlyStoppingConfig",
    "TrainConfig",
    "RUN_FILES",
    "train",
    "build_for_store",
    "model_inputs",
    "model_labels",
    "read_model_info",
    "Cluster",
    "cluster_from_env",
    "train_worker",
    "free_ports",
    "local_cluster",
    "run_workers",
    "stop_processes",
]

#: Optimizer names a config may use -> Keras class name.
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
#: Learning-rate schedules a config may use (``optimizer.schedule``); see :meth:`OptimizerConfig.learning_rate_at`.
SCHEDULES = ("constant", "cosine")
#: Files of a run directory.
RUN_FILES = {
    "config": "train_config.yaml",
    "info": "model_info.json",
    "best": "best.keras",
    "last": "last.keras",
    "state": "state.json",
    "metrics": "metrics.json",
    "logs": "logs",
}
#: Version of model_info.json / state.json written here.
RUN_FORMAT_VERSION = 1
_FIELDS = ("store", "feature", "model", "optimizer", "epochs", "batch_size", "patch_frames", "train_split",
           "valid_split", "augment", "early_stopping", "cache", "shuffle_buffer", "balance", "patches_per_track",
           "class_weight", "seed", "out")
# Fields added after runs were fingerprinted without them: left out of the fingerprint at their default.
_LATER_DEFAULTS = {"balance": "none", "patches_per_track": None, "class_weight": "none", "shuffle_buffer": None}
_SPEC_AUGMENT_KEYS = ("freq_masks", "freq_width", "time_masks", "time_width")


# --------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class ModelConfig:
    """``model:``: a :data:`mirdl_tf.models.MODELS` name and its builder's keyword arguments."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from mirdl_tf.models import MODELS

        checks.choice(self.name, name="model.name", options=sorted(MODELS))
        args = checks.mapping(self.args, name="model.args", optional=True)
        for key in ("input_shape", "n_outputs", "task"):
            if key in args:
                raise ConfigError(f"model.args.{key} is set from the store; remove it")
        object.__setattr__(self, "args", args)

    @classmethod
    def from_dict(cls, data: Any) -> ModelConfig:
        data = checks.mapping(data, name="model", fields=("name", "args"), optional=True)
        if "name" not in data:
            raise ConfigError("model.name is missing")
        return cls(name=data["name"], args=data.get("args") or {})


@dataclass(frozen=True)
class OptimizerConfig:
    """``optimizer:``: one of :data:`OPTIMIZERS`, its peak learning rate and a per-epoch schedule.

    ``schedule`` is one of :data:`SCHEDULES`: ``constant`` keeps ``learning_rate``; ``cosine``
    decays it over the run's epochs along half a cosine towards 0, so the last epochs take
    small steps and the weights (and batch-norm statistics) settle instead of landing wherever
    a large step left them. ``warmup_epochs`` first ramps the rate up linearly (either schedule).
    """

    name: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        checks.choice(self.name, name="optimizer.name", options=sorted(OPTIMIZERS))
        object.__setattr__(self, "learning_rate",
                           checks.positive_float(self.learning_rate, name="optimizer.learning_rate"))
        checks.choice(self.schedule, name="optimizer.schedule", options=SCHEDULES)
        object.__setattr__(self, "warmup_epochs",
                           checks.integer(self.warmup_epochs, name="optimizer.warmup_epochs", minimum=0))

    @classmethod
    def from_dict(cls, data: Any) -> OptimizerConfig:
        data = checks.mapping(data, name="optimizer", fields=("name", "learning_rate", "schedule", "warmup_epochs"), optional=True)
        return cls(**data)

    def learning_rate_at(self, epoch: int, *, epochs: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based) of a run of ``epochs`` epochs.

        Warm-up epochs ``e < warmup_epochs`` use ``learning_rate * (e + 1) / (warmup_epochs + 1)``;
        then ``constant`` is ``learning_rate`` and ``cosine`` is ``learning_rate * (1 + cos(pi * p)) / 2``
        with ``p = (e - warmup_epochs) / (epochs - warmup_epochs)``, so the last epoch still trains
        (p < 1). Raising ``epochs`` on a resume stretches the rest of the cosine.

        Examples
        --------
        >>> config = OptimizerConfig(learning_rate=0.004, schedule="cosine", warmup_epochs=1)
        >>> [round(config.learning_rate_at(e, epochs=5), 4) for e in range(5)]
        [0.002, 0.004, 0.0034, 0.002, 0.0006]
        """
        if epoch < self.warmup_epochs:
            return self.learning_rate * (epoch + 1) / (self.warmup_epochs + 1)
        if self.schedule == "constant":
            return self.learning_rate
        progress = (epoch - self.warmup_epochs) / max(epochs - self.warmup_epochs, 1)
        return self.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class AugmentConfig:
    """``augment:``: which stored variants to read, SpecAugment masks and mixup (train split only).

    ``variants`` is ``"all"``, ``"clean"`` (variant 0) or a list of variant numbers;
    ``spec_augment`` a mapping of :data:`mirdl_tf.data.SPEC_AUGMENT_DEFAULTS` keys (``{}``:
    the defaults) or null; ``mixup_alpha`` a number > 0 or null (clip tasks only).
    """

    variants: str | tuple[int, ...] = "all"
    spec_augment: Mapping[str, int] | None = None
    mixup_alpha: float | None = None

    def __post_init__(self) -> None:
        variants = self.variants
        if isinstance(variants, list):
            variants = tuple(variants)
        if variants not in ("all", "clean"):
            try:
                if not isinstance(variants, tuple) or not variants:
                    raise ConfigError("not a non-empty list")
                variants = tuple(checks.integer(v, name="variant", minimum=0) for v in variants)
            except ConfigError:
                raise ConfigError(f"augment.variants={self.variants!r} must be 'all', 'clean' or a list of "
                                  "variant numbers >= 0") from None
        object.__setattr__(self, "variants", variants)
        if self.spec_augment is not None:
            masks = checks.mapping(self.spec_augment, name="augment.spec_augment", fields=_SPEC_AUGMENT_KEYS,
                                   optional=True)
            masks = {key: checks.integer(value, name=f"augment.spec_augment.{key}", minimum=0)
                     for key, value in masks.items()}
            object.__setattr__(self, "spec_augment", masks)
        if self.mixup_alpha is not None:
            object.__setattr__(self, "mixup_alpha", checks.positive_float(self.mixup_alpha, name="augment.mixup_alpha"))

    @classmethod
    def from_dict(cls, data: Any) -> AugmentConfig:
        data = checks.mapping(data, name="augment", fields=("variants", "spec_augment", "mixup_alpha"), optional=True)
        return cls(**data)

    def load_variants(self) -> str | list[int]:
        return self.variants if isinstance(self.variants, str) else list(self.variants)


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """``early_stopping:``: the monitored quantity (also picks ``best.keras``), patience, direction.

    ``monitor`` is ``loss`` or a metric of :func:`mirdl_tf.models.metrics_for_task`, with a
    ``val_`` prefix for the validation split (default ``val_loss``; ``loss`` without a
    validation split). ``mode`` ``auto`` minimises losses and errors (``loss``, ``mae``) and
    maximises everything else (accuracy, AUCs, precision, recall). ``patience`` None never
    stops early (the monitor still chooses ``best.keras``).
    """

    monitor: str | None = None
    patience: int | None = 5
    mode: str = "auto"

    def __post_init__(self) -> None:
        checks.string(self.monitor, name="early_stopping.monitor", optional=True)
        if self.patience is not None:
            object.__setattr__(self, "patience", checks.integer(self.patience, name="early_stopping.patience",
                                                                minimum=1))
        checks.choice(self.mode, name="early_stopping.mode", options=("auto", "min", "max"))

    @classmethod
    def from_dict(cls, data: Any) -> EarlyStoppingConfig:
        if data is None:
            return cls(patience=None)
        data = checks.mapping(data, name="early_stopping", fields=("monitor", "patience", "mode"), optional=True)
        return cls(**data)

    def resolved_mode(self, monitor: str) -> str:
        if self.mode != "auto":
            return self.mode
        bare = monitor.removeprefix("val_")
        return "min" if bare == "loss" or bare in ("mae", "mse") or bare.endswith("error") else "max"


@dataclass(frozen=True)
class TrainConfig:
    """A checked ``mirdl train`` config; see the module docstring for the YAML.

    Every bad field raises :class:`~mirdl.errors.ConfigError` naming it.
    """

    store: str
    model: ModelConfig
    out: str | None = None
    feature: str | None = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    epochs: int = 20
    batch_size: int = 16
    patch_frames: int | None = None
    train_split: str = "train"
    valid_split: str | None = "valid"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    cache: bool = False
    shuffle_buffer: int | None = None
    balance: str = "none"
    patches_per_track: int | None = None
    class_weight: str = "none"
    seed: int = 0
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for key in ("store", "train_split"):
            checks.string(getattr(self, key), name=key)
        for key in ("out", "feature", "valid_split"):
            checks.string(getattr(self, key), name=key, optional=True)
        if self.valid_split is not None and self.valid_split == self.train_split:
            raise ConfigError(f"valid_split={self.valid_split!r} is the train split; use another or null")
        for key, minimum in (("epochs", 1), ("batch_size", 1), ("patch_frames", 1), ("seed", 0)):
            if getattr(self, key) is not None or key != "patch_frames":
                object.__setattr__(self, key, checks.integer(getattr(self, key), name=key, minimum=minimum))
        checks.boolean(self.cache, name="cache")
        if self.shuffle_buffer is not None:
            object.__setattr__(self, "shuffle_buffer", checks.integer(self.shuffle_buffer, name="shuffle_buffer",
                                                                      minimum=1))
        if self.optimizer.warmup_epochs >= self.epochs:
            raise ConfigError(f"optimizer.warmup_epochs={self.optimizer.warmup_epochs} must be < "
                              f"epochs={self.epochs}")
        checks.choice(self.balance, name="balance", options=("none", "class", "track"))
        checks.choice(self.class_weight, name="class_weight", options=("none", "balanced"))
        if self.patches_per_track is not None:
            if self.balance != "track":
                raise ConfigError(f"patches_per_track={self.patches_per_track!r} needs balance: track "
                                  f"(balance is {self.balance!r})")
            object.__setattr__(self, "patches_per_track",
                               checks.integer(self.patches_per_track, name="patches_per_track", minimum=1))
        if self.balance != "none" and self.class_weight != "none":
            raise ConfigError(f"class_weight={self.class_weight!r} and balance={self.balance!r} both correct for "
                              "class sizes; use one")

    # ---- monitor
    @property
    def monitor(self) -> str:
        """The monitored quantity: ``early_stopping.monitor`` or ``val_loss`` / ``loss``."""
        if self.early_stopping.monitor is not None:
            return self.early_stopping.monitor
        return "val_loss" if self.valid_split is not None else "loss"

    @property
    def monitor_mode(self) -> str:
        return self.early_stopping.resolved_mode(self.monitor)

    # ---- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping (paths as resolved); :meth:`from_dict` inverts it."""
        data = {name: getattr(self, name) for name in _FIELDS}
        data["model"] = {"name": self.model.name, "args": dict(self.model.args)}
        data["optimizer"] = asdict(self.optimizer)
        augment = asdict(self.augment)
        augment["variants"] = self.augment.load_variants()
        augment["spec_augment"] = None if self.augment.spec_augment is None else dict(self.augment.spec_augment)
        data["augment"] = augment
        data["early_stopping"] = asdict(self.early_stopping)
        return data

    def fingerprint(self, *, store_fingerprint: str | None) -> str:
        """16 hex digits identifying a run: everything but ``out``, ``epochs`` and ``early_stopping``.

        Two configs with the same fingerprint train the same model the same way, so one may
        resume the other's run (with more epochs or another patience).
        """
        payload = {key: value for key, value in self.to_dict().items()
                   if key not in ("out", "epochs", "early_stopping", "store")
                   and not (key in _LATER_DEFAULTS and value == _LATER_DEFAULTS[key])}
        payload["store_fingerprint"] = store_fingerprint
        payload["run_format_version"] = RUN_FORMAT_VERSION
        return stable_hash(payload)

    @classmethod
    def from_dict(cls, data: Any, *, base_dir: str | os.PathLike = ".", source: str | None = None) -> TrainConfig:
        """Check and build a config from a YAML mapping; relative paths resolve against ``base_dir``."""
        data = checks.mapping(data, name=None, fields=_FIELDS, optional=True)
        for key in ("store", "model"):
            if key not in data:
                raise ConfigError(f"{key} is missing (a train config needs store and model)")
        for key in ("store", "out"):
            value = data.get(key)
            if isinstance(value, str) and value and "://" not in value:  # catalog:// and s3:// stay as written
                data[key] = os.path.normpath(os.path.join(os.fspath(base_dir), os.path.expanduser(value)))
        data["model"] = ModelConfig.from_dict(data["model"])
        data["optimizer"] = OptimizerConfig.from_dict(data.get("optimizer"))
        data["augment"] = AugmentConfig.from_dict(data.get("augment"))
        if "early_stopping" in data:
            data["early_stopping"] = EarlyStoppingConfig.from_dict(data["early_stopping"])
        return cls(**data, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainConfig:
        """Load a YAML config; errors name the file and the field."""
        return load_config(path, cls.from_dict)


# --------------------------------------------------------------------------------------------
# Store -> model, dataset -> model layout


def build_for_store(model: ModelConfig, info: Mapping[str, Any], *, args_name: str = "model.args"):
    """Build (uncompiled) ``model`` for a store described by :func:`mirdl_tf.data.describe`.

    The store's ``(channels,) freq, time`` examples become the model's ``(freq, time[,
    channels])`` input; task and output size come from the manifest. A builder's
    ``ValueError`` (bad argument, task it does not support) becomes a ConfigError naming
    ``model``, or the field itself for a bad value from ``model.args`` (``model.args.dropout=1.5 ...``;
    ``args_name`` is what the caller calls those arguments, e.g. ``model_args`` for a Python call).
    """
    from mirdl_tf.models import build_model

    shape = tuple(info["input_shape"])
    input_shape = shape if len(shape) == 2 else shape[1:] + shape[:1]
    try:
        return build_model(model.name, input_shape=input_shape, n_outputs=int(info["n_outputs"]),
                           task=info["task"], **dict(model.args))
    except checks.CheckError as err:
        if err.name in model.args:  # a value from the config file: name its field
            raise checks.CheckError(f"{args_name}.{err.name}", err.value, err.requirement) from err
        raise ConfigError(f"model: {err}") from err
    except ValueError as err:
        raise ConfigError(f"model: {err}") from err


def model_inputs(x):
    """Store layout ``(batch, [channels,] freq, time)`` -> model layout ``(batch, freq, time[, channels])``."""
    import tensorflow as tf

    if x.shape.rank == 4:
        return tf.transpose(x, (0, 2, 3, 1))
    return x


def model_labels(y, task: str, *, n_outputs: int):
    """Frame labels as :func:`mirdl_tf.data.load` yields them (time last) -> the model's (time first).

    ``frame_onset`` ``(batch, time)`` -> ``(batch, time, 1)``; ``frame_notes`` ``(batch, n_outputs,
    time)`` -> ``(batch, time, n_outputs)``; ``frame_chords`` ``(batch, time)`` class indices and
    clip labels are unchanged. Labels already time first are left alone (when
    ``n_outputs == time``, the documented time-last layout is assumed).
    """
    import tensorflow as tf

    if task == "frame_onset" and y.shape.rank == 2:
        return y[..., tf.newaxis]
    if task == "frame_notes" and y.shape.rank == 3 and y.shape[1] == n_outputs:
        return tf.transpose(y, (0, 2, 1))
    return y


def _optimizer(config: OptimizerConfig):
    import keras

    return getattr(keras.optimizers, OPTIMIZERS[config.name])(learning_rate=config.learning_rate)


def _datasets(config: TrainConfig, info: Mapping[str, Any], *, epoch: int, worker: tuple[int, int] | None = None,
              stream_epochs: bool = False):
    """``(train, valid or None, steps per epoch or None)``: batches in model layout.

    ``worker=(index, count)``: the train batches are this worker's part of the split (see
    :func:`mirdl_tf.data.load`'s ``num_shards``), ``batch_size // count`` records each, with
    the records' keys as a third element.

    ``stream_epochs``: when an epoch's number of batches is known (every case but a variant
    filter without balancing), the train batches repeat without end and the steps per epoch are returned, so
    that ``fit`` keeps one iterator for the whole run and the shuffle buffer fills once, not at
    every epoch (README "Shuffling"). Otherwise (and without ``stream_epochs``) the train
    dataset is one epoch and the steps are None.
    """
    from mirdl_tf import data

    task, n_outputs = info["task"], int(info["n_outputs"])

    def to_model(x, y, meta=None):
        if meta is None:
            return model_inputs(x), model_labels(y, task, n_outputs=n_outputs)
        return model_inputs(x), model_labels(y, task, n_outputs=n_outputs), meta["key"]

    common = {"feature": info["feature"], "batch_size": config.batch_size, "patch_frames": config.patch_frames,
              "cache": config.cache, "deterministic": True}
    sharding = {} if worker is None else {"shard_index": worker[0], "num_shards": worker[1], "with_metadata": True,
                                          "batch_size": config.batch_size // worker[1]}
    train_args = {"shuffle": True, "seed": config.seed + epoch, "crop": "random",
                  "variants": config.augment.load_variants(), "spec_augment": config.augment.spec_augment,
                  "mixup_alpha": config.augment.mixup_alpha, "balance": config.balance,
                  "patches_per_track": config.patches_per_track, "shuffle_buffer": config.shuffle_buffer,
                  **common, **sharding}
    steps = None
    try:
        train_ds = data.load(config.store, config.train_split, **train_args)
        if stream_epochs and int(train_ds.cardinality()) > 0:
            # One epoch's batches, known: the same pipeline repeated (repeat before batch, so the
            # fused shuffle + repeat keeps every epoch's records whole and fills its buffer once).
            steps = int(train_ds.cardinality())
            train_ds = data.load(config.store, config.train_split, repeat=True, **train_args)
        valid_ds = None if config.valid_split is None else data.load(
            config.store, config.valid_split, shuffle=False, crop="center", variants="clean", **common)
    except ValueError as err:  # an argument the store does not allow (mixup on frame labels, ...)
        raise ConfigError(str(err)) from err
    train_ds = train_ds.map(to_model)
    if valid_ds is not None:
        valid_ds = valid_ds.map(to_model)
        if config.augment.mixup_alpha is not None and task == "single_label":
            import tensorflow as tf

            # Mixup made the training labels one-hot (and the loss categorical): match them.
            valid_ds = valid_ds.map(lambda x, y: (x, tf.one_hot(y, n_outputs, dtype=tf.float32)))
    return train_ds, valid_ds, steps


def _class_weight(config: TrainConfig, manifest: Mapping[str, Any]) -> dict[int, float] | None:
    """``class_weight: balanced``: ``N / (K n_c)`` per class of the train split (0 for absent classes)."""
    if config.class_weight == "none":
        return None
    if manifest["task"]["type"] != "single_label":
        raise ConfigError(f"class_weight={config.class_weight!r} needs a single_label store; {config.store} "
                          f"holds a {manifest['task']['type']!r} task")
    counts = manifest["splits"][config.train_split].get("label_counts") or []
    present = [n for n in counts if n > 0]
    return {i: (sum(present) / (len(present) * n) if n > 0 else 0.0) for i, n in enumerate(counts)}


def _label_count_lines(config: TrainConfig, manifest: Mapping[str, Any], *, shown: int = 12) -> list[str]:
    """The train and valid splits' records per class (clip tasks with a vocabulary), most frequent first."""
    task = manifest["task"]
    vocabulary = task.get("vocabulary") or []
    if task["type"] not in ("single_label", "multi_label") or not vocabulary:
        return []
    lines = []
    for split in (config.train_split, config.valid_split):
        counts = manifest["splits"].get(split, {}).get("label_counts") if split else None
        if not counts:
            continue
        order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
        text = ", ".join(f"{vocabulary[i]} {counts[i]}" for i in order[:shown])
        more = f", ... ({len(order) - shown} more)" if len(order) > shown else ""
        ratio = max(counts) / max(1, min(counts))
        lines.append(f"  {split}: {sum(counts) if task['type'] == 'single_label' else ''}"
                     f"{' records' if task['type'] == 'single_label' else 'records per tag'}: {text}{more}"
                     + (f"  (largest/smallest class {ratio:.0f}x)" if ratio >= 4 else ""))
    if lines and config.balance == "none" and config.class_weight == "none" and task["type"] == "single_label":
        counts = manifest["splits"].get(config.train_split, {}).get("label_counts") or [0]
        if max(counts) >= 4 * max(1, min(counts)):
            lines.append("  note: the classes are imbalanced; consider balance: track or class (or class_weight: balanced)")
    return lines


def _balance_lines(config: TrainConfig, manifest: Mapping[str, Any]) -> list[str]:
    """What a balanced epoch reads (``balance: class | track``), from the plan of the train split."""
    if config.balance == "none":
        return []
    from mirdl.store.catalog import resolve_store
    from mirdl_tf.balance import plan_for_split

    variants = config.augment.load_variants()
    variants = None if variants == "all" else [0] if variants == "clean" else variants
    _, plan = plan_for_split(resolve_store(config.store), manifest, config.train_split, mode=config.balance,
                             patches_per_track=config.patches_per_track, variants=variants)
    if not plan.sizes:
        return []
    per_group = next(iter(plan.draws.values()))
    if config.balance == "class":
        vocabulary = manifest["task"].get("vocabulary") or []
        names = ", ".join(f"{vocabulary[c] if c < len(vocabulary) else c} {n}" for c, n in plan.sizes.items())
        return [f"  balance: class: {per_group} records of each of {len(plan.sizes)} classes per epoch "
                f"({plan.epoch_records} records; records per class: {names})"]
    return [f"  balance: track: {per_group} records of each of {len(plan.sizes)} tracks per epoch "
            f"({plan.epoch_records} records; tracks hold {min(plan.sizes.values())} to {max(plan.sizes.values())})"]


def _relative_to(path: str | os.PathLike, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX); absolute only when no relative path exists (another drive)."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _model_info(config: TrainConfig, info: Mapping[str, Any], manifest: Mapping[str, Any],
                fingerprint: str, out: Path) -> dict[str, Any]:
    """What evaluation and extraction need to use the model without the train config."""
    feature = manifest["features"][info["feature"]]
    stats = feature.get("stats")
    train_split = manifest["splits"].get(config.train_split, {})
    return {
        "run_format_version": RUN_FORMAT_VERSION,
        "config_fingerprint": fingerprint,
        "model": {"name": config.model.name, "args": dict(config.model.args)},
        "task": dict(manifest["task"]),
        "n_outputs": int(info["n_outputs"]),
        "feature": {"name": info["feature"], "shape": list(feature["shape"]), "dtype": feature.get("dtype"),
                    "fingerprint": feature.get("fingerprint"), "spec": feature.get("spec")},
        "patch_frames": int(info["input_shape"][-1]),
        "input_shape": list(info["input_shape"]),
        # Evaluation applies these (not the evaluated store's own statistics).
        "normalization": None if not stats else {
            "split": stats.get("split"), "mean": stats["mean"], "std": stats["std"]},
        # How the store cut its segments (mode, seconds, pad, frames): mirdl predict cuts new audio the same way.
        "segment": manifest.get("segment"),
        # Relative to the run directory, so that a run can be moved or shared with its store.
        "store": {"path": _relative_to(config.store, out), "name": manifest.get("name"),
                  "fingerprint": manifest.get("fingerprint"), "train_split": config.train_split,
                  "valid_split": config.valid_split},
        "train_label_counts": train_split.get("label_counts"),
        "monitor": config.monitor,
    }


def read_model_info(model_dir: str | os.PathLike) -> dict[str, Any]:
    """``model_info.json`` of a run directory; StoreError if it is not one."""
    path = Path(model_dir) / RUN_FILES["info"]
    if not Path(model_dir).is_dir():
        raise StoreError(f"{model_dir}: no such model directory")
    if not path.is_file():
        raise StoreError(f"{path}: missing; {model_dir} is not a mirdl train run directory")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise StoreError(f"{path}: cannot be read as JSON ({err})") from err


# --------------------------------------------------------------------------------------------
# Run directory, callbacks


def _save_model_atomic(model, path: Path, *, weights_only: bool = False) -> None:
    """``model.save`` (``model.save_weights``) to a temporary sibling folder, then one rename onto ``path``.

    (Keras insists on a ``.keras`` / ``.weights.h5`` file name, so :func:`mirdl.store.format.atomic_path`'s
    temporary file name cannot be used directly.)
    """
    staging = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        (model.save_weights if weights_only else model.save)(staging / path.name)
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_atomic(source: Path, path: Path) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_state(out: Path) -> dict[str, Any] | None:
    path = out / RUN_FILES["state"]
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise StoreError(f"{path}: cannot be read as JSON ({err}); remove it or pass --overwrite") from err


def _make_callbacks(*, out: Path, monitor: str, mode: str, patience: int | None, state: dict[str, Any],
                    epochs: int, optimizer: OptimizerConfig, log: Callable[[str], None], progress: bool = True,
                    tensorboard: bool = True):
    import keras

    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)

    class RunState(keras.callbacks.Callback):
        """After every epoch: ``last.keras``, ``best.keras`` if the monitor improved, then ``state.json``.

        One callback in this order, so ``state.json`` never names an epoch whose checkpoint
        is not on disk; early stopping is counted here too, so its counter survives a resume.
        """

        improved = False

        def on_epoch_end(self, epoch, logs=None):
            logs = {key: float(value) for key, value in (logs or {}).items()}
            if monitor not in logs:
                raise ConfigError(f"early_stopping.monitor={monitor!r} is not a logged quantity "
                                  f"(logged: {', '.join(sorted(logs))})")
            value = logs[monitor]
            _save_model_atomic(self.model, out / RUN_FILES["last"])
            improved = math.isfinite(value) and (state["best"] is None or better(value, state["best"]))
            if improved:
                _copy_atomic(out / RUN_FILES["last"], out / RUN_FILES["best"])
                state.update(best=value, best_epoch=epoch + 1, wait=0)
            else:
                state["wait"] += 1
            state["epoch"] = epoch + 1
            state["history"].append({"epoch": epoch + 1, **logs})
            if patience is not None and state["wait"] >= patience:
                state["stopped_early"] = True
                self.model.stop_training = True
            write_json_atomic(out / RUN_FILES["state"], state)
            self.improved = improved

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch: number, every logged quantity, time, ``*`` when best improved."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            values = "  ".join(f"{key} {float(value):.3g}" if key == "learning_rate" else f"{key} {float(value):.4f}"
                               for key, value in (logs or {}).items())
            mark = "  *" if run_state.improved else ""
            stop = f"  (early stop: no {monitor} improvement in {patience} epochs)" if state["stopped_early"] else ""
            log(f"epoch {epoch + 1}/{epochs}  {values}  ({time.perf_counter() - self.start:.1f} s){mark}{stop}")

    class BatchBar(keras.callbacks.Callback):
        """A progress bar over the batches of each epoch (on a terminal only; gone when the epoch ends)."""

        steps: int | None = None

        def on_epoch_begin(self, epoch, logs=None):
            from tqdm import tqdm

            self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False,
                            disable=None, file=sys.stderr)
            self.count = 0

        def on_train_batch_end(self, batch, logs=None):
            self.count += 1
            self.bar.update(1)
            if logs and "loss" in logs:
                self.bar.set_postfix_str(f"loss {float(logs['loss']):.4f}", refresh=False)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.close()
            BatchBar.steps = self.count  # the next epoch's total

    run_state = RunState()
    callbacks = [run_state, BatchBar(), EpochLine()] if progress else [run_state, EpochLine()]
    if optimizer.schedule != "constant" or optimizer.warmup_epochs:
        # First, so the epoch's rate is set before it trains and logged ("learning_rate") before
        # RunState records the epoch; it follows the epoch number, so a resume continues the schedule.
        callbacks.insert(0, keras.callbacks.LearningRateScheduler(
            lambda epoch, _: optimizer.learning_rate_at(epoch, epochs=epochs)))
    # TensorFlow >= 2.20 no longer installs TensorBoard, whose summary ops the callback needs.
    if not tensorboard:
        pass
    elif importlib.util.find_spec("tensorboard") is None:
        log("TensorBoard is not installed (pip install tensorboard): no logs in "
            f"{out / RUN_FILES['logs']}")
    else:
        callbacks.insert(0, keras.callbacks.TensorBoard(log_dir=str(out / RUN_FILES["logs"]), write_graph=False,
                                                        profile_batch=0))
    return callbacks


def _new_model(config: TrainConfig, info: Mapping[str, Any], *, one_hot: bool):
    """The config's model for the store, seeded with ``config.seed``, compiled with its optimizer, loss and metrics."""
    import keras

    from mirdl_tf.models import loss_for_task, metrics_for_task

    keras.utils.set_random_seed(config.seed)
    model = build_for_store(config.model, info)
    model.compile(optimizer=_optimizer(config.optimizer), loss=loss_for_task(info["task"], one_hot=one_hot),
                  metrics=metrics_for_task(info["task"], one_hot=one_hot))
    return model


def _start_line(config: TrainConfig, info: Mapping[str, Any], model, *, out: Path) -> str:
    return (f"train {config.model.name} on {config.store} ({info['task']}, input {tuple(info['input_shape'])}, "
            f"{info['n_outputs']} outputs, {model.count_params()} parameters) -> {out}")


def _new_state(fingerprint: str) -> dict[str, Any]:
    """``state.json`` of a run that has not trained yet."""
    return {"run_format_version": RUN_FORMAT_VERSION, "fingerprint": fingerprint, "epoch": 0, "best": None,
            "best_epoch": None, "wait": 0, "stopped_early": False, "history": [], "seconds": 0.0}


def _best_line(summary: Mapping[str, Any], *, out: Path) -> str:
    monitor = summary["monitor"]
    if summary["best_value"] is None:
        return f"no finite {monitor}"
    return f"best {monitor} {summary['best_value']:.4f} at epoch {summary['best_epoch']}; {out / RUN_FILES['best']}"


def _summary(state: dict[str, Any], *, monitor: str, mode: str, seconds: float) -> dict[str, Any]:
    history = state["history"]
    best = next((row for row in history if row["epoch"] == state["best_epoch"]), None)
    return {
        "monitor": monitor,
        "mode": mode,
        "epochs_run": state["epoch"],
        "stopped_early": state["stopped_early"],
        "best_epoch": state["best_epoch"],
        "best_value": state["best"],
        "best": best,
        "final": history[-1] if history else None,
        "history": {key: [row.get(key) for row in history] for key in (history[0] if history else {})},
        "train_seconds": round(seconds, 3),
    }


def _prepare_out(out: Path, *, fingerprint: str, resume: bool | None, overwrite: bool) -> dict[str, Any] | None:
    """The state to resume from, or None for a fresh run (after clearing a previous one)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={str(out)!r} exists and is not a directory")
    state = _read_state(out) if out.is_dir() else None
    can_resume = state is not None and (out / RUN_FILES["last"]).is_file()
    if overwrite:
        if resume:
            raise ConfigError("--resume and --overwrite exclude each other")
        can_resume = False
    elif can_resume and state.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"out={str(out)!r} holds a run of another config or store (fingerprint {state.get('fingerprint')}, "
            f"this config gives {fingerprint}); use another --out, or --overwrite to replace it")
    if resume and not can_resume:
        raise ConfigError(f"--resume: out={str(out)!r} holds no run to resume (no {RUN_FILES['state']} "
                          f"with {RUN_FILES['last']})")
    if can_resume:
        return state
    if out.is_dir():
        for key in ("best", "last", "state", "metrics"):
            (out / RUN_FILES[key]).unlink(missing_ok=True)
        shutil.rmtree(out / RUN_FILES["logs"], ignore_errors=True)
    return None


# --------------------------------------------------------------------------------------------
# Train


def _check_run(config: TrainConfig, *, out: str | os.PathLike | None, epochs: int | None):
    """Everything a run checks before it builds anything: ``(config, out, manifest, info, monitor, mode,
    class_weight, fingerprint)`` (``config`` with ``epochs`` applied)."""
    from mirdl_tf import data
    from mirdl_tf.models import metrics_for_task

    if out is None and config.out is None:
        raise ConfigError("out is missing: set out in the config or pass --out")
    if epochs is not None:
        config = replace(config, epochs=checks.integer(epochs, name="epochs", minimum=1))
    out = Path(out if out is not None else config.out)
    manifest = read_manifest(config.store)
    for split in (config.train_split, config.valid_split):
        if split is not None and split not in manifest["splits"]:
            where = "train_split" if split == config.train_split else "valid_split"
            raise ConfigError(f"{where}={split!r} is not a split of {config.store} "
                              f"(splits: {', '.join(sorted(manifest['splits']))})")
    try:
        info = data.describe(config.store, feature=config.feature, patch_frames=config.patch_frames)
    except ValueError as err:
        raise ConfigError(f"patch_frames: {err}") from err
    task = info["task"]
    monitor, mode = config.monitor, config.monitor_mode
    known = ["loss"] + [metric.name for metric in metrics_for_task(task)]
    allowed = known + ([f"val_{name}" for name in known] if config.valid_split is not None else [])
    if monitor not in allowed:
        raise ConfigError(f"early_stopping.monitor={monitor!r} must be one of {allowed} for task {task!r}")
    class_weight = _class_weight(config, manifest)
    fingerprint = config.fingerprint(store_fingerprint=manifest.get("fingerprint"))
    return config, out, manifest, info, monitor, mode, class_weight, fingerprint


def train(config: TrainConfig, *, out: str | os.PathLike | None = None, epochs: int | None = None,
          resume: bool | None = None, overwrite: bool = False,
          log: Callable[[str], None] = print, audit: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train ``config``'s model on its store; write the run directory (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
    out : path-like, optional
        Run directory; default ``config.out``.
    epochs : int, optional
        Overrides ``config.epochs`` (the total, counting epochs of a resumed run).
    resume : bool or None
        None: resume when ``out`` holds a run of the same config, else start afresh.
        True: resume or fail. False: same as None (use ``overwrite`` to discard a run).
    overwrite : bool
        Discard whatever run ``out`` holds and start afresh.
    log : callable
        Receives the progress lines (one per epoch).
    audit : path-like, optional
        Multi-worker runs only (see :func:`train_worker`): a folder where every worker writes
        the keys of the records it trained on and its final weights.

    When ``TF_CONFIG`` names more than one worker, this process is one worker of a
    multi-worker run and :func:`train_worker` trains instead (see docs/cluster.md).

    Returns
    -------
    dict
        The content of ``metrics.json``, plus ``out``.

    Raises
    ------
    ConfigError
        Bad config value, a model argument its builder rejects, ``out`` holding a run of
        another config, an unknown monitor.
    StoreError
        Missing store, split or feature.
    """
    cluster = cluster_from_env()
    if cluster is not None:  # TF_CONFIG names several workers: this process is one of them
        return train_worker(config, cluster, out=out, epochs=epochs, resume=resume, overwrite=overwrite, log=log,
                            audit=audit)
    if audit is not None:
        raise ConfigError("audit is for multi-worker runs (mirdl train --workers N or TF_CONFIG)")
    import keras

    from mirdl_tf import data

    config, out, manifest, info, monitor, mode, class_weight, fingerprint = _check_run(config, out=out,
                                                                                        epochs=epochs)
    task = info["task"]
    state = _prepare_out(out, fingerprint=fingerprint, resume=resume, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    one_hot = config.augment.mixup_alpha is not None and task == "single_label"
    if state is None:
        model = _new_model(config, info, one_hot=one_hot)
        state = _new_state(fingerprint)
        write_json_atomic(out / RUN_FILES["info"], _model_info(config, info, manifest, fingerprint, out))
        log(_start_line(config, info, model, out=out))
    else:
        keras.utils.set_random_seed(config.seed + state["epoch"])
        model = keras.models.load_model(out / RUN_FILES["last"])
        log(f"resume {out} after epoch {state['epoch']} (best {monitor} {state['best']} at epoch "
            f"{state['best_epoch']})")
    with atomic_path(out / RUN_FILES["config"]) as tmp:  # rewritten on resume: epochs may have changed
        tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    state["stopped_early"] = state["stopped_early"] and config.early_stopping.patience is not None \
        and state["wait"] >= config.early_stopping.patience

    for line in _label_count_lines(config, manifest) + _balance_lines(config, manifest):
        log(line)
    if state["epoch"] < config.epochs and not state["stopped_early"]:
        train_ds, valid_ds, steps = _datasets(config, info, epoch=state["epoch"], stream_epochs=True)
        callbacks = _make_callbacks(out=out, monitor=monitor, mode=mode, patience=config.early_stopping.patience,
                                    state=state, epochs=config.epochs, optimizer=config.optimizer, log=log)
        with warnings.catch_warnings():
            # Keras' notes on tf.data input that is fine here: the dataset shuffles itself, and a
            # dataset of unknown length (variant filter) ends its first epoch by running out.
            warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"Your input ran out of data", category=UserWarning)
            # Keras 3.15 converting TF tensors with np.array under numpy 2 (harmless, once per logged value).
            warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy keyword",
                                    category=DeprecationWarning)
            read_splits = [config.train_split] + ([config.valid_split] if config.valid_split else [])
            with data.named_store_errors(config.store, read_splits):  # a corrupt shard: one line naming it
                model.fit(train_ds, validation_data=valid_ds, epochs=config.epochs, initial_epoch=state["epoch"],
                          steps_per_epoch=steps, callbacks=callbacks, verbose=0, class_weight=class_weight)
        state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - start
        write_json_atomic(out / RUN_FILES["state"], state)
    else:
        log(f"{out}: nothing to do ({state['epoch']} epochs done"
            f"{', stopped early' if state['stopped_early'] else ''})")
    summary = _summary(state, monitor=monitor, mode=mode, seconds=state.get("seconds", 0.0))
    write_json_atomic(out / RUN_FILES["metrics"], summary)
    log(_best_line(summary, out=out))
    return {**summary, "out": str(out)}


# --------------------------------------------------------------------------------------------
# Several workers: tf.distribute.MultiWorkerMirroredStrategy with a custom training loop
#
# Keras 3.15's model.fit fails under MultiWorkerMirroredStrategy on TensorFlow 2.21 (its
# _maybe_symbolic_build reduces a PerReplica batch: "ValueError: Attempt to convert a value
# (PerReplica:{...}) with an unsupported type"; keras-team/keras#20585), so the workers run
# their own loop: strategy.run of one step, gradients all-reduced (summed) by the Keras optimizer.


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker run: the workers' ``host:port`` and its index (0 is the chief)."""

    workers: tuple[str, ...]
    index: int

    @property
    def size(self) -> int:
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def cluster_from_env(environ: Mapping[str, str] | None = None) -> Cluster | None:
    """The :class:`Cluster` that ``TF_CONFIG`` describes, or None (unset, or a single worker).

    ``TF_CONFIG`` is TensorFlow's JSON: ``{"cluster": {"worker": ["host:port", ...]}, "task":
    {"type": "worker", "index": I}}``; worker 0 is the chief. Other task types (``chief``,
    ``ps``, ``evaluator``) are not used by ``mirdl train``.

    Examples
    --------
    >>> cluster_from_env({"TF_CONFIG": '{"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, '
    ...                                '"task": {"type": "worker", "index": 1}}'})
    Cluster(workers=('10.0.0.1:2222', '10.0.0.2:2222'), index=1)
    >>> cluster_from_env({}) is None
    True
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not text:
        return None
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        workers, index, kind = cluster["worker"], task["index"], task.get("type", "worker")
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"TF_CONFIG must be JSON with cluster.worker (a list of host:port) and task.index "
                          f"({type(err).__name__}: {err})") from None
    others = sorted(set(cluster) - {"worker"})
    if others or kind != "worker":
        raise ConfigError(f"TF_CONFIG: mirdl train uses worker tasks only (worker 0 is the chief); "
                          f"got task type {kind!r}" + (f" and cluster jobs {others}" if others else ""))
    if not isinstance(workers, list) or not workers or not all(isinstance(w, str) and w for w in workers):
        raise ConfigError(f"TF_CONFIG cluster.worker={workers!r} must be a non-empty list of host:port")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise ConfigError(f"TF_CONFIG task.index={index!r} must be in [0, {len(workers)})")
    return Cluster(tuple(workers), index) if len(workers) > 1 else None


def _share_rule(n_files: int, workers: int) -> str:
    """How :func:`mirdl_tf.data.load` splits a split's files among workers, in words."""
    if n_files >= workers:
        uneven = "" if n_files % workers == 0 else f" (uneven: {n_files} files over {workers} workers)"
        return f"whole shard files, round robin: worker i reads files i, i+{workers}, ...{uneven}"
    return (f"{n_files} shard file(s) < {workers} workers: every record stream is read in a fixed order by "
            f"every worker, which keeps every {workers}-th record")


def train_worker(config: TrainConfig, cluster: Cluster, *, out: str | os.PathLike | None = None,
                 epochs: int | None = None, resume: bool | None = None, overwrite: bool = False,
                 log: Callable[[str], None] = print, audit: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train as worker ``cluster.index`` of a multi-worker run (``tf.distribute.MultiWorkerMirroredStrategy``).

    Every worker of ``cluster`` runs this with the same config. Each reads a disjoint part of the
    train split (whole shard files round robin; every N-th record when the split has fewer files
    than workers) in batches of ``batch_size / N`` records, so ``batch_size`` stays the global
    batch and must be a multiple of N. Gradients are summed over the workers, the loss being the
    mean over the real records of the global batch: a step is the step one process would take on
    those records. Workers do not hold equally many records: a worker whose part is used up (or
    whose last batch is short) fills its batch with copies of its own records at loss weight 0
    until every worker has run out, so every record is trained on exactly once per epoch; the
    copies move batch-norm statistics but not the gradient. The chief logs records per worker
    and these padding steps every epoch.

    Every worker evaluates the whole validation split, and the logged values are averaged over
    the workers so that all take the same early-stopping decision. Only the loss is logged for
    the train split (no train metrics), so ``early_stopping.monitor`` must be ``loss`` or a
    ``val_`` quantity. The chief (worker 0) writes the run directory as :func:`train` does,
    without TensorBoard logs; the other workers write theirs to a temporary folder, removed
    at the end. A multi-worker run starts afresh: it does not resume.

    ``audit`` (a folder): every worker writes ``worker-I.json`` (per epoch: the keys of the
    records it trained on, its steps and padding steps) and ``worker-I.weights.h5`` (its
    final weights), to check a cluster.
    """
    import tensorflow as tf

    if resume:
        raise ConfigError("--resume is not supported with several workers: a multi-worker run starts afresh")
    # Collective ops are configured here, before this process runs any other TensorFlow op
    # (the checks below build Keras metrics, whose variables are such ops).
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": list(cluster.workers)}), task_type="worker", task_id=cluster.index,
            rpc_layer="grpc"))
    config, out, manifest, info, monitor, mode, class_weight, fingerprint = _check_run(config, out=out,
                                                                                        epochs=epochs)
    n_workers, index = cluster.size, cluster.index
    if config.batch_size % n_workers:
        raise ConfigError(f"batch_size={config.batch_size} must be a multiple of the {n_workers} workers "
                          "(it is the global batch; each worker takes batch_size / workers records)")
    if monitor != "loss" and not monitor.startswith("val_"):
        raise ConfigError(f"early_stopping.monitor={monitor!r}: with several workers only loss and val_ "
                          "quantities are logged")
    if cluster.is_chief:
        state = _prepare_out(out, fingerprint=fingerprint, resume=False, overwrite=overwrite)
        if state is not None:
            raise ConfigError(f"out={str(out)!r} holds a run of this config; a multi-worker run does not resume "
                              "it: pass --overwrite or another --out")
        run_dir = out
        out.mkdir(parents=True, exist_ok=True)
    else:
        import tempfile

        run_dir = Path(tempfile.mkdtemp(prefix=f"mirdl-train-worker{index}-"))
        log = _quiet
    audit_dir = None if audit is None else Path(audit)
    if audit_dir is not None:
        audit_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _worker_loop(config, cluster, strategy, out=out, run_dir=run_dir, manifest=manifest, info=info,
                            monitor=monitor, mode=mode, class_weight=class_weight, fingerprint=fingerprint,
                            audit_dir=audit_dir, log=log)
    finally:
        if not cluster.is_chief:
            shutil.rmtree(run_dir, ignore_errors=True)


def _quiet(line: str) -> None:
    pass


def _worker_loop(config: TrainConfig, cluster: Cluster, strategy, *, out: Path, run_dir: Path,
                 manifest: Mapping[str, Any], info: Mapping[str, Any], monitor: str, mode: str,
                 class_weight: dict[int, float] | None, fingerprint: str, audit_dir: Path | None,
                 log: Callable[[str], None]) -> dict[str, Any]:
    """The epochs of one worker of :func:`train_worker` under ``strategy``."""
    import numpy as np
    import tensorflow as tf

    from mirdl_tf import data
    from mirdl_tf.models import loss_for_task

    n_workers, index = cluster.size, cluster.index
    task, n_outputs = info["task"], int(info["n_outputs"])
    per_worker = config.batch_size // n_workers
    one_hot = config.augment.mixup_alpha is not None and task == "single_label"
    start = time.perf_counter()
    with strategy.scope():
        # Compiled for the callbacks (learning-rate schedule) and so that checkpoints hold the optimizer.
        model = _new_model(config, info, one_hot=one_hot)
    loss = loss_for_task(task, one_hot=one_hot)
    state = {**_new_state(fingerprint), "workers": n_workers}
    if cluster.is_chief:
        write_json_atomic(out / RUN_FILES["info"], _model_info(config, info, manifest, fingerprint, out))
        with atomic_path(out / RUN_FILES["config"]) as tmp:
            tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    n_files = len(shard_entries(manifest, config.train_split))
    log(_start_line(config, info, model, out=out))
    log(f"  {n_workers} workers ({', '.join(cluster.workers)}), MultiWorkerMirroredStrategy; global batch "
        f"{config.batch_size} = {n_workers} x {per_worker}; {config.train_split}: {_share_rule(n_files, n_workers)}")
    log("  a worker out of records (or with a short last batch) pads its batch with copies of its own records "
        "at loss weight 0 until every worker has run out: every record is trained on once per epoch")
    for line in _label_count_lines(config, manifest):
        log(line)

    class_weights = None if class_weight is None else tf.constant(
        [class_weight.get(i, 0.0) for i in range(n_outputs)], tf.float32)

    def example_weights(y, mask):
        if class_weights is None:
            return mask
        if y.dtype.is_integer:
            return mask * tf.gather(class_weights, tf.cast(y, tf.int32))
        return mask * tf.reduce_sum(tf.cast(y, tf.float32) * class_weights, axis=-1)  # one-hot (mixup)

    def per_example(y, y_pred):
        values = tf.cast(loss.call(y, y_pred), tf.float32)
        return tf.reduce_mean(values, axis=tf.range(1, tf.rank(values))) if values.shape.rank > 1 else values

    @tf.function
    def train_step(x, y, mask):
        def replica(x, y, mask):
            context = tf.distribute.get_replica_context()
            count = context.all_reduce("SUM", tf.reduce_sum(mask))  # real records in the global batch
            weights = example_weights(y, mask)
            with tf.GradientTape() as tape:
                values = per_example(y, model(x, training=True))
                step_loss = tf.reduce_sum(values * weights) / tf.maximum(count, 1.0)
                if model.losses:
                    step_loss += tf.add_n(model.losses) / n_workers
            grads = tape.gradient(step_loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return context.all_reduce("SUM", tf.reduce_sum(values * weights)), count

        return strategy.run(replica, args=(x, y, mask))

    @tf.function
    def global_sum(values):
        # tf.identity: a value on this replica's device (a tensor made outside has no collective destination).
        return strategy.run(lambda v: tf.distribute.get_replica_context().all_reduce("SUM", tf.identity(v)),
                            args=(values,))

    def total(values) -> np.ndarray:
        return strategy.experimental_local_results(global_sum(tf.constant(values, tf.float32)))[0].numpy()

    def average_statistics() -> None:
        # Batch-norm moving statistics are updated from each worker's own batches (Keras 3 does not
        # synchronise them): average them over the workers once per epoch. Moving averages are linear
        # and every worker takes the same steps, so this is the average of the per-step statistics.
        floats = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]
        if not floats:
            return
        flat = tf.concat([tf.reshape(tf.cast(v.value, tf.float32), [-1]) for v in floats], axis=0)
        mean = strategy.experimental_local_results(global_sum(flat))[0] / n_workers
        offset = 0
        for v in floats:
            size = int(np.prod(v.shape))
            v.assign(tf.cast(tf.reshape(mean[offset:offset + size], v.shape), v.dtype))
            offset += size

    predict = tf.function(lambda x: model(x, training=False))
    train_ds, valid_ds, _ = _datasets(config, info, epoch=0, worker=(index, n_workers))
    callbacks = _make_callbacks(out=run_dir, monitor=monitor, mode=mode, patience=config.early_stopping.patience,
                                state=state, epochs=config.epochs, optimizer=config.optimizer, log=log,
                                progress=False, tensorboard=False)
    for callback in callbacks:
        callback.set_model(model)
    audit_epochs = []
    read_splits = [config.train_split] + ([config.valid_split] if config.valid_split else [])
    with data.named_store_errors(config.store, read_splits):
        for epoch in range(config.epochs):
            for callback in callbacks:
                callback.on_epoch_begin(epoch)
            keys, n_records, steps, padded, filler = [], 0, 0, 0, None
            loss_sum = records = 0.0
            batches = iter(train_ds)
            while True:
                batch = next(batches, None)
                # One collective per step: does any worker still hold records?
                if total([0.0 if batch is None else 1.0])[0] == 0:
                    break
                if batch is not None:
                    x, y, batch_keys = batch
                    if audit_dir is not None:
                        keys.extend(k.decode() for k in batch_keys.numpy())
                    filler = (x, y) if filler is None else filler
                    n = int(x.shape[0])
                    n_records += n
                else:
                    if filler is None:
                        raise StoreError(f"worker {index} holds no records of split {config.train_split!r} "
                                         f"to pad with; use fewer workers")
                    x, y, n = filler[0][:0], filler[1][:0], 0
                    padded += 1
                if n < per_worker:  # pad with this worker's first batch, at loss weight 0
                    rows = tf.range(per_worker - n) % tf.shape(filler[0])[0]
                    x = tf.concat([x, tf.gather(filler[0], rows)], axis=0)
                    y = tf.concat([y, tf.gather(filler[1], rows)], axis=0)
                mask = tf.constant([1.0] * n + [0.0] * (per_worker - n), tf.float32)
                step_sum, step_count = (strategy.experimental_local_results(v)[0] for v in train_step(x, y, mask))
                loss_sum += float(step_sum)
                records += float(step_count)
                steps += 1
            average_statistics()
            per_worker_records = total(np.eye(n_workers)[index] * n_records).astype(int)
            per_worker_padded = total(np.eye(n_workers)[index] * padded).astype(int)
            logs = {"loss": loss_sum / max(records, 1.0)}
            if valid_ds is not None:
                logs.update(_evaluate_split(valid_ds, predict, task=task, one_hot=one_hot))
            # Workers agree on every logged value (mean over workers), hence on early stopping and the best epoch.
            names = list(logs)
            averaged = total([logs[name] for name in names]) / n_workers
            logs = {name: float(value) for name, value in zip(names, averaged)}
            log(f"  epoch {epoch + 1}: {steps} steps; records per worker "
                f"{' + '.join(str(n) for n in per_worker_records)} = {int(per_worker_records.sum())}; padding steps "
                f"per worker {' + '.join(str(n) for n in per_worker_padded)}")
            audit_epochs.append({"epoch": epoch + 1, "records": n_records, "steps": steps, "padding_steps": padded,
                                 "keys": keys})
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    state["seconds"] = time.perf_counter() - start
    write_json_atomic(run_dir / RUN_FILES["state"], state)
    if audit_dir is not None:
        write_json_atomic(audit_dir / f"worker-{index}.json",
                          {"worker": index, "workers": list(cluster.workers), "epochs": audit_epochs})
        _save_model_atomic(model, audit_dir / f"worker-{index}.weights.h5", weights_only=True)
    summary = _summary(state, monitor=monitor, mode=mode, seconds=state["seconds"])
    write_json_atomic(run_dir / RUN_FILES["metrics"], summary)
    log(_best_line(summary, out=out))
    return {**summary, "out": str(out), "worker": index}


def _evaluate_split(ds, predict, *, task: str, one_hot: bool) -> dict[str, float]:
    """``val_loss`` and ``val_<metric>`` over every batch of ``ds`` (as ``model.fit``'s validation logs them)."""
    import numpy as np

    from mirdl_tf.models import loss_for_task, metrics_for_task

    loss = loss_for_task(task, one_hot=one_hot)
    metrics = metrics_for_task(task, one_hot=one_hot)
    loss_sum, count = 0.0, 0
    for x, y in ds:
        y_pred = predict(x)
        loss_sum += float(loss(y, y_pred)) * int(x.shape[0])
        count += int(x.shape[0])
        for metric in metrics:
            metric.update_state(y, y_pred)
    logs = {"val_loss": loss_sum / max(count, 1)}
    logs.update({f"val_{metric.name}": float(np.asarray(metric.result())) for metric in metrics})
    return logs


# --------------------------------------------------------------------------------------------
# Local workers: mirdl train --workers N


def free_ports(count: int, *, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` right now (the OS picks them)."""
    import socket

    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_cluster(count: int, *, host: str = "127.0.0.1") -> list[str]:
    """``TF_CONFIG`` of each of ``count`` workers on ``host``, at free ports."""
    workers = [f"{host}:{port}" for port in free_ports(count, host=host)]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
            for i in range(count)]


def run_workers(commands: list[list[str]], *, envs: list[Mapping[str, str]], log_dir: str | os.PathLike,
                timeout: float | None = None, grace: float = 10.0, poll: float = 0.2) -> None:
    """Run one process per command and wait for all; stop them all if one fails or time runs out.

    Worker 0's standard output goes to this process's; every worker's standard error (and the
    others' output) to ``log_dir/worker-I.log``. When a worker exits with a non-zero status,
    or ``timeout`` seconds pass, every process still running is stopped by its pid (SIGTERM,
    then SIGKILL after ``grace`` seconds) and :class:`~mirdl.errors.MirdlError` names the
    worker and the last line of its log. Every wait is bounded.
    """
    import subprocess

    from mirdl.errors import MirdlError

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    processes, logs = [], []
    try:
        for i, (command, env) in enumerate(zip(commands, envs, strict=True)):
            logs.append(open(log_dir / f"worker-{i}.log", "wb"))  # noqa: SIM115 (closed in finally)
            processes.append(subprocess.Popen(command, env=dict(env), stdin=subprocess.DEVNULL,
                                              stdout=None if i == 0 else logs[-1], stderr=logs[-1]))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            codes = [process.poll() for process in processes]
            failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                i, code = failed[0]
                raise MirdlError(f"worker {i} exited with status {code} ({_last_line(log_dir / f'worker-{i}.log')}); "
                                 f"the other workers were stopped; logs in {log_dir}")
            if all(code == 0 for code in codes):
                return
            if deadline is not None and time.monotonic() > deadline:
                running = [i for i, code in enumerate(codes) if code is None]
                raise MirdlError(f"worker(s) {', '.join(map(str, running))} still running after {timeout:g} s "
                                 f"(--worker-timeout): stopped; logs in {log_dir}")
            time.sleep(poll)
    finally:
        stop_processes(processes, grace=grace)
        for handle in logs:
            handle.close()


def stop_processes(processes, *, grace: float = 10.0) -> None:
    """Stop each running ``subprocess.Popen`` by its pid: SIGTERM, SIGKILL after ``grace`` s; bounded waits."""
    import subprocess

    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"
