"""Fixed costs of ``mirdl prepare``, side by side: the job (1 worker) against the loops it must beat.

On the ``make bench`` corpus (``bench-cache/corpus``, built by ``benchmarks/bench_all.py``): for the
whole corpus and for its first 12 files, alternated, best of ``--rounds``:

- the naive librosa loop and the bare loop of mirdl's own functions, as ``bench_all.py`` defines
  them (run in this process, as ``make bench`` runs them);
- ``mirdl prepare --workers 1`` (TFRecord log-mel, as ``bench_all.py`` configures it) in a fresh
  process, with this checkout's code and, with ``--baseline PYTHON``, with another checkout's
  (the Python of its virtual environment), whose shards must be byte-identical to this one's.

Each is timed in wall seconds and in CPU seconds (user + system, every thread): on a shared
machine the CPU figures move much less than the wall ones.

Usage::

    python benchmarks/bench_fixed_costs.py --baseline /path/to/main/.venv/bin/python   # ~4 min on 2 cores
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_all as ba  # noqa: E402


def run_prepare(python: str, config: Path, *, cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child, all its threads) of ``prepare --workers 1``
    with ``python``'s mirdl, in a fresh process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    log = cwd / f"{config.stem}.log"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        child = subprocess.Popen([python, "-c", ba.CHILD, "--config", str(config), "--workers", "1", "--overwrite"],
                                 cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            child.wait(timeout=1800)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=60)
            raise
    seconds = time.perf_counter() - start
    if child.returncode not in (0, 3):
        raise SystemExit(f"prepare with {python} exited {child.returncode}:\n{log.read_text()[-3000:]}")
    return seconds, _child_cpu()


_CPU_SEEN = [0.0]


def _child_cpu() -> float:
    """CPU seconds of the children reaped since the last call."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    cpu, _CPU_SEEN[0] = total - _CPU_SEEN[0], total
    return cpu


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds (this process) of ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="Python of another checkout's environment (e.g. main's)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--subsets", default="60,12", help="corpus sizes (first N files), comma-separated")
    args = parser.parse_args(argv)
    corpus = ba.CACHE / "corpus"
    rows = ba.build_corpus(corpus, 60)
    work = Path(tempfile.mkdtemp(prefix="mirdl-fixed-"))
    try:
        return _measure(args, corpus, rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(args, corpus: Path, rows: list[dict], work: Path) -> int:
    pythons = {"this": sys.executable, **({"baseline": args.baseline} if args.baseline else {})}
    results = {}
    for n in (int(part) for part in args.subsets.split(",")):
        subset = rows[:n]
        listing = ba.write_listing(corpus, subset, f"fixed{n}")
        paths = [corpus / row["path"] for row in subset]
        best: dict[str, list[float]] = {}
        _child_cpu()
        for round_ in range(args.rounds):
            for name, fn in (("naive", lambda: _timed(lambda: ba.naive_loop(paths, work / "naive"))),
                             ("bare", lambda: _timed(lambda: ba.bare_loop(paths))),
                             *((f"prepare {who}", lambda python=python, who=who: run_prepare(
                                 python, ba.prepare_config(work, listing, tag=f"{who}-{n}", features=[ba.LOGMEL]),
                                 cwd=work)) for who, python in pythons.items())):
                wall, cpu = fn()
                old = best.get(name, [float("inf"), float("inf")])
                best[name] = [min(old[0], wall), min(old[1], cpu)]
                print(f"  {n} files, round {round_ + 1}: {name} {wall:.2f} s wall, {cpu:.2f} s CPU, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        if "prepare baseline" in best:
            digests = {who: ba.shard_digest(work / f"store-{who}-{n}") for who in pythons}
            best["identical"] = digests["this"] == digests["baseline"]
        results[n] = best
    load = os.getloadavg()
    print(f"\nbest of {args.rounds} (wall and CPU each); load average {load[0]:.1f} at the end")
    print("| files | clock | naive loop | bare loop | prepare | vs naive | vs bare | shards identical |")
    print("| ---: | --- | ---: | ---: | --- | ---: | ---: | --- |")
    for n, best in results.items():
        for clock, i in (("wall", 0), ("CPU", 1)):
            for who in pythons:
                seconds = best[f"prepare {who}"][i]
                naive, bare = best["naive"][i], best["bare"][i]
                print(f"| {n} | {clock} | {naive:.2f} s | {bare:.2f} s | {who} {seconds:.2f} s | "
                      f"{naive / seconds:.2f}x | {bare / seconds:.2f}x | {best.get('identical', '-')} |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
