"""Stores and catalogs on S3, tested against a real S3-compatible server (moto's server mode on
127.0.0.1, started by the s3_server fixture): atomic writes (manifest last), the lock as a
conditional write, verify, load() shard by shard, catalog publish (concurrent) / list / pull."""
import json

import numpy as np
import pytest

from mirdl.cli import main
from mirdl.errors import StoreError
from mirdl.store.catalog import list_catalog
from mirdl.store.files import DestinationLock, filesystem_for
from mirdl.store.manifest import read_manifest
from mirdl.store.remote import store_files, upload_store
from small_stores import build, make_records
from test_catalog import publish_concurrently


def test_upload_is_atomic_and_overwrite_is_asked_for(tmp_path, s3_bucket, capsys):
    local = tmp_path / "store"
    manifest = build(local, "parquet")
    url = f"{s3_bucket}/stores/small"
    upload_store(local, url)
    files = store_files(url)
    assert "manifest.json" in files and ".mirdl-store" in files and "README.md" in files
    assert read_manifest(url)["fingerprint"] == manifest["fingerprint"]
    fs, path = filesystem_for(s3_bucket)
    assert [name for name in fs.list_files(path) if ".tmp-" in name or name.endswith(".lock")] == []  # nothing left
    with pytest.raises(StoreError, match="holds a store already; pass --overwrite"):
        upload_store(local, url)
    upload_store(local, url, overwrite=True)
    assert main(["verify", url]) == 0
    assert "verified s3://" in capsys.readouterr().out


def test_prefix_without_manifest_is_no_store_and_a_changed_shard_is_found(tmp_path, s3_bucket, capsys):
    local = tmp_path / "store"
    manifest = build(local, "hdf5")
    fs, path = filesystem_for(s3_bucket)
    for name in (".mirdl-store", manifest["splits"]["train"]["shards"][0]["path"]):  # a write that died half way
        fs.upload(local / name, f"{path}/partial/{name}")
    with pytest.raises(StoreError, match="missing; .* is not a complete mirdl store"):
        read_manifest(f"{s3_bucket}/partial")
    url = f"{s3_bucket}/stores/small"
    upload_store(local, url)
    shard = manifest["splits"]["test"]["shards"][0]["path"]
    data = bytearray((local / shard).read_bytes())
    data[len(data) // 2] ^= 0xFF
    fs.write_bytes(f"{path}/stores/small/{shard}", bytes(data))
    assert main(["verify", url]) == 2
    assert "sha256 does not match" in capsys.readouterr().err


def test_lock_is_a_conditional_write(s3_bucket):
    fs, path = filesystem_for(s3_bucket)
    with DestinationLock(f"{path}/stores/small", filesystem=fs) as lock:
        assert lock.path == f"{path}/stores/.small.lock"
        with pytest.raises(StoreError, match="another mirdl job writes it"):
            DestinationLock(f"{path}/stores/small", filesystem=fs).acquire()
    assert fs.read_bytes(f"{path}/stores/.small.lock") is None  # released


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet"])
def test_load_streams_an_s3_store_and_diff_matches_local(tmp_path, s3_bucket, fmt, monkeypatch):
    from mirdl_tf.data import load

    fetch_dir = tmp_path / "tmp"
    fetch_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(fetch_dir))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(fetch_dir))
    local = tmp_path / "store"
    build(local, fmt)
    url = f"{s3_bucket}/stores/{fmt}"
    upload_store(local, url)
    ds = load(url, "train", batch_size=3, shuffle=False, standardize=False, with_metadata=True)
    seen = {}
    for x, y, meta in ds:
        for key, feature, label in zip(meta["key"].numpy(), x.numpy(), y.numpy()):
            seen[key.decode()] = (feature, label)
    expected = {r["key"]: r for r in make_records()[:8]}
    assert sorted(seen) == sorted(expected)
    for key, (feature, label) in seen.items():
        np.testing.assert_array_equal(feature, expected[key]["x"])
        assert label == expected[key]["label"]
    assert [p for p in fetch_dir.iterdir() if p.name.startswith(".mirdl-fetch-")] == []  # each deleted after reading
    assert main(["diff", str(local), url]) == 0


def test_unsupported_scheme_in_prepare_config_is_a_config_error(tmp_path):
    from mirdl.errors import ConfigError
    from mirdl.pipelines.config import StoreConfig

    with pytest.raises(ConfigError, match="store.out='hdfs://x/y'"):
        StoreConfig.from_dict({"format": "parquet", "out": "hdfs://x/y"}, base_dir=tmp_path)
    for url in ("s3://b/x", "gs://b/x"):  # URLs stay URLs (they were mangled into local "s3:/b/x" paths)
        assert StoreConfig.from_dict({"format": "parquet", "out": url}, base_dir=tmp_path).out == url


def test_catalog_on_s3_publish_list_pull_and_load(tmp_path, s3_bucket, monkeypatch, capsys):
    from mirdl_tf.data import load

    local = tmp_path / "store"
    build(local, "parquet")
    root = f"{s3_bucket}/catalog"
    assert main(["publish", str(local), root]) == 0
    assert "catalog://small@1" in capsys.readouterr().out
    assert main(["catalog", root, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["version"], r["splits"]) for r in rows] == [("small", 1, {"train": 8, "test": 4})]
    monkeypatch.setenv("MIRDL_CACHE", str(tmp_path / "cache"))
    assert main(["pull", "small@1", "--from", root]) == 0
    assert capsys.readouterr().out.strip().endswith(str(tmp_path / "cache" / "small" / "1"))
    monkeypatch.setenv("MIRDL_CATALOG", root)
    ds = load("catalog://small", "test", batch_size=4, shuffle=False, standardize=False)
    assert sum(int(x.shape[0]) for x, _ in ds) == 4


@pytest.mark.slow
def test_concurrent_publishers_on_s3_get_distinct_complete_versions(tmp_path, s3_bucket):
    local = tmp_path / "store"
    build(local, "parquet")
    root = f"{s3_bucket}/catalog"
    assert publish_concurrently(local, root, n=3) == [1, 2, 3]
    entries = list_catalog(root)
    assert [e.version for e in entries] == [1, 2, 3]
    for entry in entries:
        assert main(["verify", entry.location]) == 0


@pytest.mark.slow
def test_prepare_to_s3_publish_and_train_from_catalog(tmp_path, s3_bucket, synth_corpus, monkeypatch, capsys):
    """The README walk-through: prepare (store.out on S3) -> publish -> catalog -> train from another directory."""
    config = {
        "name": "walk", "seed": 0,
        "corpus": {"type": "csv", "csv": str(synth_corpus.root / "labels.csv"), "group_column": "artist"},
        "splits": {"fractions": {"train": 0.75, "valid": 0.25}, "group_by": "group"},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": 16000,
                      "params": {"n_fft": 512, "hop_length": 256, "n_mels": 32}}],
        "segment": {"mode": "clip", "patch_seconds": 1.0, "hop_seconds": 1.0, "pad": "silence"},
        "store": {"format": "parquet", "out": f"{s3_bucket}/stores/walk"},
    }
    path = tmp_path / "prepare.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    assert main(["prepare", "--config", str(path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"copied walk to {s3_bucket}/stores/walk" in out
    assert not (tmp_path / "s3:").exists() and not list(tmp_path.glob("s3*"))  # never a local folder
    assert main(["prepare", "--config", str(path), "--workers", "1"]) == 0
    assert "up to date" in capsys.readouterr().out
    files = store_files(f"{s3_bucket}/stores/walk")
    assert {"README.md", "croissant.json", "manifest.json"} <= set(files)
    assert any(name.startswith("plots/") for name in files)

    root = f"{s3_bucket}/catalog"
    assert main(["publish", f"{s3_bucket}/stores/walk", root]) == 0
    monkeypatch.setenv("MIRDL_CACHE", str(tmp_path / "cache"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    train = {"store": "catalog://walk@1", "model": {"name": "fcn", "args": {"n_layers": 2, "base_filters": 4}},
             "epochs": 1, "batch_size": 8, "out": "run"}
    (elsewhere / "train.yaml").write_text(json.dumps(train), encoding="utf-8")
    assert main(["train", "--config", "train.yaml", "--catalog", root]) == 0
    out = capsys.readouterr().out
    assert "catalog://walk@1: pulled into" in out and (elsewhere / "run" / "metrics.json").is_file()

    # inspect and evaluate take the same places: the s3:// store in place and the catalog version
    assert main(["inspect", f"{s3_bucket}/stores/walk", "--plot", "plots"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("store walk: parquet") and "plotted plots/examples.png" in out
    assert (elsewhere / "plots" / "examples.png").stat().st_size > 0
    assert main(["inspect", "catalog://walk@1", "--catalog", root]) == 0
    assert capsys.readouterr().out.startswith("store walk: parquet")
    metrics = {}
    for store in (f"{s3_bucket}/stores/walk", "catalog://walk@1"):
        assert main(["evaluate", "--model", "run", "--store", store, "--split", "valid", "--catalog", root]) == 0
        result = json.loads((elsewhere / "run" / "eval-valid" / "metrics.json").read_text(encoding="utf-8"))
        metrics[store] = result["metrics"]
        assert result["store"] == store if store.startswith("s3://") else "cache" in result["store"]
    assert f"on {s3_bucket}/stores/walk [valid]" in capsys.readouterr().out
    remote, pulled = metrics[f"{s3_bucket}/stores/walk"], metrics["catalog://walk@1"]
    assert remote["confusion_matrix"] == pulled["confusion_matrix"]  # the same records, the same predictions
    assert remote["accuracy"] == pytest.approx(pulled["accuracy"])
    assert remote["statistics_baseline"]["accuracy"] == pytest.approx(pulled["statistics_baseline"]["accuracy"])


def test_load_holds_a_few_shards_locally_never_the_whole_store(tmp_path, s3_bucket, monkeypatch):
    """40 shards read from S3: each fetched to a temporary file while it is read and deleted after.
    The parallel interleave holds its cycle (8) plus as many prefetched inputs open: measured 16-17
    files at once, so at most half of these 40 (never the whole store), and none after."""
    import tempfile

    from mirdl.store.files import ObjectFileSystem
    from mirdl_tf.data import MAX_CYCLE_LENGTH, load

    fetch_dir = tmp_path / "tmp"
    fetch_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fetch_dir))
    write_store_40 = tmp_path / "store"
    from mirdl.store.build import write_store
    from small_stores import TASK
    write_store(write_store_40, {"train": make_records(n_tracks=40, n_segments=4)}, name="small",
                store_format="parquet", features={"x": {"shape": [3, 4], "dtype": "float32"}}, task=TASK,
                fingerprint="f" * 16, n_shards=40)
    upload_store(write_store_40, f"{s3_bucket}/many")
    peak, fetches = [0], [0]
    download = ObjectFileSystem.download

    def counting_download(self, path, local):  # the real download, then count the fetched files on disk
        download(self, path, local)
        fetches[0] += 1
        peak[0] = max(peak[0], sum(p.name.startswith(".mirdl-fetch-") for p in fetch_dir.iterdir()))

    monkeypatch.setattr(ObjectFileSystem, "download", counting_download)
    ds = load(f"{s3_bucket}/many", "train", batch_size=16, shuffle=False, standardize=False)
    assert sum(int(x.shape[0]) for x, _ in ds) == 160
    assert fetches[0] == 40 and 1 <= peak[0] <= 2 * MAX_CYCLE_LENGTH + 4 <= 40 // 2
    assert [p for p in fetch_dir.iterdir() if p.name.startswith(".mirdl-fetch-")] == []
