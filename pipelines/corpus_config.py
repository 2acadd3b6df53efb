"""The ``corpus:`` and ``splits:`` mappings of the prepare YAML: :class:`CorpusConfig`, :class:`SplitConfig`.

Both are frozen dataclasses checked on construction; ``from_dict`` builds them from the YAML
mapping, naming the bad field in every error (``corpus.label_column='genre' is not a column
of labels.csv``). Plain Python, no Beam: :mod:`mirdl.pipelines.corpus` lists the tracks they
describe.

Examples
--------
>>> SplitConfig.from_dict({"fractions": {"train": 0.9, "test": 0.1}}).names
('train', 'test')
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mirdl.errors import ConfigError
from mirdl.features.checks import choice, integer, mapping, positive_float, string
from mirdl.features.annotations import ANNOTATION_KINDS
from mirdl.features.audio import AUDIO_EXTENSIONS

__all__ = ["CORPUS_TYPES", "CorpusConfig", "SplitConfig"]

CORPUS_TYPES = ("dir_per_class", "csv", "csv_tags", "csv_tag_columns", "csv_regression", "annotations")

_SPLIT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # also valid in shard file names
_FRACTION_TOLERANCE = 1e-6


def _check_names(value: Any, *, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}={value!r} must be a list of strings")
    names = tuple(string(item, name=f"{where}[{i}]") for i, item in enumerate(value))
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}={list(names)!r} has repeated names")
    return names


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
        is looked for next to the audio (:data:`mirdl.pipelines.corpus.ANNOTATION_SIDECARS`).
    annotation_kind : {"onsets", "notes", "chords"}
    group_column, split_column : str or None
        CSV columns with the group key (artist, album) and a predefined split.
    extensions : tuple of str
        Audio extensions, without dot, compared case-insensitively. Default: every extension
        a decoder reads (:data:`mirdl.features.audio.AUDIO_EXTENSIONS`: wav, flac, ogg, oga,
        opus, mp3, aiff, m4a, aac, wma, ...).
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
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS

    def __post_init__(self) -> None:
        choice(self.type, name="corpus.type", options=CORPUS_TYPES)
        for name in ("root", "csv", "annotation_column", "group_column", "split_column"):
            string(getattr(self, name), name=f"corpus.{name}", optional=True)
        for name in ("path_column", "label_column", "tags_column", "tag_separator"):
            string(getattr(self, name), name=f"corpus.{name}")
        choice(self.annotation_kind, name="corpus.annotation_kind", options=ANNOTATION_KINDS)
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
        data = mapping(data, name="corpus", fields=cls)
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
        checked.append((name, positive_float(fraction, name=f"{where}[{name!r}]")))
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
        to the split whose cumulative interval holds its hash (see :func:`mirdl.pipelines.corpus.assign_split`).
    group_by : {"group", "track"}
        Hash ``Track.group`` (falling back to the track id), or always the track id.
    seed : int
        Changes every assignment; keep it fixed to keep splits fixed.
    stratify : bool
        Single-label corpora: hash each group with its class (the class most of its tracks
        have), so that every class is split in ``fractions`` independently of the others.
        Either way a track's split depends on its own key, class and the seed only, so it
        never moves when tracks are added (see :func:`mirdl.pipelines.corpus.assign_split`).
    min_tracks : int >= 0
        Warn (console and manifest ``corpus.split_warnings``) when a split holds fewer than this
        many tracks of a class, or none at all.
    """

    column: str | None = None
    fractions: tuple[tuple[str, float], ...] = (("train", 0.8), ("valid", 0.1), ("test", 0.1))
    group_by: str = "group"
    seed: int = 0
    stratify: bool = False
    min_tracks: int = 2

    def __post_init__(self) -> None:
        string(self.column, name="splits.column", optional=True)
        object.__setattr__(self, "fractions", _check_fractions(self.fractions, where="splits.fractions"))
        choice(self.group_by, name="splits.group_by", options=("group", "track"))
        object.__setattr__(self, "seed", integer(self.seed, name="splits.seed"))
        if not isinstance(self.stratify, bool):
            raise ConfigError(f"splits.stratify={self.stratify!r} must be true or false")
        object.__setattr__(self, "min_tracks", integer(self.min_tracks, name="splits.min_tracks", minimum=0))

    @property
    def names(self) -> tuple[str, ...]:
        """Split names in ``fractions`` order."""
        return tuple(name for name, _ in self.fractions)

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-able form (``fractions`` as an ordered mapping); :meth:`from_dict` inverts it.

        ``stratify`` and ``min_tracks`` appear only when not at their defaults, so the store
        fingerprints of configs written before they existed do not change."""
        data = {"column": self.column, "fractions": dict(self.fractions), "group_by": self.group_by, "seed": self.seed}
        if self.stratify:
            data["stratify"] = True
        if self.min_tracks != SplitConfig.min_tracks:
            data["min_tracks"] = self.min_tracks
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SplitConfig:
        """Build and check a config from the ``splits:`` mapping (``None`` gives the defaults).

        ``column`` and ``fractions`` exclude each other.
        """
        data = mapping(data, name="splits", fields=cls, optional=True)
        if data.get("column") is not None and data.get("fractions") is not None:
            raise ConfigError("splits.column and splits.fractions exclude each other: the split "
                              "comes either from a CSV column or from hashing")
        return cls(**{key: value for key, value in data.items() if value is not None or key == "column"})


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
