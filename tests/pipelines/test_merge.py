"""Array jobs (``mirdl prepare --partition I/K`` + ``mirdl merge``) and ``mirdl prepare --update``.

One tiny corpus of 1 s synthetic tracks (plus a file that does not decode and a CSV row naming a
missing file, so errors are merged too), Parquet stores, ``--workers 1``. Every store is compared
with a single ``mirdl prepare`` of the same corpus: ``mirdl diff`` clean, same shards, manifest
equal up to the fields that may differ between runs, statistics within 1e-9 relative.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

from mirdl.cli import main  # noqa: E402
from mirdl.errors import StoreError  # noqa: E402
from mirdl.features import audio  # noqa: E402
from mirdl.features.synth import write_corpus  # noqa: E402
from mirdl.pipelines.config import PrepareConfig  # noqa: E402
from mirdl.pipelines.corpus import list_tracks  # noqa: E402
from mirdl.store.adapters import read_shard  # noqa: E402
from mirdl.store.diff import diff_stores  # noqa: E402
from mirdl.store.manifest import read_manifest, shard_paths  # noqa: E402

SR = 16000
N_TRACKS = 14
#: Manifest fields that differ between two runs of one job (docs/store-format.md), and the
#: statistics (compared with a tolerance).
VARIABLE = ("created", "provenance")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A synthetic corpus of N_TRACKS + 4 tracks (the last 4 are added by the update test)."""
    root = tmp_path_factory.mktemp("merge")
    listing = write_corpus(root / "synth", n_tracks=N_TRACKS + 4, seed=5, duration=1.0, formats=("wav", "flac"),
                           sample_rates=(16000, 22050))
    (root / "synth" / "audio" / "broken.wav").write_text("not audio", encoding="utf-8")
    return {"root": root, "listing": listing}


def write_labels(corpus, name, tracks, *, extra=("audio/broken.wav,pad,odd", "audio/missing.wav,pad,odd"),
                 folder=None) -> Path:
    rows = [f"{t.path},{t.label},{t.artist}" for t in tracks] + list(extra)
    path = (folder or corpus["root"] / "synth") / name
    path.write_text("path,label,artist\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_config(path: Path, *, csv: Path, out: Path, stratify=False) -> Path:
    config = {
        "name": "tiny",
        "seed": 1,
        "corpus": {"type": "csv", "csv": str(csv), "group_column": "artist"},
        "splits": {"fractions": {"train": 0.6, "valid": 0.2, "test": 0.2}, "group_by": "track",
                   "stratify": stratify},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": SR,
                      "params": {"n_fft": 512, "hop_length": 256, "n_mels": 24}}],
        "segment": {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.25, "pad": "silence"},
        "store": {"format": "parquet", "out": str(out), "shard_bytes": "24KB"},
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def prepare(*args) -> int:
    return main_status("prepare", *args, "--workers", "1")


def assert_same_store(a: Path, b: Path, *, ignore=VARIABLE):
    """``b`` holds what ``a`` holds: diff clean, same shards, same errors and tracks files,
    manifests equal but for ``ignore`` and the statistics (within 1e-9 relative)."""
    result = diff_stores(a, b, atol=0, rtol=0)
    assert result.same, "\n".join(result.lines())
    ma, mb = read_manifest(a), read_manifest(b)
    for name in ma["features"]:
        sa, sb = ma["features"][name].pop("stats"), mb["features"][name].pop("stats")
        assert sa["count"] == sb["count"] and sa["split"] == sb["split"]
        for key in ("mean", "std", "sum", "sum_sq"):
            np.testing.assert_allclose(sb[key], sa[key], rtol=1e-9, atol=0, err_msg=key)
    for key in ignore:
        ma.pop(key), mb.pop(key)
    assert ma == mb
    for name in ("errors.jsonl", "tracks.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert main_status("verify", b) == 0


def main_status(*args) -> int:
    try:
        return main([*map(str, args)]) or 0
    except SystemExit as exit_info:
        return exit_info.code


@pytest.fixture(scope="module")
def single_run(corpus):
    """The store one `mirdl prepare` writes of the first N_TRACKS tracks."""
    csv = write_labels(corpus, "labels.csv", corpus["listing"].tracks[:N_TRACKS])
    config = write_config(corpus["root"] / "single.json", csv=csv, out=corpus["root"] / "single")
    assert prepare("--config", config) == 3  # the broken file and the missing one failed
    return {"config": config, "csv": csv, "store": corpus["root"] / "single"}


@pytest.mark.parametrize("value", ["3/3", "a/b", "0/0", "-1/2", "1"])
def test_a_bad_partition_is_one_error_naming_the_flag(single_run, value, capsys):
    assert prepare("--config", single_run["config"], f"--partition={value}") == 2
    err = capsys.readouterr().err
    assert f"argument --partition: {value} must be I/K with integers 0 <= I < K" in err
    assert "Traceback" not in err


def test_three_partials_merge_into_the_single_run_store(corpus, single_run, capsys):
    partials = []
    config = write_config(corpus["root"] / "parts.json", csv=single_run["csv"], out=corpus["root"] / "whole")
    for index in range(3):  # one config for every array task: each writes whole.part-I-of-3
        assert prepare("--config", config, "--partition", f"{index}/3") in (0, 3)
        out = corpus["root"] / f"whole.part-{index}-of-3"
        manifest = read_manifest(out)
        assert manifest["partition"]["index"] == index and manifest["partition"]["count"] == 3
        assert manifest["partition"]["store_fingerprint"] == read_manifest(single_run["store"])["fingerprint"]
        assert manifest["corpus"]["listing_sha256"] == read_manifest(single_run["store"])["corpus"]["listing_sha256"]
        partials.append(out)
    tracks = [json.loads(line)["track_id"] for p in partials for line in (p / "tracks.jsonl").read_text().splitlines()]
    assert len(tracks) == len(set(tracks)) == N_TRACKS and all(1 <= len((p / "tracks.jsonl").read_text().splitlines())
                                                                for p in partials)
    merged = corpus["root"] / "merged"
    capsys.readouterr()
    assert main_status("merge", *reversed(partials), "--out", merged) == 0
    assert "merged 3 partial stores" in capsys.readouterr().out
    assert_same_store(single_run["store"], merged)
    # Provenance: the decoders the tracks used (libsndfile for this WAV/FLAC corpus), with their
    # versions, as in the single run: each partial lists its own tracks' decoders.
    single_provenance, merged_provenance = (read_manifest(p)["provenance"] for p in (single_run["store"], merged))
    assert single_provenance["decode"]["decoders_used"] == ["soundfile"]
    assert list(single_provenance["decoders"]) == ["soundfile"]
    assert {k: merged_provenance[k] for k in ("decoders", "decode")} == \
           {k: single_provenance[k] for k in ("decoders", "decode")}
    # The Python API does the same merge (mirdl.merge mirrors mirdl merge).
    import mirdl

    via_api = mirdl.merge(partials, corpus["root"] / "merged-api", quiet=True)
    assert isinstance(via_api, mirdl.Store)
    assert [s["sha256"] for e in read_manifest(via_api)["splits"].values() for s in e["shards"]] == \
           [s["sha256"] for e in read_manifest(merged)["splits"].values() for s in e["shards"]]
    with pytest.raises(StoreError, match="partition 2/3 missing"):
        mirdl.merge(partials[:2], corpus["root"] / "merged-api-2", quiet=True)
    # Same records by key hash and shard counts: the very shards of the single run.
    single, other = read_manifest(single_run["store"]), read_manifest(merged)
    assert {s: [x["sha256"] for x in e["shards"]] for s, e in single["splits"].items()} == \
           {s: [x["sha256"] for x in e["shards"]] for s, e in other["splits"].items()}
    assert max(len(e["shards"]) for e in single["splits"].values()) > 1
    # A task rerun after success, and merging again, are no-ops.
    capsys.readouterr()
    assert prepare("--config", config, "--partition", "1/3") == 0
    assert "up to date" in capsys.readouterr().out
    # Partials that do not belong together are refused with one line.
    assert main_status("merge", *partials, "--out", merged) == 0
    assert "up to date" in capsys.readouterr().out
    checks = [
        ((partials[0], partials[1]), "partition 2/3 missing"),
        ((partials[0], partials[1], partials[1], partials[2]), "partition 1/3 is given twice"),
        ((partials[0], partials[1], single_run["store"]), "is not a partial store"),
    ]
    other_k = corpus["root"] / "whole.part-1-of-2"
    assert prepare("--config", config, "--partition", "1/2") in (0, 3)
    checks.append(((partials[0], other_k, partials[2]), "are not parts of one store: partition 1/2 vs 0/3"))
    # A full disk while writing: one line, exit 5, nothing left behind.
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mirdl.pipelines.merge.write_shard", full_disk)
        capsys.readouterr()
        assert main_status("merge", *partials, "--out", corpus["root"] / "full") == 5
    err = capsys.readouterr().err.strip()
    assert err.startswith("mirdl merge: error: no space left on device writing") and len(err.splitlines()) == 1
    assert not [p for p in corpus["root"].iterdir() if p.name.startswith((".full", "full"))]
    for stores, message in checks:
        capsys.readouterr()
        assert main_status("merge", *stores, "--out", corpus["root"] / "bad") == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not (corpus["root"] / "bad").exists()


def test_update_copies_unchanged_tracks_and_equals_a_fresh_build(corpus, single_run, monkeypatch, capsys, tmp_path):
    store = tmp_path / "updated"
    shutil.copytree(single_run["store"], store)
    folder = tmp_path / "synth"  # a copy of the corpus (moved: track ids and listing entries are relative)
    shutil.copytree(corpus["root"] / "synth", folder)
    # The corpus loses two tracks, gains four, and one track's audio is rewritten.
    tracks = corpus["listing"].tracks
    removed, added = tracks[1:3], tracks[N_TRACKS:]
    changed = tracks[5]
    now = [t for t in tracks if t not in removed]
    csv = write_labels(corpus, "labels-v2.csv", now, folder=folder)
    changed_path = folder / changed.path
    data, rate = sf.read(changed_path, always_2d=True)
    sf.write(changed_path, data * 0.5, rate, subtype="PCM_16", format=sf.info(changed_path).format)
    config = write_config(tmp_path / "update.json", csv=csv, out=tmp_path / "unused")

    decoded = []
    real_decode = audio.decode
    monkeypatch.setattr(audio, "decode", lambda path, **kw: decoded.append(Path(path).name) or real_decode(path, **kw))
    capsys.readouterr()
    assert prepare("--config", config, "--update", store) == 3
    out = capsys.readouterr().out
    assert "version 1 -> 2" in out and "2 removed" in out
    # Never decoded again: only new and changed tracks (and the broken file, which is in no store).
    assert sorted(decoded) == sorted([Path(t.path).name for t in [*added, changed]] + ["broken.wav"])
    monkeypatch.undo()

    fresh = tmp_path / "fresh"
    assert prepare("--config", write_config(tmp_path / "fresh.json", csv=csv, out=fresh)) == 3
    assert read_manifest(store)["version"] == 2
    assert_same_store(fresh, store, ignore=(*VARIABLE, "version"))
    # The updated store is this corpus's store: a plain prepare into it is up to date.
    config_into = write_config(tmp_path / "into.json", csv=csv, out=store)
    capsys.readouterr()
    assert prepare("--config", config_into) == 0
    assert "up to date" in capsys.readouterr().out


def test_update_with_stratified_splits_keeps_every_existing_tracks_split(corpus, single_run, capsys):
    """splits.stratify deals each class out in exact fractions, so a fresh build of a grown corpus
    can move boundary tracks; --update keeps the old splits and gives new tracks the split the
    fresh (stratified) listing gives them."""
    tracks = corpus["listing"].tracks
    old_csv = write_labels(corpus, "strat-v1.csv", tracks[:8], extra=())
    store = corpus["root"] / "strat"
    assert prepare("--config", write_config(corpus["root"] / "strat1.json", csv=old_csv, out=store,
                                            stratify=True)) == 0
    old_splits = {json.loads(line)["track_id"]: json.loads(line)["listing"]["split"]
                  for line in (store / "tracks.jsonl").read_text().splitlines()}
    new_csv = write_labels(corpus, "strat-v2.csv", tracks[:N_TRACKS + 4], extra=())
    config = write_config(corpus["root"] / "strat2.json", csv=new_csv, out=store, stratify=True)
    fresh_listing, _ = list_tracks(*(lambda c: (c.corpus, c.splits))(PrepareConfig.from_file(config)))
    fresh = {track.track_id: track.split for track in fresh_listing}
    assert any(fresh[track_id] != split for track_id, split in old_splits.items()), \
        "this corpus should show the move (pick another seed)"
    assert prepare("--config", config, "--update", store) == 0
    manifest = read_manifest(store)
    now = {json.loads(line)["track_id"]: json.loads(line)["listing"]["split"]
           for line in (store / "tracks.jsonl").read_text().splitlines()}
    assert {track_id: now[track_id] for track_id in old_splits} == old_splits
    assert {track_id: split for track_id, split in now.items() if track_id not in old_splits} == \
           {track_id: fresh[track_id] for track_id in now if track_id not in old_splits}
    records = {}
    for split in manifest["splits"]:
        for path in shard_paths(store, manifest, split):
            for record in read_shard(path, manifest=manifest, features=[]):
                records[record["track_id"]] = split
    assert records == now


def test_update_refuses_what_it_cannot_reuse(corpus, single_run, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(single_run["store"], store)
    cases = []
    other = json.loads(single_run["config"].read_text())
    other["features"][0]["params"]["n_mels"] = 16
    (tmp_path / "other.json").write_text(json.dumps(other))
    cases.append((tmp_path / "other.json", "was written with another config"))
    first = Path(corpus["listing"].tracks[0].path)
    new_file = corpus["root"] / "synth" / "audio" / ("new_class" + first.suffix)
    shutil.copy(corpus["root"] / "synth" / first, new_file)
    grown = write_labels(corpus, "labels-class.csv", corpus["listing"].tracks[:N_TRACKS],
                         extra=(f"audio/{new_file.name},newclass,a",))
    cases.append((write_config(tmp_path / "grown.json", csv=grown, out=store), "the task changed"))
    for config, message in cases:
        capsys.readouterr()
        assert prepare("--config", config, "--update", store) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    (store / "tracks.jsonl").unlink()
    assert prepare("--config", single_run["config"], "--update", store) == 2
    assert "no tracks.jsonl" in capsys.readouterr().err
    assert prepare("--config", single_run["config"], "--update", tmp_path) == 2
    assert "is not a mirdl store" in capsys.readouterr().err


def run_script(script: Path, *, env, cwd, timeout=300) -> subprocess.CompletedProcess:
    """``bash SCRIPT`` in its own process group; on a timeout the whole group (bash and the mirdl
    it started) is killed by the group id of the process started here, and waited for."""
    process = subprocess.Popen(["bash", str(script)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.slow  # five processes (two array tasks, merge, verify): about 40 s
def test_the_slurm_array_scripts_run_as_documented(corpus, single_run, tmp_path):
    """docs/slurm/*.sbatch run by bash as SLURM would (its variables set; no SLURM here), K=2."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "slurm"
    store = tmp_path / "big"
    config = write_config(tmp_path / "big.json", csv=single_run["csv"], out=store)
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "K": "2", "CONFIG": str(config), "STORE": str(store), "VENV": str(venv),
           "SLURM_CPUS_PER_TASK": "1"}
    for task in range(2):
        done = run_script(docs / "prepare-array.sbatch", env={**env, "SLURM_ARRAY_TASK_ID": str(task)}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]  # exit 3 (a file failed) is not a failed task
    done = run_script(docs / "merge.sbatch", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verified" in done.stdout and not list(tmp_path.glob("big.part-*"))
    assert_same_store(single_run["store"], store)
