"""Frame-level targets from time annotations: onsets, notes (piano roll) and chords.

Annotations are kept in seconds (:class:`Annotations`) and turned into frame targets only
when a feature's frame grid is known. The frame convention is librosa's with
``center=True``: frame ``k`` is centred at ``k * hop_length / sr`` seconds, so an event at
time ``t`` belongs to frame ``round(t * sr / hop_length)`` (the frame whose centre is
nearest; halves round up).

Augmentation changes the annotations too: :func:`transform_annotations` maps them through
a time stretch (librosa convention, ``rate > 1`` is faster) and a pitch shift.

Examples
--------
>>> ann = Annotations(onsets=(0.5,), notes=((0.5, 1.0, 69.0),), chords=((0.0, 2.0, "A:min"),))
>>> transform_annotations(ann, time_stretch_rate=2.0, pitch_shift_steps=3).chords
((0.0, 1.0, 'C:min'),)
>>> onset_frames(ann.onsets, n_frames=4, sr=16000, hop_length=4000, widen=1)
array([0. , 0.5, 1. , 0.5], dtype=float32)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mirdl.features.checks import finite_float as _finite_float
from mirdl.features.checks import integer as _integer
from mirdl.features.checks import mapping as _mapping
from mirdl.features.checks import non_negative_float as _non_negative_float
from mirdl.features.checks import positive_float as _positive_float
from mirdl.errors import ConfigError

__all__ = [
    "NO_CHORD",
    "Annotations",
    "transform_annotations",
    "transpose_chord",
    "onset_frames",
    "note_roll",
    "chord_frames",
    "frame_times",
    "CHORD_VOCABULARY",
    "NOTE_NAMES",
    "reduce_chord",
]

#: Label of frames without a chord (Harte et al. 2005, as in MIREX / mir_eval).
NO_CHORD = "N"
#: Labels left unchanged by transposition: no chord and unknown chord.
_UNPITCHED_CHORDS = frozenset({"N", "X"})

_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# Harte syntax: root = natural + any number of '#'/'b'; the rest (":quality(extensions)/bass")
# is relative to the root (the bass is an interval), so it is kept as is.
_CHORD_ROOT = re.compile(r"^(?P<natural>[A-G])(?P<accidentals>[#b]*)(?P<rest>(?::|/).*)?$")


def _root_pitch_class(match: re.Match) -> int:
    """Pitch class (C = 0, not reduced mod 12) of a chord root matched as ``natural`` + ``accidentals``."""
    accidentals = match["accidentals"]
    return _PITCH_CLASS[match["natural"]] + accidentals.count("#") - accidentals.count("b")


def _time(value: Any, *, name: str) -> float:
    """A time in seconds: a finite float >= 0."""
    return _non_negative_float(value, name=name)


@dataclass(frozen=True)
class Annotations:
    """Time annotations of one track, in seconds.

    Parameters
    ----------
    onsets : tuple of float >= 0
        Onset times; stored sorted.
    notes : tuple of (onset_s, offset_s, midi_pitch)
        ``offset_s >= onset_s``; ``midi_pitch`` may be fractional after a pitch shift.
    chords : tuple of (start_s, end_s, label)
        ``end_s >= start_s``; Harte labels such as ``"C:maj"``, ``"Bb:min7/b3"``, ``"N"``.
        Segments should not overlap (see :func:`chord_frames`).

    Lists (as read from JSON/YAML) are accepted and stored as tuples of floats, so equal
    annotations compare equal whatever container they were built from.

    Examples
    --------
    >>> ann = Annotations(onsets=[0.2, 0.1], notes=[[0.1, 0.4, 60]])
    >>> ann.onsets, ann.notes
    ((0.1, 0.2), ((0.1, 0.4, 60.0),))
    >>> Annotations.from_dict(ann.to_dict()) == ann
    True
    """

    onsets: tuple[float, ...] = ()
    notes: tuple[tuple[float, float, float], ...] = ()
    chords: tuple[tuple[float, float, str], ...] = ()

    def __post_init__(self) -> None:
        onsets = tuple(sorted(_time(t, name=f"annotations.onsets[{i}]") for i, t in enumerate(self.onsets)))
        notes = []
        for i, note in enumerate(self.notes):
            where = f"annotations.notes[{i}]"
            if len(note) != 3:
                raise ConfigError(f"{where}={note!r} must be (onset_s, offset_s, midi_pitch)")
            onset, offset = _time(note[0], name=where + ".onset"), _time(note[1], name=where + ".offset")
            if offset < onset:
                raise ConfigError(f"{where}={tuple(note)!r}: offset {offset} is before onset {onset}")
            notes.append((onset, offset, _finite_float(note[2], name=where + ".pitch")))
        chords = []
        for i, chord in enumerate(self.chords):
            where = f"annotations.chords[{i}]"
            if len(chord) != 3 or not isinstance(chord[2], str):
                raise ConfigError(f"{where}={chord!r} must be (start_s, end_s, label)")
            start, end = _time(chord[0], name=where + ".start"), _time(chord[1], name=where + ".end")
            if end < start:
                raise ConfigError(f"{where}={tuple(chord)!r}: end {end} is before start {start}")
            chords.append((start, end, chord[2]))
        object.__setattr__(self, "onsets", onsets)
        object.__setattr__(self, "notes", tuple(notes))
        object.__setattr__(self, "chords", tuple(chords))

    def to_dict(self) -> dict[str, list]:
        """JSON/YAML-able form (lists); :meth:`from_dict` inverts it."""
        return {
            "onsets": list(self.onsets),
            "notes": [list(note) for note in self.notes],
            "chords": [list(chord) for chord in self.chords],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Annotations:
        """Build annotations from a mapping with optional ``onsets``, ``notes``, ``chords``."""
        data = _mapping(data, name="annotations", fields=("onsets", "notes", "chords"))
        return cls(
            onsets=tuple(data.get("onsets") or ()),
            notes=tuple(tuple(note) for note in data.get("notes") or ()),
            chords=tuple(tuple(chord) for chord in data.get("chords") or ()),
        )


def transpose_chord(label: str, *, n_steps: int) -> str:
    """Transpose a Harte chord label by ``n_steps`` semitones.

    The root moves; quality, extensions and bass (an interval above the root in Harte
    syntax) are kept. A root spelled with flats is spelled with flats afterwards
    (``"Bb:min" + 2 -> "C:min"``, ``"Eb" + 1 -> "E"``, ``"Db" - 1 -> "C"``), otherwise with sharps.
    ``"N"`` and ``"X"`` are returned unchanged.

    Parameters
    ----------
    label : str
    n_steps : int

    Returns
    -------
    str

    Raises
    ------
    ConfigError
        If ``label`` has no root ``A``-``G`` followed by ``#``/``b`` accidentals.

    Examples
    --------
    >>> transpose_chord("A:min7/b3", n_steps=3), transpose_chord("Bb", n_steps=2), transpose_chord("N", n_steps=5)
    ('C:min7/b3', 'C', 'N')
    """
    if label in _UNPITCHED_CHORDS:
        return label
    match = _CHORD_ROOT.match(label)
    if match is None:
        raise ConfigError(f"chord label {label!r} has no root A-G (Harte syntax, e.g. 'C#:min7', 'N')")
    names = _FLAT_NAMES if "b" in match["accidentals"] else _SHARP_NAMES
    return names[(_root_pitch_class(match) + int(n_steps)) % 12] + (match["rest"] or "")


def transform_annotations(
    ann: Annotations, *, time_stretch_rate: float = 1.0, pitch_shift_steps: float = 0.0
) -> Annotations:
    """Map annotations through a time stretch and a pitch shift of the audio.

    Parameters
    ----------
    ann : Annotations
    time_stretch_rate : float > 0
        librosa convention (:func:`librosa.effects.time_stretch`): ``rate > 1`` makes the
        audio faster and shorter, so every time ``t`` becomes ``t / rate``.
    pitch_shift_steps : float
        Semitones (:func:`librosa.effects.pitch_shift`; timing is unchanged). Note
        pitches move by exactly this amount (they may become fractional). Chord roots
        move by ``round(pitch_shift_steps)`` only when ``pitch_shift_steps`` is an
        integer; a fractional shift leaves the chord labels unchanged, because no chord
        label names a chord between two semitones (use integer pitch-shift steps,
        ``AugmentSpec(pitch_shift_integer=True)``, for chord targets).

    Returns
    -------
    Annotations

    Examples
    --------
    >>> ann = Annotations(onsets=(1.0,), notes=((1.0, 2.0, 60.0),), chords=((0.0, 2.0, "C:maj"),))
    >>> out = transform_annotations(ann, time_stretch_rate=1.25, pitch_shift_steps=-1)
    >>> out.onsets, out.notes, out.chords
    ((0.8,), ((0.8, 1.6, 59.0),), ((0.0, 1.6, 'B:maj'),))
    """
    rate = _positive_float(time_stretch_rate, name="time_stretch_rate")
    steps = _finite_float(pitch_shift_steps, name="pitch_shift_steps")
    transpose = steps.is_integer() and steps != 0
    return Annotations(
        onsets=tuple(t / rate for t in ann.onsets),
        notes=tuple((on / rate, off / rate, pitch + steps) for on, off, pitch in ann.notes),
        chords=tuple(
            (start / rate, end / rate, transpose_chord(label, n_steps=int(steps)) if transpose else label)
            for start, end, label in ann.chords
        ),
    )


def _check_grid(n_frames: Any, sr: Any, hop_length: Any) -> tuple[int, float, int]:
    n_frames = _integer(n_frames, name="n_frames", minimum=0)
    return n_frames, _positive_float(sr, name="sr"), _integer(hop_length, name="hop_length", minimum=1)


def _time_to_frame(times: np.ndarray, *, sr: float, hop_length: int) -> np.ndarray:
    # Nearest frame centre, halves up (np.rint would round halves to even).
    return np.floor(np.asarray(times, dtype=np.float64) * sr / hop_length + 0.5).astype(np.int64)


def frame_times(n_frames: int, *, sr: float, hop_length: int) -> np.ndarray:
    """Centre time of each frame in seconds, like :func:`librosa.frames_to_time`.

    Parameters
    ----------
    n_frames : int >= 0
    sr : float > 0
    hop_length : int > 0

    Returns
    -------
    np.ndarray [shape=(n_frames,)], float64

    Examples
    --------
    >>> frame_times(3, sr=16000, hop_length=8000)
    array([0. , 0.5, 1. ])
    """
    n_frames, sr, hop_length = _check_grid(n_frames, sr, hop_length)
    return np.arange(n_frames, dtype=np.float64) * hop_length / sr


def onset_frames(
    onsets: Any, *, n_frames: int, sr: float, hop_length: int, widen: int = 0
) -> np.ndarray:
    """Onset target per frame: 1 at onset frames, 0.5 at up to ``widen`` frames either side.

    An onset at ``t`` marks frame ``round(t * sr / hop_length)``. Widening the target
    (Schlüter & Böck 2014) tolerates annotation jitter; a frame that is itself an onset
    keeps 1. Onsets outside the ``n_frames`` grid are ignored, but their widened
    neighbours inside the grid are still marked.

    Parameters
    ----------
    onsets : array-like [shape=(n_onsets,)], seconds
    n_frames : int >= 0
    sr : float > 0
    hop_length : int > 0
    widen : int >= 0

    Returns
    -------
    np.ndarray [shape=(n_frames,)], float32 in {0, 0.5, 1}

    Examples
    --------
    >>> onset_frames([0.0, 0.51], n_frames=4, sr=100, hop_length=25)
    array([1., 0., 1., 0.], dtype=float32)
    """
    n_frames, sr, hop_length = _check_grid(n_frames, sr, hop_length)
    widen = _integer(widen, name="widen", minimum=0)
    frames = _time_to_frame(np.asarray(onsets, dtype=np.float64).reshape(-1), sr=sr, hop_length=hop_length)
    target = np.zeros(n_frames, dtype=np.float32)
    for offset in range(1, widen + 1):
        for neighbours in (frames - offset, frames + offset):
            target[neighbours[(neighbours >= 0) & (neighbours < n_frames)]] = 0.5
    target[frames[(frames >= 0) & (frames < n_frames)]] = 1.0
    return target


def note_roll(
    notes: Any, *, n_frames: int, sr: float, hop_length: int, min_pitch: int = 21, n_pitches: int = 88
) -> np.ndarray:
    """Piano roll: 1 where a note sounds, rows are MIDI pitches ``min_pitch + i``.

    A note ``(onset, offset, pitch)`` covers frames ``round(onset * sr / hop)`` up to,
    not including, ``round(offset * sr / hop)``, and at least its onset frame (so very
    short notes are not lost). Fractional pitches (after a pitch shift) go to the
    nearest semitone row; notes outside ``[min_pitch, min_pitch + n_pitches)`` and frames
    outside the grid are dropped.

    Parameters
    ----------
    notes : sequence of (onset_s, offset_s, midi_pitch)
    n_frames : int >= 0
    sr : float > 0
    hop_length : int > 0
    min_pitch : int
        MIDI pitch of row 0 (21 = A0, the lowest piano key).
    n_pitches : int > 0

    Returns
    -------
    np.ndarray [shape=(n_pitches, n_frames)], float32 in {0, 1}

    Examples
    --------
    >>> note_roll([(0.0, 0.2, 60.4)], n_frames=4, sr=100, hop_length=10, min_pitch=59, n_pitches=3)
    array([[0., 0., 0., 0.],
           [1., 1., 0., 0.],
           [0., 0., 0., 0.]], dtype=float32)
    """
    n_frames, sr, hop_length = _check_grid(n_frames, sr, hop_length)
    min_pitch = _integer(min_pitch, name="min_pitch")
    n_pitches = _integer(n_pitches, name="n_pitches", minimum=1)
    roll = np.zeros((n_pitches, n_frames), dtype=np.float32)
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    starts = _time_to_frame(notes[:, 0], sr=sr, hop_length=hop_length)
    ends = np.maximum(_time_to_frame(notes[:, 1], sr=sr, hop_length=hop_length), starts + 1)
    rows = np.floor(notes[:, 2] + 0.5).astype(np.int64) - min_pitch
    for row, start, end in zip(rows, starts, ends):
        if 0 <= row < n_pitches:
            roll[row, max(start, 0) : max(min(end, n_frames), 0)] = 1.0
    return roll


def chord_frames(
    chords: Any, *, n_frames: int, sr: float, hop_length: int, vocabulary: tuple[str, ...]
) -> np.ndarray:
    """Chord class per frame: the index in ``vocabulary`` of the chord sounding at the frame centre.

    Frame ``k`` (centre ``k * hop / sr``) gets the chord whose ``[start, end)`` contains
    its centre. Frames no chord covers, and chords whose label is not in
    ``vocabulary``, get the index of ``"N"``. Where segments overlap, the later one in
    ``chords`` wins.

    Parameters
    ----------
    chords : sequence of (start_s, end_s, label)
    n_frames : int >= 0
    sr : float > 0
    hop_length : int > 0
    vocabulary : tuple of str
        Distinct labels; must contain ``"N"``.

    Returns
    -------
    np.ndarray [shape=(n_frames,)], int32 in ``[0, len(vocabulary))``

    Examples
    --------
    >>> chord_frames([(0.0, 0.25, "C:maj"), (0.25, 0.5, "E:min")], n_frames=6, sr=100, hop_length=10,
    ...              vocabulary=("N", "C:maj", "G:maj"))
    array([1, 1, 1, 0, 0, 0], dtype=int32)
    """
    n_frames, sr, hop_length = _check_grid(n_frames, sr, hop_length)
    vocabulary = tuple(vocabulary)
    if NO_CHORD not in vocabulary:
        raise ConfigError(f"vocabulary={vocabulary!r} must contain the no-chord label {NO_CHORD!r}")
    if len(set(vocabulary)) != len(vocabulary):
        raise ConfigError(f"vocabulary={vocabulary!r} has repeated labels")
    index = {label: i for i, label in enumerate(vocabulary)}
    times = frame_times(n_frames, sr=sr, hop_length=hop_length)
    target = np.full(n_frames, index[NO_CHORD], dtype=np.int32)
    for start, end, label in chords:
        target[(times >= start) & (times < end)] = index.get(label, index[NO_CHORD])
    return target


# --------------------------------------------------------------------------- chord vocabulary

# Root names exactly as transpose_chord spells them, so a reduced chord
# stays in the vocabulary after any (integer) pitch shift.
_ROOT_NAMES = tuple(transpose_chord("C", n_steps=step) for step in range(12))
#: Chord classes of ``frame_chords``: no chord, then 12 roots x {maj, min}; see :func:`reduce_chord`.
CHORD_VOCABULARY = (NO_CHORD,) + tuple(f"{root}:{quality}" for root in _ROOT_NAMES for quality in ("maj", "min"))
#: Row names of the ``frame_notes`` piano roll: MIDI 21 (A0) to 108 (C8), as in note_roll.
NOTE_NAMES = tuple(f"{_ROOT_NAMES[midi % 12]}{midi // 12 - 1}" for midi in range(21, 109))

# Harte (2005) shorthands grouped by their third; those without a third have no maj/min class.
_MAJOR_QUALITIES = frozenset({"maj", "aug", "maj6", "7", "maj7", "aug7", "9", "maj9", "11", "maj11", "13", "maj13"})
_MINOR_QUALITIES = frozenset({"min", "dim", "min6", "min7", "dim7", "hdim7", "minmaj7", "min9", "min11", "min13"})
_HARTE = re.compile(r"^(?P<natural>[A-G])(?P<accidentals>[#b]*)"
                    r"(?::(?P<quality>[A-Za-z0-9]*)(?:\((?P<intervals>[^()]*)\))?)?(?:/(?P<bass>[#b]*\d+))?$")


def reduce_chord(label: str) -> str:
    """Reduce a Harte chord label to :data:`CHORD_VOCABULARY` (``"N"`` or ``ROOT:maj|min``).

    The class follows the chord's third, as the MIREX "majmin" vocabulary does: qualities
    with a major third (``maj, 7, maj7, 9, aug, ...``) become ``maj``; with a minor third
    (``min, min7, dim, hdim7, minmaj7, ...``) ``min``; interval lists count too
    (``C:(1,b3,5)`` is ``C:min``, ``C:maj(*3)`` has no third). Chords without a third
    (``sus2, sus4, 1, 5``), unknown qualities, ``"N"`` and ``"X"`` become ``"N"``. The bass
    is ignored; roots are spelled with sharps (``Db`` -> ``C#``).

    Raises
    ------
    ConfigError
        If ``label`` is not Harte syntax (no root ``A``-``G``).

    Examples
    --------
    >>> [reduce_chord(x) for x in ("Db:maj7", "A:min/b3", "C:(1,b3,5)", "F:sus2", "X")]
    ['C#:maj', 'A:min', 'C:min', 'N', 'N']
    """
    if label in ("N", "X"):
        return NO_CHORD
    match = _HARTE.match(label) if isinstance(label, str) else None
    if match is None:
        raise ConfigError(f"chord label {label!r} is not Harte syntax (e.g. 'C:maj', 'Bb:min7/b3', 'N')")
    quality, intervals = match["quality"], match["intervals"]
    if quality is None and intervals is None:
        quality = "maj"  # "C" and "C/5" are shorthand for C:maj
    third = "3" if quality in _MAJOR_QUALITIES else "b3" if quality in _MINOR_QUALITIES else None
    if quality and third is None and quality not in ("1", "5", "sus2", "sus4"):
        return NO_CHORD  # unknown quality
    for interval in (intervals or "").split(","):
        interval = interval.strip()
        if interval in ("*3", "*b3") and third == interval[1:]:
            third = None
        elif interval in ("3", "b3") and third is None:
            third = interval
    if third is None:
        return NO_CHORD
    root = _ROOT_NAMES[_root_pitch_class(match) % 12]
    return f"{root}:{'maj' if third == '3' else 'min'}"
