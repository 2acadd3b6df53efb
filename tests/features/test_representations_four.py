"""Fast paths of the four-spec work: the CQT with its filter banks built once per process and
without librosa.core (checked against librosa.cqt itself), and every spec of a track that shares
its framing computed from one power spectrogram (checked against the per-spec path and librosa)."""
from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest

from mirdl.errors import ConfigError
from mirdl.features import representations as R

SR = 22050


@pytest.fixture(scope="module")
def music():
    """4 s: a chirp, a chord from 1 s, clicks and quiet noise (loud and near-silent bins alike)."""
    rng = np.random.default_rng(11)
    t = np.arange(4 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * (60 * t + 500 * t**2))
    y += 0.2 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 330 * t)) * (t > 1.0)
    y[(np.arange(8) * 0.5 * SR).astype(int)] += 0.9
    y += 0.003 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def assert_cqt_is_librosas(ours_lin, ours_db, ref_complex, amin=1e-5):
    ref = np.abs(ref_complex)
    assert ours_lin.shape == ref.shape and ours_lin.dtype == np.float32
    np.testing.assert_allclose(ours_lin, ref, rtol=1e-5, atol=1e-6 * float(ref.max()))
    ref_db = librosa.amplitude_to_db(ref, ref=1.0, amin=amin, top_db=None)
    assert float(np.abs(ours_db - ref_db).max()) <= 1e-3


@pytest.mark.parametrize("kwargs", [
    {"hop_length": 512},                                                  # the default spec: 7 octaves
    {"hop_length": 512, "n_bins": 50, "fmin": 55.0, "tuning": 0.3},        # a partial last octave
    {"hop_length": 256, "n_bins": 96, "bins_per_octave": 24, "fmin": 110.0, "filter_scale": 0.7},
    {"hop_length": 384, "n_bins": 36, "fmin": 130.8},                      # early downsampling by 4
    {"hop_length": 1024, "n_bins": 24, "fmin": 65.4},                      # early downsampling by 16
    {"hop_length": 96, "n_bins": 84},                                       # hop 96 = 2^5 * 3: octaves stop halving
])
def test_cqt_is_librosas(music, kwargs):
    ref = librosa.cqt(music, sr=SR, **kwargs)
    ours_lin = R.cqt(music, sr=SR, log=False, **kwargs)
    ours_db = R.cqt(music, sr=SR, log=True, **kwargs)
    assert_cqt_is_librosas(ours_lin, ours_db, ref)


def test_cqt_early_downsampling_is_exercised():
    # The parameters above that should downsample early do (else the test would not cover it).
    assert R._cqt_plan(SR, 384, 130.8, 36, 12, 0.0, 1.0).early == 4
    assert R._cqt_plan(SR, 1024, 65.4, 24, 12, 0.0, 1.0).early == 16
    assert R._cqt_plan(SR, 512, 32.70319566257483, 84, 12, 0.0, 1.0).early == 1


def test_cqt_of_several_channels_and_top_db(music):
    stereo = np.stack([music, 0.5 * music[::-1]])
    ref = librosa.cqt(stereo, sr=SR, hop_length=512, n_bins=60)
    ours = R.cqt(stereo, sr=SR, hop_length=512, n_bins=60, log=False)
    assert ours.shape == (2, 60, ref.shape[-1])
    np.testing.assert_allclose(ours, np.abs(ref), rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))
    ours_db = R.cqt(stereo, sr=SR, hop_length=512, n_bins=60, top_db=60.0, amin=1e-4)
    ref_db = librosa.amplitude_to_db(np.abs(ref), ref=1.0, amin=1e-4, top_db=60.0)
    assert float(np.abs(ours_db - ref_db).max()) <= 1e-3


def test_cqt_filter_banks_are_built_once(music):
    R._cqt_plan.cache_clear()
    R.cqt(music, sr=SR, hop_length=512, n_bins=48)
    R.cqt(music[: SR], sr=SR, hop_length=512, n_bins=48)
    info = R._cqt_plan.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_cqt_above_nyquist_names_the_parameter(music):
    with pytest.raises(ConfigError, match="n_bins=96"):
        R.cqt(music, sr=8000, hop_length=512, n_bins=96)


def test_four_specs_import_no_librosa_core_numba_or_scipy_signal():
    code = ("import sys, numpy as np\n"
            "from mirdl.features import representations as R\n"
            "from mirdl.features.spec import FeatureSpec\n"
            "specs = [FeatureSpec(representation=r, sample_rate=22050, params={'hop_length': 512}, name=r)\n"
            "         for r in ('logmel', 'cqt', 'chroma_stft', 'mfcc')]\n"
            "y = np.random.default_rng(0).standard_normal(22050 * 2).astype(np.float32)\n"
            "for spec in specs:\n"
            "    R.silence_column(spec)\n"
            "    R.compute(y, spec=spec)\n"
            "print(sorted(m for m in ('numba', 'scipy.signal', 'librosa.core', 'librosa.filters') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("sr,n_fft,n_chroma,tuning", [(22050, 2048, 12, 0.0), (16000, 1024, 24, -0.3), (44100, 4096, 12, 0.25)])
def test_chroma_filters_are_librosas(sr, n_fft, n_chroma, tuning):
    ours = R._chroma_filters(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning)
    ref = librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("norm", [np.inf, -np.inf, 0, 1, 2, None])
def test_normalize_is_librosas(music, norm):
    chroma = R.chroma_stft(music, sr=SR, norm=None)
    chroma[:, :3] = 0.0  # silent frames are left as they are
    np.testing.assert_allclose(R._normalize(chroma, norm=norm, axis=-2),
                               librosa.util.normalize(chroma, norm=norm, axis=-2), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dct_type,lifter", [(2, 0.0), (3, 22.0), (1, 0.0)])
def test_mfcc_is_librosas(music, dct_type, lifter):
    ours = R.mfcc(music, sr=SR, n_mfcc=13, n_mels=40, dct_type=dct_type, lifter=lifter)
    ref = librosa.feature.mfcc(y=music, sr=SR, n_mfcc=13, n_mels=40, dct_type=dct_type, lifter=lifter)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)


def _spec(representation, name=None, channels=1, **params):
    from mirdl.features.spec import FeatureSpec

    return FeatureSpec(representation=representation, sample_rate=SR, channels=channels, params=params,
                       name=name or representation)


FOUR = [_spec("logmel", n_fft=2048, hop_length=512, n_mels=128), _spec("cqt", hop_length=512),
        _spec("chroma_stft", "chroma", n_fft=2048, hop_length=512), _spec("mfcc", n_fft=2048, hop_length=512, n_mels=128)]


def test_four_specs_from_one_stft_equal_the_per_spec_path_and_librosa(music):
    together = R.compute_many(music, specs=FOUR, block_frames=100)
    assert list(together) == ["logmel", "cqt", "chroma", "mfcc"]
    alone = {spec.name: R.compute(music, spec=spec, block_frames=100) for spec in FOUR}
    for name in ("logmel", "cqt", "mfcc"):  # the same arithmetic in the same order: the same bits
        np.testing.assert_array_equal(together[name], alone[name])
    # chroma from the shared float64 FFT instead of its own float32 one: float32 rounding apart.
    np.testing.assert_allclose(together["chroma"], alone["chroma"], rtol=1e-5, atol=1e-6)
    ref = librosa.feature.chroma_stft(y=music, sr=SR, n_fft=2048, hop_length=512, tuning=0.0)
    np.testing.assert_allclose(together["chroma"], ref, rtol=1e-4, atol=1e-6)
    ref_logmel = librosa.power_to_db(librosa.feature.melspectrogram(y=music, sr=SR, n_fft=2048, hop_length=512,
                                                                    n_mels=128), ref=1.0, top_db=None)
    assert float(np.abs(together["logmel"] - ref_logmel).max()) <= 1e-3
    np.testing.assert_allclose(together["mfcc"], librosa.feature.mfcc(y=music, sr=SR, n_fft=2048, hop_length=512,
                                                                      n_mels=128), rtol=1e-4, atol=1e-3)


def test_specs_share_an_stft_only_with_their_framing(music):
    stereo = np.stack([music, 0.1 * music[::-1]])
    specs = [_spec("stft", "db", n_fft=1024, hop_length=256, top_db=70.0, channels=2),
             _spec("mel", "mel2", n_fft=1024, hop_length=256, n_mels=40, channels=2),
             _spec("mel", "mel1", n_fft=1024, hop_length=256, n_mels=40, power=1.0, channels=2),   # alone
             _spec("logmel", "lm", n_fft=1024, hop_length=256, n_mels=64, top_db=80.0, channels=2),
             _spec("chroma_stft", "ch", n_fft=1024, hop_length=256, n_chroma=24, norm=2, channels=2),
             _spec("logmel", "lm512", n_fft=1024, hop_length=512, n_mels=64, channels=2),             # another hop
             _spec("stft", "lin", n_fft=1024, hop_length=256, log=False, channels=2),                  # alone
             _spec("waveform", "wave", channels=2)]
    together = R.compute_many(stereo, specs=specs, block_frames=7)
    for spec in specs:
        alone = R.compute(stereo, spec=spec, block_frames=7)
        assert together[spec.name].shape == alone.shape and together[spec.name].dtype == alone.dtype
        if spec.name == "ch":
            np.testing.assert_allclose(together[spec.name], alone, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(together[spec.name], alone)


def test_compute_many_checks_the_audio_like_compute(music):
    from mirdl.errors import AudioError

    with pytest.raises(AudioError, match="spec.channels=1"):
        R.compute_many(np.stack([music, music]), specs=FOUR)
    with pytest.raises(AudioError, match="no samples"):
        R.compute_many(np.zeros(0, np.float32), specs=FOUR)
