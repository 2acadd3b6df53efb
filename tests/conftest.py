"""Shared fixtures with known answers: short test signals and a small synthetic corpus.

- ``sine``, ``impulse``, ``silence``: 0.5 s float32 mono arrays at :data:`SR` (22050 Hz).
- ``synth_corpus``: a :class:`mirdl.features.synth.CorpusListing` of :data:`CORPUS_TRACKS` tracks of
  :data:`CORPUS_SECONDS` s (4 per class, mixed wav/flac/ogg, 16/22.05/44.1 kHz, some stereo),
  written once per session. Read-only: copy it before changing anything.
- ``odd_audio``: :func:`mirdl.features.synth.odd_files` written once per session; see
  :data:`mirdl.features.synth.ODD_FILES` for which must decode and which must fail.
- ``other_simd_env``: this process's environment with numpy's AVX-512 kernels disabled
  (``NPY_DISABLE_CPU_FEATURES``), for subprocesses that must run the numerics of an AVX2 machine;
  ``other_numerics_env`` also turns TensorFlow's oneDNN off.
"""
import os

import numpy as np
import pytest

from mirdl.features.synth import odd_files, write_corpus

#: Sample rate of the array fixtures.
SR = 22050
#: Samples in each array fixture (0.5 s).
N_SAMPLES = SR // 2
#: Size of the session corpus; small, so every test that uses it stays fast.
CORPUS_TRACKS = 16
CORPUS_SECONDS = 2.0
CORPUS_SEED = 0


@pytest.fixture
def sine() -> np.ndarray:
    """0.5 s of a 440 Hz sine, amplitude 0.5, zero phase, float32 (11025,) at 22050 Hz."""
    t = np.arange(N_SAMPLES) / SR
    return (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


@pytest.fixture
def impulse() -> np.ndarray:
    """0.5 s of zeros with a single 1.0 at the middle sample (index 5512), float32 (11025,)."""
    y = np.zeros(N_SAMPLES, dtype=np.float32)
    y[N_SAMPLES // 2] = 1.0
    return y


@pytest.fixture
def silence() -> np.ndarray:
    """0.5 s of digital silence, float32 (11025,)."""
    return np.zeros(N_SAMPLES, dtype=np.float32)


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory):
    """The session's synthetic corpus (a ``CorpusListing``; files under ``listing.root``)."""
    root = tmp_path_factory.mktemp("synth") / "corpus"
    return write_corpus(root, n_tracks=CORPUS_TRACKS, seed=CORPUS_SEED, duration=CORPUS_SECONDS)


@pytest.fixture(scope="session")
def odd_audio(tmp_path_factory):
    """``ODD_FILES`` name -> path of each odd input (empty, truncated, NaN, 6-channel, ...)."""
    return odd_files(tmp_path_factory.mktemp("odd_audio"))


def avx512_dispatch_targets() -> list[str]:
    """numpy's AVX-512 dispatch targets that this CPU supports, widest last (empty on other CPUs).

    Disabling all of them with ``NPY_DISABLE_CPU_FEATURES`` makes numpy run the kernels of an AVX2
    machine (float32 ``log10``, ``exp``, ... then differ from the AVX-512 ones in the last bits).
    """
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return [name for name in __cpu_dispatch__
            if (name == "X86_V4" or name.startswith("AVX512")) and __cpu_features__.get(name)]


@pytest.fixture(scope="session")
def other_numerics_env() -> dict[str, str]:
    """``os.environ`` with the other numerics this machine can run: TensorFlow without oneDNN
    (``TF_ENABLE_ONEDNN_OPTS=0``) and, on an AVX-512 CPU, numpy on its AVX2 kernels."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    targets = avx512_dispatch_targets()
    if targets:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(targets)
    return env


@pytest.fixture(scope="session")
def other_simd_env() -> dict[str, str]:
    """``os.environ`` plus ``NPY_DISABLE_CPU_FEATURES`` naming every AVX-512 target present.

    Skips when the CPU has none: numpy already runs its AVX2 (or narrower) path there, and the
    variable would change nothing.
    """
    targets = avx512_dispatch_targets()
    if not targets:
        pytest.skip("no AVX-512 dispatch target is active (CPU without AVX-512, or NPY_DISABLE_CPU_FEATURES "
                    "already set): numpy already runs the AVX2 path")
    return {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(targets)}
