"""Where the time of TFRecord ``load()`` with crop + shuffle + standardise goes, A/B in one process.

The stores of ``make bench``'s reader step (``bench_read.build_stores``: 3200 records of 96 x 128
float32 in 4 shards), then every reader below timed over 2 epochs through one iterator, the readers
alternated round after round (best of ``--rounds``): wall examples/s, process CPU time per record
(all threads; more robust than wall time on a shared machine) and the median time to the first
batch of a fresh iterator (the shuffle buffer's fill). Besides ``load()`` in several settings: the
minimal pipeline with a hand-written ``shuffle`` (what the shuffle alone costs), the train
input of ``mirdl train`` over 5 epochs, a new iterator per epoch against one streamed iterator,
``load()`` through a buffer (``shuffle_buffer``) and rebuilt from its pieces with the buffer's fill
spread differently (:func:`rebuilt`), and shuffles without a buffer built other ways than ``load()``'s
permutation of the split (:func:`random_access`).

Usage::

    python benchmarks/bench_shuffle.py                 # ~2 minutes on 2 cores (stores built first)
    python benchmarks/bench_shuffle.py --rounds 10 --work bench-cache/shuffle-stores   # keep the stores (git-ignored)
"""
from __future__ import annotations

import argparse
import math
import mmap
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="alternated timings per reader (best reported)")
    parser.add_argument("--work", type=Path, default=None, help="keep the stores here (default: a temporary folder)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import bench_read as br

    work = args.work or Path(tempfile.mkdtemp(prefix="mirdl-shuffle-"))
    try:
        store = work / "store-tfrecord"
        if not (store / "manifest.json").exists():
            br.build_stores(work, br.parse_args(["--records", "3200", "--shards", "4"]))
        return run(store, args.rounds)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def random_access(store: Path, paths: list[str], *, read: str, epochs: int = 2, block: int = 64, cycle: int = 8):
    """``load()``'s crop + standardise after a shuffle without a buffer, built another way than
    ``load()``'s own (a permutation of the records, each read at its offset by a
    ``tf.numpy_function`` that checks its CRC32C, then ``parse_example`` in the graph). ``read``:

    - ``"python-parsed"``: the same permutation and reads, the ``Example`` bytes parsed in Python
      too (:func:`mirdl.store.tfrecord.parse_example`) into a batch of features;
    - ``"pread"``: the same permutation, each record read by two ``os.pread`` (data, then its
      CRC32C) from the shard opened for the batch, as ``load()`` read it in round 8, where it now
      copies it out of the shard's memory map;
    - ``"blocks"``: a permutation of blocks of ``block`` consecutive records, each block a
      ``TFRecordDatasetV2`` op started at its first byte (its ``byte_offsets`` input; reads and CRCs
      in C++), ``cycle`` blocks interleaved.
    """
    import tensorflow as tf

    from mirdl.store.tfrecord import _checked, parse_example, record_at, record_offsets
    from mirdl_tf import data

    info = data._open_store(store, None)
    _, parse = data._shard_reader(info, hdf5_backend="h5py", metadata=False)
    mean, std = info.stats()
    prepare = data._make_prepare(info, patch=96, crop="random", mean=mean, std=std, augment=None, fill=None,
                                 with_metadata=False, parse=None if read == "python-parsed" else parse)
    spans = [record_offsets(path) for path in paths]
    shape, name = info.feature_shape, info.layout(metadata=False).feature
    files = np.concatenate([np.full(len(offsets), i) for i, (offsets, _) in enumerate(spans)])
    offsets, lengths = (np.concatenate([span[k] for span in spans]) for k in (0, 1))
    maps = []
    for path in paths:
        with open(path, "rb") as handle:
            maps.append(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))

    def parsed(ids):
        examples = [parse_example(record_at(maps[files[i]], int(offsets[i]), int(lengths[i])))
                    for i in ids.tolist()]
        x = np.frombuffer(b"".join(e[name][1][0] for e in examples), "<f4").reshape(len(examples), *shape)
        return x, np.concatenate([e["label"][1] for e in examples])

    def preads(ids):
        out = np.empty(len(ids), dtype=object)
        descriptors = {}
        try:
            for j, i in enumerate(ids.tolist()):
                if files[i] not in descriptors:
                    descriptors[files[i]] = os.open(paths[files[i]], os.O_RDONLY)
                fd, start, length = descriptors[files[i]], int(offsets[i]) + 12, int(lengths[i])
                out[j] = _checked(os.pread(fd, length, start), os.pread(fd, 4, start + length), length=length,
                                  offset=start - 12)
        finally:
            for fd in descriptors.values():
                os.close(fd)
        return out

    def read_ids(ids):
        if read == "pread":
            records = tf.numpy_function(preads, [ids], tf.string, stateful=False)
            records.set_shape([None])
            return records
        x, y = tf.numpy_function(parsed, [ids], [tf.float32, tf.int64], stateful=False)
        x.set_shape((None, *shape))
        y.set_shape([None])
        return {"feature": x, "label": y}

    firsts = np.concatenate([np.flatnonzero(np.arange(len(span[0])) % block == 0) + len(files[files < i])
                             for i, span in enumerate(spans)])
    block_path = tf.constant([paths[files[i]] for i in firsts])
    block_offset = tf.constant(offsets[firsts], tf.int64)
    block_size = tf.constant(np.diff(np.append(firsts, len(files))), tf.int64)

    def read_block(path, offset, size):
        variant = tf.raw_ops.TFRecordDatasetV2(filenames=tf.reshape(path, [1]), compression_type="",
                                               buffer_size=tf.constant(1 << 18, tf.int64),
                                               byte_offsets=tf.reshape(offset, [1]))
        return tf.data.experimental.from_variant(variant, tf.TensorSpec([], tf.string)).take(size)

    n = len(offsets) if read != "blocks" else len(firsts)

    def permutation(value):
        ids = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), tf.stack([value, 7]))
        if read == "blocks":
            return tf.data.Dataset.from_tensor_slices(
                (tf.gather(block_path, ids), tf.gather(block_offset, ids), tf.gather(block_size, ids)))
        return tf.data.Dataset.from_tensor_slices(ids)

    def make():
        order = tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True).take(1).flat_map(permutation)
        if read == "blocks":
            batches = order.interleave(read_block, cycle_length=cycle, block_length=1).repeat(epochs).batch(32)
        else:
            batches = order.repeat(epochs).batch(32).map(read_ids)
        randoms = tf.data.Dataset.random(seed=2, rerandomize_each_iteration=True).batch(32)
        ds = tf.data.Dataset.zip((batches, randoms)).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        return [ds.prefetch(tf.data.AUTOTUNE)]
    return make


def rebuilt(store: Path, paths: list[str], *, variant: str, epochs: int = 2):
    """``load()``'s crop + shuffle + standardise rebuilt from its own pieces, with one change:

    - ``"parallel-read"``: the 4 shards read by 2 threads (``interleave(num_parallel_calls=2)``),
      so that the buffer's fill runs on both cores;
    - ``"parse-first"``: batches parsed, cropped and standardised before the shuffle (then
      unbatched, shuffled as records and batched again), so that this work overlaps the fill.
    """
    import tensorflow as tf

    from mirdl_tf import data

    info = data._open_store(store, None)
    read, parse = data._shard_reader(info, hdf5_backend="h5py", metadata=False)
    mean, std = info.stats()
    prepare = data._make_prepare(info, patch=96, crop="random", mean=mean, std=std, augment=None, fill=None,
                                 with_metadata=False, parse=parse)

    def make():
        files = tf.data.Dataset.from_tensor_slices(paths).shuffle(len(paths), seed=0, reshuffle_each_iteration=True)
        records = files.interleave(read, cycle_length=len(paths), block_length=1,
                                   num_parallel_calls=2 if variant == "parallel-read" else None)
        randoms = tf.data.Dataset.random(seed=2, rerandomize_each_iteration=True).batch(32)
        if variant == "parse-first":
            ds = tf.data.Dataset.zip((records.batch(32), randoms)).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
            ds = ds.unbatch().shuffle(2048, seed=0, reshuffle_each_iteration=True).repeat(epochs).batch(32)
        else:
            ds = records.shuffle(2048, seed=0, reshuffle_each_iteration=True).repeat(epochs).batch(32)
            ds = tf.data.Dataset.zip((ds, randoms)).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        return [ds.prefetch(tf.data.AUTOTUNE)]
    return make


def run(store: Path, rounds: int) -> int:
    import tensorflow as tf

    from mirdl.store.manifest import read_manifest, shard_paths
    from mirdl_tf import data

    files = [str(p) for p in shard_paths(store, read_manifest(store), "train")]
    description = {"logmel": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}

    def parse(serialized):
        example = tf.io.parse_example(serialized, description)
        return tf.reshape(tf.io.decode_raw(example["logmel"], tf.float32), (-1, 96, 128)), example["label"]

    def minimal(shuffle: int | None = None):
        """The minimal pipeline; ``shuffle``: with a buffer a user adds by hand, before the batch."""
        def make():
            ds = tf.data.TFRecordDataset(files)
            if shuffle:
                ds = ds.shuffle(shuffle, seed=0)
            ds = ds.repeat(2).batch(32)
            return [ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)]
        return make

    def load(epochs_as_iterators=False, **kwargs):
        def make():
            if epochs_as_iterators:  # as Keras fit iterates a finite dataset: a new iterator per epoch
                ds = data.load(store, "train", batch_size=32, seed=0, **kwargs)
                return [ds, ds]
            return [data.load(store, "train", batch_size=32, seed=0, repeat=2, **kwargs)]
        return make

    def train_input(streamed: bool, epochs: int = 5, shuffle_buffer: int | None = None):
        """The train batches of ``mirdl train`` (``mirdl_tf.train._datasets``) over ``epochs`` epochs,
        as Keras ``fit`` consumes them: a new iterator per finite epoch, or ``steps`` batches an
        epoch from one endless iterator (``stream_epochs``)."""
        from mirdl_tf.train import TrainConfig, _datasets

        config = TrainConfig.from_dict({"store": str(store), "model": {"name": "fcn"}, "batch_size": 32,
                                        "patch_frames": 96, "valid_split": None, "seed": 0,
                                        "shuffle_buffer": shuffle_buffer})
        info = data.describe(store, patch_frames=96)

        def make():
            ds, _, steps = _datasets(config, info, epoch=0, stream_epochs=streamed)
            return [ds.take(epochs * steps)] if streamed else [ds] * epochs
        return make

    crop = {"patch_frames": 96}
    buffer = {"shuffle_buffer": 2048}
    readers = {
        "minimal tf.data (TFRecordDataset -> repeat -> batch -> parse_example -> decode_raw)": minimal(),
        "the minimal pipeline + shuffle(2048), by hand (no crop, no standardise)": minimal(2048),
        "the minimal pipeline + shuffle(512), by hand": minimal(512),
        "load(), crop 96 of 128 + shuffle + standardise (a permutation of the split, records copied out of "
        "the shards' memory maps)": load(**crop),
        "load(), the same through a buffer of 2048 records (shuffle_buffer=2048; the default before round 8)":
            load(**crop, **buffer),
        "load(), crop + standardise, shuffle=False (records read at their offsets, in the shards' interleave "
        "order)": load(shuffle=False, **crop),
        "the same streamed by TFRecordDataset (shuffle_buffer given: round 8's unshuffled read)":
            load(shuffle=False, **crop, **buffer),
        "load(), crop + shuffle + standardise, shuffle_buffer=512": load(shuffle_buffer=512, **crop),
        "load(), shuffle=False, no crop, standardise": load(shuffle=False),
        "load(), crop + shuffle + standardise, the 2 epochs as 2 iterators (Keras fit)":
            load(epochs_as_iterators=True, **crop),
        "the same through a buffer of 2048 records": load(epochs_as_iterators=True, **crop, **buffer),
        "mirdl train's input, 5 epochs streamed through one iterator (steps_per_epoch)": train_input(True),
        "mirdl train's input through a buffer of 2048 records (shuffle_buffer: 2048), 5 epochs, a new "
        "iterator per epoch (as before round 7)": train_input(False, shuffle_buffer=2048),
        "the same streamed through one iterator (round 7)": train_input(True, shuffle_buffer=2048),
        "load()'s pieces, the shards read by 2 threads (the buffer's fill on both cores)":
            rebuilt(store, files, variant="parallel-read"),
        "load()'s pieces, parse + crop + standardise before the buffer (unbatch, shuffle(2048), batch)":
            rebuilt(store, files, variant="parse-first"),
        "the same permutation, each record read by two os.pread from the shard opened for the batch (round 8's "
        "reads)": random_access(store, files, read="pread"),
        "a permutation of the split, the Example bytes parsed in Python too": random_access(store, files,
                                                                                            read="python-parsed"),
        "a permutation of blocks of 64 records per epoch, each block a TFRecordDatasetV2 from its byte offset "
        "(C++ reads and CRCs), 8 blocks interleaved, then load()'s parse + crop + standardise":
            random_access(store, files, read="blocks"),
    }

    def timed(make):
        datasets = make()
        first, n = [], 0
        start, cpu = time.perf_counter(), time.process_time()
        for ds in datasets:
            begin = time.perf_counter()
            for x, _ in ds:
                if len(first) < len(datasets) and n % 3200 == 0:
                    first.append(time.perf_counter() - begin)
                n += int(x.shape[0])
        return time.perf_counter() - start, time.process_time() - cpu, n, first[0]

    for make in readers.values():  # warm-up: graphs traced, XLA compiled, files in the page cache
        timed(make)
    load_before = os.getloadavg()[0]
    best = {name: [math.inf, math.inf, 0, []] for name in readers}
    for _ in range(rounds):
        for name, make in readers.items():
            wall, cpu, n, first = timed(make)
            row = best[name]
            row[0], row[1], row[2] = min(row[0], wall), min(row[1], cpu), n
            row[3].append(first)
    minimal_rate = next(iter(best.values()))
    minimal_rate = minimal_rate[2] / minimal_rate[0]
    print(f"3200 records x 2 epochs, batch 32, best of {rounds} alternated rounds; load average "
          f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")
    print("| reader | examples/s | x minimal | CPU us/record | first batch (median) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (wall, cpu, n, first) in best.items():
        print(f"| {name} | {n / wall:,.0f} | {n / wall / minimal_rate:.2f} | {1e6 * cpu / n:.1f} | "
              f"{1e3 * float(np.median(first)):.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
