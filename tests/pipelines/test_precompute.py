"""End-to-end tests of the precompute job through ``run(argv)`` (and ``mirdl prepare`` once).

One tiny corpus: 8 synthetic tracks of 2 s (mixed formats, rates, stereo) + the odd files of
:func:`mirdl.features.synth.odd_files` + one CSV row naming a missing file. Each store format is
written once per module (in this process, ``--workers 1``) and checked from several sides.
"""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mirdl.features import audio, representations, segment  # noqa: E402
from mirdl.errors import ConfigError, StoreError  # noqa: E402
from mirdl.features.labels import onset_frames  # noqa: E402
from mirdl.features.spec import FeatureSpec  # noqa: E402
from mirdl.features.annotations import load_annotations  # noqa: E402
from mirdl.features.synth import ODD_FILES, write_corpus  # noqa: E402
from mirdl.pipelines.dead_letter import ErrorRecord  # noqa: E402
from mirdl.pipelines.precompute import (  # noqa: E402
    EXIT_ABORTED, EXIT_DISK_FULL, EXIT_OK, EXIT_SOME_FAILED, WORK_DIR, pipeline_options, run)
from mirdl.store.adapters import read_shard, write_shard  # noqa: E402
from mirdl.store.files import sha256_file  # noqa: E402
from mirdl.store.manifest import read_manifest, shard_paths  # noqa: E402
from mirdl.store.verify import check_shards  # noqa: E402

N_TRACKS = 8
SR = 16000
LOGMEL = {"name": "logmel", "representation": "logmel", "sample_rate": SR,
          "params": {"n_fft": 512, "hop_length": 256, "n_mels": 32}}
PATCH_FRAMES, HOP_FRAMES = 31, 16  # 0.5 s and 0.25 s at a 16 ms hop
FAILING = sorted(name for name, (_, decodes, _) in ODD_FILES.items() if not decodes)
DECODABLE = sorted(name for name, (_, decodes, _) in ODD_FILES.items() if decodes)


@pytest.fixture(scope="module")
def corpus(synth_corpus, odd_audio, tmp_path_factory):
    """A corpus folder: labels.csv (8 tracks + odd files + a missing file) and annotations.csv (8 tracks)."""
    root = tmp_path_factory.mktemp("prepare") / "corpus"
    tracks = synth_corpus.tracks[:N_TRACKS]
    for track in tracks:
        for relative in (track.path, track.onsets_path):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(synth_corpus.root / relative, root / relative)
    (root / "odd").mkdir()
    rows = [f"{t.path},{t.label},{t.artist}" for t in tracks]
    for name, path in sorted(odd_audio.items()):
        shutil.copy(path, root / "odd" / path.name)
        rows.append(f"odd/{path.name},pluck,odd")
    rows.append("audio/missing.wav,pad,odd")
    (root / "labels.csv").write_text("path,label,artist\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (root / "annotations.csv").write_text(
        "path,onsets\n" + "".join(f"{t.path},{t.onsets_path}\n" for t in tracks), encoding="utf-8")
    return {"root": root, "tracks": tracks, "good": [t.track_id for t in tracks]
            + [f"odd/{odd_audio[name].stem}" for name in DECODABLE],
            "failing": {str(root / "odd" / odd_audio[name].name) for name in FAILING}}


def write_config(path: Path, *, fmt="hdf5", out="store", compression="none", n_variants=1, extra_features=(),
                 shard_bytes="32KB", corpus="csv") -> Path:
    """A prepare config in ``path``'s folder, next to the corpus."""
    if corpus == "csv":
        corpus_section = {"type": "csv", "csv": "corpus/labels.csv", "group_column": "artist"}
        segment_section = {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.25, "pad": "silence"}
    else:
        corpus_section = {"type": "annotations", "csv": "corpus/annotations.csv", "annotation_column": "onsets",
                          "annotation_kind": "onsets"}
        segment_section = {"mode": "frames", "window_seconds": 0.5, "hop_seconds": 0.5, "onset_widen": 1}
    config = {
        "name": "tiny",
        "seed": 3,
        "corpus": corpus_section,
        "splits": {"fractions": {"train": 0.6, "valid": 0.2, "test": 0.2}, "group_by": "track"},
        "features": [LOGMEL, *extra_features],
        "augment": {"n_variants": n_variants, "time_stretch_rate": [0.8, 1.25], "pitch_shift_steps": None},
        "segment": segment_section,
        "store": {"format": fmt, "out": out, "compression": compression, "shard_bytes": shard_bytes},
        "dataset": {"license": "CC-BY-4.0 (synthetic)", "source": "mirdl synth-corpus, seed 0"},  # for the card
    }
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def all_records(store, manifest, split=None):
    splits = [split] if split else sorted(manifest["splits"])
    return [record for name in splits for path in shard_paths(store, manifest, name)
            for record in read_shard(path, manifest=manifest)]


STORES = {  # format -> (compression, variants, extra features)
    "tfrecord": ("gzip", 2, ()),
    "hdf5": ("lzf", 1, ({"name": "mfcc", "representation": "mfcc", "sample_rate": SR,
                         "params": {"n_fft": 512, "hop_length": 512, "n_mfcc": 13}},)),
    "parquet": ("zstd", 1, ()),
}


@pytest.fixture(scope="module")
def job(corpus):
    """``job(fmt)`` -> (status, store, config path): each format's store, written once."""
    done = {}

    def make(fmt):
        if fmt not in done:
            compression, variants, extra = STORES[fmt]
            config = write_config(corpus["root"].parent / f"prepare-{fmt}.yaml", fmt=fmt, out=f"store-{fmt}",
                                  compression=compression, n_variants=variants, extra_features=extra)
            status = run(["--config", str(config), "--workers", "1"])
            done[fmt] = (status, corpus["root"].parent / f"store-{fmt}", config)
        return done[fmt]

    return make


@pytest.mark.parametrize("fmt", sorted(STORES))
def test_store_holds_what_features_computes(job, corpus, fmt):
    status, store, _ = job(fmt)
    assert status == EXIT_SOME_FAILED
    manifest = read_manifest(store)
    check_shards(store, manifest, checksums=True)  # every shard exists with its size and sha256
    records = all_records(store, manifest)
    # Nothing lost: every good file (the converted 6-channel, 8 kHz, 96 kHz/24-bit ones too), nothing else.
    assert sorted({r["track_id"] for r in records}) == sorted(corpus["good"])
    assert {r["variant"] for r in records} == set(range(STORES[fmt][1]))
    spec = FeatureSpec.from_dict(LOGMEL)
    silence = representations.silence_column(spec)
    by_key = {r["key"]: r for r in records}
    for track_id in corpus["good"]:
        path = corpus["root"] / f"{track_id}.wav" if track_id.startswith("odd/") else \
            next(corpus["root"] / t.path for t in corpus["tracks"] if t.track_id == track_id)
        y, _ = audio.load(path, sample_rate=SR, channels=1)
        windows, starts = segment.patches(representations.compute(y, spec=spec), patch_frames=PATCH_FRAMES,
                                          hop_frames=HOP_FRAMES, pad="silence", pad_column=silence)
        assert sum(r["track_id"] == track_id and r["variant"] == 0 for r in records) == len(windows)
        for i, (window, start) in enumerate(zip(windows, starts)):
            record = by_key[f"{track_id}#v000#s{i:06d}"]
            # Exact: the store holds the bits features/ computes on this machine (stores are byte-identical
            # for the same machine type; another SIMD instruction set changes the last bits of both sides).
            np.testing.assert_array_equal(record["logmel"], window)
            assert record["start_frame"] == start
            assert manifest["task"]["vocabulary"][int(record["label"])] == \
                ("pluck" if track_id.startswith("odd/") else track_id.split("/")[1])


@pytest.mark.parametrize("fmt", sorted(STORES))
def test_manifest_counts_checksums_and_stats(job, fmt):
    _, store, _ = job(fmt)
    manifest = read_manifest(store)
    assert manifest["format"] == fmt and manifest["compression"] == STORES[fmt][0]
    assert len(manifest["fingerprint"]) == 16
    files = sorted(p.name for p in store.iterdir())
    listed = sorted(s["path"] for entry in manifest["splits"].values() for s in entry["shards"])
    described = ["README.md", "croissant.json", "plots"]  # the dataset card, its plots, Croissant (gzip: no TFDS files)
    assert files == sorted(listed + [".mirdl-store", "manifest.json", "errors.jsonl", "tracks.jsonl"] + described)  # no work files
    total_records = 0
    for split, entry in manifest["splits"].items():
        records = all_records(store, manifest, split)
        assert entry["records"] == len(records) == sum(s["records"] for s in entry["shards"])
        assert entry["tracks"] == len({r["track_id"] for r in records})
        for shard, path in zip(entry["shards"], shard_paths(store, manifest, split)):
            assert shard["bytes"] == path.stat().st_size and shard["sha256"] == sha256_file(path)
            keys = [r["key"] for r in read_shard(path, manifest=manifest)]
            assert keys == sorted(keys) and len(keys) == shard["records"]
        counts = np.bincount([int(r["label"]) for r in records], minlength=manifest["task"]["n_outputs"])
        assert entry["label_counts"] == counts.tolist()
        total_records += len(records)
    assert sum(len(e["shards"]) for e in manifest["splits"].values()) > len(manifest["splits"])  # 32KB shards
    train = all_records(store, manifest, "train")
    for name, entry in manifest["features"].items():
        frames = np.concatenate([r[name].astype(np.float64) for r in train], axis=-1)
        stats = entry["stats"]
        assert stats["split"] == "train" and stats["frames"] == frames.shape[-1]
        np.testing.assert_allclose(stats["mean"], frames.mean(axis=-1), rtol=1e-6)
        np.testing.assert_allclose(stats["std"], frames.std(axis=-1), rtol=1e-6)
        assert np.shape(stats["mean"]) == tuple(entry["shape"][:-1])
        # sufficient statistics (format version 2), for merging stores built in parts
        assert stats["count"] == frames.shape[-1]
        np.testing.assert_allclose(stats["sum"], frames.sum(axis=-1), rtol=1e-9)
        np.testing.assert_allclose(stats["sum_sq"], np.square(frames).sum(axis=-1), rtol=1e-9)
    corpus = manifest["corpus"]
    assert (corpus["files"], corpus["failed"], corpus["tracks"]) == (N_TRACKS + len(ODD_FILES) + 1,
                                                                     len(FAILING) + 1, N_TRACKS + len(DECODABLE))
    assert sum(corpus["duration_histogram"]["counts"]) == corpus["decoded_tracks"] == N_TRACKS + len(DECODABLE)


def test_tfrecord_shards_are_the_bytes_write_shard_writes(job, tmp_path):
    """TFRecord records are framed where they are computed and the shard stage copies the frames:
    every shard is, byte for byte, the file write_shard writes from its records (gzip here)."""
    _, store, _ = job("tfrecord")
    manifest = read_manifest(store)
    assert manifest["compression"] == "gzip"
    for split, entry in manifest["splits"].items():
        for shard, path in zip(entry["shards"], shard_paths(store, manifest, split)):
            again = write_shard(read_shard(path, manifest=manifest), path=tmp_path / path.name,
                                store_format="tfrecord", features=manifest["features"], task=manifest["task"],
                                compression=manifest["compression"])
            assert (tmp_path / path.name).read_bytes() == path.read_bytes()
            assert (again.records, again.bytes, again.sha256) == (shard["records"], shard["bytes"], shard["sha256"])


def test_bad_files_land_in_errors_jsonl_sorted(job, corpus):
    _, store, _ = job("hdf5")
    lines = (store / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    errors = [ErrorRecord.from_json(line) for line in lines]
    assert {e.path for e in errors if e.stage == "decode"} == corpus["failing"]
    assert [(e.stage, e.track_id) for e in errors if e.stage == "list"] == [("list", "audio/missing")]
    assert all(e.reason for e in errors)
    assert [e.path for e in errors] == sorted(e.path for e in errors)
    manifest = read_manifest(store)
    assert manifest["errors"] == {"file": "errors.jsonl", "count": len(errors), "failed_files": len(errors),
                                  "warnings": 0, "skipped_files": 0,
                                  "by_stage": {"decode": len(FAILING), "list": 1}}
    decoders = manifest["provenance"]["decoders"]
    assert "libsndfile" in decoders["soundfile"]  # which decoder versions wrote the store


def test_rerun_is_a_no_op_and_a_changed_config_needs_overwrite(job, capsys):
    _, store, config = job("hdf5")
    before = {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in store.iterdir() if p.is_file()}
    capsys.readouterr()
    assert run(["--config", str(config), "--workers", "1"]) == EXIT_OK
    assert "up to date" in capsys.readouterr().out
    assert {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in store.iterdir() if p.is_file()} == before
    changed = config.with_name("changed.yaml")
    changed.write_text(config.read_text().replace('"lzf"', '"gzip"'), encoding="utf-8")
    with pytest.raises(StoreError, match="fingerprint .* pass --overwrite"):
        run(["--config", str(changed), "--workers", "1"])
    assert {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in store.iterdir() if p.is_file()} == before


@pytest.mark.slow
def test_up_to_date_notices_touched_inputs_and_damaged_shards(corpus, tmp_path, capsys):
    """"Up to date" compares input sizes and times (not in the fingerprint) and the shards' sizes;
    --overwrite always rebuilds."""
    shutil.copytree(corpus["root"], tmp_path / "corpus", copy_function=shutil.copy2)
    config = write_config(tmp_path / "stale.yaml", fmt="parquet", out="store")
    assert run(["--config", str(config), "--workers", "1"]) == EXIT_SOME_FAILED
    store = tmp_path / "store"
    fingerprint = read_manifest(store)["fingerprint"]
    capsys.readouterr()
    assert run(["--config", str(config), "--workers", "1"]) == EXIT_OK
    assert "up to date" in capsys.readouterr().out
    assert run(["--config", str(config), "--workers", "1", "--overwrite"]) == EXIT_SOME_FAILED  # forced rebuild
    assert "up to date" not in capsys.readouterr().out
    touched = tmp_path / "corpus" / corpus["tracks"][0].path
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    with pytest.raises(StoreError, match="input files changed since the store was written"):
        run(["--config", str(config), "--workers", "1"])
    assert run(["--config", str(config), "--workers", "1", "--overwrite"]) == EXIT_SOME_FAILED
    assert read_manifest(store)["fingerprint"] == fingerprint  # times are never part of the fingerprint
    manifest = read_manifest(store)
    shard = store / manifest["splits"]["train"]["shards"][0]["path"]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(StoreError, match="damaged store"):
        run(["--config", str(config), "--workers", "1"])


@pytest.mark.slow
def test_a_second_job_into_the_same_store_is_refused_while_the_first_runs(corpus, tmp_path):
    """Two configs, one store.out: the second job is told another job writes there (it used to say
    "written" too, and the last rename won)."""
    import time

    shutil.copytree(corpus["root"], tmp_path / "corpus", copy_function=shutil.copy2)
    first = write_config(tmp_path / "first.yaml", fmt="hdf5", out="store")
    second = write_config(tmp_path / "second.yaml", fmt="parquet", out="store")
    job = subprocess.Popen([sys.executable, "-m", "mirdl", "prepare", "--config", str(first), "--workers", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".store.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), "the first job never took the lock"
    with pytest.raises(StoreError, match=f"another mirdl job writes it \\(pid {job.pid}"):
        run(["--config", str(second), "--workers", "1"])
    out, err = job.communicate(timeout=300)
    assert job.returncode == EXIT_SOME_FAILED, err
    assert read_manifest(tmp_path / "store")["format"] == "hdf5" and not lock.exists()


def test_max_error_rate_aborts_and_leaves_nothing(corpus, capsys):
    folder = corpus["root"].parent
    config = write_config(folder / "abort.yaml", out="store-abort")
    before = sorted(p.name for p in folder.iterdir())
    assert run(["--config", str(config), "--workers", "1", "--max-error-rate", "0.1"]) == EXIT_ABORTED
    assert sorted(p.name for p in folder.iterdir()) == before  # no store, no temporary directory
    err = capsys.readouterr().err
    assert f"{len(FAILING) + 1} of {N_TRACKS + len(ODD_FILES) + 1} files failed" in err and "[decode]" in err


@pytest.mark.slow
def test_spill_files_are_deleted_after_success_abort_and_failure(corpus, monkeypatch):
    """Records reach their shard through spill files in the temporary store; none outlive the run."""
    from mirdl.pipelines import transforms
    from mirdl.pipelines.spill import SpillWriter

    spilled = []  # every spill file appended to (--workers 1: the DoFns run in this process)

    class RecordingWriter(SpillWriter):
        def append(self, record):
            where = super().append(record)
            spilled.append(self.directory / self.name)
            return where

    monkeypatch.setattr(transforms, "SpillWriter", RecordingWriter)
    folder = corpus["root"].parent
    runs = [("spill-ok", [], EXIT_SOME_FAILED), ("spill-abort", ["--max-error-rate", "0.1"], EXIT_ABORTED)]
    for name, flags, status in runs:
        spilled.clear()
        config = write_config(folder / f"{name}.yaml", out=f"store-{name}")
        before = sorted(p.name for p in folder.iterdir())
        assert run(["--config", str(config), "--workers", "1", *flags]) == status
        files = set(spilled)
        assert files and all(f.parent.name == "spill" and f.parents[2].name.startswith(f".store-{name}.tmp-")
                             for f in files)  # <store temp dir>/_work/spill/<uuid>.spill
        assert not any(f.exists() or f.parent.exists() or f.parents[2].exists() for f in files)
        after = sorted(p.name for p in folder.iterdir())
        if status == EXIT_ABORTED:
            assert after == before  # no store, no temporary directory, no spill
        else:
            assert after == sorted(before + [f"store-{name}"])
            assert all(p.name == ".mirdl-store" or not p.name.startswith((".", "_"))
                       for p in (folder / f"store-{name}").iterdir())

    # A job that fails while writing shards (a full disk) leaves nothing either.
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(transforms, "write_shard", full_disk)
    spilled.clear()
    config = write_config(folder / "spill-fail.yaml", out="store-spill-fail")
    before = sorted(p.name for p in folder.iterdir())
    assert run(["--config", str(config), "--workers", "1"]) == EXIT_DISK_FULL
    assert spilled and not any(f.parents[2].exists() for f in spilled)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_frame_mode_aligns_onsets_and_exits_0(corpus):
    folder = corpus["root"].parent
    config = write_config(folder / "onsets.yaml", fmt="parquet", out="store-onsets", corpus="annotations",
                          n_variants=2)
    assert run(["--config", str(config), "--workers", "1"]) == EXIT_OK
    store = folder / "store-onsets"
    manifest = read_manifest(store)
    assert manifest["task"]["type"] == "frame_onset" and manifest["task"]["label_shape"] == [PATCH_FRAMES]
    assert manifest["errors"]["count"] == 0
    records = all_records(store, manifest)
    assert {r["variant"] for r in records} == {0, 1}
    checked = 0
    for track in corpus["tracks"]:
        onsets = load_annotations(corpus["root"] / track.onsets_path, kind="onsets").onsets
        mine = sorted((r for r in records if r["track_id"] == track.track_id and r["variant"] == 0),
                      key=lambda r: r["segment"])
        y, _ = audio.load(corpus["root"] / track.path, sample_rate=SR)
        n_frames = 1 + len(y) // 256  # centred frames of the track; past them the windows are padding (0)
        expected = np.zeros(mine[-1]["start_frame"] + PATCH_FRAMES, np.float32)
        expected[:n_frames] = onset_frames(onsets, n_frames=n_frames, sr=SR, hop_length=256, widen=1)
        for record in mine:
            start = record["start_frame"]
            np.testing.assert_array_equal(record["label"], expected[start:start + PATCH_FRAMES])
            checked += int(record["label"].sum() > 0)
    assert checked > 0
    # A changed config replaces the store with --overwrite (and only then).
    changed = config.with_name("onsets-changed.yaml")
    changed.write_text(config.read_text().replace('"n_variants": 2', '"n_variants": 1'), encoding="utf-8")
    with pytest.raises(StoreError, match="pass --overwrite"):
        run(["--config", str(changed), "--workers", "1"])
    assert run(["--config", str(changed), "--workers", "1", "--overwrite"]) == EXIT_OK
    replaced = read_manifest(store)
    assert replaced["fingerprint"] != manifest["fingerprint"] and replaced["augment"]["n_variants"] == 1
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no temporary leftovers


def test_beam_options_pass_through_unchanged():
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    from mirdl.cli import build_parser

    args = build_parser().parse_args(["prepare", "--config", "x.yaml", "--runner=FlinkRunner", "--parallelism",
                                      "8", "--workers", "3"])
    assert (args.workers, args.beam_args) == (3, ["--runner=FlinkRunner", "--parallelism", "8"])
    flink = pipeline_options(args.beam_args, workers=args.workers)
    assert flink.view_as(StandardOptions).runner == "FlinkRunner"
    assert flink.get_all_options()["parallelism"] == 8
    local = pipeline_options([], workers=2).view_as(DirectOptions)
    assert (local.direct_running_mode, local.direct_num_workers) == ("multi_threading", 2)
    assert pipeline_options([], workers=1).view_as(DirectOptions).direct_running_mode == "in_memory"


def test_bad_config_names_the_field(corpus):
    config = write_config(corpus["root"].parent / "bad.yaml", fmt="zarr")
    with pytest.raises(ConfigError, match=r"store\.format='zarr' must be one of \['hdf5', 'parquet', 'tfrecord'\]"):
        run(["--config", str(config)])
    config = write_config(corpus["root"].parent / "bad2.yaml", fmt="tfrecord", compression="lzf")
    with pytest.raises(ConfigError, match=r"store\.compression='lzf' must be one of \['none', 'gzip'\]"):
        run(["--config", str(config)])


BAD_FIELDS = [
    ({"name": "my store"}, r"name='my store' must be letters"),
    ({"colour": "red"}, r"colour is not a field"),
    ({"store": {"format": "hdf5", "out": "s", "shard_bytes": "64XB"}}, r"store\.shard_bytes='64XB' must be"),
    ({"store": {"format": "hdf5", "out": "s", "row_group_records": 10}}, r"store\.row_group_records is only"),
    ({"segment": {"mode": "clip", "patch_seconds": -1}}, r"segment\.patch_seconds=-1 must be > 0"),
    ({"segment": {"mode": "frames", "window_seconds": 1}}, r"segment\.mode='frames' does not fit corpus\.type"),
    ({"augment": {"n_variants": 0}}, r"augment\.n_variants=0"),
    ({"features": [LOGMEL, dict(LOGMEL, name="other", sample_rate=22050)]},
     r"features\[1\]\.sample_rate=22050 differs from features\[0\]\.sample_rate=16000"),
    ({"features": [dict(LOGMEL, representation="sonogram")]}, r"features\[0\]: spec\.representation='sonogram'"),
]


@pytest.mark.parametrize("change, message", BAD_FIELDS)
def test_every_bad_field_is_named(corpus, change, message):
    from mirdl.pipelines.config import PrepareConfig

    data = json.loads(write_config(corpus["root"].parent / "fields.yaml").read_text())
    with pytest.raises(ConfigError, match=message):
        PrepareConfig.from_dict({**data, **change}, base_dir=corpus["root"].parent)


@pytest.mark.slow
def test_cli_with_two_workers_writes_identical_shards(job, corpus, tmp_path):
    """`mirdl prepare --workers 2` (worker threads, a subprocess) == run(--workers 1) in this process."""
    _, store, config = job("hdf5")
    other = config.with_name("prepare-hdf5-workers2.yaml")
    other.write_text(config.read_text().replace('"store-hdf5"', '"store-hdf5-w2"'), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "mirdl", "prepare", "--config", str(other), "--workers", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_SOME_FAILED, result.stderr[-2000:]
    assert "errors.jsonl" in result.stdout
    mine, theirs = read_manifest(store), read_manifest(store.with_name("store-hdf5-w2"))
    assert theirs["fingerprint"] == mine["fingerprint"]
    # Bit identity is the promise: same machine (the subprocess inherits this environment) -> same bytes.
    assert theirs["splits"] == mine["splits"]  # same shard names, sizes and sha256
    assert (store / "errors.jsonl").read_bytes() == (store.with_name("store-hdf5-w2") / "errors.jsonl").read_bytes()


def test_inspect_cli_summarises_plots_and_verifies(job, tmp_path, capsys):
    from mirdl.cli import main

    _, store, _ = job("hdf5")
    assert main(["inspect", str(store), "--plot", str(tmp_path / "plots"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "store tiny: hdf5" in out and "task single_label" in out and "[decode]" in out
    assert "verified " in out and "every record match the manifest" in out
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["durations.png", "examples.png", "labels.png"]
    shard = next(p for p in store.iterdir() if p.name.startswith("tiny-"))
    damaged = tmp_path / "damaged"
    shutil.copytree(store, damaged)
    (damaged / shard.name).write_bytes(b"x" + (damaged / shard.name).read_bytes()[1:])
    assert main(["inspect", str(damaged), "--verify"]) == 2
    assert "sha256 does not match" in capsys.readouterr().err


def test_split_warnings_reach_the_manifest_and_inspect_shows_counts_per_class(job):
    from mirdl.pipelines.config import PrepareConfig
    from mirdl.pipelines.corpus import list_tracks, split_warnings
    from mirdl.store.summary import summary

    status, store, config_path = job("parquet")
    config = PrepareConfig.from_file(config_path)
    tracks, _ = list_tracks(config.corpus, config.splits)
    expected = split_warnings(tracks, split_names=list(config.splits.names), min_tracks=2)
    manifest = read_manifest(store)
    assert expected and manifest["corpus"]["split_warnings"] == expected  # 8 tracks in 3 splits: thin classes
    text = summary(store)
    assert f"  warning: {expected[0]}" in text
    vocabulary = manifest["task"]["vocabulary"]
    lines = text.splitlines()
    header = lines.index("records per class:")
    rows = {line.split()[0]: [int(n) for n in line.split()[1:]] for line in lines[header + 2:header + 2 + len(vocabulary)]}
    assert rows == {name: [manifest["splits"][split]["label_counts"][i] for split in manifest["splits"]]
                    for i, name in enumerate(vocabulary)}


def test_dataset_card_with_plots_counts_command_and_errors(job):
    _, store, _ = job("parquet")
    manifest = read_manifest(store)
    card = (store / "README.md").read_text(encoding="utf-8")
    assert card.startswith("# tiny\n")
    assert "**License of the audio**: CC-BY-4.0 (synthetic)" in card  # the config's dataset section
    assert "**Source of the audio**: mirdl synth-corpus, seed 0" in card
    assert json.loads((store / "croissant.json").read_text())["license"] == "CC-BY-4.0 (synthetic)"
    assert f"`{manifest['fingerprint']}`" in card
    assert "| `logmel` | logmel | 16000 |" in card  # the feature spec, one table row per feature
    for split, entry in manifest["splits"].items():  # splits with tracks, records, shards, MB
        assert f"| {split} | {entry['tracks']} | {entry['records']} | {len(entry['shards'])} |" in card
    train = manifest["splits"]["train"]["label_counts"]
    for i, word in enumerate(manifest["task"]["vocabulary"]):  # per-class counts of every split
        row = [f"`{word}`"] + [str(e["label_counts"][i]) for e in manifest["splits"].values()]
        assert "| " + " | ".join(row) + " |" in card and train is not None
    assert "```\n" + " ".join(manifest["provenance"]["command"]) + "\n```" in card  # the exact command
    assert f"| numpy | {manifest['provenance']['packages']['numpy']} |" in card
    errors = manifest["errors"]
    assert f"{errors['count']} error records ({errors['failed_files']} failed files" in card
    plots = sorted(p.name for p in (store / "plots").iterdir())
    assert plots and all(f"(plots/{name})" in card for name in plots)
    assert not any(split in name for name in plots for split in manifest["splits"])  # no split word in plot names


def test_dataset_section_names_a_bad_field(corpus):
    from mirdl.pipelines.config import PrepareConfig

    config = json.loads(write_config(corpus["root"].parent / "dataset.yaml").read_text())
    assert PrepareConfig.from_dict(config, base_dir=corpus["root"].parent).dataset["license"].startswith("CC-BY")
    for section, message in (({"licence": "MIT"}, "dataset.licence is not a field"),
                             ({"license": 3}, "dataset.license=3 must be a non-empty string")):
        with pytest.raises(ConfigError, match=message):
            PrepareConfig.from_dict({**config, "dataset": section}, base_dir=corpus["root"].parent)


# ------------------------------------------------------------------------------------------ when the run goes wrong
def stderr_lines(text):
    """What a job printed on stderr, without its progress bar (tqdm redraws it after a \\r)."""
    return [line for line in re.split(r"[\r\n]", text) if line.strip() and not line.startswith("prepare:")]


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)`` -> a folder of a new tmpfs of ``size`` (e.g. "128k"), unmounted after the test;
    the test is skipped where mounting is not permitted (not root, no CAP_SYS_ADMIN, not Linux)."""
    mounted = []

    def mount(size):
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        try:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                    capture_output=True, text=True, timeout=30)
        except OSError as err:
            pytest.skip(f"cannot mount a tmpfs here: {err}")
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True, timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_is_one_line_exit_5_and_leaves_nothing(corpus, tmpfs, workers):
    """A real full disk: the store's filesystem (a 128 KB tmpfs) fills up with the spill files."""
    disk = tmpfs("128k")
    config = write_config(corpus["root"].parent / f"full-{workers}.yaml", out=str(disk / "store"), n_variants=2)
    result = subprocess.run([sys.executable, "-m", "mirdl", "prepare", "--config", str(config), "--workers",
                             str(workers)], capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_DISK_FULL == 5, result.stderr[-3000:]
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert re.fullmatch(rf"mirdl prepare: error: no space left on device writing {re.escape(str(disk / 'store'))} "
                        r"\(0\.(\d{3}) MB free there\); nothing was written", lines[0]), lines[0]
    assert float(re.search(r"\((\S+) MB", lines[0])[1]) == pytest.approx(0.131, abs=0.01)  # all 128 KiB again
    assert list(disk.iterdir()) == []  # no store, no temporary directory


@pytest.mark.slow
@pytest.mark.parametrize("where", ["spill", "tfrecord writer"])
def test_full_disk_inside_a_step_is_one_line_and_exit_5(corpus, monkeypatch, capfd, where):
    """ENOSPC raised where the job writes (as a full disk would, where no tmpfs can be mounted):
    Beam wraps it in a RuntimeError (and logs it); the job still prints one line."""
    from mirdl.pipelines import transforms
    from mirdl.pipelines.spill import SpillWriter

    if where == "spill":
        class FullSpill(SpillWriter):  # append() of other formats goes through append_bytes() too
            def append_bytes(self, *pieces):
                if self.bytes_written:
                    raise OSError(errno.ENOSPC, "No space left on device")  # a full write() names no file
                return super().append_bytes(*pieces)

        monkeypatch.setattr(transforms, "SpillWriter", FullSpill)
    else:
        def full_shard(frames, *, path, **kwargs):  # what mirdl.store.tfrecord's writer raises
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr(transforms, "write_tfrecord_frames", full_shard)
    folder = corpus["root"].parent
    config = write_config(folder / "inject.yaml", out="store-inject", fmt="tfrecord")
    before = sorted(p.name for p in folder.iterdir())
    capfd.readouterr()
    assert run(["--config", str(config), "--workers", "1"]) == EXIT_DISK_FULL
    err = capfd.readouterr().err
    assert len(stderr_lines(err)) == 1 and re.fullmatch(
        rf"mirdl prepare: error: no space left on device writing {re.escape(str(folder / 'store-inject'))} "
        r"\([\d,.]+ MB free there\); nothing was written", stderr_lines(err)[0]), err[-3000:]
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.fixture(scope="module")
def long_job(tmp_path_factory):
    """A config whose job still runs seconds after its first file is done: 48 tracks of 4 s, 2 variants."""
    folder = tmp_path_factory.mktemp("interrupt")
    write_corpus(folder / "corpus", n_tracks=48, duration=4.0, formats=("wav",))
    return write_config(folder / "long.yaml", out="store-long", n_variants=2)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_is_one_line_exit_130_and_leaves_nothing(long_job, workers):
    """Ctrl-C at the terminal (SIGINT to the job's process group: the driver and its worker processes)."""
    folder = long_job.parent
    before = sorted(p.name for p in folder.iterdir())
    job = subprocess.Popen([sys.executable, "-m", "mirdl", "prepare", "--config", str(long_job), "--workers",
                            str(workers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        # Interrupt once the workers are busy: a file is done, the temporary store holds spill files.
        deadline = time.monotonic() + 240
        while not any(path.read_text() for path in folder.glob(f".store-long.tmp-*/{WORK_DIR}/progress.log")
                      if path.exists()):
            assert job.poll() is None, f"the job ended before it was interrupted: {job.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no file done after 240 s"
            time.sleep(0.1)
        os.killpg(job.pid, signal.SIGINT)
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 130, err[-3000:]
    assert stderr_lines(err) == ["mirdl prepare: interrupted; nothing was written"], err[-3000:]
    assert sorted(p.name for p in folder.iterdir()) == before  # no store, no temporary directory
    for _ in range(100):  # and no worker process outlives the driver
        try:
            os.killpg(job.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("worker processes of the interrupted job are still running")
