"""The record index of a split (mirdl.store.index) and reading records by position (read_counted)."""
import numpy as np
import pytest

from mirdl.errors import StoreError
from mirdl.store.adapters import adapter_for, read_shard
from mirdl.store.index import record_index
from mirdl.store.manifest import read_manifest, shard_paths
from small_stores import FORMATS


@pytest.mark.parametrize("fmt", FORMATS)
def test_index_rows_are_the_shards_records_and_read_counted_returns_them_by_position(small_store, fmt):
    store = small_store(fmt)
    manifest = read_manifest(store)
    index = record_index(store, manifest, "train")
    paths = shard_paths(store, manifest, "train")
    records = [list(read_shard(path, manifest=manifest)) for path in paths]
    assert index.shard_records == tuple(len(shard) for shard in records)
    assert index.track_id.tolist() == [r["track_id"] for shard in records for r in shard]
    assert index.label.tolist() == [int(r["label"]) for shard in records for r in shard]
    assert index.position.tolist() == [p for shard in records for p in range(len(shard))]
    assert record_index(store, manifest, "train") is index  # cached per process

    shard = records[0]
    counts = np.zeros(len(shard), np.int64)
    counts[[0, -1]] = [2, 1]
    batches = list(adapter_for(fmt).read_counted(paths[0], counts, manifest=manifest, batch_size=2))
    keys = [key for batch in batches for key in batch["key"]]
    assert keys == [shard[0]["key"], shard[0]["key"], shard[-1]["key"]]
    x = np.concatenate([batch["x"] for batch in batches])
    np.testing.assert_array_equal(x, np.stack([shard[0]["x"], shard[0]["x"], shard[-1]["x"]]))
    with pytest.raises(StoreError, match="the plan counts"):
        list(adapter_for(fmt).read_counted(paths[0], counts[:-1], manifest=manifest))
