"""Tests of mirdl.pipelines.corpus (adapters, splits, task, listing hash), its configs (mirdl.pipelines.corpus_config),
annotation files (mirdl.features.annotations) and mirdl.pipelines.dead_letter."""
import doctest
import json
import math
import pickle
import random
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jams
import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

import mirdl.features.annotations
import mirdl.pipelines.corpus
import mirdl.pipelines.corpus_config
import mirdl.pipelines.dead_letter
import mirdl.store.dead_letter
from mirdl.errors import ConfigError, MirdlError, StoreError
from mirdl.features import audio
from mirdl.features.annotations import AnnotationError, load_annotations
from mirdl.features.labels import CHORD_VOCABULARY, NOTE_NAMES, Annotations, chord_frames, reduce_chord, transpose_chord
from mirdl.features.synth import write_corpus
from mirdl.pipelines.corpus import Track, assign_split, list_tracks, listing_hash, task_for
from mirdl.pipelines.corpus_config import CorpusConfig, SplitConfig
from mirdl.pipelines.dead_letter import STAGES, ErrorRecord

SR = 8000
REPO = Path(__file__).resolve().parents[2]
# jams validates with a jsonschema call that jsonschema deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Passing a schema to Validator.iter_errors:DeprecationWarning")


def write_audio(path, *, seconds=0.2, fmt=None):
    """A 440 Hz sine: listing never decodes, but the files are real audio all the same."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    audio.write_audio(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sample_rate=SR, format=fmt)
    return path


def write_csv(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


def ids(tracks):
    return [track.track_id for track in tracks]


# ---------------------------------------------------------------------------------------- adapters


def test_dir_per_class_labels_ids_and_ignored_files(tmp_path):
    root = tmp_path / "corpus"
    write_audio(root / "dog" / "bark01.wav")
    write_audio(root / "dog" / "outdoor" / "bark02.flac")  # nested: label is still the first folder
    write_audio(root / "cat" / "meow.WAV", fmt="WAV")      # extensions are case-insensitive
    write_audio(root / "cat" / ".hidden.wav")
    write_audio(root / ".trash" / "old.wav")
    (root / "cat" / "notes.txt").write_text("not audio")
    tracks, errors = list_tracks(CorpusConfig(type="dir_per_class", root=str(root)), SplitConfig())
    assert ids(tracks) == ["cat/meow", "dog/bark01", "dog/outdoor/bark02"]
    assert [track.label for track in tracks] == ["cat", "dog", "dog"]
    assert tracks[0].path == str(root / "cat" / "meow.WAV")
    assert all(Path(track.path).is_absolute() and track.split in ("train", "valid", "test") for track in tracks)
    # Nothing is skipped silently: one record per file (or hidden folder) not listed.
    assert [(e.path, e.stage, e.severity, e.error_type, e.failed) for e in errors] == [
        (str(root / ".trash"), "list", "skipped", "Skipped", False),
        (str(root / "cat" / ".hidden.wav"), "list", "skipped", "Skipped", False),
        (str(root / "cat" / "notes.txt"), "list", "skipped", "Skipped", False),
    ]
    assert [e.reason for e in errors] == [
        "hidden folder (name starts with '.'): its 1 file(s) are not listed",
        "hidden file (name starts with '.'): not listed",
        "extension '.txt' is not one of corpus.extensions: not listed",
    ]
    assert task_for(CorpusConfig(type="dir_per_class", root=str(root)), tracks) == {
        "type": "single_label", "vocabulary": ["cat", "dog"], "n_outputs": 2}


def test_relative_root_means_the_working_directory(tmp_path, monkeypatch):
    write_audio(tmp_path / "corpus" / "rock" / "a.wav")
    monkeypatch.chdir(tmp_path)
    tracks, _ = list_tracks(CorpusConfig(type="dir_per_class", root="corpus"), SplitConfig())
    assert [t.path for t in tracks] == [str(tmp_path / "corpus" / "rock" / "a.wav")]


def test_dir_per_class_file_outside_a_class_folder_is_an_error_record(tmp_path):
    write_audio(tmp_path / "rock" / "a.wav")
    write_audio(tmp_path / "loose.wav")
    tracks, errors = list_tracks(CorpusConfig(type="dir_per_class", root=str(tmp_path)), SplitConfig())
    assert ids(tracks) == ["rock/a"]
    assert [(e.stage, e.track_id, e.path) for e in errors] == [("list", "loose", str(tmp_path / "loose.wav"))]
    assert "class folder" in errors[0].reason


def test_empty_folder_is_a_config_error(tmp_path):
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ConfigError, match=r"corpus.root=.* holds no audio files"):
        list_tracks(CorpusConfig(type="dir_per_class", root=str(tmp_path)), SplitConfig())


def test_csv_relative_paths_resolve_against_the_csv_folder(tmp_path, monkeypatch):
    write_audio(tmp_path / "meta" / "local" / "a.wav")
    write_audio(tmp_path / "audio" / "b.wav")
    absolute = write_audio(tmp_path / "meta" / "c.flac")
    csv_path = write_csv(tmp_path / "meta" / "labels.csv", [
        ("path", "label", "artist"),
        ("local/a.wav", "rock", "x"),
        ("../audio/b.wav", "jazz", ""),
        (absolute, "rock", "y"),
    ])
    monkeypatch.chdir(tmp_path / "audio")  # the working directory must not matter
    config = CorpusConfig.from_dict({"type": "csv", "csv": "meta/labels.csv", "group_column": "artist"},
                                    base_dir=tmp_path)
    assert config.csv == str(csv_path)
    tracks, errors = list_tracks(config, SplitConfig())
    assert errors == []
    assert ids(tracks) == ["../audio/b", "c", "local/a"]
    assert [t.path for t in tracks] == [str(tmp_path / "audio" / "b.wav"), str(absolute),
                                        str(tmp_path / "meta" / "local" / "a.wav")]
    assert [(t.label, t.group) for t in tracks] == [("jazz", None), ("rock", "y"), ("rock", "x")]


def test_csv_bad_rows_become_error_records_with_line_numbers(tmp_path):
    write_audio(tmp_path / "a.wav")
    write_audio(tmp_path / "b.wav")
    write_audio(tmp_path / "d.wav")
    write_audio(tmp_path / "e.wav")
    csv_path = write_csv(tmp_path / "labels.csv", [
        ("path", "label"),
        ("a.wav", "rock"),       # line 2: fine
        ("missing.wav", "pop"),  # line 3: no such file
        ("", "pop"),             # line 4: empty path
        ("d.wav", ""),           # line 5: empty label
        ("e.wav", "pop", "x"),   # line 6: too many fields
        ("b.txt", "pop"),        # line 7: not an audio extension
        ("b.wav", "pop"),        # line 8: fine
    ])
    tracks, errors = list_tracks(CorpusConfig(type="csv", csv=str(csv_path)), SplitConfig())
    assert ids(tracks) == ["a", "b"]
    assert [e.stage for e in errors] == ["list"] * 5
    lines = [int(e.reason.split(":", 2)[1]) for e in errors]
    assert lines == [3, 4, 5, 6, 7]
    assert all(e.reason.startswith(f"{csv_path}:") for e in errors)
    missing, empty_path, empty_label, _, extension = errors
    assert missing.error_type == "FileNotFoundError" and missing.path == str(tmp_path / "missing.wav")
    assert missing.track_id == "missing"
    assert empty_path.path == f"{csv_path}:4" and empty_path.track_id is None
    assert "empty label" in empty_label.reason and empty_label.error_type == "ConfigError"
    assert "corpus.extensions" in extension.reason


def test_csv_tags_are_split_stripped_deduplicated_and_sorted(tmp_path):
    write_audio(tmp_path / "a.wav")
    write_audio(tmp_path / "b.wav")
    csv_path = write_csv(tmp_path / "tags.csv", [("file", "genres"), ("a.wav", " rock; pop ;rock;"), ("b.wav", "")])
    config = CorpusConfig(type="csv_tags", csv=str(csv_path), path_column="file", tags_column="genres")
    tracks, errors = list_tracks(config, SplitConfig())
    assert errors == []
    assert [t.tags for t in tracks] == [("pop", "rock"), ()]
    assert task_for(config, tracks) == {"type": "multi_label", "vocabulary": ["pop", "rock"], "n_outputs": 2}


def test_csv_tag_columns(tmp_path):
    for name in "abc":
        write_audio(tmp_path / f"{name}.wav")
    csv_path = write_csv(tmp_path / "tags.csv", [
        ("path", "guitar", "drums", "vocals"),
        ("a.wav", 1, 0, 1),
        ("b.wav", 0, 0, 0),
        ("c.wav", 1, "maybe", 0),  # line 4
    ])
    config = CorpusConfig(type="csv_tag_columns", csv=str(csv_path), tag_columns=["vocals", "guitar", "drums"])
    tracks, errors = list_tracks(config, SplitConfig())
    assert [(t.track_id, t.tags) for t in tracks] == [("a", ("guitar", "vocals")), ("b", ())]
    assert len(errors) == 1 and f"{csv_path}:4:" in errors[0].reason and "'drums'='maybe'" in errors[0].reason
    # Declared columns are the vocabulary even when no track has the tag.
    assert task_for(config, tracks)["vocabulary"] == ["drums", "guitar", "vocals"]


def test_csv_regression_targets_in_config_order(tmp_path):
    for name in "abcd":
        write_audio(tmp_path / f"{name}.wav")
    csv_path = write_csv(tmp_path / "targets.csv", [
        ("path", "valence", "tempo"),
        ("a.wav", 0.5, 120),
        ("b.wav", "-1e-1", "90.5"),
        ("c.wav", "high", 100),  # line 4: not a number
        ("d.wav", 0.1, "nan"),   # line 5: not finite
    ])
    config = CorpusConfig(type="csv_regression", csv=str(csv_path), target_columns=("tempo", "valence"))
    tracks, errors = list_tracks(config, SplitConfig())
    assert [t.targets for t in tracks] == [(120.0, 0.5), (90.5, -0.1)]
    assert [e.reason.split(":", 2)[1] for e in errors] == ["4", "5"]
    assert "'valence'='high' is not a finite number" in errors[0].reason
    assert task_for(config, tracks) == {"type": "regression", "vocabulary": ["tempo", "valence"], "n_outputs": 2}


@pytest.mark.parametrize("kind, sidecar, task_type, n_outputs", [
    ("onsets", "song.onsets.csv", "frame_onset", 1),
    ("notes", "song.notes.csv", "frame_notes", 88),
    ("chords", "song.lab", "frame_chords", 25),
    ("chords", "song.jams", "frame_chords", 25),
])
def test_annotations_folder_finds_sidecars(tmp_path, kind, sidecar, task_type, n_outputs):
    write_audio(tmp_path / "set1" / "song.wav")
    (tmp_path / "set1" / sidecar).write_text("")
    write_audio(tmp_path / "set2" / "orphan.flac")  # no annotation next to it
    config = CorpusConfig(type="annotations", root=str(tmp_path), annotation_kind=kind)
    tracks, errors = list_tracks(config, SplitConfig())
    assert [(t.track_id, t.annotation_path) for t in tracks] == [("set1/song", str(tmp_path / "set1" / sidecar))]
    assert [(e.stage, e.track_id, e.error_type) for e in errors] == [
        ("annotations", "set2/orphan", "FileNotFoundError")]
    assert "orphan" in errors[0].reason
    task = task_for(config, tracks)
    assert (task["type"], task["n_outputs"], len(task["vocabulary"])) == (task_type, n_outputs, n_outputs)


def test_annotations_csv_column(tmp_path):
    write_audio(tmp_path / "audio" / "a.wav")
    write_audio(tmp_path / "audio" / "b.wav")
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.lab").write_text("0 1 C:maj\n")
    csv_path = write_csv(tmp_path / "index.csv", [
        ("path", "chords", "album"), ("audio/a.wav", "ann/a.lab", "one"), ("audio/b.wav", "ann/b.lab", "one")])
    config = CorpusConfig(type="annotations", csv=str(csv_path), annotation_column="chords",
                          annotation_kind="chords", group_column="album")
    tracks, errors = list_tracks(config, SplitConfig())
    assert [(t.track_id, t.annotation_path, t.group) for t in tracks] == [
        ("audio/a", str(tmp_path / "ann" / "a.lab"), "one")]
    assert [(e.stage, e.track_id) for e in errors] == [("annotations", "audio/b")]
    assert f"{csv_path}:3:" in errors[0].reason


def test_duplicate_track_ids_name_both_paths(tmp_path):
    a_wav, a_flac = write_audio(tmp_path / "pop" / "a.wav"), write_audio(tmp_path / "pop" / "a.flac")
    with pytest.raises(ConfigError, match="'pop/a'") as info:
        list_tracks(CorpusConfig(type="dir_per_class", root=str(tmp_path)), SplitConfig())
    assert str(a_wav) in str(info.value) and str(a_flac) in str(info.value)
    csv_path = write_csv(tmp_path / "two.csv", [("path", "label"), ("pop/a.wav", "x"), ("pop/a.flac", "y")])
    with pytest.raises(ConfigError, match="used by two files"):
        list_tracks(CorpusConfig(type="csv", csv=str(csv_path)), SplitConfig())


def test_default_extensions_are_the_decoders_extensions(tmp_path):
    # .oga (the standard Ogg audio extension), .opus and .m4a/.aac/.wma (PyAV) are listed by default.
    config = CorpusConfig(type="dir_per_class", root=str(tmp_path))
    assert config.extensions == audio.AUDIO_EXTENSIONS
    assert {"oga", "opus", "m4a", "aac", "wma"} <= set(config.extensions)
    for name in ("a.oga", "b.opus", "c.m4a", "d.AAC", "e.wma", "f.wav"):
        (tmp_path / "jazz").mkdir(exist_ok=True)
        (tmp_path / "jazz" / name).write_bytes(b"listing does not decode")
    tracks, errors = list_tracks(config, SplitConfig())
    assert ids(tracks) == ["jazz/a", "jazz/b", "jazz/c", "jazz/d", "jazz/e", "jazz/f"] and errors == []


def test_files_outside_corpus_extensions_are_skipped_records(tmp_path):
    write_audio(tmp_path / "rock" / "a.wav")
    (tmp_path / "rock" / "b.m4a").write_bytes(b"x")
    (tmp_path / "rock" / "LICENSE").write_text("x")
    (tmp_path / "readme.md").write_text("x")
    config = CorpusConfig(type="dir_per_class", root=str(tmp_path), extensions=("wav",))
    tracks, errors = list_tracks(config, SplitConfig())
    assert ids(tracks) == ["rock/a"]
    assert [(Path(e.path).name, e.severity, e.reason) for e in errors] == [
        ("readme.md", "skipped", "extension '.md' is not one of corpus.extensions: not listed"),
        ("LICENSE", "skipped", "a name without extension is not one of corpus.extensions: not listed"),
        ("b.m4a", "skipped", "extension '.m4a' is not one of corpus.extensions: not listed"),
    ]


def test_linked_folder_is_a_skipped_record(tmp_path):
    write_audio(tmp_path / "elsewhere" / "x.wav")
    write_audio(tmp_path / "corpus" / "rock" / "a.wav")
    (tmp_path / "corpus" / "pop").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    tracks, errors = list_tracks(CorpusConfig(type="dir_per_class", root=str(tmp_path / "corpus")), SplitConfig())
    assert ids(tracks) == ["rock/a"]
    assert [(e.path, e.severity) for e in errors] == [(str(tmp_path / "corpus" / "pop"), "skipped")]
    assert "symbolic link to a folder" in errors[0].reason


def test_annotation_sidecars_are_used_not_skipped(tmp_path):
    write_audio(tmp_path / "a.wav")
    (tmp_path / "a.onsets.csv").write_text("time\n0.1\n")
    (tmp_path / "a.notes.csv").write_text("onset,offset,midi\n")  # not the kind listed: skipped
    tracks, errors = list_tracks(CorpusConfig(type="annotations", root=str(tmp_path), annotation_kind="onsets"),
                                 SplitConfig())
    assert [(t.track_id, Path(t.annotation_path).name) for t in tracks] == [("a", "a.onsets.csv")]
    assert [(Path(e.path).name, e.severity) for e in errors] == [("a.notes.csv", "skipped")]


def test_a_folder_of_skipped_files_only_is_a_config_error(tmp_path):
    (tmp_path / "rock").mkdir()
    (tmp_path / "rock" / "a.txt").write_text("")
    with pytest.raises(ConfigError, match=r"holds no audio files .*\(1 other file\(s\) or folder\(s\), e.g. .*a.txt\)"):
        list_tracks(CorpusConfig(type="dir_per_class", root=str(tmp_path)), SplitConfig())


def test_duplicated_csv_row_is_an_error_record_and_the_first_row_is_kept(tmp_path):
    write_audio(tmp_path / "pop" / "a.wav")
    write_audio(tmp_path / "pop" / "b.wav")
    csv_path = write_csv(tmp_path / "dup.csv", [("path", "label"), ("pop/a.wav", "x"), ("pop/b.wav", "x"),
                                                ("./pop/a.wav", "y"), ("pop/a.wav", "x")])
    tracks, errors = list_tracks(CorpusConfig(type="csv", csv=str(csv_path)), SplitConfig())
    assert [(t.track_id, t.label) for t in tracks] == [("pop/a", "x"), ("pop/b", "x")]
    assert [(e.path, e.track_id, e.stage, e.severity) for e in errors] == [
        (f"{csv_path}:4", "pop/a", "list", "error"), (f"{csv_path}:5", "pop/a", "list", "error")]
    assert errors[0].reason == (f"{csv_path}:4: {tmp_path / 'pop' / 'a.wav'} is already listed on line 2; "
                                "this duplicate row is ignored")


def test_split_from_csv_column(tmp_path):
    for name in "abc":
        write_audio(tmp_path / f"{name}.wav")
    csv_path = write_csv(tmp_path / "l.csv", [
        ("path", "label", "fold"), ("a.wav", "x", "train"), ("b.wav", "y", "fold_2"), ("c.wav", "y", "bad split")])
    config = CorpusConfig(type="csv", csv=str(csv_path), split_column="fold")
    for splits in (SplitConfig(), SplitConfig(column="fold")):
        tracks, errors = list_tracks(config, splits)
        assert [(t.track_id, t.split) for t in tracks] == [("a", "train"), ("b", "fold_2")]
        assert len(errors) == 1 and "'bad split'" in errors[0].reason
    tracks, _ = list_tracks(CorpusConfig(type="csv", csv=str(csv_path)), SplitConfig(column="fold"))
    assert [t.split for t in tracks] == ["train", "fold_2"]
    with pytest.raises(ConfigError, match="splits.column='other' and corpus.split_column='fold'"):
        list_tracks(config, SplitConfig(column="other"))
    with pytest.raises(ConfigError, match="splits.column='fold' needs a CSV"):
        list_tracks(CorpusConfig(type="dir_per_class", root=str(tmp_path)), SplitConfig(column="fold"))


def test_synthetic_corpus_lists_through_every_adapter(tmp_path):
    listing = write_corpus(tmp_path / "corpus", n_tracks=8, duration=0.5)
    root, splits = listing.root, SplitConfig(seed=1)
    expected_ids = sorted(track.track_id for track in listing.tracks)
    configs = [
        {"type": "csv", "csv": "labels.csv", "group_column": "artist"},
        {"type": "csv_tags", "csv": "tags.csv"},
        {"type": "csv_regression", "csv": "targets.csv", "target_columns": list(listing.targets)},
        {"type": "annotations", "csv": "annotations.csv", "annotation_column": "onsets"},
        {"type": "annotations", "csv": "annotations.csv", "annotation_column": "notes", "annotation_kind": "notes"},
    ]
    by_id = {track.track_id: track for track in listing.tracks}
    for data in configs:
        config = CorpusConfig.from_dict(data, base_dir=root)
        tracks, errors = list_tracks(config, splits)
        assert errors == [] and ids(tracks) == expected_ids, data
        for track in tracks:
            written = by_id[track.track_id]
            if config.type == "csv":
                assert (track.label, track.group) == (written.label, written.artist)
            elif config.type == "csv_tags":
                assert set(track.tags) == set(written.tags)
            elif config.type == "annotations":
                ann = load_annotations(track.annotation_path, kind=config.annotation_kind)
                loaded, truth = (np.asarray(getattr(a, config.annotation_kind), dtype=float).reshape(-1)
                                 for a in (ann, written.annotations))
                np.testing.assert_allclose(loaded, truth, atol=1e-3)  # the CSVs hold milliseconds
    tracks, errors = list_tracks(CorpusConfig(type="dir_per_class", root=str(root / "audio")), splits)
    assert errors == [] and [t.label for t in tracks] == [by_id["audio/" + t.track_id].label for t in tracks]


# ---------------------------------------------------------------------------------------- splits

FRACTIONS = (("train", 0.8), ("valid", 0.1), ("test", 0.1))
KEYS = [f"artist{i:03d}/track{i % 7}" for i in range(200)]


def test_assign_split_is_independent_of_order():
    expected = {key: assign_split(key=key, fractions=FRACTIONS, seed=3) for key in KEYS}
    shuffled = KEYS[:]
    random.Random(0).shuffle(shuffled)
    assert {key: assign_split(key=key, fractions=dict(FRACTIONS), seed=3) for key in shuffled} == expected
    assert {key: assign_split(key=key, fractions=FRACTIONS, seed=4) for key in KEYS} != expected


def test_assign_split_is_the_same_in_another_process():
    code = ("import json, sys; from mirdl.pipelines.corpus import assign_split; "
            "keys = json.loads(sys.stdin.read()); "
            "print(json.dumps([assign_split(key=k, fractions=[['train', 0.8], ['valid', 0.1], ['test', 0.1]], "
            "seed=3) for k in keys]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(KEYS), capture_output=True, text=True,
                         check=True, cwd=REPO, env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert json.loads(out.stdout) == [assign_split(key=key, fractions=FRACTIONS, seed=3) for key in KEYS]


def test_list_tracks_splits_do_not_depend_on_listing_order(tmp_path):
    names = [f"t{i:02d}" for i in range(30)]
    for name in names:
        write_audio(tmp_path / f"{name}.wav", seconds=0.01)
    rows = [(f"{name}.wav", "x") for name in names]
    write_csv(tmp_path / "a.csv", [("path", "label")] + rows)
    random.Random(1).shuffle(rows)
    write_csv(tmp_path / "b.csv", [("path", "label")] + rows)
    splits = SplitConfig(seed=7)
    first, _ = list_tracks(CorpusConfig(type="csv", csv=str(tmp_path / "a.csv")), splits)
    second, _ = list_tracks(CorpusConfig(type="csv", csv=str(tmp_path / "b.csv")), splits)
    assert first == second
    assert ids(first) == names
    assert listing_hash(first) == listing_hash(second)


def test_group_split_keeps_each_group_in_one_split(tmp_path):
    rows = [("path", "label", "artist")]
    for i in range(120):
        write_audio(tmp_path / f"t{i:03d}.wav", seconds=0.01)
        rows.append((f"t{i:03d}.wav", "x", f"artist{i % 12}"))
    config = CorpusConfig(type="csv", csv=str(write_csv(tmp_path / "l.csv", rows)), group_column="artist")
    tracks, _ = list_tracks(config, SplitConfig(fractions={"train": 0.5, "test": 0.5}))
    split_of_group = {}
    for track in tracks:
        assert split_of_group.setdefault(track.group, track.split) == track.split
    assert set(split_of_group.values()) == {"train", "test"}
    by_track, _ = list_tracks(config, SplitConfig(fractions={"train": 0.5, "test": 0.5}, group_by="track"))
    assert any(len({t.split for t in by_track if t.group == group}) == 2 for group in split_of_group)


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=5),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_assign_split_respects_fractions_on_1000_keys(weights, seed):
    total = sum(weights)
    fractions = tuple((f"s{i}", weight / total) for i, weight in enumerate(weights))
    counts = dict.fromkeys((name for name, _ in fractions), 0)
    for i in range(1000):
        counts[assign_split(key=f"track{i}", fractions=fractions, seed=seed)] += 1
    for name, fraction in fractions:
        # Binomial(1000, p): 6 standard deviations is at most 0.095.
        assert abs(counts[name] / 1000 - fraction) <= 6 * math.sqrt(fraction * (1 - fraction) / 1000) + 1e-9


# ---------------------------------------------------------------------------------------- config validation


def test_corpus_config_from_dict_names_the_missing_column(tmp_path):
    write_csv(tmp_path / "labels.csv", [("path", "label", "artist")])
    with pytest.raises(ConfigError) as info:
        CorpusConfig.from_dict({"type": "csv", "csv": "labels.csv", "label_column": "genre"}, base_dir=tmp_path)
    assert str(info.value) == "corpus.label_column='genre' is not a column of labels.csv (columns: path, label, artist)"
    with pytest.raises(ConfigError, match=r"corpus.target_columns\[1\]='tempo' is not a column"):
        CorpusConfig.from_dict({"type": "csv_regression", "csv": "labels.csv", "target_columns": ["label", "tempo"]},
                               base_dir=tmp_path)


@pytest.mark.parametrize("data, match", [
    ({"type": "folders", "root": "."}, r"corpus.type='folders' must be one of"),
    ({"root": "."}, r"corpus.type is missing"),
    ({"type": "csv", "csv": "l.csv", "labels": "x"}, r"corpus.labels is not a field"),
    ({"type": "csv"}, r"corpus.csv is missing"),
    ({"type": "csv", "csv": "nope.csv"}, r"corpus.csv=.*nope.csv' is not a file"),
    ({"type": "dir_per_class", "root": "missing"}, r"corpus.root=.*missing' is not a directory"),
    ({"type": "dir_per_class", "root": ".", "csv": "l.csv"}, r"corpus.csv=.* is not used by type 'dir_per_class'"),
    ({"type": "csv", "csv": "l.csv", "root": "."}, r"corpus.root=.* is not used with a CSV"),
    ({"type": "dir_per_class", "root": ".", "group_column": "artist"}, r"corpus.group_column='artist' needs a CSV"),
    ({"type": "annotations"}, r"corpus.root is missing.*or corpus.csv"),
    ({"type": "annotations", "root": ".", "annotation_kind": "beats"}, r"corpus.annotation_kind='beats'"),
    ({"type": "csv_tag_columns", "csv": "l.csv"}, r"corpus.tag_columns is empty"),
    ({"type": "csv_regression", "csv": "l.csv", "target_columns": "tempo"},
     r"corpus.target_columns='tempo' must be a list"),
    ({"type": "csv", "csv": "l.csv", "label_column": ""}, r"corpus.label_column='' must be a non-empty string"),
    ({"type": "csv", "csv": "l.csv", "extensions": []}, r"corpus.extensions=\[\] must name at least one"),
    ({"type": "csv_tags", "csv": "l.csv", "tag_separator": None}, r"corpus.tag_separator=None"),
    ({"type": "csv", "csv": "e.csv"}, r"corpus.csv=.*e.csv' is empty \(no header row\)"),
    ({"type": "csv", "csv": "twice.csv"}, r"column 'path' appears twice"),
])
def test_corpus_config_errors_name_the_field(tmp_path, data, match):
    write_csv(tmp_path / "l.csv", [("path", "label")])
    (tmp_path / "e.csv").write_text("\n")
    write_csv(tmp_path / "twice.csv", [("path", "label", "path")])
    with pytest.raises(ConfigError, match=match):
        CorpusConfig.from_dict(data, base_dir=tmp_path)


def test_corpus_config_normalises_and_round_trips(tmp_path):
    config = CorpusConfig.from_dict({"type": "dir_per_class", "root": ".", "extensions": [".WAV", "flac", "wav"]},
                                    base_dir=tmp_path)
    assert config.extensions == ("wav", "flac") and config.root == str(tmp_path)
    assert CorpusConfig.from_dict(json.loads(json.dumps(config.to_dict())), base_dir="/elsewhere") == config


@pytest.mark.parametrize("data, match", [
    ({"fractions": {"train": 0.8, "test": 0.1}}, r"splits.fractions=.* sum to 0.9, not 1"),
    ({"fractions": {"train": 1.1, "test": -0.1}}, r"splits.fractions\['test'\]=-0.1 must be > 0"),
    ({"fractions": {"train set": 1.0}}, r"split name 'train set' must be an identifier"),
    ({"fractions": {}}, r"splits.fractions=\{\} must be a non-empty mapping"),
    ({"fractions": [["a", 0.5], ["a", 0.5]]}, r"split names \['a', 'a'\] are repeated"),
    ({"group_by": "album"}, r"splits.group_by='album' must be one of \['group', 'track'\]"),
    ({"seed": "1"}, r"splits.seed='1' must be an integer"),
    ({"seed": True}, r"splits.seed=True"),
    ({"column": "fold", "fractions": {"train": 1.0}}, r"splits.column and splits.fractions exclude"),
    ({"ratio": 0.5}, r"splits.ratio is not a field"),
    ([0.8, 0.2], r"splits must be a mapping"),
])
def test_split_config_errors_name_the_field(data, match):
    with pytest.raises(ConfigError, match=match):
        SplitConfig.from_dict(data)


def test_split_config_accepts_numpy_numbers_as_python_ones():
    # one checker for every config: numpy numbers (from a Python caller) count like Python ones
    config = SplitConfig(fractions={"train": np.float32(0.5), "test": np.float64(0.5)}, seed=np.int64(3))
    assert config == SplitConfig(fractions={"train": 0.5, "test": 0.5}, seed=3)
    assert type(config.seed) is int and {type(f) for _, f in config.fractions} == {float}


def test_split_config_defaults_and_round_trip():
    assert SplitConfig.from_dict(None) == SplitConfig()
    config = SplitConfig.from_dict({"fractions": {"train": 0.7, "valid": 0.15, "test": 0.15}, "seed": 5})
    assert config.fractions == (("train", 0.7), ("valid", 0.15), ("test", 0.15)) and config.names[0] == "train"
    assert SplitConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert SplitConfig(fractions={"all": 1.0}).fractions == (("all", 1.0),)


# ---------------------------------------------------------------------------------------- listing hash


def test_listing_hash_tracks_content_not_order_or_location(tmp_path):
    root = tmp_path / "corpus"
    for name in ("rock/a", "rock/b", "jazz/c"):
        write_audio(root / f"{name}.wav")
    config = CorpusConfig(type="dir_per_class", root=str(root))
    tracks, _ = list_tracks(config, SplitConfig())
    reference = listing_hash(tracks)
    assert len(reference) == 64 and reference == listing_hash(reversed(tracks))

    shutil.copytree(root, tmp_path / "moved")
    moved, _ = list_tracks(CorpusConfig(type="dir_per_class", root=str(tmp_path / "moved")), SplitConfig())
    assert listing_hash(moved) == reference

    write_audio(root / "rock" / "b.wav", seconds=0.3)  # a file changes
    assert listing_hash(list_tracks(config, SplitConfig())[0]) != reference
    write_audio(root / "rock" / "b.wav")
    assert listing_hash(list_tracks(config, SplitConfig())[0]) == reference
    (root / "rock" / "b.wav").rename(root / "jazz" / "b.wav")  # a label changes
    assert listing_hash(list_tracks(config, SplitConfig())[0]) != reference


def test_listing_hash_sees_labels_splits_and_annotations(tmp_path):
    audio = write_audio(tmp_path / "a.wav")
    (tmp_path / "a.onsets.csv").write_text("0.1\n")
    track = Track("a", str(audio), annotation_path=str(tmp_path / "a.onsets.csv"), split="train")
    reference = listing_hash([track])
    for changed in (replace(track, label="x"), replace(track, tags=("t",)), replace(track, targets=(1.0,)),
                    replace(track, split="test"), replace(track, group="g")):
        assert listing_hash([changed]) != reference
    (tmp_path / "a.onsets.csv").write_text("0.1\n0.2\n")
    assert listing_hash([track]) != reference


# ---------------------------------------------------------------------------------------- annotation files


def make_jams(path, *, duration=4.0, namespaces=("onset", "note_midi", "chord")):
    jam = jams.JAMS()
    jam.file_metadata.duration = duration
    for namespace in namespaces:
        ann = jams.Annotation(namespace=namespace)
        if namespace in ("onset", "beat"):
            for t in (0.5, 1.0, 2.25):
                ann.append(time=t, duration=0.0, value=1 if namespace == "beat" else None)
        elif namespace == "note_midi":
            ann.append(time=0.5, duration=0.5, value=60)
            ann.append(time=1.0, duration=1.25, value=64.5)
        elif namespace == "note_hz":
            ann.append(time=0.5, duration=0.5, value=440.0)
            ann.append(time=1.0, duration=1.0, value=880.0)
        else:
            ann.append(time=0.0, duration=2.0, value="C:maj")
            ann.append(time=2.0, duration=1.0, value="A:min7")
            ann.append(time=3.0, duration=1.0, value="N")
        jam.annotations.append(ann)
    jam.save(str(path))
    return path


def test_jams_round_trip_each_kind(tmp_path):
    path = make_jams(tmp_path / "song.jams")
    assert load_annotations(path, kind="onsets") == Annotations(onsets=(0.5, 1.0, 2.25))
    assert load_annotations(path, kind="notes") == Annotations(notes=((0.5, 1.0, 60.0), (1.0, 2.25, 64.5)))
    chords = load_annotations(path, kind="chords")
    assert chords == Annotations(chords=((0.0, 2.0, "C:maj"), (2.0, 3.0, "A:min"), (3.0, 4.0, "N")))
    assert load_annotations(path, kind="chords", reduce_chords=False).chords[1][2] == "A:min7"
    # Reduced labels are what frame_chords targets need.
    assert chord_frames(chords.chords, n_frames=4, sr=1, hop_length=1, vocabulary=CHORD_VOCABULARY).tolist() == [
        1, 1, CHORD_VOCABULARY.index("A:min"), 0]


def test_jams_other_namespaces(tmp_path):
    path = make_jams(tmp_path / "alt.jams", namespaces=("beat", "note_hz", "chord_harte"))
    assert load_annotations(path, kind="onsets").onsets == (0.5, 1.0, 2.25)
    assert load_annotations(path, kind="notes").notes == ((0.5, 1.0, 69.0), (1.0, 2.0, 81.0))
    assert load_annotations(path, kind="chords").chords[1] == (2.0, 3.0, "A:min")


def test_jams_errors(tmp_path):
    path = make_jams(tmp_path / "only_onsets.jams", namespaces=("onset",))
    with pytest.raises(AnnotationError, match=r"only_onsets.jams: no chords annotation.*\['onset'\]"):
        load_annotations(path, kind="chords")
    (tmp_path / "broken.jams").write_text("{not json")
    with pytest.raises(AnnotationError, match="broken.jams: not a valid JAMS file"):
        load_annotations(tmp_path / "broken.jams", kind="onsets")


def test_lab_chords_with_line_numbers(tmp_path):
    lab = tmp_path / "song.lab"
    lab.write_text("0.000\t1.500\tN\n\n1.5 3.0 Bb:maj7/3\n3.0 4.5 C:(1,b3,5)\n4.5 5.0 G:sus4\n")
    assert load_annotations(lab, kind="chords").chords == (
        (0.0, 1.5, "N"), (1.5, 3.0, "A#:maj"), (3.0, 4.5, "C:min"), (4.5, 5.0, "N"))
    lab.write_text("0.0 1.0 C:maj\n1.0 0.5 G:maj\n")
    with pytest.raises(AnnotationError, match=r"song.lab:2: end 0.5 is before start 1.0") as info:
        load_annotations(lab, kind="chords")
    assert (info.value.path, info.value.line) == (str(lab), 2)
    lab.write_text("0.0 1.0 C:maj\n1.0 2.0 H:maj\n")
    with pytest.raises(AnnotationError, match=r"song.lab:2: chord label 'H:maj' is not Harte"):
        load_annotations(lab, kind="chords")
    csv_chords = tmp_path / "song.chords.csv"
    csv_chords.write_text('start,end,label\n0,1,"C:(1,3,5)"\n1,2,E:min\n')
    assert load_annotations(csv_chords, kind="chords").chords == ((0.0, 1.0, "C:maj"), (1.0, 2.0, "E:min"))


def test_plain_onsets_and_notes(tmp_path):
    onsets = tmp_path / "a.onsets.csv"
    onsets.write_text("time\n0.5\n# a comment\n0.25\n")
    assert load_annotations(onsets, kind="onsets") == Annotations(onsets=(0.25, 0.5))
    (tmp_path / "b.txt").write_text("0.1\n0.2\n")
    assert load_annotations(tmp_path / "b.txt", kind="onsets").onsets == (0.1, 0.2)
    (tmp_path / "empty.csv").write_text("")
    assert load_annotations(tmp_path / "empty.csv", kind="onsets") == Annotations()
    notes = tmp_path / "a.notes.csv"
    notes.write_text("onset,offset,midi\n0.5,1.0,60\n1.0,1.5,62.5\n")
    assert load_annotations(notes, kind="notes").notes == ((0.5, 1.0, 60.0), (1.0, 1.5, 62.5))


@pytest.mark.parametrize("kind, text, match", [
    ("onsets", "time\n0.5\nabc\n", r"x.csv:3: time='abc' is not a number"),
    ("onsets", "0.5\n-1\n", r"x.csv:2: time=-1.0 must be >= 0"),
    ("onsets", "0.5\ninf\n", r"x.csv:2: time='inf' must be finite"),
    ("onsets", "0.5,0.7\n", r"x.csv:1: expected 1 field, got 2"),
    ("notes", "0.5,1.0,60\n0.5,1.0\n", r"x.csv:2: expected 3 fields, got 2"),
    ("notes", "1.0,0.5,60\n", r"x.csv:1: offset 0.5 is before onset 1.0"),
    ("notes", "0.5,1.0,C4\n", r"x.csv:1: midi='C4' is not a number"),
])
def test_plain_file_errors_name_file_and_line(tmp_path, kind, text, match):
    (tmp_path / "x.csv").write_text(text)
    with pytest.raises(AnnotationError, match=match):
        load_annotations(tmp_path / "x.csv", kind=kind)


def test_load_annotations_missing_file_and_bad_kind(tmp_path):
    with pytest.raises(AnnotationError, match="nope.lab: annotation file not found"):
        load_annotations(tmp_path / "nope.lab", kind="chords")
    with pytest.raises(ConfigError, match="kind='beats' must be one of"):
        load_annotations(tmp_path / "nope.lab", kind="beats")


def test_annotation_error_is_a_mirdl_error_and_pickles():
    err = AnnotationError("bad", "/x.lab", 3)
    assert isinstance(err, MirdlError) and str(err) == "/x.lab:3: bad"
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.path, copy.line, copy.message) == ("/x.lab:3: bad", "/x.lab", 3, "bad")


# ---------------------------------------------------------------------------------------- chords


@pytest.mark.parametrize("label, expected", [
    ("C", "C:maj"), ("C/5", "C:maj"), ("C:maj", "C:maj"), ("Db:7", "C#:maj"), ("E:aug", "E:maj"),
    ("F:maj(9)/3", "F:maj"), ("G:min", "G:min"), ("A:dim7", "A:min"), ("B:hdim7", "B:min"),
    ("Cb:minmaj7", "B:min"), ("E#:min9", "F:min"), ("C:(1,b3,5)", "C:min"), ("C:(3,5)", "C:maj"),
    ("C:maj(*3)", "N"), ("D:sus2", "N"), ("D:5", "N"), ("D:1", "N"), ("D:sus4(3)", "D:maj"), ("D:weird", "N"),
    ("N", "N"), ("X", "N"),
])
def test_reduce_chord(label, expected):
    assert reduce_chord(label) == expected
    assert expected in CHORD_VOCABULARY


@pytest.mark.parametrize("label", ["", "H:maj", "c:maj", "C:maj(", 3])
def test_reduce_chord_rejects_non_harte(label):
    with pytest.raises(ConfigError, match="not Harte syntax"):
        reduce_chord(label)


def test_chord_vocabulary_is_closed_under_transposition():
    assert len(CHORD_VOCABULARY) == 25 and len(set(CHORD_VOCABULARY)) == 25 and CHORD_VOCABULARY[0] == "N"
    for label in CHORD_VOCABULARY:
        for steps in range(-12, 13):
            assert transpose_chord(label, n_steps=steps) in CHORD_VOCABULARY
    assert (NOTE_NAMES[0], NOTE_NAMES[39], NOTE_NAMES[-1], len(NOTE_NAMES)) == ("A0", "C4", "C8", 88)


# ---------------------------------------------------------------------------------------- task


def test_task_for_needs_labels():
    with pytest.raises(ConfigError, match="no track has a label"):
        task_for(CorpusConfig(type="csv", csv="x.csv"), [Track("a", "/a.wav")])
    with pytest.raises(ConfigError, match="no track has a tag"):
        task_for(CorpusConfig(type="csv_tags", csv="x.csv"), [Track("a", "/a.wav")])
    task = task_for(CorpusConfig(type="annotations", root="/", annotation_kind="onsets"), [])
    assert task == {"type": "frame_onset", "vocabulary": ["onset"], "n_outputs": 1}


# ---------------------------------------------------------------------------------------- dead letters


def test_error_record_round_trip_and_from_exc():
    record = ErrorRecord.from_exc(path="/a.wav", track_id="a", stage="decode", exc=ValueError("bad ünïcode"))
    assert (record.reason, record.error_type) == ("bad ünïcode", "ValueError")
    line = record.to_json()
    assert "\n" not in line and list(json.loads(line)) == sorted(json.loads(line))
    assert ErrorRecord.from_json(line) == record
    assert ErrorRecord.from_exc(path="p", track_id=None, stage="write", exc=OSError()).reason == "OSError"
    assert pickle.loads(pickle.dumps(record)) == record
    assert STAGES == ("list", "annotations", "decode", "augment", "features", "segment", "write")


def test_error_record_rejects_bad_stage_and_lines():
    with pytest.raises(ConfigError, match="ErrorRecord.stage='load' must be one of"):
        ErrorRecord(path="p", track_id=None, stage="load", reason="r", error_type="E")
    with pytest.raises(StoreError, match="not JSON"):
        ErrorRecord.from_json("{oops")
    with pytest.raises(StoreError, match="keys"):
        ErrorRecord.from_json('{"path": "p"}')
    good = json.loads(ErrorRecord(path="p", track_id=None, stage="list", reason="r", error_type="E").to_json())
    with pytest.raises(StoreError, match="bad error record"):
        ErrorRecord.from_json(json.dumps({**good, "stage": "nowhere"}))


# ---------------------------------------------------------------------------------------- module hygiene


def test_modules_do_not_import_beam_or_tensorflow():
    code = ("import sys, mirdl.pipelines.corpus, mirdl.pipelines.dead_letter, mirdl.features.annotations; "
            "print(sorted(m for m in ('apache_beam', 'tensorflow', 'jams', 'mirdl_tf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", [mirdl.pipelines.corpus, mirdl.pipelines.corpus_config, mirdl.store.dead_letter,
                                    mirdl.features.annotations])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


# ---------------------------------------------------------------------------------- stratified splits


def _class_corpus(tmp_path, sizes, *, name="l.csv", groups=None):
    """A CSV corpus with ``sizes[label]`` tracks per class (tiny files); ``groups``: track -> group."""
    rows = [("path", "label", "artist")]
    for label, size in sizes.items():
        for i in range(size):
            track = f"{label}{i:03d}"
            path = tmp_path / "audio" / f"{track}.wav"
            if not path.exists():
                write_audio(path, seconds=0.005)
            rows.append((f"audio/{track}.wav", label, (groups or {}).get(track, track)))
    return CorpusConfig(type="csv", csv=str(write_csv(tmp_path / name, rows)), group_column="artist")


FRACTIONS_811 = {"train": 0.8, "valid": 0.1, "test": 0.1}


def test_stratified_splits_give_every_class_its_fraction_and_every_split_a_track(tmp_path):
    sizes = {"big": 55, "mid": 12, "small": 3}
    config = _class_corpus(tmp_path, sizes)
    tracks, _ = list_tracks(config, SplitConfig(fractions=FRACTIONS_811, stratify=True, seed=4))
    count = {(label, split): sum(t.label == label and t.split == split for t in tracks)
             for label in sizes for split in FRACTIONS_811}
    assert [count["big", s] for s in FRACTIONS_811] == [44, 6, 5]  # 44 + 5.5 + 5.5: largest remainder, order
    assert [count["mid", s] for s in FRACTIONS_811] == [10, 1, 1]
    assert [count["small", s] for s in FRACTIONS_811] == [1, 1, 1]  # at least one per split when it can
    plain, _ = list_tracks(config, SplitConfig(fractions=FRACTIONS_811, seed=4))
    assert split_warnings_for(plain, 2) != []  # the hash alone leaves a 3-track class out of a split


def split_warnings_for(tracks, min_tracks):
    return mirdl.pipelines.corpus.split_warnings(tracks, split_names=list(FRACTIONS_811), min_tracks=min_tracks)


def test_stratified_splits_never_split_a_group_and_ignore_listing_order(tmp_path):
    groups = {f"a{i:03d}": f"artist{i % 4}" for i in range(20)} | {f"b{i:03d}": f"band{i % 5}" for i in range(10)}
    config = _class_corpus(tmp_path, {"a": 20, "b": 10}, groups=groups)
    splits = SplitConfig(fractions={"train": 0.6, "test": 0.4}, stratify=True)
    tracks, _ = list_tracks(config, splits)
    by_group = {}
    for track in tracks:
        by_group.setdefault(track.group, set()).add(track.split)
    assert all(len(s) == 1 for s in by_group.values())
    assert sorted(sum(1 for g, s in by_group.items() if g.startswith("artist") and s == {split})
                  for split in ("train", "test")) == [2, 2]
    rows = Path(config.csv).read_text().splitlines()
    shuffled = rows[1:]
    random.Random(3).shuffle(shuffled)
    other = _class_corpus(tmp_path, {"a": 20, "b": 10}, groups=groups, name="m.csv")
    Path(other.csv).write_text("\n".join([rows[0], *shuffled]) + "\n")
    assert [t.split for t in list_tracks(other, splits)[0]] == [t.split for t in tracks]


def test_hash_splits_never_move_a_track_when_the_corpus_grows(tmp_path):
    small = _class_corpus(tmp_path, {"a": 30, "b": 6}, name="small.csv")
    grown = _class_corpus(tmp_path, {"a": 90, "b": 40, "c": 9}, name="grown.csv")
    splits = SplitConfig(fractions=FRACTIONS_811, seed=2)
    before = {t.track_id: t.split for t in list_tracks(small, splits)[0]}
    after = {t.track_id: t.split for t in list_tracks(grown, splits)[0]}
    assert {key: after[key] for key in before} == before


def test_split_warnings_name_missing_and_thin_classes_and_reach_the_manifest(tmp_path):
    tracks = [Track(f"{c}{i}", f"/{c}{i}.wav", label=c, split=s) for c, layout in
              (("a", ("train", "train", "valid", "valid", "test", "test")), ("b", ("train", "train", "test")))
              for i, s in enumerate(layout)]
    assert split_warnings_for(tracks, 2) == [
        "split 'test' has 1 track of class 'b' (fewer than splits.min_tracks=2)",
        "split 'valid' has no track of class 'b' (3 in the corpus)",
    ]
    assert split_warnings_for(tracks, 0) == []
    assert split_warnings_for([replace(t, label=None, tags=("x",)) for t in tracks], 2) == []


def test_stratify_config_checks_and_fingerprint_compatibility(tmp_path):
    assert SplitConfig().to_dict() == {"column": None, "fractions": {"train": 0.8, "valid": 0.1, "test": 0.1},
                                       "group_by": "group", "seed": 0}  # old configs keep their fingerprint
    config = SplitConfig.from_dict({"stratify": True, "min_tracks": 3})
    assert SplitConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="splits.stratify='yes' must be true or false"):
        SplitConfig.from_dict({"stratify": "yes"})
    with pytest.raises(ConfigError, match="splits.min_tracks"):
        SplitConfig.from_dict({"min_tracks": -1})
    regression = tmp_path / "r.csv"
    write_audio(tmp_path / "x.wav", seconds=0.005)
    write_csv(regression, [("path", "tempo"), ("x.wav", "120")])
    with pytest.raises(ConfigError, match="splits.stratify=true needs class labels"):
        list_tracks(CorpusConfig(type="csv_regression", csv=str(regression), target_columns=("tempo",)),
                    SplitConfig(stratify=True))
