"""The job's fixed costs cut without changing a byte: a store written with the librosa-free
window / mel bank / dB (features.representations) has the shards and manifest of one written
through librosa's own functions, and the card's plots are drawn without pyplot or librosa.display."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import librosa
import pytest

from mirdl.features import representations as R
from mirdl.pipelines.precompute import prepare

# Manifest fields that differ between any two runs (time, the run's own command line).
_RUN_FIELDS = ("created", "provenance", "command")


def _config(folder, synth_corpus, out):
    rows = [f"{synth_corpus.root / t.path},{t.label},{t.artist}" for t in synth_corpus.tracks[:6]]
    (folder / "labels.csv").write_text("path,label,artist\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = {
        "name": "cheap", "seed": 1,
        "corpus": {"type": "csv", "csv": "labels.csv", "group_column": "artist"},
        "splits": {"fractions": {"train": 0.6, "valid": 0.2, "test": 0.2}, "group_by": "track"},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": 16000,
                      "params": {"n_fft": 512, "hop_length": 256, "n_mels": 32}},
                     {"name": "stft", "representation": "stft", "sample_rate": 16000,
                      "params": {"n_fft": 256, "hop_length": 256, "win_length": 200}}],
        "segment": {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.25, "pad": "silence"},
        "store": {"format": "tfrecord", "out": out, "shard_bytes": "32KB"},
    }
    path = folder / f"{out}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _librosa_helpers(monkeypatch):
    """The reference path: librosa's get_window / filters.mel / power_to_db, as main computed them."""
    monkeypatch.setattr(R, "_slaney_mel_filters", lambda **kwargs: None)
    monkeypatch.setattr(R, "_periodic_hann", lambda n: librosa.filters.get_window("hann", n, fftbins=True))
    monkeypatch.setattr(R, "_power_to_db",
                        lambda S, *, amin, top_db: librosa.power_to_db(S, ref=1.0, amin=amin, top_db=top_db))


def _clear():
    R._fft_window.cache_clear()
    R._mel_basis.cache_clear()


@pytest.fixture(scope="module")
def stores(synth_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cheap")
    built = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        _librosa_helpers(monkeypatch)
        _clear()
        assert prepare(_config(folder, synth_corpus, "reference"), workers=1, out=io.StringIO()) == 0
    _clear()
    assert prepare(_config(folder, synth_corpus, "fast"), workers=1, out=io.StringIO()) == 0
    for name in ("reference", "fast"):
        built[name] = folder / name
    return built


def _shards_and_manifest(store):
    manifest = json.loads((store / "manifest.json").read_text())
    shards = [(s["path"], s["sha256"], s["bytes"]) for split in manifest["splits"].values() for s in split["shards"]]
    content = {key: value for key, value in manifest.items() if key not in _RUN_FIELDS}
    content.pop("store_path", None)
    return shards, content


def test_store_is_byte_identical_to_the_librosa_path(stores):
    ref_shards, ref_manifest = _shards_and_manifest(stores["reference"])
    fast_shards, fast_manifest = _shards_and_manifest(stores["fast"])
    assert ref_shards and [s[1:] for s in fast_shards] == [s[1:] for s in ref_shards]
    for shard_ref, shard_fast in zip(ref_shards, fast_shards):  # the files themselves, not only the manifest
        assert (stores["reference"] / shard_ref[0]).read_bytes() == (stores["fast"] / shard_fast[0]).read_bytes()
    assert json.dumps(fast_manifest, sort_keys=True).replace("fast", "X") == \
        json.dumps(ref_manifest, sort_keys=True).replace("reference", "X")


def test_card_plots_import_neither_pyplot_nor_librosa_display(stores, tmp_path):
    code = ("import sys\nfrom mirdl.store import summary\n"
            f"paths = summary.plot({str(stores['fast'])!r}, {str(tmp_path / 'plots')!r})\n"
            "print(sorted(p.name for p in paths))\n"
            "print(sorted(m for m in ('matplotlib.pyplot', 'librosa.display', 'librosa.core', 'numba') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    drawn, imported = out.stdout.strip().splitlines()
    assert drawn == "['durations.png', 'examples.png', 'labels.png']"
    assert imported == "[]"
    assert sorted(p.name for p in (stores["fast"] / "plots").iterdir()) == ["durations.png", "examples.png",
                                                                           "labels.png"]
