"""Tests for mirdl.features.audio: decoding, streaming resample, channel matching and every failure mode.

All audio is synthesised here and written into ``tmp_path``; nothing binary is committed.
"""
import os
import tempfile
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from mirdl.features.audio import AudioInfo, check_audio, iter_blocks, load, probe, resample, to_channels, write_audio
from mirdl.errors import AudioError, ConfigError

SR = 22050
# Largest error PCM quantisation allows (one LSB; libsndfile scales by 2**(bits-1)).
PCM_TOLERANCE = {"PCM_16": 2.0**-15, "PCM_24": 2.0**-23, "PCM_32": 2.0**-31, "FLOAT": 0.0, "DOUBLE": 0.0}


def sine(freq=440.0, *, sr=SR, seconds=0.5, amplitude=0.5, channels=None):
    """float32 sine, shape (n,) or, with ``channels``, (channels, n) with a different phase per channel."""
    t = np.arange(int(round(seconds * sr))) / sr
    if channels is None:
        return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    phases = np.arange(channels)[:, None] * 0.7
    return (amplitude * np.sin(2 * np.pi * freq * t[None, :] + phases)).astype(np.float32)


def write(path, y, *, sr=SR, **kwargs):
    """Write a channels-first signal with write_audio (in blocks); return the path as str."""
    write_audio(str(path), y, sample_rate=sr, **kwargs)
    return str(path)


def truncate(path, *, keep=0.5):
    """Cut a file's bytes to the first ``keep`` fraction, in place."""
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep)])
    return path


def peak_hz(y, sr):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spectrum) * sr / len(y)


def writable(fmt, subtype):
    return fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)


# ------------------------------------------------------------------------------------------------
# round trips


def test_sine_round_trip_pcm16(tmp_path):
    y = sine()
    path = write(tmp_path / "sine.wav", y, subtype="PCM_16")
    y_hat, sr = load(path)
    assert sr == SR
    assert y_hat.dtype == np.float32 and y_hat.shape == y.shape
    np.testing.assert_allclose(y_hat, y, rtol=0, atol=PCM_TOLERANCE["PCM_16"])


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_subtypes(tmp_path, subtype):
    y = sine(channels=2)
    path = write(tmp_path / f"{subtype}.wav", y, subtype=subtype)
    assert probe(path).subtype == subtype
    y_hat, sr = load(path, channels=2)
    assert y_hat.dtype == np.float32 and y_hat.shape == y.shape and sr == SR
    # float32 output: an extra 2**-24 relative rounding on top of quantisation.
    np.testing.assert_allclose(y_hat, y, rtol=0, atol=PCM_TOLERANCE[subtype] + 2.0**-24)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_flac_is_lossless(tmp_path, subtype):
    y = sine(channels=2)
    path = write(tmp_path / "sine.flac", y, subtype=subtype)
    assert probe(path).format == "FLAC"
    y_hat, _ = load(path, channels=2)
    np.testing.assert_allclose(y_hat, y, rtol=0, atol=PCM_TOLERANCE[subtype] + 2.0**-24)


@pytest.mark.parametrize(("fmt", "subtype", "suffix"), [
    ("OGG", "VORBIS", "ogg"),
    ("MP3", "MPEG_LAYER_III", "mp3"),
])
def test_lossy_formats_keep_length_and_pitch(tmp_path, fmt, subtype, suffix):
    if not writable(fmt, subtype):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}/{subtype}")
    y = sine(1000.0, seconds=1.0)
    path = str(tmp_path / f"sine.{suffix}")
    try:
        write(path, y, format=fmt, subtype=subtype)
    except AudioError as err:  # listed but built without the encoder
        pytest.skip(f"writing {fmt}/{subtype} failed here: {err}")
    info = probe(path)
    assert (info.format, info.subtype) == (fmt, subtype)
    y_hat, sr = load(path, sample_rate=16000)
    assert sr == 16000 and y_hat.dtype == np.float32
    assert abs(len(y_hat) - 16000) <= 2
    assert abs(peak_hz(y_hat, sr) - 1000.0) <= 2.0


# ------------------------------------------------------------------------------------------------
# channels


@pytest.mark.parametrize("n_channels", range(1, 9))
def test_downmix_is_mean_of_channels(tmp_path, n_channels):
    y = sine(channels=n_channels, seconds=0.2)
    path = write(tmp_path / "multi.wav", y, subtype="PCM_16")
    decoded, _ = sf.read(path, dtype="float32", always_2d=True)
    mono, sr = load(path, block_frames=1000)
    assert mono.shape == (decoded.shape[0],)
    np.testing.assert_allclose(mono, decoded.mean(axis=1), rtol=0, atol=1e-7)
    np.testing.assert_allclose(to_channels(decoded.T, channels=1), mono, rtol=0, atol=1e-7)


def test_stereo_downmix_fast_path_is_bit_identical_to_the_mean(tmp_path):
    """Two channels are mixed as (a + b) * 0.5 (35x faster than mean over the last axis): the same
    float32 bits as ``mean(axis=1)``, subnormals and rounding included (bit identity is the promise)."""
    rng = np.random.default_rng(0)
    y = rng.uniform(-1, 1, size=(2, 30000)).astype(np.float32)
    y[:, :50] = rng.uniform(-1e-38, 1e-38, size=(2, 50)).astype(np.float32)  # subnormal sums
    path = tmp_path / "float.wav"
    sf.write(path, y.T, 8000, subtype="FLOAT")
    decoded, _ = sf.read(path, dtype="float32", always_2d=True)
    mono, _ = load(path, block_frames=7000)
    assert mono.tobytes() == decoded.mean(axis=1).astype(np.float32).tobytes()


def test_mono_file_is_duplicated_to_two_channels(tmp_path):
    y = sine()
    path = write(tmp_path / "mono.wav", y, subtype="FLOAT")
    stereo, _ = load(path, channels=2, sample_rate=16000, block_frames=777)
    mono, _ = load(path, channels=1, sample_rate=16000, block_frames=777)
    assert stereo.shape == (2, len(mono))
    # Exact: the mono signal is resampled once and copied to each channel (no extra arithmetic).
    np.testing.assert_array_equal(stereo[0], mono)
    np.testing.assert_array_equal(stereo[1], mono)


def test_six_channels_to_two_is_an_error(tmp_path):
    path = write(tmp_path / "surround.wav", sine(channels=6, seconds=0.1), subtype="PCM_16")
    with pytest.raises(AudioError, match="has 6 channels; spec expects 2"):
        load(path, channels=2)
    with pytest.raises(AudioError, match="has 6 channels; spec expects 2"):
        next(iter_blocks(path, channels=2))
    with pytest.raises(AudioError, match="has 6 channels; spec expects 2"):
        to_channels(sine(channels=6), channels=2)


def test_matching_channel_count_is_kept(tmp_path):
    y = sine(channels=4, seconds=0.1)
    path = write(tmp_path / "quad.wav", y, subtype="FLOAT")
    y_hat, _ = load(path, channels=4)
    np.testing.assert_array_equal(y_hat, y)  # exact: float32 WAV is lossless and nothing is computed
    assert to_channels(y, channels=4) is y


def test_to_channels_shapes():
    mono = sine(seconds=0.01)
    assert to_channels(mono, channels=1) is mono
    np.testing.assert_array_equal(to_channels(mono, channels=3), np.stack([mono] * 3))
    np.testing.assert_array_equal(to_channels(mono[None, :], channels=2), np.stack([mono] * 2))
    np.testing.assert_array_equal(to_channels(mono[None, :], channels=1), mono)
    with pytest.raises(ConfigError, match="channels=0"):
        to_channels(mono, channels=0)


# ------------------------------------------------------------------------------------------------
# resampling


@pytest.mark.parametrize(("file_sr", "subtype"), [(8000, "PCM_16"), (96000, "PCM_24")])
def test_resample_to_22050_keeps_length_and_pitch(tmp_path, file_sr, subtype):
    y = sine(1000.0, sr=file_sr, seconds=1.0)
    path = write(tmp_path / "tone.wav", y, sr=file_sr, subtype=subtype)
    y_hat, sr = load(path, sample_rate=22050, block_frames=10000)
    assert sr == 22050 and y_hat.dtype == np.float32
    assert abs(len(y_hat) - round(len(y) * 22050 / file_sr)) <= 2
    assert abs(peak_hz(y_hat, sr) - 1000.0) <= 1.0


@pytest.mark.parametrize("channels", [1, 2])
def test_streamed_resample_equals_one_shot(tmp_path, channels):
    rng = np.random.default_rng(0)
    y = rng.uniform(-0.5, 0.5, (2, 3 * 44100)).astype(np.float32)
    path = write(tmp_path / "noise.wav", y, sr=44100, subtype="FLOAT")
    y_hat, sr = load(path, sample_rate=22050, channels=channels, block_frames=4000)
    expected = soxr.resample((y.mean(axis=0) if channels == 1 else y).T, 44100, 22050, "HQ").T
    assert y_hat.shape == expected.shape
    np.testing.assert_allclose(y_hat, expected, rtol=0, atol=1e-5)
    # The blocks concatenate to exactly what load returns (documented bit for bit: load is built on them).
    blocks = list(iter_blocks(path, sample_rate=22050, channels=channels, block_frames=4000))
    assert len(blocks) > 10
    np.testing.assert_array_equal(np.concatenate(blocks, axis=-1), y_hat)


def test_load_decodes_in_blocks(tmp_path, monkeypatch):
    path = write(tmp_path / "stereo.wav", sine(channels=2, sr=44100, seconds=1.0), sr=44100,
                 subtype="PCM_16")
    requested = []
    real_read = sf.SoundFile.read

    def spy_read(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy_read)
    y_hat, _ = load(path, sample_rate=22050, block_frames=5000)
    assert len(y_hat) == 22050
    assert requested and all(0 < n <= 5000 for n in requested)


def test_load_memory_is_output_plus_one_block(tmp_path):
    # 20 s of 44.1 kHz stereo decodes to 7 MB of float32; the 22.05 kHz mono output is 1.8 MB.
    rng = np.random.default_rng(1)
    path = write(tmp_path / "long.wav", rng.uniform(-0.5, 0.5, (2, 20 * 44100)).astype(np.float32),
                 sr=44100, subtype="PCM_16")
    tracemalloc.start()
    try:
        y_hat, _ = load(path, sample_rate=22050, block_frames=8192)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < y_hat.nbytes + 1_000_000


def test_resample_function():
    y = sine(channels=3, sr=48000, seconds=0.1)
    y_hat = resample(y, orig_sr=48000, target_sr=16000)
    assert y_hat.shape == (3, 1600) and y_hat.dtype == np.float32 and y_hat.flags.c_contiguous
    np.testing.assert_allclose(y_hat[1], resample(y[1], orig_sr=48000, target_sr=16000), atol=1e-6)
    assert resample(y, orig_sr=16000, target_sr=16000) is y
    assert resample(y.astype(np.float64), orig_sr=48000, target_sr=16000).dtype == np.float64
    with pytest.raises(ConfigError, match="quality='XQ'"):
        resample(y, orig_sr=48000, target_sr=16000, quality="XQ")
    with pytest.raises(ConfigError, match="target_sr=0"):
        resample(y, orig_sr=48000, target_sr=0)


# ------------------------------------------------------------------------------------------------
# excerpts and probe


def test_offset_and_duration_read_an_excerpt(tmp_path):
    y = sine(seconds=2.0)
    path = write(tmp_path / "long.flac", y, subtype="PCM_24")
    full, _ = load(path)
    part, sr = load(path, offset=0.5, duration=0.25, block_frames=1000)
    # Exact: without resampling an excerpt is the same decoded samples as a slice of the whole file.
    np.testing.assert_array_equal(part, full[int(0.5 * SR): int(0.5 * SR) + int(round(0.25 * SR))])
    tail, _ = load(path, offset=1.5, duration=10.0)  # cut at the end of the file
    np.testing.assert_array_equal(tail, full[int(1.5 * SR):])
    resampled, _ = load(path, offset=0.5, duration=0.25, sample_rate=11025)
    assert len(resampled) == round(0.25 * SR * 11025 / SR)
    with pytest.raises(AudioError, match="past the end"):
        load(path, offset=2.0)


def test_probe_reports_header(tmp_path):
    path = write(tmp_path / "info.wav", sine(channels=3, sr=48000, seconds=0.75), sr=48000,
                 subtype="PCM_24")
    assert probe(path) == AudioInfo(path=path, sample_rate=48000, channels=3, frames=36000,
                                    duration=0.75, format="WAV", subtype="PCM_24", decoder="soundfile")


# ------------------------------------------------------------------------------------------------
# failures: each raises AudioError with the path and a reason, never a raw soundfile error


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.wav")
    for call in (probe, load):
        with pytest.raises(AudioError, match="nope.wav: file not found"):
            call(path)


def test_directory(tmp_path):
    path = tmp_path / "dir.wav"
    path.mkdir()
    with pytest.raises(AudioError, match="is a directory"):
        load(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match=r"empty file \(0 bytes\)"):
        probe(path)


def test_text_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError, match="not recognised") as info:
        load(path)
    assert isinstance(info.value.__cause__, sf.LibsndfileError)


def test_zero_frames(tmp_path):
    path = write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match=r"no samples \(0 frames\)"):
        load(path)


@pytest.mark.parametrize(("fmt", "subtype", "suffix"), [
    ("WAV", "PCM_16", "wav"), ("WAV", "FLOAT", "wav"), ("WAVEX", "PCM_24", "wav"),
    ("AIFF", "PCM_16", "aiff"), ("RF64", "PCM_16", "rf64"),
])
def test_truncated_pcm_file_is_rejected(tmp_path, fmt, subtype, suffix):
    # libsndfile quietly shortens these to the frames present; only its log says the header disagrees.
    path = write(tmp_path / f"cut.{suffix}", sine(channels=2), format=fmt, subtype=subtype)
    truncate(path)
    with pytest.raises(AudioError, match=r"truncated: expected 11025 frames, read 5\d{3}"):
        probe(path)
    with pytest.raises(AudioError, match="truncated"):
        load(path)


def test_streamed_wav_with_unknown_data_size_is_not_truncated(tmp_path):
    # Writers streaming to a pipe leave the RIFF and data sizes at 0xFFFFFFFF; the data is all there.
    path = write(tmp_path / "streamed.wav", sine(), subtype="PCM_16")
    data = bytearray(open(path, "rb").read())
    at = data.find(b"data")
    data[4:8] = data[at + 4: at + 8] = b"\xff\xff\xff\xff"
    open(path, "wb").write(bytes(data))
    y_hat, _ = load(path)
    np.testing.assert_allclose(y_hat, sine(), atol=PCM_TOLERANCE["PCM_16"])


def test_truncated_flac(tmp_path):
    path = truncate(write(tmp_path / "cut.flac", sine(), subtype="PCM_16"))
    with pytest.raises(AudioError, match="cut.flac: (corrupt data|truncated)"):
        load(path)


@pytest.mark.parametrize(("fmt", "subtype", "suffix", "reason"), [
    ("OGG", "VORBIS", "ogg", "truncated: the file ends inside an Ogg page"),
    ("MP3", "MPEG_LAYER_III", "mp3", "truncated: expected 11025 frames, read"),
])
def test_truncated_lossy_file(tmp_path, fmt, subtype, suffix, reason):
    if not writable(fmt, subtype):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    path = write(tmp_path / f"cut.{suffix}", sine(), format=fmt, subtype=subtype)
    truncate(path)
    # MP3: the header (Xing) still says 11025 frames; SoundFile.blocks would pad with stale data here.
    with pytest.raises(AudioError, match=reason):
        load(path)


def test_nan_in_float_wav(tmp_path):
    y = sine()
    y[[300, 301, 5000]] = [np.nan, np.inf, np.nan]
    path = write(tmp_path / "nan.wav", y, subtype="FLOAT")
    with pytest.raises(AudioError, match="3 NaN/Inf sample.*first at frame 300"):
        load(path)
    with pytest.raises(AudioError, match="NaN"):
        list(iter_blocks(path, sample_rate=16000, block_frames=100))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sample_rate": 0}, "sample_rate=0"),
    ({"sample_rate": 22050.0}, "sample_rate=22050.0"),
    ({"channels": 0}, "channels=0"),
    ({"block_frames": -1}, "block_frames=-1"),
    ({"offset": -1.0}, "offset=-1.0"),
    ({"duration": 0.0}, "duration=0.0"),
    ({"quality": "best"}, "quality='best'"),
])
def test_bad_arguments_raise_config_error_before_io(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load("does-not-matter.wav", **kwargs)
    with pytest.raises(ConfigError, match=match):
        iter_blocks("does-not-matter.wav", **kwargs)


# ------------------------------------------------------------------------------------------------
# check_audio


def test_check_audio():
    check_audio(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(AudioError, match="must be floating-point, got dtype=int16"):
        check_audio(np.zeros(5, dtype=np.int16))
    with pytest.raises(AudioError, match=r"shape \(n,\) or \(channels, n\), got shape=\(1, 2, 3\)"):
        check_audio(np.zeros((1, 2, 3)))
    with pytest.raises(AudioError, match="signal must be a numpy.ndarray, got list"):
        check_audio([0.0, 1.0], name="signal")
    y = np.zeros(10)
    y[[4, 7]] = [np.inf, np.nan]
    with pytest.raises(AudioError, match=r"y has 2 non-finite sample\(s\) \(NaN/Inf\); first at index 4$"):
        check_audio(y)
    stereo = np.zeros((2, 10))
    stereo[1, 7] = np.nan
    with pytest.raises(AudioError, match=r"1 non-finite sample\(s\) \(NaN/Inf\); first at index \(1, 7\)"):
        check_audio(stereo)


# ------------------------------------------------------------------------------------------------
# property


@settings(max_examples=25, deadline=None)
@given(file_channels=st.integers(1, 8), file_sr=st.sampled_from([8000, 16000, 22050, 44100, 96000]),
       target_sr=st.sampled_from([None, 8000, 16000, 22050, 48000]), n_frames=st.integers(1, 6000),
       keep_channels=st.booleans(), block_frames=st.integers(64, 5000))
def test_load_shape_formula_and_finite_float32(file_channels, file_sr, target_sr, n_frames,
                                               keep_channels, block_frames):
    rng = np.random.default_rng(n_frames)
    y = rng.uniform(-1, 1, (file_channels, n_frames)).astype(np.float32)
    channels = file_channels if keep_channels else 1
    with tempfile.TemporaryDirectory() as tmp:
        path = write(os.path.join(tmp, "x.wav"), y, sr=file_sr, subtype="PCM_16")
        y_hat, sr = load(path, sample_rate=target_sr, channels=channels, block_frames=block_frames)
    sr_expected = file_sr if target_sr is None else target_sr
    n_expected = int(np.floor(n_frames * sr_expected / file_sr + 0.5))
    assert sr == sr_expected
    assert y_hat.shape == ((n_expected,) if channels == 1 else (channels, n_expected))
    assert y_hat.dtype == np.float32 and np.isfinite(y_hat).all()
