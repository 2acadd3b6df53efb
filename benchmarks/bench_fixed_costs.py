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

``--workers 1,2`` times 1 and 2 workers; ``--no-loops`` leaves the loops out; ``--corpus DIR``
reads the encoded corpus from another folder (it may be read-only: the listings are written to a
temporary folder with absolute paths).

Usage::

    python benchmarks/bench_fixed_costs.py --baseline /path/to/main/.venv/bin/python   # ~4 min on 2 cores
    python benchmarks/bench_fixed_costs.py --baseline ... --workers 1,2 --rounds 3 --no-loops
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


def run_prepare(python: str, config: Path, *, cwd: Path, workers: int = 1, timeout: float = 1800) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child, all its threads, from ``os.wait4``) of
    ``prepare --workers N`` with ``python``'s mirdl, in a fresh process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    log = cwd / f"{config.stem}-w{workers}.log"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        child = subprocess.Popen([python, *ba.CHILD, "--config", str(config), "--workers", str(workers),
                                  "--overwrite"], cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            status, usage = _wait4(child.pid, timeout=timeout)
        except TimeoutError:
            child.kill()
            child.wait(timeout=60)
            raise
    seconds = time.perf_counter() - start
    child.returncode = code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise SystemExit(f"prepare with {python} exited {code}:\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_utime + usage.ru_stime


def _wait4(pid: int, *, timeout: float) -> tuple[int, object]:
    """``os.wait4(pid)`` with a deadline (polled): the exit status and resource usage of the child."""
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"prepare (pid {pid}) still running after {timeout:.0f} s")
        time.sleep(0.01)


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
    parser.add_argument("--workers", default="1", help="worker counts of the prepare runs, comma-separated")
    parser.add_argument("--corpus", type=Path, default=ba.CACHE / "corpus",
                        help="folder of the encoded bench corpus (default bench-cache/corpus; missing files are "
                             "encoded there); the listings are written to a temporary folder")
    parser.add_argument("--no-loops", action="store_true", help="time the prepare runs only (no naive / bare loop)")
    args = parser.parse_args(argv)
    rows = ba.build_corpus(args.corpus, 60)
    work = Path(tempfile.mkdtemp(prefix="mirdl-fixed-"))
    try:
        return _measure(args, args.corpus, rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(args, corpus: Path, rows: list[dict], work: Path) -> int:
    pythons = {"this": sys.executable, **({"baseline": args.baseline} if args.baseline else {})}
    worker_counts = [int(part) for part in args.workers.split(",")]
    results = {}
    for n in (int(part) for part in args.subsets.split(",")):
        subset = rows[:n]
        listing = work / f"fixed{n}.csv"  # the corpus folder may be read-only: absolute paths in the listing
        listing.write_text("path,label,artist\n" + "".join(f"{corpus.resolve() / r['path']},{r['label']},{r['artist']}\n"
                                                           for r in subset))
        paths = [corpus / row["path"] for row in subset]
        best: dict[str, list[float]] = {}
        loops = [] if args.no_loops else [
            ("naive", lambda: _timed(lambda: ba.naive_loop(paths, work / "naive"))),
            ("bare", lambda: _timed(lambda: ba.bare_loop(paths)))]
        for round_ in range(args.rounds):
            # Alternated: every measure of a round before the next round; the order of the prepare
            # runs flips every round (which version runs right after the loops is not always the same).
            runs = [(f"prepare {who} w{workers}", lambda python=python, who=who, workers=workers: run_prepare(
                        python, ba.prepare_config(work, listing, tag=f"{who}-{n}-w{workers}", features=[ba.LOGMEL]),
                        cwd=work, workers=workers))
                    for workers in worker_counts for who, python in pythons.items()]
            for name, fn in loops + (runs if round_ % 2 == 0 else runs[::-1]):
                wall, cpu = fn()
                old = best.get(name, [float("inf"), float("inf")])
                best[name] = [min(old[0], wall), min(old[1], cpu)]
                print(f"  {n} files, round {round_ + 1}: {name} {wall:.2f} s wall, {cpu:.2f} s CPU, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        if "baseline" in pythons:
            for workers in worker_counts:
                digests = {who: ba.shard_digest(work / f"store-{who}-{n}-w{workers}") for who in pythons}
                best[f"identical w{workers}"] = digests["this"] == digests["baseline"]
        results[n] = best
    load = os.getloadavg()
    print(f"\nbest of {args.rounds} (wall and CPU each); load average {load[0]:.1f} at the end")
    print("| files | workers | clock | naive loop | bare loop | prepare | vs naive | vs bare | shards identical |")
    print("| ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | --- |")
    for n, best in results.items():
        for workers in worker_counts:
            for clock, i in (("wall", 0), ("CPU", 1)):
                for who in pythons:
                    seconds = best[f"prepare {who} w{workers}"][i]
                    naive, bare = best.get("naive", [None, None])[i], best.get("bare", [None, None])[i]
                    ratio = (lambda base: "-" if base is None else f"{base / seconds:.2f}x")
                    print(f"| {n} | {workers} | {clock} | {'-' if naive is None else f'{naive:.2f} s'} | "
                          f"{'-' if bare is None else f'{bare:.2f} s'} | {who} {seconds:.2f} s | {ratio(naive)} | "
                          f"{ratio(bare)} | {best.get(f'identical w{workers}', '-')} |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
