"""The console a person reads: ``mirdl`` in a subprocess, its stderr lines counted.

TensorFlow's C++ start-up lines, Beam's worker INFO lines and its apitools warnings are
dropped unless ``-v`` (:class:`mirdl.cli.QuietStderr`); mirdl's own lines always pass.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirdl.cli import NOISE

REPO = Path(__file__).resolve().parents[1]


def mirdl(*args, cwd):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "mirdl.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.mark.parametrize("line, noise", [
    ("I0000 00:00:1796425966.931646   10859 cudart_stub.cc:31] Could not find cuda drivers on your machine", True),
    ("E0000 00:00:1796425527.474309   27116 cuda_platform.cc:52] failed call to cuInit: INTERNAL", True),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    ("INFO:apache_beam.runners.worker.sdk_worker:No more requests from control plane", True),
    ("WARNING:root:apitools not found, and bigquery client libraries are not available", True),
    ("mirdl prepare: error: corpus.root='x' is not a directory", False),
    ("warning: split 'test' has no track of class 'hit' (4 in the corpus)", False),
    ("WARNING:root:something mirdl did not expect", False),
    ("Traceback (most recent call last):", False),
])
def test_noise_pattern(line, noise):
    assert bool(NOISE.match(line.encode())) is noise


def test_tensorflow_start_up_lines_are_gone_unless_verbose(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")  # never read: the run directory is refused first
    quiet = mirdl("predict", "--model", tmp_path, tmp_path / "a.wav", "--out", tmp_path / "p.csv", cwd=tmp_path)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [line for line in quiet.stderr.splitlines() if line.startswith("mirdl predict: error")]
    assert len(quiet.stderr.splitlines()) == 1, quiet.stderr
    loud = mirdl("-v", "predict", "--model", tmp_path, tmp_path / "a.wav", "--out", tmp_path / "p.csv", cwd=tmp_path)
    assert loud.returncode == 2 and len(loud.stderr.splitlines()) > 1  # TensorFlow's own lines are back
    assert any(NOISE.match(line.encode()) for line in loud.stderr.splitlines())


@pytest.mark.slow
def test_prepare_with_two_workers_prints_no_beam_logs(tmp_path):
    from mirdl.features.synth import write_clips_corpus

    write_clips_corpus(tmp_path / "corpus", seed=1, scale=0.1)
    # HDF5: the workers start without TensorFlow (half the run time of a TFRecord store, measured
    # 24-32 s against 52-58 s). Their Beam INFO lines and apitools warnings go to the same
    # inherited stderr filter as TensorFlow's start-up lines would (tested in the test above).
    (tmp_path / "prepare.yaml").write_text(
        "name: quiet\ncorpus: {type: dir_per_class, root: corpus}\n"
        "features: [{name: logmel, representation: logmel, sample_rate: 16000, params: {n_mels: 32}}]\n"
        "segment: {mode: clip, patch_seconds: 1.0, pad: wrap}\nstore: {format: hdf5, out: store}\n")
    done = mirdl("prepare", "--config", "prepare.yaml", "--workers", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith(("prepare:", "warning: split")) for line in lines), lines
    assert "store quiet (hdf5) written" in done.stdout


def test_quiet_stderr_keeps_telling_progress_bars_about_the_terminal(tmp_path):
    import pty

    code = ("import sys\nfrom mirdl.cli import QuietStderr\nwith QuietStderr():\n"
            "    print('tty', sys.stderr.isatty(), file=sys.stderr)\n"
            "    print('I0000 00:00:1796.5 1 x.cc:1] noise', file=sys.stderr)\n")
    primary, secondary = pty.openpty()
    done = subprocess.run([sys.executable, "-c", code], stderr=secondary, stdout=subprocess.DEVNULL, cwd=tmp_path,
                          timeout=60)
    os.close(secondary)
    text = os.read(primary, 4096).decode()
    os.close(primary)
    assert done.returncode == 0 and "tty True" in text and "noise" not in text
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert piped.stderr == "tty False\n"
