"""Read throughput of the three store formats through ``mirdl_tf.data.load``, side by side.

One run builds a synthetic corpus (WAV, 22.05 kHz mono), cuts it into ``--records``
log-mel records of ``--n-mels x --frames`` (librosa's numbers, via :mod:`mirdl.features`), writes
the same records as a TFRecord, an HDF5 and a Parquet store (``--shards`` shards each, the
real shard writer), then times (best of ``--repeats``, each ``--passes`` epochs through one
iterator after a warm-up epoch):

- ``raw read``: every shard file of every store read into memory with plain ``open().read()``
  (page cache; the ceiling any reader of these bytes can reach);
- ``load(<format>)``: ``mirdl_tf.data.load(store, "train", batch_size, shuffle=False)``
  (standardised, parsed, batched, prefetched) for each format, plus the tensorflow-io HDF5
  backend where it loads;
- ``load(<format>), no format checksums``: the same HDF5 and Parquet shards rewritten without
  their format's checksums (no fletcher32, no Parquet page CRCs, as format version 1 stored
  them), read the same way: the cost of checking the checksums on every read is the difference;
- ``load(hdf5), h5py, a shard's ranges one after another``: the HDF5 store read as before round 9,
  each shard's planned ranges in sequence instead of in parallel;
- ``on the fly``: the tf.data pipeline that skips the store: read + ``tf.audio.decode_wav``
  each segment, batch, :class:`mirdl_tf.layers.LogMel` (same numbers as the store), standardise.

and prints a markdown table: examples/s, MB/s (shard bytes of that format per second; feature
bytes for "on the fly"), and each row's speed relative to raw read and to on the fly.

Usage::

    python benchmarks/bench_read.py                       # ~1 minute on 2 cores
    python benchmarks/bench_read.py --records 400 --passes 5 --repeats 5 --markdown run.md
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SAMPLE_RATE = 22050
HOP_LENGTH = 512
N_FFT = 2048
LABELS = ("pluck", "pad", "perc", "brass")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200, help="records per store (default 200)")
    parser.add_argument("--n-mels", type=int, default=96, help="mel bands per record (default 96)")
    parser.add_argument("--frames", type=int, default=128, help="frames per record (default 128)")
    parser.add_argument("--segments-per-track", type=int, default=4, help="records cut from each track")
    parser.add_argument("--shards", type=int, default=4, help="shard files per store (default 4)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=3, help="epochs per timing, after one warm-up epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timings per reader; the best is reported")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where corpus and stores go (default: a temporary directory, deleted)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    for name in ("records", "n_mels", "frames", "segments_per_track", "shards", "batch_size", "passes", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


# --------------------------------------------------------------------------- setup
def build_stores(workdir: Path, args: argparse.Namespace) -> tuple[dict[str, Path], list[tuple[str, int]], np.ndarray]:
    """Write the corpus and one store per format.

    Returns the stores, (wav path, first sample) of each record, and the first record's feature.
    """
    from mirdl.store import format as store_format
    from mirdl.features.representations import compute
    from mirdl.features.spec import FeatureSpec
    from mirdl.features.synth import write_corpus
    from mirdl.store.build import write_store

    samples_per_record = args.frames * HOP_LENGTH
    n_tracks = math.ceil(args.records / args.segments_per_track)
    # One extra hop so that the last record's centred frames are covered by real audio.
    duration = (args.segments_per_track * samples_per_record + N_FFT) / SAMPLE_RATE
    listing = write_corpus(workdir / "corpus", n_tracks=n_tracks, seed=0, duration=duration, formats=("wav",),
                           sample_rates=(SAMPLE_RATE,), stereo_fraction=0.0, overwrite=True)
    spec = FeatureSpec(representation="logmel", sample_rate=SAMPLE_RATE,
                       params={"n_mels": args.n_mels, "n_fft": N_FFT, "hop_length": HOP_LENGTH})

    import soundfile as sf

    records, segments = [], []
    for track in listing.tracks:
        path = listing.root / track.path
        y, _ = sf.read(path, dtype="float32")
        # Each record is computed from its own audio excerpt, exactly what the on-the-fly
        # pipeline computes, so both sides do the same work and give the same numbers.
        for segment in range(args.segments_per_track):
            if len(records) == args.records:
                break
            first = segment * samples_per_record
            excerpt = y[first:first + samples_per_record]
            x = compute(excerpt, spec=spec)[:, :args.frames]
            records.append({
                "key": store_format.record_key(track_id=track.name, variant=0, segment=segment),
                "track_id": track.name, "variant": 0, "segment": segment, "start_frame": segment * args.frames,
                "logmel": x, "label": np.int64(LABELS.index(track.label)),
            })
            segments.append((str(path), first))
    stacked = np.stack([r["logmel"] for r in records])
    feature = {"shape": [args.n_mels, args.frames], "dtype": "float32",
               "stats": {"mean": stacked.mean(axis=(0, 2)).tolist(), "std": stacked.std(axis=(0, 2)).tolist()}}
    task = {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": len(LABELS),
            "vocabulary": list(LABELS)}
    stores = {}
    for fmt in ("tfrecord", "hdf5", "parquet"):
        stores[fmt] = workdir / f"store-{fmt}"
        write_store(stores[fmt], {"train": records}, name="bench", store_format=fmt, features={"logmel": feature},
                    task=task, fingerprint=f"bench-{fmt}", n_shards=args.shards, overwrite=True)
    return stores, segments, records[0]["logmel"]


def without_checksums(store: Path, fmt: str) -> Path:
    """A copy of an HDF5 or Parquet store whose shards carry no format checksums (format version 1's
    layout of checks), for measuring what checking them costs."""
    import json
    import shutil

    import h5py
    import pyarrow.parquet as pq

    from mirdl.store.files import sha256_file

    out = store.with_name(store.name + "-nochecksums")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(store, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["splits"]["train"]["shards"]:
        path = out / entry["path"]
        if fmt == "parquet":
            table = pq.read_table(path)
            pq.write_table(table, path, compression="NONE", write_page_checksum=False, row_group_size=256)
        else:
            copy = path.with_suffix(".tmp")
            with h5py.File(path) as source, h5py.File(copy, "w") as target:
                def clone(name, item):
                    if isinstance(item, h5py.Dataset):
                        target.create_dataset(name, data=item[...], dtype=item.dtype, chunks=item.chunks)
                source.visititems(clone)
            copy.replace(path)
        entry.update(bytes=path.stat().st_size, sha256=sha256_file(path))
    manifest["format_version"] = 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


# --------------------------------------------------------------------------- timed readers
def time_raw(files: list[Path], passes: int, repeats: int) -> float:
    """Best seconds (of ``repeats``) to read every byte of ``files`` ``passes`` times, after a warm-up read."""
    def read_all() -> None:
        for path in files:
            with open(path, "rb") as handle:
                handle.read()

    read_all()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(passes):
            read_all()
        best = min(best, time.perf_counter() - start)
    return best


def time_dataset(make, passes: int, repeats: int) -> tuple[float, int, float]:
    """Time ``make(epochs)``: one warm-up epoch, then ``passes`` epochs through ONE iterator.

    Returns the best seconds of ``repeats`` such timings (the machine is shared: the best is
    the least disturbed), the examples in them, and the median time to the first batch of a
    fresh iterator (pipeline start-up: threads, buffers, file opens).
    """
    warm = make(1)
    n_epoch = sum(int(x.shape[0]) for x, _ in warm)
    first = []
    for _ in range(3):
        start = time.perf_counter()
        next(iter(warm))
        first.append(time.perf_counter() - start)
    best = math.inf
    for _ in range(repeats):
        ds = make(passes)
        start = time.perf_counter()
        n = sum(int(x.shape[0]) for x, _ in ds)
        best = min(best, time.perf_counter() - start)
        assert n == passes * n_epoch, f"{n} examples in {passes} epochs of {n_epoch}"
    return best, n, float(np.median(first))


def time_passes(make, passes: int) -> tuple[float, int, float, int]:
    """One timing of ``make(passes)`` through one fresh iterator: seconds, examples, seconds to
    its first batch (the pipeline's start: threads, file opens, a shuffle buffer's fill) and the
    examples in that batch. ``(examples - first examples) / (seconds - first seconds)`` is the
    rate once the pipeline runs."""
    ds = make(passes)
    start = time.perf_counter()
    first = n_first = None
    n = 0
    for x, _ in ds:
        if first is None:
            first, n_first = time.perf_counter() - start, int(x.shape[0])
        n += int(x.shape[0])
    return time.perf_counter() - start, n, first, n_first


def on_the_fly_dataset(segments: list[tuple[str, int]], args: argparse.Namespace, stats: dict, epochs: int):
    import tensorflow as tf

    from mirdl_tf.layers import LogMel

    samples = args.frames * HOP_LENGTH
    layer = LogMel(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=args.n_mels)
    mean = tf.constant(np.asarray(stats["mean"], np.float32)[:, None])
    std = tf.constant(np.maximum(np.asarray(stats["std"], np.float32), 1e-6)[:, None])
    paths, starts = zip(*segments)

    def decode(path, start):
        audio, _ = tf.audio.decode_wav(tf.io.read_file(path), desired_channels=1)
        return audio[start:start + samples, 0]

    def features(waveforms):
        return (layer(waveforms)[:, :, :args.frames] - mean) / std

    ds = tf.data.Dataset.from_tensor_slices((list(paths), list(starts))).repeat(epochs)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(args.batch_size)
    return ds.map(lambda w: (features(w), tf.zeros([tf.shape(w)[0]])),
                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- main
def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mirdl-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        stores, segments, first_record = build_stores(workdir, args)
        setup_s = time.perf_counter() - started

        import tensorflow as tf

        from mirdl.store.manifest import read_manifest, shard_paths
        from mirdl.store import adapters
        from mirdl_tf import data

        shard_files = {fmt: shard_paths(store, read_manifest(store), "train") for fmt, store in stores.items()}
        shard_bytes = {fmt: sum(p.stat().st_size for p in files) for fmt, files in shard_files.items()}
        n_records = len(segments)
        feature_bytes = n_records * args.n_mels * args.frames * 4
        rows = []  # (name, format or None, seconds, examples, bytes, first-batch seconds or None)
        for fmt, files in shard_files.items():
            seconds = time_raw(files, args.passes, args.repeats)
            rows.append((f"raw read of the {fmt} shards", fmt, seconds, args.passes * n_records,
                         args.passes * shard_bytes[fmt], None))

        backends = [(fmt, "h5py") for fmt in stores]
        try:
            adapters.load_tfio()
            backends.append(("hdf5", "tfio"))
        except Exception as err:  # StoreError where tensorflow-io does not load
            print(f"# hdf5 tfio backend skipped: {str(err).split('.')[0]}", file=sys.stderr)
        unchecked = {fmt: without_checksums(stores[fmt], fmt) for fmt in ("hdf5", "parquet")}
        backends += [(fmt, "nochecksums") for fmt in unchecked]
        backends.append(("hdf5", "sequential"))  # a shard's ranges one after another, as before round 9
        for fmt, backend in backends:
            store = unchecked[fmt] if backend == "nochecksums" else stores[fmt]

            def make(epochs, store=store, backend=backend):
                parallel = adapters.HDF5Adapter.parallel_ranges
                adapters.HDF5Adapter.parallel_ranges = backend != "sequential"  # read when load() builds
                try:
                    return data.load(store, "train", batch_size=args.batch_size, shuffle=False,
                                     repeat=epochs, hdf5_backend="tfio" if backend == "tfio" else "h5py")
                finally:
                    adapters.HDF5Adapter.parallel_ranges = parallel

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the version-1 copies warn that they carry no checksums
                seconds, n, first = time_dataset(make, args.passes, args.repeats)
            name = f"load({fmt})" + {"tfio": ", tfio", "h5py": ", h5py", "nochecksums": "",
                                     "sequential": ", h5py, a shard's ranges one after another (before round 9)"
                                     }[backend] * (fmt == "hdf5")
            if backend == "nochecksums":
                name += ", no format checksums"
            rows.append((name, fmt, seconds, n, args.passes * shard_bytes[fmt], first))

        stats = read_manifest(stores["tfrecord"])["features"]["logmel"]["stats"]
        # Same numbers both ways (to float32 FFT rounding): the comparison is like for like.
        x_fly = next(iter(on_the_fly_dataset(segments[:1], args, stats, 1)))[0].numpy()[0]
        mean, std = (np.asarray(stats[k], np.float32)[:, None] for k in ("mean", "std"))
        max_diff = float(np.abs(x_fly - (first_record - mean) / np.maximum(std, 1e-6)).max())
        # Two orders of magnitude slower: one epoch per timing keeps the run short.
        seconds, n, first = time_dataset(lambda epochs: on_the_fly_dataset(segments, args, stats, epochs), 1,
                                         min(args.repeats, 2))
        rows.append(("on the fly: WAV -> LogMel layer", None, seconds, n, feature_bytes, first))

    table = render(rows, args=args, tf_version=tf.__version__, setup_s=setup_s, max_diff=max_diff,
                   total_s=time.perf_counter() - started, shard_bytes=shard_bytes)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    return 0


def render(rows, *, args, tf_version: str, setup_s: float, max_diff: float, total_s: float,
           shard_bytes: dict[str, int]) -> str:
    raw_rate = {fmt: n / seconds for name, fmt, seconds, n, _, _ in rows if name.startswith("raw read")}
    fly_rate = rows[-1][3] / rows[-1][2]
    lines = [
        f"{args.records} records of {args.n_mels}x{args.frames} float32 log-mel, {args.shards} shards per store, "
        f"batch {args.batch_size}; best of {args.repeats} timings of {args.passes} epochs through one iterator "
        f"after a warm-up epoch (on the fly: 1 epoch); tensorflow {tf_version}, python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"shard bytes: " + ", ".join(f"{fmt} {size / 1e6:.1f} MB" for fmt, size in shard_bytes.items())
        + f"; on the fly vs stored record: max |diff| {max_diff:.1e} (standardised units)"
        + f"; setup {setup_s:.0f} s, total {total_s:.0f} s.",
        "",
        "| reader | examples/s | MB/s | x raw read of the same shards | x on the fly | first batch (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, fmt, seconds, n, nbytes, first in rows:
        rate = n / seconds
        versus_raw = f"{rate / raw_rate[fmt]:.3f}" if fmt else "-"
        first_ms = f"{1e3 * first:.0f}" if first is not None else "-"
        lines.append(f"| {name} | {rate:,.0f} | {nbytes / seconds / 1e6:,.1f} | {versus_raw} | "
                     f"{rate / fly_rate:,.1f} | {first_ms} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run())
