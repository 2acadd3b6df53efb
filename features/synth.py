"""A labelled synthetic corpus, deterministic by seed: the demo's and the tests' data.

Every later stage needs labelled audio: clip classification, multi-label tagging,
regression and frame-level onset / note detection. This module makes it from nothing
(no network, no data files) and writes it in the layout a real corpus would have, with
mixed formats, sample rates and channel counts.

Classes
-------
Four timbres, each a sequence of notes or hits with known onsets:

- ``pluck``: decaying harmonic partials (upper partials die faster; the fundamental's decay
  time 0.12-0.6 s), a plucking-position comb, sharp 2 ms attack; staccato to legato.
- ``pad``: sustained harmonic tones with a slow attack (80-350 ms), two detuned voices,
  usually vibrato, half of the tracks in triads; partials falling 8-15 dB per octave.
- ``perc``: a kit of 2-3 band-passed noise bursts with clicks and short decays (20-180 ms),
  on a rhythmic grid; unpitched, so it has onsets but no notes.
- ``brass``: sawtooth-like harmonics (amplitude 1/k) through a low-pass at 2.5-8 harmonics whose
  cutoff jumps up 2.5-5 times at each attack and settles (a filter envelope), 15-50 ms attack,
  sometimes with delayed vibrato.

Pitch (MIDI 33-96), level (peak -26 to -6 dBFS), note rate (grid of 0.18-1.0 s, with rests),
note lengths, spectral tilt and background-noise level are drawn independently of the class,
so RMS, mean spectral centroid and duration alone are poor predictors of it: what separates
the classes is the shape of the spectrum and of the envelopes over time.
Each track is played by an artist whose "room" (a short reverb and a gentle low-pass, drawn
from the artist's name) colours all its tracks: a model can learn the artist, which is what
a split by artist (group) is there to catch.

All content is band-limited to :data:`MAX_FREQUENCY` (7 kHz), below the Nyquist frequency of
every allowed rate, so a track sounds the same whatever rate it is written at.

Tags (multi-label), from the synthesis parameters
-------------------------------------------------
See :data:`TAG_DEFINITIONS`: ``bright`` (brightness >= 0.55), ``dark`` (brightness < 0.35),
``dense`` (note_rate >= 3 /s), ``sparse`` (note_rate < 1.5 /s), ``vibrato`` (vibrato depth
>= 0.15 semitone), ``noisy`` (SNR < 20 dB), ``low`` (median pitch < MIDI 52),
``high`` (median pitch > MIDI 72).

Targets (regression)
--------------------
See :data:`TARGET_DEFINITIONS`:

- ``tempo_bpm``: events per minute of the grid the onsets sit on, ``60 / grid interval``
  (60-333); rests leave gaps in the grid, so it can exceed ``60 * note_rate``.
- ``note_rate``: distinct onsets per second of audio.
- ``brightness``: mean over notes of the power-weighted centroid of the note's partials
  (its band centre for a ``perc`` hit), on a log scale from 100 Hz (0) to 7 kHz (1), clipped.
  Defined on the dry synthesis, before the room and the background noise.
- ``level_db``: peak absolute sample of the track in dBFS, drawn from [-26, -6] (before
  encoding: 16-bit rounding and lossy OGG move the peak of a file slightly).

Annotations
-----------
Onsets are note starts (hit starts for ``perc``), rounded to the millisecond; a chord gives
one onset. Notes are ``(onset_s, offset_s, midi)`` with the offset where the key is released
(the gate ends; a short release follows). ``perc`` tracks have onsets and no notes.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> track = synth_track(label="pad", rng=rng, sr=16000, duration=2.0)
>>> track.audio.shape, track.audio.dtype, track.label
((32000,), dtype('float32'), 'pad')
>>> sorted(track.targets)
['brightness', 'level_db', 'note_rate', 'tempo_bpm']
"""
from __future__ import annotations

import csv
import functools
import io
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal

from mirdl.errors import ConfigError
from mirdl.features import ogg
from mirdl.features.checks import integer, positive_float
from mirdl.features.audio import write_audio
from mirdl.features.labels import Annotations
from mirdl.store.files import atomic_path

__all__ = [
    "SYNTH_VERSION",
    "CLIPS_CLASSES",
    "write_clips_corpus",
    "CLASSES",
    "CLASS_DESCRIPTIONS",
    "TAGS",
    "TAG_DEFINITIONS",
    "TARGETS",
    "TARGET_DEFINITIONS",
    "MAX_FREQUENCY",
    "FORMATS",
    "ODD_FILES",
    "SynthTrack",
    "CorpusTrack",
    "CorpusListing",
    "synth_track",
    "write_corpus",
    "write_pyav",
    "odd_files",
]

#: Bumped whenever the same seed would give different audio or files.
SYNTH_VERSION = 2  # 2: OGG written in blocks (write_audio), which changes the Vorbis bytes

CLASS_DESCRIPTIONS = {
    "pluck": "decaying harmonic partials, upper ones dying faster, plucking-position comb, 2 ms attack",
    "pad": "sustained detuned harmonic tones, slow attack (80-350 ms), mostly vibrato, half in triads",
    "perc": "kit of 2-3 band-passed noise bursts with clicks, 20-180 ms decays; onsets, no notes",
    "brass": "sawtooth-like harmonics through a low-pass with a filter envelope at each attack",
}
#: The class labels, in the order track ``i`` gets them (``CLASSES[i % 4]``).
CLASSES = tuple(CLASS_DESCRIPTIONS)

TAG_DEFINITIONS = {
    "bright": "brightness >= 0.55 (partial centroid above about 1 kHz)",
    "dark": "brightness < 0.35 (partial centroid below about 440 Hz)",
    "dense": "note_rate >= 3 onsets per second",
    "sparse": "note_rate < 1.5 onsets per second",
    "vibrato": "vibrato depth >= 0.15 semitone",
    "noisy": "background noise less than 20 dB below the music (RMS)",
    "low": "median pitch below MIDI 52 (E3); for perc the median band centre",
    "high": "median pitch above MIDI 72 (C5); for perc the median band centre",
}
#: Tag vocabulary, in the order they are written.
TAGS = tuple(TAG_DEFINITIONS)

TARGET_DEFINITIONS = {
    "tempo_bpm": "events per minute of the onset grid, 60 / grid interval (rests leave gaps)",
    "note_rate": "distinct onsets per second of audio",
    "brightness": "mean over notes of the power-weighted partial centroid (perc: band centre), "
                  "log scale 100 Hz -> 0 to 7 kHz -> 1, clipped; dry synthesis",
    "level_db": "peak absolute sample of the track in dBFS",
}
#: Regression target names, in the order they are written.
TARGETS = tuple(TARGET_DEFINITIONS)

#: Highest frequency any track contains (Hz): below the Nyquist frequency of 16 kHz audio.
MAX_FREQUENCY = 7000.0
#: File format -> (soundfile format, subtype).
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}

_BRIGHTNESS_LOW_HZ = 100.0
_MIN_PITCH, _MAX_PITCH = 33.0, 96.0  # A1 .. C7
_MAX_PARTIALS = 48
_PENTATONIC = (0, 2, 4, 7, 9)
_README_MARKER = "mirdl synthetic corpus"


# --------------------------------------------------------------------------------------------------
# one track


@dataclass(frozen=True, eq=False)
class SynthTrack:
    """One synthesised track and everything known about it.

    Attributes
    ----------
    audio : np.ndarray [shape=(n,) or (2, n)], float32, peak ``10 ** (level_db / 20)``
    sr : int
    label : str
        One of :data:`CLASSES`.
    tags : tuple of str
        The :data:`TAGS` that apply, in vocabulary order.
    targets : dict
        :data:`TARGETS` name -> float.
    annotations : mirdl.features.labels.Annotations
        Onsets and notes (no chords).
    artist : str
        The group for split-by-group; also decides the room.
    """

    audio: np.ndarray
    sr: int
    label: str
    tags: tuple[str, ...]
    targets: dict[str, float]
    annotations: Annotations
    artist: str

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.audio.shape[-1] / self.sr


@dataclass(frozen=True)
class _Event:
    """One note or hit of a plan: times in seconds, pitch in MIDI (None for a perc hit)."""

    onset: float
    offset: float
    midi: float | None
    velocity: float
    pan: float
    # Class-specific per-event values: e.g. the partial phases, the drum index.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class _Plan:
    """Everything drawn for a track before any sample is rendered (independent of the rate)."""

    events: tuple[_Event, ...]
    params: dict[str, Any]
    ioi: float
    brightness_hz: float
    register_midi: float
    vibrato_depth: float


def _check_args(*, label: str, sr: int, duration: float, channels: int) -> None:
    if label not in CLASSES:
        raise ConfigError(f"label={label!r} must be one of {list(CLASSES)}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not 16000 <= sr <= 192000:
        raise ConfigError(f"sr={sr!r} must be an integer in [16000, 192000] "
                          f"(content reaches {MAX_FREQUENCY:g} Hz)")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
            or not 0.5 <= duration <= 600:
        raise ConfigError(f"duration={duration!r} must be a number of seconds in [0.5, 600]")
    if channels not in (1, 2) or isinstance(channels, bool):
        raise ConfigError(f"channels={channels!r} must be 1 or 2")


def synth_track(*, label: str, rng: np.random.Generator, sr: int = 22050, duration: float = 4.0,
                channels: int = 1, artist: str = "artist_0") -> SynthTrack:
    """Synthesise one labelled track.

    All parameters are drawn from ``rng`` before any sample is rendered, in a number of
    draws that does not depend on ``sr``; noise is rendered from seeds drawn the same way.
    So the same generator state gives the same music at every rate.

    Parameters
    ----------
    label : str
        One of :data:`CLASSES`.
    rng : numpy.random.Generator
        The only source of randomness (advanced by the call).
    sr : int in [16000, 192000]
        Sample rate of the audio.
    duration : float in [0.5, 600]
        Seconds.
    channels : {1, 2}
        2 pans each note (equal power) and decorrelates the room and noise per channel.
    artist : str
        Group name; its room (reverb and low-pass) is drawn from a hash of the name, so every
        track of an artist shares it.

    Returns
    -------
    SynthTrack

    Examples
    --------
    >>> t = synth_track(label="perc", rng=np.random.default_rng(1), sr=22050, duration=1.0)
    >>> t.annotations.notes, len(t.annotations.onsets) > 0
    ((), True)
    """
    _check_args(label=label, sr=sr, duration=duration, channels=channels)
    sr = int(sr)
    plan = _PLANNERS[label](rng, float(duration))
    level_db = float(rng.uniform(-26.0, -6.0))
    snr_db = float(rng.uniform(12.0, 45.0))
    render_seed, noise_seed = (int(s) for s in rng.integers(0, 2**63 - 1, size=2))

    n = int(round(duration * sr))
    dry = _RENDERERS[label](plan, sr=sr, n=n, channels=channels, rng=np.random.default_rng(render_seed))
    wet = _room(dry, sr=sr, artist=artist)
    music_rms = float(np.sqrt(np.mean(wet**2))) or 1.0
    noise_rng = np.random.default_rng(noise_seed)
    noise = _lowpass(noise_rng.standard_normal(wet.shape), sr=sr, cutoff=MAX_FREQUENCY)
    noise *= music_rms * 10 ** (-snr_db / 20) / (float(np.sqrt(np.mean(noise**2))) or 1.0)
    audio = wet + noise
    audio *= 10 ** (level_db / 20) / float(np.abs(audio).max())
    audio = audio[0] if channels == 1 else audio

    onsets = sorted({event.onset for event in plan.events})
    # A note still sounding at the end of the audio ends there.
    notes = tuple((e.onset, min(e.offset, round(duration, 3)), e.midi) for e in plan.events if e.midi is not None)
    targets = {
        "tempo_bpm": round(60.0 / plan.ioi, 4),
        "note_rate": round(len(onsets) / duration, 4),
        "brightness": round(_brightness(plan.brightness_hz), 4),
        "level_db": round(level_db, 4),
    }
    return SynthTrack(
        audio=audio.astype(np.float32),
        sr=sr,
        label=label,
        tags=_tags(targets, plan=plan, snr_db=snr_db),
        targets=targets,
        annotations=Annotations(onsets=tuple(onsets), notes=tuple(sorted(notes))),
        artist=artist,
    )


def _brightness(centroid_hz: float) -> float:
    value = math.log(max(centroid_hz, 1e-6) / _BRIGHTNESS_LOW_HZ) / math.log(MAX_FREQUENCY / _BRIGHTNESS_LOW_HZ)
    return min(max(value, 0.0), 1.0)


def _tags(targets: dict[str, float], *, plan: _Plan, snr_db: float) -> tuple[str, ...]:
    applies = {
        "bright": targets["brightness"] >= 0.55,
        "dark": targets["brightness"] < 0.35,
        "dense": targets["note_rate"] >= 3.0,
        "sparse": targets["note_rate"] < 1.5,
        "vibrato": plan.vibrato_depth >= 0.15,
        "noisy": snr_db < 20.0,
        "low": plan.register_midi < 52.0,
        "high": plan.register_midi > 72.0,
    }
    return tuple(tag for tag in TAGS if applies[tag])


# --------------------------------------------------------------------------------------------------
# planning: every random draw about the music, before rendering


def _grid(rng: np.random.Generator, duration: float) -> tuple[float, np.ndarray]:
    """Grid interval and onset times (s, rounded to 1 ms): a grid with rests and +-8 ms of timing jitter."""
    ioi = float(math.exp(rng.uniform(math.log(0.18), math.log(1.0))))
    rest_probability = rng.uniform(0.0, 0.35)
    start = rng.uniform(0.05, 0.25)
    slots = np.arange(start, duration - 0.15, ioi)
    keep = rng.random(len(slots)) >= rest_probability
    keep[0] = True
    jitter = rng.uniform(-0.008, 0.008, size=len(slots))
    return ioi, np.round(np.maximum(slots + jitter, 0.01), 3)[keep]


def _melody(rng: np.random.Generator, n_notes: int) -> np.ndarray:
    """MIDI pitches of a pentatonic melody around a random centre (whole register drawn per track)."""
    root = int(round(rng.uniform(40.0, 84.0)))
    degrees = np.array([o + d for o in (-12, 0, 12) for d in _PENTATONIC])
    degrees = degrees[np.abs(degrees) <= 9]
    pitches = root + rng.choice(degrees, size=n_notes)
    return np.clip(pitches, _MIN_PITCH, _MAX_PITCH).astype(float)


def _partial_centroid(f0: float, amplitudes: np.ndarray) -> float:
    """Power-weighted mean frequency of harmonic partials ``k * f0`` with the given amplitudes."""
    k = np.arange(1, len(amplitudes) + 1)
    power = amplitudes**2
    return float(np.sum(k * f0 * power) / np.sum(power))


def _n_partials(f0: float, *, vibrato_depth: float = 0.0) -> int:
    """Partials of ``f0`` that stay below :data:`MAX_FREQUENCY` even at the top of the vibrato."""
    top = f0 * 2 ** (vibrato_depth / 12)
    return max(1, min(_MAX_PARTIALS, int(MAX_FREQUENCY // top)))


def _midi_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69.0) / 12)


def _hz_midi(hz: float) -> float:
    return 69.0 + 12 * math.log2(hz / 440.0)


def _pluck_amplitudes(f0: float, *, tilt: float, position: float) -> np.ndarray:
    k = np.arange(1, _n_partials(f0) + 1)
    # A string plucked at a fraction `position` of its length lacks the partials with a node there.
    return k**-tilt * np.abs(np.sin(np.pi * k * position)) / np.sin(np.pi * position)


def _plan_pluck(rng: np.random.Generator, duration: float) -> _Plan:
    ioi, onsets = _grid(rng, duration)
    pitches = _melody(rng, len(onsets))
    params = {
        "tilt": rng.uniform(0.7, 1.8),
        "position": rng.uniform(0.08, 0.3),
        "tau": rng.uniform(0.12, 0.6),  # decay time of the fundamental, s
        "release": 0.03,
    }
    gate = ioi * rng.uniform(0.4, 1.0)
    events = []
    centroids = []
    for onset, midi in zip(onsets, pitches):
        length = gate * rng.uniform(0.85, 1.15)
        events.append(_Event(onset=float(onset), offset=round(float(onset) + length, 3), midi=float(midi),
                             velocity=rng.uniform(0.5, 1.0), pan=rng.uniform(-0.8, 0.8),
                             extra={"phases": rng.uniform(0, 2 * np.pi, _MAX_PARTIALS)}))
        centroids.append(_partial_centroid(_midi_hz(midi), _pluck_amplitudes(
            _midi_hz(midi), tilt=params["tilt"], position=params["position"])))
    return _Plan(events=tuple(events), params=params, ioi=ioi, brightness_hz=float(np.mean(centroids)),
                 register_midi=float(np.median(pitches)), vibrato_depth=0.0)


def _plan_pad(rng: np.random.Generator, duration: float) -> _Plan:
    ioi, onsets = _grid(rng, duration)
    roots = _melody(rng, len(onsets))
    has_vibrato = rng.random() < 0.7
    params = {
        "tilt": rng.uniform(1.3, 2.5),
        "attack": rng.uniform(0.08, 0.35),
        "release": rng.uniform(0.15, 0.4),
        "vibrato_depth": rng.uniform(0.15, 0.5) if has_vibrato else 0.0,  # semitones
        "vibrato_rate": rng.uniform(4.0, 6.5),
        "detune_cents": rng.uniform(4.0, 12.0),
        "chords": bool(rng.random() < 0.5),
        "third": int(rng.choice([3, 4])),
    }
    gate = ioi * rng.uniform(0.9, 1.6)
    events = []
    pitches = []
    for onset, root in zip(onsets, roots):
        length = gate * rng.uniform(0.9, 1.1)
        chord = (root, root + params["third"], root + 7) if params["chords"] else (root,)
        for midi in chord:
            midi = float(min(midi, _MAX_PITCH))
            pitches.append(midi)
            events.append(_Event(onset=float(onset), offset=round(float(onset) + length, 3), midi=midi,
                                 velocity=rng.uniform(0.6, 1.0), pan=rng.uniform(-0.8, 0.8),
                                 extra={"phases": rng.uniform(0, 2 * np.pi, (2, _MAX_PARTIALS)),
                                        "vibrato_phase": rng.uniform(0, 2 * np.pi)}))
    centroids = [
        _partial_centroid(_midi_hz(e.midi), np.arange(1, _n_partials(
            _midi_hz(e.midi), vibrato_depth=params["vibrato_depth"]) + 1) ** -params["tilt"])
        for e in events
    ]
    return _Plan(events=tuple(events), params=params, ioi=ioi, brightness_hz=float(np.mean(centroids)),
                 register_midi=float(np.median(pitches)), vibrato_depth=params["vibrato_depth"])


def _brass_amplitudes(f0: float, cutoff: np.ndarray | float, n_partials: int) -> np.ndarray:
    """Sawtooth partials (1/k) through a 2-pole-like low-pass at ``cutoff`` Hz: shape (K,) or (K, n)."""
    k = np.arange(1, n_partials + 1).reshape((-1,) + (1,) * np.ndim(cutoff))
    return (1.0 / k) / np.sqrt(1.0 + (k * f0 / np.asarray(cutoff)) ** 4)


def _plan_brass(rng: np.random.Generator, duration: float) -> _Plan:
    ioi, onsets = _grid(rng, duration)
    pitches = _melody(rng, len(onsets))
    has_vibrato = rng.random() < 0.35
    params = {
        "cutoff": rng.uniform(2.5, 8.0),  # sustain cutoff, in harmonics of the note
        "boost": rng.uniform(1.5, 4.0),  # the cutoff peaks at cutoff * (1 + boost)
        "filter_attack": rng.uniform(0.03, 0.08),
        "filter_decay": rng.uniform(0.1, 0.3),
        "attack": rng.uniform(0.015, 0.05),
        "release": 0.06,
        "vibrato_depth": rng.uniform(0.15, 0.35) if has_vibrato else 0.0,
        "vibrato_rate": rng.uniform(4.5, 6.0),
        "vibrato_delay": 0.15,
    }
    gate = ioi * rng.uniform(0.5, 0.95)
    events = []
    centroids = []
    for onset, midi in zip(onsets, pitches):
        length = gate * rng.uniform(0.9, 1.1)
        events.append(_Event(onset=float(onset), offset=round(float(onset) + length, 3), midi=float(midi),
                             velocity=rng.uniform(0.5, 1.0), pan=rng.uniform(-0.6, 0.6),
                             extra={"phases": rng.uniform(0, 2 * np.pi, _MAX_PARTIALS),
                                    "vibrato_phase": rng.uniform(0, 2 * np.pi)}))
        f0 = _midi_hz(midi)
        n_partials = _n_partials(f0, vibrato_depth=params["vibrato_depth"])
        centroids.append(_partial_centroid(f0, _brass_amplitudes(f0, params["cutoff"] * f0, n_partials)))
    return _Plan(events=tuple(events), params=params, ioi=ioi, brightness_hz=float(np.mean(centroids)),
                 register_midi=float(np.median(pitches)), vibrato_depth=params["vibrato_depth"])


def _plan_perc(rng: np.random.Generator, duration: float) -> _Plan:
    ioi, onsets = _grid(rng, duration)
    n_drums = int(rng.integers(2, 4))
    drums = [
        {
            "centre": float(math.exp(rng.uniform(math.log(80.0), math.log(4000.0)))),  # Hz
            "octaves": rng.uniform(1.0, 3.0),  # bandwidth
            "tau": rng.uniform(0.02, 0.18),  # decay time, s
            "click": rng.uniform(0.0, 0.6),
            "pan": rng.uniform(-0.6, 0.6),
        }
        for _ in range(n_drums)
    ]
    choice = rng.integers(0, n_drums, size=len(onsets))
    events = []
    for onset, drum in zip(onsets, choice):
        spec = drums[drum]
        events.append(_Event(onset=float(onset), offset=round(float(onset) + 6.9 * spec["tau"], 3), midi=None,
                             velocity=rng.uniform(0.4, 1.0), pan=spec["pan"], extra={"drum": int(drum)}))
    centres = [drums[drum]["centre"] for drum in choice]
    return _Plan(events=tuple(events), params={"drums": drums}, ioi=ioi,
                 brightness_hz=float(np.mean(centres)),
                 register_midi=float(np.median([_hz_midi(c) for c in centres])), vibrato_depth=0.0)


_PLANNERS = {"pluck": _plan_pluck, "pad": _plan_pad, "perc": _plan_perc, "brass": _plan_brass}


# --------------------------------------------------------------------------------------------------
# rendering


def _phase(f0: float, n: int, sr: int, *, depth: float = 0.0, rate: float = 5.0, delay: float = 0.0,
           phase0: float = 0.0) -> np.ndarray:
    """Running phase (radians) of a tone at ``f0`` Hz with sinusoidal vibrato of ``depth`` semitones."""
    if depth == 0.0:
        return 2 * np.pi * f0 * np.arange(n) / sr
    t = np.arange(n) / sr
    ramp = np.clip((t - delay) / 0.2, 0.0, 1.0) if delay > 0 else 1.0  # vibrato fades in
    frequency = f0 * 2 ** (depth * ramp * np.sin(2 * np.pi * rate * t + phase0) / 12)
    return 2 * np.pi * np.concatenate(([0.0], np.cumsum(frequency[:-1]))) / sr


def _partials(phase: np.ndarray, amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """``sum_k a_k(t) sin(k * phase + phases[k])``; ``amplitudes`` is (K,) or (K, n)."""
    z = np.exp(1j * phase)
    power = z.copy()  # z ** k by repeated products: much cheaper than K sines
    out = np.zeros(len(phase))
    for k in range(len(amplitudes)):
        out += amplitudes[k] * (power * np.exp(1j * phases[k])).imag
        power *= z
    return out


def _adsr(n_gate: int, n_release: int, sr: int, *, attack: float, decay: float = 0.0,
          sustain: float = 1.0) -> np.ndarray:
    """Linear attack, exponential decay to ``sustain``, held to the gate, then a linear release."""
    t = np.arange(n_gate) / sr
    n_attack = max(1, int(attack * sr))
    envelope = np.minimum(t * sr / n_attack, 1.0)
    if decay > 0:
        envelope = np.where(t < attack, envelope,
                            sustain + (1 - sustain) * np.exp(-(t - attack) / decay))
    end = envelope[-1] if n_gate else 0.0
    return np.concatenate((envelope, end * np.linspace(1.0, 0.0, n_release, endpoint=False)))


def _place(mix: np.ndarray, voice: np.ndarray, *, start: int, velocity: float, pan: float) -> None:
    """Add a mono voice into ``mix`` (channels, n) at sample ``start`` with equal-power panning."""
    stop = min(mix.shape[1], start + len(voice))
    if stop <= start:
        return
    if mix.shape[0] == 1:
        gains = (1.0,)
    else:
        angle = (pan + 1) * np.pi / 4
        gains = (math.cos(angle) * math.sqrt(2), math.sin(angle) * math.sqrt(2))
    for channel, gain in enumerate(gains):
        mix[channel, start:stop] += gain * velocity * voice[: stop - start]


def _render_notes(plan: _Plan, *, sr: int, n: int, channels: int, rng: np.random.Generator,
                  voice) -> np.ndarray:
    """Mix the voice of every note of a pitched plan, each scaled to unit peak, then by its velocity.

    ``voice(event, params, *, sr, f0, n_gate, n_release, length)`` renders one note's first
    ``length`` samples: ``n_gate`` from onset to offset, then ``n_release`` of release. ``rng`` is
    unused: pitched notes are deterministic given their plan (phases are drawn when planning).
    """
    params = plan.params
    mix = np.zeros((channels, n))
    for event in plan.events:
        start = int(round(event.onset * sr))
        if start >= n:
            continue
        n_gate = max(1, int(round((event.offset - event.onset) * sr)))
        n_release = int(round(params["release"] * sr))
        length = min(n_gate + n_release, n - start)
        y = voice(event, params, sr=sr, f0=_midi_hz(event.midi), n_gate=n_gate, n_release=n_release,
                  length=length)
        _place(mix, y / np.abs(y).max(), start=start, velocity=event.velocity, pan=event.pan)
    return mix


def _pluck_voice(event: _Event, p: dict, *, sr: int, f0: float, n_gate: int, n_release: int,
                 length: int) -> np.ndarray:
    amplitudes = _pluck_amplitudes(f0, tilt=p["tilt"], position=p["position"])
    t = np.arange(length) / sr
    k = np.arange(1, len(amplitudes) + 1)[:, None]
    # Upper partials decay faster (tau_k = tau / k ** 0.8), as on a real string.
    decays = np.exp(-t[None, :] * k**0.8 / p["tau"])
    gate = _adsr(n_gate, n_release, sr, attack=0.002)[:length]
    return _partials(_phase(f0, length, sr), amplitudes[:, None] * decays, event.extra["phases"]) * gate


def _pad_voice(event: _Event, p: dict, *, sr: int, f0: float, n_gate: int, n_release: int,
               length: int) -> np.ndarray:
    amplitudes = np.arange(1, _n_partials(f0, vibrato_depth=p["vibrato_depth"]) + 1) ** -p["tilt"]
    attack = min(p["attack"], 0.6 * (event.offset - event.onset))
    envelope = _adsr(n_gate, n_release, sr, attack=attack, decay=0.3, sustain=0.8)[:length]
    voice = np.zeros(length)
    for detune, phases in zip((-1, 1), event.extra["phases"]):  # two voices, +-detune_cents / 2
        phase = _phase(f0 * 2 ** (detune * p["detune_cents"] / 2400), length, sr, depth=p["vibrato_depth"],
                       rate=p["vibrato_rate"], phase0=event.extra["vibrato_phase"])
        voice += _partials(phase, amplitudes, phases)
    return voice * envelope


def _brass_voice(event: _Event, p: dict, *, sr: int, f0: float, n_gate: int, n_release: int,
                 length: int) -> np.ndarray:
    t = np.arange(length) / sr
    # Filter envelope: the cutoff rises to cutoff * (1 + boost) in filter_attack, then settles.
    rise = np.minimum(t / p["filter_attack"], 1.0)
    fall = np.exp(-np.maximum(t - p["filter_attack"], 0.0) / p["filter_decay"])
    cutoff = p["cutoff"] * f0 * (1.0 + p["boost"] * rise * fall)
    amplitudes = _brass_amplitudes(f0, cutoff, _n_partials(f0, vibrato_depth=p["vibrato_depth"]))
    phase = _phase(f0, length, sr, depth=p["vibrato_depth"], rate=p["vibrato_rate"],
                   delay=p["vibrato_delay"], phase0=event.extra["vibrato_phase"])
    envelope = _adsr(n_gate, n_release, sr, attack=p["attack"], decay=0.1, sustain=0.85)[:length]
    return _partials(phase, amplitudes, event.extra["phases"]) * envelope


def _render_perc(plan: _Plan, *, sr: int, n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Mix every hit: its drum's band-passed noise with an exponential decay, plus a click."""
    mix = np.zeros((channels, n))
    filters = []
    for drum in plan.params["drums"]:
        low = drum["centre"] * 2 ** (-drum["octaves"] / 2)
        high = min(drum["centre"] * 2 ** (drum["octaves"] / 2), MAX_FREQUENCY)
        filters.append(_butter(2, (low, high), sr=sr, btype="bandpass"))
    for event in plan.events:
        drum = plan.params["drums"][event.extra["drum"]]
        start = int(round(event.onset * sr))
        length = min(int(math.ceil((event.offset - event.onset) * sr)), n - start)
        if length <= 0:
            continue
        t = np.arange(length) / sr
        body = scipy.signal.sosfilt(filters[event.extra["drum"]], rng.standard_normal(length))
        body *= np.minimum(t / 0.001, 1.0) * np.exp(-t / drum["tau"])
        body /= np.abs(body).max()
        click = rng.standard_normal(length) * np.exp(-t / 0.0005)
        voice = _lowpass(body + drum["click"] * click / np.abs(click).max(), sr=sr, cutoff=MAX_FREQUENCY)
        _place(mix, voice / np.abs(voice).max(), start=start, velocity=event.velocity, pan=event.pan)
    return mix


_RENDERERS = {
    "pluck": functools.partial(_render_notes, voice=_pluck_voice),
    "pad": functools.partial(_render_notes, voice=_pad_voice),
    "perc": _render_perc,
    "brass": functools.partial(_render_notes, voice=_brass_voice),
}


@functools.lru_cache(maxsize=64)
def _butter_design(order: int, cutoff: float | tuple[float, float], sr: int, btype: str) -> np.ndarray:
    sos = scipy.signal.butter(order, cutoff, btype=btype, fs=sr, output="sos")
    sos.setflags(write=False)
    return sos


def _butter(order: int, cutoff: float | tuple[float, float], *, sr: int, btype: str) -> np.ndarray:
    """Butterworth second-order sections; designs are cached (the same few recur for every note),
    and a writable copy is returned because ``sosfilt`` needs one."""
    return _butter_design(order, cutoff, sr, btype).copy()


def _lowpass(y: np.ndarray, *, sr: int, cutoff: float, order: int = 6) -> np.ndarray:
    """Butterworth low-pass along the last axis (causal; a fraction of a ms of delay)."""
    if cutoff >= sr / 2:
        return y
    return scipy.signal.sosfilt(_butter(order, cutoff, sr=sr, btype="lowpass"), y, axis=-1)


def _room(dry: np.ndarray, *, sr: int, artist: str) -> np.ndarray:
    """The artist's room: a gentle low-pass and a short noise reverb, drawn from the artist's name."""
    room_rng = np.random.default_rng(zlib.crc32(artist.encode("utf-8")))
    rt60 = room_rng.uniform(0.15, 0.8)
    wet_gain = room_rng.uniform(0.05, 0.3)
    cutoff = room_rng.uniform(3000.0, MAX_FREQUENCY)
    ir_seeds = room_rng.integers(0, 2**63 - 1, size=2)
    t = np.arange(int(rt60 * sr)) / sr
    out = _lowpass(dry, sr=sr, cutoff=cutoff, order=1)
    for channel in range(dry.shape[0]):
        ir = np.random.default_rng(int(ir_seeds[channel])).standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        ir /= np.sqrt(np.sum(ir**2))
        out[channel] += wet_gain * scipy.signal.fftconvolve(dry[channel], ir)[: dry.shape[1]]
    return out


# --------------------------------------------------------------------------------------------------
# writing a corpus


@dataclass(frozen=True)
class CorpusTrack:
    """One track of a written corpus; paths are relative to the corpus root, posix.

    Attributes
    ----------
    path : str
        ``audio/<label>/<name>.<format>``.
    name : str
        ``t<index:04d>`` (``t0000``, ``t0001``, ...): the stem of the audio and annotation files.
    label, artist : str
    tags : tuple of str
    targets : dict
    annotations : Annotations
    onsets_path, notes_path : str
        ``annotations/<name>.onsets.csv`` and ``annotations/<name>.notes.csv``.
    sample_rate, channels : int
        Of the file.
    format : str
        ``wav``, ``flac`` or ``ogg``.
    duration : float
        Seconds.
    """

    path: str
    name: str
    label: str
    artist: str
    tags: tuple[str, ...]
    targets: dict[str, float]
    annotations: Annotations
    onsets_path: str
    notes_path: str
    sample_rate: int
    channels: int
    format: str
    duration: float

    @property
    def track_id(self) -> str:
        """The corpus-relative path without extension, as stores name tracks."""
        return self.path.rsplit(".", 1)[0]


@dataclass(frozen=True)
class CorpusListing:
    """What :func:`write_corpus` wrote.

    Attributes
    ----------
    root : Path
    seed : int
    tracks : tuple of CorpusTrack
    classes, tags, targets : tuple of str
        The vocabularies: :data:`CLASSES`, :data:`TAGS`, :data:`TARGETS`.
    """

    root: Path
    seed: int
    tracks: tuple[CorpusTrack, ...]
    classes: tuple[str, ...] = CLASSES
    tags: tuple[str, ...] = TAGS
    targets: tuple[str, ...] = TARGETS

    @property
    def seconds(self) -> float:
        """Total seconds of audio."""
        return float(sum(track.duration for track in self.tracks))

    def audio_paths(self) -> list[Path]:
        """Absolute paths of the audio files, in track order."""
        return [self.root / track.path for track in self.tracks]


def write_corpus(out_dir: str | os.PathLike, *, n_tracks: int, seed: int = 0, duration: float = 4.0,
                 formats: Sequence[str] = ("wav", "flac", "ogg"),
                 sample_rates: Sequence[int] = (22050, 44100, 16000), stereo_fraction: float = 0.25,
                 n_artists: int = 8, overwrite: bool = False) -> CorpusListing:
    """Write a labelled synthetic corpus of ``n_tracks`` tracks to ``out_dir``.

    Layout (paths in the CSV files are relative to ``out_dir``, posix)::

        OUT/audio/<label>/<name>.<wav|flac|ogg>   # name = t<index:04d>: t0000, t0001, ...
        OUT/labels.csv                            # path,label,artist
        OUT/tags.csv                              # path,tags (";"-joined, may be empty)
        OUT/targets.csv                           # path,tempo_bpm,note_rate,brightness,level_db
        OUT/annotations/<name>.onsets.csv         # header "time", one onset (s) per line
        OUT/annotations/<name>.notes.csv          # header "onset,offset,midi" (perc: header only)
        OUT/annotations.csv                       # path,onsets,notes
        OUT/README.txt                            # seed, definitions of classes, tags and targets

    Track ``i`` depends only on ``(seed, i)`` and the arguments, not on ``n_tracks``, so a
    smaller corpus is a prefix of a larger one. Its class is ``CLASSES[i % 4]`` (balanced);
    its format ``formats[i % len(formats)]``; its rate ``sample_rates[(i // len(formats)) %
    len(sample_rates)]`` (so the first ``len(formats) * len(sample_rates)`` tracks have every
    pair); it is stereo when the fractional part of ``(i + 0.5) * 0.618...`` is below
    ``stereo_fraction`` (a low-discrepancy sequence, so about that fraction of any run of
    tracks, spread over the classes); its artist is ``artist_<(i + i // 4) % n_artists>``, so
    each artist plays every class.

    WAV and FLAC are 16-bit PCM; OGG is Vorbis at libsndfile's default quality, with the
    Ogg stream serial number (random in libsndfile) set from ``(seed, i)`` and the page
    checksums recomputed, so the same seed gives byte-identical files of every format
    with the same libsndfile / libvorbis build (a different encoder build may round differently).

    The corpus is written into a temporary sibling directory that replaces ``out_dir`` in
    one rename when complete, so an interrupted run leaves ``out_dir`` as it was.

    Parameters
    ----------
    out_dir : path-like
        Must not exist, or be an empty directory; with ``overwrite``, may also be a previous
        synthetic corpus (a directory whose README.txt says so), which is replaced.
    n_tracks : int > 0
    seed : int >= 0
    duration : float in [0.5, 600]
        Seconds per track.
    formats : sequence of {"wav", "flac", "ogg"}
    sample_rates : sequence of int in [16000, 192000]
    stereo_fraction : float in [0, 1]
    n_artists : int > 0
    overwrite : bool

    Returns
    -------
    CorpusListing

    Raises
    ------
    ConfigError
        If an argument is invalid or ``out_dir`` may not be written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     listing = write_corpus(Path(tmp) / "corpus", n_tracks=4, duration=1.0)
    >>> [t.path for t in listing.tracks][:2]
    ['audio/pluck/t0000.wav', 'audio/pad/t0001.flac']
    """
    out_dir = Path(out_dir)
    _check_corpus_args(n_tracks=n_tracks, seed=seed, duration=duration, formats=formats,
                       sample_rates=sample_rates, stereo_fraction=stereo_fraction, n_artists=n_artists)
    _check_out_dir(out_dir, overwrite=overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tracks = []
    with atomic_path(out_dir) as tmp:
        (tmp / "annotations").mkdir(parents=True)
        for index in range(n_tracks):
            tracks.append(_write_track(tmp, index=index, seed=seed, duration=duration, formats=formats,
                                       sample_rates=sample_rates, stereo_fraction=stereo_fraction,
                                       n_artists=n_artists))
        listing = CorpusListing(root=out_dir, seed=int(seed), tracks=tuple(tracks))
        _write_tables(tmp, listing)
        arguments = {"n_tracks": n_tracks, "seed": seed, "duration": duration, "formats": tuple(formats),
                     "sample_rates": tuple(sample_rates), "stereo_fraction": stereo_fraction,
                     "n_artists": n_artists}
        (tmp / "README.txt").write_text(_readme(listing, arguments=arguments), encoding="utf-8")
    return listing


def _check_corpus_args(*, n_tracks, seed, duration, formats, sample_rates, stereo_fraction, n_artists) -> None:
    for name, value, low in (("n_tracks", n_tracks, 1), ("seed", seed, 0), ("n_artists", n_artists, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
    if isinstance(formats, str) or not formats or any(f not in FORMATS for f in formats):
        raise ConfigError(f"formats={formats!r} must be a non-empty sequence of {sorted(FORMATS)}")
    if not sample_rates or isinstance(sample_rates, (str, int)):
        raise ConfigError(f"sample_rates={sample_rates!r} must be a non-empty sequence of rates")
    for rate in sample_rates:  # and the duration, with the checks synth_track makes
        _check_args(label=CLASSES[0], sr=rate, duration=duration, channels=1)
    if isinstance(stereo_fraction, bool) or not isinstance(stereo_fraction, (int, float)) \
            or not 0.0 <= stereo_fraction <= 1.0:
        raise ConfigError(f"stereo_fraction={stereo_fraction!r} must be a number in [0, 1]")


def _check_out_dir(out_dir: Path, *, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a directory")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise ConfigError(f"{out_dir} is not empty; refusing to write a corpus into it "
                          "(--overwrite / overwrite=True replaces a previous synthetic corpus)")
    readme = out_dir / "README.txt"
    try:
        is_corpus = readme.read_text(encoding="utf-8").startswith(_README_MARKER)
    except (OSError, UnicodeDecodeError):
        is_corpus = False
    if not is_corpus:
        raise ConfigError(f"{out_dir} is not empty and is not a synthetic corpus (no {_README_MARKER!r} "
                          "README.txt); refusing to replace it")


_GOLDEN = (math.sqrt(5) - 1) / 2


def _write_track(root: Path, *, index: int, seed: int, duration: float, formats: Sequence[str],
                 sample_rates: Sequence[int], stereo_fraction: float, n_artists: int) -> CorpusTrack:
    label = CLASSES[index % len(CLASSES)]
    file_format = formats[index % len(formats)]
    sr = int(sample_rates[(index // len(formats)) % len(sample_rates)])
    channels = 2 if ((index + 0.5) * _GOLDEN) % 1.0 < stereo_fraction else 1
    artist = f"artist_{(index + index // len(CLASSES)) % n_artists}"
    sequence = np.random.SeedSequence(int(seed), spawn_key=(index,))
    track = synth_track(label=label, rng=np.random.default_rng(sequence), sr=sr, duration=duration,
                        channels=channels, artist=artist)
    name = f"t{index:04d}"
    path = f"audio/{label}/{name}.{file_format}"
    serial = int(sequence.generate_state(1)[0])
    _write_audio(root / path, track.audio, sr=sr, file_format=file_format, ogg_serial=serial)
    onsets_path, notes_path = f"annotations/{name}.onsets.csv", f"annotations/{name}.notes.csv"
    _write_csv(root / onsets_path, ["time"], [[_seconds(t)] for t in track.annotations.onsets])
    _write_csv(root / notes_path, ["onset", "offset", "midi"],
               [[_seconds(a), _seconds(b), f"{m:g}"] for a, b, m in track.annotations.notes])
    return CorpusTrack(path=path, name=name, label=label, artist=artist, tags=track.tags,
                       targets=track.targets, annotations=track.annotations, onsets_path=onsets_path,
                       notes_path=notes_path, sample_rate=sr, channels=channels, format=file_format,
                       duration=track.duration)


def _seconds(t: float) -> str:
    return f"{t:.3f}"


def _write_audio(path: Path, audio: np.ndarray, *, sr: int, file_format: str, ogg_serial: int = 0) -> None:
    """Encode in memory, in blocks, then write the bytes atomically (OGG with a fixed stream serial number)."""
    major, subtype = FORMATS[file_format]
    buffer = io.BytesIO()
    write_audio(buffer, audio, sample_rate=sr, format=major, subtype=subtype)
    data = buffer.getvalue()
    if major == "OGG":
        data = _set_ogg_serial(data, ogg_serial)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)


def _write_tables(root: Path, listing: CorpusListing) -> None:
    tracks = listing.tracks
    _write_csv(root / "labels.csv", ["path", "label", "artist"], [[t.path, t.label, t.artist] for t in tracks])
    _write_csv(root / "tags.csv", ["path", "tags"], [[t.path, ";".join(t.tags)] for t in tracks])
    _write_csv(root / "targets.csv", ["path", *TARGETS],
               [[t.path, *(f"{t.targets[name]:.4f}" for name in TARGETS)] for t in tracks])
    _write_csv(root / "annotations.csv", ["path", "onsets", "notes"],
               [[t.path, t.onsets_path, t.notes_path] for t in tracks])


def _readme(listing: CorpusListing, *, arguments: dict[str, Any]) -> str:
    counts = {label: sum(t.label == label for t in listing.tracks) for label in CLASSES}
    formats = sorted({t.format for t in listing.tracks})
    rates = sorted({t.sample_rate for t in listing.tracks})
    n_stereo = sum(t.channels == 2 for t in listing.tracks)
    lines = [
        f"{_README_MARKER} (mirdl.features.synth, version {SYNTH_VERSION})",
        "",
        f"{len(listing.tracks)} tracks of {arguments['duration']:g} s, seed {listing.seed}; "
        f"{listing.seconds / 3600:.4f} hours of audio.",
        f"Formats {', '.join(formats)}; sample rates {', '.join(map(str, rates))} Hz; "
        f"{n_stereo} stereo, {len(listing.tracks) - n_stereo} mono.",
        f"Every track is band-limited to {MAX_FREQUENCY:g} Hz.",
        "Regenerate with mirdl.features.synth.write_corpus(OUT, "
        + ", ".join(f"{key}={value!r}" for key, value in arguments.items()) + ").",
        "",
        "Classes (labels.csv: path,label,artist)",
        *(f"  {name:<8} {counts[name]:>5} tracks  {text}" for name, text in CLASS_DESCRIPTIONS.items()),
        "",
        "Tags (tags.csv: path,tags joined with ';')",
        *(f"  {name:<8} {text}" for name, text in TAG_DEFINITIONS.items()),
        "",
        "Targets (targets.csv)",
        *(f"  {name:<11} {text}" for name, text in TARGET_DEFINITIONS.items()),
        "",
        "Annotations (annotations.csv: path,onsets,notes)",
        "  annotations/<name>.onsets.csv  header 'time': note (perc: hit) starts in seconds, 1 ms resolution",
        "  annotations/<name>.notes.csv   header 'onset,offset,midi': offset = end of the gate",
        "                                 (a short release follows); perc tracks have no notes",
        "",
        "Artists (labels.csv 'artist') share a room (reverb + low-pass): split by artist to avoid",
        "learning the room instead of the class.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# OGG: deterministic stream serial numbers


def _set_ogg_serial(data: bytes, serial: int) -> bytes:
    """Set the stream serial number of every Ogg page to ``serial`` and recompute the page checksums."""
    out = bytearray(data)
    for page in ogg.iter_pages(io.BytesIO(data)):
        ogg.set_page_fields(out, page, serial=serial)
    return bytes(out)


# --------------------------------------------------------------------------------------------------
# other encoders


def write_pyav(path: str | os.PathLike, y: np.ndarray, *, sample_rate: int, codec: str,
               container: str | None = None, codec_options: dict[str, str] | None = None,
               container_options: dict[str, str] | None = None, bit_rate: int | None = None,
               block_frames: int = 4096) -> None:
    """Encode a signal with one of FFmpeg's encoders through PyAV (``av``), in blocks.

    For files libsndfile cannot write (AAC in MP4/M4A or ADTS, WMA, Opus and Vorbis from FFmpeg's
    side): test inputs made by real encoders. Mono or stereo only. FFmpeg's bitexact flags are set, so
    the same signal and arguments give the same bytes with the same PyAV build.

    Parameters
    ----------
    path : path-like
        Output file; its extension picks the container unless ``container`` is given.
    y : np.ndarray [shape=(n,) or (2, n)], floating
        Signal, channels-first, in [-1, 1].
    sample_rate : int > 0
        Rate in Hz (must be one the encoder takes: libopus wants 48000, 24000, 16000, 12000 or 8000).
    codec : str
        FFmpeg encoder name: ``"aac"``, ``"libopus"``, ``"vorbis"`` (stereo only; experimental),
        ``"wmav2"`` (needs ``bit_rate``), ``"alac"``, ``"flac"``, ``"libmp3lame"``.
    container : str or None
        FFmpeg muxer name (``"mp4"``, ``"ipod"``, ``"adts"``, ``"ogg"``, ``"asf"``, ``"matroska"``).
    codec_options, container_options : dict of str, or None
        Encoder / muxer options (``{"movflags": "faststart"}`` puts an MP4 index first).
    bit_rate : int or None
        Target bit rate in bit/s.
    block_frames : int > 0
        Frames handed to the encoder per frame.

    Raises
    ------
    ConfigError
        If PyAV is missing or an argument is invalid.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "tone.m4a"
    >>> write_pyav(path, np.zeros(44100, dtype=np.float32), sample_rate=44100, codec="aac")
    >>> from mirdl.features.audio import probe
    >>> info = probe(path)
    >>> info.format, info.subtype, info.frames, info.decoder
    ('MOV', 'AAC', 44100, 'pyav')
    """
    try:
        import av
    except ImportError as err:
        raise ConfigError("write_pyav needs PyAV (pip install av)") from err
    if not isinstance(y, np.ndarray) or y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[0] not in (1, 2)):
        raise ConfigError(f"y must be an array of shape (n,) or (channels<=2, n), got {getattr(y, 'shape', y)!r}")
    samples = np.ascontiguousarray(np.atleast_2d(y).T, dtype=np.float32)  # (n, channels): packed
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    try:
        # bitexact: no random Ogg serial numbers, no creation times, so the same input gives the same bytes.
        with av.open(os.fspath(path), "w", format=container,
                     options={"fflags": "+bitexact", **(container_options or {})}) as output:
            stream = output.add_stream(codec, rate=int(sample_rate), layout=layout,
                                       options={"flags": "+bitexact", **(codec_options or {})})
            if bit_rate is not None:
                stream.codec_context.bit_rate = int(bit_rate)
            resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout,
                                          rate=int(sample_rate))
            frames = []
            for begin in range(0, len(samples), block_frames):
                frame = av.AudioFrame.from_ndarray(samples[begin:begin + block_frames].reshape(1, -1), format="flt",
                                                   layout=layout)
                frame.sample_rate, frame.pts = int(sample_rate), begin
                frames.append(frame)
            for frame in [*frames, None]:  # None flushes the converter
                for converted in resampler.resample(frame):
                    output.mux(stream.encode(converted))
            output.mux(stream.encode(None))
    except (av.error.FFmpegError, ValueError) as err:
        raise ConfigError(f"codec={codec!r}, container={container!r}: FFmpeg cannot encode this ({err})") from err


# --------------------------------------------------------------------------------------------------
# odd inputs for the decoders' tests


#: name -> (file name, decodes, what it is). ``decodes`` False: :func:`mirdl.features.audio.load`
#: must raise :class:`~mirdl.errors.AudioError`; True: it must return finite samples.
ODD_FILES = {
    "empty": ("empty.wav", False, "zero-byte file named .wav"),
    "truncated": ("truncated.wav", False, "16-bit WAV whose header declares 1 s but holds the first 0.5 s"),
    "not_audio": ("not_audio.wav", False, "a text file renamed .wav"),
    "nan": ("nan_float.wav", False, "32-bit float WAV, 0.5 s of sine with NaN samples in the middle"),
    "six_channel": ("six_channel.wav", True, "6-channel 48 kHz 16-bit WAV, a different tone per channel, 0.5 s"),
    "rate_8k": ("rate_8k.wav", True, "8 kHz mono 16-bit WAV, 0.5 s (below every spec rate: upsampled)"),
    "hires": ("hires_96k_24bit.wav", True, "96 kHz 24-bit stereo WAV, 0.5 s"),
    "short": ("short_0.04s.wav", True, "0.04 s (882 samples at 22.05 kHz): shorter than a 1024-sample "
                                       "FFT window (features need center=True)"),
    "silence": ("silence.wav", True, "1 s of digital silence, 22.05 kHz 16-bit"),
    "ogg_cut_at_page": ("cut_at_page.ogg", False, "Ogg Vorbis (libvorbis), 3 s at 44.1 kHz, without its last "
                                                  "page: libsndfile alone reads it as a whole, shorter file"),
    "opus_cut_in_page": ("cut_in_page.opus", False, "Ogg Opus (libopus), 3 s at 48 kHz, cut 5 bytes before the "
                                                    "end of its second-to-last page"),
}


def _zero_peak_timestamp(data: bytes) -> bytes:
    """``data`` with the time libsndfile stamps into a float WAV's PEAK chunk set to zero, so the
    same samples give the same bytes in any second (the stamp is the write time, in seconds)."""
    at = data.find(b"PEAK", 12, 512)
    if at < 0:
        return data
    # PEAK: id (4), size (4), version (4), timestamp (4), then one (value, position) per channel.
    return data[:at + 12] + bytes(4) + data[at + 16:]


def odd_files(out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the odd audio inputs decoders must handle, one file per case of :data:`ODD_FILES`.

    Parameters
    ----------
    out_dir : path-like
        Created if missing; existing files of the same names are replaced.

    Returns
    -------
    dict
        :data:`ODD_FILES` name -> path written. Which must decode and which must fail is
        ``ODD_FILES[name][1]``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = odd_files(tmp)
    ...     sizes = {name: path.stat().st_size for name, path in paths.items()}
    >>> sizes["empty"], sizes["silence"] > 44100
    (0, True)
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / file_name for name, (file_name, _, _) in ODD_FILES.items()}

    def tone(freq: float, sr: int, seconds: float) -> np.ndarray:
        return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(round(seconds * sr))) / sr)

    def write(name: str, audio: np.ndarray, sr: int, subtype: str = "PCM_16", major: str = "WAV") -> bytes:
        buffer = io.BytesIO()
        write_audio(buffer, audio, sample_rate=sr, format=major, subtype=subtype)
        data = buffer.getvalue() if major != "OGG" else _set_ogg_serial(buffer.getvalue(), 1)
        data = _zero_peak_timestamp(data)
        with atomic_path(paths[name]) as tmp:
            tmp.write_bytes(data)
        return data

    def cut(name: str, data: bytes, end: int) -> None:
        with atomic_path(paths[name]) as tmp:
            tmp.write_bytes(data[:end])

    with atomic_path(paths["empty"]) as tmp:
        tmp.write_bytes(b"")
    with atomic_path(paths["not_audio"]) as tmp:
        tmp.write_text("This is not audio: a text file renamed to .wav.\n", encoding="utf-8")
    full = write("truncated", tone(440.0, 22050, 1.0), 22050)
    header = len(full) - 2 * 22050
    with atomic_path(paths["truncated"]) as tmp:
        tmp.write_bytes(full[: header + 22050])  # half the data: 11025 of 22050 frames
    with_nan = tone(440.0, 22050, 0.5)
    with_nan[5000:5010] = np.nan
    write("nan", with_nan, 22050, subtype="FLOAT")
    write("six_channel", np.stack([tone(220.0 * (c + 1), 48000, 0.5) for c in range(6)]), 48000)
    write("rate_8k", tone(440.0, 8000, 0.5), 8000)
    write("hires", np.stack([tone(440.0, 96000, 0.5), tone(660.0, 96000, 0.5)]), 96000, subtype="PCM_24")
    write("short", tone(440.0, 22050, 0.04), 22050)
    write("silence", np.zeros(22050), 22050)
    # A chirp with a little noise, so the encoders write several audio pages.
    for name, sr, subtype in (("ogg_cut_at_page", 44100, "VORBIS"), ("opus_cut_in_page", 48000, "OPUS")):
        t = np.arange(3 * sr) / sr
        signal = 0.4 * np.sin(2 * np.pi * (200.0 * t + 300.0 * t**2)) + 0.01 * np.sin(2 * np.pi * 3733.0 * t**1.5)
        data = write(name, signal, sr, subtype=subtype, major="OGG")
        with io.BytesIO(data) as handle:
            pages = list(ogg.iter_pages(handle))
        cut(name, data, pages[-1].offset if name == "ogg_cut_at_page" else pages[-2].end - 5)
    return paths


# --------------------------------------------------------------------------------------------
# A hard clip corpus: imbalanced classes and lengths, overlapping timbres

#: Classes of :func:`write_clips_corpus`: (tracks at scale 1, (min, max) seconds, description).
CLIPS_CLASSES = {
    "rising": (22, (6.0, 18.0), "runs of 3-6 scale notes going up, each run in a timbre of the shared pool"),
    "falling": (15, (6.0, 18.0), "the same runs going down: the same notes and timbres as rising"),
    "pulse": (9, (6.0, 18.0), "runs of one repeated pitch on a steady beat, each run in a timbre of the pool"),
    "chirp": (6, (1.0, 3.0), "one to three glides of a harmonic tone (up or down), short sound effects"),
    "hit": (4, (1.0, 3.0), "one to four band-passed noise bursts with pitched ringing, short sound effects"),
}
_CLIPS_FORMATS = ("flac", "ogg", "wav")
_CLIPS_RATES = (22050, 16000, 44100)
_CLIPS_MARKER = _README_MARKER + " (clips: imbalanced, overlapping timbres)"


def _clips_timbre(rng: np.random.Generator) -> dict[str, float]:
    """A timbre from the pool every class draws from: partial count, tilt, decay, attack."""
    return {"partials": int(rng.integers(3, 11)), "tilt": float(rng.uniform(3.0, 12.0)),
            "decay": float(rng.uniform(0.08, 0.6)), "attack": float(rng.uniform(0.002, 0.04))}


def _clips_tone(f0: float | np.ndarray, n: int, sr: int, timbre: dict[str, float]) -> np.ndarray:
    """A harmonic tone of ``n`` samples (``f0`` constant or per sample) with the timbre's envelope."""
    t = np.arange(n) / sr
    phase = 2 * np.pi * (np.cumsum(np.broadcast_to(f0, (n,))) / sr)
    tone = np.zeros(n)
    for k in range(1, timbre["partials"] + 1):
        if np.max(np.broadcast_to(f0, (n,))) * k >= MAX_FREQUENCY:
            break
        tone += 10 ** (-timbre["tilt"] * math.log2(k) / 20) * np.sin(k * phase)
    envelope = np.minimum(1.0, t / timbre["attack"]) * np.exp(-t / timbre["decay"])
    return tone * envelope


def _clips_notes(label: str, rng: np.random.Generator, duration: float) -> list[tuple[float, float, int]]:
    """(onset s, MIDI pitch, run number) of the pitched music classes; each run gets its own timbre."""
    step = float(rng.uniform(0.12, 0.3))
    root = int(rng.integers(45, 70))
    scale = np.cumsum([0, 2, 2, 1, 2, 2, 2, 1] * 3)
    notes, t, run_number = [], float(rng.uniform(0.0, 0.2)), 0
    while t < duration - step:
        length = int(rng.integers(3, 7))
        if label == "pulse":
            pitch = root + int(rng.choice([0, 5, 7, 12]))
            run = [pitch] * (2 * length)
        else:
            start = int(rng.integers(0, 8))
            run = [root + int(scale[start + i]) for i in range(length)]
            run = run if label == "rising" else run[::-1]
        for pitch in run:
            if t >= duration - step:
                break
            notes.append((t, float(pitch), run_number))
            t += step
        t += float(rng.uniform(0.0, 2 * step))  # a breath between runs
        run_number += 1
    return notes


def clips_track(*, label: str, rng: np.random.Generator, sr: int, duration: float) -> np.ndarray:
    """One track of :data:`CLIPS_CLASSES` ``label``: mono float32, peak -26 to -6 dBFS, light noise."""
    n = int(round(duration * sr))
    y = np.zeros(n)
    if label in ("rising", "falling", "pulse"):
        timbres: dict[int, dict[str, float]] = {}
        for onset, pitch, run in _clips_notes(label, rng, duration):
            timbre = timbres.setdefault(run, _clips_timbre(rng))
            start = int(onset * sr)
            length = min(n - start, int(sr * min(1.5, 4 * timbre["decay"])))
            y[start:start + length] += rng.uniform(0.6, 1.0) * _clips_tone(_midi_hz(pitch), length, sr, timbre)
    elif label == "chirp":
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.uniform(0, 0.5) * n)
            length = n - start
            a, b = rng.uniform(45, 80, size=2)
            glide = _midi_hz(a + (b - a) * np.linspace(0, 1, length))
            timbre = {**_clips_timbre(rng), "decay": float(rng.uniform(0.3, 1.5))}
            y[start:] += _clips_tone(glide, length, sr, timbre)
    elif label == "hit":
        for _ in range(int(rng.integers(1, 5))):
            start = int(rng.uniform(0, 0.7) * n)
            length = n - start
            t = np.arange(length) / sr
            centre = float(rng.uniform(300, 4000))
            band = _butter(2, (centre / 1.5, min(centre * 1.5, MAX_FREQUENCY)), sr=sr, btype="bandpass")
            noise = scipy.signal.sosfilt(band, rng.normal(size=length)) * np.exp(-t / rng.uniform(0.03, 0.2))
            ring = _clips_tone(_midi_hz(float(rng.uniform(50, 80))), length, sr, _clips_timbre(rng))
            y[start:] += 3 * noise + 0.5 * ring
    else:
        raise ConfigError(f"label={label!r} must be one of {list(CLIPS_CLASSES)}")
    y += rng.normal(scale=10 ** (rng.uniform(-4.0, -2.5)), size=n) * np.max(np.abs(y) + 1e-9)
    y = _lowpass(y, sr=sr, cutoff=MAX_FREQUENCY) if sr > 2 * MAX_FREQUENCY + 1000 else y
    peak = 10 ** (rng.uniform(-26, -6) / 20)
    return (y * peak / max(np.max(np.abs(y)), 1e-9)).astype(np.float32)


def write_clips_corpus(out_dir: str | os.PathLike, *, seed: int = 0, scale: float = 1.0,
                       overwrite: bool = False) -> dict[str, list[str]]:
    """Write a hard "one folder per class" corpus: imbalanced class sizes and track lengths,
    timbres shared by every class, deterministic by ``seed``.

    What separates ``rising`` from ``falling`` (the same notes and timbres in the other order)
    and ``pulse`` from both is the order of events in time, which per-track statistics of a
    spectrogram (mean and std over time) barely see; ``chirp`` and ``hit`` are 1-3 s sound
    effects among 6-18 s "songs". Files are FLAC, Ogg Vorbis and WAV at 16, 22.05 and 44.1 kHz.

    Parameters
    ----------
    out_dir : path-like
        ``OUT/CLASS/cNNNN.EXT`` and ``OUT/README.txt``.
    seed : int >= 0
    scale : float > 0
        Multiplies the number of tracks of every class (at least 2 per class) and the music
        classes' lengths are kept; ``scale=0.5`` halves the corpus for quick tests.
    overwrite : bool
        Replace a previous corpus written here.

    Returns
    -------
    dict
        Class -> relative file paths, sorted.

    Examples
    --------
    >>> import tempfile
    >>> files = write_clips_corpus(tempfile.mkdtemp(), seed=0, scale=0.1)
    >>> {label: len(paths) for label, paths in files.items()}
    {'rising': 2, 'falling': 2, 'pulse': 2, 'chirp': 2, 'hit': 2}
    """
    seed = integer(seed, name="seed", minimum=0)
    scale = positive_float(scale, name="scale")
    root = Path(out_dir)
    _check_out_dir(root, overwrite=overwrite)
    if root.exists() and overwrite:
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}
    index = 0
    for class_index, (label, (count, (low, high), _)) in enumerate(CLIPS_CLASSES.items()):
        for i in range(max(2, round(count * scale))):
            sequence = np.random.SeedSequence(seed, spawn_key=(class_index, i))
            rng = np.random.default_rng(sequence)
            file_format = _CLIPS_FORMATS[index % len(_CLIPS_FORMATS)]
            sr = _CLIPS_RATES[(index // len(_CLIPS_FORMATS)) % len(_CLIPS_RATES)]
            duration = float(rng.uniform(low, high))
            audio_ = clips_track(label=label, rng=rng, sr=sr, duration=duration)
            relative = f"{label}/c{index:04d}.{file_format}"
            _write_audio(root / relative, audio_, sr=sr, file_format=file_format,
                         ogg_serial=int(sequence.generate_state(1)[0]))
            files.setdefault(label, []).append(relative)
            index += 1
    lines = [_CLIPS_MARKER, f"seed {seed}, scale {scale:g}; classes (tracks, seconds):"]
    lines += [f"  {label}: {len(files[label])} tracks, {low:g}-{high:g} s: {text}"
              for label, (_, (low, high), text) in CLIPS_CLASSES.items()]
    with atomic_path(root / "README.txt") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files
