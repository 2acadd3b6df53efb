"""Tests of mirdl.features.segment: patches (clip labels), frame windows (frame labels), crops."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirdl.errors import ConfigError
from mirdl.features.segment import PAD_MODES, center_crop, frame_windows, n_patches, patches, random_crop

PATCH = 4


def ramp(n_frames, n_bins=2):
    """A (n_bins, n_frames) feature whose value at frame t, bin b is 100 * b + t + 1 (never 0)."""
    return (100 * np.arange(n_bins)[:, None] + np.arange(n_frames)[None, :] + 1).astype(np.float32)


def expected_patch(x, start, *, pad, pad_value=0.0):
    n = x.shape[-1]
    frames = np.arange(start, start + PATCH)
    if pad == "wrap":
        return x[..., frames % n]
    out = np.full(x.shape[:-1] + (PATCH,), pad_value, dtype=x.dtype)
    inside = frames < n
    out[..., inside] = x[..., frames[inside]]
    return out


# ------------------------------------------------------------------------------------------- edges


@pytest.mark.parametrize(
    ("n_frames", "hop", "pad", "starts"),
    [
        (4, 4, "silence", [0]),  # exactly one patch
        (4, 4, "wrap", [0]),
        (4, 4, "drop", [0]),
        (3, 4, "silence", [0]),  # one frame short of a patch
        (3, 4, "wrap", [0]),
        (3, 4, "drop", []),
        (5, 4, "silence", [0, 4]),  # one frame more
        (5, 4, "wrap", [0, 4]),
        (5, 4, "drop", [0]),
        (1, 4, "silence", [0]),  # much shorter than a patch
        (1, 4, "wrap", [0]),
        (1, 4, "drop", []),
        (0, 4, "silence", []),  # zero frames
        (0, 4, "wrap", []),
        (0, 4, "drop", []),
        (10, 6, "silence", [0, 6]),  # hop > patch: frames 4, 5 skipped
        (10, 6, "drop", [0, 6]),  # 6 + 4 == 10: not partial
        (11, 6, "drop", [0, 6]),
        (13, 6, "silence", [0, 6, 12]),
        (13, 6, "drop", [0, 6]),
        (10, 1, "silence", [0, 1, 2, 3, 4, 5, 6]),  # hop < patch: stop at the first patch reaching the end
        (10, 3, "silence", [0, 3, 6]),
        (11, 3, "silence", [0, 3, 6, 9]),
        (11, 3, "drop", [0, 3, 6]),
    ],
)
def test_patches_edges(n_frames, hop, pad, starts):
    x = ramp(n_frames)
    out, got_starts = patches(x, patch_frames=PATCH, hop_frames=hop, pad=pad)
    assert got_starts.dtype == np.int64
    assert got_starts.tolist() == starts
    assert out.shape == (len(starts), 2, PATCH) and out.dtype == np.float32
    assert n_patches(n_frames, patch_frames=PATCH, hop_frames=hop, pad=pad) == len(starts)
    for patch, start in zip(out, starts):
        np.testing.assert_array_equal(patch, expected_patch(x, start, pad=pad))


def test_silence_pads_with_pad_column():
    x = ramp(6, n_bins=3)
    column = np.array([[-80.0], [-81.0], [-82.0]], dtype=np.float32)
    out, starts = patches(x, patch_frames=4, hop_frames=4, pad="silence", pad_column=column)
    np.testing.assert_array_equal(out[1], np.concatenate([x[:, 4:], np.repeat(column, 2, axis=1)], axis=1))
    # a scalar broadcasts too
    out, _ = patches(x, patch_frames=4, hop_frames=4, pad_column=-100.0)
    assert (out[1, :, 2:] == -100.0).all()


def test_short_track_silence_and_wrap():
    x = np.array([1.0, 2.0], dtype=np.float32)
    silence, _ = patches(x, patch_frames=5, hop_frames=5, pad="silence", pad_column=-1.0)
    wrap, _ = patches(x, patch_frames=5, hop_frames=5, pad="wrap")
    assert silence.tolist() == [[1, 2, -1, -1, -1]]
    assert wrap.tolist() == [[1, 2, 1, 2, 1]]


def test_bad_pad_column_names_shapes():
    with pytest.raises(ConfigError, match=r"pad_column of shape \(3, 1\).*expected shape \(2, 1\)"):
        patches(ramp(5), patch_frames=4, hop_frames=4, pad_column=np.zeros((3, 1)))


def test_multichannel_leading_axes():
    x = np.random.default_rng(0).standard_normal((2, 3, 9)).astype(np.float32)  # (channels, bins, frames)
    out, starts = patches(x, patch_frames=4, hop_frames=2, pad="wrap")
    assert out.shape == (4, 2, 3, 4)
    assert starts.tolist() == [0, 2, 4, 6]
    np.testing.assert_array_equal(out[1], x[..., 2:6])
    np.testing.assert_array_equal(out[3], x[..., [6, 7, 8, 0]])
    assert out.flags["C_CONTIGUOUS"] and not np.shares_memory(out, x)


def test_one_dimensional_input_and_dtype_kept():
    out, _ = patches(np.arange(6, dtype=np.int16), patch_frames=4, hop_frames=4)
    assert out.dtype == np.int16 and out.tolist() == [[0, 1, 2, 3], [4, 5, 0, 0]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patch_frames": 0}, r"patch_frames=0 must be an integer >= 1"),
        ({"patch_frames": -3}, r"patch_frames=-3"),
        ({"patch_frames": 2.5}, r"patch_frames=2\.5"),
        ({"patch_frames": True}, r"patch_frames=True"),
        ({"hop_frames": 0}, r"hop_frames=0 must be an integer >= 1"),
        ({"pad": "zeros"}, r"pad='zeros' must be one of \['silence', 'wrap', 'drop'\]"),
    ],
)
def test_patches_reject_bad_arguments(kwargs, match):
    args = {"patch_frames": 4, "hop_frames": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        patches(ramp(8), **args)


def test_patches_reject_scalar():
    with pytest.raises(ConfigError, match="time axis"):
        patches(np.float32(1.0), patch_frames=1, hop_frames=1)


@settings(max_examples=200, deadline=None)
@given(
    n_frames=st.integers(0, 60),
    patch_frames=st.integers(1, 12),
    hop_frames=st.integers(1, 12),
    pad=st.sampled_from(PAD_MODES),
)
def test_number_of_patches_formula(n_frames, patch_frames, hop_frames, pad):
    out, starts = patches(np.arange(n_frames, dtype=np.float32), patch_frames=patch_frames,
                          hop_frames=hop_frames, pad=pad)
    if n_frames == 0:
        expected = 0
    elif pad == "drop":
        expected = 0 if n_frames < patch_frames else (n_frames - patch_frames) // hop_frames + 1
    else:
        expected = min(math.ceil(n_frames / hop_frames),
                       1 + math.ceil(max(n_frames - patch_frames, 0) / hop_frames))
    assert len(starts) == expected == out.shape[0]
    assert out.shape[1:] == (patch_frames,)
    # starts are 0, hop, 2 hop, ... all inside the track; at most the last patch is partial
    assert starts.tolist() == [i * hop_frames for i in range(expected)]
    assert all(s < n_frames for s in starts)
    assert all(s + patch_frames < n_frames for s in starts[:-1])
    if pad == "drop":
        assert all(s + patch_frames <= n_frames for s in starts)
    elif n_frames and hop_frames <= patch_frames:
        assert starts[-1] + patch_frames >= n_frames  # without gaps, the last frame is covered
    # patches hold the frames they claim to
    for patch, start in zip(out, starts):
        inside = min(patch_frames, n_frames - start)
        np.testing.assert_array_equal(patch[:inside], np.arange(start, start + inside))


# ------------------------------------------------------------------------------------- frame windows


@pytest.mark.parametrize("pad", PAD_MODES)
def test_frame_windows_labels_are_the_frame_indices(pad):
    n_frames = 11
    x = ramp(n_frames, n_bins=3)
    labels = np.arange(n_frames)
    windows, window_labels, starts = frame_windows(x, labels, window_frames=4, hop_frames=3, pad=pad,
                                                   label_pad=-1)
    assert windows.shape == (len(starts), 3, 4) and window_labels.shape == (len(starts), 4)
    for window, window_label, start in zip(windows, window_labels, starts):
        frames = start + np.arange(4)
        if pad == "wrap":
            np.testing.assert_array_equal(window_label, frames % n_frames)
        else:
            np.testing.assert_array_equal(window_label, np.where(frames < n_frames, frames, -1))
        # the feature frames are the labelled frames
        real = window_label >= 0
        np.testing.assert_array_equal(window[:, real], x[:, window_label[real]])


def test_frame_windows_multichannel_labels_and_feature():
    x = np.zeros((2, 5, 7), np.float32)  # (channels, bins, frames)
    roll = np.tile(np.arange(7), (88, 1))  # (pitches, frames)
    windows, window_labels, starts = frame_windows(x, roll, window_frames=4, hop_frames=4, pad_column=-1.0)
    assert windows.shape == (2, 2, 5, 4) and window_labels.shape == (2, 88, 4)
    assert window_labels[1, 0].tolist() == [4, 5, 6, 0]
    assert (windows[1, ..., 3] == -1.0).all()


def test_frame_windows_rejects_misaligned_labels():
    with pytest.raises(ConfigError, match=r"labels have 9 frames but x has 10"):
        frame_windows(ramp(10), np.zeros(9), window_frames=4, hop_frames=4)


# --------------------------------------------------------------------------------------------- crops


def test_center_crop():
    crop, start = center_crop(ramp(10), n_frames=4)
    assert start == 3
    np.testing.assert_array_equal(crop, ramp(10)[:, 3:7])
    crop, start = center_crop(np.arange(5), n_frames=5)
    assert start == 0 and crop.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("pad", "expected"), [("silence", [0, 1, 2, 9, 9]), ("wrap", [0, 1, 2, 0, 1])])
def test_crops_pad_short_inputs(pad, expected):
    x = np.arange(3)
    crop, start = center_crop(x, n_frames=5, pad=pad, pad_column=9)
    assert start == 0 and crop.tolist() == expected
    crop, start = random_crop(x, n_frames=5, rng=np.random.default_rng(0), pad=pad, pad_column=9)
    assert start == 0 and crop.tolist() == expected


def test_random_crop_is_uniform_over_valid_starts_and_reproducible():
    x = ramp(10)
    rng = np.random.default_rng(1)
    starts = {random_crop(x, n_frames=4, rng=rng)[1] for _ in range(200)}
    assert starts == set(range(7))
    a = random_crop(x, n_frames=4, rng=np.random.default_rng(5))
    b = random_crop(x, n_frames=4, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[0], x[:, a[1]:a[1] + 4])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: center_crop(np.arange(3), n_frames=0), r"n_frames=0 must be an integer >= 1"),
        (lambda: center_crop(np.arange(3), n_frames=2, pad="drop"), r"pad='drop' must be one of \['silence', 'wrap'\]"),
        (lambda: random_crop(np.arange(3), n_frames=2, rng=0), r"rng must be a numpy\.random\.Generator"),
        (lambda: center_crop(np.zeros(0), n_frames=2, pad="wrap"), r"pad='wrap' cannot loop an array with 0 frames"),
    ],
)
def test_crops_reject_bad_arguments(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
