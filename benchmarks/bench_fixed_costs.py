"""Fixed costs of ``mirdl prepare``, side by side: the job (1 worker) against the loops it must beat.

On the ``make bench`` corpus (``bench-cache/corpus``, built by ``benchmarks/bench_all.py``): for the
whole corpus and for its first 12 files, alternated, best of ``--rounds``:

- the naive librosa loop and the bare loop of mirdl's own functions, as ``bench_all.py`` defines
  them (run in this process, as ``make bench`` runs them);
- ``mirdl prepare --workers 1`` (TFRecord log-mel, as ``bench_all.py`` configures it) in a fresh
  process, with this checkout's code and, with ``--baseline PYTHON``, with another checkout's
  (the Python of its virtual environment), whose shards must be byte-identical to this one's.

Usage::

    python benchmarks/bench_fixed_costs.py --baseline /path/to/main/.venv/bin/python   # ~4 min on 2 cores
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_all as ba  # noqa: E402


def run_prepare(python: str, config: Path, *, cwd: Path) -> float:
    """Wall seconds of ``prepare --workers 1`` with ``python``'s mirdl, in a fresh process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    done = subprocess.run([python, "-c", ba.CHILD, "--config", str(config), "--workers", "1", "--overwrite"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"prepare with {python} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="Python of another checkout's environment (e.g. main's)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--subsets", default="60,12", help="corpus sizes (first N files), comma-separated")
    args = parser.parse_args(argv)
    corpus = ba.CACHE / "corpus"
    rows = ba.build_corpus(corpus, 60)
    work = Path(tempfile.mkdtemp(prefix="mirdl-fixed-"))
    pythons = {"this": sys.executable, **({"baseline": args.baseline} if args.baseline else {})}
    results = {}
    for n in (int(part) for part in args.subsets.split(",")):
        subset = rows[:n]
        listing = ba.write_listing(corpus, subset, f"fixed{n}")
        paths = [corpus / row["path"] for row in subset]
        best: dict[str, float] = {}
        for round_ in range(args.rounds):
            for name, fn in (("naive", lambda: ba.naive_loop(paths, work / "naive")["seconds"]),
                             ("bare", lambda: ba.bare_loop(paths)["seconds"]),
                             *((f"prepare {who}", lambda python=python, who=who: run_prepare(
                                 python, ba.prepare_config(work, listing, tag=f"{who}-{n}", features=[ba.LOGMEL]),
                                 cwd=work)) for who, python in pythons.items())):
                seconds = fn()
                best[name] = min(best.get(name, float("inf")), seconds)
                print(f"  {n} files, round {round_ + 1}: {name} {seconds:.2f} s", flush=True)
        if "prepare baseline" in best:
            digests = {who: ba.shard_digest(work / f"store-{who}-{n}") for who in pythons}
            best["identical"] = digests["this"] == digests["baseline"]
        results[n] = best
    load = os.getloadavg()
    print(f"\nbest of {args.rounds}; load average {load[0]:.1f} at the end")
    print("| files | naive loop | bare loop | prepare | vs naive | vs bare | shards identical |")
    print("| ---: | ---: | ---: | --- | ---: | ---: | --- |")
    for n, best in results.items():
        for who in pythons:
            seconds = best[f"prepare {who}"]
            print(f"| {n} | {best['naive']:.2f} s | {best['bare']:.2f} s | {who} {seconds:.2f} s | "
                  f"{best['naive'] / seconds:.2f}x | {best['bare'] / seconds:.2f}x | {best.get('identical', '-')} |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
