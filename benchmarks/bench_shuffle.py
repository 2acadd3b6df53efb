"""Where the time of TFRecord ``load()`` with crop + shuffle + standardise goes, A/B in one process.

The stores of ``make bench``'s reader step (``bench_read.build_stores``: 3200 records of 96 x 128
float32 in 4 shards), then every reader below timed over 2 epochs through one iterator, the readers
alternated round after round (best of ``--rounds``): wall examples/s, process CPU time per record
(all threads; more robust than wall time on a shared machine) and the median time to the first
batch of a fresh iterator (the shuffle buffer's fill). Besides ``load()`` in several settings: the
minimal pipeline with a hand-written ``shuffle`` (what the shuffle alone costs), and the train
input of ``mirdl train`` over 5 epochs, a new iterator per epoch against one streamed iterator.

Usage::

    python benchmarks/bench_shuffle.py                 # ~3 minutes on 2 cores (stores built first)
    python benchmarks/bench_shuffle.py --rounds 10 --work bench-cache/shuffle-stores   # keep the stores (git-ignored)
"""
from __future__ import annotations

import argparse
import math
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

    def train_input(streamed: bool, epochs: int = 5):
        """The train batches of ``mirdl train`` (``mirdl_tf.train._datasets``) over ``epochs`` epochs,
        as Keras ``fit`` consumes them: a new iterator per finite epoch, or ``steps`` batches an
        epoch from one endless iterator (``stream_epochs``)."""
        from mirdl_tf.train import TrainConfig, _datasets

        config = TrainConfig.from_dict({"store": str(store), "model": {"name": "fcn"}, "batch_size": 32,
                                        "patch_frames": 96, "valid_split": None, "seed": 0})
        info = data.describe(store, patch_frames=96)

        def make():
            ds, _, steps = _datasets(config, info, epoch=0, stream_epochs=streamed)
            return [ds.take(epochs * steps)] if streamed else [ds] * epochs
        return make

    crop = {"patch_frames": 96}
    readers = {
        "minimal tf.data (TFRecordDataset -> repeat -> batch -> parse_example -> decode_raw)": minimal(),
        "the minimal pipeline + shuffle(2048), by hand (no crop, no standardise)": minimal(2048),
        "the minimal pipeline + shuffle(512), by hand": minimal(512),
        "load(), crop 96 of 128 + shuffle + standardise": load(**crop),
        "load(), crop + standardise, shuffle=False": load(shuffle=False, **crop),
        "load(), crop + shuffle + standardise, shuffle_buffer=512": load(shuffle_buffer=512, **crop),
        "load(), shuffle=False, no crop, standardise": load(shuffle=False),
        "load(), crop + shuffle + standardise, the 2 epochs as 2 iterators (Keras fit)":
            load(epochs_as_iterators=True, **crop),
        "mirdl train's input, 5 epochs, a new iterator per epoch (as before round 7)": train_input(False),
        "mirdl train's input, 5 epochs streamed through one iterator (steps_per_epoch)": train_input(True),
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
