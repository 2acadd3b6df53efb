"""Annotation files: onsets, notes and chords of one track from JAMS or plain-text files.

:func:`load_annotations` reads one file into :class:`~mirdl.features.labels.Annotations`;
anything wrong with it raises :class:`AnnotationError` naming the file and the line. Pure
Python (``jams`` is imported only for ``.jams`` files): no Beam, no TensorFlow.

Examples
--------
>>> import tempfile
>>> onsets = Path(tempfile.mkdtemp()) / "song.onsets.csv"
>>> _ = onsets.write_text("time\\n0.5\\n1.25\\n")
>>> load_annotations(onsets, kind="onsets").onsets
(0.5, 1.25)
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mirdl.errors import ConfigError, MirdlError
from mirdl.features.checks import choice
from mirdl.features.labels import Annotations, reduce_chord

__all__ = ["ANNOTATION_KINDS", "JAMS_NAMESPACES", "AnnotationError", "load_annotations"]

ANNOTATION_KINDS = ("onsets", "notes", "chords")
#: JAMS namespaces read for each kind, in order of preference (the first one present is used).
JAMS_NAMESPACES = {
    "onsets": ("onset", "beat"),
    "notes": ("note_midi", "pitch_midi", "note_hz"),
    "chords": ("chord", "chord_harte"),
}


class AnnotationError(MirdlError):
    """An annotation file is missing, unreadable or has bad content; names the file and line.

    Attributes
    ----------
    path : str or None
    line : int or None
        1-based line number (text formats) when known.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None) -> None:
        self.message, self.path, self.line = message, None if path is None else str(path), line
        where = "" if path is None else (f"{path}:{line}: " if line is not None else f"{path}: ")
        super().__init__(where + message)

    def __reduce__(self):  # keep path and line through pickling (Beam moves exceptions between workers)
        return type(self), (self.message, self.path, self.line)


def _number(text: str, *, what: str, path: str, line: int | None, time: bool = True) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{what}={text!r} is not a number", path, line) from None
    if not math.isfinite(value):
        raise AnnotationError(f"{what}={text!r} must be finite", path, line)
    if time and value < 0:
        raise AnnotationError(f"{what}={value!r} must be >= 0 seconds", path, line)
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _chord_label(label: Any, *, reduce: bool, path: str, line: int | None) -> str:
    try:
        reduced = reduce_chord(label)
    except ConfigError as err:
        raise AnnotationError(str(err), path, line) from None
    return reduced if reduce else label


def _text_lines(path: str, *, n_fields: int, maxsplit: int = -1) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a plain annotation file, skipping blanks, ``#`` comments and a header.

    ``maxsplit`` bounds whitespace splitting (chord labels are the last field).
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationError(f"cannot read annotation file ({err})", path) from err
    comma = path.lower().endswith(".csv")
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        values = next(csv.reader([line])) if comma else line.split(None, maxsplit)
        values = [value.strip() for value in values]
        if first and not _is_number(values[0]):
            first = False  # a header line ("time", "onset,offset,midi", "start,end,label")
            continue
        first = False
        if len(values) != n_fields:
            raise AnnotationError(f"expected {n_fields} field{'s' if n_fields > 1 else ''}, got {len(values)}: "
                                  f"{line!r}", path, number)
        yield number, values


def _load_text(path: str, kind: str, *, reduce_chords: bool) -> Annotations:
    if kind == "onsets":
        onsets = [_number(values[0], what="time", path=path, line=number)
                  for number, values in _text_lines(path, n_fields=1)]
        return Annotations(onsets=tuple(onsets))
    if kind == "notes":
        notes = []
        for number, (onset_text, offset_text, pitch_text) in _text_lines(path, n_fields=3):
            onset = _number(onset_text, what="onset", path=path, line=number)
            offset = _number(offset_text, what="offset", path=path, line=number)
            if offset < onset:
                raise AnnotationError(f"offset {offset} is before onset {onset}", path, number)
            notes.append((onset, offset, _number(pitch_text, what="midi", path=path, line=number, time=False)))
        return Annotations(notes=tuple(notes))
    chords = []
    for number, (start_text, end_text, label) in _text_lines(path, n_fields=3, maxsplit=2):
        start = _number(start_text, what="start", path=path, line=number)
        end = _number(end_text, what="end", path=path, line=number)
        if end < start:
            raise AnnotationError(f"end {end} is before start {start}", path, number)
        chords.append((start, end, _chord_label(label, reduce=reduce_chords, path=path, line=number)))
    return Annotations(chords=tuple(chords))


def _load_jams(path: str, kind: str, *, reduce_chords: bool) -> Annotations:
    import jams  # lazy: only JAMS corpora pay for its import (pandas, jsonschema)

    try:
        jam = jams.load(path, validate=True, strict=True)
    except (OSError, ValueError, jams.JamsError) as err:
        raise AnnotationError(f"not a valid JAMS file ({err})", path) from err
    # Exact names: JAMS's own search treats the namespace as a regex prefix ("chord" ~ "chord_harte").
    by_namespace = {}
    for annotation in jam.annotations:
        by_namespace.setdefault(annotation.namespace, annotation)
    namespace = next((name for name in JAMS_NAMESPACES[kind] if name in by_namespace), None)
    if namespace is None:
        raise AnnotationError(f"no {kind} annotation: none of the namespaces {list(JAMS_NAMESPACES[kind])} "
                              f"(the file has {sorted(by_namespace)})", path)
    events = []
    for index, observation in enumerate(by_namespace[namespace].data):
        where = f"{namespace} observation {index}"
        start = float(observation.time)
        end = start + float(observation.duration or 0.0)
        if kind == "onsets":
            events.append(start)
        elif kind == "notes":
            value = float(observation.value)
            if namespace == "note_hz":
                if not value > 0:
                    raise AnnotationError(f"{where}: frequency {value} Hz must be > 0", path)
                value = 69.0 + 12.0 * math.log2(value / 440.0)
            events.append((start, end, value))
        else:
            try:
                label = _chord_label(observation.value, reduce=reduce_chords, path=path, line=None)
            except AnnotationError as err:
                raise AnnotationError(f"{where}: {err.message}", path) from None
            events.append((start, end, label))
    try:
        return Annotations(**{kind: tuple(events)})
    except ConfigError as err:
        raise AnnotationError(str(err), path) from None


def load_annotations(path: str | os.PathLike, *, kind: str, reduce_chords: bool = True) -> Annotations:
    """Read the ``kind`` annotations of one track from a JAMS or plain-text file.

    Formats
    -------
    ``.jams`` / ``.jamz``
        Read with the ``jams`` package (validated against its schema). The first
        annotation of the first namespace of :data:`JAMS_NAMESPACES` present is used:
        onsets from ``onset`` (else ``beat``) times; notes from ``note_midi``/``pitch_midi``
        (or ``note_hz``, converted to MIDI) as (time, time + duration, value); chords from
        ``chord``/``chord_harte``.
    anything else
        Plain text, comma-separated if the name ends in ``.csv``, else whitespace-separated;
        blank lines and ``#`` comments are skipped, and a first line that does not start with
        a number is a header. Onsets: one time per line. Notes: ``onset offset midi``.
        Chords (``.lab``): ``start end label``.

    Parameters
    ----------
    path : path-like
    kind : {"onsets", "notes", "chords"}
        Which field of the returned :class:`~mirdl.features.labels.Annotations` is filled.
    reduce_chords : bool
        Map chord labels with :func:`~mirdl.features.labels.reduce_chord` to
        :data:`~mirdl.features.labels.CHORD_VOCABULARY` (what
        ``frame_chords`` targets need); False keeps the labels as written (still checked).

    Returns
    -------
    mirdl.features.labels.Annotations

    Raises
    ------
    AnnotationError
        Missing or unreadable file, bad number, end before start, bad chord label, no
        matching JAMS namespace; the message names the file and the line.

    Examples
    --------
    >>> import tempfile
    >>> lab = Path(tempfile.mkdtemp()) / "song.lab"
    >>> _ = lab.write_text("0.0 1.5 N\\n1.5 3.0 Bb:min7\\n")
    >>> load_annotations(lab, kind="chords").chords
    ((0.0, 1.5, 'N'), (1.5, 3.0, 'A#:min'))
    """
    choice(kind, name="kind", options=ANNOTATION_KINDS)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AnnotationError("annotation file not found", path)
    if path.lower().endswith((".jams", ".jamz")):
        return _load_jams(path, kind, reduce_chords=reduce_chords)
    return _load_text(path, kind, reduce_chords=reduce_chords)
