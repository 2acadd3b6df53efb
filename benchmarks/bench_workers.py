"""`mirdl prepare` with 1 worker vs 2, side by side: the "2 workers vs 1" rows of ``make bench`` alone.

Runs the job (TFRecord log-mel, as ``make bench``) on ``make bench``'s mixed corpus (cached in
``bench-cache/corpus``, built by :func:`bench_all.build_corpus` if missing) and on its first 16
files of 30 s, each in a fresh child process, with ``--workers 1`` and with ``--workers 2`` in each
of the given Beam running modes, alternated round by round; reports the best wall time of each,
the ratios to 1 worker, and whether every store's shards are byte-identical to 1 worker's. ::

    python benchmarks/bench_workers.py                                   # 1 vs 2 (default mode), best of 2
    python benchmarks/bench_workers.py --modes default multi_processing --rounds 3
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_all import (CACHE, LOGMEL, build_corpus, prepare_config, run_prepare,  # noqa: E402
                       shard_digest, write_listing)

#: The job's running mode for ``--workers 2``: ``default`` is what ``mirdl prepare`` picks.
MODES = ("default", "multi_threading", "multi_processing")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60, help="files in the mixed corpus (default 60, as make bench)")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds; the best of each is kept")
    parser.add_argument("--modes", nargs="+", default=["default"], choices=MODES,
                        help="running modes of the 2-worker runs (default: the job's own choice)")
    parser.add_argument("--corpora", nargs="+", default=["mixed", "equal"], choices=["mixed", "equal"])
    return parser.parse_args(argv)


def _run(config: Path, *, workers: int, mode: str, cwd: Path) -> dict:
    if mode == "default" or workers == 1:
        return run_prepare(config, workers=workers, cwd=cwd)
    return run_prepare(config, workers=workers, cwd=cwd, beam_args=[f"--direct_running_mode={mode}"])


def main(argv=None) -> int:
    args = parse_args(argv)
    corpus = CACHE / "corpus"
    rows = build_corpus(corpus, args.files)
    equal = [r for r in rows if r["seconds"] == 30][:16]  # as make bench
    listings = {"mixed": write_listing(corpus, rows, "all"), "equal": write_listing(corpus, equal, "equal")}
    minutes = {"mixed": sum(r["seconds"] for r in rows) / 60, "equal": sum(r["seconds"] for r in equal) / 60}
    runs = [(1, "default")] + [(2, mode) for mode in args.modes]
    work = Path(tempfile.mkdtemp(prefix="mirdl-bench-workers-", dir=CACHE))
    best: dict = {}
    cpu: dict = {}  # CPU seconds of the job's processes (children included): robust to other load
    identical: dict = {}
    load_before = os.getloadavg()
    try:
        for round_ in range(args.rounds):
            for name in args.corpora:
                for workers, mode in runs:
                    tag = f"{name}-w{workers}-{mode}"
                    config = prepare_config(work, listings[name], tag=tag, features=[LOGMEL])
                    result = _run(config, workers=workers, mode=mode, cwd=work)
                    print(f"round {round_} {name:5s} workers {workers} {mode:16s} {result['seconds']:6.2f} s "
                          f"(CPU {result['cpu']:6.2f} s, load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
                    key = (name, workers, mode)
                    best[key] = min(best.get(key, float("inf")), result["seconds"])
                    cpu[key] = min(cpu.get(key, float("inf")), result["cpu"])
                    if workers > 1:
                        identical[key] = shard_digest(work / f"store-{tag}") == shard_digest(
                            work / f"store-{name}-w1-default")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"`python benchmarks/bench_workers.py {' '.join(argv if argv is not None else sys.argv[1:])}`: "
          f"best of {args.rounds} alternated runs, each a fresh process; load average {load_before[0]:.1f} at the "
          f"start, {os.getloadavg()[0]:.1f} at the end\n")
    print("Wall seconds (x 1 worker); CPU seconds of the job's processes below (least of the rounds).\n")
    print("| corpus | 1 worker | " + " | ".join(f"2 workers, {m}" for m in args.modes) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in args.modes) + " |")
    for name in args.corpora:
        one = best[(name, 1, "default")]
        cells = [f"{best[(name, 2, m)]:.2f} s ({one / best[(name, 2, m)]:.2f}x"
                 f"{'' if identical[(name, 2, m)] else ', SHARDS DIFFER'})" for m in args.modes]
        label = f"{name} ({minutes[name]:.0f} min)" if name == "mixed" else f"{len(equal)} x 30 s ({minutes[name]:.0f} min)"
        print(f"| {label} | {one:.2f} s | " + " | ".join(cells) + " |")
        print(f"| {label}, CPU | {cpu[(name, 1, 'default')]:.2f} s | "
              + " | ".join(f"{cpu[(name, 2, m)]:.2f} s" for m in args.modes) + " |")
    return 0 if all(identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
