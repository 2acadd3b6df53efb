"""Four specs at once (log-mel, CQT, chroma_stft, MFCC), side by side: librosa vs mirdl.

Two comparisons on the first ``--files`` files of ``make bench``'s corpus (``bench-cache/corpus``,
built by ``benchmarks/bench_all.py``; 12 files = 16 min of audio), each alternated and the best of
``--rounds`` kept, in one process (the machine may be shared: ratios within one run are what to
compare):

1. per-track features on the same decoded audio (``mirdl.features.audio.load``): librosa's four
   calls as ``make bench``'s naive loop makes them vs
   :func:`mirdl.features.representations.compute_many` of the four specs the job is given
   (and, for the record, ``compute`` spec by spec), with the largest difference to librosa;
2. the job: the naive loop (``librosa.load`` + the four features + ``np.save``, as
   ``bench_all.naive_loop(four=True)``) vs ``mirdl prepare --workers 1`` with the four specs in a
   child process (as ``bench_all.run_prepare``: TFRecord, 3 s patches).

The librosa side is warmed up first (imports, numba caches), as it is in ``make bench``, where
earlier steps have paid them; the job pays its own imports in its child process. Usage::

    python benchmarks/bench_four.py                   # ~2 min on 2 shared cores
    python benchmarks/bench_four.py --only features   # step 1 only
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_all as ba  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12, help="first files of the bench corpus (default 12)")
    parser.add_argument("--rounds", type=int, default=2, help="alternated timings of each side (best kept)")
    parser.add_argument("--only", choices=("features", "job"), default=None, help="run one comparison only")
    return parser.parse_args(argv)


def librosa_four(y: np.ndarray) -> dict[str, np.ndarray]:
    """The naive loop's four features of one track (``bench_all.naive_loop(four=True)``, without saving)."""
    import librosa

    sr, n_fft, hop, n_mels = ba.SR, ba.N_FFT, ba.HOP, ba.N_MELS
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    return {
        "logmel": librosa.power_to_db(mel, ref=1.0, top_db=None),
        "cqt": librosa.amplitude_to_db(np.abs(librosa.cqt(y, sr=sr, hop_length=hop)), ref=1.0, top_db=None),
        "chroma": librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop),
        "mfcc": librosa.feature.mfcc(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels),
    }


def four_specs():
    from mirdl.features.spec import FeatureSpec

    return [FeatureSpec.from_dict(spec) for spec in ba.FOUR]


def features(tracks: list[np.ndarray], rounds: int) -> dict:
    import librosa

    from mirdl.features import representations as rep

    specs = four_specs()
    sides = {
        "librosa, four calls": librosa_four,
        "mirdl compute_many (the job's step)": lambda y: rep.compute_many(y, specs=specs),
        "mirdl compute, spec by spec": lambda y: {s.name: rep.compute(y, spec=s) for s in specs},
    }
    for fn in sides.values():  # warm-up: imports, filter banks, numba caches
        fn(tracks[0][: 5 * ba.SR])
    best = {name: float("inf") for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            for y in tracks:
                fn(y)
            best[name] = min(best[name], time.perf_counter() - start)
    diff = {}
    for y in tracks:
        ref, ours = librosa_four(y), rep.compute_many(y, specs=specs)
        # The naive loop's chroma_stft estimates the tuning of each track; a spec fixes it (0.0).
        ref["chroma"] = librosa.feature.chroma_stft(y=y, sr=ba.SR, n_fft=ba.N_FFT, hop_length=ba.HOP, tuning=0.0)
        for name in ref:
            diff[name] = max(diff.get(name, 0.0), float(np.abs(ours[name] - ref[name]).max()))
    return {"best": best, "diff": diff}


def job(paths: list[Path], rows: list[dict], rounds: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mirdl-bench-four-", dir=ba.CACHE))
    try:
        listing = ba.write_listing(work, [dict(r, path=str(p)) for r, p in zip(rows, paths)], "four")
        config = ba.prepare_config(work, listing, tag="four", features=ba.FOUR)
        ba.naive_loop(paths[:1], work / "warm", four=True)  # warm-up: imports and caches, as in make bench
        best = {"naive": float("inf"), "prepare": float("inf")}
        for _ in range(rounds):
            t = ba.naive_loop(paths, work / "naive", four=True)["seconds"]
            best["naive"] = min(best["naive"], t)
            best["prepare"] = min(best["prepare"], ba.run_prepare(config, workers=1, cwd=work)["seconds"])
        return best
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = ba.build_corpus(ba.CACHE / "corpus", args.files)
    paths = [ba.CACHE / "corpus" / r["path"] for r in rows]
    minutes = sum(r["seconds"] for r in rows) / 60
    load = os.getloadavg()[0]
    print(f"{len(rows)} files, {minutes:.1f} min of audio; best of {args.rounds} alternated rounds; "
          f"load average {load:.1f} at the start")
    if args.only in (None, "features"):
        from mirdl.features import audio

        tracks = [audio.load(p, sample_rate=ba.SR)[0] for p in paths]
        r = features(tracks, args.rounds)
        base = r["best"]["librosa, four calls"]
        print("\n| per-track features, same decoded audio | s | x librosa |\n| --- | ---: | ---: |")
        for name, seconds in r["best"].items():
            print(f"| {name} | {seconds:.2f} | {base / seconds:.2f} |")
        print("\nlargest |mirdl - librosa| (chroma: librosa with tuning=0.0, the spec's): " + ", ".join(
            f"{name} {value:.1e}{' dB' if name in ('logmel', 'cqt') else ''}" for name, value in r["diff"].items()))
    if args.only in (None, "job"):
        r = job(paths, rows, args.rounds)
        print(f"\n| job, four specs | s |\n| --- | ---: |\n| naive librosa loop (load + four features + np.save) | "
              f"{r['naive']:.2f} |\n| `mirdl prepare --workers 1` (child process) | {r['prepare']:.2f} |\n"
              f"\nprepare vs naive: {r['naive'] / r['prepare']:.2f}x faster")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sys.exit(main())
