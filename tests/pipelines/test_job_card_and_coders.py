"""Fixed costs of a prepare job, round 2, cut without changing a byte of the store: the card's plots
drawn from numpy (no matplotlib in the job; what they show is in the card's text), input files
hashed while they decode, no pickling of whole tracks for Beam's size estimates, the clean variant
without a copy of the track. The reference path (main's: matplotlib plots, Beam's default coder,
apply_variant's copy, a hash after the decode) is rebuilt in the same test and writes the same bytes."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
from PIL import Image

from mirdl.pipelines import transforms
from mirdl.pipelines.corpus import Track
from mirdl.pipelines.precompute import prepare
from mirdl.pipelines.transforms import ERRORS, ArraysCoder, AugmentVariants, Decoded, DecodeAudio
from mirdl.store import card_plots, summary
from mirdl.store.adapters import read_shard
from mirdl.store.files import sha256_file
from mirdl.store.manifest import read_manifest, shard_paths

_RUN_FIELDS = ("created", "provenance", "command", "store_path")


def _config(folder, synth_corpus, out, fmt="tfrecord"):
    rows = [f"{synth_corpus.root / t.path},{t.label},{t.artist}" for t in synth_corpus.tracks[:6]]
    (folder / "labels.csv").write_text("path,label,artist\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = {
        "name": "card", "seed": 1,
        "corpus": {"type": "csv", "csv": "labels.csv", "group_column": "artist"},
        "splits": {"fractions": {"train": 0.6, "valid": 0.2, "test": 0.2}, "group_by": "track"},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": 16000,
                      "params": {"n_fft": 512, "hop_length": 256, "n_mels": 32}}],
        "segment": {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.25, "pad": "silence"},
        "store": {"format": fmt, "out": out, "shard_bytes": "32KB"},
    }
    path = folder / f"{out}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _reference_path(monkeypatch):
    """main's code path: Beam's default size estimate (encode the element), apply_variant for the
    clean variant (a copy), the hash after the decode, matplotlib plots without captions."""
    monkeypatch.setattr(ArraysCoder, "estimate_size", lambda self, value: len(self.encode(value)))
    original = AugmentVariants.process

    def process_with_copy(self, item):
        copied = Decoded(item.track, item.audio.astype(np.float64), item.annotations, item.sha256,
                         item.annotation_sha256)  # float64: apply_variant's path, which returns a float32 copy
        yield from original(self, copied)

    monkeypatch.setattr(AugmentVariants, "process", process_with_copy)
    monkeypatch.setattr(DecodeAudio, "setup", lambda self: setattr(self, "_hasher", _Serial()))
    monkeypatch.setattr(card_plots, "card_plots",
                        lambda store, out: [card_plots.CardPlot(path.relative_to(store).as_posix(), "")
                                            for path in summary.plot(store, out)])


class _Serial:
    """An executor running each call at once (the hash after the decode, as main computed it)."""

    def submit(self, fn):
        from concurrent.futures import Future

        future = Future()
        future.set_result(fn())
        return future

    def shutdown(self, wait=True):
        pass


@pytest.fixture(scope="module")
def stores(synth_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("card")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _reference_path(monkeypatch)
        assert prepare(_config(folder, synth_corpus, "reference"), workers=1, out=io.StringIO()) == 0
    log = io.StringIO()
    assert prepare(_config(folder, synth_corpus, "fast"), workers=1, out=log) == 0
    assert "plots not drawn" not in log.getvalue()
    return {"reference": folder / "reference", "fast": folder / "fast", "folder": folder}


def _content(store):
    manifest = json.loads((store / "manifest.json").read_text())
    return {key: value for key, value in manifest.items() if key not in _RUN_FIELDS}


def test_store_is_byte_identical_to_the_reference_path(stores):
    reference, fast = stores["reference"], stores["fast"]
    ref_manifest, fast_manifest = _content(reference), _content(fast)
    assert json.dumps(fast_manifest, sort_keys=True).replace("fast", "X") == \
        json.dumps(ref_manifest, sort_keys=True).replace("reference", "X")
    shards = [s["path"] for split in ref_manifest["splits"].values() for s in split["shards"]]
    assert len(shards) > 2
    for name in shards:  # the files themselves, not only their manifest entries
        assert (reference / name).read_bytes() == (fast / name).read_bytes()
    for name in ("tracks.jsonl", "errors.jsonl"):
        assert (reference / name).read_bytes() == (fast / name).read_bytes()


def test_tracks_jsonl_hashes_are_the_files_sha256(stores, synth_corpus):
    lines = [json.loads(line) for line in (stores["fast"] / "tracks.jsonl").read_text().splitlines()]
    assert sorted(line["sha256"] for line in lines) == sorted(
        sha256_file(synth_corpus.root / t.path) for t in synth_corpus.tracks[:6])


def test_card_says_what_each_plot_shows(stores):
    store = stores["fast"]
    manifest = read_manifest(store)
    card = (store / "README.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in (store / "plots").iterdir()) == ["durations.png", "examples.png", "labels.png"]
    # examples: one row per example (class, track, segment), read back from the store's records
    records = {(r["track_id"], r["segment"]): r for split in manifest["splits"]
               for path in shard_paths(store, manifest, split) for r in read_shard(path, manifest=manifest)
               if r["variant"] == 0}
    vocabulary = manifest["task"]["vocabulary"]
    rows = [line for line in card.splitlines() if line.startswith("| ") and line.count("`") == 4
            and line.split("|")[2].strip().strip("`") in vocabulary]
    assert len(rows) == len({vocabulary[int(r["label"])] for r in records.values()})
    shown = []
    for row in rows:
        _, number, label, track, segment, _ = (cell.strip() for cell in row.split("|"))
        record = records[(track.strip("`"), int(segment))]
        assert vocabulary[int(record["label"])] == label.strip("`")  # the class is the record's
        shown.append(record["logmel"])
    low, high = min(float(x.min()) for x in shown), max(float(x.max()) for x in shown)
    assert f"{low:+.1f} dB black to {high:+.1f} dB pale yellow" in card
    _, names = summary._bin_names(manifest["features"]["logmel"]["spec"], 32)
    assert f"32 bins bottom to top, Hz (mel bands) {names[0]} to {names[-1]}" in card
    frames = manifest["features"]["logmel"]["shape"][-1]
    assert f"time 0 to {frames * 256 / 16000:.2f} s left to right ({frames} frames)" in card
    # the pixels: one picture per example plus the colour bar, magma's top colour at the bar's top
    image = np.asarray(Image.open(store / "plots" / "examples.png").convert("RGB"))
    assert image.shape[0] >= 32 and image[0, -1].tolist() == [252, 253, 191]
    # labels: the splits' colours, every class; durations: the manifest's histogram as a table
    assert "one bar per split (" + ", ".join(
        f"{split} {name}" for split, name in zip(manifest["splits"], ("blue", "orange", "green"))) + ")" in card
    assert "Classes: " + ", ".join(f"`{word}`" for word in vocabulary) in card
    histogram = manifest["corpus"]["duration_histogram"]
    edges, counts = histogram["upper_edges_seconds"], histogram["counts"]
    assert f"| <{edges[0]:g} | {counts[0]} |" in card and f"| >={edges[-1]:g} | {counts[-1]} |" in card
    assert f"{manifest['corpus']['decoded_tracks']} decoded tracks" in card


def test_the_job_imports_no_matplotlib(stores, synth_corpus, tmp_path):
    config = _config(tmp_path, synth_corpus, "child")
    code = ("import io, sys\nfrom mirdl.pipelines.precompute import prepare\n"
            f"status = prepare({str(config)!r}, workers=1, out=io.StringIO())\n"
            "print(status, sorted(m for m in ('matplotlib', 'PIL') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0 []"
    assert (tmp_path / "child" / "plots" / "examples.png").is_file()


def test_a_failing_plot_is_reported_and_the_store_is_written(synth_corpus, tmp_path, monkeypatch):
    def broken(store, manifest):
        raise RuntimeError("no pixels today")

    monkeypatch.setattr(card_plots, "_examples_plot", broken)
    log = io.StringIO()
    assert prepare(_config(tmp_path, synth_corpus, "broken", fmt="hdf5"), workers=1, out=log) == 0
    assert "mirdl prepare: plots not drawn (RuntimeError: no pixels today)" in log.getvalue()
    card = (tmp_path / "broken" / "README.md").read_text(encoding="utf-8")
    assert "## Plots" not in card and read_manifest(tmp_path / "broken")["splits"]


def test_tracks_are_never_pickled_to_estimate_their_size(synth_corpus, tmp_path, monkeypatch):
    pickled = []
    for cls in (transforms.Decoded, transforms.Variant, transforms.TrackFeatures):
        def reduce_ex(self, protocol, cls=cls):
            pickled.append(cls.__name__)
            return object.__reduce_ex__(self, protocol)

        monkeypatch.setattr(cls, "__reduce_ex__", reduce_ex, raising=False)
    assert prepare(_config(tmp_path, synth_corpus, "counted"), workers=1, out=io.StringIO()) == 0
    assert pickled == []  # Beam's byte counters sampled every one of these 6 tracks, pickling it
    assert isinstance(beam.coders.registry.get_coder(transforms.Decoded), ArraysCoder)
    y = np.zeros((2, 1000), np.float32)
    item = transforms.TrackFeatures(Track("t", "/t.wav"), 0, {"a": y, "b": y[0]})
    assert ArraysCoder().estimate_size(item) == 256 + 8000 + 4000
    assert ArraysCoder().decode(ArraysCoder().encode(item)).features["a"].shape == (2, 1000)


def test_clean_variant_is_the_decoded_array_and_odd_audio_keeps_apply_variants_errors():
    from mirdl.features.augment import AugmentSpec

    fn = AugmentVariants(spec=AugmentSpec(), sample_rate=16000, channels=1)
    fn.setup()
    y = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    (variant,) = list(fn.process(Decoded(Track("t", "/t.wav"), y)))
    assert variant.audio is y and variant.variant == 0
    (as_float32,) = list(fn.process(Decoded(Track("t", "/t.wav"), y.astype(np.float64))))
    np.testing.assert_array_equal(as_float32.audio, y)  # apply_variant's path: the same numbers
    (error,) = list(fn.process(Decoded(Track("e", "/e.wav"), np.zeros(0, np.float32))))
    assert error.tag == ERRORS and error.value.stage == "augment" and "no samples" in error.value.reason


def test_decode_hashes_the_file_it_decodes_and_dead_letters_keep_no_thread(tmp_path, synth_corpus):
    fn = DecodeAudio(sample_rate=16000, channels=1)
    path = str(synth_corpus.root / synth_corpus.tracks[0].path)
    (decoded,) = [out for out in fn.process((Track("a", path), None)) if isinstance(out, Decoded)]
    assert decoded.sha256 == sha256_file(path) and decoded.annotation_sha256 is None
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    (error,) = list(fn.process((Track("b", str(bad)), None)))
    assert error.tag == ERRORS and error.value.stage == "decode"
    fn.teardown()
    assert fn._hasher is None
