"""mirdl diff: same data across formats and last-bit float differences; every kind of difference found."""
import numpy as np
import pytest

from mirdl.cli import main
from mirdl.store.diff import diff_stores
from small_stores import build, make_records


def _nudged(records, scale):
    """The records with every feature value moved by ``scale`` relative (last-bit-like noise)."""
    return [dict(r, x=(r["x"] * (1 + scale)).astype(np.float32)) for r in records]


def test_same_records_in_other_format_and_shard_count_are_same_data(tmp_path, capsys):
    build(tmp_path / "a", "parquet", n_shards=2)
    build(tmp_path / "b", "hdf5", n_shards=3, records=_nudged(make_records(), 1e-7))
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "same data" in out and "split train: 8 records in both" in out
    result = diff_stores(tmp_path / "a", tmp_path / "b")
    assert 0 < result.features["x"].max_abs < 1e-5 and result.features["x"].values == 12 * 12
    assert result.features["x"].mean_abs <= result.features["x"].max_abs


def test_feature_outside_tolerance_is_different_with_max_and_mean(tmp_path, capsys):
    records = make_records()
    changed = [dict(r, x=r["x"] + np.float32(0.5)) if r["track_id"] == "t1" else r for r in records]
    build(tmp_path / "a", "parquet")
    build(tmp_path / "b", "parquet", records=changed)
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "3 records outside" in out and "DIFFERENT data" in out
    result = diff_stores(tmp_path / "a", tmp_path / "b")
    np.testing.assert_allclose(result.features["x"].max_abs, 0.5, rtol=1e-6)
    np.testing.assert_allclose(result.features["x"].mean_abs, 0.5 * 3 / 12, rtol=1e-6)
    # a loose enough tolerance accepts it
    assert diff_stores(tmp_path / "a", tmp_path / "b", atol=0.6).same


def test_missing_keys_and_other_labels_are_named(tmp_path, capsys):
    records = make_records()
    build(tmp_path / "a", "hdf5")
    relabelled = [dict(r, label=np.int64(1 - r["label"])) if r["key"] == records[0]["key"] else r
                  for r in records[1:8]] + records[8:]
    build(tmp_path / "b", "hdf5", records=[records[0] | {"label": np.int64(1)}] + relabelled)
    result = diff_stores(tmp_path / "a", tmp_path / "b")
    assert result.splits["train"].label_mismatches == 1
    assert result.splits["train"].first_label_mismatch == records[0]["key"]
    build(tmp_path / "c", "hdf5", records=records[1:])  # one train record less
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    out = capsys.readouterr().out
    assert f"1 only in A (e.g. {records[0]['key']})" in out


def test_other_spec_is_different(tmp_path):
    build(tmp_path / "a", "parquet")
    records = [dict(r, x=r["x"][:2]) for r in make_records()]
    from mirdl.store.build import write_store
    from small_stores import TASK
    write_store(tmp_path / "b", {"train": records[:8], "test": records[8:]}, name="small", store_format="parquet",
                features={"x": {"shape": [2, 4], "dtype": "float32"}}, task=TASK, fingerprint="e" * 16)
    result = diff_stores(tmp_path / "a", tmp_path / "b")
    assert not result.same and any("features.x.shape" in line for line in result.spec_differences)


def test_bad_tolerance_names_the_flag_and_missing_store_is_one_line(tmp_path, capsys):
    build(tmp_path / "a", "parquet")
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(tmp_path / "a"), str(tmp_path / "a"), "--atol", "-1"])
    assert exc.value.code == 2 and "--atol" in capsys.readouterr().err
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "nope")]) == 2
    assert "no such store directory" in capsys.readouterr().err
