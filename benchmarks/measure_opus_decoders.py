"""Measure FFmpeg's own Opus decoder (``decoder="fast"``) against libsndfile/libopus (``"reference"``).

For synthetic music (:mod:`mirdl.features.synth`, every class, stereo 48 kHz) encoded to Ogg Opus by
libopus (through libsndfile) at several compression levels (bitrates), prints per file and overall:
the start offset between the two decodes found by cross-correlation (0 when aligned), the largest
sample difference, the mean and max ``|dB|`` difference of the bench's log-mel (22.05 kHz, n_fft
2048, hop 512, 128 mels), and the decode time of both decoders measured side by side in one run
(each file decoded by both, alternating, best of ``--repeat``).

    .venv/bin/python benchmarks/measure_opus_decoders.py --files 12 --seconds 30

The bound stated in :data:`mirdl.features.audio.OPUS_FAST_BOUND_DB` comes from this script's output.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import soundfile as sf

from mirdl.features import audio, synth
from mirdl.features.representations import compute
from mirdl.features.spec import FeatureSpec

SPEC = FeatureSpec(representation="logmel", sample_rate=22050, params={"n_fft": 2048, "hop_length": 512, "n_mels": 128})
LEVELS = (0.0, 0.5, 0.9)  # libsndfile's Opus compression level: high, middle and low bitrate


def encode(path: str, y: np.ndarray, *, level: float) -> None:
    """Ogg Opus by libopus through libsndfile, in blocks (see mirdl.features.audio.write_audio)."""
    with sf.SoundFile(path, "w", samplerate=48000, channels=y.shape[0], format="OGG", subtype="OPUS",
                      compression_level=level) as handle:
        for begin in range(0, y.shape[1], audio.WRITE_BLOCK_FRAMES):
            handle.write(y[:, begin:begin + audio.WRITE_BLOCK_FRAMES].T)


def lag(a: np.ndarray, b: np.ndarray, *, max_lag: int = 2000) -> int:
    """Shift of ``b`` against ``a`` (samples) with the largest cross-correlation."""
    n = min(len(a), len(b), 96000)
    a, b = a[max_lag:n - max_lag], b[:n]
    scores = [float(np.dot(a, b[max_lag + k:max_lag + k + len(a)])) for k in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


def measure(path: str, *, repeat: int) -> dict:
    times = {"reference": [], "fast": []}
    for _ in range(repeat):
        for mode in ("reference", "fast"):  # alternating: both see the same machine load
            start = time.perf_counter()
            native = audio.decode(path, decoder=mode, channels=2)
            times[mode].append(time.perf_counter() - start)
    ref = audio.decode(path, decoder="reference", channels=2)
    fast = audio.decode(path, decoder="fast", channels=2)
    assert fast.decoder == "pyav_opus" and ref.decoder == "soundfile", (fast.decoder, ref.decoder)
    db = [compute(audio.load(path, sample_rate=SPEC.sample_rate, decoder=mode)[0], spec=SPEC)
          for mode in ("reference", "fast")]
    diff = np.abs(db[0].astype(np.float64) - db[1])
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    del native
    return {"lag": lag(ref.y[0], fast.y[0]), "n": (ref.y.shape[-1], fast.y.shape[-1]),
            "sample_max": float(np.max(np.abs(ref.y - fast.y))), "db_mean": float(diff.mean()),
            "db_max": float(diff.max()), "at_db": float(db[0][worst] - db[0].max()),
            "p999": float(np.quantile(diff, 0.999)), "t_ref": min(times["reference"]), "t_fast": min(times["fast"])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12, help="tracks per compression level")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for level in LEVELS:
            for i in range(args.files):
                rng = np.random.default_rng(i)
                track = synth.synth_track(label=synth.CLASSES[i % len(synth.CLASSES)], rng=rng, sr=48000,
                                          duration=args.seconds, channels=2, artist=f"artist_{i % 3}")
                path = os.path.join(folder, f"{i}-{level}.opus")
                encode(path, track.audio, level=level)
                row = measure(path, repeat=args.repeat)
                row.update(level=level, kbps=8 * os.path.getsize(path) / args.seconds / 1000, name=os.path.basename(path))
                rows.append(row)
                print(f"{row['name']:>12} {row['kbps']:6.1f} kb/s lag {row['lag']:+d} len {row['n'][0]}/{row['n'][1]} "
                      f"max|dy| {row['sample_max']:.4f}  dB mean {row['db_mean']:.4f} max {row['db_max']:.3f} "
                      f"(in a bin at {row['at_db']:.0f} dB re peak; 99.9 % {row['p999']:.3f})  "
                      f"decode ref {row['t_ref'] * 1000:.0f} ms fast {row['t_fast'] * 1000:.0f} ms "
                      f"({row['t_ref'] / row['t_fast']:.2f}x)", flush=True)
    for level in LEVELS:
        part = [row for row in rows if row["level"] == level]
        print(f"level {level}: dB mean (worst file) {max(r['db_mean'] for r in part):.4f}, "
              f"dB max {max(r['db_max'] for r in part):.3f}, "
              f"speed {sum(r['t_ref'] for r in part) / sum(r['t_fast'] for r in part):.2f}x")
    print(f"overall over {len(rows)} files: dB mean (all bins) {np.mean([r['db_mean'] for r in rows]):.4f}, "
          f"worst file mean {max(r['db_mean'] for r in rows):.4f}, max {max(r['db_max'] for r in rows):.3f}; "
          f"lags {sorted({r['lag'] for r in rows})}; decode ref {sum(r['t_ref'] for r in rows):.2f} s, "
          f"fast {sum(r['t_fast'] for r in rows):.2f} s "
          f"({sum(r['t_ref'] for r in rows) / sum(r['t_fast'] for r in rows):.2f}x)")


if __name__ == "__main__":
    main()
