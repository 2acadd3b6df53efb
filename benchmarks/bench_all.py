"""`make bench`: every comparison of the performance targets, side by side in one run, into BENCHMARKS.md.

Builds (once, cached under ``bench-cache/``, git-ignored) a mixed corpus: Ogg Opus (48 kHz),
Ogg Vorbis, FLAC and WAV (44.1/48 kHz), stereo, 30 s to 6 min, encoded by libsndfile from
synthetic music (:func:`mirdl.features.synth.synth_track`, 30 s pieces joined). Then, in one run:

1. the naive librosa loop (``librosa.load(sr=22050)`` + ``melspectrogram`` + ``power_to_db`` +
   ``np.save``), mirdl's own ``audio.load`` + ``representations.compute`` in a bare loop, and
   ``mirdl prepare`` (TFRecord, 1 worker) on the same files;
2. four specs (log-mel, CQT, chroma_stft, MFCC) from one load, naive librosa vs ``mirdl prepare``;
3. features only: librosa vs mirdl on the same decoded audio, 30 s and 6 min tracks;
4. ``mirdl prepare`` with 2 workers vs 1, on the mixed corpus and on equal-length files;
5. peak RSS of ``mirdl prepare`` on short synthetic files, 1x and 10x the corpus;
6. readers: a minimal hand-written tf.data pipeline (and the same with a hand-written shuffle, and with
   crop + shuffle + standardise written by hand), ``load()`` of each format, raw reads;
7. float16 vs float32 store of log-mel and CQT in dB: bytes and the largest difference.

Every figure goes into the markdown written to ``--markdown`` and, with ``--update FILE``, into
the section between the "make bench" markers of FILE (``make bench`` updates BENCHMARKS.md),
with the command, machine, date and load average. Timings are wall seconds of one run each (the machine may be shared: ratios within
one run are what to compare). Usage::

    python benchmarks/bench_all.py --markdown bench-cache/run.md   # 5-12 min on 2 shared cores (+3 min: corpus, once)
    python benchmarks/bench_all.py --files 12 --quick              # a smoke run (~3 min)
    python benchmarks/bench_all.py --readers-only                  # only step 6 (~3 min): its table and targets
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
CACHE = REPO / "bench-cache"
SR = 22050
N_FFT, HOP, N_MELS = 2048, 512, 128
# The job as users run it: the `mirdl prepare` command (`python -m mirdl` is the console script).
CHILD = ["-m", "mirdl", "prepare"]
# (extension, libsndfile format, subtype, file rate): mostly Opus and Vorbis, as real corpora are.
KINDS = [("opus", "OGG", "OPUS", 48000), ("ogg", "OGG", "VORBIS", 44100), ("opus", "OGG", "OPUS", 48000),
         ("flac", "FLAC", "PCM_16", 48000), ("ogg", "OGG", "VORBIS", 48000), ("wav", "WAV", "PCM_16", 44100)]
# Durations in seconds, cycled: most 30-60 s, some long (the long ones decide 2-worker balance).
DURATIONS = [30, 45, 30, 60, 30, 40, 90, 30, 50, 180, 30, 360]


def kind_index(i: int) -> int:
    """File ``i``'s entry of :data:`KINDS`: shifted by one every cycle of :data:`DURATIONS`.

    ``i % len(KINDS)`` alone put the 180 s and 360 s tracks (indices 9 and 11 of every cycle of 12)
    on FLAC and WAV in every cycle: 66 % of the audio was lossless, where the corpora this compares
    with are mostly Opus and Vorbis. With the shift every kind gets long tracks: 64 % of the audio
    is Opus or Vorbis, as 2/3 of the files are. The first cycle's files keep their names.
    """
    return (i + i // len(DURATIONS)) % len(KINDS)


#: The equal-length corpus: as much audio as the mixed one, in 30 s files (GTZAN's clip length),
#: the same mix of kinds. Its own cache folder.
EQUAL_FILES, EQUAL_SECONDS = 160, 30


#: Alternated timings of every reader; the best of them is reported. 12, not 4: a tf.data pipeline
#: here runs some timings on one core only (the minimal one: ~19.5k instead of ~31k ex/s, its CPU
#: time the same, the host half idle, no steal; 6 of 16 timings in one process), and a best of 4
#: could be such a timing (the minimal pipeline's best of 4 was ~20.5k ex/s in 1 process of 10).
READER_ROUNDS = 12
#: ... and more rounds, up to READER_MAX_ROUNDS, while any reader's best still improves by more than
#: READER_SETTLED in the last READER_SETTLE_ROUNDS rounds: the host sometimes gives a process one core
#: for a minute or more (round 12: a readers-only run had every reader slow, Parquet at 0.79x of
#: TFRecord where it is 1.1-1.2x otherwise), and a fixed 12 rounds then ends inside it for some readers.
#: Every reader is timed in every round, so the rule favours none.
READER_MAX_ROUNDS, READER_SETTLE_ROUNDS, READER_SETTLED = 36, 6, 0.01
#: Buffer of the hand-written shuffle beside the minimal pipeline: load()'s default (min(records, 2048)).
HAND_SHUFFLE = 2048
HAND_SHUFFLED = f"hand-written: the minimal pipeline + shuffle({HAND_SHUFFLE}) before the batch"
BUFFERED = f"load(tfrecord), crop 96 of 128, shuffle through a buffer (shuffle_buffer={HAND_SHUFFLE}), standardise"
HAND_WRITTEN = (f"hand-written: shuffle({HAND_SHUFFLE}) -> per record parse_single_example, random_crop 96, "
                "standardise -> batch")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60, help="files in the mixed corpus (default 60)")
    parser.add_argument("--four-files", type=int, default=None,
                        help="files of the corpus used for the four-spec comparison (default: all)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternated rounds of the loops and prepare runs; the best of each is reported (default 3)")
    parser.add_argument("--child", choices=("naive", "naive4", "bare"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smaller reader and memory runs (smoke test)")
    parser.add_argument("--readers-only", action="store_true",
                        help="run only the reader comparisons (no corpus, no prepare runs); with --update, "
                             "nothing is written between the markers (that section is a full run's)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the report here")
    parser.add_argument("--update", type=Path, default=None, metavar="BENCHMARKS.md",
                        help="replace the section between the 'make bench' markers of this file with the report")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- corpus
def build_corpus(root: Path, n_files: int, *, seconds: int | None = None) -> list[dict]:
    """The mixed corpus (cached: a file is encoded once); its rows (path, label, artist, kind, seconds).

    With ``seconds``, every file lasts that long (the equal-length corpus) and the kinds simply cycle.
    """
    from mirdl.features import synth
    from mirdl.features.audio import write_audio

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_files):
        ext, major, subtype, rate = KINDS[kind_index(i) if seconds is None else i % len(KINDS)]
        duration = DURATIONS[i % len(DURATIONS)] if seconds is None else seconds
        label = synth.CLASSES[i % len(synth.CLASSES)]
        path = root / f"f{i:03d}_{subtype.lower()}_{duration}s.{ext}"
        if not path.exists():
            pieces = []
            for k in range(int(np.ceil(duration / 30))):
                rng = np.random.default_rng([i, k] if seconds is None else [1000 + i, k])
                piece = synth.synth_track(label=synth.CLASSES[(i + k) % len(synth.CLASSES)], rng=rng, sr=rate,
                                          duration=30.0, channels=2)
                pieces.append(piece.audio)
            y = np.concatenate(pieces, axis=-1)[..., : duration * rate]
            y = 0.8 * y / max(1e-9, float(np.abs(y).max()))
            tmp = path.with_name(path.name + ".part")
            write_audio(tmp, y.astype(np.float32), sample_rate=rate, format=major, subtype=subtype)
            tmp.replace(path)
        rows.append({"path": path.name, "label": label, "artist": f"a{i % 8}", "kind": subtype.lower(),
                     "seconds": duration, "rate": rate})
    return rows


def write_listing(root: Path, rows: list[dict], name: str) -> Path:
    listing = root / f"{name}.csv"
    listing.write_text("path,label,artist\n" + "".join(f"{r['path']},{r['label']},{r['artist']}\n" for r in rows))
    return listing


def compile_mirdl() -> bool:
    """Byte-compile mirdl's modules where they are imported from (``__pycache__``), as pip does
    when it installs a wheel and as Python does at a first import.

    An editable install (``make venv``) has no bytecode until a module is first imported, and
    with ``PYTHONDONTWRITEBYTECODE`` set, as on the machines `make bench` ran on, Python compiles
    the modules again in every process: ~0.1 s of `mirdl prepare` (the job's modules) and ~0.03 s
    of the bare loop (``mirdl.features``), a cost an installed mirdl does not have. True when
    every module compiled.
    """
    import compileall
    import importlib.util

    roots = set()
    for name in ("mirdl", "mirdl.features", "mirdl.pipelines", "mirdl_tf"):
        roots.update(importlib.util.find_spec(name).submodule_search_locations)
    return all([compileall.compile_dir(root, quiet=1) for root in sorted(roots)])


# --------------------------------------------------------------------------- prepare
def prepare_config(work: Path, listing: Path, *, tag: str, features: list[dict], fmt: str = "tfrecord",
                   patch_seconds: float = 3.0, decoder: str | None = None) -> Path:
    config = {
        "name": "bench", "seed": 0,
        "corpus": {"type": "csv", "csv": str(listing), "group_column": "artist"},
        "features": features,
        "segment": {"mode": "clip", "patch_seconds": patch_seconds, "hop_seconds": patch_seconds, "pad": "silence"},
        "store": {"format": fmt, "out": str(work / f"store-{tag}"), "shard_bytes": "64MB"},
    }
    if decoder is not None:  # audio.decoder: fast | reference (README "Faster Opus decoding")
        config["audio"] = {"decoder": decoder}
    path = work / f"prepare-{tag}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_prepare(config: Path, *, workers: int, cwd: Path, beam_args: list[str] = ()) -> dict:
    """Run the job in a child process: wall seconds and peak RSS (bytes) from ``os.wait4``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    log = cwd / f"{config.stem}-w{workers}.log"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        child = subprocess.Popen([sys.executable, *CHILD, "--config", str(config), "--workers", str(workers),
                                  "--overwrite", *beam_args], cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise SystemExit(f"prepare {config.name} --workers {workers} exited {code}:\n"
                         + log.read_text(errors="replace")[-3000:])
    return {"seconds": seconds, "rss": usage.ru_maxrss * 1024, "cpu": usage.ru_utime + usage.ru_stime}


def shard_digest(store: Path) -> list:
    manifest = json.loads((store / "manifest.json").read_text())
    return [(s["path"], s["sha256"]) for split in manifest["splits"].values() for s in split["shards"]]


LOGMEL = {"name": "logmel", "representation": "logmel", "sample_rate": SR,
          "params": {"n_fft": N_FFT, "hop_length": HOP, "n_mels": N_MELS}}
FOUR = [LOGMEL,
        {"name": "cqt", "representation": "cqt", "sample_rate": SR, "params": {"hop_length": HOP}},
        {"name": "chroma", "representation": "chroma_stft", "sample_rate": SR,
         "params": {"n_fft": N_FFT, "hop_length": HOP}},
        {"name": "mfcc", "representation": "mfcc", "sample_rate": SR,
         "params": {"n_fft": N_FFT, "hop_length": HOP, "n_mels": N_MELS}}]


# --------------------------------------------------------------------------- loops
def run_loop(kind: str, paths: list[Path], *, work: Path) -> dict:
    """Run a loop as a user runs their script: a fresh ``python`` process, imports included.

    Wall seconds from the start of the process to its exit, CPU seconds (user + system, from
    ``os.wait4``), and the loop's own timings measured inside it (``inner``: imports excluded).
    """
    listing = work / f"paths-{kind}.txt"
    listing.write_text("\n".join(str(p) for p in paths) + "\n", encoding="utf-8")
    log, result = work / f"loop-{kind}.log", work / f"loop-{kind}.json"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", kind, "--paths", str(listing),
                                  "--out", str(work / f"out-{kind}"), "--markdown", str(result)],
                                 stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {kind} loop exited {os.waitstatus_to_exitcode(status)}:\n"
                         + log.read_text(errors="replace")[-3000:])
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "inner": json.loads(result.read_text())}


def child_main(args) -> int:
    """``--child``: run one loop over the listed paths; its in-loop timings as JSON into ``--markdown``."""
    paths = [Path(line) for line in args.paths.read_text(encoding="utf-8").splitlines() if line]
    if args.child == "bare":
        result = bare_loop(paths)
    else:
        result = naive_loop(paths, args.out, four=args.child == "naive4")
    args.markdown.write_text(json.dumps(result), encoding="utf-8")
    return 0


def naive_loop(paths: list[Path], out: Path, *, four: bool = False) -> dict:
    """What a researcher writes: librosa.load + features + np.save, file after file."""
    import librosa

    out.mkdir(parents=True, exist_ok=True)
    load_s = feat_s = 0.0
    start = time.perf_counter()
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        y, _ = librosa.load(path, sr=SR)
        t1 = time.perf_counter()
        S = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
        np.save(out / f"{i}-logmel.npy", librosa.power_to_db(S, ref=1.0, top_db=None))
        if four:
            np.save(out / f"{i}-cqt.npy", librosa.amplitude_to_db(np.abs(librosa.cqt(y, sr=SR, hop_length=HOP)),
                                                                  ref=1.0, top_db=None))
            np.save(out / f"{i}-chroma.npy", librosa.feature.chroma_stft(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP))
            np.save(out / f"{i}-mfcc.npy", librosa.feature.mfcc(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP,
                                                                 n_mels=N_MELS))
        feat_s += time.perf_counter() - t1
        load_s += t1 - t0
    return {"seconds": time.perf_counter() - start, "load": load_s, "features": feat_s}


def bare_loop(paths: list[Path]) -> dict:
    """mirdl's own functions, no framework: audio.load + representations.compute."""
    from mirdl.features import audio, representations
    from mirdl.features.spec import FeatureSpec

    spec = FeatureSpec(representation="logmel", sample_rate=SR, params=LOGMEL["params"])
    load_s = feat_s = 0.0
    start = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        y, _ = audio.load(path, sample_rate=SR)
        t1 = time.perf_counter()
        representations.compute(y, spec=spec)
        feat_s += time.perf_counter() - t1
        load_s += t1 - t0
    return {"seconds": time.perf_counter() - start, "load": load_s, "features": feat_s}


def features_only(rows: list[dict], root: Path) -> list[tuple]:
    """librosa vs mirdl on the same decoded audio, alternated (best of 7 on 30 s, where a call takes
    ~10 ms and one disturbed timing decides a best of 3; best of 3 on 6 min): every STFT-based
    representation."""
    import librosa

    from mirdl.features import audio, representations as rep

    by_length = {}
    for row in rows:
        by_length.setdefault(row["seconds"], row)
    out = []
    reference = {
        "stft": (lambda y: librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)), ref=1.0,
                                                   amin=1e-5, top_db=None),
                 lambda y: rep.stft(y, sr=SR, n_fft=N_FFT, hop_length=HOP)),
        "mel": (lambda y: librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS),
                lambda y: rep.mel(y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)),
        "logmel": (lambda y: librosa.power_to_db(librosa.feature.melspectrogram(
                       y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS), ref=1.0, top_db=None),
                   lambda y: rep.logmel(y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)),
        "chroma_stft": (lambda y: librosa.feature.chroma_stft(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, tuning=0.0),
                        lambda y: rep.chroma_stft(y, sr=SR, n_fft=N_FFT, hop_length=HOP)),
        "mfcc": (lambda y: librosa.feature.mfcc(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS),
                 lambda y: rep.mfcc(y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)),
    }
    for seconds in (30, 360):
        if seconds not in by_length:
            continue
        y, _ = audio.load(root / by_length[seconds]["path"], sample_rate=SR)
        for name, (theirs, ours) in reference.items():
            times = {"librosa": [], "mirdl": []}
            for _ in range(7 if seconds <= 60 else 3):
                for who, fn in (("librosa", theirs), ("mirdl", ours)):
                    t0 = time.perf_counter()
                    result = fn(y)
                    times[who].append(time.perf_counter() - t0)
                    if who == "librosa":
                        ref = result
                    else:
                        diff = float(np.abs(result - ref).max())
            scale = "dB" if name in ("stft", "logmel") else "abs"
            out.append((name, seconds, min(times["librosa"]), min(times["mirdl"]), diff, scale))
    return out


# --------------------------------------------------------------------------- readers
def readers(work: Path, quick: bool) -> tuple[list[tuple], int, dict, int]:
    import bench_read as br

    args = br.parse_args(["--records", "800" if quick else "3200", "--shards", "4"])
    stores, _, _ = br.build_stores(work / "read", args)
    import tensorflow as tf

    from mirdl.store.manifest import read_manifest, shard_paths
    from mirdl_tf import data

    files = {fmt: shard_paths(store, read_manifest(store), "train") for fmt, store in stores.items()}
    description = {"logmel": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}

    def minimal_parse(serialized):
        example = tf.io.parse_example(serialized, description)
        x = tf.reshape(tf.io.decode_raw(example["logmel"], tf.float32), (-1, args.n_mels, args.frames))
        return x, example["label"]

    tfrecords = [str(p) for p in files["tfrecord"]]

    def minimal(epochs, shuffle: int | None = None):
        """The minimal pipeline; ``shuffle``: with the buffer a user adds by hand before the batch."""
        ds = tf.data.TFRecordDataset(tfrecords)
        if shuffle:
            ds = ds.shuffle(shuffle, seed=0)
        ds = ds.repeat(epochs).batch(32)
        return ds.map(minimal_parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    stats = read_manifest(stores["tfrecord"])["features"]["logmel"]["stats"]
    mean, std = (tf.constant(np.asarray(stats[k], np.float32)[:, None]) for k in ("mean", "std"))

    def hand_written(epochs):  # crop + shuffle + standardise as a user writes them: a map per record, then batch
        def example(serialized):
            record = tf.io.parse_single_example(serialized, description)
            x = tf.reshape(tf.io.decode_raw(record["logmel"], tf.float32), (args.n_mels, args.frames))
            return (tf.image.random_crop(x, (args.n_mels, 96)) - mean) / std, record["label"]

        ds = tf.data.TFRecordDataset(tfrecords).shuffle(HAND_SHUFFLE, seed=0)
        ds = ds.repeat(epochs).map(example, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(32).prefetch(tf.data.AUTOTUNE)

    makers = [("minimal tf.data: TFRecordDataset -> batch -> parse_example -> decode_raw", "tfrecord", minimal),
              (HAND_SHUFFLED, "tfrecord", lambda e: minimal(e, shuffle=HAND_SHUFFLE)),
              (HAND_WRITTEN, "tfrecord", hand_written)]
    for fmt, store in stores.items():
        makers.append((f"load({fmt}), shuffle=False, no crop, standardise", fmt,
                       lambda e, store=store: data.load(store, "train", batch_size=32, shuffle=False, repeat=e)))
        makers.append((f"load({fmt}), crop 96 of 128, shuffle, standardise", fmt,
                       lambda e, store=store: data.load(store, "train", batch_size=32, patch_frames=96, seed=0,
                                                        repeat=e)))
        if fmt == "tfrecord":  # the shuffle buffer, which TFRecord stores used by default before round 8
            makers.append((BUFFERED, fmt, lambda e, store=store: data.load(
                store, "train", batch_size=32, patch_frames=96, seed=0, repeat=e, shuffle_buffer=HAND_SHUFFLE)))
    rows = []
    for fmt, paths in files.items():
        seconds = br.time_raw(paths, 3, 3)
        rows.append((f"raw read of the {fmt} shards", fmt, 3 * (800 if quick else 3200), seconds))
    best = {name: 0.0 for name, _, _ in makers}
    running = {name: 0.0 for name, _, _ in makers}
    firsts = {name: [] for name, _, _ in makers}
    n_records = 800 if quick else 3200
    # Alternate the readers: each is timed in the same conditions as the others; best of the rounds
    # (READER_ROUNDS or more, until settled()), because a shared machine's load bursts hit single
    # timings of a second or so, and sometimes a minute of them.
    # Each timing: a warm-up epoch (graphs traced, files cached), then 2 epochs through one fresh
    # iterator, whose first batch is timed too: the whole run's rate, and the rate after it.
    history = []  # each round's bests
    while True:
        for name, fmt, make in makers:
            n_epoch = sum(int(x.shape[0]) for x, _ in make(1))
            seconds, n, first, n_first = br.time_passes(make, 2)
            assert n == 2 * n_epoch, f"{name}: {n} examples in 2 epochs of {n_epoch}"
            best[name] = max(best[name], n / seconds)
            running[name] = max(running[name], (n - n_first) / (seconds - first))
            firsts[name].append(first)
        history.append(dict(best))
        if settled(history):
            break
    rows += [(name, fmt, best[name], None) for name, fmt, _ in makers]
    after_first = {name: (running[name], float(np.median(firsts[name]))) for name, _, _ in makers}
    return rows, n_records, after_first, len(history)


def settled(history: list[dict]) -> bool:
    """Whether the alternated reader rounds can stop: ``READER_ROUNDS`` done and no reader's best
    improved by more than ``READER_SETTLED`` over the last ``READER_SETTLE_ROUNDS`` rounds, or
    ``READER_MAX_ROUNDS`` done.

    >>> settled([{"a": 1.0}] * 11)
    False
    >>> settled([{"a": 1.0}] * 5 + [{"a": 2.0}] * 7)
    True
    >>> settled([{"a": 1.0}] * 11 + [{"a": 2.0}])
    False
    >>> settled([{"a": 1.0 + i} for i in range(READER_MAX_ROUNDS)])
    True
    """
    if len(history) >= READER_MAX_ROUNDS:
        return True
    if len(history) < max(READER_ROUNDS, READER_SETTLE_ROUNDS + 1):
        return False
    before, now = history[-READER_SETTLE_ROUNDS - 1], history[-1]
    return all(now[name] <= before[name] * (1 + READER_SETTLED) for name in now)


# --------------------------------------------------------------------------- float16
def float16_store(work: Path, listing: Path) -> list[tuple]:
    from mirdl.store.manifest import read_manifest

    out = []
    for name, representation, params in (("logmel", "logmel", LOGMEL["params"]),
                                         ("cqt_db", "cqt", {"hop_length": HOP, "log": True})):
        stores = {}
        for dtype in ("float32", "float16"):
            feature = {"name": name, "representation": representation, "sample_rate": SR, "params": params,
                       "dtype": dtype}
            config = prepare_config(work, listing, tag=f"{name}-{dtype}", features=[feature], fmt="hdf5")
            run_prepare(config, workers=1, cwd=work)
            stores[dtype] = work / f"store-{name}-{dtype}"
        size = {k: sum(s["bytes"] for s in read_manifest(v)["splits"].values()) for k, v in stores.items()}
        arrays = {}
        import h5py

        for dtype, store in stores.items():
            manifest = read_manifest(store)
            values = {}
            for split in manifest["splits"].values():
                for shard in split["shards"]:
                    with h5py.File(store / shard["path"]) as h5:
                        keys = h5["key"].asstr()[...]
                        for key, x in zip(keys, h5[f"features/{name}"][...]):
                            values[key] = x.astype(np.float32)
            arrays[dtype] = values
        diff = max(float(np.abs(arrays["float16"][k] - arrays["float32"][k]).max()) for k in arrays["float32"])
        out.append((name, size["float32"], size["float16"], diff))
    return out


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    started = time.perf_counter()
    load_before = os.getloadavg()
    CACHE.mkdir(exist_ok=True)
    if args.readers_only:
        return readers_only(args, argv, started=started, load_before=load_before)
    corpus = CACHE / "corpus"
    t0 = time.perf_counter()
    rows = build_corpus(corpus, args.files)
    corpus_s = time.perf_counter() - t0
    print(f"corpus: {len(rows)} files, {sum(r['seconds'] for r in rows) / 60:.1f} min ({corpus_s:.0f} s)",
          file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="mirdl-bench-", dir=CACHE))
    report = {}
    try:
        paths = [corpus / r["path"] for r in rows]
        listing = write_listing(corpus, rows, "all")
        step = lambda name: print(f"[{time.perf_counter() - started:6.0f} s] {name}", file=sys.stderr)  # noqa: E731

        step("read every file with soundfile")
        import soundfile as sf

        t = time.perf_counter()
        for path in paths:
            sf.read(path, dtype="float32")
        report["sf_read"] = time.perf_counter() - t
        four_rows = rows[: args.four_files]
        four_listing = write_listing(corpus, four_rows, "four")
        equal_root = CACHE / f"equal-{EQUAL_SECONDS}s"
        equal = build_corpus(equal_root, EQUAL_FILES, seconds=EQUAL_SECONDS)
        equal_listing = write_listing(equal_root, equal, "equal")
        report["equal_n"] = len(equal)
        report["four_minutes"] = sum(r["seconds"] for r in four_rows) / 60
        report["rounds"] = args.rounds

        def keep(name, result):  # the best (least wall time) of the alternated rounds; every round's too
            report.setdefault("per_round", {}).setdefault(name, []).append(result["seconds"])
            if name not in report or result["seconds"] < report[name]["seconds"]:
                report[name] = result

        # Every loop and every job runs as its own process, as a user runs a script or the command: wall
        # time from start to exit, imports included. The loops also time themselves (``inner``: imports
        # excluded). Alternated, best of --rounds. mirdl's modules are byte-compiled first, as an
        # installed package's are.
        report["compiled"] = compile_mirdl()
        for i in range(args.rounds):
            step(f"round {i + 1}/{args.rounds}: naive loop, bare loop, prepare 1 worker (reference, fast decoder), "
                 "2 workers, equal-length files 1 and 2 workers")
            keep("naive", run_loop("naive", paths, work=work))
            keep("bare", run_loop("bare", paths, work=work))
            keep("prepare1", run_prepare(prepare_config(work, listing, tag="w1", features=[LOGMEL]), workers=1,
                                         cwd=work))
            keep("prepare1_fast", run_prepare(prepare_config(work, listing, tag="w1fast", features=[LOGMEL],
                                                             decoder="fast"), workers=1, cwd=work))
            keep("prepare2", run_prepare(prepare_config(work, listing, tag="w2", features=[LOGMEL]), workers=2,
                                         cwd=work))
            keep("equal1", run_prepare(prepare_config(work, equal_listing, tag="e1", features=[LOGMEL]), workers=1,
                                       cwd=work))
            keep("equal2", run_prepare(prepare_config(work, equal_listing, tag="e2", features=[LOGMEL]), workers=2,
                                       cwd=work))
        report["identical_w"] = shard_digest(work / "store-w1") == shard_digest(work / "store-w2")

        step("four specs: naive loop, prepare (one round: the naive loop computes librosa's CQT)")
        report["four_naive"] = run_loop("naive4", [corpus / r["path"] for r in four_rows], work=work)
        report["four_prepare"] = run_prepare(prepare_config(work, four_listing, tag="four", features=FOUR),
                                             workers=1, cwd=work)

        step("features only")
        report["features"] = features_only(rows, corpus)

        step("peak RSS, 1x and 10x")
        from mirdl.features.synth import write_corpus

        small = 20 if args.quick else 40
        synth_root = CACHE / f"short-{small * 10}"
        if not (synth_root / "labels.csv").exists():
            write_corpus(synth_root, n_tracks=small * 10, seed=0, duration=4.0, formats=("wav",),
                         sample_rates=(SR,), stereo_fraction=0.0, overwrite=True)
        lines = (synth_root / "labels.csv").read_text().splitlines()
        rss = {}
        for factor in (1, 10):
            part = synth_root / f"labels-{factor}x.csv"
            part.write_text("\n".join(lines[: small * factor + 1]) + "\n")
            rss[factor] = run_prepare(prepare_config(work, part, tag=f"rss{factor}", features=[LOGMEL], fmt="hdf5",
                                                     patch_seconds=1.0), workers=1, cwd=work)
        report["rss"] = rss
        report["rss_tracks"] = small

        step("float16 stores")
        report["float16"] = float16_store(work, write_listing(corpus, rows[:6], "f16"))

        step("readers")
        (report["readers"], report["reader_records"], report["reader_after_first"],
         report["reader_rounds"]) = readers(work, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["total"] = time.perf_counter() - started
    report["load"] = (load_before, os.getloadavg())
    text = render(report, rows, args, argv)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.update:
        update_section(args.update, text)
    return 0


def readers_only(args, argv, *, started: float, load_before) -> int:
    """Step 6 alone: the reader table and the reader targets, to ``--markdown`` and stdout."""
    work = Path(tempfile.mkdtemp(prefix="mirdl-bench-", dir=CACHE))
    try:
        rows, n_records, after_first, rounds = readers(work, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = {"readers": rows, "reader_records": n_records, "reader_after_first": after_first, "reader_rounds": rounds,
         "total": time.perf_counter() - started,
         "load": (load_before, os.getloadavg())}
    text = "\n".join([f"Command: `python benchmarks/bench_all.py {' '.join(argv or sys.argv[1:])}`, "
                      f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {_cpu_name()}, "
                      f"{os.cpu_count()} CPUs; load average {r['load'][0][0]:.1f} at the start, "
                      f"{r['load'][1][0]:.1f} at the end; total {r['total'] / 60:.1f} min.", "",
                      "| measure | baseline | mirdl | ratio | target | |", "| --- | ---: | ---: | ---: | --- | --- |",
                      *reader_target_lines(r), "", *reader_table_lines(r)])
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _reader_rates(r: dict) -> tuple[dict, dict, float]:
    readers = {name: (fmt, rate) for name, fmt, rate, _ in r["readers"] if not name.startswith("raw")}
    raw = {fmt: n / s for name, fmt, n, s in r["readers"] if name.startswith("raw")}
    minimal = next(rate for name, (fmt, rate) in readers.items() if name.startswith("minimal"))
    return readers, raw, minimal


def reader_target_lines(r: dict) -> list[str]:
    """The target-table rows of the readers."""
    readers, raw, minimal = _reader_rates(r)
    lines = []
    tf_crop = readers["load(tfrecord), crop 96 of 128, shuffle, standardise"][1]
    lines.append(f"| TFRecord `load()` crop + shuffle + standardise vs minimal tf.data | {minimal:,.0f} ex/s | "
                 f"{tf_crop:,.0f} ex/s | {tf_crop / minimal:.3f}x | >= 0.9x | {_mark(tf_crop / minimal >= 0.9)} |")
    after_first = r["reader_after_first"]
    (min_after, min_first), (crop_after, crop_first) = (
        next(v for name, v in after_first.items() if name.startswith("minimal")),
        after_first["load(tfrecord), crop 96 of 128, shuffle, standardise"])
    lines.append(f"| the same once running: after the first batch (first batch {1e3 * min_first:.0f} ms vs "
                 f"{1e3 * crop_first:.0f} ms) | {min_after:,.0f} ex/s | "
                 f"{crop_after:,.0f} ex/s | {crop_after / min_after:.3f}x | (for reference) | |")
    buffered = readers[BUFFERED][1]
    buffered_first = after_first[BUFFERED][1]
    lines.append(f"| the same through a shuffle buffer of {HAND_SHUFFLE} records (`shuffle_buffer`; TFRecord's default "
                 f"before round 8; first batch {1e3 * buffered_first:.0f} ms: the buffer's fill) vs minimal | "
                 f"{minimal:,.0f} ex/s | {buffered:,.0f} ex/s | {buffered / minimal:.3f}x | (for reference) | |")
    hand = readers[HAND_SHUFFLED][1]
    lines.append(f"| the same vs the minimal pipeline + shuffle({HAND_SHUFFLE}) by hand (no crop, no "
                 f"standardise) | {hand:,.0f} ex/s | {tf_crop:,.0f} ex/s | {tf_crop / hand:.3f}x | (for reference) | |")
    by_hand = readers[HAND_WRITTEN][1]
    lines.append(f"| the same vs crop + shuffle + standardise written by hand (a map per record, then batch) | "
                 f"{by_hand:,.0f} ex/s | {tf_crop:,.0f} ex/s | {tf_crop / by_hand:.3f}x | (for reference) | |")
    tf_plain = readers["load(tfrecord), shuffle=False, no crop, standardise"][1]
    for fmt in ("hdf5", "parquet"):
        rate = readers[f"load({fmt}), shuffle=False, no crop, standardise"][1]
        lines.append(f"| {fmt} `load()` vs raw read of its shards | {raw[fmt]:,.0f} ex/s | {rate:,.0f} ex/s | "
                     f"{rate / raw[fmt]:.3f}x | >= 0.15x | {_mark(rate / raw[fmt] >= 0.15)} |")
        lines.append(f"| {fmt} `load()` vs TFRecord `load()` | {tf_plain:,.0f} ex/s | {rate:,.0f} ex/s | "
                     f"{rate / tf_plain:.3f}x | >= 0.8x | {_mark(rate / tf_plain >= 0.8)} |")
    return lines


def reader_table_lines(r: dict) -> list[str]:
    """The readers' own table: every reader's examples/s and its ratio to the minimal pipeline."""
    readers, raw, minimal = _reader_rates(r)
    after_first = r["reader_after_first"]
    minimal_after = next(rate for name, (rate, _) in after_first.items() if name.startswith("minimal"))
    lines = [f"Readers ({r['reader_records']} records of 96 x 128 float32, 4 shards, batch 32, best of {r['reader_rounds']} "
             f"alternated timings (at least {READER_ROUNDS}, until no reader's best improved by more than "
             f"{READER_SETTLED:.0%} in {READER_SETTLE_ROUNDS} rounds, at most {READER_MAX_ROUNDS}) of 2 epochs through one fresh iterator; \"after the first batch\": the same "
             "timings without the time to the first batch and its examples, i.e. once a shuffle buffer is full; "
             "first batch: median of the timings):", "",
             "| reader | examples/s | x minimal | after the first batch | x minimal | first batch |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, (fmt, rate) in readers.items():
        running, first = after_first[name]
        lines.append(f"| {name} | {rate:,.0f} | {rate / minimal:.2f} | {running:,.0f} | {running / minimal_after:.2f} "
                     f"| {1e3 * first:.0f} ms |")
    for fmt, rate in raw.items():
        lines.append(f"| raw read of the {fmt} shards | {rate:,.0f} | {rate / minimal:.1f} | | | |")
    return lines


START, END = "<!-- make bench: start -->", "<!-- make bench: end -->"


def update_section(path: Path, text: str) -> None:
    """Put ``text`` between the markers of ``path`` (appended with them if absent), atomically."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{START}\n{text}\n{END}"
    if START in old and END in old:
        new = old[: old.index(START)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)


def per_round_lines(per_round: dict[str, list[float]]) -> list[str]:
    """Each round's ratio of the rows measured in rounds (the table gives the ratio of the bests):
    the run-to-run spread of a row, from pairs measured next to each other."""
    pairs = [("prepare 1 worker vs naive loop", "naive", "prepare1"),  # (row, baseline, measured)
             ("framework overhead: prepare 1 worker vs bare loop", "bare", "prepare1"),
             ("2 workers vs 1, mixed lengths", "prepare1", "prepare2"),
             ("2 workers vs 1, equal lengths", "equal1", "equal2")]
    lines = []
    for label, baseline, measured in pairs:
        if baseline in per_round and measured in per_round:
            ratios = [b / m for b, m in zip(per_round[baseline], per_round[measured])]
            lines.append(f"- {label}, round by round: " + ", ".join(f"{x:.3f}x" for x in ratios)
                         + f" (median {float(np.median(ratios)):.3f}x).")
    return lines


def render(r: dict, rows: list[dict], args, argv) -> str:
    minutes = sum(row["seconds"] for row in rows) / 60
    kinds = {}
    for row in rows:
        kind = Path(row["path"]).suffix.lstrip(".") if row["kind"] == "pcm_16" else row["kind"]
        count, seconds = kinds.get(kind, (0, 0))
        kinds[kind] = (count + 1, seconds + row["seconds"])
    naive, bare, p1, p2 = r["naive"], r["bare"], r["prepare1"], r["prepare2"]
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mark = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines = [
        f"Command: `make bench` (`python benchmarks/bench_all.py {' '.join(argv or sys.argv[1:])}`), "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}; load average {r['load'][0][0]:.1f} at the start, "
        f"{r['load'][1][0]:.1f} at the end (the machine is shared with other jobs: one run, wall times, ratios "
        f"within the run are what to compare); total {r['total'] / 60:.1f} min.",
        "",
        f"Corpus: {len(rows)} files, {minutes:.1f} min of stereo audio ("
        + ", ".join(f"{n} {k} ({sec / 60:.0f} min)" for k, (n, sec) in kinds.items()) + "), 30 s to 6 min, 44.1/48 kHz; log-mel at 22.05 kHz, "
        f"n_fft {N_FFT}, hop {HOP}, {N_MELS} mels; prepare writes 3 s TFRecord patches.",
        "",
        "Every loop and every `mirdl prepare` runs as its own process, as a user runs a script or the command: "
        "wall seconds from start to exit, Python's start-up and imports included (the loops' imports: librosa or "
        "mirdl.features; the job's: Beam). In brackets, the ratio against the loop's own timing inside its process "
        f"(imports excluded), which is how `make bench` measured the loops before. Loops and jobs alternated, best of "
        f"{r['rounds']} rounds; the four-spec pair one round. mirdl's modules were byte-compiled before the runs, as an "
        "installed package's are" + ("" if r.get("compiled", True) else " (**some failed to compile**)") + ".",
        "",
        "| measure | baseline | mirdl | ratio (vs in-loop time) | target | |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    def vs(baseline: dict, job: dict) -> str:  # the ratio with the loop timed inside its process (imports excluded)
        return f"{baseline['inner']['seconds'] / job['seconds']:.2f}x"

    speed = naive["seconds"] / p1["seconds"]
    floor = "met" if speed >= 1.3 else ("1.15x floor met, 1.3x **not met**" if speed >= 1.15 else "**not met**")
    lines.append(f"| `mirdl prepare`, log-mel, 1 worker vs naive librosa loop | {naive['seconds']:.1f} s | "
                 f"{p1['seconds']:.1f} s | {speed:.3f}x faster ({vs(naive, p1)}) | >= 1.3x (>= 1.15x) | {floor} |")
    four = r["four_naive"]["seconds"] / r["four_prepare"]["seconds"]
    lines.append(f"| four specs at once ({r['four_minutes']:.0f} min of audio) vs naive loop | "
                 f"{r['four_naive']['seconds']:.1f} s | {r['four_prepare']['seconds']:.1f} s | {four:.3f}x faster "
                 f"({vs(r['four_naive'], r['four_prepare'])}) | >= 1.7x | {mark(four >= 1.7)} |")
    if "prepare1_fast" in r:
        fast = naive["seconds"] / r["prepare1_fast"]["seconds"]
        lines.append(f"| the same with `audio.decoder: fast` (FFmpeg's Opus decoder; log-mel within "
                     f"`OPUS_FAST_BOUND_DB` of libopus's) | {naive['seconds']:.1f} s | "
                     f"{r['prepare1_fast']['seconds']:.1f} s | {fast:.2f}x faster ({vs(naive, r['prepare1_fast'])}) | "
                     f">= 1.3x (>= 1.15x) | {mark(fast >= 1.3)} (opt-in) |")
    overhead = bare["seconds"] / p1["seconds"]
    lines.append(f"| framework overhead: prepare (1 worker) vs bare loop of mirdl's functions | {bare['seconds']:.1f} s "
                 f"| {p1['seconds']:.1f} s | {overhead:.3f}x ({vs(bare, p1)}) | >= 0.9x | {mark(overhead >= 0.9)} |")
    w = p1["seconds"] / p2["seconds"]
    lines.append(f"| 2 workers vs 1, mixed lengths | {p1['seconds']:.1f} s | {p2['seconds']:.1f} s | {w:.3f}x | >= 1.7x "
                 f"| {mark(w >= 1.7)} (shards {'byte-identical' if r['identical_w'] else 'DIFFER'}) |")
    we = r["equal1"]["seconds"] / r["equal2"]["seconds"]
    lines.append(f"| 2 workers vs 1, equal lengths: {r['equal_n']} files of {EQUAL_SECONDS} s "
                 f"({r['equal_n'] * EQUAL_SECONDS / 60:.0f} min) | {r['equal1']['seconds']:.1f} s | "
                 f"{r['equal2']['seconds']:.1f} s | {we:.3f}x | >= 1.7x | {mark(we >= 1.7)} |")
    rss = r["rss"][10]["rss"] / r["rss"][1]["rss"]
    lines.append(f"| peak RSS, {r['rss_tracks'] * 10} vs {r['rss_tracks']} short files | "
                 f"{r['rss'][1]['rss'] / 2**20:.0f} MB | {r['rss'][10]['rss'] / 2**20:.0f} MB | {rss:.2f}x | <= 1.2x | "
                 f"{mark(rss <= 1.2)} |")
    lines += reader_target_lines(r)
    for name, b32, b16, diff in r["float16"]:
        lines.append(f"| float16 vs float32 store, {name} | {b32 / 1e6:.2f} MB | {b16 / 1e6:.2f} MB | {b16 / b32:.2f}x "
                     f"bytes, max error {diff:.3f} dB | 0.5x, <= 0.05 dB | {mark(b16 / b32 <= 0.55 and diff <= 0.05)} |")
    worst = {}
    for name, seconds, theirs, ours, diff, scale in r["features"]:
        worst[(name, seconds)] = theirs / ours
    ok = all(v >= 1.0 for v in worst.values())
    lines.append(f"| features only, STFT-based, vs librosa on the same audio (slowest case) | | | "
                 f"{min(worst.values()):.3f}x | >= 1.0x | {mark(ok)} |")
    lines += [
        "",
        "Details:",
        "",
        f"- Reading every file with `soundfile.read`, nothing else: {r['sf_read']:.1f} s.",
        f"- Naive loop: {naive['seconds']:.1f} s as a process, {naive['inner']['seconds']:.1f} s inside it (load + "
        f"resample {naive['inner']['load']:.1f} s, log-mel + save {naive['inner']['features']:.1f} s). Bare mirdl loop: "
        f"{bare['seconds']:.1f} s as a process, {bare['inner']['seconds']:.1f} s inside it (decode + resample "
        f"{bare['inner']['load']:.1f} s, log-mel {bare['inner']['features']:.1f} s). Four-spec naive loop: "
        f"{r['four_naive']['seconds']:.1f} s as a process, {r['four_naive']['inner']['seconds']:.1f} s inside it.",
        f"- CPU seconds (user + system of the process, from `wait4`): naive {naive['cpu']:.1f}, bare {bare['cpu']:.1f}, "
        f"prepare 1 worker {p1['cpu']:.1f}, 2 workers {p2['cpu']:.1f}; four specs: naive {r['four_naive']['cpu']:.1f}, "
        f"prepare {r['four_prepare']['cpu']:.1f}.",
        f"- Prepare peak RSS: 1 worker {p1['rss'] / 2**20:.0f} MB.",
        *per_round_lines(r.get("per_round", {})),
        "",
        "Features only (alternated, best of 7 on 30 s and of 3 on 6 min, same decoded audio; difference = "
        "max |mirdl - librosa|, dB or linear):",
        "",
        "| representation | track | librosa ms | mirdl ms | x librosa | max difference |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, seconds, theirs, ours, diff, scale in r["features"]:
        lines.append(f"| {name} | {seconds} s | {theirs * 1e3:.0f} | {ours * 1e3:.0f} | {theirs / ours:.2f} | "
                     f"{diff:.1e} {'dB' if scale == 'dB' else ''} |")
    lines += ["", *reader_table_lines(r)]
    return "\n".join(lines)


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sys.exit(main())
