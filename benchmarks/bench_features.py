"""Per-representation cost for 60 s of audio, and block-wise vs whole-file STFT on a long track.

Run from the repository root::

    python benchmarks/bench_features.py [--seconds 60] [--long-minutes 10] [--repeat 3]

Prints a markdown table (best of ``--repeat`` timings, after one warm-up call) with each
representation's time and its ratio to log-mel, then the time of ``mirdl.features.representations.logmel``
(computed in blocks of frames) against one whole-signal ``librosa.feature.melspectrogram`` call on a
``--long-minutes`` track (time and peak allocated memory), and checks both give the same numbers.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import librosa
import numpy as np

from mirdl.features import representations as rep
from mirdl.features.spec import FeatureSpec

SR = 22050


def best_time(fn, *, repeat: int) -> float:
    fn()  # warm-up: filterbanks, FFT plans, lazy imports
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_mb(fn) -> float:
    """Peak traced allocation (numpy reports its buffers to tracemalloc) while ``fn`` runs, in MB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def signal(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    y = signal(args.seconds)
    rows = []
    for name in sorted(rep.REPRESENTATIONS):
        spec = FeatureSpec(representation=name, sample_rate=SR)
        rows.append((name, best_time(lambda spec=spec: rep.compute(y, spec=spec), repeat=args.repeat)))
    logmel_time = dict(rows)["logmel"]
    print(f"### {args.seconds:g} s of audio at {SR} Hz, default spec of each representation\n")
    print("| representation | ms | x log-mel | x real time |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in rows:
        speed = args.seconds / seconds if seconds > 0 else float("inf")
        print(f"| {name} | {seconds * 1000:.1f} | {seconds / logmel_time:.2f} | {speed:,.0f} |")

    long = signal(args.long_minutes * 60)
    blocked = best_time(lambda: rep.logmel(long, sr=SR), repeat=args.repeat)
    def whole_signal():
        return librosa.power_to_db(librosa.feature.melspectrogram(y=long, sr=SR), ref=1.0, amin=1e-10, top_db=None)

    whole = best_time(whole_signal, repeat=args.repeat)
    blocked_mb, whole_mb = peak_mb(lambda: rep.logmel(long, sr=SR)), peak_mb(whole_signal)
    diff = float(np.abs(rep.logmel(long, sr=SR) - whole_signal()).max())
    print(f"\n### log-mel of a {args.long_minutes:g}-minute track (n_fft 2048, hop 512, 128 mels)\n")
    print("| method | s | x blocked | peak MB allocated | x blocked |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| mirdl.features.representations.logmel (blocks of {rep.DEFAULT_BLOCK_FRAMES} frames) | {blocked:.2f} | 1.00 "
          f"| {blocked_mb:.0f} | 1.00 |")
    print(f"| one whole-signal librosa call | {whole:.2f} | {whole / blocked:.2f} | {whole_mb:.0f} "
          f"| {whole_mb / blocked_mb:.2f} |")
    print(f"\nmax |difference| {diff:.2e} dB")


if __name__ == "__main__":
    main()
