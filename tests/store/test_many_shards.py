"""A store of 10^4 tiny shards: the manifest, verify, the tf.data reader and `mirdl inspect` stay
bounded in time and memory (what a 100,000-track corpus gives; see docs/cluster.md).

TFRecord, the default format and the fastest reader per shard; HDF5 and Parquet open each
shard from Python (about 7 ms a shard in `load()`, measured here: linear, not tested at 10^4).
"""
import os
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from small_stores import TASK  # noqa: E402

from mirdl.cli import main  # noqa: E402
from mirdl.store.build import write_store  # noqa: E402
from mirdl.store.format import record_key  # noqa: E402
from mirdl.store.manifest import read_manifest, shard_paths  # noqa: E402
from mirdl.store.verify import verify  # noqa: E402

N_SHARDS = 10_000
N_RECORDS = 12_000  # about one per shard: most shards hold one record, some none, a few two or three


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


@pytest.mark.slow
def test_ten_thousand_shards_read_verify_load_and_inspect_in_bounded_time(tmp_path, capsys):
    rng = np.random.default_rng(0)
    records = [{"key": record_key(track_id=f"t{i:05d}", variant=0, segment=0), "track_id": f"t{i:05d}",
                "variant": 0, "segment": 0, "start_frame": 0,
                "x": rng.standard_normal((2, 3)).astype(np.float32), "label": np.int64(i % 2)}
               for i in range(N_RECORDS)]
    features = {"x": {"shape": [2, 3], "dtype": "float32", "axes": ["bin", "time"],
                      "stats": {"split": "train", "mean": [0.0, 0.0], "std": [1.0, 1.0]}}}
    store = tmp_path / "many"
    # The writer fsyncs every shard and its folder (durability, ~5 ms a call on this shared disk:
    # 100 s for 10^4 shards); this test is about reading, so the write skips them.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        _, write_seconds = timed(lambda: write_store(
            store, {"train": records}, name="many", store_format="tfrecord", features=features, task=TASK,
            fingerprint="f" * 16, n_shards=N_SHARDS, plots=False, log=lambda line: None))

    tracemalloc.start()
    try:
        manifest = read_manifest(store)
        _, manifest_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    manifest, read_seconds = timed(lambda: read_manifest(store))
    paths, paths_seconds = timed(lambda: shard_paths(store, manifest, "train"))
    assert len(manifest["splits"]["train"]["shards"]) == len(paths) == N_SHARDS
    assert manifest["splits"]["train"]["records"] == N_RECORDS
    report, verify_seconds = timed(lambda: verify(store))
    assert report["shards"] == N_SHARDS and report["records"] == N_RECORDS
    manifest_bytes = (store / "manifest.json").stat().st_size

    from mirdl_tf.data import load

    def one_epoch():
        return sum(int(labels.shape[0]) for _, labels in load(store, "train", batch_size=512, shuffle=False,
                                                               standardize=False))

    seen, load_seconds = timed(one_epoch)
    assert seen == N_RECORDS
    capsys.readouterr()
    status, inspect_seconds = timed(lambda: main(["inspect", str(store)]))
    out = capsys.readouterr().out
    print(out)
    assert status == 0 and str(N_SHARDS) in out.replace(",", "")

    print(f"\n10^4 shards: write {write_seconds:.1f} s, manifest {manifest_bytes / 1e6:.2f} MB read "
          f"{read_seconds:.2f} s, shard_paths {paths_seconds:.2f} s, verify {verify_seconds:.1f} s, "
          f"one epoch {load_seconds:.1f} s, inspect {inspect_seconds:.2f} s, peak Python memory of "
          f"read_manifest {manifest_peak / 1e6:.0f} MB")
    # Linear work takes well under these on 2 shared cores; a quadratic step (10^8 operations) does
    # not: sharding 12,000 records by scanning them once per shard, or tracing a tf.data function
    # for every TFRecord shard verified (50-75 ms each), took minutes.
    assert write_seconds < 60
    assert read_seconds + paths_seconds < 10
    assert verify_seconds < 30
    assert load_seconds < 30
    assert inspect_seconds < 10
    assert manifest_peak < 100e6
