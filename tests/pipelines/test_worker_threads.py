"""``--workers N`` runs Beam's local engine with N worker threads in the driver's process (issue 10:
worker processes each paid ~3 s of imports; decoding and features release the GIL)."""
import json
import os
import signal
import threading
import time

import pytest
from apache_beam.options.pipeline_options import DirectOptions

from mirdl.features.synth import write_corpus
from mirdl.pipelines import transforms
from mirdl.pipelines.local_runner import threads_in_bundles
from mirdl.pipelines.precompute import WORK_DIR, pipeline_options, run
from mirdl.pipelines.spill import SpillWriter
from mirdl.store.manifest import read_manifest


def write_config(path, *, out, fmt="hdf5", n_variants=1):
    """A log-mel job over the synthetic corpus next to ``path``."""
    config = {
        "name": "threads", "seed": 3,
        "corpus": {"type": "csv", "csv": "corpus/labels.csv", "group_column": "artist"},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": 16000,
                      "params": {"n_fft": 512, "hop_length": 256, "n_mels": 32}}],
        "augment": {"n_variants": n_variants, "time_stretch_rate": [0.8, 1.25], "pitch_shift_steps": None},
        "segment": {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.25, "pad": "silence"},
        "store": {"format": fmt, "out": out, "shard_bytes": "32KB"},
    }
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def test_workers_are_threads_and_processes_stay_reachable():
    threads = pipeline_options([], workers=3).view_as(DirectOptions)
    assert (threads.direct_running_mode, threads.direct_num_workers) == ("multi_threading", 3)
    processes = pipeline_options(["--direct_running_mode=multi_processing"], workers=2).view_as(DirectOptions)
    assert (processes.direct_running_mode, processes.direct_num_workers) == ("multi_processing", 2)


@pytest.fixture(scope="module")
def small_job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("threads")
    write_corpus(folder / "corpus", n_tracks=12, duration=2.0, formats=("wav", "flac"))
    return folder


@pytest.mark.slow
def test_two_threads_or_processes_write_the_shards_of_one_worker(small_job):
    folder = small_job
    stores = {}
    for name, args in [("one", ["--workers", "1"]), ("threads", ["--workers", "2"]),
                       ("processes", ["--workers", "2", "--direct_running_mode=multi_processing"])]:
        config = write_config(folder / f"{name}.yaml", out=f"store-{name}", fmt="tfrecord")
        assert run(["--config", str(config), *args]) == 0
        stores[name] = read_manifest(folder / f"store-{name}")
    # Bit identity is the promise: shard names, sizes and sha256.
    assert stores["threads"]["splits"] == stores["one"]["splits"] == stores["processes"]["splits"]
    assert threads_in_bundles() == []


@pytest.mark.slow
def test_ctrl_c_waits_for_the_worker_threads_before_deleting(small_job, monkeypatch):
    """A Ctrl-C ends the run while a worker thread is inside a bundle: the driver waits for it,
    else its spill file would bring the deleted temporary store back."""
    folder = small_job
    config = write_config(folder / "interrupted.yaml", out="store-interrupted", n_variants=2)
    before = sorted(p.name for p in folder.iterdir())
    slow = 1.0

    class SlowSpill(SpillWriter):  # each spilled record takes a while: a worker is busy at the Ctrl-C
        def append(self, record):
            time.sleep(slow / 10)
            return super().append(record)

    monkeypatch.setattr(transforms, "SpillWriter", SlowSpill)

    def interrupt_when_busy():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(p.read_text() for p in folder.glob(f".store-interrupted.tmp-*/{WORK_DIR}/progress.log")
                   if p.exists()):
                break
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C at the terminal

    interrupter = threading.Thread(target=interrupt_when_busy, daemon=True)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt, match="nothing was written"):
        run(["--config", str(config), "--workers", "2"])
        time.sleep(60)  # not reached: the SIGINT ends the run
    interrupter.join(timeout=30)
    assert threads_in_bundles() == []
    time.sleep(slow)  # what a still-running worker thread would write, it would have written by now
    assert sorted(p.name for p in folder.iterdir()) == before
