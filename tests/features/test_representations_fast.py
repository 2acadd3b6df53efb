"""The hann window, slaney mel filter bank and power_to_db computed without librosa's lazy
modules (a log-mel job no longer imports scipy.signal, numba or librosa.core): bit for bit
librosa's, and the import really avoided."""
from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest

from mirdl.features import representations as R
from mirdl.features.spec import FeatureSpec


@pytest.mark.parametrize("win_length,n_fft", [(2048, 2048), (1024, 1024), (400, 512), (511, 1024), (2, 4), (255, 256)])
def test_hann_window_is_librosas(win_length, n_fft):
    R._fft_window.cache_clear()
    expected = librosa.util.pad_center(librosa.filters.get_window("hann", win_length, fftbins=True), size=n_fft)
    got = R._fft_window("hann", win_length, n_fft)
    assert got.dtype == np.float64 and np.array_equal(got, expected)
    assert np.array_equal(R._fft_window("hann", win_length, n_fft, True), expected.astype(np.float32))


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax,htk", [
    (22050, 2048, 128, 0.0, None, False),
    (16000, 512, 40, 20.0, 7600.0, False),
    (44100, 4096, 96, 0.0, 11025.0, True),
    (22050, 1024, 64, 30.0, None, True),
    (8000, 256, 32, 0.0, None, False),
])
def test_slaney_mel_filters_are_librosas(sr, n_fft, n_mels, fmin, fmax, htk):
    expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm="slaney")
    got = R._slaney_mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_empty_mel_filters_still_warn_through_librosa():
    R._mel_basis.cache_clear()
    assert R._slaney_mel_filters(sr=8000, n_fft=128, n_mels=128, fmin=0.0, fmax=None, htk=False) is None
    with pytest.warns(UserWarning, match="Empty filters"):
        R._mel_basis(8000, 128, 128, 0.0, None, False, "slaney")


@pytest.mark.parametrize("top_db,amin", [(None, 1e-10), (80.0, 1e-10), (60.0, 1e-5), (0.0, 1e-10)])
def test_power_to_db_is_librosas(top_db, amin):
    rng = np.random.default_rng(0)
    power = (rng.standard_normal((2, 64, 50)).astype(np.float32) ** 2) * 10.0 ** rng.uniform(-14, 2, (2, 64, 50))
    power = power.astype(np.float32)
    power[0, :3] = 0.0
    expected = librosa.power_to_db(power, ref=1.0, amin=amin, top_db=top_db).astype(np.float32)
    got = R._to_db(power, power=2.0, amin=amin, top_db=top_db)
    assert got.dtype == np.float32 and np.array_equal(got, expected)


def test_logmel_and_mel_equal_the_librosa_built_path(sine, monkeypatch):
    """The whole feature, fast helpers vs the librosa calls they replace, bit for bit."""
    spec = FeatureSpec(representation="logmel", sample_rate=22050, params={"n_fft": 1024, "hop_length": 256,
                                                                           "n_mels": 64, "top_db": 80.0})
    y = np.tile(sine, 3)
    R._fft_window.cache_clear(), R._mel_basis.cache_clear()
    fast = R.compute(y, spec=spec)
    monkeypatch.setattr(R, "_slaney_mel_filters", lambda **kwargs: None)
    monkeypatch.setattr(R, "_periodic_hann",
                        lambda n: librosa.filters.get_window("hann", n, fftbins=True))
    monkeypatch.setattr(R, "_power_to_db", lambda S, *, amin, top_db: librosa.power_to_db(S, ref=1.0, amin=amin,
                                                                                           top_db=top_db))
    R._fft_window.cache_clear(), R._mel_basis.cache_clear()
    reference = R.compute(y, spec=spec)
    R._fft_window.cache_clear(), R._mel_basis.cache_clear()
    assert np.array_equal(fast, reference)


def test_logmel_imports_no_scipy_signal_or_numba():
    code = ("import sys, numpy as np\n"
            "from mirdl.features import representations as R\n"
            "from mirdl.features.spec import FeatureSpec\n"
            "spec = FeatureSpec(representation='logmel', sample_rate=22050, params={'n_fft': 2048, 'hop_length': 512})\n"
            "R.silence_column(spec)\n"
            "R.compute(np.zeros(22050, np.float32), spec=spec)\n"
            "print(sorted(m for m in ('numba', 'scipy.signal', 'librosa.core', 'librosa.filters') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
