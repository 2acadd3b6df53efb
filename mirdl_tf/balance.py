"""Balanced epochs for :func:`mirdl_tf.data.load` (``balance="class"`` or ``"track"``), planned
from the shard index before any feature is read.

Every epoch first draws its **sample plan** from the split's record index
(:func:`mirdl.store.index.record_index`: each record's shard, position, track, variant and
class, known without reading a feature), then reads only the planned records:

- ``"track"``: ``patches_per_track`` records of every track (default: the split's mean records
  per track), drawn without replacement from the track's records (a track with fewer records
  gives each of them ``patches_per_track // n`` times, and the rest at random);
- ``"class"``: ``round(N / K)`` records of each of the ``K`` classes present (``N`` records in
  the split), drawn the same way within each class: equal class rates, the epoch's size kept.

The plan is a count per record (how often it is read this epoch), drawn in graph from one
random value per epoch (``Dataset.random``, re-drawn every iteration and every round of
``repeat``): the same ``seed`` gives the same plans, each epoch a new one. HDF5 and Parquet
shards are then read by position (:meth:`mirdl.store.adapters.ShardAdapter.read_counted`,
only the row groups or chunks holding planned records); TFRecord shards, whose records have no
offsets, are streamed and their serialised records kept or repeated by position before the
feature is parsed. With ``cache``, the whole split is parsed once into the cache and every
epoch's plan is taken from there.

Examples
--------
>>> from mirdl.store.index import record_index                                        # doctest: +SKIP
>>> plan = sample_plan(record_index(store, manifest, "train"), mode="track", patches_per_track=4)  # doctest: +SKIP
>>> plan.epoch_records == 4 * len(plan.sizes)                                          # doctest: +SKIP
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from mirdl.store import adapters
from mirdl.store.index import RecordIndex, record_index

__all__ = ["SamplePlan", "sample_plan", "draw_counts", "epoch_counts", "balanced_records", "plan_for_split"]

AUTOTUNE = tf.data.AUTOTUNE
#: Shards read at the same time (as :data:`mirdl_tf.data.MAX_CYCLE_LENGTH`).
MAX_CYCLE_LENGTH = 8
# Salt of the stateless draw of a plan from the epoch's random value.
_SALT_PLAN = 7


@dataclass(frozen=True, eq=False)
class SamplePlan:
    """What an epoch draws, fixed for the whole run: the per-epoch randomness is in :func:`draw_counts`.

    Attributes
    ----------
    n_records : int
        Records of the split (the length of every epoch's count vector).
    eligible : np.ndarray [shape=(m,)], int64
        Rows of the index that may be drawn, sorted by group.
    group : np.ndarray [shape=(m,)], float64
        Group number (class or track) of each eligible row, ascending.
    slots : np.ndarray [shape=(draws,)], int64
        For each draw of an epoch, its rank in the epoch's shuffled eligible rows: group ``g``
        (rows ``start_g .. start_g + n_g - 1``) has draws ``start_g + (j mod n_g)``.
    sizes, draws : dict
        Group key (class index or track id) -> eligible records, and -> draws per epoch.
    """

    n_records: int
    eligible: np.ndarray
    group: np.ndarray
    slots: np.ndarray
    sizes: dict[Any, int]
    draws: dict[Any, int]

    @property
    def epoch_records(self) -> int:
        return len(self.slots)


def sample_plan(index: RecordIndex, *, mode: str, patches_per_track: int | None = None,
                eligible: np.ndarray | None = None) -> SamplePlan:
    """The :class:`SamplePlan` of a split's index for ``mode`` ``"class"`` or ``"track"``.

    Parameters
    ----------
    index : RecordIndex
    mode : {"class", "track"}
    patches_per_track : int > 0, optional
        Draws per track and epoch (``"track"``); default the mean eligible records per track.
    eligible : np.ndarray [shape=(n,)], bool, optional
        Rows that may be drawn (selected variants, this worker's part); default all.
    """
    if mode not in ("class", "track"):
        raise ValueError(f"mode must be 'class' or 'track'. Received: mode={mode!r}")
    rows = np.arange(index.n_records, dtype=np.int64) if eligible is None else np.flatnonzero(eligible)
    if mode == "class" and index.label is None:
        raise ValueError('balance="class" needs a single_label store (use balance="track" or class weights)')
    keys = index.label[rows] if mode == "class" else index.track_id[rows]
    names, group = np.unique(keys, return_inverse=True) if len(rows) else (np.zeros(0), np.zeros(0, np.int64))
    sizes = np.bincount(group, minlength=len(names))
    per_group = 0
    if len(names):
        per_group = int(patches_per_track) if mode == "track" and patches_per_track else \
            max(1, round(len(rows) / len(names)))
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    slots = np.concatenate([start + np.arange(per_group) % size for start, size in zip(starts, sizes)]) \
        if len(names) else np.zeros(0, np.int64)
    key_of = (lambda name: int(name)) if mode == "class" else str
    return SamplePlan(n_records=index.n_records, eligible=rows[order], group=group[order].astype(np.float64),
                      slots=slots.astype(np.int64),
                      sizes={key_of(name): int(size) for name, size in zip(names, sizes)},
                      draws={key_of(name): per_group for name in names})


def draw_counts(plan: SamplePlan, seed: tf.Tensor) -> tf.Tensor:
    """One epoch's plan: int64 ``(n_records,)``, how often each record is read (in graph).

    ``seed`` is a stateless seed (two int64). Each group's eligible rows are put in a random
    order (sorting ``group + uniform``), and the group's draws take them in that order.
    """
    uniform = tf.random.stateless_uniform([len(plan.eligible)], seed, dtype=tf.float64)
    order = tf.argsort(tf.constant(plan.group, tf.float64) + uniform)
    chosen = tf.gather(tf.constant(plan.eligible, tf.int64), tf.gather(order, tf.constant(plan.slots, tf.int64)))
    return tf.math.bincount(tf.cast(chosen, tf.int32), minlength=plan.n_records, maxlength=plan.n_records,
                            dtype=tf.int64)


def epoch_counts(plan: SamplePlan, *, seed: int | None) -> tf.data.Dataset:
    """A dataset of one element, the epoch's counts, drawn anew every iteration (and every
    round of ``repeat``) from ``seed``."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).map(
        lambda value: draw_counts(plan, tf.stack([value, tf.constant(_SALT_PLAN, tf.int64)])))


def plan_for_split(store, manifest: dict[str, Any], split: str, *, mode: str, patches_per_track: int | None = None,
                   variants: list[int] | None = None, num_workers: int = 1,
                   worker: int = 0) -> tuple[RecordIndex, SamplePlan]:
    """The index of ``split`` and the plan over the records of ``variants`` (None: all) in this
    worker's part: whole shards (``shard % num_workers == worker``) when there are at least as
    many shards as workers, else every ``num_workers``-th record (as :func:`mirdl_tf.data.load`
    divides a split)."""
    index = record_index(store, manifest, split)
    eligible = np.ones(index.n_records, dtype=bool)
    if variants is not None:
        eligible &= np.isin(index.variant, variants)
    if num_workers > 1:
        if len(index.shard_records) >= num_workers:
            eligible &= index.shard % num_workers == worker
        else:
            eligible &= np.arange(index.n_records) % num_workers == worker
    return index, sample_plan(index, mode=mode, patches_per_track=patches_per_track, eligible=eligible)


def balanced_records(info, split: str, paths: list[str], *, read, parse, mode: str, patches_per_track: int | None,
                     variants: list[int] | None, num_workers: int, worker: int, seed: int | None,
                     cache: bool | str, deterministic: bool | None) -> tuple[tf.data.Dataset, int]:
    """Parsed records of each epoch's plan (records of one shard together, shards interleaved),
    and how many an epoch has. ``info`` is :func:`mirdl_tf.data.load`'s view of the store;
    ``read``/``parse`` its shard reader."""
    index, plan = plan_for_split(info.path, info.manifest, split, mode=mode, patches_per_track=patches_per_track,
                                 variants=variants, num_workers=num_workers, worker=worker)
    needed = np.unique(index.shard[plan.eligible]) if len(plan.eligible) else np.zeros(0, np.int64)
    shard_paths = tf.constant([paths[s] for s in needed], tf.string)
    offsets = tf.constant(index.offsets[needed], tf.int64)
    sizes = tf.constant(np.asarray(index.shard_records, np.int64)[needed], tf.int64)
    cycle = max(1, min(len(needed), MAX_CYCLE_LENGTH))
    counts = epoch_counts(plan, seed=seed)
    if info.format != "tfrecord" and not cache:
        ds = _read_by_position(counts, shard_paths, offsets, sizes, reader=adapters.adapter_for(info.format)
                               .counted_reader(info.layout()), cycle=cycle, deterministic=deterministic)
    else:
        ds = _stream_and_keep(counts, shard_paths, offsets, read=read, parse=parse, cache=cache, cycle=cycle,
                              parallel=info.format != "tfrecord")
    return ds, plan.epoch_records


def _read_by_position(counts: tf.data.Dataset, paths: tf.Tensor, offsets: tf.Tensor, sizes: tf.Tensor, *,
                      reader, cycle: int, deterministic: bool | None) -> tf.data.Dataset:
    """HDF5 / Parquet: each shard with planned records is read at those positions only."""
    def shards_of(epoch_counts: tf.Tensor) -> tf.data.Dataset:
        files = tf.data.Dataset.from_tensor_slices((paths, offsets, sizes))
        files = files.map(lambda path, offset, size: (path, epoch_counts[offset:offset + size]))
        return files.filter(lambda path, shard_counts: tf.reduce_any(shard_counts > 0))

    ds = counts.flat_map(shards_of).interleave(reader, cycle_length=cycle, block_length=1,
                                               num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.unbatch() if getattr(reader, "batched", False) else ds


def _stream_and_keep(counts: tf.data.Dataset, paths: tf.Tensor, offsets: tf.Tensor, *, read, parse,
                     cache: bool | str, cycle: int, parallel: bool) -> tf.data.Dataset:
    """TFRecord (or any cached split): stream every record with its row in the index, keep each
    as often as the epoch's counts say, in batches; serialised records are parsed after that."""
    def numbered(path: tf.Tensor, offset: tf.Tensor) -> tf.data.Dataset:
        records = read(path)
        if getattr(read, "batched", False):
            records = records.unbatch()
        return records.enumerate().map(lambda i, record: (offset + i, record))

    ds = tf.data.Dataset.from_tensor_slices((paths, offsets)).interleave(
        numbered, cycle_length=cycle, block_length=1,
        **({"num_parallel_calls": AUTOTUNE, "deterministic": True} if parallel else {}))
    serialised = parse is not None
    if cache:
        if serialised:  # the cache holds parsed records: later epochs parse nothing
            ds = ds.batch(adapters.READ_CHUNK).map(lambda rows, records: (rows, parse(records))).unbatch()
            serialised = False
        ds = ds.cache(cache if isinstance(cache, str) else "")
    # The epoch's counts beside every batch (one draw per iteration of this dataset).
    counts = counts.flat_map(lambda epoch_counts: tf.data.Dataset.from_tensors(epoch_counts).repeat())

    def keep(batch, epoch_counts):
        rows, records = batch
        repeats = tf.gather(epoch_counts, rows)
        records = tf.nest.map_structure(lambda column: tf.repeat(column, repeats, axis=0), records)
        return parse(records) if serialised else records

    ds = tf.data.Dataset.zip((ds.batch(adapters.READ_CHUNK), counts)).map(keep, num_parallel_calls=AUTOTUNE)
    return ds.unbatch()
