"""End to end through ``mirdl prepare`` (``mirdl.cli.main``): what the job does with the inputs a corpus holds.

Files made by real encoders (libvorbis, libopus, FFmpeg's AAC) in a ``dir_per_class`` folder, with
one cut Ogg file, one Opus file whose header is a little longer than its audio, and files that are
not audio; then a CSV corpus with a duplicated row. Checked: what reaches the store, the records
in ``errors.jsonl`` and their severities, the exit status and ``--max-error-rate``.
"""
import contextlib
import io
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mirdl.cli import main  # noqa: E402
from mirdl.features import ogg  # noqa: E402
from mirdl.features.audio import write_audio  # noqa: E402
from mirdl.features.synth import write_pyav  # noqa: E402
from mirdl.pipelines.dead_letter import ErrorRecord  # noqa: E402
from mirdl.store.adapters import read_shard  # noqa: E402
from mirdl.store.manifest import read_manifest, shard_paths  # noqa: E402

SR = 16000


def chirp(sr, seconds=1.5):
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * (300.0 * t + 200.0 * t**2))
            + 0.02 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


def with_longer_header(path, frames):
    """Raise the last page's granule position by ``frames`` (checksum redone): a header longer than the audio."""
    data = bytearray(path.read_bytes())
    with open(path, "rb") as handle:
        page = list(ogg.iter_pages(handle))[-1]
    ogg.set_page_fields(data, page, granule=page.granule + frames)
    path.write_bytes(bytes(data))


def write_config(folder, corpus, *, out):
    config = {
        "name": "inputs",
        "seed": 0,
        "corpus": corpus,
        "splits": {"fractions": {"train": 1.0}},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": SR,
                      "params": {"n_fft": 512, "hop_length": 256, "n_mels": 16}}],
        "augment": {"n_variants": 1},
        "segment": {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.5, "pad": "silence"},
        "store": {"format": "hdf5", "out": out, "shard_bytes": "1MB"},
    }
    path = folder / f"{out}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def stored_tracks(store):
    manifest = read_manifest(store)
    return manifest, sorted({record["track_id"] for split in manifest["splits"]
                             for path in shard_paths(store, manifest, split)
                             for record in read_shard(path, manifest=manifest)})


@pytest.fixture(scope="module")
def folder_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs") / "corpus"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
    write_audio(root / "a" / "pcm.wav", chirp(22050), sample_rate=22050)
    write_audio(root / "a" / "vorbis.oga", chirp(44100), sample_rate=44100, format="OGG", subtype="VORBIS")
    write_pyav(root / "a" / "aac.m4a", chirp(44100), sample_rate=44100, codec="aac")
    write_audio(root / "b" / "lossless.flac", chirp(16000), sample_rate=16000)
    write_pyav(root / "b" / "longer.opus", chirp(48000), sample_rate=48000, codec="libopus")
    with_longer_header(root / "b" / "longer.opus", 4800)  # 0.1 s: within the tolerance, a warning
    write_audio(root / "b" / "cut.ogg", chirp(44100, seconds=3.0), sample_rate=44100, format="OGG",
                subtype="VORBIS")
    with open(root / "b" / "cut.ogg", "rb") as handle:
        last_page = list(ogg.iter_pages(handle))[-1]
    (root / "b" / "cut.ogg").write_bytes((root / "b" / "cut.ogg").read_bytes()[:last_page.offset])
    (root / "b" / "README.txt").write_text("where these came from")
    (root / "a" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


@pytest.fixture(scope="module")
def folder_run(folder_corpus):
    """(exit status, stdout, store) of one run with --max-error-rate 0.2: 1 of 6 files fails, which is
    below it only if the warning and the 2 skipped files are not counted as failures."""
    config = write_config(folder_corpus.parent, {"type": "dir_per_class", "root": "corpus"}, out="store")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["prepare", "--config", str(config), "--workers", "1", "--max-error-rate", "0.2"])
    return status, out.getvalue(), folder_corpus.parent / "store"


def test_every_decodable_format_reaches_the_store(folder_run):
    status, _, store = folder_run
    assert status == 3  # one file failed
    manifest, track_ids = stored_tracks(store)
    assert track_ids == ["a/aac", "a/pcm", "a/vorbis", "b/longer", "b/lossless"]
    # Six audio files listed, one failed: the skipped files and the warning do not count.
    assert (manifest["corpus"]["files"], manifest["corpus"]["failed"]) == (6, 1)
    assert manifest["errors"]["failed_files"] == 1 and manifest["errors"]["by_stage"] == {"decode": 1}


def test_errors_jsonl_has_the_error_the_warning_and_the_skipped_files(folder_run, folder_corpus):
    _, stdout, store = folder_run
    records = [ErrorRecord.from_json(line) for line in (store / "errors.jsonl").read_text().splitlines()]
    summary = sorted((os.path.relpath(r.path, folder_corpus), r.stage, r.severity, r.error_type) for r in records)
    assert summary == [
        ("a/.DS_Store", "list", "skipped", "Skipped"),
        ("b/README.txt", "list", "skipped", "Skipped"),
        ("b/cut.ogg", "decode", "error", "AudioError"),
        ("b/longer.opus", "decode", "warning", "AudioWarning"),
    ]
    by_path = {os.path.basename(r.path): r for r in records}
    assert "truncated" in by_path["cut.ogg"].reason and "end-of-stream" in by_path["cut.ogg"].reason
    assert "fewer than the OGG header declares" in by_path["longer.opus"].reason
    assert "6 tracks listed (0 rejected, 2 skipped)" in stdout


def test_duplicated_csv_row_is_one_error_record_and_the_job_goes_on(folder_corpus, capsys):
    rows = ["path,label", "a/pcm.wav,x", "b/lossless.flac,y", "a/pcm.wav,x"]
    (folder_corpus / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = write_config(folder_corpus.parent, {"type": "csv", "csv": "corpus/labels.csv"}, out="store-csv")
    assert main(["prepare", "--config", str(config), "--workers", "1"]) == 3
    store = folder_corpus.parent / "store-csv"
    _, track_ids = stored_tracks(store)
    assert track_ids == ["a/pcm", "b/lossless"]
    records = [ErrorRecord.from_json(line) for line in (store / "errors.jsonl").read_text().splitlines()]
    csv_path = folder_corpus / "labels.csv"
    assert [(r.path, r.track_id, r.stage, r.severity) for r in records] == [(f"{csv_path}:4", "a/pcm", "list", "error")]
    assert "already listed on line 2" in records[0].reason


def test_background_recordings_use_the_decoders_extensions(folder_corpus, tmp_path):
    from mirdl.pipelines.config import PrepareConfig

    backgrounds = tmp_path / "backgrounds"
    backgrounds.mkdir()
    for name in ("rain.m4a", "cafe.oga", "street.wav", "notes.txt", ".hidden.wav"):
        (backgrounds / name).write_bytes(b"x")
    config = json.loads(write_config(folder_corpus.parent, {"type": "dir_per_class", "root": "corpus"},
                                     out="unused").read_text())
    config["augment"] = {"n_variants": 2, "background_dir": str(backgrounds), "background_snr_db": [5, 20]}
    path = folder_corpus.parent / "backgrounds.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    names = [os.path.basename(p) for p in PrepareConfig.from_file(path).background_files()]
    assert names == ["cafe.oga", "rain.m4a", "street.wav"]
