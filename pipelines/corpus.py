"""Corpus adapters: list the tracks of a corpus, with labels, annotations and splits.

A corpus is described by the ``corpus:`` mapping of the prepare YAML
(:class:`~mirdl.pipelines.corpus_config.CorpusConfig`) and split by the ``splits:`` mapping
(:class:`~mirdl.pipelines.corpus_config.SplitConfig`).
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
    Frame-level targets from annotation files
    (:func:`~mirdl.features.annotations.load_annotations`): either every
    audio file under ``root`` or the rows of ``csv``; the annotation file is in
    ``annotation_column`` or next to the audio (:data:`ANNOTATION_SIDECARS`).

Track ids are the audio path relative to the corpus root (or the CSV's folder), POSIX
style, without extension: ``"dog/bark01"``. Relative paths in a CSV resolve against the
CSV's folder, so a corpus can be moved as a whole. Extensions compare case-insensitively;
the default ``corpus.extensions`` are :data:`mirdl.features.audio.AUDIO_EXTENSIONS`, every
extension a decoder reads. In a folder corpus, every file that is not listed (another
extension, a hidden ``.name`` file) gets a ``skipped`` record, and so does each hidden folder
(not walked); a CSV row repeating an earlier row's audio file is an error record, and the
first row is kept.

Splits are a stable hash of ``(seed, group or track id)`` (:func:`assign_split`), so the
same corpus and seed give the same splits in any listing order, on any machine, and a
group (artist, album) never straddles two splits. A track's split depends on its own key
only, so it never moves when tracks are added. ``splits.stratify: true`` instead splits
each class exactly in ``fractions`` (:func:`stratified_splits`, hash order within each
class), at the price of that stability. :func:`split_warnings` says when a split lacks a
class or holds fewer than ``splits.min_tracks`` tracks of one.

Examples
--------
>>> assign_split(key="artist_a", fractions=(("train", 0.8), ("valid", 0.1), ("test", 0.1)), seed=0)
'train'
"""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

from mirdl.errors import ConfigError
from mirdl.features.labels import CHORD_VOCABULARY, NOTE_NAMES
from mirdl.features.spec import stable_hash
from mirdl.pipelines.corpus_config import _SPLIT_NAME, CorpusConfig, SplitConfig, _check_fractions, _csv_table
from mirdl.pipelines.dead_letter import ErrorRecord

__all__ = [
    "ANNOTATION_SIDECARS",
    "Skipped",
    "Track",
    "list_tracks",
    "assign_split",
    "stratified_splits",
    "split_warnings",
    "task_for",
    "listing_entry",
    "listing_hash",
    "partition_of",
]

#: Annotation files looked for next to ``STEM.wav`` when ``annotation_column`` is not set, first found wins.
ANNOTATION_SIDECARS = {
    "onsets": (".onsets.csv", ".jams"),
    "notes": (".notes.csv", ".jams"),
    "chords": (".lab", ".jams"),
}
_TASK_TYPES = {
    "dir_per_class": "single_label",
    "csv": "single_label",
    "csv_tags": "multi_label",
    "csv_tag_columns": "multi_label",
    "csv_regression": "regression",
}
_FRAME_TASK_TYPES = {"onsets": "frame_onset", "notes": "frame_notes", "chords": "frame_chords"}


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


# --------------------------------------------------------------------------- listing


class _Rejected(Exception):
    """One file or row that cannot be listed (or is skipped); carries its dead-letter record."""

    def __init__(self, *, path: str, track_id: str | None, stage: str, exc: BaseException,
                 severity: str = "error") -> None:
        super().__init__(str(exc))
        self.record = ErrorRecord.from_exc(path=path, track_id=track_id, stage=stage, exc=exc, severity=severity)


class Skipped(Exception):
    """Why a file in a corpus folder was not listed (the ``error_type`` of a ``skipped`` record)."""


def _skipped(path: str, reason: str) -> _Rejected:
    return _Rejected(path=path, track_id=None, stage="list", exc=Skipped(reason), severity="skipped")


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _has_extension(path: str, extensions: tuple[str, ...]) -> bool:
    return PurePath(path).suffix.lower().lstrip(".") in extensions


def _count_files(folder: str) -> int:
    return sum(len(filenames) for _, _, filenames in os.walk(folder))


def _walk_audio(root: str, extensions: tuple[str, ...]) -> Iterator[str | _Rejected]:
    """Audio files below ``root`` (absolute), in sorted order, and a ``skipped`` record for every other
    file: an extension not in ``extensions``, a hidden file, a hidden folder (one record for the
    folder, which is not walked), a link to a folder (not followed)."""
    for folder, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames):
            path = os.path.join(folder, name)
            if _is_hidden(name):
                yield _skipped(path, f"hidden folder (name starts with '.'): its {_count_files(path)} file(s) "
                                     "are not listed")
            elif os.path.islink(path):
                yield _skipped(path, "symbolic link to a folder: not followed, its files are not listed")
        dirnames[:] = sorted(name for name in dirnames if not _is_hidden(name))
        for name in sorted(filenames):
            path = os.path.join(folder, name)
            if _is_hidden(name):
                yield _skipped(path, "hidden file (name starts with '.'): not listed")
            elif not _has_extension(name, extensions):
                suffix = PurePath(name).suffix
                what = f"extension {suffix!r} is" if suffix else "a name without extension is"
                yield _skipped(path, f"{what} not one of corpus.extensions: not listed")
            else:
                yield path


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
        if isinstance(audio_path, _Rejected):
            yield audio_path
            continue
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
    first_line: dict[str, int] = {}  # audio path -> line of the row that listed it
    with _csv_table(config) as (header, rows):
        for line, values in rows:
            where = f"{config.csv}:{line}"
            if len(values) != len(header):
                yield _Rejected(path=where, track_id=None, stage="list", exc=ConfigError(
                    f"{where}: {len(values)} fields, the header has {len(header)}"))
                continue
            try:
                track = _row_track(config, dict(zip(header, values)), where=where, split_column=split_column)
            except _Rejected as rejected:
                yield rejected
                continue
            if track.path in first_line:
                # The row's own path, not the audio's: the first row's track is in the store, not failed.
                yield _Rejected(path=where, track_id=track.track_id, stage="list", exc=ConfigError(
                    f"{where}: {track.path} is already listed on line {first_line[track.path]}; "
                    "this duplicate row is ignored"))
                continue
            first_line[track.path] = line
            yield track


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
        In listing order. Errors: stage ``"list"`` (missing audio, bad CSV row, a row
        repeating an earlier row's audio file (the first is kept), unsupported extension in
        a CSV, file outside a class folder) or ``"annotations"`` (missing annotation file).
        ``severity="skipped"`` records (stage ``"list"``, ``error_type`` ``"Skipped"``): every
        other file under a corpus folder (an extension not in ``corpus.extensions``, a hidden
        file; one record per hidden folder or link to a folder), except annotation files used
        by a track.

    Raises
    ------
    ConfigError
        The CSV or root cannot be read, a configured column is missing, two different files
        have the same track id (naming both), or no audio file at all was found.

    Examples
    --------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("dog/a.wav", "dog/b.wav", "cat/c.wav"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     sf.write(root / name, np.zeros(800, dtype=np.float32), 8000)
    >>> _ = (root / "dog" / "notes.txt").write_text("recorded in 2019")
    >>> tracks, errors = list_tracks(CorpusConfig(type="dir_per_class", root=str(root)), SplitConfig())
    >>> [(t.track_id, t.label) for t in tracks]
    [('cat/c', 'cat'), ('dog/a', 'dog'), ('dog/b', 'dog')]
    >>> [(Path(e.path).name, e.severity, e.reason) for e in errors]
    [('notes.txt', 'skipped', "extension '.txt' is not one of corpus.extensions: not listed")]
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
    if not tracks and not any(error.failed for error in errors):
        skipped = [error for error in errors if error.severity == "skipped"]
        source = f"corpus.csv={config.csv!r} has no rows" if config.uses_csv else \
            f"corpus.root={config.root!r} holds no audio files with corpus.extensions {list(config.extensions)}" \
            + (f" ({len(skipped)} other file(s) or folder(s), e.g. {skipped[0].path})" if skipped else "")
        raise ConfigError(source)
    # Annotation files next to the audio are used, not skipped.
    used = {track.annotation_path for track in tracks.values() if track.annotation_path is not None}
    errors = [error for error in errors if not (error.severity == "skipped" and error.path in used)]
    listed_tracks = [tracks[track_id] for track_id in sorted(tracks)]
    if split_column is None and splits.stratify:
        if not any(track.label is not None for track in listed_tracks):
            raise ConfigError(f"splits.stratify=true needs class labels, but corpus.type={config.type!r} "
                              "has none (use it with dir_per_class or csv)")
        assigned = stratified_splits({track.track_id: (_split_key(track, splits), track.label)
                                      for track in listed_tracks}, fractions=splits.fractions, seed=splits.seed)
        listed_tracks = [replace(track, split=assigned[track.track_id]) for track in listed_tracks]
    elif split_column is None:
        listed_tracks = [replace(track, split=assign_split(key=_split_key(track, splits), fractions=splits.fractions,
                                                           seed=splits.seed)) for track in listed_tracks]
    return listed_tracks, errors


def _split_key(track: Track, splits: SplitConfig) -> str:
    return track.group if splits.group_by == "group" and track.group is not None else track.track_id


def _uniform(key: str, seed: int) -> float:
    """``sha256(f"{seed}:{key}")`` as a uniform number in [0, 1) (53 bits)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def _quotas(n: int, fractions: tuple[tuple[str, float], ...]) -> list[int]:
    """``n`` items shared in ``fractions`` (largest remainders), at least one per split when
    ``n`` allows it, taken from the largest split."""
    exact = [n * fraction for _, fraction in fractions]
    quotas = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[:n - sum(quotas)]:
        quotas[i] += 1
    if n >= len(quotas):
        for i, quota in enumerate(quotas):
            if quota == 0:
                quotas[max(range(len(quotas)), key=lambda j: (quotas[j], -j))] -= 1
                quotas[i] = 1
    return quotas


def stratified_splits(items: dict[str, tuple[str, str | None]], *, fractions: Any, seed: int) -> dict[str, str]:
    """Split each class exactly in ``fractions``, never splitting a group.

    A group's class is the label most of its items have (ties: the first in sorted order).
    Within a class, groups are ordered by their hash (:func:`assign_split`'s uniform number)
    and dealt out in ``fractions`` order: the first ``round(n * fraction)`` (largest
    remainders; at least one per split when the class has as many groups as there are
    splits) to the first split, and so on. Same items and seed, same splits, in any order;
    but when a class grows, the groups at the boundaries of its hash order can move to the
    neighbouring split (plain :func:`assign_split` never moves a track).

    Parameters
    ----------
    items : dict
        Item id -> (group key, label).
    fractions : sequence of (name, fraction) pairs, or a mapping
    seed : int

    Returns
    -------
    dict
        Item id -> split name.

    Examples
    --------
    >>> items = {f"{c}{i}": (f"{c}{i}", c) for c in "ab" for i in range(5)}
    >>> splits = stratified_splits(items, fractions={"train": 0.6, "valid": 0.2, "test": 0.2}, seed=0)
    >>> sorted((label, sum(1 for k, s in splits.items() if k[0] == label and s == split))
    ...        for label in "ab" for split in ("train", "valid", "test"))
    [('a', 1), ('a', 1), ('a', 3), ('b', 1), ('b', 1), ('b', 3)]
    """
    checked = _check_fractions(fractions, where="fractions")
    members: dict[str, list[str]] = {}
    for item_id, (group, _) in items.items():
        members.setdefault(group, []).append(item_id)
    by_class: dict[str, list[str]] = {}
    for group, ids in members.items():
        labels = [items[item_id][1] or "" for item_id in ids]
        label = min(set(labels), key=lambda value: (-labels.count(value), value))
        by_class.setdefault(label, []).append(group)
    split_of_group = {}
    for groups in by_class.values():
        groups.sort(key=lambda group: (_uniform(group, seed), group))
        start = 0
        for (name, _), quota in zip(checked, _quotas(len(groups), checked)):
            for group in groups[start:start + quota]:
                split_of_group[group] = name
            start += quota
    return {item_id: split_of_group[group] for item_id, (group, _) in items.items()}


def split_warnings(tracks: Iterable[Track], *, split_names: Iterable[str], min_tracks: int) -> list[str]:
    """One line per (split, class) with fewer than ``min_tracks`` tracks of the class; none
    for corpora without class labels or with ``min_tracks=0``.

    Examples
    --------
    >>> tracks = [Track(f"{c}{i}", f"/{c}{i}.wav", label=c, split=s)
    ...           for c, n in (("a", 4), ("b", 1)) for i, s in zip(range(n), ("train", "test", "train", "test"))]
    >>> for line in split_warnings(tracks, split_names=["train", "test"], min_tracks=2):
    ...     print(line)
    split 'test' has no track of class 'b' (1 in the corpus)
    split 'train' has 1 track of class 'b' (fewer than splits.min_tracks=2)
    """
    tracks = [track for track in tracks if track.label is not None]
    if not tracks or min_tracks <= 0:
        return []
    totals: dict[str, int] = {}
    counts: dict[tuple[str, str], int] = {}
    for track in tracks:
        totals[track.label] = totals.get(track.label, 0) + 1
        counts[track.split, track.label] = counts.get((track.split, track.label), 0) + 1
    lines = []
    for split in sorted(set(split_names) | {track.split for track in tracks}):
        for label in sorted(totals):
            count = counts.get((split, label), 0)
            if count == 0:
                lines.append(f"split {split!r} has no track of class {label!r} ({totals[label]} in the corpus)")
            elif count < min_tracks:
                lines.append(f"split {split!r} has {count} track{'s' if count > 1 else ''} of class {label!r} "
                             f"(fewer than splits.min_tracks={min_tracks})")
    return lines


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
    uniform = _uniform(key, seed)
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
        str: sorted labels or tags; target names in column order; :data:`~mirdl.features.labels.CHORD_VOCABULARY`;
        :data:`~mirdl.features.labels.NOTE_NAMES`; ``["onset"]``) and ``n_outputs`` (int). A single-label target is
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


def listing_entry(track: Track) -> dict[str, Any]:
    """What a store's content depends on in one track's listing (:func:`listing_hash` hashes these).

    Id, relative file name (id + extension), label, tags, targets, group, split, file size,
    and the annotation file's name and size; no absolute path.
    """
    annotation = None
    if track.annotation_path is not None:
        annotation = PurePath(os.path.relpath(track.annotation_path, os.path.dirname(track.path))).as_posix()
    return {
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
    }


def listing_hash(tracks: Iterable[Track]) -> str:
    """sha256 (64 hex digits) of what a store's content depends on in a corpus listing.

    Covers, per track, its :func:`listing_entry`: id, relative file name (id + extension),
    label, tags, targets, group, split, file size, and the annotation file's name and size.
    Listing order does not matter; absolute paths do not either, so a moved corpus hashes the same.

    Examples
    --------
    >>> a, b = Track("a", "/missing/a.wav", label="x"), Track("b", "/missing/b.wav", label="y")
    >>> listing_hash([a, b]) == listing_hash([b, a]) != listing_hash([a, replace(b, label="x")])
    True
    """
    return stable_hash([listing_entry(track) for track in sorted(tracks, key=lambda track: track.track_id)],
                       n_hex=64)


def partition_of(key: str, count: int) -> int:
    """The partition (0 .. count - 1) of a track id (or of a path, for listing records without
    one): ``sha256("partition:" + key)`` read as a big integer, modulo ``count``. It depends on
    the key alone, never on listing order, so every array task lists the whole corpus and keeps
    the same part.

    Examples
    --------
    >>> [partition_of(f"t{i}", 3) for i in range(6)]
    [0, 0, 2, 0, 2, 2]
    """
    digest = hashlib.sha256(f"partition:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % int(count)
