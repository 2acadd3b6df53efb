"""Fixed costs, round 3: the job's summaries (statistics, tracks per split, durations, decoded
tracks, errors) in one global combine instead of five, the shard list and the summary without
Beam's default stages. The store must not change by a byte: main's graph (rebuilt below from its
code) and this one write the same files, with files that fail to decode and a listing error,
and for a partition that holds no track at all (nothing reaches the combines)."""
from __future__ import annotations

import io
import json
import re
import shutil
import threading
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import fn_runner

from mirdl.pipelines import precompute
from mirdl.pipelines.config import PrepareConfig
from mirdl.pipelines.corpus import list_tracks, partition_of
from mirdl.pipelines.stats import DurationSummaryFn, FeatureStatsFn
from mirdl.pipelines.transforms import ComputeRecords, WriteShards, track_from_json, track_to_json
from mirdl.store.dead_letter import error_summary, write_error_records
from mirdl.store.files import atomic_path, write_json_atomic
from mirdl.store.format import ERRORS_NAME

N_TRACKS = 6
# Run-specific text of a store: its creation time (manifest, card, croissant). The manifest's
# provenance.numpy (the machine's SIMD targets and BLAS) is left out too: not what this test compares.
_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


# ------------------------------------------------------------------------------------- main's graph
def _main_build(pipeline, *, config, layout, tracks, listing_errors, directory, work, n_files, max_error_rate,
                stats_split, local_workers=0):
    """``precompute._build`` as main has it (bbb3ad5): one global combine per summary, each with
    its default, a Flatten of Flattens for the errors, six JSON files for the driver."""
    listing_path = work / "listing.jsonl"
    with atomic_path(listing_path) as tmp:
        tmp.write_text("".join(track_to_json(track) + "\n" for track in tracks), encoding="utf-8")
    parsed = (pipeline
              | "Listing" >> beam.io.ReadFromText(str(listing_path))
              | "ParseTracks" >> beam.Map(track_from_json))
    if local_workers > 1:
        # main dealt the tracks into buckets of equal estimated work (balance_tracks, since
        # removed); which worker computes a track does not change a byte of the store.
        bucket_of = {track.track_id: i % local_workers for i, track in enumerate(tracks)}
        listing = (parsed
                   | "BucketByAudio" >> beam.Map(lambda track: (bucket_of.get(track.track_id, 0), track))
                   | "GroupBuckets" >> beam.GroupByKey()
                   | "Unbucket" >> beam.FlatMap(lambda bucket: sorted(bucket[1], key=lambda track: track.track_id)))
    else:
        listing = parsed | "Reshuffle" >> beam.Reshuffle()
    computed = listing | "ComputeRecords" >> ComputeRecords(config=config, layout=layout,
                                                            progress_path=str(work / "progress.log"))
    records = computed["records"]
    errors = ((computed["errors"] | "FlattenErrors" >> beam.Flatten(),
               pipeline | "ListingErrors" >> beam.Create(listing_errors)) | "AllErrors" >> beam.Flatten())

    def save_errors(records_, *, path, summary_path):
        summary = error_summary(write_error_records(path, records_))
        write_json_atomic(summary_path, summary)
        return summary

    def save_json(value, path):
        write_json_atomic(path, value)

    errors_summary = (errors | "ErrorList" >> beam.combiners.ToList()
                      | "SaveErrors" >> beam.Map(save_errors, path=str(directory / ERRORS_NAME),
                                                 summary_path=str(work / "errors.json")))
    abort = errors_summary | "TooManyFailed" >> beam.Map(
        lambda summary: max_error_rate is not None and n_files > 0 and summary["failed_files"] / n_files > max_error_rate)
    (records
     | "WriteShards" >> WriteShards(directory=str(directory), spill_directory=str(work / precompute.SPILL_DIR),
                                    config=config, layout=layout, abort=abort)
     | "ShardList" >> beam.combiners.ToList()
     | "SaveShards" >> beam.Map(save_json, path=str(work / "shards.json")))
    (records
     | "TrainRecords" >> beam.Filter(lambda record: record["split"] == stats_split)
     | "Stats" >> beam.CombineGlobally(FeatureStatsFn(layout.feature_names))
     | "SaveStats" >> beam.Map(save_json, path=str(work / "stats.json")))
    (records
     | "SplitTrack" >> beam.Map(lambda record: (record["split"], record["track_id"]))
     | "DistinctTracks" >> beam.Distinct()
     | "TracksPerSplit" >> beam.combiners.Count.PerKey()
     | "TracksDict" >> beam.combiners.ToDict()
     | "SaveTracks" >> beam.Map(save_json, path=str(work / "tracks_per_split.json")))
    (computed["decoded"]
     | "DecodedSamples" >> beam.Map(lambda decoded: decoded["samples"])
     | "Durations" >> beam.CombineGlobally(DurationSummaryFn(config.sample_rate))
     | "SaveCorpus" >> beam.Map(save_json, path=str(work / "corpus.json")))
    (computed["decoded"]
     | "DecodedList" >> beam.combiners.ToList()
     | "SaveDecoded" >> beam.Map(save_json, path=str(work / "decoded.json")))


def _main_outputs(work, **_):
    return {name: json.loads((work / f"{name}.json").read_text(encoding="utf-8"))
            for name in ("shards", "stats", "tracks_per_split", "corpus", "errors", "decoded")}


# ------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def corpus(synth_corpus, odd_audio, tmp_path_factory):
    """6 tracks, every odd file (some fail to decode), a missing file."""
    root = tmp_path_factory.mktemp("stages") / "corpus"
    rows = []
    for track in synth_corpus.tracks[:N_TRACKS]:
        (root / track.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_corpus.root / track.path, root / track.path)
        rows.append(f"{track.path},{track.label},{track.artist}")
    (root / "odd").mkdir()
    for name, path in sorted(odd_audio.items()):
        shutil.copy(path, root / "odd" / path.name)
        rows.append(f"odd/{path.name},pluck,odd")
    rows.append("audio/missing.wav,pad,odd")
    (root / "labels.csv").write_text("path,label,artist\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root


def _config(folder: Path, corpus: Path) -> Path:
    folder.mkdir(parents=True)
    config = {
        "name": "stages", "seed": 1,
        "corpus": {"type": "csv", "csv": str(corpus / "labels.csv"), "group_column": "artist"},
        "splits": {"fractions": {"train": 0.6, "valid": 0.2, "test": 0.2}, "group_by": "track"},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": 16000,
                      "params": {"n_fft": 512, "hop_length": 256, "n_mels": 32}},
                     {"name": "chroma", "representation": "chroma_stft", "sample_rate": 16000,
                      "params": {"n_fft": 512, "hop_length": 256}}],
        "segment": {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.25, "pad": "silence"},
        "store": {"format": "tfrecord", "out": str(folder / "store"), "shard_bytes": "32KB"},
    }
    path = folder / "prepare.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _store_files(store: Path) -> dict[str, object]:
    """Every file of a store, as bytes; the manifest as JSON, without what differs between two runs
    of the same code (creation time, command) and the machine's numpy provenance."""
    files = {}
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        name = path.relative_to(store).as_posix()
        if name == "manifest.json":
            manifest = json.loads(path.read_text(encoding="utf-8"))
            manifest.pop("created")
            manifest["provenance"].pop("numpy")
            files[name] = manifest
        else:
            files[name] = _TIMESTAMP.sub(b"<time>", path.read_bytes())
    return files


def _run(folder: Path, corpus: Path, *, main_graph: bool, monkeypatch, workers: int = 1, **kwargs) -> Path:
    with monkeypatch.context() as patch:
        if main_graph:
            patch.setattr(precompute, "_build", _main_build)
            patch.setattr(precompute, "_read_outputs", _main_outputs)
        status = precompute.prepare(_config(folder, corpus), workers=workers, out=io.StringIO(), **kwargs)
    assert status in (precompute.EXIT_OK, precompute.EXIT_SOME_FAILED)
    return folder / "store" if "partition" not in kwargs else precompute.partial_store_path(
        folder / "store", *kwargs["partition"])


# ------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("workers", [1, 2])
def test_one_summary_combine_writes_mains_bytes(corpus, tmp_path, monkeypatch, workers):
    main = _store_files(_run(tmp_path / "main", corpus, main_graph=True, monkeypatch=monkeypatch, workers=workers))
    this = _store_files(_run(tmp_path / "this", corpus, main_graph=False, monkeypatch=monkeypatch, workers=workers))
    if workers > 1:  # two workers' partial statistics are merged in the order their bundles end: float64 rounding
        for name, feature in main["manifest.json"]["features"].items():
            mine = this["manifest.json"]["features"][name].pop("stats")
            theirs = feature.pop("stats")
            assert mine["frames"] == theirs["frames"] > 0
            for key in ("mean", "std", "sum", "sum_sq"):
                np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-12, atol=1e-9)
    assert sorted(this) == sorted(main)
    assert sum(name.endswith(tuple(f"-of-{n:05d}" for n in range(1, 99))) for name in this) > 2  # several shards
    errors = [json.loads(line) for line in this[ERRORS_NAME].splitlines()]
    assert {e["stage"] for e in errors} >= {"decode", "list"}
    for name in main:
        assert this[name] == main[name], name
    manifest = this["manifest.json"]
    assert manifest["corpus"]["decoded_tracks"] > N_TRACKS


def test_a_partition_without_tracks_writes_mains_bytes(corpus, tmp_path, monkeypatch):
    # A part of an array job that no track falls in: nothing reaches the combines (no default
    # stages any more), the driver summarises nothing itself; the listing error is still this part's.
    config = PrepareConfig.from_file(_config(tmp_path / "listing", corpus))
    tracks, _ = list_tracks(config.corpus, config.splits)
    count = 64
    index = next(i for i in range(count) if all(partition_of(track.track_id, count) != i for track in tracks))
    main = _store_files(_run(tmp_path / "main", corpus, main_graph=True, monkeypatch=monkeypatch,
                             partition=(index, count)))
    made = []  # the summary's CombineFn: made for the graph, and again by the driver when nothing reached it
    summary_fn = precompute._summary_fn
    monkeypatch.setattr(precompute, "_summary_fn", lambda *args: made.append(1) or summary_fn(*args))
    this = _store_files(_run(tmp_path / "this", corpus, main_graph=False, monkeypatch=monkeypatch,
                             partition=(index, count)))
    assert len(made) == 2
    assert this == main
    assert this["manifest.json"]["corpus"]["decoded_tracks"] == 0


def test_the_local_engine_runs_seven_stages_not_23(corpus, tmp_path, monkeypatch):
    stages = []
    original = fn_runner.FnApiRunner.run_stages

    def run_stages(self, stage_context, stage_list):
        stages.append(len(stage_list))
        return original(self, stage_context, stage_list)

    monkeypatch.setattr(fn_runner.FnApiRunner, "run_stages", run_stages)
    _run(tmp_path / "main", corpus, main_graph=True, monkeypatch=monkeypatch)
    _run(tmp_path / "this", corpus, main_graph=False, monkeypatch=monkeypatch)
    assert stages == [23, 7]


def test_decoder_versions_are_read_on_a_thread_of_their_own(corpus, tmp_path, monkeypatch):
    # Importing PyAV for its version (and sniffing each Ogg file) was serial driver work after the
    # pipeline; the manifest's provenance is computed on a thread while the pipeline runs.
    from mirdl.features import audio

    calls = []
    versions = audio.decoder_versions

    def decoder_versions(names=None):
        calls.append((threading.current_thread().name, names))
        return versions(names)

    monkeypatch.setattr(audio, "decoder_versions", decoder_versions)
    store = _run(tmp_path / "this", corpus, main_graph=False, monkeypatch=monkeypatch)
    assert calls == [("mirdl-driver-background", ["soundfile"])]
    provenance = json.loads((store / "manifest.json").read_text())["provenance"]
    # The versions of the decoders the tracks used only: no PyAV import for a corpus libsndfile reads.
    assert provenance["decode"]["decoders_used"] == ["soundfile"]
    assert provenance["decoders"] == versions(["soundfile"])
