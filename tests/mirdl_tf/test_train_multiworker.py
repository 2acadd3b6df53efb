"""Multi-worker training: ``mirdl train --workers 2`` (two processes, MultiWorkerMirroredStrategy on
127.0.0.1), the process launcher's bounded waits, and ``TF_CONFIG`` parsing.

The end-to-end test trains the known-answer store (24 records in 3 shard files of uneven size, so
one worker holds more records than the other and pads) for one epoch and checks what a user of a
cluster would check: the run directory written by worker 0 only, every train record trained on
exactly once by exactly one worker (from the keys each worker logs with ``--audit``), each worker
holding the shard files of its round-robin share, the same final weights on both workers, and
the same weights as one process replaying the workers' steps (padding copies at loss weight 0).
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mirdl.cli import main
from mirdl.errors import ConfigError, MirdlError
from mirdl.store.adapters import read_shard
from mirdl.store.manifest import read_manifest, shard_paths
from mirdl_tf.train import Cluster, cluster_from_env, run_workers

h5py = pytest.importorskip("h5py")


def _weights(source) -> dict[str, np.ndarray]:
    """Every dataset of a Keras weights file (path or file object), by its path in the file."""
    values = {}
    with h5py.File(source, "r") as handle:
        handle.visititems(lambda name, item: values.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return values


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
# Keras 3.15 converting TF tensors with np.array under numpy 2 in the replay (harmless).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_two_workers_train_one_epoch_on_disjoint_shards(known_store, store_copy, tmp_path, monkeypatch, capfd):
    store = store_copy(known_store("parquet", "single_label", n_shards=3))
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["splits"]["valid"] = manifest["splits"]["train"]  # a validation split: the same records
    (store / "manifest.json").write_text(json.dumps(manifest))
    manifest = read_manifest(store)
    files = shard_paths(store, manifest, "train")
    keys_of = [[record["key"] for record in read_shard(path, manifest=manifest)] for path in files]
    assert len(files) == 3 and len({len(keys) for keys in keys_of}) > 1  # uneven shards: padding happens
    config = tmp_path / "train.yaml"
    # No dropout, so that the steps can be replayed in this process (below).
    config.write_text(f"store: {store}\nmodel: {{name: fcn, args: {{n_layers: 2, base_filters: 2, dropout: 0.0}}}}\n"
                      "epochs: 1\nbatch_size: 4\nvalid_split: valid\nseed: 0\n"
                      # the schedule and class weights take their multi-worker code paths too
                      "optimizer: {schedule: cosine}\nclass_weight: balanced\n")
    scratch = tmp_path / "scratch"  # the workers' (and the launcher's) temporary folders go here
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    out, audit = tmp_path / "run", tmp_path / "audit"

    assert main(["train", "--config", str(config), "--out", str(out), "--workers", "2", "--worker-timeout", "300",
                 "--audit", str(audit)]) == 0

    printed = capfd.readouterr().out
    assert "2 workers (127.0.0.1:" in printed and "whole shard files, round robin" in printed
    assert "records per worker" in printed and "padding steps per worker" in printed
    assert {p.name for p in out.iterdir()} >= {"best.keras", "last.keras", "state.json", "metrics.json",
                                               "model_info.json", "train_config.yaml"}
    assert list(scratch.iterdir()) == []  # worker 1's run folder and the launcher's logs are removed
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 1 and state["workers"] == 2 and np.isfinite(state["history"][0]["val_loss"])
    assert state["history"][0]["learning_rate"] == pytest.approx(1e-3)

    # Every train record once per epoch, each worker on its round-robin share of the files.
    seen = [json.loads((audit / f"worker-{i}.json").read_text())["epochs"] for i in range(2)]
    assert [len(epochs) for epochs in seen] == [1, 1]
    keys = [seen[i][0]["keys"] for i in range(2)]
    assert sorted(keys[0] + keys[1]) == sorted(k for shard in keys_of for k in shard)
    assert len(set(keys[0] + keys[1])) == len(keys[0]) + len(keys[1])
    for i in range(2):
        assert sorted(keys[i]) == sorted(k for shard in keys_of[i::2] for k in shard)
    assert [seen[i][0]["records"] for i in range(2)] == [len(keys[0]), len(keys[1])]
    assert f"records per worker {len(keys[0])} + {len(keys[1])} = 24" in printed
    assert seen[0][0]["steps"] == seen[1][0]["steps"]  # the same steps; the smaller share padded
    assert sum(seen[i][0]["padding_steps"] for i in range(2)) == abs(-(-len(keys[0]) // 2) - -(-len(keys[1]) // 2))

    # The same final weights (trainable and batch-norm statistics) on both workers, and in the chief's checkpoint.
    first, second = _weights(audit / "worker-0.weights.h5"), _weights(audit / "worker-1.weights.h5")
    assert first.keys() == second.keys() and any("conv2d" in name for name in first)
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=1e-6, atol=1e-7, err_msg=name)
    with zipfile.ZipFile(out / "last.keras") as archive:
        saved = _weights(io.BytesIO(archive.read("model.weights.h5")))
    for name in (name for name in first if name.startswith("layers/")):
        np.testing.assert_allclose(saved[name], first[name], rtol=1e-6, atol=1e-7, err_msg=name)

    # Each step is one process's step on the real records of the global batch: replaying the workers'
    # batches (padded as documented, copies at weight 0) gives the same trained weights.
    replayed = _replay_epoch(config, keys, per_worker=2, path=tmp_path / "replayed.weights.h5")
    trainable = [name for name in first if name.startswith("layers/")
                 and not re.search(r"batch_normalization(_\d+)?/vars/[23]$", name)]  # not the moving statistics
    assert len(trainable) >= 6
    for name in trainable:
        np.testing.assert_allclose(replayed[name], first[name], rtol=1e-4, atol=1e-6, err_msg=name)


def _replay_epoch(config_path: Path, keys: list[list[str]], *, per_worker: int, path: Path) -> dict[str, np.ndarray]:
    """One epoch in this process, step by step as the workers took them; the final weights."""
    import keras
    import tensorflow as tf

    from mirdl_tf import data
    from mirdl_tf.train import TrainConfig, build_for_store, model_inputs

    config = TrainConfig.from_file(config_path)
    records = {}
    for x, y, meta in data.load(config.store, "train", batch_size=64, shuffle=False, crop="center",
                                with_metadata=True):
        records.update({k.decode(): (xi, yi) for k, xi, yi in zip(meta["key"].numpy(), x, y)})
    keras.utils.set_random_seed(config.seed)
    model = build_for_store(config.model, data.describe(config.store))
    optimizer = keras.optimizers.Adam(config.optimizer.learning_rate)
    loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    steps = max(-(-len(part) // per_worker) for part in keys)
    for step in range(steps):
        batches = []
        for part in keys:
            real = part[step * per_worker:(step + 1) * per_worker]
            filler = part[:per_worker]  # the worker's first batch
            chosen = real + [filler[i % len(filler)] for i in range(per_worker - len(real))]
            batches.append((tf.stack([records[k][0] for k in chosen]), tf.stack([records[k][1] for k in chosen]),
                            tf.constant([1.0] * len(real) + [0.0] * (per_worker - len(real)))))
        count = sum(float(tf.reduce_sum(mask)) for _, _, mask in batches)
        with tf.GradientTape() as tape:
            total = sum(tf.reduce_sum(mask * loss(y, model(model_inputs(x), training=True))) for x, y, mask in batches)
            mean = total / count
        optimizer.apply_gradients(zip(tape.gradient(mean, model.trainable_variables), model.trainable_variables))
    model.save_weights(path)
    return _weights(path)


# --------------------------------------------------------------------------- launcher: bounded waits
def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_failing_worker_stops_the_others(tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    sleeper = _python(f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)")
    failing = _python("import sys, time; time.sleep(1); print('no route to worker 0', file=sys.stderr); sys.exit(3)")
    start = time.monotonic()
    with pytest.raises(MirdlError, match=r"worker 1 exited with status 3 \(no route to worker 0\); the other "
                                         r"workers were stopped"):
        run_workers([sleeper, failing], envs=[os.environ, os.environ], log_dir=tmp_path / "logs", timeout=60,
                    grace=5)
    assert time.monotonic() - start < 30
    assert _pid_gone(int(pid_file.read_text()))


def test_a_hung_worker_times_out_with_a_clear_error(tmp_path):
    pid_files = [tmp_path / f"w{i}.pid" for i in range(2)]
    hung = [_python(f"import os, time; open({str(p)!r}, 'w').write(str(os.getpid())); time.sleep(120)")
            for p in pid_files]
    start = time.monotonic()
    with pytest.raises(MirdlError, match=r"worker\(s\) 0, 1 still running after 2 s \(--worker-timeout\): stopped"):
        run_workers(hung, envs=[os.environ, os.environ], log_dir=tmp_path / "logs", timeout=2, grace=5)
    assert time.monotonic() - start < 30
    assert all(_pid_gone(int(p.read_text())) for p in pid_files)


def test_workers_that_finish_return(tmp_path):
    run_workers([_python("print('done')")] * 2, envs=[os.environ] * 2, log_dir=tmp_path / "logs", timeout=60)
    assert (tmp_path / "logs" / "worker-1.log").read_text().strip() == "done"


# --------------------------------------------------------------------------- TF_CONFIG and flags
def test_tf_config_is_parsed_and_checked():
    two = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    assert cluster_from_env({"TF_CONFIG": json.dumps(two)}) == Cluster(("a:1", "b:2"), 0)
    assert cluster_from_env({"TF_CONFIG": json.dumps({**two, "cluster": {"worker": ["a:1"]}})}) is None
    with pytest.raises(ConfigError, match="TF_CONFIG must be JSON"):
        cluster_from_env({"TF_CONFIG": "{not json"})
    with pytest.raises(ConfigError, match=r"task.index=2 must be in \[0, 2\)"):
        cluster_from_env({"TF_CONFIG": json.dumps({**two, "task": {"type": "worker", "index": 2}})})
    with pytest.raises(ConfigError, match="worker tasks only"):
        cluster_from_env({"TF_CONFIG": json.dumps({**two, "cluster": {"worker": ["a:1"], "ps": ["c:3"]}})})


def _config(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "train.yaml"
    body = {"store": str(tmp_path / "store"), "model": {"name": "fcn"}, "out": str(tmp_path / "run"), **fields}
    path.write_text(json.dumps(body))
    return path


def test_workers_flag_errors_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(["train", "--config", str(_config(tmp_path, batch_size=5)), "--workers", "2"]) == 2
    assert "batch_size=5 must be a multiple of --workers 2" in capsys.readouterr().err
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert main(["train", "--config", str(_config(tmp_path)), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "TF_CONFIG is set" in err


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], r"argument --workers: 0 must be an integer >= 1"),
    (["--workers", "2", "--worker-timeout", "-1"], r"argument --worker-timeout: -1(\.0)? must be > 0"),
])
def test_bad_worker_flags_name_the_flag(capsys, flags, message):
    with pytest.raises(SystemExit) as info:
        main(["train", "--config", "c.yaml", *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
