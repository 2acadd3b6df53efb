"""Tests of mirdl.features.labels: annotations in seconds -> frame targets on librosa's centred grid."""
import json

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirdl.errors import ConfigError
from mirdl.features.labels import (
    Annotations,
    chord_frames,
    frame_times,
    note_roll,
    onset_frames,
    transform_annotations,
    transpose_chord,
)

SR, HOP = 16000, 160  # 10 ms frames: frame k is centred at k / 100 s


# ---------------------------------------------------------------------------------------- Annotations


def test_annotations_normalise_containers_and_sort_onsets():
    ann = Annotations(onsets=[0.3, 0.1, 0.2], notes=[[0.1, 0.5, 60]], chords=[[0, 1, "C:maj"]])
    assert ann.onsets == (0.1, 0.2, 0.3)
    assert ann.notes == ((0.1, 0.5, 60.0),)
    assert ann.chords == ((0.0, 1.0, "C:maj"),)
    assert ann == Annotations(onsets=(0.1, 0.2, 0.3), notes=((0.1, 0.5, 60.0),), chords=((0.0, 1.0, "C:maj"),))


def test_annotations_json_round_trip():
    ann = Annotations(onsets=(0.5, 1.25), notes=((0.5, 1.0, 69.5),), chords=((0.0, 2.0, "Bb:min7/b3"), (2.0, 3.0, "N")))
    assert Annotations.from_dict(json.loads(json.dumps(ann.to_dict()))) == ann
    assert Annotations.from_dict({}) == Annotations()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"onsets": (-0.1,)}, r"annotations\.onsets\[0\]=-0\.1 must be >= 0"),
        ({"onsets": (float("nan"),)}, r"annotations\.onsets\[0\]=nan must be finite"),
        ({"notes": ((1.0, 0.5, 60),)}, r"annotations\.notes\[0\].*offset 0\.5 is before onset 1\.0"),
        ({"notes": ((1.0, 2.0),)}, r"annotations\.notes\[0\].*\(onset_s, offset_s, midi_pitch\)"),
        ({"chords": ((2.0, 1.0, "C"),)}, r"annotations\.chords\[0\].*end 1\.0 is before start 2\.0"),
        ({"chords": ((0.0, 1.0, 3),)}, r"annotations\.chords\[0\].*\(start_s, end_s, label\)"),
    ],
)
def test_annotations_reject_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Annotations(**kwargs)


def test_annotations_from_dict_rejects_unknown_field():
    with pytest.raises(ConfigError, match=r"annotations\.beats is not a field"):
        Annotations.from_dict({"beats": [0.5]})


# ------------------------------------------------------------------------------------ transformation


@pytest.mark.parametrize(
    ("label", "n_steps", "expected"),
    [
        ("C:maj", 2, "D:maj"),
        ("C", -1, "B"),
        ("B:7", 1, "C:7"),
        ("Bb:min", 2, "C:min"),
        ("Eb:maj7", 1, "E:maj7"),
        ("Db", -1, "C"),
        ("Ab:min", 1, "A:min"),
        ("F#:dim", 1, "G:dim"),
        ("E#", 1, "F#"),  # E# is F
        ("Cb:maj", 1, "C:maj"),  # Cb is B
        ("A:maj/3", 3, "C:maj/3"),  # Harte bass is an interval: unchanged
        ("G:sus4(b7)", 12, "G:sus4(b7)"),
        ("N", 5, "N"),
        ("X", -3, "X"),
    ],
)
def test_transpose_chord(label, n_steps, expected):
    assert transpose_chord(label, n_steps=n_steps) == expected


@pytest.mark.parametrize("label", ["H:maj", "c:maj", "", "maj", "C?"])
def test_transpose_chord_rejects_labels_without_root(label):
    with pytest.raises(ConfigError, match="has no root A-G"):
        transpose_chord(label, n_steps=1)


def test_transform_annotations_time_stretch_divides_times_by_rate():
    ann = Annotations(onsets=(1.0, 2.5), notes=((1.0, 2.0, 60.0),), chords=((0.0, 2.5, "C:maj"),))
    out = transform_annotations(ann, time_stretch_rate=1.25)
    assert out.onsets == pytest.approx((0.8, 2.0))
    assert out.notes[0] == pytest.approx((0.8, 1.6, 60.0))
    assert out.chords[0][:2] == pytest.approx((0.0, 2.0)) and out.chords[0][2] == "C:maj"


def test_transform_annotations_integer_pitch_shift_moves_notes_and_chords():
    ann = Annotations(notes=((0.0, 1.0, 69.0),), chords=((0.0, 1.0, "A:min"), (1.0, 2.0, "N")))
    out = transform_annotations(ann, pitch_shift_steps=2.0)
    assert out.notes == ((0.0, 1.0, 71.0),)
    assert [label for _, _, label in out.chords] == ["B:min", "N"]


def test_transform_annotations_fractional_pitch_shift_leaves_chords():
    ann = Annotations(notes=((0.0, 1.0, 60.0),), chords=((0.0, 1.0, "C:maj"),))
    out = transform_annotations(ann, pitch_shift_steps=0.5)
    assert out.notes == ((0.0, 1.0, 60.5),)
    assert out.chords == ann.chords


def test_transform_annotations_identity():
    ann = Annotations(onsets=(0.1,), notes=((0.1, 0.2, 50.0),), chords=((0.0, 1.0, "X"),))
    assert transform_annotations(ann) == ann


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf")])
def test_transform_annotations_rejects_bad_rate(rate):
    with pytest.raises(ConfigError, match="time_stretch_rate="):
        transform_annotations(Annotations(), time_stretch_rate=rate)


# ------------------------------------------------------------------------------------- frame targets


def test_frame_times_match_librosa():
    np.testing.assert_allclose(
        frame_times(50, sr=22050, hop_length=512),
        librosa.frames_to_time(np.arange(50), sr=22050, hop_length=512),
    )
    assert frame_times(0, sr=SR, hop_length=HOP).shape == (0,)


def test_onset_frames_marks_nearest_frame_centre():
    # 0.104 s -> frame 10.4 -> 10; 0.2051 -> 20.51 -> 21; 0.299 -> 29.9 -> 30
    target = onset_frames([0.104, 0.2051, 0.299], n_frames=40, sr=SR, hop_length=HOP)
    assert target.dtype == np.float32 and target.shape == (40,)
    assert np.flatnonzero(target).tolist() == [10, 21, 30]
    assert set(np.unique(target)) == {0.0, 1.0}


def test_onset_frames_rounds_halves_up():
    # 0.125 s and 0.375 s are frames 0.5 and 1.5 exactly; round-half-even would give 0 and 2
    target = onset_frames([0.125, 0.375], n_frames=4, sr=16000, hop_length=4000)
    assert target.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_onset_frames_agrees_with_librosa_frame_centres():
    times = librosa.frames_to_time(np.array([3, 17, 42]), sr=22050, hop_length=512)
    target = onset_frames(times, n_frames=50, sr=22050, hop_length=512)
    assert np.flatnonzero(target).tolist() == [3, 17, 42]


def test_onset_frames_widen_marks_neighbours_half_and_keeps_onsets_one():
    target = onset_frames([0.10, 0.12], n_frames=20, sr=SR, hop_length=HOP, widen=2)
    expected = np.zeros(20, np.float32)
    expected[[8, 9, 11, 13, 14]] = 0.5
    expected[[10, 12]] = 1.0
    np.testing.assert_array_equal(target, expected)


def test_onset_frames_edges_and_out_of_grid():
    target = onset_frames([0.0, 0.19, 5.0], n_frames=20, sr=SR, hop_length=HOP, widen=1)
    assert target[0] == 1.0 and target[1] == 0.5
    assert target[19] == 1.0 and target[18] == 0.5
    assert target.sum() == 3.0  # the onset at 5 s is outside the grid
    # an onset just past the last frame still widens into it
    assert onset_frames([0.20], n_frames=20, sr=SR, hop_length=HOP, widen=1)[19] == 0.5
    assert onset_frames([], n_frames=5, sr=SR, hop_length=HOP).tolist() == [0.0] * 5
    assert onset_frames([0.1], n_frames=0, sr=SR, hop_length=HOP).shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_frames": -1}, r"n_frames=-1"),
        ({"sr": 0}, r"sr=0"),
        ({"hop_length": 0}, r"hop_length=0"),
        ({"hop_length": 1.5}, r"hop_length=1\.5"),
        ({"widen": -1}, r"widen=-1"),
    ],
)
def test_onset_frames_rejects_bad_grid(kwargs, match):
    args = {"n_frames": 10, "sr": SR, "hop_length": HOP, **kwargs}
    with pytest.raises(ConfigError, match=match):
        onset_frames([0.1], **args)


def test_note_roll_rows_frames_and_drops():
    notes = [
        (0.10, 0.15, 60.0),  # frames 10..14 on row 60 - 21
        (0.00, 0.001, 21.0),  # shorter than a frame: still its onset frame
        (0.05, 0.08, 69.4),  # rounded to 69
        (0.05, 0.08, 20.0),  # below the piano: dropped
        (0.05, 0.08, 109.0),  # above: dropped
        (0.18, 1.00, 108.0),  # runs past the grid: cut at frame 19
    ]
    roll = note_roll(notes, n_frames=20, sr=SR, hop_length=HOP)
    assert roll.shape == (88, 20) and roll.dtype == np.float32
    assert np.flatnonzero(roll[60 - 21]).tolist() == list(range(10, 15))
    assert np.flatnonzero(roll[0]).tolist() == [0]
    assert np.flatnonzero(roll[69 - 21]).tolist() == [5, 6, 7]
    assert np.flatnonzero(roll[87]).tolist() == [18, 19]
    assert roll.sum() == 5 + 1 + 3 + 2


def test_note_roll_follows_transformed_notes():
    ann = Annotations(notes=((0.1, 0.2, 60.0),))
    moved = transform_annotations(ann, time_stretch_rate=2.0, pitch_shift_steps=3)
    roll = note_roll(moved.notes, n_frames=30, sr=SR, hop_length=HOP, min_pitch=60, n_pitches=12)
    assert np.argwhere(roll).tolist() == [[3, 5], [3, 6], [3, 7], [3, 8], [3, 9]]


def test_note_roll_empty():
    assert note_roll([], n_frames=4, sr=SR, hop_length=HOP).sum() == 0
    with pytest.raises(ConfigError, match="n_pitches=0"):
        note_roll([], n_frames=4, sr=SR, hop_length=HOP, n_pitches=0)


VOCAB = ("N", "C:maj", "G:maj", "A:min")


def test_chord_frames_by_frame_centre_with_gaps_and_unknowns():
    chords = [(0.0, 0.05, "C:maj"), (0.05, 0.10, "E:min"), (0.12, 0.20, "G:maj"), (0.20, 0.25, "A:min")]
    target = chord_frames(chords, n_frames=30, sr=SR, hop_length=HOP, vocabulary=VOCAB)
    assert target.dtype == np.int32 and target.shape == (30,)
    expected = [1] * 5 + [0] * 5 + [0] * 2 + [2] * 8 + [3] * 5 + [0] * 5
    assert target.tolist() == expected


def test_chord_frames_later_segment_wins_on_overlap():
    target = chord_frames([(0.0, 0.1, "C:maj"), (0.05, 0.1, "G:maj")], n_frames=10, sr=SR, hop_length=HOP,
                          vocabulary=VOCAB)
    assert target.tolist() == [1] * 5 + [2] * 5


def test_chord_frames_n_not_first_in_vocabulary():
    target = chord_frames([(0.0, 0.02, "C:maj")], n_frames=4, sr=SR, hop_length=HOP, vocabulary=("C:maj", "N"))
    assert target.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("vocabulary", "match"), [(("C:maj",), "must contain the no-chord label 'N'"), (("N", "N"), "repeated")]
)
def test_chord_frames_rejects_bad_vocabulary(vocabulary, match):
    with pytest.raises(ConfigError, match=match):
        chord_frames([], n_frames=4, sr=SR, hop_length=HOP, vocabulary=vocabulary)


@settings(max_examples=50, deadline=None)
@given(
    times=st.lists(st.floats(0, 2, allow_nan=False), max_size=10),
    n_frames=st.integers(0, 300),
    widen=st.integers(0, 3),
)
def test_onset_frames_properties(times, n_frames, widen):
    target = onset_frames(times, n_frames=n_frames, sr=SR, hop_length=HOP, widen=widen)
    assert target.shape == (n_frames,)
    assert set(np.unique(target)) <= {0.0, 0.5, 1.0}
    in_grid = {int(np.floor(t * SR / HOP + 0.5)) for t in times} & set(range(n_frames))
    assert set(np.flatnonzero(target == 1.0).tolist()) == in_grid
