"""Corpus adapters: list the tracks of a corpus, with labels, annotations and splits.

A corpus is described by the ``corpus:`` mapping of the prepare YAML
(:class:`CorpusConfig`) and split by the ``splits:`` mapping (:class:`SplitConfig`).
:func:`list_tracks` turns them into a sorted list of :class:`Track` plus one
:class:`~mirdl.pipelines.dead_letter.ErrorRecord` per file that cannot be used (missing audio,
unreadable CSV row, missing annotation file): one bad file never stops a job. This
module is plain Python (no Beam): the precompute job lists the corpus before it builds
its pipeline and hands the tracks to ``beam.Create``.

Corpus types
------------
``dir_per_class``
    ``root/CLASS/**/file.wav``: the first sub-folder is the label.
``csv``
    One row per track: ``path_column`` and ``label_column``.
``csv_tags``
    ``tags_column`` holds ``tag_separator``-separated tags (multi-label).
``csv_tag_columns``
    One 0/1 column per tag (``tag_columns``), as in MagnaTagATune.
``csv_regression``
    ``target_columns`` hold numbers (tempo, valence, ...).
``annotations``
    Frame-level targets from annotation files (:func:`load_annotations`): either every
    audio file under ``root`` or the rows of ``csv``; the annotation file is in
    ``annotation_column`` or next to the audio (:data:`ANNOTATION_SIDECARS`).

Track ids are the audio path relative to the corpus root (or the CSV's folder), POSIX
style, without extension: ``"dog/bark01"``. Relative paths in a CSV resolve against the
CSV's folder, so a corpus can be moved as a whole. Hidden files and folders (``.name``)
are ignored; extensions compare case-insensitively.

Splits are a stable hash of ``(seed, group or track id)`` (:func:`assign_split`), so the
same corpus and seed give the same splits in any listing order, on any machine, and a
group (artist, album) never straddles two splits.

Examples
--------
>>> assign_split(key="artist_a", fractions=(("train", 0.8), ("valid", 0.1), ("test", 0.1)), seed=0)
'train'
>>> reduce_chord("Bb:min7/b3"), reduce_chord("E:hdim7"), reduce_chord("G:sus4"), reduce_chord("C")
('A#:min', 'E:min', 'N', 'C:maj')
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path, PurePath
from typing import Any

from mirdl.errors import ConfigError, MirdlError
from mirdl.features.labels import NO_CHORD, Annotations, transpose_chord
from mirdl.features.spec import stable_hash
from mirdl.pipelines.dead_letter import ErrorRecord

__all__ = [
    "CORPUS_TYPES",
    "ANNOTATION_KINDS",
    "ANNOTATION_SIDECARS",
    "JAMS_NAMESPACES",
    "CHORD_VOCABULARY",
    "NOTE_NAMES",
    "AnnotationError",
    "Track",
    "CorpusConfig",
    "SplitConfig",
    "list_tracks",
    "assign_split",
    "task_for",
    "listing_hash",
    "load_annotations",
    "reduce_chord",
]

CORPUS_TYPES = ("dir_per_class", "csv", "csv_tags", "csv_tag_columns", "csv_regression", "annotations")
ANNOTATION_KINDS = ("onsets", "notes", "chords")
#: Annotation files looked for next to ``STEM.wav`` when ``annotation_column`` is not set, first found wins.
ANNOTATION_SIDECARS = {
    "onsets": (".onsets.csv", ".jams"),
    "notes": (".notes.csv", ".jams"),
    "chords": (".lab", ".jams"),
}
#: JAMS namespaces read for each kind, in order of preference (the first one present is used).
JAMS_NAMESPACES = {
    "onsets": ("onset", "beat"),
    "notes": ("note_midi", "pitch_midi", "note_hz"),
    "chords": ("chord", "chord_harte"),
}
_TASK_TYPES = {
    "dir_per_class": "single_label",
    "csv": "single_label",
    "csv_tags": "multi_label",
    "csv_tag_columns": "multi_label",
    "csv_regression": "regression",
}
_FRAME_TASK_TYPES = {"onsets": "frame_onset", "notes": "frame_notes", "chords": "frame_chords"}

# Root names exactly as mirdl.features.labels.transpose_chord spells them, so a reduced chord
# stays in the vocabulary after any (integer) pitch shift.
_ROOT_NAMES = tuple(transpose_chord("C", n_steps=step) for step in range(12))
#: Chord classes of ``frame_chords``: no chord, then 12 roots x {maj, min}; see :func:`reduce_chord`.
CHORD_VOCABULARY = (NO_CHORD,) + tuple(f"{root}:{quality}" for root in _ROOT_NAMES for quality in ("maj", "min"))
#: Row names of the ``frame_notes`` piano roll: MIDI 21 (A0) to 108 (C8), as in mirdl.features.labels.note_roll.
NOTE_NAMES = tuple(f"{_ROOT_NAMES[midi % 12]}{midi // 12 - 1}" for midi in range(21, 109))

_SPLIT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # also valid in shard file names
_FRACTION_TOLERANCE = 1e-6


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


# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class Track:
    """One audio file of a corpus and everything known about it before decoding.

    Parameters
    ----------
    track_id : str
        Stable unique id: the path relative to the corpus root (or CSV folder), POSIX,
        without extension.
    path : str
        Absolute path of the audio file.
    label : str or None
        Class (single-label corpora).
    tags : tuple of str
        Tags, sorted (multi-label corpora).
    targets : tuple of float
        Regression targets, in the order of ``CorpusConfig.target_columns``.
    annotation_path : str or None
        Absolute path of the frame-level annotation file (``annotations`` corpora).
    group : str or None
        Group key for leakage-free splits (artist, album).
    split : str or None
        Assigned split (set by :func:`list_tracks`).
    """

    track_id: str
    path: str
    label: str | None = None
    tags: tuple[str, ...] = ()
    targets: tuple[float, ...] = ()
    annotation_path: str | None = None
    group: str | None = None
    split: str | None = None


def _check_name(value: Any, *, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}={value!r} must be a non-empty string" + (" or null" if optional else ""))
    return value


def _check_names(value: Any, *, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}={value!r} must be a list of strings")
    names = tuple(_check_name(item, where=f"{where}[{i}]") for i, item in enumerate(value))
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}={list(names)!r} has repeated names")
    return names


def _unknown_keys(data: Any, cls: type, *, where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    known = [field.name for field in fields(cls)]
    unknown = sorted(set(data) - set(known), key=str)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a field (fields: {', '.join(sorted(known))})")
    return dict(data)


@dataclass(frozen=True)
class CorpusConfig:
    """Where a corpus is and how to read its labels: the ``corpus:`` mapping of the prepare YAML.

    Parameters
    ----------
    type : {"dir_per_class", "csv", "csv_tags", "csv_tag_columns", "csv_regression", "annotations"}
    root : str or None
        Corpus folder (``dir_per_class``; ``annotations`` without a CSV).
    csv : str or None
        CSV file (``csv*`` types; ``annotations`` with a CSV). A ``.tsv`` is read tab-separated.
    path_column, label_column, tags_column : str
        CSV columns of the audio path, the label and the tag list.
    tag_separator : str
        Separator inside ``tags_column``.
    tag_columns : tuple of str
        ``csv_tag_columns``: one 0/1 column per tag.
    target_columns : tuple of str
        ``csv_regression``: the target columns, in output order.
    annotation_column : str or None
        ``annotations`` with a CSV: column of annotation paths; when None the annotation
        is looked for next to the audio (:data:`ANNOTATION_SIDECARS`).
    annotation_kind : {"onsets", "notes", "chords"}
    group_column, split_column : str or None
        CSV columns with the group key (artist, album) and a predefined split.
    extensions : tuple of str
        Audio extensions, without dot, compared case-insensitively.
    """

    type: str
    root: str | None = None
    csv: str | None = None
    path_column: str = "path"
    label_column: str = "label"
    tags_column: str = "tags"
    tag_separator: str = ";"
    tag_columns: tuple[str, ...] = ()
    target_columns: tuple[str, ...] = ()
    annotation_column: str | None = None
    annotation_kind: str = "onsets"
    group_column: str | None = None
    split_column: str | None = None
    extensions: tuple[str, ...] = ("wav", "flac", "ogg", "mp3", "opus", "aiff", "aif")

    def __post_init__(self) -> None:
        if self.type not in CORPUS_TYPES:
            raise ConfigError(f"corpus.type={self.type!r} must be one of {list(CORPUS_TYPES)}")
        for name in ("root", "csv", "annotation_column", "group_column", "split_column"):
            _check_name(getattr(self, name), where=f"corpus.{name}", optional=True)
        for name in ("path_column", "label_column", "tags_column", "tag_separator"):
            _check_name(getattr(self, name), where=f"corpus.{name}")
        if self.annotation_kind not in ANNOTATION_KINDS:
            raise ConfigError(f"corpus.annotation_kind={self.annotation_kind!r} must be one of "
                              f"{list(ANNOTATION_KINDS)}")
        object.__setattr__(self, "tag_columns", _check_names(self.tag_columns, where="corpus.tag_columns"))
        object.__setattr__(self, "target_columns", _check_names(self.target_columns, where="corpus.target_columns"))
        extensions = _check_names(self.extensions, where="corpus.extensions")
        extensions = tuple(dict.fromkeys(ext.lower().lstrip(".") for ext in extensions))
        if not extensions or "" in extensions:
            raise ConfigError(f"corpus.extensions={list(self.extensions)!r} must name at least one extension")
        object.__setattr__(self, "extensions", extensions)
        self._check_sources()
        if self.type == "csv_tag_columns" and not self.tag_columns:
            raise ConfigError("corpus.tag_columns is empty; type 'csv_tag_columns' needs one 0/1 column per tag")
        if self.type == "csv_regression" and not self.target_columns:
            raise ConfigError("corpus.target_columns is empty; type 'csv_regression' needs at least one target")

    def _check_sources(self) -> None:
        uses_csv = self.type.startswith("csv") or (self.type == "annotations" and self.csv is not None)
        if uses_csv:
            if self.csv is None:
                raise ConfigError(f"corpus.csv is missing; type {self.type!r} reads a CSV file")
            if self.root is not None:
                raise ConfigError(f"corpus.root={self.root!r} is not used with a CSV; give corpus.csv only")
            return
        if self.root is None:
            hint = " or corpus.csv" if self.type == "annotations" else ""
            raise ConfigError(f"corpus.root is missing; type {self.type!r} lists a folder (give corpus.root{hint})")
        if self.type == "dir_per_class" and self.csv is not None:
            raise ConfigError(f"corpus.csv={self.csv!r} is not used by type 'dir_per_class'; give corpus.root only")
        for name in ("annotation_column", "group_column", "split_column"):
            if getattr(self, name) is not None:
                raise ConfigError(f"corpus.{name}={getattr(self, name)!r} needs a CSV, but type "
                                  f"{self.type!r} lists corpus.root")

    @property
    def uses_csv(self) -> bool:
        """True when the tracks come from :attr:`csv` rather than a folder walk."""
        return self.csv is not None

    def csv_columns(self) -> list[tuple[str, str]]:
        """(field, column) pairs this config reads from the CSV, e.g. ``("corpus.label_column", "label")``."""
        if not self.uses_csv:
            return []
        columns = [("corpus.path_column", self.path_column)]
        if self.type == "csv":
            columns.append(("corpus.label_column", self.label_column))
        elif self.type == "csv_tags":
            columns.append(("corpus.tags_column", self.tags_column))
        elif self.type == "csv_tag_columns":
            columns += [(f"corpus.tag_columns[{i}]", name) for i, name in enumerate(self.tag_columns)]
        elif self.type == "csv_regression":
            columns += [(f"corpus.target_columns[{i}]", name) for i, name in enumerate(self.target_columns)]
        for name in ("annotation_column", "group_column", "split_column"):
            if getattr(self, name) is not None:
                columns.append((f"corpus.{name}", getattr(self, name)))
        return columns

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-able form (lists for tuples); :meth:`from_dict` inverts it."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Any, *, base_dir: str | os.PathLike) -> CorpusConfig:
        """Build and check a config from the ``corpus:`` mapping.

        ``root`` and ``csv`` resolve against ``base_dir`` (the YAML file's folder) and must
        exist; a CSV's header must have every column the config names.

        Raises
        ------
        ConfigError
            Naming the field, e.g. ``corpus.label_column='genre' is not a column of
            labels.csv (columns: path, label, artist)``.
        """
        data = _unknown_keys(data, cls, where="corpus")
        if "type" not in data:
            raise ConfigError(f"corpus.type is missing (one of {list(CORPUS_TYPES)})")
        for name in ("root", "csv"):
            if isinstance(data.get(name), str) and data[name]:
                data[name] = os.path.normpath(os.path.join(os.fspath(base_dir), os.path.expanduser(data[name])))
        config = cls(**data)
        if config.root is not None and not os.path.isdir(config.root):
            raise ConfigError(f"corpus.root={config.root!r} is not a directory")
        if config.csv is not None:
            if not os.path.isfile(config.csv):
                raise ConfigError(f"corpus.csv={config.csv!r} is not a file")
            with _csv_table(config):
                pass
        return config


def _check_fractions(fractions: Any, *, where: str) -> tuple[tuple[str, float], ...]:
    pairs = list(fractions.items()) if isinstance(fractions, Mapping) else fractions
    if isinstance(pairs, str) or not isinstance(pairs, (list, tuple)) or not pairs:
        raise ConfigError(f"{where}={fractions!r} must be a non-empty mapping of split name to fraction")
    checked = []
    for pair in pairs:
        if isinstance(pair, str) or not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(f"{where}: entry {pair!r} must be a (split name, fraction) pair")
        name, fraction = pair
        if not isinstance(name, str) or not _SPLIT_NAME.match(name):
            raise ConfigError(f"{where}: split name {name!r} must be an identifier (letters, digits, _)")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction) \
                or fraction <= 0:
            raise ConfigError(f"{where}[{name!r}]={fraction!r} must be a number > 0")
        checked.append((name, float(fraction)))
    names = [name for name, _ in checked]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: split names {names} are repeated")
    total = math.fsum(fraction for _, fraction in checked)
    if abs(total - 1.0) > _FRACTION_TOLERANCE:
        raise ConfigError(f"{where}={dict(checked)!r} sum to {total:g}, not 1")
    return tuple(checked)


@dataclass(frozen=True)
class SplitConfig:
    """How tracks are split: the ``splits:`` mapping of the prepare YAML.

    Parameters
    ----------
    column : str or None
        Take each track's split from this CSV column instead of hashing (the same column
        as ``CorpusConfig.split_column``; either may be given).
    fractions : tuple of (name, fraction) pairs, or a mapping
        Fractions > 0 summing to 1; names are identifiers. Order matters: a track goes
        to the split whose cumulative interval holds its hash (see :func:`assign_split`).
    group_by : {"group", "track"}
        Hash ``Track.group`` (falling back to the track id), or always the track id.
    seed : int
        Changes every assignment; keep it fixed to keep splits fixed.
    """

    column: str | None = None
    fractions: tuple[tuple[str, float], ...] = (("train", 0.8), ("valid", 0.1), ("test", 0.1))
    group_by: str = "group"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_name(self.column, where="splits.column", optional=True)
        object.__setattr__(self, "fractions", _check_fractions(self.fractions, where="splits.fractions"))
        if self.group_by not in ("group", "track"):
            raise ConfigError(f"splits.group_by={self.group_by!r} must be 'group' or 'track'")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"splits.seed={self.seed!r} must be an integer")

    @property
    def names(self) -> tuple[str, ...]:
        """Split names in ``fractions`` order."""
        return tuple(name for name, _ in self.fractions)

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-able form (``fractions`` as an ordered mapping); :meth:`from_dict` inverts it."""
        return {"column": self.column, "fractions": dict(self.fractions), "group_by": self.group_by,
                "seed": self.seed}

    @classmethod
    def from_dict(cls, data: Any) -> SplitConfig:
        """Build and check a config from the ``splits:`` mapping (``None`` gives the defaults).

        ``column`` and ``fractions`` exclude each other.
        """
        data = _unknown_keys({} if data is None else data, cls, where="splits")
        if data.get("column") is not None and data.get("fractions") is not None:
            raise ConfigError("splits.column and splits.fractions exclude each other: the split "
                              "comes either from a CSV column or from hashing")
        return cls(**{key: value for key, value in data.items() if value is not None or key == "column"})


# --------------------------------------------------------------------------- listing


class _Rejected(Exception):
    """One file or row that cannot be listed; carries its dead-letter record."""

    def __init__(self, *, path: str, track_id: str | None, stage: str, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.record = ErrorRecord.from_exc(path=path, track_id=track_id, stage=stage, exc=exc)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _has_extension(path: str, extensions: tuple[str, ...]) -> bool:
    return PurePath(path).suffix.lower().lstrip(".") in extensions


def _walk_audio(root: str, extensions: tuple[str, ...]) -> Iterator[str]:
    """Audio files below ``root`` (absolute), hidden files and folders skipped, in sorted order."""
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not _is_hidden(name))
        for name in sorted(filenames):
            if not _is_hidden(name) and _has_extension(name, extensions):
                yield os.path.join(folder, name)


def _track_id(audio_path: str, base: str) -> str:
    relative = os.path.relpath(audio_path, base)
    return PurePath(relative).with_suffix("").as_posix()


def _find_annotation(audio_path: str, kind: str, *, track_id: str) -> str:
    stem = os.path.splitext(audio_path)[0]
    candidates = [stem + suffix for suffix in ANNOTATION_SIDECARS[kind]]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    names = ", ".join(os.path.basename(candidate) for candidate in candidates)
    raise _Rejected(path=audio_path, track_id=track_id, stage="annotations",
                    exc=FileNotFoundError(f"no {kind} annotation next to {audio_path} (looked for {names})"))


def _list_folder(config: CorpusConfig) -> Iterator[Track | _Rejected]:
    for audio_path in _walk_audio(config.root, config.extensions):
        track_id = _track_id(audio_path, config.root)
        try:
            if config.type == "dir_per_class":
                if "/" not in track_id:
                    raise _Rejected(path=audio_path, track_id=track_id, stage="list", exc=ConfigError(
                        f"{audio_path} is directly in corpus.root; put it in a class folder"))
                yield Track(track_id=track_id, path=audio_path, label=track_id.split("/", 1)[0])
            else:
                yield Track(track_id=track_id, path=audio_path,
                            annotation_path=_find_annotation(audio_path, config.annotation_kind, track_id=track_id))
        except _Rejected as rejected:
            yield rejected


@contextlib.contextmanager
def _csv_table(config: CorpusConfig) -> Iterator[tuple[list[str], Iterator[tuple[int, list[str]]]]]:
    """Open ``config.csv``: yield its checked header and an iterator of ``(line number, fields)`` rows.

    Blank rows are skipped and fields stripped; a ``.tsv`` is tab-separated. A file that
    cannot be opened or decoded, has no header, or lacks a configured column raises
    :class:`ConfigError`.
    """
    try:
        handle = open(config.csv, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise ConfigError(f"corpus.csv={config.csv!r} cannot be read ({err.strerror or err})") from err
    with handle:
        reader = csv.reader(handle, delimiter="\t" if config.csv.lower().endswith(".tsv") else ",")

        def rows() -> Iterator[tuple[int, list[str]]]:
            try:
                for values in reader:
                    if any(value.strip() for value in values):
                        yield reader.line_num, [value.strip() for value in values]
            except (csv.Error, UnicodeDecodeError) as err:
                raise ConfigError(f"{config.csv}:{reader.line_num + 1}: not readable as CSV ({err})") from err

        table = rows()
        header = next(table, None)
        if header is None:
            raise ConfigError(f"corpus.csv={config.csv!r} is empty (no header row)")
        _check_header(config, header[1])
        yield header[1], table


def _check_header(config: CorpusConfig, header: list[str]) -> None:
    name = os.path.basename(config.csv)
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        raise ConfigError(f"corpus.csv={name!r}: column {repeated[0]!r} appears twice in the header")
    for field_name, column in config.csv_columns():
        if column not in header:
            raise ConfigError(f"{field_name}={column!r} is not a column of {name} (columns: {', '.join(header)})")


_FLAGS = {"1": True, "1.0": True, "true": True, "yes": True, "0": False, "0.0": False, "false": False, "no": False}


def _row_track(config: CorpusConfig, row: dict[str, str], *, where: str, split_column: str | None) -> Track:
    """One CSV row as a Track (split from ``split_column`` if given); raises _Rejected."""
    csv_dir = os.path.dirname(config.csv)
    value = row[config.path_column]
    if not value:
        raise _Rejected(path=where, track_id=None, stage="list",
                        exc=ConfigError(f"{where}: empty {config.path_column!r} (corpus.path_column)"))
    audio_path = os.path.normpath(os.path.join(csv_dir, os.path.expanduser(value)))
    track_id = _track_id(audio_path, csv_dir)

    def reject(message: str, *, stage: str = "list", error: type[Exception] = ConfigError) -> _Rejected:
        return _Rejected(path=audio_path, track_id=track_id, stage=stage, exc=error(f"{where}: {message}"))

    if not _has_extension(audio_path, config.extensions):
        raise reject(f"{value!r} does not end in one of corpus.extensions {list(config.extensions)}")
    if not os.path.isfile(audio_path):
        raise reject(f"audio file {audio_path} not found", error=FileNotFoundError)
    fields_: dict[str, Any] = {}
    if config.type == "csv":
        if not row[config.label_column]:
            raise reject(f"empty label in column {config.label_column!r}")
        fields_["label"] = row[config.label_column]
    elif config.type == "csv_tags":
        tags = (tag.strip() for tag in row[config.tags_column].split(config.tag_separator))
        fields_["tags"] = tuple(sorted({tag for tag in tags if tag}))
    elif config.type == "csv_tag_columns":
        tags = []
        for column in config.tag_columns:
            flag = _FLAGS.get(row[column].lower())
            if flag is None:
                raise reject(f"tag column {column!r}={row[column]!r} must be 0 or 1")
            if flag:
                tags.append(column)
        fields_["tags"] = tuple(sorted(tags))
    elif config.type == "csv_regression":
        targets = []
        for column in config.target_columns:
            try:
                target = float(row[column])
            except ValueError:
                target = math.nan
            if not math.isfinite(target):
                raise reject(f"target column {column!r}={row[column]!r} is not a finite number")
            targets.append(target)
        fields_["targets"] = tuple(targets)
    else:  # annotations
        if config.annotation_column is None:
            fields_["annotation_path"] = _find_annotation(audio_path, config.annotation_kind, track_id=track_id)
        else:
            annotation = row[config.annotation_column]
            if not annotation:
                raise reject(f"empty annotation path in column {config.annotation_column!r}", stage="annotations")
            annotation_path = os.path.normpath(os.path.join(csv_dir, os.path.expanduser(annotation)))
            if not os.path.isfile(annotation_path):
                raise reject(f"annotation file {annotation_path} not found", stage="annotations",
                             error=FileNotFoundError)
            fields_["annotation_path"] = annotation_path
    if config.group_column is not None:
        fields_["group"] = row[config.group_column] or None
    if split_column is not None:
        split = row[split_column]
        if not _SPLIT_NAME.match(split):
            raise reject(f"split column {split_column!r}={split!r} must be a split name (letters, digits, _)")
        fields_["split"] = split
    return Track(track_id=track_id, path=audio_path, **fields_)


def _list_csv(config: CorpusConfig, *, split_column: str | None) -> Iterator[Track | _Rejected]:
    with _csv_table(config) as (header, rows):
        for line, values in rows:
            where = f"{config.csv}:{line}"
            if len(values) != len(header):
                yield _Rejected(path=where, track_id=None, stage="list", exc=ConfigError(
                    f"{where}: {len(values)} fields, the header has {len(header)}"))
                continue
            try:
                yield _row_track(config, dict(zip(header, values)), where=where, split_column=split_column)
            except _Rejected as rejected:
                yield rejected


def _split_column(config: CorpusConfig, splits: SplitConfig) -> str | None:
    if config.split_column and splits.column and config.split_column != splits.column:
        raise ConfigError(f"splits.column={splits.column!r} and corpus.split_column={config.split_column!r} "
                          "name different columns")
    column = splits.column or config.split_column
    if column is not None and not config.uses_csv:
        raise ConfigError(f"splits.column={column!r} needs a CSV corpus, but corpus.type={config.type!r} "
                          "lists corpus.root")
    return column


def list_tracks(config: CorpusConfig, splits: SplitConfig) -> tuple[list[Track], list[ErrorRecord]]:
    """List a corpus: its usable tracks, with splits, and one error record per unusable file.

    Parameters
    ----------
    config : CorpusConfig
    splits : SplitConfig

    Returns
    -------
    tracks : list of Track
        Sorted by ``track_id``, every ``split`` set.
    errors : list of ErrorRecord
        Stage ``"list"`` (missing audio, bad CSV row, unsupported extension, file outside
        a class folder) or ``"annotations"`` (missing annotation file), in listing order.

    Raises
    ------
    ConfigError
        The CSV or root cannot be read, a configured column is missing, two files have the
        same track id (naming both), or nothing at all was found.

    Examples
    --------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("dog/a.wav", "dog/b.wav", "cat/c.wav"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     sf.write(root / name, np.zeros(800, dtype=np.float32), 8000)
    >>> tracks, errors = list_tracks(CorpusConfig(type="dir_per_class", root=str(root)), SplitConfig())
    >>> [(t.track_id, t.label) for t in tracks], errors
    ([('cat/c', 'cat'), ('dog/a', 'dog'), ('dog/b', 'dog')], [])
    """
    split_column = _split_column(config, splits)
    # Relative root/csv (a config built directly, not by from_dict) mean the working directory.
    config = replace(config, **{name: os.path.abspath(getattr(config, name))
                                for name in ("root", "csv") if getattr(config, name) is not None})
    if config.uses_csv:
        listed = _list_csv(config, split_column=split_column)
    else:
        if not os.path.isdir(config.root):
            raise ConfigError(f"corpus.root={config.root!r} is not a directory")
        listed = _list_folder(config)
    tracks: dict[str, Track] = {}
    errors: list[ErrorRecord] = []
    for item in listed:
        if isinstance(item, _Rejected):
            errors.append(item.record)
            continue
        if item.track_id in tracks:
            raise ConfigError(f"track id {item.track_id!r} is used by two files: {tracks[item.track_id].path} "
                              f"and {item.path} (track ids are paths without extension; rename or drop one)")
        tracks[item.track_id] = item
    if not tracks and not errors:
        source = f"corpus.csv={config.csv!r} has no rows" if config.uses_csv else \
            f"corpus.root={config.root!r} holds no audio files with corpus.extensions {list(config.extensions)}"
        raise ConfigError(source)
    listed_tracks = [tracks[track_id] for track_id in sorted(tracks)]
    if split_column is None:
        listed_tracks = [replace(track, split=_split_of(track, splits)) for track in listed_tracks]
    return listed_tracks, errors


def _split_of(track: Track, splits: SplitConfig) -> str:
    key = track.group if splits.group_by == "group" and track.group is not None else track.track_id
    return assign_split(key=key, fractions=splits.fractions, seed=splits.seed)


def assign_split(*, key: str, fractions: Any, seed: int) -> str:
    """The split of ``key``: a stable hash, independent of listing order, process and machine.

    ``u = sha256(f"{seed}:{key}")`` read as a uniform number in [0, 1) (53 bits); the
    split is the first whose cumulative fraction exceeds ``u``.

    Parameters
    ----------
    key : str
        Group key (artist, album) or track id.
    fractions : sequence of (name, fraction) pairs, or a mapping
        Fractions > 0 summing to 1.
    seed : int

    Returns
    -------
    str

    Examples
    --------
    >>> [assign_split(key=f"t{i}", fractions={"a": 0.5, "b": 0.5}, seed=1) for i in range(4)]
    ['a', 'a', 'a', 'b']
    """
    checked = _check_fractions(fractions, where="fractions")
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    uniform = (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)
    cumulative = 0.0
    for name, fraction in checked:
        cumulative += fraction
        if uniform < cumulative:
            return name
    return checked[-1][0]  # the fractions may sum to 1 - 1e-6


# --------------------------------------------------------------------------- task and hash


def task_for(config: CorpusConfig, tracks: Iterable[Track]) -> dict[str, Any]:
    """The learning task of a corpus: type, output vocabulary and output size.

    Parameters
    ----------
    config : CorpusConfig
    tracks : iterable of Track
        The listed tracks (labels and tags come from them).

    Returns
    -------
    dict
        ``type`` (one of :data:`mirdl.store.format.TASK_TYPES`), ``vocabulary`` (list of
        str: sorted labels or tags; target names in column order; :data:`CHORD_VOCABULARY`;
        :data:`NOTE_NAMES`; ``["onset"]``) and ``n_outputs`` (int). A single-label target is
        the index of the label in ``vocabulary``.

    Raises
    ------
    ConfigError
        If a label corpus has no label or tag at all.

    Examples
    --------
    >>> task_for(CorpusConfig(type="csv", csv="x.csv"), [Track("a", "/a.wav", label="rock"),
    ...                                                 Track("b", "/b.wav", label="jazz")])
    {'type': 'single_label', 'vocabulary': ['jazz', 'rock'], 'n_outputs': 2}
    """
    tracks = list(tracks)
    if config.type == "annotations":
        vocabulary = {"onsets": ("onset",), "notes": NOTE_NAMES, "chords": CHORD_VOCABULARY}[config.annotation_kind]
        task_type = _FRAME_TASK_TYPES[config.annotation_kind]
    elif config.type == "csv_regression":
        vocabulary, task_type = config.target_columns, "regression"
    elif config.type == "csv_tag_columns":
        vocabulary, task_type = tuple(sorted(config.tag_columns)), "multi_label"
    else:
        task_type = _TASK_TYPES[config.type]
        if task_type == "single_label":
            vocabulary = tuple(sorted({track.label for track in tracks if track.label is not None}))
        else:
            vocabulary = tuple(sorted({tag for track in tracks for tag in track.tags}))
        if not vocabulary:
            what = "label" if task_type == "single_label" else "tag"
            raise ConfigError(f"corpus.type={config.type!r}: no track has a {what}; nothing to learn")
    return {"type": task_type, "vocabulary": list(vocabulary), "n_outputs": len(vocabulary)}


def _size(path: str | None) -> int | None:
    try:
        return None if path is None else os.path.getsize(path)
    except OSError:
        return None


def listing_hash(tracks: Iterable[Track]) -> str:
    """sha256 (64 hex digits) of what a store's content depends on in a corpus listing.

    Covers, per track: id, relative file name (id + extension), label, tags, targets,
    group, split, file size, and the annotation file's name and size. Listing order does
    not matter; absolute paths do not either, so a moved corpus hashes the same.

    Examples
    --------
    >>> a, b = Track("a", "/missing/a.wav", label="x"), Track("b", "/missing/b.wav", label="y")
    >>> listing_hash([a, b]) == listing_hash([b, a]) != listing_hash([a, replace(b, label="x")])
    True
    """
    entries = []
    for track in sorted(tracks, key=lambda track: track.track_id):
        annotation = None
        if track.annotation_path is not None:
            annotation = PurePath(os.path.relpath(track.annotation_path, os.path.dirname(track.path))).as_posix()
        entries.append({
            "track_id": track.track_id,
            "file": track.track_id + PurePath(track.path).suffix,
            "label": track.label,
            "tags": list(track.tags),
            "targets": list(track.targets),
            "group": track.group,
            "split": track.split,
            "bytes": _size(track.path),
            "annotation": annotation,
            "annotation_bytes": _size(track.annotation_path),
        })
    return stable_hash(entries, n_hex=64)


# --------------------------------------------------------------------------- chords


# Harte (2005) shorthands grouped by their third; those without a third have no maj/min class.
_MAJOR_QUALITIES = frozenset({"maj", "aug", "maj6", "7", "maj7", "aug7", "9", "maj9", "11", "maj11", "13", "maj13"})
_MINOR_QUALITIES = frozenset({"min", "dim", "min6", "min7", "dim7", "hdim7", "minmaj7", "min9", "min11", "min13"})
_NATURAL_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
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
    accidentals = match["accidentals"]
    pitch_class = _NATURAL_PITCH_CLASSES[match["natural"]] + accidentals.count("#") - accidentals.count("b")
    root = _ROOT_NAMES[pitch_class % 12]
    return f"{root}:{'maj' if third == '3' else 'min'}"


# --------------------------------------------------------------------------- annotation files


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
        Map chord labels with :func:`reduce_chord` to :data:`CHORD_VOCABULARY` (what
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
    if kind not in ANNOTATION_KINDS:
        raise ConfigError(f"kind={kind!r} must be one of {list(ANNOTATION_KINDS)}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AnnotationError("annotation file not found", path)
    if path.lower().endswith((".jams", ".jamz")):
        return _load_jams(path, kind, reduce_chords=reduce_chords)
    return _load_text(path, kind, reduce_chords=reduce_chords)
