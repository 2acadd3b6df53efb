"""Peak memory of ``mirdl prepare`` against the size of the store it writes, side by side.

One run writes a synthetic corpus (WAV, 22.05 kHz mono, ``--seconds`` per track), then
runs the precompute job (:func:`mirdl.pipelines.precompute.run`, ``--workers 1``: Beam's local
FnApiRunner in one process, what ``mirdl prepare --workers 1`` runs) once per corpus size in
``--tracks`` (the first N tracks of the same corpus: a smaller corpus is a prefix of a
larger one), each in a fresh child process, and reads the child's peak resident set size
from ``os.wait4`` (``ru_maxrss``, the kernel's high-water mark of the process). By default,
dense log-mel patches (128 mels, hop 256, 3 s patches every 0.25 s, float32, HDF5, no
compression, no augmentation) make a store of a few MB per track, so the store outgrows
the process's fixed cost (Python, numpy, librosa, Beam: ~400 MB) quickly; tiny patches
(``--n-mels 8 --patch-seconds 0.05 --hop-seconds 0.01``) make many small records instead,
which measures what each record costs in memory besides its bytes (the shuffled index).

With ``--baseline-ref REF`` every size is also run with the ``pipelines/`` package of that
git commit (extracted with ``git show`` into the work directory and put first on the
child's ``PYTHONPATH``; ``features`` and ``mirdl`` stay the working tree's), and the two
stores' shard lists (names, sizes, sha256) are compared: the same bytes, whatever the code
that shuffles them.

Prints a markdown table: code, tracks, records, store MB (shard bytes), spill MB (the
``spilled_bytes`` counter), peak RSS MB, peak RSS / store, wall seconds.

Usage::

    python benchmarks/bench_prepare_memory.py                                   # ~1.5 minutes on 2 cores
    python benchmarks/bench_prepare_memory.py --baseline-ref 3fcb251 --markdown run.md      # ~2.5 minutes
    python benchmarks/bench_prepare_memory.py --n-mels 8 --patch-seconds 0.05 --hop-seconds 0.01 \
        --shard-bytes 64KB                                                      # many records: the index's cost
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 22050
# The child: the job's own entry point, with its exit status.
CHILD = "import sys; from mirdl.pipelines.precompute import run; sys.exit(run(sys.argv[1:]))"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, nargs="+", default=[40, 160],
                        help="corpus sizes, one prepare run each (default 40 160)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per track (default 10)")
    parser.add_argument("--shard-bytes", default="2MB", help="store.shard_bytes (default 2MB)")
    parser.add_argument("--n-mels", type=int, default=128, help="log-mel bands (default 128)")
    parser.add_argument("--patch-seconds", type=float, default=3.0, help="segment.patch_seconds (default 3)")
    parser.add_argument("--hop-seconds", type=float, default=0.25, help="segment.hop_seconds (default 0.25)")
    parser.add_argument("--format", default="hdf5", choices=("hdf5", "parquet", "tfrecord"),
                        help="store format (default hdf5: no TensorFlow import in the job)")
    parser.add_argument("--baseline-ref", default=None, metavar="REF",
                        help="also run every size with pipelines/ from this git commit")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where corpus and stores go (default: a temporary directory, deleted)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    if min(args.tracks) < 1 or args.n_mels < 1 or min(args.seconds, args.patch_seconds, args.hop_seconds) <= 0:
        parser.error("--tracks and --n-mels must be >= 1, --seconds, --patch-seconds and --hop-seconds > 0")
    return args


def write_config(folder: Path, *, corpus: Path, n_tracks: int, tag: str, args: argparse.Namespace) -> Path:
    """A prepare config over the first ``n_tracks`` rows of the corpus' labels.csv."""
    rows = (corpus / "labels.csv").read_text(encoding="utf-8").splitlines()
    listing = corpus / f"labels-{n_tracks}.csv"  # next to labels.csv: paths are relative to its folder
    listing.write_text("\n".join(rows[: n_tracks + 1]) + "\n", encoding="utf-8")
    config = {
        "name": "bench",
        "corpus": {"type": "csv", "csv": str(listing), "group_column": "artist"},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": SAMPLE_RATE,
                      "params": {"n_fft": 2048, "hop_length": 256, "n_mels": args.n_mels}}],
        "segment": {"mode": "clip", "patch_seconds": args.patch_seconds, "hop_seconds": args.hop_seconds,
                    "pad": "silence"},
        "store": {"format": args.format, "out": str(folder / f"store-{tag}-{n_tracks}"),
                  "shard_bytes": args.shard_bytes},
    }
    path = folder / f"prepare-{tag}-{n_tracks}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def extract_pipelines(ref: str, into: Path) -> Path:
    """``pipelines/`` of commit ``ref`` under ``into``; returns the folder to put on PYTHONPATH."""
    names = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", f"{ref}:pipelines"], check=True,
                           capture_output=True, text=True).stdout.split()
    package = into / "pipelines"
    package.mkdir(parents=True)
    for name in names:
        if name.endswith(".py"):
            source = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:pipelines/{name}"], check=True,
                                    capture_output=True).stdout
            (package / name).write_bytes(source)
    return into


def measure(config: Path, *, cwd: Path, pythonpath: Path | None) -> dict:
    """Run the job on ``config`` in a child process; its exit status, peak RSS (MB), wall seconds, output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [env.get("PYTHONPATH")])])
    out = cwd / f"{config.stem}.log"
    start = time.perf_counter()
    with open(out, "w", encoding="utf-8") as log:
        # cwd is not the repo: the child's sys.path[0] ('') must not shadow the baseline's pipelines/.
        child = subprocess.Popen([sys.executable, "-c", CHILD, "--config", str(config), "--workers", "1"],
                                 cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {"status": child.returncode, "peak_rss": peak, "seconds": seconds, "log": out}


def store_summary(store: Path) -> dict:
    from mirdl.store.manifest import read_manifest

    manifest = read_manifest(store)
    splits = manifest["splits"]
    return {"records": sum(s["records"] for s in splits.values()),
            "bytes": sum(s["bytes"] for s in splits.values()),
            "shards": sum(len(s["shards"]) for s in splits.values()),
            "splits": splits}


def spilled_bytes(log: Path) -> int | None:
    """The ``spilled_bytes`` counter, if the job's summary printed it (the new code does)."""
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "counters:" in line and "spilled_bytes" in line:
            return int(line.split("spilled_bytes", 1)[1].split(",")[0])
    return None


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mirdl.features.synth import write_corpus

    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench-prepare-")) if own else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        corpus = workdir / "corpus"
        write_corpus(corpus, n_tracks=max(args.tracks), seed=0, duration=args.seconds, formats=("wav",),
                     sample_rates=(SAMPLE_RATE,), stereo_fraction=0.0, overwrite=True)
        print(f"corpus: {max(args.tracks)} tracks x {args.seconds:g} s in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        codes = [("working tree", "new", None)]
        if args.baseline_ref:
            codes.insert(0, (f"pipelines/ at {args.baseline_ref}", "base",
                             extract_pipelines(args.baseline_ref, workdir / "baseline")))
        rows = []
        for n_tracks in sorted(args.tracks):
            stores = {}
            for label, tag, pythonpath in codes:
                config = write_config(workdir, corpus=corpus, n_tracks=n_tracks, tag=tag, args=args)
                result = measure(config, cwd=workdir, pythonpath=pythonpath)
                if result["status"] not in (0, 3):
                    print(result["log"].read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
                    raise SystemExit(f"prepare ({label}, {n_tracks} tracks) exited {result['status']}")
                store = workdir / f"store-{tag}-{n_tracks}"
                summary = store_summary(store)
                stores[tag] = summary
                rows.append({"code": label, "tracks": n_tracks, **summary, **result,
                             "spilled": spilled_bytes(result["log"])})
                print(f"{label}, {n_tracks} tracks: store {summary['bytes'] / 2**20:.1f} MB, "
                      f"peak RSS {result['peak_rss'] / 2**20:.1f} MB, {result['seconds']:.1f} s", file=sys.stderr)
                shutil.rmtree(store)  # keep the disk use to one store (plus its spill) at a time
            if len(stores) == 2:
                same = stores["base"]["splits"] == stores["new"]["splits"]
                print(f"{n_tracks} tracks: shard lists (names, sizes, sha256) of both codes "
                      f"{'identical' if same else 'DIFFER'}", file=sys.stderr)
                if not same:
                    raise SystemExit("the two codes wrote different shards")
                rows[-1]["identical"] = True
        table = render(rows, args)
        print(table)
        if args.markdown:
            args.markdown.write_text(table + "\n", encoding="utf-8")
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def render(rows: list[dict], args: argparse.Namespace) -> str:
    mb = 2**20
    lines = [
        f"{args.format}, shard_bytes {args.shard_bytes}, {args.seconds:g} s tracks, log-mel {args.n_mels} x "
        f"{args.patch_seconds:g} s patches every {args.hop_seconds:g} s, `--workers 1`; "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs",
        "",
        "| code | tracks | records | shards | store MB | spilled MB | peak RSS MB | peak RSS / store | wall s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        spilled = "-" if row["spilled"] is None else f"{row['spilled'] / mb:,.1f}"
        lines.append(f"| {row['code']} | {row['tracks']} | {row['records']:,} | {row['shards']} | "
                     f"{row['bytes'] / mb:,.1f} | {spilled} | {row['peak_rss'] / mb:,.1f} | "
                     f"{row['peak_rss'] / row['bytes']:.2f} | {row['seconds']:.1f} |")
    by_code: dict[str, list[dict]] = {}
    for row in rows:
        by_code.setdefault(row["code"], []).append(row)
    lines.append("")
    for code, mine in by_code.items():
        if len(mine) >= 2:
            small, large = mine[0], mine[-1]
            store_growth = (large["bytes"] - small["bytes"]) / mb
            rss_growth = (large["peak_rss"] - small["peak_rss"]) / mb
            per_record = (large["peak_rss"] - small["peak_rss"]) / max(1, large["records"] - small["records"])
            lines.append(f"- {code}: store +{store_growth:,.1f} MB -> peak RSS {rss_growth:+,.1f} MB "
                         f"({rss_growth / store_growth:.3f} MB per store MB, {per_record:,.0f} bytes per record)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run())
