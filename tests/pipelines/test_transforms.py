"""Tests of mirdl.pipelines.transforms and mirdl.pipelines.stats: the pure record functions, and each DoFn in a
TestPipeline with assert_that on a handful of elements (good ones and dead letters)."""
import apache_beam as beam
import numpy as np
import soundfile as sf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from mirdl.features import audio, representations, segment
from mirdl.features.labels import Annotations, onset_frames
from mirdl.features.spec import FeatureSpec
from mirdl.pipelines.config import PrepareConfig
from mirdl.pipelines.corpus import Track
from mirdl.pipelines.dead_letter import ErrorRecord
from mirdl.pipelines.stats import FeatureStatsFn, frame_moments, merge_moments
from mirdl.pipelines.transforms import (
    ERRORS,
    ComputeFeatures,
    DecodeAudio,
    RecordLayout,
    SegmentRecords,
    TrackFeatures,
    Variant,
    WriteShards,
    clip_label,
    make_records,
    segment_track,
)
from mirdl.store.adapters import read_shard, record_nbytes
from mirdl.store.build import label_counts

SR = 16000
LOGMEL = FeatureSpec(representation="logmel", sample_rate=SR, params={"n_fft": 512, "hop_length": 256, "n_mels": 16})
MFCC = FeatureSpec(representation="mfcc", sample_rate=SR, params={"n_fft": 512, "hop_length": 512, "n_mfcc": 8})
TASK = {"type": "single_label", "vocabulary": ["a", "b"], "n_outputs": 2}


def pipeline():
    """A test pipeline on Beam's local FnApiRunner (the DirectRunner would first try to download Prism)."""
    return test_pipeline.TestPipeline(runner="FnApiRunner")


def layout_for(tmp_path, *, specs=(LOGMEL,), mode="clip", seconds=0.25, hop=0.25, pad="silence", task=TASK,
               corpus_type="csv"):
    (tmp_path / "labels.csv").write_text("path,label\n", encoding="utf-8")
    (tmp_path / "store").mkdir(exist_ok=True)
    length_key = "patch_seconds" if mode == "clip" else "window_seconds"
    corpus = {"type": corpus_type, "csv": "labels.csv"}
    if corpus_type == "annotations":
        corpus.update(annotation_kind="onsets", annotation_column="path")
    config = PrepareConfig.from_dict({
        "name": "t", "corpus": corpus, "features": [spec.to_dict() for spec in specs],
        "segment": {"mode": mode, length_key: seconds, "hop_seconds": hop, "pad": pad},
        "store": {"format": "hdf5", "out": "store"},
    }, base_dir=tmp_path)
    return RecordLayout.build(config, task)


def sine(seconds=0.6, freq=440.0):
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


# ------------------------------------------------------------------------------------------ pure
def test_layout_shapes_and_frames(tmp_path):
    layout = layout_for(tmp_path, specs=(LOGMEL, MFCC), seconds=0.5, hop=0.25)
    # 0.5 s / 16 ms = 31.25 -> 31 frames; MFCC's hop is twice as long: 31 * 256 / 512 = 15.5 -> 16 (halves up).
    assert layout.patch_frames == {"logmel": 31, "mfcc": 16}
    assert layout.hop_frames == 16
    assert layout.features["logmel"]["shape"] == [16, 31] and layout.features["mfcc"]["shape"] == [8, 16]
    assert layout.features["logmel"]["axes"] == ["mel", "time"]
    assert layout.task["label_shape"] == [] and layout.task["label_dtype"] == "int64"


def test_segment_track_keeps_every_feature_on_one_time_grid(tmp_path):
    layout = layout_for(tmp_path, specs=(LOGMEL, MFCC), seconds=0.5, hop=0.25)
    y = sine(1.3)
    features = {spec.name: representations.compute(y, spec=spec) for spec in layout.specs}
    segments, targets, starts = segment_track(features, layout=layout)
    assert targets is None
    expected, expected_starts = segment.patches(features["logmel"], patch_frames=31, hop_frames=16,
                                                pad="silence", pad_column=layout.pad_columns["logmel"])
    np.testing.assert_array_equal(segments["logmel"], expected)  # exact: segmenting copies, never computes
    np.testing.assert_array_equal(starts, expected_starts)
    assert segments["mfcc"].shape == (len(starts), 8, 16)
    for i, start in enumerate(starts):
        mfcc_start = (2 * start * 256 + 512) // (2 * 512)  # nearest MFCC frame of the same instant
        available = features["mfcc"][:, mfcc_start:mfcc_start + 16]
        np.testing.assert_array_equal(segments["mfcc"][i][:, :available.shape[1]], available)
        # Past the end: the MFCC of silence, not zeros.
        padding = segments["mfcc"][i][:, available.shape[1]:]
        np.testing.assert_allclose(padding, np.broadcast_to(layout.pad_columns["mfcc"], padding.shape))


def test_frame_records_align_onsets_with_frames(tmp_path):
    task = {"type": "frame_onset", "vocabulary": ["onset"], "n_outputs": 1}
    layout = layout_for(tmp_path, mode="frames", seconds=0.25, hop=0.25, task=task, corpus_type="annotations")
    y = sine(1.0)
    logmel = representations.compute(y, spec=LOGMEL)
    onsets = (0.1, 0.5, 0.9)
    item = TrackFeatures(Track("x/t", "/x/t.wav", split="train"), 0, {"logmel": logmel}, Annotations(onsets=onsets))
    records = make_records(item, layout=layout)
    assert layout.task["label_shape"] == [16] and layout.task["label_dtype"] == "float32"
    full = onset_frames(onsets, n_frames=logmel.shape[-1], sr=SR, hop_length=256)
    for record in records:
        start = record["start_frame"]
        expected = np.zeros(16, np.float32)
        piece = full[start:start + 16]
        expected[:len(piece)] = piece
        np.testing.assert_array_equal(record["label"], expected)
    onset_frames_in_records = sorted(r["start_frame"] + int(i) for r in records for i in np.flatnonzero(r["label"]))
    assert onset_frames_in_records == [round(t * SR / 256) for t in onsets]  # 6, 31, 56
    assert label_counts(records, layout.task) == [3]


def test_clip_labels_and_counts():
    multi = {"type": "multi_label", "vocabulary": ["a", "b", "c"], "n_outputs": 3}
    assert clip_label(Track("t", "/t.wav", label="b"), TASK).tolist() == 1
    np.testing.assert_array_equal(clip_label(Track("t", "/t.wav", tags=("c",)), multi), [0, 0, 1])
    records = [{"label": np.array([1, 0, 1], np.float32)}, {"label": np.array([0, 0, 1], np.float32)}]
    assert label_counts(records, multi) == [1, 0, 2]
    assert label_counts([{"label": np.int64(1)}] * 3, TASK) == [0, 3]


# ------------------------------------------------------------------------------------------ DoFns
def test_decode_sends_bad_files_to_errors(tmp_path, odd_audio):
    paths = []
    for i, seconds in enumerate((0.3, 0.5, 0.7)):
        paths.append(str(tmp_path / f"good{i}.wav"))
        sf.write(paths[-1], sine(seconds), 22050 if i == 1 else SR)
    tracks = [Track(f"good{i}", path) for i, path in enumerate(paths)]
    tracks += [Track("not_audio", str(odd_audio["not_audio"])), Track("empty", str(odd_audio["empty"]))]
    expected = {f"good{i}": audio.load(path, sample_rate=SR)[0] for i, path in enumerate(paths)}

    def check_decoded(items):
        assert sorted(item.track.track_id for item in items) == sorted(expected)
        for item in items:
            assert item.annotations is None
            # Exact: the DoFn calls the same pure function in this process (a store holds its bits).
            np.testing.assert_array_equal(item.audio, expected[item.track.track_id])

    def check_errors(errors):
        assert sorted((e.track_id, e.stage, e.error_type) for e in errors) == [
            ("empty", "decode", "AudioError"), ("not_audio", "decode", "AudioError")]
        assert all(isinstance(e, ErrorRecord) and e.reason for e in errors)

    with pipeline() as p:
        out = (p | beam.Create([(track, None) for track in tracks])
               | "Decode" >> beam.ParDo(DecodeAudio(sample_rate=SR, channels=1)).with_outputs(ERRORS, main="main"))
        assert_that(out.main, check_decoded, label="decoded")
        assert_that(out[ERRORS], check_errors, label="errors")


def test_features_computes_every_spec_and_dead_letters_failures(tmp_path):
    specs = (LOGMEL, MFCC)
    variants = [Variant(Track(f"t{i}", f"/t{i}.wav"), i % 2, sine(0.2 + 0.1 * i, 200.0 * (i + 1))) for i in range(4)]
    variants.append(Variant(Track("empty", "/empty.wav"), 0, np.zeros(0, np.float32)))
    expected = {(v.track.track_id, v.variant): {s.name: representations.compute(v.audio, spec=s) for s in specs}
                for v in variants[:4]}

    def check_features(items):
        assert sorted((i.track.track_id, i.variant) for i in items) == sorted(expected)
        for item in items:
            for name, value in expected[(item.track.track_id, item.variant)].items():
                np.testing.assert_array_equal(item.features[name], value)  # same function, same process

    def check_errors(errors):
        assert [(e.track_id, e.stage) for e in errors] == [("empty", "features")]
        assert errors[0].reason.startswith("variant 0: ")

    with pipeline() as p:
        out = (p | beam.Create(variants)
               | "Features" >> beam.ParDo(ComputeFeatures(specs=specs)).with_outputs(ERRORS, main="main"))
        assert_that(out.main, check_features, label="features")
        assert_that(out[ERRORS], check_errors, label="errors")


def test_segment_records_match_features_segment(tmp_path):
    layout = layout_for(tmp_path, seconds=0.25, hop=0.125, pad="drop")
    items = [TrackFeatures(Track(f"c/t{i}", f"/t{i}.wav", label="ab"[i % 2], split="train"), 0,
                           {"logmel": representations.compute(sine(0.2 + 0.2 * i), spec=LOGMEL)}) for i in range(4)]
    items.append(TrackFeatures(Track("c/bad", "/bad.wav", label="zzz", split="train"), 0,
                               {"logmel": items[0].features["logmel"]}))
    expected = {}
    for item in items[:4]:
        windows, starts = segment.patches(item.features["logmel"], patch_frames=16, hop_frames=8, pad="drop")
        for i, (window, start) in enumerate(zip(windows, starts)):
            expected[f"{item.track.track_id}#v000#s{i:06d}"] = (window, int(start), "ab".index(item.track.label))

    def check_records(records):
        assert sorted(r["key"] for r in records) == sorted(expected)
        for record in records:
            window, start, label = expected[record["key"]]
            np.testing.assert_array_equal(record["logmel"], window)
            assert (record["start_frame"], int(record["label"]), record["split"]) == (start, label, "train")

    def check_errors(errors):
        assert [(e.track_id, e.stage) for e in errors] == [("c/bad", "segment")]

    with pipeline() as p:
        out = (p | beam.Create(items)
               | "Segment" >> beam.ParDo(SegmentRecords(layout=layout)).with_outputs(ERRORS, main="main"))
        assert_that(out.main, check_records, label="records")
        assert_that(out[ERRORS], check_errors, label="errors")


def test_write_shards_goes_through_spill_files_and_writes_sorted_shards(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\n", encoding="utf-8")
    config = PrepareConfig.from_dict({
        "name": "t", "corpus": {"type": "csv", "csv": "labels.csv"}, "features": [LOGMEL.to_dict()],
        "segment": {"mode": "clip", "patch_seconds": 0.25, "hop_seconds": 0.25},
        "store": {"format": "hdf5", "out": "store", "shard_bytes": "4KB"},
    }, base_dir=tmp_path)
    layout = RecordLayout.build(config, TASK)
    shape = layout.features["logmel"]["shape"]  # 16 x 16 float32: 1 KB a record
    rng = np.random.default_rng(1)
    records = [{"key": f"c/t{i}#v000#s000000", "track_id": f"c/t{i}", "variant": 0, "segment": 0, "start_frame": 0,
                "split": "train" if i < 5 else "test", "logmel": rng.standard_normal(shape).astype(np.float32),
                "label": np.asarray(i % 2, dtype=np.int64)} for i in range(7)]
    train_bytes = sum(record_nbytes(r, feature_names=["logmel"]) for r in records[:5])
    store, spill = tmp_path / "out", tmp_path / "spill"
    store.mkdir()

    def check(shards):
        by_split = {split: sorted(s["index"] for s in shards if s["split"] == split) for split in ("train", "test")}
        assert by_split == {"train": list(range(-(-train_bytes // 4096))), "test": [0]}  # ceil(bytes / shard_bytes)
        assert sum(s["records"] for s in shards) == 7
        assert [sum(c) for c in zip(*(s["label_counts"] for s in shards))] == [4, 3]

    with pipeline() as p:
        shards = (p | beam.Create(records)
                  | WriteShards(directory=str(store), spill_directory=str(spill), config=config, layout=layout,
                                abort=p | "NoAbort" >> beam.Create([False])))
        assert_that(shards, check)
    assert list(spill.iterdir())  # the records went through spill files (the job deletes them, not the transform)
    manifest = {"features": layout.features, "task": layout.task}
    by_key = {r["key"]: r for r in records}
    seen = []
    for path in sorted(store.iterdir()):
        keys = []
        for record in read_shard(path, manifest={**manifest, "format": "hdf5"}):
            np.testing.assert_array_equal(record["logmel"], by_key[record["key"]]["logmel"])
            assert int(record["label"]) == int(by_key[record["key"]]["label"])
            keys.append(record["key"])
        assert keys == sorted(keys)
        seen += keys
    assert sorted(seen) == sorted(by_key)

    aborted = tmp_path / "aborted"
    aborted.mkdir()
    with pipeline() as p:
        shards = (p | beam.Create(records)
                  | WriteShards(directory=str(aborted), spill_directory=str(spill), config=config, layout=layout,
                                abort=p | "Abort" >> beam.Create([True])))
        assert_that(shards, equal_to([]))
    assert list(aborted.iterdir()) == []


def test_stats_combine_equals_numpy_over_concatenated_frames():
    rng = np.random.default_rng(3)
    records = [{"x": (rng.standard_normal((2, 3, n)) * 10 - 40).astype(np.float32),
                "y": rng.random((4, n)).astype(np.float32)} for n in (5, 7, 1, 9, 4)]
    frames = {name: np.concatenate([r[name] for r in records], axis=-1).astype(np.float64) for name in ("x", "y")}

    def check(outputs):
        (stats,) = outputs
        for name, x in frames.items():
            np.testing.assert_allclose(stats[name]["mean"], x.mean(axis=-1), rtol=1e-6)
            np.testing.assert_allclose(stats[name]["std"], x.std(axis=-1), rtol=1e-6)
            assert stats[name]["frames"] == 26

    with pipeline() as p:
        stats = p | beam.Create(records) | beam.CombineGlobally(FeatureStatsFn(["x", "y"]))
        assert_that(stats, check)


def test_chan_merge_in_any_grouping_matches_numpy():
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((3, n)) + 100 for n in (1, 4, 9, 2)]
    left = merge_moments(merge_moments(frame_moments(parts[0]), frame_moments(parts[1])),
                         merge_moments(frame_moments(parts[2]), frame_moments(parts[3])))
    right = frame_moments(parts[0])
    for part in parts[1:]:
        right = merge_moments(right, frame_moments(part))
    whole = np.concatenate(parts, axis=-1)
    for moments in (left, right):
        np.testing.assert_allclose(moments.mean, whole.mean(axis=-1), rtol=1e-12)
        np.testing.assert_allclose(moments.m2 / moments.count, whole.var(axis=-1), rtol=1e-10)
    assert merge_moments(None, left) is left


def test_features_of_four_specs_share_one_stft_and_equal_librosa():
    """The job's step computes log-mel, CQT, chroma and MFCC of one framing from one STFT
    (representations.compute_many): each still equals librosa on the same audio."""
    import librosa

    params = {"n_fft": 1024, "hop_length": 512}
    specs = tuple(FeatureSpec(representation=r, sample_rate=SR, params=p, name=r) for r, p in [
        ("logmel", {**params, "n_mels": 40}), ("cqt", {"hop_length": 512, "n_bins": 72}),
        ("chroma_stft", params), ("mfcc", {**params, "n_mels": 40})])
    rng = np.random.default_rng(3)
    y = (sine(2.0, 330.0) + sine(2.0, 495.0) + 0.01 * rng.standard_normal(2 * SR)).astype(np.float32)
    (item,) = ComputeFeatures(specs=specs).process(Variant(Track("t", "/t.wav"), 0, y))
    assert isinstance(item, TrackFeatures)
    f = item.features
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_mels=40, **params)
    assert float(np.abs(f["logmel"] - librosa.power_to_db(mel, ref=1.0, top_db=None)).max()) <= 1e-3
    cqt = np.abs(librosa.cqt(y, sr=SR, hop_length=512, n_bins=72))
    assert float(np.abs(f["cqt"] - librosa.amplitude_to_db(cqt, ref=1.0, top_db=None)).max()) <= 1e-3
    np.testing.assert_allclose(f["chroma_stft"], librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0, **params),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(f["mfcc"], librosa.feature.mfcc(y=y, sr=SR, n_mels=40, **params), rtol=1e-4, atol=1e-3)
