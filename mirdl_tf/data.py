"""Stream a mirdl feature store (TFRecord, HDF5 or Parquet) into Keras as a ``tf.data.Dataset``.

:func:`load` builds the input pipeline in the order of the tf.data performance guide::

    list shards -> [shard by files] -> interleave(read shard, parallel) -> [shard by records]
    -> [parse -> select variants] -> cache (optional) -> shuffle -> repeat (optional)
    -> batch -> [read at offsets, parse] + crop + standardise + SpecAugment (parallel map over batches)
    -> mixup (optional) -> prefetch

TFRecord records are shuffled serialised and parsed a batch at a time (one ``parse_example``
and one ``decode_raw`` per batch), unless variants are selected, which needs them parsed
first. Crop, standardisation and SpecAugment run on whole batches (one gather, one
subtraction and division, one ``where``), with each record's offset and masks drawn from its
own random value (the crop offset is that int64 modulo the number of offsets; the masks are
stateless draws seeded by it): no per-record map, no unbatch and rebatch after the read. A
random crop of standardised features is one XLA-compiled gather (where XLA compiles).

With ``balance`` the read differs: each epoch's records are planned from the shard index
first and only those are read (:mod:`mirdl_tf.balance`). A local, uncompressed TFRecord split
(up to :data:`PERMUTATION_MAX_BYTES`) differs too: its record ids are batched (shuffled: a
permutation of the split every epoch, instead of interleave -> shuffle buffer; unshuffled: the
interleave's order), each batch copied out of the shards' memory maps at the records' byte
offsets by one ``tf.numpy_function`` (:func:`_records_at_offsets`) inside the parallel map, then
parsed as above: no buffer to fill, every epoch a shuffle of the whole split (measured faster on 2
cores: BENCHMARKS.md rounds 8, 9, 11, 12).

Only the per-shard reader differs between formats (each format's adapter in
:mod:`mirdl.store.adapters`, which checks the format's own checksums); after it every
record is the same dict (``feature, label, key, track_id, variant, segment, start_frame``) and
takes one code path. The record columns after ``label`` are read (TFRecord: parsed) only when
``with_metadata``, ``variants`` or ``balance`` need them; otherwise a record is ``feature,
label``. HDF5 and Parquet shards are read a batch of records per Python call (a planned range per
``tf.numpy_function``, in a parallel map); without shuffling every shard is planned when
:func:`load` is called and all the ranges go through one map in the interleave's order
(:func:`_planned_ranges`), and those batches are ``rebatch``ed to ``batch_size`` (whole slices,
same order), never unbatched. The manifest is the only source of shapes, dtypes, compression,
normalisation statistics and the task; nothing is inferred from the shard files.

Examples are ``(features, labels)``:

- ``features``: float32 ``(batch, *feature_shape[:-1], patch_frames)``, i.e. ``(batch, n_freq,
  patch_frames)`` for a mono spectrogram: frequency x time, **no channel axis** (models add
  it, e.g. with a ``Reshape``/``expand_dims`` layer; :func:`input_shape` gives the per-example
  shape). Static shapes whenever the manifest gives them (always, for format_version 1).
- ``labels``: manifest ``task.label_shape`` and dtype; frame tasks (``frame_*``, time last)
  are cropped with the same offset as the features; with ``mixup_alpha`` single-label
  class indices become float32 one-hot vectors of length :func:`n_outputs`.

Randomness (file order, shuffle buffer or permutation, crops, SpecAugment, mixup, variant choice) is drawn
from ``seed`` with stateless ops and ``Dataset.random``: two pipelines built with the same
``seed`` and ``deterministic=True`` give identical batches, while each new epoch (a new
iteration, or the next round of ``repeat``) draws new crops and a new order.

Examples
--------
>>> ds = load("demo-out/store", "train", batch_size=32, patch_frames=128, seed=0)  # doctest: +SKIP
>>> x, y = next(iter(ds))                                                           # doctest: +SKIP
>>> x.shape                                                                         # doctest: +SKIP
TensorShape([32, 96, 128])
"""
from __future__ import annotations

import collections
import contextlib
import functools
import mmap
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from mirdl.errors import StoreError
from mirdl.store import adapters
from mirdl.store import format as store_format
from mirdl.store import tfrecord
from mirdl.store.catalog import resolve_store
from mirdl.store.manifest import read_manifest, shard_entries, shard_paths
from mirdl.store.verify import check_shards, find_corrupt_shard
from mirdl_tf import balance as balance_module

try:  # tf.data's buffer-free global shuffle (TensorFlow 2.17 and 2.21 have it; not yet a public name)
    from tensorflow.python.data.experimental.ops.global_shuffle_op import _global_shuffle
except ImportError:  # pragma: no cover - an older or newer TensorFlow: the flat_map permutation
    _global_shuffle = None

__all__ = ["STD_FLOOR", "SPEC_AUGMENT_DEFAULTS", "BALANCE_MODES", "load", "describe", "input_shape", "n_outputs",
           "named_store_errors", "iterate_named", "balance_rates"]

AUTOTUNE = tf.data.AUTOTUNE
#: Standard deviations below this are raised to it before dividing (silent frequency bins).
STD_FLOOR = 1e-6
#: SpecAugment settings used for keys missing from ``spec_augment`` (Park et al. 2019, "LB"-like).
SPEC_AUGMENT_DEFAULTS = {"freq_masks": 1, "freq_width": 8, "time_masks": 1, "time_width": 16}
#: Records held by the shuffle buffer when ``shuffle_buffer`` is not given (capped by the split size).
DEFAULT_SHUFFLE_BUFFER = 2048
#: Largest TFRecord split (bytes of one worker's shards) that ``shuffle=True`` reads in a permutation of
#: its records, each at its offset; a larger one streams its shards through the shuffle buffer. Reads at
#: random offsets are fast from the page cache and local SSDs, slow from spinning disks and network file
#: systems, and the offsets scan reads through a cold split once: a split up to this size is one a
#: training machine keeps in its page cache. The same store takes the same path on every machine.
PERMUTATION_MAX_BYTES = 16 * 2**30
#: Shards of a TFRecord split read at offsets kept memory-mapped at once (the least recently used unmapped
#: first; each mapping holds a file descriptor): 256 shards of the default 64 MB are a 16 GiB split.
MAX_MAPPED_SHARDS = 256
#: Shards read at the same time by the interleave.
MAX_CYCLE_LENGTH = 8
_HDF5_BACKENDS = ("h5py", "tfio")
_CROPS = ("random", "center")
#: ``balance`` values of :func:`load`.
BALANCE_MODES = ("none", "class", "track")
#: Random crop + standardisation compiled by XLA where it compiles (see ``_crop_standardise``).
_FUSED_CROP = True
# Salts that make the stateless streams of one element independent of each other.
_SALT_CROP, _SALT_FREQ, _SALT_TIME, _SALT_ORDER = 0, 1, 2, 3


# --------------------------------------------------------------------------- manifest view
@dataclass(frozen=True)
class _Store:
    """A store's manifest, read once, and the facts :func:`load` and :func:`describe` need."""

    path: Path | str  # a URL (str) for a store on object storage
    manifest: dict[str, Any]
    feature: str

    @property
    def where(self) -> str:
        """How messages name the manifest."""
        return f"{str(self.path).rstrip('/')}/{store_format.MANIFEST_NAME}" if isinstance(self.path, str) \
            else str(self.path / store_format.MANIFEST_NAME)

    @property
    def remote(self) -> bool:
        return isinstance(self.path, str)

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def feature_entry(self) -> dict[str, Any]:
        return self.manifest["features"][self.feature]

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.feature_entry["shape"])

    @property
    def n_frames(self) -> int:
        return self.feature_shape[-1]

    @property
    def task(self) -> dict[str, Any]:
        return self.manifest["task"]

    @property
    def task_type(self) -> str:
        return self.task["type"]

    @property
    def is_frame_task(self) -> bool:
        return self.task_type.startswith("frame_")

    @property
    def label_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.task["label_shape"])

    def layout(self, *, metadata: bool = True) -> adapters.Layout:
        return adapters.Layout.from_manifest(self.manifest, self.feature, metadata=metadata)

    def n_outputs(self) -> int:
        return int(self.task["n_outputs"])

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin train mean and std, shaped to broadcast over a record's feature (time last)."""
        where = f"{self.where}: features.{self.feature}.stats"
        stats = self.feature_entry.get("stats")
        if not stats or stats.get("mean") is None or stats.get("std") is None:
            raise StoreError(f"{where} is missing; pass standardize=False to read unstandardised features")
        mean = np.asarray(stats["mean"], dtype=np.float32)
        std = np.asarray(stats["std"], dtype=np.float32)
        shape = self.feature_shape
        if "time" not in self.feature_entry.get("axes", ["time"]):
            # A feature without a time axis (e.g. a transfer-feature vector): stats per element.
            if mean.shape != shape or std.shape != shape:
                raise StoreError(f"{where}: mean/std of shape {mean.shape}/{std.shape} do not match "
                                 f"feature shape {shape}")
            return mean, np.maximum(std, STD_FLOOR)
        # Stats cover the leading axes (channels, frequency) and are broadcast over time.
        if mean.shape != std.shape or mean.ndim >= len(shape) or mean.shape != shape[len(shape) - 1 - mean.ndim:-1]:
            raise StoreError(
                f"{where}: mean/std of shape {mean.shape}/{std.shape} do not match feature shape {shape} "
                f"(expected the non-time axes {shape[:-1]})"
            )
        bcast = mean.shape + (1,)
        return mean.reshape(bcast), np.maximum(std, STD_FLOOR).reshape(bcast)

    def variants(self) -> list[int]:
        """The variant numbers every track has in the store (0 = clean)."""
        return list(range(int(self.manifest.get("augment", {}).get("n_variants", 1))))

    def split_records(self, split: str) -> int:
        return sum(int(entry["records"]) for entry in shard_entries(self.manifest, split))


#: Manifest fields :func:`load` relies on beyond those :func:`mirdl.store.format.read_manifest` checks.
_TASK_KEYS = ("type", "label_shape", "label_dtype", "n_outputs")
_FEATURE_KEYS = ("shape", "dtype")


def _open_store(store: str | os.PathLike, feature: str | None) -> _Store:
    path = resolve_store(store)  # a local Path, an s3:// / gs:// URL, or where catalog://NAME[@VERSION] points
    manifest = read_manifest(path)
    where = _Store(path=path, manifest=manifest, feature="").where
    features = manifest["features"]
    if not features:
        raise StoreError(f"{where}: features is empty")
    if feature is None:
        feature = next(iter(features))
    elif feature not in features:
        raise StoreError(f"{where}: feature {feature!r} is not in the store (features: {sorted(features)})")
    missing = [f"features.{feature}.{key}" for key in _FEATURE_KEYS if key not in features[feature]]
    missing += [f"task.{key}" for key in _TASK_KEYS if key not in manifest["task"]]
    if missing:
        raise StoreError(f"{where}: {missing[0]} is missing")
    return _Store(path=path, manifest=manifest, feature=feature)


# --------------------------------------------------------------------------- describe
def describe(store: str | os.PathLike, *, feature: str | None = None,
             patch_frames: int | None = None) -> dict[str, Any]:
    """What a model builder needs to know about a store, from its manifest alone.

    Parameters
    ----------
    store : path-like
        Store directory (with ``manifest.json``).
    feature : str, optional
        Feature name; default the store's first (manifest order; sorted by name).
    patch_frames : int > 0, optional
        Frames per example as :func:`load` will crop them; default the stored segment length.

    Returns
    -------
    dict
        ``name``, ``format``, ``task`` (type), ``n_outputs``, ``label_shape``, ``label_dtype``,
        ``feature``, ``features`` (all names), ``n_frames`` (stored segment length),
        ``input_shape`` (one example as :func:`load` yields it, time last, no channel axis),
        ``splits`` (records per split) and ``variants`` (variant numbers, 0 = clean).

    Examples
    --------
    >>> describe("demo-out/store", patch_frames=128)["input_shape"]  # doctest: +SKIP
    (96, 128)
    """
    info = _open_store(store, feature)
    patch = _check_patch_frames(patch_frames, info)
    return {
        "name": info.manifest.get("name"),
        "format": info.format,
        "task": info.task_type,
        "n_outputs": info.n_outputs(),
        "label_shape": info.label_shape if not info.is_frame_task else info.label_shape[:-1] + (patch,),
        "label_dtype": info.task["label_dtype"],
        "feature": info.feature,
        "features": list(info.manifest["features"]),
        "n_frames": info.n_frames,
        "input_shape": info.feature_shape[:-1] + (patch,),
        "splits": {split: info.split_records(split) for split in info.manifest["splits"]},
        "variants": info.variants(),
    }


def input_shape(store: str | os.PathLike, feature: str | None = None,
                patch_frames: int | None = None) -> tuple[int, ...]:
    """Shape of one example's features as :func:`load` yields it, e.g. ``(n_freq, patch_frames)``."""
    return describe(store, feature=feature, patch_frames=patch_frames)["input_shape"]


def n_outputs(store: str | os.PathLike) -> int:
    """Number of model outputs the store's task needs (classes, tags, targets, pitches)."""
    return _open_store(store, None).n_outputs()


# --------------------------------------------------------------------------- argument checks
def _check_patch_frames(patch_frames: Any, info: _Store) -> int:
    if patch_frames is None:
        return info.n_frames
    if isinstance(patch_frames, bool) or not isinstance(patch_frames, (int, np.integer)) or patch_frames < 1:
        raise ValueError(f"patch_frames must be a positive integer or None. Received: patch_frames={patch_frames!r}")
    if patch_frames > info.n_frames:
        raise ValueError(
            f"patch_frames={patch_frames} is longer than the stored segments of feature {info.feature!r} "
            f"({info.n_frames} frames); re-run prepare with longer segments or crop less"
        )
    return int(patch_frames)


def _check_variants(variants: Any) -> list[int] | None:
    """None for every variant, else the list of variant numbers to keep."""
    if isinstance(variants, str):
        if variants == "all":
            return None
        if variants == "clean":
            return [0]
    elif isinstance(variants, (list, tuple)) and variants and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in variants):
        return sorted({int(v) for v in variants})
    raise ValueError(f'variants must be "all", "clean" or a non-empty list of ints >= 0. '
                     f"Received: variants={variants!r}")


def _check_spec_augment(spec_augment: Any, info: _Store) -> dict[str, int] | None:
    if spec_augment is None or spec_augment is False:
        return None
    if spec_augment is True:
        spec_augment = {}
    if not isinstance(spec_augment, dict):
        raise ValueError(f"spec_augment must be a dict or None. Received: spec_augment={spec_augment!r}")
    unknown = sorted(set(spec_augment) - set(SPEC_AUGMENT_DEFAULTS))
    if unknown:
        raise ValueError(f"spec_augment has unknown key {unknown[0]!r} (keys: {sorted(SPEC_AUGMENT_DEFAULTS)})")
    settings = {**SPEC_AUGMENT_DEFAULTS, **spec_augment}
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"spec_augment[{key!r}] must be an integer >= 0. Received: {value!r}")
    if len(info.feature_shape) < 2:
        raise ValueError(f"spec_augment needs a (..., freq, time) feature; {info.feature!r} has shape "
                         f"{info.feature_shape}")
    return {key: int(value) for key, value in settings.items()}


def _workers(input_context, num_shards, shard_index) -> tuple[int, int]:
    if input_context is not None:
        if num_shards is not None or shard_index is not None:
            raise ValueError("pass either input_context or num_shards/shard_index, not both")
        return int(input_context.num_input_pipelines), int(input_context.input_pipeline_id)
    if num_shards is None and shard_index is None:
        return 1, 0
    if num_shards is None or shard_index is None:
        raise ValueError(f"num_shards and shard_index go together. Received: num_shards={num_shards}, "
                         f"shard_index={shard_index}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, num_shards). Received: shard_index={shard_index}, "
                         f"num_shards={num_shards}")
    return int(num_shards), int(shard_index)


def _derived_seed(seed: int | None, offset: int) -> int | None:
    return None if seed is None else int(seed) + offset


# --------------------------------------------------------------------------- graph pieces
def _stateless_seed(rnd: tf.Tensor, salt: int) -> tf.Tensor:
    return tf.stack([rnd, tf.constant(salt, tf.int64)])


def _interval_mask(seed: tf.Tensor, *, size: int, count: int, max_width: int) -> tf.Tensor:
    """Bool ``(size,)``: the union of ``count`` intervals of width U{0..max_width}, start uniform."""
    max_width = min(max_width, size)
    if count == 0 or max_width == 0:
        return tf.zeros([size], tf.bool)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    widths = tf.random.stateless_uniform([count], seeds[0], minval=0, maxval=max_width + 1, dtype=tf.int32)
    unit = tf.random.stateless_uniform([count], seeds[1])
    starts = tf.cast(tf.floor(unit * tf.cast(size - widths + 1, tf.float32)), tf.int32)
    index = tf.range(size)[tf.newaxis, :]
    inside = (index >= starts[:, tf.newaxis]) & (index < (starts + widths)[:, tf.newaxis])
    return tf.reduce_any(inside, axis=0)


def _crop_time_batch(x: tf.Tensor, offset: tf.Tensor, length: int) -> tf.Tensor:
    """``x[i, ..., offset[i]:offset[i] + length]`` for every ``i`` of the batch (static shape but the batch).

    Time moved to axis 1 so that one ``gather`` copies whole rows (3-6x faster than gathering
    single elements along the last axis, or a loop of slices).
    """
    rank = x.shape.rank
    to_front = [0, rank - 1] + list(range(1, rank - 1))
    index = offset[:, tf.newaxis] + tf.range(length, dtype=offset.dtype)[tf.newaxis, :]  # (batch, length)
    rows = tf.gather(tf.transpose(x, to_front), index, axis=1, batch_dims=1)  # (batch, length, ...)
    return tf.transpose(rows, [0] + list(range(2, rank)) + [1])


def _crop_standardise(x: tf.Tensor, offset: tf.Tensor, length: int, mean: tf.Tensor, std: tf.Tensor) -> tf.Tensor:
    """``(x[i, ..., offset[i]:offset[i] + length] - mean) / std`` for every ``i`` of the batch, in one
    pass: XLA fuses the gather along time with the standardisation. Without XLA the same ops take
    a transpose, a row gather, a transpose back and two broadcast passes (17 us a 96 x 128 record
    against 10 us compiled, measured in a tf.data map; standardising alone, uncompiled, 11 us)."""
    index = offset[:, tf.newaxis] + tf.range(length, dtype=offset.dtype)[tf.newaxis, :]  # (batch, length)
    cropped = tf.gather(x, index, axis=x.shape.rank - 1, batch_dims=1)
    return (cropped - mean) / std


#: :func:`_crop_standardise` compiled by XLA: one function for every :func:`load`, so that a shape is
#: compiled once per process (a new ``load`` reuses it). Set to None when XLA cannot compile here.
_CROP_STANDARDISE_XLA = tf.function(_crop_standardise, jit_compile=True, reduce_retracing=True)
_XLA_WORKS: bool | None = None


def _xla_works() -> bool:
    """Whether XLA compiles on this host (checked once per process on a tiny batch)."""
    global _XLA_WORKS
    if _XLA_WORKS is None:
        try:
            x = tf.reshape(tf.range(12, dtype=tf.float32), (2, 2, 3))
            got = _CROP_STANDARDISE_XLA(x, tf.constant([0, 1]), 2, tf.zeros((2, 1)), tf.ones((2, 1)))
            _XLA_WORKS = bool(np.array_equal(got.numpy(), [[[0, 1], [3, 4]], [[7, 8], [10, 11]]]))
        except (tf.errors.OpError, ValueError, NotImplementedError):  # a TensorFlow built without XLA
            _XLA_WORKS = False
    return _XLA_WORKS


def _mixup(x: tf.Tensor, y: tf.Tensor, rnd: tf.Tensor, *, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Mix every example with another of the same batch (Zhang et al. 2018), lambda ~ Beta(alpha, alpha)."""
    n = tf.shape(x)[0]
    gamma_a = tf.random.stateless_gamma([n], _stateless_seed(rnd, 0), alpha=alpha)
    gamma_b = tf.random.stateless_gamma([n], _stateless_seed(rnd, 1), alpha=alpha)
    lam = gamma_a / tf.maximum(gamma_a + gamma_b, 1e-12)
    partner = tf.argsort(tf.random.stateless_uniform([n], _stateless_seed(rnd, 2)))

    def mix(t: tf.Tensor) -> tf.Tensor:
        weight = tf.reshape(lam, [-1] + [1] * (t.shape.rank - 1))
        return weight * t + (1.0 - weight) * tf.gather(t, partner)

    return mix(x), mix(y)


# --------------------------------------------------------------------------- load
def load(
    store: str | os.PathLike,
    split: str,
    *,
    feature: str | None = None,
    batch_size: int,
    patch_frames: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    variants: str | list[int] = "all",
    variant_choice: str | None = None,
    standardize: bool = True,
    cache: bool | str = False,
    repeat: bool | int = False,
    input_context: tf.distribute.InputContext | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
    deterministic: bool | None = None,
    verify: bool = False,
    spec_augment: dict[str, int] | None = None,
    mixup_alpha: float | None = None,
    crop: str = "random",
    drop_remainder: bool = False,
    hdf5_backend: str = "h5py",
    shuffle_buffer: int | None = None,
    with_metadata: bool = False,
    balance: str = "none",
    patches_per_track: int | None = None,
) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data.Dataset`` of ``(features, labels)`` from a mirdl store.

    Parameters
    ----------
    store : path-like or str
        Store directory written by ``mirdl prepare`` (TFRecord, HDF5 or Parquet shards), an
        ``s3://BUCKET/PREFIX`` URL (read shard by shard, never copied whole), or a catalog
        reference ``catalog://NAME[@VERSION]`` (root from ``$MIRDL_CATALOG``).
    split : str
        Split name in the manifest (``"train"``, ``"valid"``, ...).
    feature : str, optional
        Feature to read; default the store's first (manifest order). Required in practice
        when a store holds several.
    batch_size : int > 0
    patch_frames : int > 0, optional
        Frames per example. Stored segments are cropped to this length: at a random
        offset drawn anew every epoch (``crop="random"``) or in the centre
        (``crop="center"``, offset ``(n_frames - patch_frames) // 2`` as
        :func:`mirdl.features.segment.center_crop`). For frame tasks the labels are cropped with
        the same offset. Default: the whole segment.
    shuffle : bool
        A new order of the records every epoch. A local, uncompressed TFRecord split of at most
        :data:`PERMUTATION_MAX_BYTES` (without ``shuffle_buffer``, ``cache``, ``variants``
        filtering or ``balance``) is read in a random permutation of the whole split, each record
        at its byte offset (:func:`_records_at_offsets`; unshuffled, at its offset too, in the
        order of the shards' interleave); other stores shuffle shard order, then records through
        a buffer of ``shuffle_buffer`` records (README "Shuffling").
    seed : int, optional
        Seed of every random choice; with ``deterministic=True`` two builds give the same batches.
    variants : "all", "clean" or list of int
        Augmentation variants to read: every one, only variant 0 (clean audio), or these.
    variant_choice : None or "random"
        ``"random"``: each epoch keeps, per track, the records of ONE variant drawn from
        ``variants`` (a different draw every epoch). ``None`` keeps all selected variants
        (shuffling then mixes variants within each epoch).
    standardize : bool
        Subtract the manifest's train mean and divide by its std (per frequency bin,
        broadcast over time; std floored at :data:`STD_FLOOR`).
    cache : bool or str
        Cache parsed records in memory (True) or in files with this prefix (str), after
        variant selection and before shuffling, so later epochs skip I/O and parsing.
    repeat : bool or int
        Repeat forever (True) or this many epochs (int); False: one epoch per iteration.
    input_context : tf.distribute.InputContext, optional
        From ``strategy.distribute_datasets_from_function``; or give ``num_shards`` and
        ``shard_index``. Each worker gets a disjoint part, all workers together get every
        record: whole shard files when there are at least as many files as workers, else
        every ``num_shards``-th record of a fixed file order (then file order is not shuffled,
        and the interleave is deterministic so that workers agree on record order).
    deterministic : bool, optional
        Order guarantee of the parallel interleave/maps; None leaves tf.data's default
        (``tf.data.Options.deterministic``). False is faster when order does not matter.
    verify : bool
        Check every shard's sha256 against the manifest before reading. Shard existence and
        byte size are always checked.
    spec_augment : dict, optional
        SpecAugment masks (Park et al. 2019): ``freq_masks``, ``freq_width``, ``time_masks``,
        ``time_width`` (missing keys from :data:`SPEC_AUGMENT_DEFAULTS`). Masked bins are set to
        the train mean (0 after standardisation). Widths are drawn in ``[0, width]``.
    mixup_alpha : float > 0, optional
        Mixup within each batch with lambda ~ Beta(alpha, alpha) per example; clip tasks
        only. Single-label labels become float32 one-hot.
    crop : {"random", "center"}
        How ``patch_frames`` are cut from a segment ("center" for evaluation).
    drop_remainder : bool
        Drop the last, smaller batch (static batch dimension).
    hdf5_backend : {"h5py", "tfio"}
        HDF5 reader: h5py in a per-shard generator, or tensorflow-io's native ops (raises
        StoreError where tensorflow-io does not load, and for LZF-compressed stores, a filter
        only h5py has).
    shuffle_buffer : int, optional
        Records in the shuffle buffer; default ``min(records in split, 2048)``. Given, a TFRecord
        store is also read through the buffer, its shards streamed in order (for storage where
        reads at random offsets are slow: network file systems, spinning disks).
    balance : {"none", "class", "track"}
        Balanced epochs (:mod:`mirdl_tf.balance`): every epoch first draws its sample plan from
        the split's record index (``"class"``: ``round(N / K)`` records of each of the ``K``
        classes; ``"track"``: ``patches_per_track`` records of every track, without replacement
        within a class or track while it has records left), then reads only the planned records
        (HDF5/Parquet by position, TFRecord filtered before parsing). With ``variant_choice``
        each draw takes any variant of ``variants``. ``"none"``: every record once per epoch.
    patches_per_track : int > 0, optional
        Records per track and epoch with ``balance="track"``; default the split's mean.
    with_metadata : bool
        Yield ``(features, labels, meta)`` with ``meta`` a dict of ``key``, ``track_id``,
        ``variant``, ``segment``, ``start_frame`` and ``crop_offset`` (first frame of the
        patch in its segment): for evaluation loops that aggregate per track. (Keras
        ``fit`` would read a third element as sample weights.)

    Returns
    -------
    tf.data.Dataset
        Elements ``(features, labels)``: float32 ``(batch, *feature_shape[:-1], patch_frames)``
        (frequency x time, no channel axis) and labels of shape ``(batch, *label_shape)``
        (time axis cropped to ``patch_frames`` for frame tasks).

    Raises
    ------
    StoreError
        Missing/incomplete store or manifest, unknown format_version, unknown split or
        feature, a shard that is missing or of the wrong size, a sha256 mismatch
        (``verify=True``), missing stats with ``standardize=True``, tensorflow-io not
        loadable or an LZF store (``hdf5_backend="tfio"``).
    ValueError
        An argument out of range (message shows what was received).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    if crop not in _CROPS:
        raise ValueError(f"crop must be one of {_CROPS}. Received: crop={crop!r}")
    if hdf5_backend not in _HDF5_BACKENDS:
        raise ValueError(f"hdf5_backend must be one of {_HDF5_BACKENDS}. Received: hdf5_backend={hdf5_backend!r}")
    if variant_choice not in (None, "random"):
        raise ValueError(f'variant_choice must be None or "random". Received: variant_choice={variant_choice!r}')
    if mixup_alpha is not None and not (isinstance(mixup_alpha, (int, float)) and mixup_alpha > 0):
        raise ValueError(f"mixup_alpha must be a number > 0 or None. Received: mixup_alpha={mixup_alpha!r}")
    if shuffle_buffer is not None and (not isinstance(shuffle_buffer, int) or shuffle_buffer < 1):
        raise ValueError(f"shuffle_buffer must be a positive integer. Received: shuffle_buffer={shuffle_buffer!r}")
    if not isinstance(repeat, (bool, int)) or (not isinstance(repeat, bool) and repeat < 1):
        raise ValueError(f"repeat must be a bool or an int >= 1. Received: repeat={repeat!r}")
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {BALANCE_MODES}. Received: balance={balance!r}")
    if patches_per_track is not None and (balance != "track" or isinstance(patches_per_track, bool)
                                          or not isinstance(patches_per_track, (int, np.integer))
                                          or patches_per_track < 1):
        raise ValueError('patches_per_track must be a positive integer, with balance="track". '
                         f"Received: patches_per_track={patches_per_track!r}, balance={balance!r}")
    selected = _check_variants(variants)
    num_workers, worker = _workers(input_context, num_shards, shard_index)

    info = _open_store(store, feature)
    patch = _check_patch_frames(patch_frames, info)
    augment = _check_spec_augment(spec_augment, info)
    if mixup_alpha is not None and info.is_frame_task:
        raise ValueError(f"mixup is for clip tasks; the store's task is {info.task_type!r} (frame labels)")
    if info.is_frame_task and (not info.label_shape or info.label_shape[-1] != info.n_frames):
        raise StoreError(
            f"{info.where}: frame task label_shape {info.label_shape} must end with "
            f"the feature's {info.n_frames} frames"
        )
    entries = shard_entries(info.manifest, split)  # StoreError for an unknown split
    if not entries:
        raise StoreError(f"{info.where}: split {split!r} has no shards")
    # Existence and size of every shard now (cheap), checksums only when asked.
    check_shards(info.path, info.manifest, splits=[split], checksums=verify)
    paths = [os.fspath(path) for path in shard_paths(info.path, info.manifest, split)]
    # Records are looked at one by one only to select variants or balance them; otherwise only
    # the feature and the label are read (the record columns are neither parsed nor decoded,
    # unless with_metadata asks for them).
    per_record = selected is not None or variant_choice is not None or balance != "none"
    read, parse = _shard_reader(info, hdf5_backend=hdf5_backend, metadata=with_metadata or per_record)
    # Serialised records (TFRecord) are shuffled as they are and parsed a whole batch at a time,
    # unless variants are filtered or records balanced, which needs each record's fields first.
    parse_late = parse is not None and not per_record
    # Records read at their offsets: shuffled, a permutation of the whole split instead of a buffer (no
    # fill, every epoch uniform; README "Shuffling"); unshuffled, in the order of the shards' interleave.
    # Workers each take whole shards, as the streamed path does when it can.
    at_offsets = (shuffle_buffer is None and not per_record and not cache and info.format == "tfrecord"
                  and not info.remote and (info.manifest.get("compression") or "none") == "none"
                  and hasattr(os, "pread") and len(paths) >= num_workers
                  and sum(int(e["bytes"]) for e in entries[worker::num_workers]) <= PERMUTATION_MAX_BYTES)
    read_ids = None

    if balance != "none":
        # ---- balance: each epoch's sample plan drawn from the shard index, then only the planned
        # records read (variants and this worker's part are part of the plan; mirdl_tf.balance)
        _check_balance_mode(balance, info)
        ds, worker_records = balance_module.balanced_records(
            info, split, paths, read=read, parse=parse, mode=balance, patches_per_track=patches_per_track,
            variants=selected,
            num_workers=num_workers, worker=worker, seed=_derived_seed(seed, 4), cache=cache,
            deterministic=deterministic)
        batched = False
    elif at_offsets:
        # ---- this worker's record ids (a permutation every iteration, or interleaved); read after batching
        ds, worker_records, read_ids = _records_at_offsets(paths[worker::num_workers], entries[worker::num_workers],
                                                           shuffle=shuffle, seed=seed)
        batched = False
    else:
        # ---- list shards, [shard by files], interleave, [shard by records], parse
        ds, worker_records, batched = _read_records(
            paths, [int(e["records"]) for e in entries], read=read, parse=None if parse_late else parse,
            num_workers=num_workers, worker=worker, shuffle=shuffle, seed=seed, deterministic=deterministic,
            parallel_read=info.format == "parquet", keep_batches=not shuffle and not per_record)

        # ---- select variants, cache
        if selected is not None and variant_choice is None:
            keep = tf.constant(selected, tf.int64)
            ds = ds.filter(lambda r: tf.reduce_any(tf.equal(r["variant"], keep)))
        if cache:
            ds = ds.cache(cache if isinstance(cache, str) else "")
        if variant_choice == "random":
            pool = selected if selected is not None else info.variants()
            ds = _choose_variant_per_epoch(ds, pool, seed=_derived_seed(seed, 1))

    # ---- shuffle, repeat
    if shuffle and not at_offsets:
        buffer = shuffle_buffer or max(1, min(worker_records, DEFAULT_SHUFFLE_BUFFER))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat is True:
        ds = ds.repeat()
    elif repeat is not False:
        ds = ds.repeat(int(repeat))

    # ---- crop, standardise, augment (one parallel map)
    needs_random = (patch != info.n_frames and crop == "random") or augment is not None
    mean, std = info.stats() if standardize else (None, None)
    fill = None  # SpecAugment's mask value: the train mean (0 once standardised, or if unknown)
    if augment is not None and not standardize and info.feature_entry.get("stats"):
        fill = info.stats()[0]
    if read_ids is not None:  # batches of record ids: read in the parallel map, then parsed
        parse = _read_then_parse(read_ids, parse)
    # An epoch's records are known unless variants are filtered record by record; a balanced
    # epoch reads its plan, whose size is fixed (variants included). Batches run across epoch
    # boundaries (repeat comes before batch), so only the last batch of a finite read can be short.
    n_records = None
    if (balance != "none" or (selected is None and variant_choice is None)) and repeat is not True:
        n_records = worker_records * (1 if repeat is False else int(repeat))
    prepare = _make_prepare(info, patch=patch, crop=crop, mean=mean, std=std, augment=augment, fill=fill,
                            with_metadata=with_metadata, parse=parse if parse_late else None,
                            batch_size=batch_size if drop_remainder else None,
                            sized_randoms=n_records is not None or repeat is True)
    # ---- batch, then [read,] crop + standardise + SpecAugment on the whole batch (one parallel map);
    # each record keeps its own random value, so crops and masks are those of a per-record map.
    batches = _batch(ds, batch_size, drop_remainder=drop_remainder, batched=batched)
    if needs_random:
        # Batches of random values beside batches of records: the i-th record gets the i-th value.
        # Where the records are counted (or endless), the random batches are cut to the same sizes,
        # so a last, shorter batch of records meets a random batch of its size (the same values it
        # took as the head of a full random batch, without a slice in the map: BENCHMARKS.md round 13).
        randoms = tf.data.Dataset.random(seed=_derived_seed(seed, 2), rerandomize_each_iteration=True)
        if n_records is not None:
            randoms = randoms.take(n_records)
        ds = tf.data.Dataset.zip((batches, randoms.batch(batch_size, drop_remainder=drop_remainder)))
        ds = ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    else:
        ds = batches.map(lambda records: prepare(records, None), num_parallel_calls=AUTOTUNE,
                         deterministic=deterministic)

    # ---- mixup, prefetch
    if mixup_alpha is not None:
        ds = _apply_mixup(ds, alpha=float(mixup_alpha), n_classes=info.n_outputs(),
                          one_hot=info.task_type == "single_label",
                          seed=_derived_seed(seed, 3), with_metadata=with_metadata, deterministic=deterministic)
    if n_records is not None:
        n_batches = n_records // batch_size if drop_remainder else -(-n_records // batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    ds = ds.prefetch(AUTOTUNE)
    if deterministic is not None:
        options = tf.data.Options()
        options.deterministic = bool(deterministic)
        ds = ds.with_options(options)
    return ds


def balance_rates(store: str | os.PathLike, split: str, *, mode: str, patches_per_track: int | None = None,
                  variants: list[int] | None = None) -> dict[Any, float]:
    """Copies per epoch of each record, by class index (``mode="class"``) or track id
    (``mode="track"``), as :func:`load`'s ``balance`` plans them (:mod:`mirdl_tf.balance`).

    ``"class"``: ``round(N / K) / n_c`` for the ``n_c`` records of class ``c`` (``K`` classes
    present, ``N`` records; 0 for a class without records; single-label stores only).
    ``"track"``: ``patches_per_track / n_t`` for the ``n_t`` records of track ``t``. Records of
    ``variants`` (None: all) are counted from the shard index (no feature is read).

    Examples
    --------
    >>> balance_rates("demo-out/stores/demo", "train", mode="class")  # doctest: +SKIP
    {0: 0.8, 1: 1.33, 2: 1.0, 3: 1.0}
    """
    info = _open_store(store, None)
    shard_entries(info.manifest, split)  # StoreError for an unknown split
    _check_balance_mode(mode, info)
    _, plan = balance_module.plan_for_split(info.path, info.manifest, split, mode=mode,
                                            patches_per_track=patches_per_track, variants=variants)
    rates = {key: plan.draws[key] / size for key, size in plan.sizes.items()}
    if mode == "class":
        return {index: rates.get(index, 0.0) for index in range(info.n_outputs())}
    return rates


def _check_balance_mode(mode: str, info: _Store) -> None:
    if mode == "class" and info.task_type != "single_label":
        raise ValueError(f'balance="class" needs a single_label store; {info.where} holds a {info.task_type!r} task '
                         '(use balance="track" or class weights)')


def _shard_reader(info: _Store, *, hdf5_backend: str, metadata: bool = True):
    """``(read, parse)``: ``read(path) -> dataset`` per shard; ``parse`` for batches of serialised records, or None.
    ``metadata=False``: records hold only ``feature`` and ``label``."""
    backend = hdf5_backend if info.format == "hdf5" else None
    try:
        adapter = adapters.adapter_for(info.format)
        if info.remote:  # shard by shard through the store layer's filesystem (no whole-store copy)
            return adapter.remote_reader(info.layout(metadata=metadata))
        return adapter.tf_reader(info.layout(metadata=metadata), backend=backend)
    except StoreError as err:
        raise StoreError(f"{info.where}: {err}") from err


def _batch(ds: tf.data.Dataset, batch_size: int, *, drop_remainder: bool, batched: bool) -> tf.data.Dataset:
    """Batches of ``batch_size`` records from records, or from batches of records (``batched``:
    ``rebatch`` moves whole slices, the records of a batch never cross tf.data one by one)."""
    if batched:
        return ds.rebatch(batch_size, drop_remainder=drop_remainder)
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def _read_records(paths: list[str], counts: list[int], *, read, parse, num_workers: int, worker: int,
                  shuffle: bool, seed: int | None, deterministic: bool | None,
                  parallel_read: bool = True, keep_batches: bool = False) -> tuple[tf.data.Dataset, int, bool]:
    """Records of this worker's part of the split, parsed; how many there are; and whether the
    elements are batches of records rather than records.

    Whole files per worker when there are at least as many files as workers, else every
    ``num_workers``-th record of the interleaved stream (then the file order is fixed and
    the interleave deterministic, so that every worker sees the same stream). A reader that
    yields batches of records (HDF5, Parquet) is unbatched only if ``keep_batches`` is False
    or records are sharded between workers; the order of the records is the same either way.
    Unshuffled, with whole files per worker, a reader with a plan (HDF5, Parquet, local) reads its
    shards' planned ranges in that order without the interleave (:func:`_planned_ranges`).
    """
    by_files = len(paths) >= num_workers
    if by_files and not shuffle and getattr(read, "plan", None) is not None:
        # ---- a random-access format, in the shards' order: every range of every shard, one map
        mine = paths[worker::num_workers]
        ds = _planned_ranges(mine, read=read, cycle_length=min(len(mine), MAX_CYCLE_LENGTH))
        if not keep_batches:
            ds = ds.unbatch()
        return ds, sum(counts[worker::num_workers]), keep_batches
    files = tf.data.Dataset.from_tensor_slices(paths)
    if num_workers > 1 and by_files:
        files = files.shard(num_workers, worker)
        n_files, n_records = len(paths[worker::num_workers]), sum(counts[worker::num_workers])
    else:
        n_files, n_records = len(paths), len(range(worker, sum(counts), num_workers))
    if shuffle and by_files and n_files > 1:
        files = files.shuffle(n_files, seed=seed, reshuffle_each_iteration=True)
    # TFRecord: a sequential interleave; records are small and a parallel interleave's hand-off
    # between threads costs more per record than reading it (2x fewer records/s on 2 cores).
    # Parquet: pyarrow decodes without the GIL, so reading shards in parallel pays. HDF5: every
    # h5py call takes one library-wide lock (HDF5 reads are never parallel), so a parallel
    # interleave only adds hand-offs (sequential ran at 0.94-2x the parallel rate in 5 A/B runs on
    # 2 shared cores, 1.5x typical).
    parallel = AUTOTUNE if parallel_read else None
    ds = files.interleave(read, cycle_length=min(n_files, MAX_CYCLE_LENGTH), block_length=1,
                          num_parallel_calls=parallel,
                          deterministic=None if parallel is None else (True if not by_files else deterministic))
    batched = getattr(read, "batched", False) and keep_batches and by_files
    if getattr(read, "batched", False) and not batched:
        ds = ds.unbatch()
    if not by_files:
        ds = ds.shard(num_workers, worker)
    if parse is not None:  # vectorised: one parse op per READ_CHUNK serialised records
        ds = ds.batch(adapters.READ_CHUNK).map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        ds = ds.unbatch()
    return ds, n_records, batched


def _interleave_order(lengths: Sequence[int], *, cycle_length: int) -> list[tuple[int, int]]:
    """``(input, position)`` of each element of ``tf.data``'s sequential ``interleave`` with
    ``cycle_length`` and ``block_length=1`` over inputs of ``lengths`` elements: a slot whose input
    ends is passed over, and refilled with the next input when its turn comes again.

    >>> _interleave_order([2, 1, 2], cycle_length=2)
    [(0, 0), (1, 0), (0, 1), (2, 0), (2, 1)]
    """
    slots: list[list[int] | None] = [None] * max(1, cycle_length)  # [input, next position] per slot
    following, order, index = 0, [], 0
    while following < len(lengths) or any(slot is not None for slot in slots):
        slot = slots[index]
        if slot is None and following < len(lengths):
            slot = slots[index] = [following, 0]
            following += 1
            continue  # the new input gives its first element at once, in the same slot
        if slot is not None:
            if slot[1] < lengths[slot[0]]:
                order.append((slot[0], slot[1]))
                slot[1] += 1
            else:
                slots[index] = None
        index = (index + 1) % len(slots)
    return order


def _planned_ranges(paths: list[str], *, read, cycle_length: int) -> tf.data.Dataset:
    """Batches of records of the shards ``paths`` of a random-access format (``read``: its planned
    reader, :meth:`mirdl.store.adapters.RandomAccessAdapter._planned_reader`), in the order the
    interleave of :func:`_read_records` streams them (:func:`_interleave_order` over the shards'
    planned ranges). Every shard is planned here, once per :func:`load`; then one dataset of
    ``(shard, start, stop)`` and one map read them all (parallel where the format's ranges may be
    read at once): no interleave, no pipeline and no plan call per shard at every epoch, and the
    first batch waits for one range, not one per shard."""
    plans = [read.plan(path) for path in paths]
    order = _interleave_order([len(starts) for starts, _ in plans], cycle_length=cycle_length)
    shard = np.asarray([s for s, _ in order], np.int64)
    starts = np.asarray([plans[s][0][k] for s, k in order], np.int64)
    stops = np.asarray([plans[s][1][k] for s, k in order], np.int64)
    table = tf.constant(paths)
    ranges = tf.data.Dataset.from_tensor_slices((shard, starts, stops))
    parallel = AUTOTUNE if read.parallel_ranges else None
    return ranges.map(lambda s, start, stop: read.read_range(tf.gather(table, s), start, stop),
                      num_parallel_calls=parallel, deterministic=True if parallel else None)


@functools.lru_cache(maxsize=64)
def _record_offsets(path: str, sha256: str | None, size: int, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mirdl.store.tfrecord.record_offsets` of a local shard, scanned once per process and
    version of the shard (its manifest sha256, size and modification time are the key)."""
    offsets, lengths = tfrecord.record_offsets(path)
    offsets.flags.writeable = lengths.flags.writeable = False
    return offsets, lengths


class _MappedShards:
    """Read-only memory maps of the shards ``paths`` (of ``sizes`` bytes when :func:`load` listed
    them), each mapped when first read, at most ``limit`` at once (least recently used unmapped
    first). Thread-safe; a map dropped while another thread reads it stays valid for that read."""

    def __init__(self, paths: list[str], sizes: list[int], *, limit: int):
        self._paths, self._sizes, self._limit = paths, sizes, limit
        self._maps: collections.OrderedDict[int, mmap.mmap] = collections.OrderedDict()
        self._lock = threading.Lock()

    def checked(self, index: int) -> mmap.mmap:
        """Shard ``index``'s map, once its file still has the size it had (a shard cut short under
        a map would end the process with SIGBUS where a read at its offset raises)."""
        with self._lock:
            mapped = self._maps.get(index)
            if mapped is None:
                with open(self._paths[index], "rb") as handle:
                    mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                self._maps[index] = mapped
                if len(self._maps) > self._limit:
                    self._maps.popitem(last=False)
            else:
                self._maps.move_to_end(index)
        if mapped.size() != self._sizes[index]:
            raise StoreError(f"{self._paths[index]}: {mapped.size()} bytes, {self._sizes[index]} when the store "
                             "was opened: the shard changed while it was read")
        return mapped


def _records_at_offsets(paths: list[str], entries: list[dict[str, Any]], *, shuffle: bool,
                        seed: int | None) -> tuple[tf.data.Dataset, int, Any]:
    """Record ids of the TFRecord shards ``paths`` (local, uncompressed), how many there are, and
    ``read_ids``: a batch of ids to the batch of their serialised records.

    ``shuffle``: a new random order every iteration (and every round of ``repeat``), a permutation of
    all the records drawn in graph from ``seed`` (:func:`_permuted_ids`), so every epoch is shuffled
    whole with no buffer to fill. Else the order :func:`_read_records` streams them in: the same ``interleave`` (cycle
    ``MAX_CYCLE_LENGTH``, one record a shard in turn), over ranges of ids. Each record is read at its byte offset (the
    shard's record headers are scanned once, :func:`_record_offsets`) with its CRC32C checked, as
    ``TFRecordDataset`` checks it: one ``tf.numpy_function`` a batch, the records copied out of the
    shards' memory maps (:class:`_MappedShards`; each shard's size checked again every batch).
    """
    shard, offsets, lengths, sizes = [], [], [], []
    for index, (path, entry) in enumerate(zip(paths, entries)):
        status = os.stat(path)
        try:
            starts, spans = _record_offsets(path, entry.get("sha256"), status.st_size, status.st_mtime_ns)
        except tfrecord.CorruptRecord as err:
            raise adapters.corrupt_tfrecord_shard(path, err) from None
        if len(starts) != int(entry["records"]):
            raise StoreError(f"{path}: {len(starts)} records, the manifest says {entry['records']}")
        shard.append(np.full(len(starts), index, np.int64))
        offsets.append(starts)
        lengths.append(spans)
        sizes.append(status.st_size)
    shard, offsets, lengths = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (shard, offsets, lengths))
    n_records = len(offsets)
    shards = _MappedShards(paths, sizes, limit=MAX_MAPPED_SHARDS)

    def read(ids: np.ndarray) -> np.ndarray:
        out = np.empty(len(ids), dtype=object)
        maps: dict[int, mmap.mmap] = {}  # this batch's shards, each checked once
        for j, (s, offset, length) in enumerate(zip(shard[ids].tolist(), offsets[ids].tolist(),
                                                    lengths[ids].tolist())):
            mapped = maps.get(s)
            if mapped is None:
                mapped = maps[s] = shards.checked(s)
            try:
                out[j] = tfrecord.record_at(mapped, offset, length)
            except tfrecord.CorruptRecord as err:
                raise adapters.corrupt_tfrecord_shard(paths[s], err) from None
        return out

    def read_ids(ids: tf.Tensor) -> tf.Tensor:
        records = tf.numpy_function(read, [ids], tf.string, stateful=False)
        records.set_shape([None])
        return records

    if shuffle:
        ids = _permuted_ids(n_records, seed=seed)
    else:
        counts = np.asarray([int(entry["records"]) for entry in entries], np.int64)
        first_ids = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)  # each shard's first id
        ids = tf.data.Dataset.from_tensor_slices((first_ids, counts)).interleave(
            lambda start, count: tf.data.Dataset.range(start, start + count),
            cycle_length=max(1, min(len(paths), MAX_CYCLE_LENGTH)), block_length=1)
    return ids, n_records, read_ids


def _permuted_ids(n: int, *, seed: int | None) -> tf.data.Dataset:
    """``0 .. n - 1`` in a new pseudo-random order every iteration and every round of ``repeat``
    (the same orders for the same ``seed``).

    tf.data's global shuffle where this TensorFlow has it: each position's id is computed as it is
    taken (``random_index_shuffle``, a 4-round block cipher over the ids, keyed per iteration), so
    the pipeline holds no permutation and has no function to instantiate at every iterator (the
    ``flat_map`` below cost ~5 ms of each iterator's start; BENCHMARKS.md round 12). Else one
    random value per iteration seeds a ``stateless_shuffle`` of all the ids (a uniform
    permutation, ``n`` int64 held per epoch).
    """
    if n == 0:  # (the global shuffle refuses an empty input)
        return tf.data.Dataset.range(0)
    if _global_shuffle is not None:
        return _global_shuffle(tf.data.Dataset.range(n), seed=seed, reshuffle_each_iteration=True)

    def permutation(value: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                         _stateless_seed(value, _SALT_ORDER))
        return tf.data.Dataset.from_tensor_slices(order)

    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).flat_map(permutation)


def _read_then_parse(read_ids, parse):
    """``parse`` of the records ``read_ids`` reads: the read runs in the parallel map with the parse
    and the crop, several batches' reads at once (a map of its own read one batch at a time, and each
    map's function is instantiated, its graph optimised, every time an iterator is made)."""

    def read_and_parse(ids: tf.Tensor):
        return parse(read_ids(ids))

    return read_and_parse


def _choose_variant_per_epoch(ds: tf.data.Dataset, pool: list[int], *, seed: int | None) -> tf.data.Dataset:
    """Keep, per track, the records of one variant from ``pool``, drawn anew every iteration."""
    pool_t = tf.constant(pool, tf.int64)
    # One random value per iteration of the dataset (Dataset.random re-randomises each
    # iteration), repeated alongside every record of that iteration.
    epoch_value = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).flat_map(
        lambda value: tf.data.Dataset.from_tensors(value).repeat())

    def keep(record: dict[str, tf.Tensor], value: tf.Tensor) -> tf.Tensor:
        token = tf.strings.join([record["track_id"], tf.strings.as_string(value)], separator="#")
        chosen = tf.gather(pool_t, tf.strings.to_hash_bucket_fast(token, len(pool)))
        return tf.equal(record["variant"], chosen)

    return tf.data.Dataset.zip((ds, epoch_value)).filter(keep).map(lambda record, value: record)


def _make_prepare(info: _Store, *, patch: int, crop: str, mean, std, augment, fill, with_metadata: bool,
                  parse=None, batch_size: int | None = None, sized_randoms: bool = False):
    """The per-batch map: [parse], cast, crop (features and frame labels), standardise, SpecAugment.

    Takes ``(records, rnd)`` with a leading batch axis (``records`` serialised when ``parse`` is
    given); every record's crop offset and masks are drawn from its own ``rnd`` (the offset is
    ``rnd`` modulo the number of offsets; the masks stateless draws seeded by it, one record at
    a time) and applied to the whole batch at once. ``batch_size``
    (batches of a fixed size) is set as the static batch dimension of every output.
    ``sized_randoms``: every batch of random values has its batch of records' size; else a batch
    takes the head of its random values (a last, shorter batch).
    """
    n_frames = info.n_frames
    frame_task = info.is_frame_task
    center_offset = (n_frames - patch) // 2
    # A random crop of standardised features: one XLA-compiled gather + standardisation.
    fused = (mean is not None and patch != n_frames and crop == "random" and _FUSED_CROP
             and _xla_works())
    if fused:
        mean, std = tf.constant(mean), tf.constant(std)
    # The batch's size is needed to cut random values, for fixed offsets, and for SpecAugment's masks.
    needs_size = not sized_randoms or patch == n_frames or crop == "center" or augment is not None

    def draw(rnd: tf.Tensor, fn, dtype) -> tf.Tensor:
        return tf.map_fn(fn, rnd, fn_output_signature=dtype)

    def prepare(records, rnd: tf.Tensor | None):
        out = _prepare(records, rnd)
        if batch_size is not None:
            for tensor in tf.nest.flatten(out):
                tensor.set_shape([batch_size] + tensor.shape[1:].as_list())
        return out

    def _prepare(records, rnd: tf.Tensor | None):
        record = parse(records) if parse is not None else records
        x = tf.cast(record["feature"], tf.float32)
        y = record["label"]
        n = tf.shape(x)[0] if needs_size else None  # (every op here is instantiated with each iterator)
        if rnd is not None and not sized_randoms:
            rnd = rnd[:n]
        if patch == n_frames:
            offset = tf.zeros([n], tf.int32)
        elif crop == "center":
            offset = tf.fill([n], tf.constant(center_offset, tf.int32))
        else:
            # The record's random int64 (uniform) modulo the number of offsets: vectorised, where
            # a stateless draw per record is a loop (half the batch rate); bias < 2**-50.
            offset = tf.cast(tf.math.floormod(rnd, n_frames - patch + 1), tf.int32)
        if patch != n_frames and crop == "center":
            x = x[..., center_offset:center_offset + patch]
            if frame_task:
                y = y[..., center_offset:center_offset + patch]
        elif patch != n_frames:
            if fused:
                x = _CROP_STANDARDISE_XLA(x, offset, patch, mean, std)
            else:
                x = _crop_time_batch(x, offset, patch)
            if frame_task:
                y = _crop_time_batch(y, offset, patch)
        if mean is not None and not (fused and patch != n_frames and crop != "center"):
            x = (x - mean) / std
        if augment is not None:
            n_freq = x.shape[-2]
            freq = draw(rnd, lambda r: _interval_mask(_stateless_seed(r, _SALT_FREQ), size=n_freq,
                                                     count=augment["freq_masks"], max_width=augment["freq_width"]),
                        tf.bool)
            time = draw(rnd, lambda r: _interval_mask(_stateless_seed(r, _SALT_TIME), size=patch,
                                                     count=augment["time_masks"], max_width=augment["time_width"]),
                        tf.bool)
            masked = freq[:, :, tf.newaxis] | time[:, tf.newaxis, :]  # (batch, freq, time)
            masked = tf.reshape(masked, [n] + [1] * (x.shape.rank - 3) + [n_freq, patch])
            x = tf.where(masked, tf.constant(0.0) if fill is None else tf.constant(fill), x)
        if not with_metadata:
            return x, y
        meta = {name: record[name] for name in ("key", "track_id", "variant", "segment", "start_frame")}
        meta["crop_offset"] = tf.cast(offset, tf.int64)
        return x, y, meta

    return prepare


def _apply_mixup(ds: tf.data.Dataset, *, alpha: float, n_classes: int, one_hot: bool, seed: int | None,
                 with_metadata: bool, deterministic: bool | None) -> tf.data.Dataset:
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def mix(batch, rnd):
        x, y = batch[0], batch[1]
        y = tf.one_hot(y, n_classes, dtype=tf.float32) if one_hot else tf.cast(y, tf.float32)
        x, y = _mixup(x, y, rnd, alpha=alpha)
        return (x, y, batch[2]) if with_metadata else (x, y)

    return tf.data.Dataset.zip((ds, randoms)).map(mix, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


# --------------------------------------------------------------------------- errors
@contextlib.contextmanager
def named_store_errors(store: str | os.PathLike, splits: str | Sequence[str]) -> Iterator[None]:
    """Turn a read error inside tf.data pipelines over ``splits`` into a StoreError naming the shard.

    TensorFlow reports a TFRecord record whose CRC does not match as ``DataLossError:
    corrupted record at N``, without the file; the HDF5 and Parquet readers raise a
    StoreError that TensorFlow wraps in its own error type. Inside this context either
    becomes one :class:`~mirdl.errors.StoreError` that names the corrupt shard (found by
    checking the split's shards) and why. ``mirdl train``, ``evaluate`` and ``extract`` read
    through it.

    Examples
    --------
    >>> with named_store_errors("demo-out/stores/demo", ["train", "valid"]):  # doctest: +SKIP
    ...     model.fit(load("demo-out/stores/demo", "train", batch_size=32))
    """
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        message = err.message or ""
        if "StoreError" in message:  # raised by an adapter inside a numpy_function or generator: keep its own words
            line = next((line for line in message.splitlines() if "StoreError" in line), message)
            raise StoreError(line.split("StoreError:", 1)[-1].strip()) from err
        if not isinstance(err, tf.errors.DataLossError) and "corrupted record" not in message:
            raise
        store = resolve_store(store)
        manifest = read_manifest(store)
        names = [splits] if isinstance(splits, str) else list(splits)
        found = next((hit for split in names if (hit := find_corrupt_shard(store, manifest, split)) is not None), None)
        if found is None:
            raise StoreError(f"{store}: split(s) {', '.join(names)}: TensorFlow reported a corrupt record "
                             f"({message.splitlines()[0] if message else err}), but every shard passes its checks "
                             "now") from err
        raise StoreError(found[1]) from err


def iterate_named(ds: tf.data.Dataset, store: str | os.PathLike, splits: str | Sequence[str]) -> Iterator[Any]:
    """``ds.as_numpy_iterator()`` inside :func:`named_store_errors`."""
    with named_store_errors(store, splits):
        yield from ds.as_numpy_iterator()
