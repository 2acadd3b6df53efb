"""The reader snippets of docs/store-format.md run as written (plain tf.data, h5py, pyarrow: no mirdl)
against stores written by the store layer, and give the stored numbers."""
import re
from pathlib import Path

import numpy as np
import pytest

from mirdl.store.build import write_store
from mirdl.store.format import record_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "store-format.md"


def snippets() -> dict[str, str]:
    """Section heading (TFRecord, HDF5, Parquet) -> its python block."""
    text = DOC.read_text(encoding="utf-8")
    found = {}
    for heading in ("TFRecord", "HDF5", "Parquet"):
        section = text.split(f"### {heading}\n", 1)[1]
        found[heading] = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return found


@pytest.mark.parametrize("heading, fmt", [("TFRecord", "tfrecord"), ("HDF5", "hdf5"), ("Parquet", "parquet")])
def test_reader_snippet_runs_on_a_real_store(tmp_path, monkeypatch, heading, fmt):
    rng = np.random.default_rng(0)
    records = [{"key": record_key(track_id=f"t{i}", variant=0, segment=0), "track_id": f"t{i}", "variant": 0,
                "segment": 0, "start_frame": 0, "logmel": rng.standard_normal((5, 7)).astype(np.float32),
                "label": np.int64(i % 2)} for i in range(10)]
    task = {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": 2, "vocabulary": ["a", "b"]}
    write_store(tmp_path / "STORE", {"train": records}, name="demo", store_format=fmt,
                features={"logmel": {"shape": [5, 7], "dtype": "float32"}}, task=task, fingerprint="doc", n_shards=2)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippets()[heading], f"store-format.md:{heading}", "exec"), namespace)
    by_key = {r["key"]: r for r in records}
    if fmt == "tfrecord":
        got = [(x.numpy(), y.numpy()) for x, y in namespace["ds"]]
        assert len(got) == 10
        assert any(np.array_equal(got[0][0], r["logmel"]) for r in records)
    elif fmt == "hdf5":
        x, keys = namespace["x"], namespace["keys"]
        for xi, key in zip(x, keys):
            np.testing.assert_array_equal(xi, by_key[key]["logmel"])
    else:
        x, df = namespace["x"], namespace["df"]
        assert x.shape[1:] == (5, 7) and len(df) == len(x)
        ordered = sorted(by_key)  # the first shard's keys, sorted
        assert any(np.array_equal(x[0], by_key[key]["logmel"]) for key in ordered)
