"""mirdl_tf.transfer: extracted stores (manifest, records, determinism, formats, refusals) and the linear probe."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mirdl.store import format as store_format
from mirdl.store.files import write_json_atomic
from mirdl.errors import ConfigError, StoreError
from mirdl.store.manifest import read_manifest
from mirdl.store.verify import check_shards
from mirdl_tf.transfer import TRANSFER_FEATURE, extract, probe, read_split
from mirdl.store.adapters import write_shard

FCN_ARGS = {"n_layers": 2, "base_filters": 2}


def quiet(line: str) -> None:
    pass


def random_store(known_store, tmp_path, name="out", fmt="parquet", task="single_label", **kwargs):
    source = known_store("tfrecord", task)
    out = tmp_path / name
    manifest = extract(source, out, random_model="fcn", model_args=FCN_ARGS, seed=kwargs.pop("seed", 0),
                       store_format=fmt, log=quiet, **kwargs)
    return source, out, manifest


@pytest.mark.parametrize("fmt", ["parquet", "tfrecord", "hdf5"])
def test_random_weight_store_manifest_and_records(known_store, tmp_path, fmt):
    source, out, manifest = random_store(known_store, tmp_path, fmt=fmt)
    assert read_manifest(out) == manifest
    check_shards(out, manifest, checksums=True)  # sizes and sha256 of every shard
    source_manifest = read_manifest(source)
    feature = manifest["features"][TRANSFER_FEATURE]
    assert feature["shape"] == [2 + 4] and feature["dtype"] == "float32"  # block_1 (2) + block_2 (4) channels
    spec = feature["spec"]
    assert spec["representation"] == "transfer" and spec["layers"] == ["block_1_out", "block_2_out"]
    assert spec["source_model"] == {"kind": "random", "name": "fcn", "args": FCN_ARGS, "seed": 0}
    assert spec["source_store_fingerprint"] == source_manifest.get("fingerprint")
    assert manifest["task"] == source_manifest["task"] and manifest["format"] == fmt
    assert manifest["format_version"] == store_format.FORMAT_VERSION
    assert len(feature["stats"]["mean"]) == 6 and feature["stats"]["split"] == "train"
    split = manifest["splits"]["train"]
    assert split["records"] == split["tracks"] == 6  # one record per track
    assert split["label_counts"] == [2, 2, 2]
    assert store_format.parse_shard_filename(split["shards"][0]["path"])["split"] == "train"
    track_ids, vectors, labels = read_split(out, "train")
    assert track_ids == [f"synth/t{i:03d}" for i in range(6)]
    assert vectors.shape == (6, 6) and np.isfinite(vectors).all()
    assert labels.tolist() == [i % 3 for i in range(6)]
    np.testing.assert_allclose(vectors.mean(axis=0), feature["stats"]["mean"], rtol=1e-5, atol=1e-6)
    card = (out / "README.md").read_text(encoding="utf-8")  # the dataset card of an extract store
    assert f"random fcn features (layers block_1_out, block_2_out)" in card
    assert f"from store {source_manifest['name']} (fingerprint {source_manifest['fingerprint']})" in card
    assert "| `transfer` | transfer | - | [6] | feature | float32 |" in card and (out / "croissant.json").is_file()
    # its plots: the label counts (a vector per track has no spectrogram to show), shown on the card
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["labels.png"]
    assert "(plots/labels.png)" in card


def test_same_seed_same_features_other_seed_other_features(known_store, tmp_path):
    _, first, _ = random_store(known_store, tmp_path, "first")
    _, again, _ = random_store(known_store, tmp_path, "again")
    _, other, _ = random_store(known_store, tmp_path, "other", seed=1)
    # Exact: same seed, same machine -> the same weights and the same features.
    np.testing.assert_array_equal(read_split(first, "train")[1], read_split(again, "train")[1])
    assert not np.allclose(read_split(first, "train")[1], read_split(other, "train")[1])


def test_chosen_layers_and_bad_layers(known_store, tmp_path):
    _, _, manifest = random_store(known_store, tmp_path, layers=["block_2_out"])
    assert manifest["features"][TRANSFER_FEATURE]["shape"] == [4]
    with pytest.raises(ConfigError, match=r"--layers \['block_9_out'\]: not feature layers .*block_1_out"):
        random_store(known_store, tmp_path, "bad", layers=["block_9_out"])


def test_destination_rules(known_store, tmp_path):
    source, out, _ = random_store(known_store, tmp_path)
    with pytest.raises(StoreError, match="holds a store already"):
        random_store(known_store, tmp_path)
    random_store(known_store, tmp_path, overwrite=True)  # replaced
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a mirdl store.*refusing"):
        extract(source, other, random_model="fcn", model_args=FCN_ARGS, overwrite=True, log=quiet)
    assert (other / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "out"]  # no temporary directories left


def test_refusals(known_store, tmp_path):
    frames = known_store("tfrecord", "frame_onset")
    with pytest.raises(ConfigError, match="frame labels; extract writes one vector per track"):
        extract(frames, tmp_path / "x", random_model="fcn", log=quiet)
    clip = known_store("tfrecord", "single_label")
    with pytest.raises(ConfigError, match="exactly one of"):
        extract(clip, tmp_path / "x", log=quiet)
    with pytest.raises(ConfigError, match="exactly one of"):
        extract(clip, tmp_path / "x", model_dir=tmp_path, random_model="fcn", log=quiet)
    with pytest.raises(StoreError, match="split 'test' is not in"):
        extract(clip, tmp_path / "x", random_model="fcn", splits=["test"], log=quiet)
    with pytest.raises(ConfigError, match=r"model_args\.n_layers=0 must be an integer >= 1"):
        extract(clip, tmp_path / "x", random_model="fcn", model_args={"n_layers": 0}, log=quiet)
    with pytest.raises(StoreError, match="not a mirdl train run directory"):
        extract(clip, tmp_path / "x", model_dir=tmp_path, log=quiet)
    assert not (tmp_path / "x").exists()


def test_multi_label_store(known_store, tmp_path):
    _, out, manifest = random_store(known_store, tmp_path, task="multi_label")
    assert manifest["splits"]["train"]["label_counts"] == [2, 2, 2]
    assert read_split(out, "train")[2].shape == (6, 3)


# --------------------------------------------------------------------------- probe
def vector_store(root, task_type, *, n=150, dims=5, seed=0, fmt="parquet"):
    """A store of vectors whose labels are a linear function of them (train / test splits)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dims)).astype(np.float32)
    if task_type == "single_label":
        labels = np.argmax(x[:, :4], axis=1).astype(np.int64)
        task = {"type": task_type, "label_shape": [], "label_dtype": "int64", "n_outputs": 4,
                "vocabulary": ["a", "b", "c", "d"]}
    elif task_type == "multi_label":
        labels = np.stack([x[:, 0] > 0, x[:, 1] > 0.5, np.zeros(n, bool)], axis=1).astype(np.float32)
        task = {"type": task_type, "label_shape": [3], "label_dtype": "float32", "n_outputs": 3,
                "vocabulary": ["x", "y", "never"]}
    else:
        labels = np.stack([2 * x[:, 0] - x[:, 1], x[:, 2]], axis=1).astype(np.float32)
        task = {"type": task_type, "label_shape": [2], "label_dtype": "float32", "n_outputs": 2,
                "vocabulary": ["u", "v"]}
    features = {TRANSFER_FEATURE: {"shape": [dims], "dtype": "float32"}}
    root.mkdir(parents=True)
    splits = {}
    for split, rows in (("train", range(0, n * 2 // 3)), ("test", range(n * 2 // 3, n))):
        records = [{"key": store_format.record_key(track_id=f"t{i:03d}", variant=0, segment=0), "track_id": f"t{i:03d}",
                    "variant": 0, "segment": 0, "start_frame": 0, TRANSFER_FEATURE: x[i], "label": labels[i]}
                   for i in rows]
        # A format_version 1 store, as mirdl 0.1 wrote it: still read (with a warning for HDF5/Parquet).
        path = root / store_format.shard_filename(name="vec", split=split, store_format=fmt, index=0, n_shards=1,
                                                  format_version=1)
        splits[split] = {"records": len(records), "shards": [write_shard(records, path=path, store_format=fmt,
                                                                        features=features, task=task).to_dict()]}
    manifest = {"format_version": 1, "name": "vec", "format": fmt, "compression": "none", "features": features,
                "task": task, "splits": splits}
    write_json_atomic(root / store_format.MANIFEST_NAME, manifest)
    return root


def test_probe_single_label(tmp_path):
    result = probe(vector_store(tmp_path / "s", "single_label"))
    assert (result["n_train"], result["n_test"], result["dimensions"]) == (100, 50, 5)
    assert result["metrics"]["accuracy"] >= 0.9 and result["metrics"]["chance_accuracy"] == 0.25
    assert "LogisticRegression" in result["model"]


def test_probe_multi_label_with_a_constant_tag(tmp_path):
    result = probe(vector_store(tmp_path / "m", "multi_label", fmt="tfrecord"))
    metrics = result["metrics"]
    assert metrics["tags_skipped"] == ["never"] and metrics["roc_auc_macro"] >= 0.9


def test_probe_regression(tmp_path):
    result = probe(vector_store(tmp_path / "r", "regression", fmt="hdf5"))
    assert result["metrics"]["r2"] >= 0.95 and "Ridge" in result["model"]


def test_probe_refusals(known_store, tmp_path):
    with pytest.raises(StoreError, match="has no feature 'transfer'"):
        probe(known_store("parquet", "single_label"))
    store = vector_store(tmp_path / "s", "single_label")
    with pytest.raises(StoreError, match="split 'valid' is not in the store"):
        probe(store, split_test="valid")
    with pytest.raises(StoreError, match="no such store directory"):
        probe(tmp_path / "missing")
    frame = known_store("tfrecord", "frame_onset")
    with pytest.raises(ConfigError, match="the probe is for clip tasks"):
        probe(frame)


def test_probe_of_random_weight_features_runs(known_store, tmp_path):
    _, out, _ = random_store(known_store, tmp_path)
    result = probe(out, split_test="train")  # the known store has only a train split
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
    assert json.loads(json.dumps(result)) == result  # JSON-able as it is


def test_extracted_store_streams_through_data_load_standardised(known_store, tmp_path):
    from mirdl_tf import data

    _, out, manifest = random_store(known_store, tmp_path)
    stats = manifest["features"][TRANSFER_FEATURE]["stats"]
    batches = list(data.load(out, "train", batch_size=3, shuffle=False, standardize=True))
    x = np.concatenate([b[0].numpy() for b in batches])
    _, vectors, _ = read_split(out, "train")
    mean, std = np.asarray(stats["mean"]), np.maximum(np.asarray(stats["std"]), data.STD_FLOOR)
    assert x.shape == vectors.shape
    # Undo the standardisation: per-dimension stats, no time axis to broadcast over.
    np.testing.assert_allclose(x * std + mean, vectors, rtol=1e-5, atol=1e-5)
