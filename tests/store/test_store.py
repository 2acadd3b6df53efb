"""The store layer's promises: format version 2 on disk, manifests validated on open, shard paths
kept inside the store, verify, destination safety (never replace what is not a store), the lock,
stale temporaries swept, and fuzzed manifests/shards ending in StoreError only."""
import copy
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirdl.cli import main
from mirdl.errors import StoreError
from mirdl.store.adapters import read_shard
from mirdl.store.build import open_destination, write_store
from mirdl.store.files import (
    OWNER_NAME,
    DestinationLock,
    ProcessInfo,
    atomic_path,
    sweep_stale_temporaries,
    write_owner,
)
from mirdl.store.format import MANIFEST_NAME, MARKER_NAME, parse_shard_filename, shard_filename
from mirdl.store.manifest import (
    StoreFormatWarning,
    check_destination,
    is_mirdl_store,
    provenance,
    read_manifest,
    shard_paths,
    validate_manifest,
)
from mirdl.store.verify import verify

from small_stores import FORMATS, build, make_records


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ------------------------------------------------------------------------------------------ format 2 on disk
@pytest.mark.parametrize("fmt", FORMATS)
def test_version_2_store_layout(small_store, fmt):
    store = small_store(fmt)
    manifest = read_manifest(store)
    assert manifest["format_version"] == 2 and manifest["version"] == 1
    assert json.loads((store / MARKER_NAME).read_text())["kind"] == "mirdl-store"
    assert not (store / OWNER_NAME).exists()  # the owner file of the temporary folder is gone
    described = {"README.md", "croissant.json"} | ({"dataset_info.json", "features.json", "label.labels.txt"}
                                                   if fmt == "tfrecord" else set())  # card, Croissant, TFDS
    assert described <= {path.name for path in store.iterdir()}
    assert [p.name for p in (store / "plots").iterdir()] == ["labels.png"]  # the card's plots
    names = sorted(path.name for path in store.iterdir()
                   if path.name not in (MANIFEST_NAME, MARKER_NAME, "plots", *described))
    ext = {"tfrecord": None, "hdf5": ".h5", "parquet": ".parquet"}[fmt]
    for name in names:
        assert parse_shard_filename(name)["split"] in ("train", "test")
        assert name.endswith(ext) if ext else ".tfrecord-" in name
    assert manifest["splits"]["train"]["label_counts"] == [5, 3]  # t0 x3, t2 x2 (label 0); t1 x3 (label 1)
    prov = manifest["provenance"]
    assert prov["numpy"]["version"] == np.__version__ and "dispatch_available" in prov["numpy"]
    assert prov["libsndfile"] and prov["packages"]["numpy"] == np.__version__


def test_shard_names_of_both_versions_parse():
    v1 = shard_filename(name="d", split="train", store_format="parquet", index=1, n_shards=2, format_version=1)
    v2 = shard_filename(name="d", split="train", store_format="parquet", index=1, n_shards=2)
    assert (v1, v2) == ("d-train.parquet-00001-of-00002", "d-train-00001-of-00002.parquet")
    assert parse_shard_filename(v1) == {**parse_shard_filename(v2), "ext": "parquet"}


def test_provenance_names_the_cpu_dispatch_and_blas():
    info = provenance(command=["mirdl", "prepare"])
    assert info["command"] == ["mirdl", "prepare"]
    assert set(info["numpy"]) >= {"baseline", "dispatch_available", "blas", "version"}


def test_parquet_store_opens_with_plain_pyarrow_glob(small_store):
    """``*.parquet`` globs find the shards (DuckDB, pyarrow.dataset, Hugging Face)."""
    import pyarrow.dataset as ds

    store = small_store("parquet")
    table = ds.dataset(sorted(str(p) for p in store.glob("*-train-*.parquet")), format="parquet").to_table()
    assert table.num_rows == 8


# ------------------------------------------------------------------------------------------ validation
def mutate(manifest, path, value):
    target = manifest
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return manifest


@pytest.mark.parametrize("path, value, message", [
    (("splits", "train", "shards", 0, "bytes"), KeyError, r"splits.train.shards\[0\].bytes=None must be an integer"),
    (("splits", "train", "shards"), {"a": 1}, "splits.train.shards=.* must be a JSON list"),
    (("splits", "train", "records"), 99, "splits.train.records=99 does not equal the sum of its shards"),
    (("features", "x", "shape"), [3, -4], r"features.x.shape\[1\]=-4 must be an integer >= 1"),
    (("features", "x", "dtype"), "float64", "features.x.dtype='float64' must be one of"),
    (("features", "x", "stats", "mean"), [0.0, 0.0], r"features.x.stats.mean=.* must have shape \[3\]"),
    (("task", "label_dtype"), "float32", "task.label_dtype='float32' must be one of \\['int64'\\]"),
    (("task", "label_shape"), [2], "task.label_shape=.* must have 0 axes"),
    (("task", "type"), "genre", "task.type='genre' must be one of"),
    (("splits", "train", "shards", 0, "path"), "/etc/passwd", "must be a path inside the store"),
    (("splits", "train", "shards", 0, "path"), "../other/shard", "must be a path inside the store"),
    (("splits", "train", "shards", 0, "sha256"), "abc", "must be 64 lowercase hex digits"),
    (("format_version",), 3, "format_version=3 is not supported"),
    (("version",), 0, "version=0 must be an integer >= 1"),
])
def test_manifest_is_validated_on_open(small_store, path, value, message):
    store = small_store("hdf5")
    manifest = mutate(json.loads((store / MANIFEST_NAME).read_text()), path, value)
    (store / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=message):
        read_manifest(store)
    assert main(["inspect", str(store)]) == 2  # one line, no traceback (KeyError/TypeError before)


def test_symlinked_shard_out_of_the_store_is_refused(small_store, tmp_path):
    store = small_store("parquet")
    manifest = read_manifest(store)
    shard = store / manifest["splits"]["train"]["shards"][0]["path"]
    outside = tmp_path / "outside.parquet"
    shard.rename(outside)
    shard.symlink_to(outside)
    with pytest.raises(StoreError, match="outside the store"):
        shard_paths(store, manifest, "train")
    with pytest.raises(StoreError, match="outside the store"):
        verify(store)


def test_version_1_store_reads_with_one_warning(tmp_path):
    """A format_version 1 manifest (no marker, no version, no provenance) still reads."""
    store = tmp_path / "v1"
    manifest = build(store, "hdf5")
    v1 = {key: value for key, value in manifest.items() if key not in ("version", "provenance")}
    v1.update(format_version=1, mirdl_version="0.1.0")
    (store / MANIFEST_NAME).write_text(json.dumps(v1))
    (store / MARKER_NAME).unlink()
    with pytest.warns(StoreFormatWarning, match="carry no checksums"):
        assert read_manifest(store)["format_version"] == 1
    assert is_mirdl_store(store)  # recognised by its manifest keys
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreFormatWarning)
        assert verify(store)["records"] == 12


# ------------------------------------------------------------------------------------------ verify
@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_cli_passes_an_intact_store_and_names_a_corrupt_shard(small_store, fmt, capsys):
    store = small_store(fmt)
    assert main(["verify", str(store)]) == 0
    assert "12 records" in capsys.readouterr().out
    manifest = read_manifest(store)
    entry = manifest["splits"]["test"]["shards"][0]
    shard = store / entry["path"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    assert main(["verify", str(store)]) == 2
    err = capsys.readouterr().err
    assert entry["path"] in err and len(err.strip().splitlines()) == 1


def test_verify_counts_records_against_the_manifest(small_store):
    store = small_store("hdf5")
    manifest = json.loads((store / MANIFEST_NAME).read_text())
    # a consistent but false manifest: the shard holds other records than it says
    manifest["splits"]["test"]["shards"][0]["records"] += 1
    manifest["splits"]["test"]["records"] += 1
    (store / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="holds .* records, the manifest says"):
        verify(store)


# ------------------------------------------------------------------------------------------ destination
def test_overwrite_never_replaces_a_folder_that_is_not_a_store(tmp_path):
    """A user's folder with a foreign manifest.json is refused, with or without overwrite."""
    folder = tmp_path / "results"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "notes.txt").write_text("mine")
    (folder / MANIFEST_NAME).write_text(json.dumps({"files": ["a", "b"]}))
    for overwrite in (False, True):
        with pytest.raises(StoreError, match="not a mirdl store.*with or without --overwrite"):
            build(folder, overwrite=overwrite)
    assert (folder / "sub" / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_a_store_and_refuses_without(small_store):
    store = small_store("parquet")
    with pytest.raises(StoreError, match="holds a store already; pass --overwrite"):
        build(store)
    build(store, overwrite=True, records=make_records(n_tracks=2))
    assert read_manifest(store)["splits"]["test"]["records"] == 0


def test_up_to_date_needs_same_fingerprint_inputs_and_shard_sizes(small_store):
    store = small_store("parquet")
    manifest = json.loads((store / MANIFEST_NAME).read_text())
    manifest["corpus"] = {"inputs_sha256": "1" * 64}
    (store / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert check_destination(store, param="store.out", overwrite=False, fingerprint="f" * 16,
                             inputs_sha256="1" * 64) == "up to date"
    with pytest.raises(StoreError, match="input files changed"):
        check_destination(store, param="store.out", overwrite=False, fingerprint="f" * 16, inputs_sha256="2" * 64)
    with pytest.raises(StoreError, match="fingerprint ffffffffffffffff, this config gives"):
        check_destination(store, param="store.out", overwrite=False, fingerprint="0" * 16)
    shard = store / manifest["splits"]["train"]["shards"][0]["path"]
    shard.write_bytes(shard.read_bytes()[:-1])
    with pytest.raises(StoreError, match="damaged store .* has .* bytes"):
        check_destination(store, param="store.out", overwrite=False, fingerprint="f" * 16)
    assert check_destination(store, param="store.out", overwrite=True, fingerprint="f" * 16) == "write"


def test_destination_changed_during_the_run_is_not_replaced(tmp_path):
    out = tmp_path / "store"
    with pytest.raises(StoreError, match="changed while this job ran"):
        with open_destination(out, param="out", overwrite=False) as destination, destination.write() as tmp:
            (tmp / "x").write_text("new")
            out.mkdir()  # someone who ignores the lock creates the destination meanwhile
            (out / "theirs").write_text("kept")
    assert (out / "theirs").read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["store"]  # our temporary folder is gone


# ------------------------------------------------------------------------------------------ lock
def test_lock_refuses_a_second_writer_and_names_the_holder(tmp_path):
    out = tmp_path / "store"
    with DestinationLock(out):
        with pytest.raises(StoreError, match=f"another mirdl job writes it \\(pid {os.getpid()}"):
            DestinationLock(out).acquire()
    with DestinationLock(out):  # released: free again
        pass


def test_lock_of_a_dead_local_process_is_broken(tmp_path):
    out = tmp_path / "store"
    lock_path = tmp_path / ".store.lock"
    stale = ProcessInfo(pid=dead_pid(), host=ProcessInfo.current().host, started=0.0)
    lock_path.write_bytes(stale.to_bytes())
    with DestinationLock(out) as lock:
        assert [holder.pid for holder in lock.broken] == [stale.pid]
        assert ProcessInfo.from_bytes(lock_path.read_bytes()).pid == os.getpid()
    assert not lock_path.exists()


def test_lock_from_another_host_is_kept_until_the_timeout(tmp_path):
    out = tmp_path / "store"
    lock_path = tmp_path / ".store.lock"
    import time

    other = ProcessInfo(pid=1, host="other-node-17", started=time.time() - 3600)
    lock_path.write_bytes(other.to_bytes())
    with pytest.raises(StoreError, match="host 'other-node-17'.*60 min ago.*broken after 24.0 h"):
        DestinationLock(out).acquire()
    with DestinationLock(out, timeout=1800) as lock:  # older than this timeout: stale
        assert lock.broken[0].host == "other-node-17"


def test_two_concurrent_writers_one_wins_the_other_is_told(tmp_path):
    """Two processes write different stores to one destination: exactly one succeeds."""
    script = (
        "import sys, time\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from small_stores import build, make_records\n"
        "from mirdl.errors import StoreError\n"
        "from mirdl.store import build as b\n"
        "slow = b.write_shard\n"
        "def write_shard(*a, **k):\n"
        "    time.sleep(0.5)\n"
        "    return slow(*a, **k)\n"
        "b.write_shard = write_shard\n"
        "try:\n"
        "    build(sys.argv[1], records=make_records(n_tracks=int(sys.argv[2])))\n"
        "except StoreError as err:\n"
        "    print('refused:', err); sys.exit(2)\n"
    )
    out = tmp_path / "store"
    here = os.path.dirname(__file__)
    runs = [subprocess.Popen([sys.executable, "-c", script, str(out), str(n), here], stdout=subprocess.PIPE, text=True)
            for n in (4, 5)]
    results = [(run.wait(timeout=120), run.stdout.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 2]
    refused = next(text for code, text in results if code == 2)
    assert "another mirdl job writes it" in refused or "holds a store already" in refused
    assert verify(out)["records"] in (12, 15)


# ------------------------------------------------------------------------------------------ temporaries
def test_stale_temporaries_of_dead_runs_are_swept_others_left(tmp_path):
    out = tmp_path / "store"
    dead = tmp_path / f".store.tmp-{'a' * 32}"
    dead.mkdir()
    (dead / "spill.bin").write_bytes(b"x" * 1000)
    (dead / OWNER_NAME).write_bytes(ProcessInfo(pid=dead_pid(), host=ProcessInfo.current().host,
                                                started=0.0).to_bytes())
    alive = tmp_path / f".store.tmp-{'b' * 32}"
    alive.mkdir()
    write_owner(alive)  # this process: alive
    unknown = tmp_path / f".store.tmp-{'c' * 32}"
    unknown.mkdir()  # no owner file: not provably ours
    other = tmp_path / f".other.tmp-{'d' * 32}"
    other.mkdir()
    found = sweep_stale_temporaries(out)
    assert [(s.path.name, s.removed) for s in found] == [(dead.name, True), (unknown.name, False)]
    assert "removed" in found[0].describe() and "1000" not in found[0].describe()
    assert not dead.exists() and alive.exists() and unknown.exists() and other.exists()


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "half").write_text("x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_sha256_with_fsync_flushes_the_file_and_gives_the_same_digest(tmp_path, monkeypatch):
    """``sha256_file(fsync=True)`` (how a shard is hashed) flushes the file on a second thread
    while it hashes: the same digest, the fsync done before it returns, its error raised."""
    import hashlib
    import threading

    from mirdl.store import files

    path = tmp_path / "shard"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(threading.current_thread().name), real(fd)))
    assert files.sha256_file(path, fsync=True) == hashlib.sha256(data).hexdigest()
    assert len(synced) == 1 and synced[0] != threading.current_thread().name
    assert files.sha256_file(path) == hashlib.sha256(data).hexdigest() and len(synced) == 1

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        files.sha256_file(path, fsync=True)


# ------------------------------------------------------------------------------------------ fuzzing
_BASE = {}


def _base_store(tmp_path_factory, fmt):
    if fmt not in _BASE:
        root = tmp_path_factory.mktemp("fuzz") / fmt
        build(root, fmt, n_shards=1)
        _BASE[fmt] = root
    return _BASE[fmt]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, prefix + (i,))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_manifests_end_in_store_error(tmp_path_factory, data):
    """Any mutation of a manifest is accepted as valid or refused with StoreError, nothing else."""
    store = _base_store(tmp_path_factory, "parquet")
    manifest = json.loads((store / MANIFEST_NAME).read_text())
    paths = [p for p in _paths(manifest) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "delete"]))
        try:
            mutate(manifest, path, KeyError if action == "delete" else data.draw(json_values))
        except (KeyError, IndexError, TypeError):
            pass  # the path no longer exists after an earlier mutation
    candidate = copy.deepcopy(manifest)
    try:
        validated = validate_manifest(candidate)
    except StoreError:
        return
    # Accepted: then opening a split's shards must also end in data or StoreError.
    for split in validated["splits"]:
        try:
            for path in shard_paths(store, validated, split):
                if path.is_file():
                    list(read_shard(path, manifest=validated))
        except StoreError:
            pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["hdf5", "parquet"]), data=st.data())
def test_fuzzed_shard_bytes_end_in_store_error_or_true_data(tmp_path_factory, fmt, data):
    """Flip, cut or overwrite bytes of a shard: reading gives the original records or a StoreError."""
    store = _base_store(tmp_path_factory, fmt)
    manifest = read_manifest(store)
    shard = shard_paths(store, manifest, "train")[0]
    original = shard.read_bytes()
    expected = list(read_shard(shard, manifest=manifest))
    damaged = bytearray(original)
    kind = data.draw(st.sampled_from(["flip", "cut", "overwrite"]))
    at = data.draw(st.integers(0, len(original) - 1))
    if kind == "flip":
        damaged[at] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "cut":
        damaged = damaged[:at]
    else:
        damaged[at:at + 16] = data.draw(st.binary(min_size=16, max_size=16))
    target = tmp_path_factory.mktemp("damaged") / shard.name
    target.write_bytes(bytes(damaged))
    try:
        got = list(read_shard(target, manifest=manifest))
    except StoreError:
        return
    # Not detected: then it must be a byte no value depends on (padding, unused metadata).
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a["key"] == b["key"] and a["track_id"] == b["track_id"]
        np.testing.assert_array_equal(a["x"], b["x"])
        assert int(a["label"]) == int(b["label"])


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_a_flipped_bit_anywhere_in_a_shard_is_caught_or_harmless(tmp_path, fmt):
    """Bits flipped across the whole file (about 400 places, metadata and page headers included): the
    v1.10 HDF5 format checksums its metadata, Parquet's footer row count catches damaged page headers."""
    build(tmp_path / "s", fmt, n_shards=1)
    manifest = read_manifest(tmp_path / "s")
    shard = shard_paths(tmp_path / "s", manifest, "train")[0]
    original = shard.read_bytes()
    expected = [(r["key"], r["track_id"], r["variant"], r["segment"], r["start_frame"], r["x"].tobytes(),
                 int(r["label"])) for r in read_shard(shard, manifest=manifest)]
    target = tmp_path / shard.name
    silent = []
    for at in range(0, len(original), max(1, len(original) // 400)):
        damaged = bytearray(original)
        damaged[at] ^= 1 << (at % 8)
        target.write_bytes(bytes(damaged))
        try:
            got = [(r["key"], r["track_id"], r["variant"], r["segment"], r["start_frame"], r["x"].tobytes(),
                    int(r["label"])) for r in read_shard(target, manifest=manifest)]
        except StoreError:
            continue
        if got != expected:
            silent.append(at)
    assert silent == [], f"bit flips at these offsets changed the records without an error: {silent[:10]}"


def test_provenance_blas_is_numpys_whatever_else_is_loaded(monkeypatch):
    """The manifest names numpy's BLAS, not whichever library threadpoolctl lists first (scipy's
    openblas is listed once scipy is imported): the same provenance on every run of the same code."""
    import threadpoolctl

    from mirdl.store import manifest

    numpy_dir = os.path.dirname(np.__file__)
    ours = {"user_api": "blas", "internal_api": "openblas", "version": "numpy's", "architecture": "A",
            "threading_layer": "pthreads", "filepath": numpy_dir + ".libs/libscipy_openblas64_.so"}
    other = {"user_api": "blas", "internal_api": "openblas", "version": "scipy's", "architecture": "B",
             "threading_layer": "pthreads", "filepath": "/elsewhere/scipy.libs/libscipy_openblas.so"}
    seen = []
    for listed in ([ours], [other, ours], [ours, other]):
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda listed=listed: list(listed))
        seen.append(manifest.numpy_cpu_dispatch()["blas"]["version"])
    assert seen == ["numpy's"] * 3
