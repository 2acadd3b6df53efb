"""Tests for mirdl_tf.layers.LogMel: parity with mirdl.features.representations.logmel, shapes, serialisation.

Reference numbers come from ``mirdl.features.representations.compute`` on the same FeatureSpec;
the audible range is where the reference is within 80 dB of its peak.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mirdl.features.representations import compute  # noqa: E402
from mirdl.features.spec import FeatureSpec  # noqa: E402
from mirdl_tf.layers import LogMel  # noqa: E402

SPECS = {
    # The store default: n_fft 2048, hop 512, 128 Slaney mels, absolute dB.
    "default_22050": FeatureSpec(representation="logmel", sample_rate=22050),
    # Speech-like framing: win_length < n_fft (window zero-padded), HTK mels, band limits, top_db.
    "htk_16000": FeatureSpec(
        representation="logmel", sample_rate=16000,
        params=dict(n_fft=512, win_length=400, hop_length=160, n_mels=40, fmin=20.0, fmax=7600.0,
                    htk=True, top_db=80.0),
    ),
}


def chirp_mix(sr, *, seconds=1.0, seed=0, amplitude=1.0):
    """Linear chirp 100 Hz -> 0.45 sr, plus a 440 Hz sine and white noise, float32."""
    t = np.arange(int(sr * seconds)) / sr
    f0, f1 = 100.0, 0.45 * sr
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2))
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (amplitude * (0.3 * chirp + 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.01 * noise)).astype(np.float32)




def assert_parity(output, reference):
    assert output.shape == reference.shape
    audible = reference > reference.max() - 80.0
    diff = np.abs(np.asarray(output) - reference)[audible]
    assert diff.max() <= 0.1, f"max |diff| {diff.max():.4f} dB"
    assert diff.mean() <= 0.01, f"mean |diff| {diff.mean():.5f} dB"


@pytest.mark.parametrize("key", list(SPECS))
def test_matches_features_logmel(key):
    spec = SPECS[key]
    y = chirp_mix(spec.sample_rate)
    reference = compute(y, spec=spec)
    layer = LogMel.from_spec(spec)
    output = layer(y[np.newaxis])[0].numpy()
    assert reference.shape == (spec.n_mels, 1 + y.size // spec.hop_length)
    assert_parity(output, reference)


def test_batch_and_channels_use_each_examples_own_peak():
    # top_db is relative to each example's peak (over all its channels, as librosa on (channels, n)).
    spec = FeatureSpec(representation="logmel", sample_rate=8000, channels=2,
                       params=dict(n_fft=256, hop_length=64, n_mels=24, top_db=40.0))
    loud = np.stack([chirp_mix(8000, seconds=0.5), chirp_mix(8000, seconds=0.5, seed=1, amplitude=0.1)])
    quiet = 0.01 * loud[::-1]
    batch = np.stack([loud, quiet])  # (batch, channels, n)
    output = LogMel.from_spec(spec)(batch).numpy()
    assert output.shape == (2, 2, 24, 1 + loud.shape[-1] // 64)
    for example, audio in zip(output, batch):
        assert_parity(example, compute(audio, spec=spec))


def test_silence_is_the_amin_floor_and_time_may_vary():
    layer = LogMel(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)
    inputs = keras.Input(shape=(None,), name="waveform")
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, 16, None)
    model = keras.Model(inputs, outputs)
    for n in (1000, 1333):
        out = model(np.zeros((1, n), dtype=np.float32)).numpy()
        assert out.shape == (1, 16, 1 + n // 64)
        np.testing.assert_allclose(out, -100.0, rtol=0, atol=1e-4)  # 10 * log10(1e-10), computed in float32


@given(n_samples=st.integers(1, 3000), hop_length=st.integers(1, 400), center=st.booleans())
@settings(max_examples=25, deadline=None)
def test_n_frames_formula_matches_librosa(n_samples, hop_length, center):
    n_fft = 128
    layer = LogMel(sample_rate=8000, n_fft=n_fft, hop_length=hop_length, n_mels=8, center=center)
    expected = 1 + n_samples // hop_length if center else max(0, 1 + (n_samples - n_fft) // hop_length)
    assert layer.compute_output_shape((None, n_samples)) == (None, 8, expected)
    out = layer(np.zeros((1, n_samples), dtype=np.float32))
    assert tuple(out.shape) == (1, 8, expected)


def test_get_config_round_trip():
    layer = LogMel.from_spec(SPECS["htk_16000"], name="frontend")
    config = layer.get_config()
    assert config["win_length"] == 400 and config["htk"] is True and config["top_db"] == 80.0
    clone = LogMel.from_config(config)
    assert clone.get_config() == config
    y = chirp_mix(16000, seconds=0.25)[np.newaxis]
    # Exact: the same layer rebuilt from its config runs the same ops on the same input in this process.
    np.testing.assert_array_equal(clone(y).numpy(), layer(y).numpy())


def test_save_and_load_gives_identical_output(tmp_path):
    spec = SPECS["htk_16000"]
    inputs = keras.Input(shape=(None,), name="waveform")
    x = LogMel.from_spec(spec)(inputs)
    x = keras.layers.Permute((2, 1), name="to_time_major")(x)
    outputs = keras.layers.Dense(3, name="output")(keras.layers.GlobalAveragePooling1D(name="pool")(x))
    model = keras.Model(inputs, [outputs, x], name="waveform_model")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("logmel"), LogMel)
    y = chirp_mix(16000, seconds=0.25)[np.newaxis]
    for got, want in zip(loaded(y), model(y)):  # exact: saving restores the same weights bit for bit
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_stays_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = LogMel(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)
        assert layer.compute_dtype == "float32"
        assert layer(np.zeros((1, 512), dtype=np.float32)).dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(n_fft=0), r"n_fft must be an integer >= 1. Received: n_fft=0"),
        (dict(n_fft=256, win_length=512), r"win_length must be <= n_fft=256. Received: win_length=512"),
        (dict(norm="l2"), r"norm must be 'slaney' or None. Received: norm='l2'"),
        (dict(sample_rate=8000, fmax=5000.0), r"fmax must be in \(0, 4000\] or None"),
        (dict(top_db=0), r"top_db must be a number > 0 or None"),
        (dict(amin=None), r"amin must be a number > 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LogMel(**kwargs)


def test_from_spec_needs_a_logmel_spec():
    with pytest.raises(ValueError, match=r"representation 'logmel'. Received: representation='mfcc'"):
        LogMel.from_spec(FeatureSpec(representation="mfcc"))


def test_rejects_a_batch_without_samples_axis():
    with pytest.raises(ValueError, match="LogMel expects a waveform"):
        LogMel()(np.zeros((1, 2, 3, 4), dtype=np.float32))
