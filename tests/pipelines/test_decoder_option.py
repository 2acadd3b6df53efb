"""The prepare config's ``audio.decoder`` (fast | reference), end to end through ``mirdl prepare``.

A small folder corpus with an Ogg Opus file made by libopus and a WAV file: the store records
which decoders read it and the stated bound of the fast one (``provenance.decode``), the option is
part of the fingerprint, and the two modes' log-mel records agree within the bound.
"""
import contextlib
import io
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mirdl.cli import main  # noqa: E402
from mirdl.errors import ConfigError  # noqa: E402
from mirdl.features import synth  # noqa: E402
from mirdl.features.audio import OPUS_FAST_BOUND_DB, write_audio  # noqa: E402
from mirdl.pipelines.config import DEFAULT_DECODER, AudioConfig, PrepareConfig  # noqa: E402
from mirdl.store.adapters import read_shard  # noqa: E402
from mirdl.store.manifest import read_manifest, shard_paths  # noqa: E402

pytest.importorskip("av")


def write_config(folder, *, out, audio=None):
    config = {
        "name": "decoders",
        "corpus": {"type": "dir_per_class", "root": "corpus"},
        "splits": {"fractions": {"train": 1.0}},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": 22050,
                      "params": {"n_fft": 2048, "hop_length": 512, "n_mels": 128}}],
        "segment": {"mode": "clip", "patch_seconds": 1.0},
        "store": {"format": "hdf5", "out": out, "shard_bytes": "1MB"},
    }
    if audio is not None:
        config["audio"] = audio
    path = folder / f"{out}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoders")
    y = synth.synth_track(label=synth.CLASSES[0], rng=np.random.default_rng(0), sr=48000, duration=3.0,
                          channels=2).audio
    (root / "corpus" / "a").mkdir(parents=True)
    write_audio(root / "corpus" / "a" / "music.opus", y, sample_rate=48000, format="OGG", subtype="OPUS")
    write_audio(root / "corpus" / "a" / "pcm.wav", y, sample_rate=48000)
    return root


def prepare(config):
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["prepare", "--config", str(config), "--workers", "1"])


def records(store):
    manifest = read_manifest(store)
    return manifest, {r["track_id"]: r["logmel"] for path in shard_paths(store, manifest, "train")
                      for r in read_shard(path, manifest=manifest)}


@pytest.fixture(scope="module")
def stores(corpus):
    out = {}
    for mode in ("fast", "reference"):
        assert prepare(write_config(corpus, out=mode, audio={"decoder": mode})) == 0
        out[mode] = records(corpus / mode)
    return out


def test_provenance_records_the_decoders_used_and_the_bound(stores):
    fast = stores["fast"][0]["provenance"]["decode"]
    reference = stores["reference"][0]["provenance"]["decode"]
    assert fast == {"mode": "fast", "decoders_used": ["pyav_opus", "soundfile"], "opus_bound_db": OPUS_FAST_BOUND_DB}
    assert reference == {"mode": "reference", "decoders_used": ["soundfile"], "opus_bound_db": None}
    assert "pyav_opus" in stores["fast"][0]["provenance"]["decoders"]


def test_the_modes_have_other_fingerprints_and_records_within_the_bound(stores):
    (fast_manifest, fast), (ref_manifest, ref) = stores["fast"], stores["reference"]
    assert fast_manifest["fingerprint"] != ref_manifest["fingerprint"]
    for key in ref:
        diff = np.abs(ref[key].astype(np.float64) - fast[key])
        assert diff.max() <= OPUS_FAST_BOUND_DB["max"], key
        assert diff.mean() <= OPUS_FAST_BOUND_DB["mean"], key


def test_default_is_the_stated_default_and_reference_keeps_old_fingerprints(corpus):
    default = PrepareConfig.from_file(write_config(corpus, out="default"))
    reference = PrepareConfig.from_file(write_config(corpus, out="default", audio={"decoder": "reference"}))
    assert default.audio == AudioConfig(decoder=DEFAULT_DECODER)
    # Stores decoded before the option existed were decoded by the reference: their fingerprint stays.
    assert "audio" not in reference.fingerprint_payload()
    fast = PrepareConfig.from_file(write_config(corpus, out="default", audio={"decoder": "fast"}))
    assert fast.fingerprint_payload()["audio"] == {"decoder": "fast"}
    assert ("audio" in default.fingerprint_payload()) == (DEFAULT_DECODER != "reference")


def test_a_bad_decoder_names_the_field(corpus, capsys):
    with pytest.raises(ConfigError, match=r"audio.decoder='libopus' must be one of"):
        PrepareConfig.from_file(write_config(corpus, out="bad", audio={"decoder": "libopus"}))
    with pytest.raises(ConfigError, match=r"audio.speed"):
        PrepareConfig.from_file(write_config(corpus, out="bad", audio={"speed": 2}))
    assert main(["prepare", "--config", str(write_config(corpus, out="bad", audio={"decoder": "libopus"}))]) == 2
    assert "audio.decoder='libopus'" in capsys.readouterr().err
