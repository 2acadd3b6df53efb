"""A job of four specs (log-mel, CQT, chroma_stft, MFCC of one framing) computes each track's STFT
once (representations.compute_many): its store holds the per-spec path's numbers, record for record
(the same bits for log-mel, CQT and MFCC; float32 rounding for chroma, which then comes from the
shared float64 FFT)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mirdl.features import representations as R
from mirdl.pipelines.precompute import prepare
from mirdl.store.adapters import read_shard
from mirdl.store.manifest import read_manifest, shard_paths

SR = 16000
FRAMING = {"n_fft": 512, "hop_length": 256}
FOUR = [{"name": "logmel", "representation": "logmel", "sample_rate": SR, "params": {**FRAMING, "n_mels": 32}},
        {"name": "cqt", "representation": "cqt", "sample_rate": SR, "params": {"hop_length": 256, "n_bins": 60}},
        {"name": "chroma", "representation": "chroma_stft", "sample_rate": SR, "params": FRAMING},
        {"name": "mfcc", "representation": "mfcc", "sample_rate": SR, "params": {**FRAMING, "n_mels": 32}}]


def _config(folder, synth_corpus, out):
    rows = [f"{synth_corpus.root / t.path},{t.label},{t.artist}" for t in synth_corpus.tracks[:4]]
    (folder / "labels.csv").write_text("path,label,artist\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = {"name": "four", "seed": 1, "corpus": {"type": "csv", "csv": "labels.csv", "group_column": "artist"},
              "features": FOUR, "segment": {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.5, "pad": "silence"},
              "store": {"format": "hdf5", "out": out}}
    path = folder / f"{out}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _records(store):
    manifest = read_manifest(store)
    return {r["key"]: r for split in manifest["splits"] for path in shard_paths(store, manifest, split)
            for r in read_shard(path, manifest=manifest)}


@pytest.fixture(scope="module")
def stores(synth_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("four")
    with pytest.MonkeyPatch.context() as monkeypatch:  # the reference: every spec computed alone
        monkeypatch.setattr(R, "compute_many", lambda y, *, specs, block_frames=R.DEFAULT_BLOCK_FRAMES: {
            spec.name: R.compute(y, spec=spec, block_frames=block_frames) for spec in specs})
        assert prepare(_config(folder, synth_corpus, "alone"), workers=1, out=io.StringIO()) == 0
    assert prepare(_config(folder, synth_corpus, "shared"), workers=1, out=io.StringIO()) == 0
    return _records(folder / "alone"), _records(folder / "shared")


@pytest.mark.slow
def test_four_spec_store_holds_the_per_spec_numbers(stores):
    alone, shared = stores
    assert alone and sorted(alone) == sorted(shared)
    for key, record in shared.items():
        for name in ("logmel", "cqt", "mfcc"):
            np.testing.assert_array_equal(record[name], alone[key][name])  # same arithmetic, same machine
        np.testing.assert_allclose(record["chroma"], alone[key]["chroma"], rtol=1e-5, atol=1e-6)
