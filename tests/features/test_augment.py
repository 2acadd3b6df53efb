"""Tests of mirdl.features.augment: pure ops, the spec, and reproducible variants with moved labels."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import librosa
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mirdl.features.augment import (
    AUGMENT_OPS,
    AugmentSpec,
    add_noise,
    apply_variant,
    compress,
    gain,
    mix_background,
    pitch_shift,
    random_eq,
    sample_params,
    time_stretch,
    variant_rng,
)
from mirdl.errors import AudioError, ConfigError
from mirdl.features.labels import Annotations

SR = 16000
ONLY_CHEAP_OPS = {"time_stretch_rate": None, "pitch_shift_steps": None}  # skip the phase vocoder


def sine(freq=440.0, *, seconds=1.0, sr=SR, amplitude=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def snr_db(clean, noisy):
    clean = clean.astype(np.float64)
    return 10 * np.log10(np.mean(clean**2) / np.mean((noisy.astype(np.float64) - clean) ** 2))


def only(**ranges):
    """A spec with every op disabled except the given ones."""
    off = {"time_stretch_rate": None, "pitch_shift_steps": None, "eq_max_gain_db": None, "noise_snr_db": None,
           "gain_db": None}
    return AugmentSpec(n_variants=2, **{**off, **ranges})


@pytest.fixture(scope="module")
def music():
    """One second of three partials plus a little noise: a deterministic, non-trivial signal."""
    rng = np.random.default_rng(42)
    y = sine(220, amplitude=0.3) + sine(330, amplitude=0.2) + sine(1250, amplitude=0.1)
    return (y + 0.01 * rng.standard_normal(y.shape)).astype(np.float32)


# ---------------------------------------------------------------------------------------- randomness


def test_variant_rng_follows_the_documented_scheme():
    digest = hashlib.sha256("artist/track 01.flac".encode("utf-8")).digest()
    word = int.from_bytes(digest[:8], "big")
    expected = np.random.default_rng([7, word >> 32, word & 0xFFFFFFFF, 3]).random(5)
    got = variant_rng(seed=7, track_id="artist/track 01.flac", variant=3).random(5)
    np.testing.assert_array_equal(got, expected)  # exact: the same generator state gives the same draws


def test_variant_rng_differs_by_seed_track_and_variant():
    draws = {
        (seed, track, variant): variant_rng(seed=seed, track_id=track, variant=variant).integers(1 << 62)
        for seed in (0, 1) for track in ("a", "b") for variant in (0, 1)
    }
    assert len(set(draws.values())) == len(draws)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"seed": -1}, r"seed=-1"), ({"variant": -2}, r"variant=-2"), ({"track_id": 5}, r"track_id=5 must be a str")],
)
def test_variant_rng_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        variant_rng(**{"seed": 0, "track_id": "a", "variant": 0, **kwargs})


# ----------------------------------------------------------------------------------------------- ops


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
@pytest.mark.parametrize("shape", [(SR,), (2, SR)])
@pytest.mark.parametrize("target", [-5.0, 10.0, 30.0])
def test_add_noise_reaches_exact_snr(color, shape, target):
    y = np.broadcast_to(sine(), shape).copy()
    y_out, info = add_noise(y, snr_db=target, rng=np.random.default_rng(0), color=color)
    assert y_out.shape == shape and y_out.dtype == np.float32
    assert abs(snr_db(y, y_out) - target) < 0.1
    assert info == {"snr_db": target, "color": color, "applied": True}


@pytest.mark.parametrize(("color", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colors_have_their_spectral_slope(color, slope):
    y = np.ones(4 * SR, np.float32)
    y_out, _ = add_noise(y, snr_db=0.0, rng=np.random.default_rng(1), color=color)
    freqs, psd = scipy.signal.welch(y_out - y, fs=SR, nperseg=4096)
    band = (freqs > 50) & (freqs < 5000)
    fitted = np.polyfit(np.log10(freqs[band]), np.log10(psd[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.15)


def test_add_noise_leaves_silence_alone():
    y_out, info = add_noise(np.zeros(100, np.float32), snr_db=10.0, rng=np.random.default_rng(0))
    assert not y_out.any() and info["applied"] is False


def test_add_noise_rejects_unknown_color():
    with pytest.raises(ConfigError, match=r"color='blue' must be one of"):
        add_noise(sine(), snr_db=10.0, rng=np.random.default_rng(0), color="blue")


def test_gain_is_exact():
    y = sine()
    y_out, info = gain(y, gain_db=6.0)
    np.testing.assert_allclose(y_out, y * 10 ** (6 / 20), rtol=1e-6)
    assert info == {"gain_db": 6.0}


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_random_eq_single_band_has_its_gain_at_the_centre(seed):
    impulse = np.zeros(SR, np.float32)
    impulse[0] = 1.0
    response, info = random_eq(impulse, sr=SR, rng=np.random.default_rng(seed), n_bands=1, max_gain_db=12.0, q=2.0)
    (center,), (drawn,) = info["center_hz"], info["gain_db"]
    assert 60.0 <= center <= 0.4 * SR
    _, h = scipy.signal.freqz(response.astype(np.float64), worN=[center], fs=SR)
    assert 20 * np.log10(abs(h[0])) == pytest.approx(drawn, abs=0.05)
    # far below the centre the filter is transparent
    _, h_low = scipy.signal.freqz(response.astype(np.float64), worN=[center / 16], fs=SR)
    assert abs(20 * np.log10(abs(h_low[0]))) < 0.5
    assert abs(drawn) <= 12.0


def test_random_eq_centres_spread_over_log_bands_and_are_reproducible():
    rng = np.random.default_rng(11)
    y = sine()
    out1, info = random_eq(y, sr=SR, rng=rng, n_bands=4, max_gain_db=6.0, fmin=100.0, fmax=6400.0)
    edges = np.geomspace(100.0, 6400.0, 5)
    assert all(lo <= c <= hi for c, lo, hi in zip(info["center_hz"], edges[:-1], edges[1:]))
    assert all(abs(g) <= 6.0 for g in info["gain_db"])
    out2, info2 = random_eq(y, sr=SR, rng=np.random.default_rng(11), n_bands=4, max_gain_db=6.0, fmin=100.0,
                            fmax=6400.0)
    np.testing.assert_array_equal(out1, out2)  # exact: same seed, same machine -> same augmentation
    assert info == info2


def test_random_eq_zero_gain_is_identity_and_stereo_channels_match():
    y = np.stack([sine(), sine()])
    out, _ = random_eq(y, sr=SR, rng=np.random.default_rng(0), max_gain_db=0.0)
    np.testing.assert_allclose(out, y, atol=1e-6)
    out, _ = random_eq(y, sr=SR, rng=np.random.default_rng(0))
    np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-6)  # one filter for both channels


def test_random_eq_rejects_fmax_above_nyquist():
    with pytest.raises(ConfigError, match=r"fmax=9000\.0 must satisfy"):
        random_eq(sine(), sr=SR, rng=np.random.default_rng(0), fmax=9000.0)


def level_db(x):
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


def test_compress_steady_state_follows_the_static_curve():
    y = sine(amplitude=0.9)  # -3.9 dB RMS
    out, info = compress(y, sr=SR, threshold_db=-20.0, ratio=4.0, attack_ms=5.0, release_ms=50.0)
    expected = -20.0 + (level_db(y) - -20.0) / 4.0
    assert level_db(out[SR // 2:]) == pytest.approx(expected, abs=0.3)
    assert info == {"threshold_db": -20.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 50.0, "makeup_db": 0.0}


def test_compress_below_threshold_ratio_one_and_makeup():
    quiet = sine(amplitude=0.01)  # -43 dB
    np.testing.assert_allclose(compress(quiet, sr=SR, threshold_db=-20.0, ratio=4.0)[0], quiet, rtol=1e-6)
    loud = sine(amplitude=0.9)
    np.testing.assert_allclose(compress(loud, sr=SR, threshold_db=-40.0, ratio=1.0)[0], loud, rtol=1e-6)
    made_up, _ = compress(quiet, sr=SR, threshold_db=-20.0, ratio=4.0, makeup_db=6.0)
    np.testing.assert_allclose(made_up, quiet * 10 ** (6 / 20), rtol=1e-5)


def test_compress_attack_is_fast_and_release_slow():
    loud, quiet = sine(amplitude=0.9, seconds=0.5), sine(amplitude=0.02, seconds=0.5)  # -3.9 and -37 dB
    y = np.concatenate([loud, quiet])
    out, _ = compress(y, sr=SR, threshold_db=-30.0, ratio=10.0, attack_ms=2.0, release_ms=100.0)
    gain_db = 20 * np.log10(np.abs(out[1:].astype(np.float64)) / np.maximum(np.abs(y[1:]), 1e-9) + 1e-12)
    ms = SR // 1000
    assert np.median(gain_db[30 * ms:60 * ms]) < -20  # reduction reached within a few attack times
    half = SR // 2
    # just after the loud part ends the quiet part is still held down, and recovers over ~release
    assert np.median(gain_db[half + 5 * ms:half + 15 * ms]) < -10
    assert np.median(gain_db[half + 400 * ms:half + 490 * ms]) > -1


def test_compress_links_channels():
    y = np.stack([sine(amplitude=0.9), sine(amplitude=0.1)])
    out, _ = compress(y, sr=SR, threshold_db=-20.0, ratio=4.0)
    ratio = out[1, 1:] / np.where(y[1, 1:] == 0, 1, y[1, 1:])
    np.testing.assert_allclose(out[0, 1:] / np.where(y[0, 1:] == 0, 1, y[0, 1:]), ratio, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"ratio": 0.5}, r"ratio=0\.5 must be >= 1"), ({"attack_ms": 0}, r"attack_ms=0 must be > 0"),
     ({"threshold_db": float("nan")}, r"threshold_db=nan must be finite")],
)
def test_compress_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        compress(sine(), **{"sr": SR, "threshold_db": -20.0, "ratio": 2.0, **kwargs})


def test_mix_background_loops_crops_and_hits_snr():
    y = sine(seconds=1.0)
    background = np.random.default_rng(5).standard_normal(3000).astype(np.float32)  # shorter than y: looped
    out, info = mix_background(y, background, snr_db=6.0, rng=np.random.default_rng(2))
    assert abs(snr_db(y, out) - 6.0) < 0.1
    assert 0 <= info["offset"] < 3000 and info["applied"] is True
    residual = out.astype(np.float64) - y
    looped = np.take(background, (info["offset"] + np.arange(y.size)) % 3000).astype(np.float64)
    scale = residual @ looped / (looped @ looped)
    np.testing.assert_allclose(residual, scale * looped, atol=1e-6)


def test_mix_background_mono_into_stereo_and_channel_mismatch():
    y = np.stack([sine(), sine(330)])
    out, _ = mix_background(y, np.ones(10, np.float32), snr_db=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(out[0] - y[0], out[1] - y[1], atol=1e-6)
    with pytest.raises(AudioError, match=r"background of shape \(3, 10\) does not match"):
        mix_background(y, np.ones((3, 10), np.float32), snr_db=0.0, rng=np.random.default_rng(0))


def test_mix_background_silent_background_is_not_applied():
    y = sine()
    out, info = mix_background(y, np.zeros(100, np.float32), snr_db=0.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out, y)  # exact: nothing is mixed in, the signal is returned unchanged
    assert info["applied"] is False


def test_ops_reject_unusable_audio():
    with pytest.raises(AudioError, match="non-finite"):
        gain(np.array([0.0, np.nan], np.float32), gain_db=1.0)
    with pytest.raises(AudioError, match="floating-point"):
        gain(np.array([1, 2]), gain_db=1.0)
    with pytest.raises(AudioError, match="no samples"):
        gain(np.zeros(0, np.float32), gain_db=1.0)


# ------------------------------------------------------------------------------- labels stay aligned


def test_time_stretched_clicks_land_on_transformed_onsets():
    sr = 22050
    times = (0.21, 0.57, 0.93, 1.34, 1.72)
    y = np.zeros(2 * sr, np.float32)
    y[np.round(np.array(times) * sr).astype(int)] = 1.0
    # n_fft=512: the phase vocoder moves transients by up to ~n_fft / (2 sr); 2048 would be ~45 ms
    spec = only(time_stretch_rate=(1.25, 1.25), phase_vocoder_n_fft=512)
    y_out, params, ann = apply_variant(y, sr=sr, spec=spec, track_id="clicks", variant=1,
                                       annotations=Annotations(onsets=times))
    assert params["time_stretch"] == {"rate": 1.25, "n_fft": 512}
    assert y_out.size == round(y.size / 1.25)
    # detect: regions of smoothed energy, each located by its energy centroid
    energy = y_out.astype(np.float64) ** 2
    smooth = scipy.signal.fftconvolve(energy, np.hanning(512), mode="same")
    regions, n_regions = scipy.ndimage.label(smooth > 0.02 * smooth.max())
    assert n_regions == len(times)
    index = np.arange(y_out.size)
    labels = range(1, n_regions + 1)
    detected = np.array(scipy.ndimage.sum_labels(energy * index, regions, labels)) / np.array(
        scipy.ndimage.sum_labels(energy, regions, labels)) / sr
    np.testing.assert_allclose(detected, np.array(ann.onsets), atol=0.020)
    np.testing.assert_allclose(ann.onsets, np.array(times) / 1.25)


def test_pitch_shifted_sine_matches_transformed_note():
    y = sine(440.0)
    spec = only(pitch_shift_steps=(2.0, 2.0))
    y_out, params, ann = apply_variant(y, sr=SR, spec=spec, track_id="a4", variant=1,
                                       annotations=Annotations(notes=((0.0, 1.0, 69.0),)))
    assert params["pitch_shift"]["n_steps"] == 2.0 and y_out.shape == y.shape
    spectrum = np.abs(np.fft.rfft(y_out[2048:-2048] * np.hanning(y_out.size - 4096)))
    estimated = np.fft.rfftfreq(y_out.size - 4096, d=1 / SR)[np.argmax(spectrum)]
    assert ann.notes[0][2] == 71.0
    assert estimated == pytest.approx(librosa.midi_to_hz(ann.notes[0][2]), rel=0.01)
    assert estimated == pytest.approx(493.88, rel=0.01)


def test_pitch_shift_and_time_stretch_ops_directly():
    y = np.stack([sine(440.0), sine(440.0)])
    shifted, info = pitch_shift(y, sr=SR, n_steps=-12)
    assert shifted.shape == y.shape and info == {"n_steps": -12.0, "n_fft": 2048}
    stretched, info = time_stretch(y, rate=0.8)
    assert stretched.shape == (2, round(SR / 0.8)) and info == {"rate": 0.8, "n_fft": 2048}
    np.testing.assert_array_equal(time_stretch(y, rate=1.0)[0], y)  # exact: rate 1 is the identity
    with pytest.raises(ConfigError, match=r"n_fft=511 must be even"):
        time_stretch(y, rate=1.1, n_fft=511)


# -------------------------------------------------------------------------------------------- spec


def test_default_spec_fingerprint_is_pinned():
    # Changing this value invalidates stored augmented data: bump AUGMENT_FORMAT_VERSION on purpose.
    assert AugmentSpec().fingerprint() == PINNED_DEFAULT_FINGERPRINT


PINNED_DEFAULT_FINGERPRINT = "9078bb67bfcfb3d6"


def test_spec_round_trips_through_json_and_yaml():
    spec = AugmentSpec(n_variants=5, seed=3, pitch_shift_steps=(-1, 1), pitch_shift_integer=True,
                       compress_ratio=(2, 4), background_snr_db=(5, 10), noise_colors=("pink",))
    data = spec.to_dict()
    assert data["pitch_shift_steps"] == [-1.0, 1.0] and data["noise_colors"] == ["pink"]
    assert AugmentSpec.from_dict(json.loads(json.dumps(data))) == spec
    assert AugmentSpec.from_dict(yaml.safe_load(yaml.safe_dump(data))) == spec
    assert AugmentSpec.from_dict(json.loads(json.dumps(data))).fingerprint() == spec.fingerprint()


def test_fingerprint_tracks_every_field_and_not_container_types():
    base = AugmentSpec()
    assert AugmentSpec(pitch_shift_steps=[-2, 2]).fingerprint() == base.fingerprint()
    changed = [AugmentSpec(seed=1), AugmentSpec(n_variants=2), AugmentSpec(gain_db=None),
               AugmentSpec(noise_snr_db=(20, 41)), AugmentSpec(phase_vocoder_n_fft=1024)]
    prints = {spec.fingerprint() for spec in changed}
    assert len(prints) == len(changed) and base.fingerprint() not in prints
    assert len(base.fingerprint()) == 16 and int(base.fingerprint(), 16) >= 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"time_stretch_rate": (0.0, 1.1)}, r"augment\.time_stretch_rate=\(0\.0, 1\.1\): values must be > 0"),
        ({"pitch_shift_steps": (2, -2)}, r"augment\.pitch_shift_steps=\(2, -2\): low must be <= high"),
        ({"pitch_shift_steps": (0.2, 0.8), "pitch_shift_integer": True}, r"augment\.pitch_shift_steps=.*no integer"),
        ({"noise_snr_db": (10, float("inf"))}, r"augment\.noise_snr_db=.*finite"),
        ({"gain_db": (1, 2, 3)}, r"augment\.gain_db=.*\[low, high\] pair"),
        ({"gain_db": "loud"}, r"augment\.gain_db='loud'"),
        ({"n_variants": 0}, r"augment\.n_variants=0 must be an integer >= 1"),
        ({"n_variants": True}, r"augment\.n_variants=True"),
        ({"seed": -1}, r"augment\.seed=-1"),
        ({"eq_max_gain_db": -1.0}, r"augment\.eq_max_gain_db=-1\.0"),
        ({"compress_ratio": (0.5, 2)}, r"augment\.compress_ratio=.*ratios must be >= 1"),
        ({"compress_attack_ms": 0}, r"augment\.compress_attack_ms=0"),
        ({"noise_colors": ("white", "blue")}, r"augment\.noise_colors="),
        ({"noise_colors": ()}, r"augment\.noise_colors=\(\)"),
        ({"phase_vocoder_n_fft": 1023}, r"augment\.phase_vocoder_n_fft=1023 must be even"),
    ],
)
def test_spec_rejects_bad_fields(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AugmentSpec(**kwargs)


def test_spec_from_dict_rejects_unknown_field():
    with pytest.raises(ConfigError, match=r"augment\.reverb is not a field"):
        AugmentSpec.from_dict({"reverb": 0.5})


# ---------------------------------------------------------------------------------------- variants


def test_sample_params_ranges_and_identity():
    spec = AugmentSpec(n_variants=50, seed=1, compress_ratio=(2.0, 3.0), background_snr_db=(0.0, 5.0))
    assert sample_params(spec, track_id="x", variant=0) == {}
    for variant in range(1, 50):
        params = sample_params(spec, track_id="x", variant=variant)
        assert list(params) == [op for op in AUGMENT_OPS if op in params]
        assert set(params) == {"time_stretch", "pitch_shift", "eq", "compress", "background", "noise", "gain"}
        assert 0.9 <= params["time_stretch"]["rate"] <= 1.1
        assert -2 <= params["pitch_shift"]["n_steps"] <= 2
        assert 2 <= params["compress"]["ratio"] <= 3 and -30 <= params["compress"]["threshold_db"] <= -10
        assert 0 <= params["background"]["snr_db"] <= 5 and 20 <= params["noise"]["snr_db"] <= 40
        assert params["noise"]["color"] in ("white", "pink", "brown")
        assert -6 <= params["gain"]["gain_db"] <= 6
        assert json.loads(json.dumps(params)) == params


def test_sample_params_integer_pitch_steps_cover_the_range():
    spec = AugmentSpec(n_variants=60, pitch_shift_steps=(-2.5, 2.0), pitch_shift_integer=True)
    steps = {sample_params(spec, track_id="t", variant=v)["pitch_shift"]["n_steps"] for v in range(1, 60)}
    assert steps == {-2.0, -1.0, 0.0, 1.0, 2.0}


def test_disabling_one_op_does_not_change_the_others():
    full = sample_params(AugmentSpec(n_variants=3), track_id="t", variant=2)
    fewer = sample_params(AugmentSpec(n_variants=3, pitch_shift_steps=None, eq_max_gain_db=None),
                          track_id="t", variant=2)
    assert fewer == {op: full[op] for op in ("time_stretch", "noise", "gain")}


def test_sample_params_rejects_variant_out_of_range():
    with pytest.raises(ConfigError, match=r"variant=3 must be < augment\.n_variants=3"):
        sample_params(AugmentSpec(n_variants=3), track_id="t", variant=3)


FULL_SPEC = AugmentSpec(n_variants=4, seed=11, compress_ratio=(2.0, 4.0), background_snr_db=(5.0, 15.0))


def background_signal():
    return (0.2 * np.random.default_rng(123).standard_normal(5000)).astype(np.float32)


def digest(y, params):
    return hashlib.sha256(y.tobytes()).hexdigest(), json.dumps(params, sort_keys=True)


def test_variant_zero_is_clean(music):
    ann = Annotations(onsets=(0.5,))
    y_out, params, ann_out = apply_variant(music, sr=SR, spec=FULL_SPEC, track_id="t", variant=0,
                                           background=background_signal(), annotations=ann)
    np.testing.assert_array_equal(y_out, music)  # exact: variant 0 is the clean audio, a copy
    assert y_out is not music and params == {} and ann_out == ann


def test_apply_variant_reports_every_op_it_applied(music):
    y_out, params, _ = apply_variant(music, sr=SR, spec=FULL_SPEC, track_id="t", variant=1,
                                     background=background_signal())
    assert list(params)[:7] == list(AUGMENT_OPS)
    assert set(params) <= set(AUGMENT_OPS) | {"peak_normalize_db"}
    assert len(params["eq"]["center_hz"]) == 3 and "offset" in params["background"]
    assert params == json.loads(json.dumps(params))
    assert y_out.dtype == np.float32 and np.isfinite(y_out).all()
    assert y_out.size == round(music.size / params["time_stretch"]["rate"])
    sampled = sample_params(FULL_SPEC, track_id="t", variant=1)
    assert all(params[op].items() >= sampled[op].items() for op in sampled)


@pytest.mark.slow  # a fresh interpreter pays the librosa.effects import (~3 s)
def test_variants_recompute_alone_identically_in_process_and_subprocess(music):
    # Bit identity is the promise: same seed, same machine -> the same bytes in any process (the
    # subprocess inherits this environment, so it runs the same SIMD paths).
    background = background_signal()
    in_order = [digest(*apply_variant(music, sr=SR, spec=FULL_SPEC, track_id="track-7", variant=v,
                                      background=background)[:2]) for v in range(4)]
    alone = digest(*apply_variant(music, sr=SR, spec=FULL_SPEC, track_id="track-7", variant=2,
                                  background=background)[:2])
    assert alone == in_order[2]
    code = textwrap.dedent(f"""
        import hashlib, json
        import numpy as np
        from mirdl.features.augment import AugmentSpec, apply_variant
        rng = np.random.default_rng(42)
        sr = {SR}
        t = np.arange(sr) / sr
        y = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32) + (0.2 * np.sin(2 * np.pi * 330 * t)).astype(
            np.float32) + (0.1 * np.sin(2 * np.pi * 1250 * t)).astype(np.float32)
        y = (y + 0.01 * rng.standard_normal(y.shape)).astype(np.float32)
        background = (0.2 * np.random.default_rng(123).standard_normal(5000)).astype(np.float32)
        spec = AugmentSpec.from_dict(json.loads({json.dumps(json.dumps(FULL_SPEC.to_dict()))}))
        y_out, params, _ = apply_variant(y, sr=sr, spec=spec, track_id="track-7", variant=2, background=background)
        print(hashlib.sha256(y.tobytes()).hexdigest())
        print(json.dumps([hashlib.sha256(y_out.tobytes()).hexdigest(), json.dumps(params, sort_keys=True)]))
    """)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    input_line, output_line = result.stdout.strip().splitlines()[-2:]
    assert input_line == hashlib.sha256(music.tobytes()).hexdigest()  # the subprocess rebuilt the same input
    assert tuple(json.loads(output_line)) == in_order[2]


def test_different_tracks_and_variants_differ(music):
    outputs = {
        (track, variant): apply_variant(music, sr=SR, spec=FULL_SPEC, track_id=track, variant=variant,
                                        background=background_signal())[0]
        for track in ("a", "b") for variant in (1, 2)
    }
    keys = list(outputs)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            a, b = outputs[first], outputs[second]
            assert a.shape != b.shape or not np.array_equal(a, b), (first, second)


def test_peak_above_full_scale_is_normalised_and_reported():
    y = sine(amplitude=0.9)
    spec = only(gain_db=(12.0, 12.0))
    y_out, params, _ = apply_variant(y, sr=SR, spec=spec, track_id="loud", variant=1)
    assert np.max(np.abs(y_out)) == 1.0  # exact as documented: x / peak with x == peak is 1.0 in IEEE arithmetic
    peak = float(np.max(np.abs(y))) * 10 ** (12 / 20)
    assert params["peak_normalize_db"] == pytest.approx(-20 * np.log10(peak), abs=1e-4)
    # shape kept: normalised, not clipped
    np.testing.assert_allclose(y_out, y / np.max(np.abs(y)), atol=1e-6)
    quiet, params, _ = apply_variant(y, sr=SR, spec=only(gain_db=(-3.0, -3.0)), track_id="q", variant=1)
    assert "peak_normalize_db" not in params


def test_apply_variant_multichannel(music):
    stereo = np.stack([music, 0.5 * music])
    y_out, params, _ = apply_variant(stereo, sr=SR, spec=FULL_SPEC, track_id="st", variant=3,
                                     background=background_signal())
    assert y_out.shape == (2, round(music.size / params["time_stretch"]["rate"]))
    assert y_out.dtype == np.float32 and np.isfinite(y_out).all()


def test_apply_variant_needs_background_when_configured(music):
    with pytest.raises(ConfigError, match=r"augment\.background_snr_db=\(5\.0, 15\.0\) is set but no background"):
        apply_variant(music, sr=SR, spec=FULL_SPEC, track_id="t", variant=1)


@settings(max_examples=15, deadline=None)
@given(
    track_id=st.text(max_size=20),
    seed=st.integers(0, 2**63),
    variant=st.integers(1, 3),
    amplitude=st.floats(0.0, 4.0),
)
def test_same_inputs_same_augmentation_and_finite(track_id, seed, variant, amplitude):
    spec = AugmentSpec(n_variants=4, seed=seed, compress_ratio=(1.0, 8.0), **ONLY_CHEAP_OPS)
    y = sine(330, seconds=0.25, amplitude=amplitude)
    first, params, _ = apply_variant(y, sr=SR, spec=spec, track_id=track_id, variant=variant)
    second, params2, _ = apply_variant(y, sr=SR, spec=spec, track_id=track_id, variant=variant)
    assert first.tobytes() == second.tobytes() and params == params2  # same seed, same machine: bit-identical
    assert first.dtype == np.float32 and first.shape == y.shape
    assert np.isfinite(first).all() and np.max(np.abs(first)) <= 1.0
