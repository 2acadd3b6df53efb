"""The store card's plots: the bins keep their names (mel band centres as librosa computes them,
notes, pitch classes; used by both drawings), and the numpy drawing of mirdl.store.card_plots (PNG
bytes, magma, waveforms, frame labels, channels). The job's card end to end:
tests/pipelines/test_job_card_and_coders.py."""
from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest

from mirdl.store import summary


@pytest.mark.parametrize("htk,fmin,fmax", [(False, 0.0, None), (True, 30.0, 8000.0), (False, 50.0, 5000.0)])
def test_mel_bins_are_named_by_librosas_band_centres(htk, fmin, fmax):
    spec = {"representation": "logmel", "sample_rate": 22050,
            "params": {"n_mels": 40, "fmin": fmin, "fmax": fmax, "htk": htk}}
    label, names = summary._bin_names(spec, 40)
    centres = librosa.mel_frequencies(42, fmin=fmin, fmax=fmax or 11025.0, htk=htk)[1:-1]
    expected = [f"{f / 1000:.1f}k" if f >= 1000 else f"{f:.0f}" for f in centres]
    assert label.startswith("Hz") and names == expected


def test_cqt_chroma_and_stft_bins_are_named():
    _, notes = summary._bin_names({"representation": "cqt", "sample_rate": 22050, "params": {}}, 84)
    assert notes[0] == "C1" and notes[12] == "C2" and notes[57] == librosa.midi_to_note(24 + 57, unicode=False)
    _, classes = summary._bin_names({"representation": "chroma_stft", "sample_rate": 22050, "params": {}}, 12)
    assert classes[0] == "C" and classes[9] == "A"
    _, freqs = summary._bin_names({"representation": "stft", "sample_rate": 16000, "params": {"n_fft": 512}}, 257)
    assert freqs[1] == "31" and freqs[-1] == "8.0k"


# ------------------------------------------------------------------------------------------ numpy-drawn card plots
def test_png_bytes_read_back_as_the_same_pixels():
    import io

    from PIL import Image

    from mirdl.store.card_plots import png_bytes

    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 13, 3), dtype=np.uint8)
    image = Image.open(io.BytesIO(png_bytes(rgb)))
    assert image.mode == "RGB" and image.size == (13, 7)
    np.testing.assert_array_equal(np.asarray(image), rgb)


def test_colour_map_is_matplotlibs_magma():
    from matplotlib import colormaps

    from mirdl.store.card_plots import colour_map

    values = np.linspace(-80.0, 0.0, 256)
    ours = colour_map(values, vmin=-80.0, vmax=0.0).astype(int)
    theirs = np.round(colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(int)
    assert np.abs(ours - theirs).max() <= 3
    assert colour_map(np.array([-1e9, np.nan, 1e9]), vmin=0.0, vmax=1.0)[[0, 2]].tolist() == [[0, 0, 4],
                                                                                            [252, 253, 191]]


def _records(feature, shape, label, n=4):
    from mirdl.store.format import record_key

    rng = np.random.default_rng(0)
    return [{"key": record_key(track_id=f"t{i}", variant=0, segment=0), "track_id": f"t{i}", "variant": 0,
             "segment": 0, "start_frame": 0, feature: rng.standard_normal(shape).astype(np.float32),
             "label": label(i)} for i in range(n)]


def test_card_plots_of_waveforms_frame_labels_and_channels(tmp_path):
    from PIL import Image

    from mirdl.store.build import write_store
    from mirdl.store.card_plots import card_plots

    onset = {"type": "frame_onset", "label_shape": [400], "label_dtype": "float32", "n_outputs": 1,
             "vocabulary": ["onset"]}
    wave = {"wave": {"shape": [1, 400], "dtype": "float32", "axes": ["bin", "time"],
                     "spec": {"representation": "waveform", "sample_rate": 8000, "params": {}}}}
    write_store(tmp_path / "wave", {"train": _records("wave", (1, 400), lambda i: (np.arange(400) % (i + 2) == 0)
                                                      .astype(np.float32))},
                name="wave", store_format="hdf5", features=wave, task=onset, fingerprint="a" * 16, n_shards=1)
    (examples,) = [p for p in card_plots(tmp_path / "wave", tmp_path / "wave" / "p") if "examples" in p.path]
    assert "envelope over 0.05 s" in examples.caption and "frame label (frame_onset)" in examples.caption
    image = np.asarray(Image.open(tmp_path / "wave" / examples.path).convert("RGB"))
    assert image.shape[0] > 192 and (image != 255).any()  # the envelopes and the label strips below them

    task = {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": 2,
            "vocabulary": ["a", "b"]}
    stereo = {"logmel": {"shape": [2, 8, 10], "dtype": "float32", "axes": ["channel", "mel", "time"],
                         "spec": {"representation": "logmel", "sample_rate": 16000,
                                  "params": {"hop_length": 256, "n_mels": 8}}}}
    write_store(tmp_path / "stereo", {"train": _records("logmel", (2, 8, 10), lambda i: np.int64(i % 2))},
                name="stereo", store_format="parquet", features=stereo, task=task, fingerprint="b" * 16, n_shards=1)
    plots = {Path(p.path).name: p for p in card_plots(tmp_path / "stereo", tmp_path / "stereo" / "plots")}
    assert "time 0 to 0.16 s left to right (10 frames); 8 bins bottom to top" in plots["examples.png"].caption
    assert "| 1 | `a` | `t0` | 0 |" in plots["examples.png"].caption  # first channel of one record per class
    assert "| 2 | `b` | `t1` | 0 |" in plots["examples.png"].caption


@pytest.mark.parametrize("task_type", ["single_label", "multi_label"])
def test_examples_stop_reading_once_each_splits_classes_are_found(tmp_path, monkeypatch, task_type):
    """The card's examples are the first variant-0 record of each class in reading order (train
    first); the manifest's label counts let the scan stop a split early and skip a split whose
    classes are all found: the same records, a fraction of the reads."""
    from mirdl.store import adapters
    from mirdl.store.build import write_store
    from mirdl.store.manifest import read_manifest

    vocabulary = ["a", "b", "c"]
    task = {"type": task_type, "label_shape": [] if task_type == "single_label" else [3],
            "label_dtype": "int64" if task_type == "single_label" else "float32", "n_outputs": 3,
            "vocabulary": vocabulary}

    def label(cls):
        return np.int64(cls) if task_type == "single_label" else np.eye(3, dtype=np.float32)[cls]

    def records(prefix, classes, n):
        from mirdl.store.format import record_key

        rng = np.random.default_rng(len(prefix))
        return [{"key": record_key(track_id=f"{prefix}{i}", variant=variant, segment=0),
                 "track_id": f"{prefix}{i}", "variant": variant, "segment": 0, "start_frame": 0,
                 "x": rng.standard_normal((3, 4)).astype(np.float32), "label": label(classes[i % len(classes)])}
                for i in range(n) for variant in (1, 0)]  # an augmented variant read before each original

    features = {"x": {"shape": [3, 4], "dtype": "float32", "axes": ["bin", "time"],
                      "spec": {"representation": "logmel", "sample_rate": 16000,
                               "params": {"hop_length": 256, "n_mels": 3}}}}
    # train holds a and b only, test a only (nothing missing there: not read), valid c late.
    splits = {"train": records("t", [0, 1], 40), "test": records("s", [0], 10),
              "valid": records("v", [1, 1, 1, 1, 2, 0], 30)}
    store = tmp_path / "store"
    write_store(store, splits, name="s", store_format="hdf5", features=features, task=task, fingerprint="c" * 16,
                n_shards=2)
    manifest = read_manifest(store)

    def first_per_class():  # reading every record of every split, in the card's order
        found = {}
        for record in summary.iter_records(store):
            labels = [int(record["label"])] if task_type == "single_label" else np.flatnonzero(record["label"])
            for cls in labels:
                if record["variant"] == 0:
                    found.setdefault(vocabulary[cls], record["key"])
        return [(name, found[name]) for name in vocabulary if name in found]

    reads = []
    real = adapters.read_shard

    def counting(*args, **kwargs):
        for record in real(*args, **kwargs):
            reads.append(record["key"])
            yield record

    expected = first_per_class()
    monkeypatch.setattr(summary, "read_shard", counting)
    examples = summary._examples(store, manifest)
    assert [(name, record["key"]) for name, record in examples] == expected
    assert [name for name, _ in examples] == vocabulary
    total = sum(entry["records"] for entry in manifest["splits"].values())
    assert len(reads) < total // 2, (len(reads), total)
    assert not any(key.startswith("s") for key in reads)  # test: no class there still missing
    fast = len(reads)

    # Without label counts (a manifest that has none): every record is read, the same examples.
    for entry in manifest["splits"].values():
        entry.pop("label_counts")
    reads.clear()
    assert [(name, record["key"]) for name, record in summary._examples(store, manifest)] == expected
    assert len(reads) > fast + 80  # all of train (80 records) and test before valid's first c
