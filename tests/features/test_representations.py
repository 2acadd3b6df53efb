"""Each representation equals the corresponding librosa call (1e-3 dB for log, rtol 1e-4 linear)."""
import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirdl.features import representations as rep
from mirdl.errors import AudioError, ConfigError
from mirdl.features.spec import FeatureSpec

SR = 22050


@pytest.fixture(scope="module")
def music():
    """3 s: a chirp, a 440 Hz + 660 Hz chord, clicks and noise at known places."""
    rng = np.random.default_rng(7)
    t = np.arange(3 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * (100 * t + 400 * t**2))  # chirp 100 Hz -> 2.5 kHz
    y += 0.2 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 660 * t)) * (t > 1.0)
    clicks = np.zeros_like(t)
    clicks[(np.arange(6) * 0.5 * SR).astype(int)] = 0.9
    y += clicks + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def assert_linear_close(ours, ref):
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * float(np.abs(ref).max()))


def assert_db_close(ours, ref):
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    assert float(np.abs(ours - ref).max()) <= 1e-3


def test_stft_linear_matches_librosa(music):
    ours = rep.stft(music, sr=SR, n_fft=1024, hop_length=256, log=False, block_frames=37)
    ref = np.abs(librosa.stft(music, n_fft=1024, hop_length=256))
    assert_linear_close(ours, ref)


def test_stft_log_matches_librosa(music):
    ours = rep.stft(music, sr=SR, n_fft=2048, hop_length=512, log=True, top_db=80.0, block_frames=10)
    ref = librosa.amplitude_to_db(np.abs(librosa.stft(music, n_fft=2048, hop_length=512)), ref=1.0,
                                  amin=1e-5, top_db=80.0)
    assert_db_close(ours, ref)


def test_stft_uncentred_and_short_window(music):
    ours = rep.stft(music, sr=SR, n_fft=512, hop_length=128, win_length=400, center=False, log=False,
                    block_frames=50)
    ref = np.abs(librosa.stft(music, n_fft=512, hop_length=128, win_length=400, center=False))
    assert_linear_close(ours, ref)


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_mel_matches_librosa(music, power):
    kwargs = dict(n_fft=1024, hop_length=512, n_mels=64, fmin=30.0, fmax=8000.0)
    ours = rep.mel(music, sr=SR, power=power, block_frames=16, **kwargs)
    ref = librosa.feature.melspectrogram(y=music, sr=SR, power=power, **kwargs)
    assert_linear_close(ours, ref)


def test_mel_htk_without_norm_matches_librosa(music):
    ours = rep.mel(music, sr=SR, n_mels=40, htk=True, norm=None)
    ref = librosa.feature.melspectrogram(y=music, sr=SR, n_mels=40, htk=True, norm=None)
    assert_linear_close(ours, ref)


@pytest.mark.parametrize("top_db", [None, 80.0])
def test_logmel_matches_librosa(music, top_db):
    ours = rep.logmel(music, sr=SR, n_fft=2048, hop_length=512, n_mels=128, top_db=top_db, block_frames=7)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=music, sr=SR, n_fft=2048, hop_length=512,
                                                             n_mels=128), ref=1.0, amin=1e-10, top_db=top_db)
    assert_db_close(ours, ref)


def test_cqt_matches_librosa(music):
    ours_lin = rep.cqt(music, sr=SR, hop_length=512, n_bins=72, log=False)
    ref_lin = np.abs(librosa.cqt(music, sr=SR, hop_length=512, n_bins=72, tuning=0.0))
    assert_linear_close(ours_lin, ref_lin)
    ours_db = rep.cqt(music, sr=SR, hop_length=512, n_bins=72, log=True)
    assert_db_close(ours_db, librosa.amplitude_to_db(ref_lin, ref=1.0, amin=1e-5, top_db=None))


def test_chroma_stft_matches_librosa(music):
    ours = rep.chroma_stft(music, sr=SR, n_fft=2048, hop_length=512, block_frames=9)
    ref = librosa.feature.chroma_stft(y=music, sr=SR, n_fft=2048, hop_length=512, tuning=0.0)
    assert_linear_close(ours, ref)


def test_chroma_cqt_matches_librosa(music):
    ours = rep.chroma_cqt(music, sr=SR, hop_length=512)
    ref = librosa.feature.chroma_cqt(y=music, sr=SR, hop_length=512, tuning=0.0)
    assert_linear_close(ours, ref)


def test_mfcc_matches_librosa(music):
    ours = rep.mfcc(music, sr=SR, n_mfcc=20, n_mels=64, block_frames=11)
    ref = librosa.feature.mfcc(y=music, sr=SR, n_mfcc=20, n_mels=64)
    # MFCCs are a linear map of dB values: compare with the dB tolerance scaled by the DCT gain.
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)


def test_waveform_is_the_samples(music):
    out = rep.waveform(music, sr=SR)
    assert out.shape == (1, music.size)
    np.testing.assert_array_equal(out[0], music)  # exact: the samples themselves, no arithmetic


def test_blocks_do_not_change_the_numbers(music):
    # Each block is projected onto the filterbank by its own BLAS call, so blocks may differ from
    # one whole-signal call by float32 rounding only (a store always uses the same block size).
    whole = rep.logmel(music, sr=SR, block_frames=10_000)
    for block_frames in (1, 3, 64):
        np.testing.assert_allclose(rep.logmel(music, sr=SR, block_frames=block_frames), whole, rtol=0, atol=1e-4)
    whole_stft = rep.stft(music, sr=SR, log=False, block_frames=10_000)
    np.testing.assert_allclose(rep.stft(music, sr=SR, log=False, block_frames=3), whole_stft,
                               rtol=1e-6, atol=1e-6 * float(whole_stft.max()))


def test_a_sine_lands_in_its_bins():
    y = np.sin(2 * np.pi * 440 * np.arange(SR) / SR).astype(np.float32)
    assert int(rep.chroma_stft(y, sr=SR)[:, 20].argmax()) == 9  # A
    cqt = rep.cqt(y, sr=SR, n_bins=84)
    assert int(cqt[:, 20].argmax()) == 69 - 24  # A4 from C1
    spectrum = rep.stft(y, sr=SR, n_fft=2048, log=False)
    assert abs(spectrum[:, 20].argmax() * SR / 2048 - 440) < SR / 2048


def test_multichannel_keeps_the_channel_axis(music):
    stereo = np.stack([music, 0.5 * music])
    out = rep.logmel(stereo, sr=SR, n_mels=32)
    assert out.shape[:2] == (2, 32)
    np.testing.assert_allclose(out[0], rep.logmel(music, sr=SR, n_mels=32), atol=1e-4)
    # Half the amplitude is -6.02 dB wherever the signal is above the floor.
    loud = out[0] > -60
    np.testing.assert_allclose((out[0] - out[1])[loud], 20 * np.log10(2), atol=1e-3)


@pytest.mark.parametrize("name", sorted(rep.REPRESENTATIONS))
def test_compute_follows_the_spec(music, name):
    spec = FeatureSpec(representation=name, sample_rate=SR, dtype="float16")
    out = rep.compute(music[: SR // 2], spec=spec)
    assert out.dtype == np.float16
    assert out.ndim == 2 and np.isfinite(out.astype(np.float32)).all()


def test_compute_rejects_audio_of_the_wrong_shape(music):
    spec = FeatureSpec(representation="logmel", channels=2)
    with pytest.raises(AudioError, match="channels=2"):
        rep.compute(music, spec=spec)
    with pytest.raises(AudioError, match="no samples"):
        rep.compute(np.zeros(0, np.float32), spec=FeatureSpec(representation="logmel"))


def test_silence_column_is_the_feature_of_silence():
    spec = FeatureSpec(representation="logmel", params={"n_mels": 16})
    column = rep.silence_column(spec)
    assert column.shape == (16, 1)
    # 10 * log10(amin=1e-10) dB, computed: float32 log10 kernels differ in the last bit between SIMD
    # paths (AVX-512 gives -100.00000762939453), so compare with a tolerance.
    np.testing.assert_allclose(column, -100.0, rtol=0, atol=1e-4)
    silent_logmel = rep.compute(np.zeros(SR, np.float32), spec=spec)
    np.testing.assert_allclose(column[:, 0], silent_logmel[:, 5], rtol=0, atol=1e-4)
    mfcc_column = rep.silence_column(FeatureSpec(representation="mfcc"))
    silent = rep.compute(np.zeros(SR, np.float32), spec=FeatureSpec(representation="mfcc"))
    np.testing.assert_allclose(mfcc_column[:, 0], silent[:, 5], atol=1e-4)


def test_representation_params_lists_the_numbers_that_matter():
    params = rep.representation_params("logmel")
    assert {"n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db"} <= set(params)
    assert "block_frames" not in params and "sr" not in params
    with pytest.raises(ConfigError, match="representation='nope'"):
        rep.representation_params("nope")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=1, max_value=6000), hop=st.sampled_from([64, 128, 256, 512]),
       n_fft=st.sampled_from([256, 512, 1024]))
def test_frame_count_formula(n, hop, n_fft):
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    out = rep.stft(y, sr=SR, n_fft=n_fft, hop_length=hop, log=False, block_frames=5)
    assert out.shape == (1 + n_fft // 2, 1 + n // hop)
    assert np.isfinite(out).all()


def test_stft_fast_path_matches_librosa_on_stereo_longer_than_a_sub_block():
    """Row-major float64 FFT + re^2 + im^2 + sparse mel projection against librosa: two channels,
    several cache sub-blocks, a quiet channel 100 dB below the other."""
    rng = np.random.default_rng(3)
    t = np.arange(20 * SR) / SR
    loud = 0.5 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    stereo = np.stack([loud, 1e-5 * loud[::-1]]).astype(np.float32)
    ours = rep.logmel(stereo, sr=SR)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=stereo, sr=SR), ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == (2, 128, 1 + 20 * SR // 512)
    assert_db_close(ours, ref)
    assert_linear_close(rep.chroma_stft(stereo[0], sr=SR), librosa.feature.chroma_stft(y=stereo[0], sr=SR, tuning=0.0))
    assert_linear_close(rep.stft(stereo, sr=SR, log=False), np.abs(librosa.stft(stereo)))


def test_stft_db_and_float32_chroma_fast_paths_match_librosa():
    """stft in dB is computed block by block as 10 log10(max(amin^2, re^2 + im^2)), and chroma_stft
    runs its FFT in float32 with one BLAS product: both still give librosa's numbers on two
    channels 100 dB apart, a silent stretch (the dB floor) and more frames than one block."""
    rng = np.random.default_rng(5)
    t = np.arange(30 * SR) / SR
    loud = 0.5 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 0.2 * t) + 0.05 * rng.standard_normal(t.size)
    loud[5 * SR : 7 * SR] = 0.0
    stereo = np.stack([loud, 1e-5 * loud[::-1]]).astype(np.float32)
    for amin, top_db in ((1e-5, None), (1e-3, 60.0)):
        ours = rep.stft(stereo, sr=SR, amin=amin, top_db=top_db, block_frames=300)
        ref = librosa.amplitude_to_db(np.abs(librosa.stft(stereo)), ref=1.0, amin=amin, top_db=top_db)
        assert_db_close(ours, ref)
    np.testing.assert_allclose(rep.stft(stereo[0], sr=SR)[:, 230:280], -100.0, atol=1e-4)  # 20 log10(amin)
    for channel in stereo:
        assert_linear_close(rep.chroma_stft(channel, sr=SR, block_frames=300),
                            librosa.feature.chroma_stft(y=channel, sr=SR, tuning=0.0))
