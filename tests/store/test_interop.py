"""Other tools open a store directly: TFDS (uncompressed TFRecord), Hugging Face datasets and DuckDB
(Parquet), Croissant (every format; records of Parquet stores). Values compared with the records written."""
import importlib
import json

import numpy as np
import pytest

from mirdl.store.build import write_store
from mirdl.store.describe import CROISSANT_NAME, TFDS_INFO_NAME
from small_stores import TASK, build, make_records


def _by_key(records):
    return {r["key"]: r for r in records}


def test_tfds_builder_from_directory_reads_an_uncompressed_tfrecord_store(tmp_path):
    tfds = importlib.import_module("tensorflow_datasets")  # the [interop] extra: `make test` installs it
    build(tmp_path / "s", "tfrecord")
    builder = tfds.builder_from_directory(str(tmp_path / "s"))
    assert builder.info.features["label"].names == ["a", "b"]
    expected = _by_key(make_records()[:8])
    examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
    assert len(examples) == 8
    for example in examples:
        record = expected[example["key"].decode()]
        np.testing.assert_array_equal(example["x"], record["x"])  # the stored bytes, no arithmetic
        assert example["label"] == record["label"] and example["segment"] == record["segment"]


def test_gzip_tfrecord_store_says_tfds_cannot_read_it(tmp_path):
    records = make_records()
    write_store(tmp_path / "g", {"train": records}, name="small", store_format="tfrecord",
                features={"x": {"shape": [3, 4], "dtype": "float32"}}, task=TASK, fingerprint="f" * 16,
                compression="gzip")
    assert not (tmp_path / "g" / TFDS_INFO_NAME).exists()
    card = (tmp_path / "g" / "README.md").read_text()
    assert "TensorFlow Datasets cannot read this store" in card and "GZIP" in card


def test_huggingface_datasets_reads_classlabel_and_stored_shapes(tmp_path):
    datasets = importlib.import_module("datasets")
    build(tmp_path / "s", "parquet")
    loaded = datasets.load_dataset("parquet", data_dir=str(tmp_path / "s"), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(loaded) == ["test", "train"]
    train = loaded["train"]
    assert isinstance(train.features["label"], datasets.ClassLabel)
    assert train.features["label"].names == ["a", "b"]
    expected = _by_key(make_records()[:8])
    rows = train.with_format("numpy")
    for i in range(len(train)):
        row = rows[i]
        assert row["x"].shape == (3, 4)
        np.testing.assert_array_equal(row["x"], expected[row["key"]]["x"])
        assert row["label"] == expected[row["key"]]["label"]


def test_duckdb_reads_the_train_shards_by_glob(tmp_path):
    duckdb = importlib.import_module("duckdb")
    build(tmp_path / "s", "parquet")
    rows = duckdb.sql(f"SELECT key, label, x FROM read_parquet('{tmp_path / 's'}/*-train-*.parquet') "
                      "ORDER BY key").fetchall()
    expected = sorted(make_records()[:8], key=lambda r: r["key"])
    assert [row[0] for row in rows] == [r["key"] for r in expected]
    assert [row[1] for row in rows] == [int(r["label"]) for r in expected]
    np.testing.assert_array_equal(np.asarray(rows[0][2], dtype=np.float32), expected[0]["x"])


@pytest.mark.parametrize("fmt", ["parquet", "tfrecord", "hdf5"])
def test_croissant_validates_for_every_format_and_reads_parquet_records(tmp_path, fmt):
    mlc = importlib.import_module("mlcroissant")
    build(tmp_path / "s", fmt)
    path = tmp_path / "s" / CROISSANT_NAME
    description = json.loads(path.read_text())
    assert [rs["name"] for rs in description["recordSet"]] == ["train", "test"]
    dataset = mlc.Dataset(jsonld=str(path))  # validates; raises on an invalid description
    assert dataset.metadata.name == "small"
    if fmt != "parquet":
        return
    expected = _by_key(make_records()[:8])
    records = list(dataset.records("train"))
    assert len(records) == 8
    for record in records:
        key = record["train/key"].decode()
        np.testing.assert_array_equal(np.asarray(record["train/x"].tolist() if hasattr(record["train/x"], "tolist")
                                                 else record["train/x"], dtype=np.float32).reshape(3, 4),
                                      expected[key]["x"])
        assert record["train/label"] == expected[key]["label"]
