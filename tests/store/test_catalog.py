"""Catalog on a local root: publish (versions 1, 2, ...; concurrent publishers), catalog listing,
pull into the cache with verification, catalog:// in load() and mirdl verify."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mirdl.cli import main
from mirdl.errors import ConfigError, StoreError
from mirdl.store.catalog import list_catalog, pull, resolve_store
from small_stores import build

HERE = Path(__file__).parent


def test_publish_lists_and_pulls_versions(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    build(store, "parquet")
    root = tmp_path / "catalog"
    assert main(["publish", str(store), str(root)]) == 0
    assert "as catalog://small@1" in capsys.readouterr().out
    assert main(["publish", str(store), str(root), "--name", "small"]) == 0
    assert "as catalog://small@2" in capsys.readouterr().out
    assert main(["catalog", str(root), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["version"]) for r in rows] == [("small", 1), ("small", 2)]
    assert rows[0]["fingerprint"] == "f" * 16 and rows[0]["splits"] == {"train": 8, "test": 4}
    monkeypatch.setenv("MIRDL_CACHE", str(tmp_path / "cache"))
    assert main(["pull", "small@1", "--from", str(root)]) == 0
    out = capsys.readouterr().out
    assert "pulled; verified" in out and out.strip().endswith(str(tmp_path / "cache" / "small" / "1"))
    assert main(["pull", "small", "--from", str(root)]) == 0  # latest: version 2
    assert capsys.readouterr().out.strip().endswith(str(tmp_path / "cache" / "small" / "2"))
    assert main(["pull", "small@2", "--from", str(root)]) == 0
    assert "already in the cache" in capsys.readouterr().out
    assert main(["pull", "small@7", "--from", str(root)]) == 2
    assert "not in catalog" in capsys.readouterr().err


def test_catalog_reference_in_load_and_verify(tmp_path, monkeypatch, capsys):
    from mirdl_tf.data import load

    store = tmp_path / "store"
    build(store, "hdf5")
    root = tmp_path / "catalog"
    main(["publish", str(store), str(root)])
    with pytest.raises(ConfigError, match="MIRDL_CATALOG is not set"):
        monkeypatch.delenv("MIRDL_CATALOG", raising=False)
        resolve_store("catalog://small")
    monkeypatch.setenv("MIRDL_CATALOG", str(root))
    ds = load("catalog://small", "train", batch_size=4, shuffle=False, standardize=False)
    assert sum(int(x.shape[0]) for x, _ in ds) == 8
    assert main(["verify", "catalog://small@1"]) == 0
    assert "verified " in capsys.readouterr().out


def test_damaged_store_is_never_published(tmp_path):
    store = tmp_path / "store"
    manifest = build(store, "parquet")
    shard = store / manifest["splits"]["train"]["shards"][0]["path"]
    shard.write_bytes(b"x" + shard.read_bytes()[1:])
    with pytest.raises(StoreError, match="sha256"):
        from mirdl.store.catalog import publish
        publish(store, tmp_path / "catalog")
    assert list_catalog(tmp_path / "catalog") == []


PUBLISHER = """
import sys
sys.path.insert(0, {here!r})
from mirdl.store.catalog import publish
entry = publish({store!r}, {root!r}, name="lab")
print(entry.version)
"""


def publish_concurrently(store, root, n=4):
    """``n`` processes publishing the same store under one name at the same moment; their versions."""
    code = PUBLISHER.format(here=str(HERE), store=str(store), root=str(root))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ)) for _ in range(n)]
    results = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-1500:] for _, err in results]
    return sorted(int(out.strip().splitlines()[-1]) for out, _ in results)


@pytest.mark.slow
def test_concurrent_publishers_get_distinct_complete_versions_local(tmp_path):
    store = tmp_path / "store"
    build(store, "parquet")
    root = tmp_path / "catalog"
    assert publish_concurrently(store, root) == [1, 2, 3, 4]
    entries = list_catalog(root)
    assert [e.version for e in entries] == [1, 2, 3, 4]
    for entry in entries:
        assert main(["verify", entry.location]) == 0


def test_unsupported_scheme_is_a_config_error_not_a_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("hdfs://nn/stores/x", "s3:/bucket/x"):
        assert main(["verify", url]) == 2
        assert "error:" in capsys.readouterr().err
    assert main(["catalog", "ftp://host/catalog"]) == 2
    assert "scheme 'ftp' is not supported" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing created locally
