"""Store fixtures for tests/mirdl_tf: small stores of every format, built once per session.

Two kinds:

- ``known_store(fmt, ...)``: hand-made stores with *known answers*, written through the real
  store writer (:func:`mirdl.store.build.write_store`), with a manifest as the job writes it.
  Each record's feature encodes where it comes from: ``x[f, t] = start_frame + t + 1000 * f
  + 0.25 * variant`` and, for frame tasks, ``label[..., t] = start_frame + t`` (plus
  ``k / 4`` for row ``k`` of a 2-D frame label), so a crop's alignment is checkable exactly.
- ``job_store(fmt)``: stores written by the real job (``mirdl.pipelines.precompute.run``) from a
  tiny synthetic corpus (8 tracks x 2 s, 2 variants); skipped until the job is importable.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil  # noqa: E402
import string  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mirdl.store import format as store_format  # noqa: E402

FORMATS = ("tfrecord", "hdf5", "parquet")
#: Frame task used by the known-answer store of each format: covers (T,) float, (k, T) float, (T,) int labels.
FRAME_TASK_OF = {"tfrecord": "frame_onset", "hdf5": "frame_notes", "parquet": "frame_chords"}
N_FREQ, N_FRAMES = 6, 20


def _label(task_type: str, *, track: int, start_frame: int):
    frames = start_frame + np.arange(N_FRAMES)
    if task_type == "frame_onset":
        return frames.astype(np.float32), [N_FRAMES], "float32", 1
    if task_type == "frame_notes":
        return (frames[None, :] + 0.25 * np.arange(2)[:, None]).astype(np.float32), [2, N_FRAMES], "float32", 2
    if task_type == "frame_chords":
        return frames.astype(np.int64), [N_FRAMES], "int64", 25
    if task_type == "single_label":
        return np.int64(track % 3), [], "int64", 3
    if task_type == "multi_label":
        return np.eye(3, dtype=np.float32)[track % 3], [3], "float32", 3
    raise ValueError(task_type)


def write_known_store(root: Path, fmt: str, *, task_type: str, n_tracks: int = 6, n_variants: int = 2,
                      n_segments: int = 2, n_shards: int = 3, compression: str = "none") -> Path:
    """A store whose every number is known (see the module docstring); returns its directory."""
    from mirdl.store.build import write_store

    feature = {"shape": [N_FREQ, N_FRAMES], "dtype": "float32"}
    records = []
    for track in range(n_tracks):
        for variant in range(n_variants):
            for segment in range(n_segments):
                start = segment * N_FRAMES
                x = (start + np.arange(N_FRAMES))[None, :] + 1000.0 * np.arange(N_FREQ)[:, None] + 0.25 * variant
                label, label_shape, label_dtype, n_outputs = _label(task_type, track=track, start_frame=start)
                track_id = f"synth/t{track:03d}"
                records.append({
                    "key": store_format.record_key(track_id=track_id, variant=variant, segment=segment),
                    "track_id": track_id, "variant": variant, "segment": segment, "start_frame": start,
                    "logmel": x.astype(np.float32), "label": label,
                })
    task = {"type": task_type, "label_shape": label_shape, "label_dtype": label_dtype, "n_outputs": n_outputs,
            "vocabulary": [f"c{i}" for i in range(n_outputs)]}
    stacked = np.stack([r["logmel"] for r in records if r["variant"] == 0])
    feature["stats"] = {"mean": stacked.mean(axis=(0, 2)).tolist(), "std": stacked.std(axis=(0, 2)).tolist()}
    write_store(root, {"train": records}, name="known", store_format=fmt, features={"logmel": feature}, task=task,
                fingerprint=f"known-{fmt}-{task_type}", n_shards=n_shards, compression=compression, overwrite=True,
                augment={"n_variants": n_variants})
    return root


@pytest.fixture(scope="session")
def known_store(tmp_path_factory):
    """``known_store(fmt, task_type=None, **kw)`` -> path of a known-answer store (cached per session)."""
    cache: dict[tuple, Path] = {}
    base = tmp_path_factory.mktemp("known-stores")

    def make(fmt: str, task_type: str | None = None, **kwargs) -> Path:
        task_type = task_type or FRAME_TASK_OF[fmt]
        key = (fmt, task_type, tuple(sorted(kwargs.items())))
        if key not in cache:
            name = "-".join([fmt, task_type, *(f"{k}{v}" for k, v in sorted(kwargs.items()))])
            cache[key] = write_known_store(base / name, fmt, task_type=task_type, **kwargs)
        return cache[key]

    return make


@pytest.fixture
def store_copy(tmp_path):
    """``store_copy(store)`` -> a private copy of a store that a test may damage."""
    def copy(store: Path) -> Path:
        return Path(shutil.copytree(store, tmp_path / Path(store).name))

    return copy


@pytest.fixture(scope="session")
def job_store(tmp_path_factory):
    """``job_store(fmt)`` -> a store written by the real precompute job (cached per session)."""
    precompute = pytest.importorskip("mirdl.pipelines.precompute", reason="mirdl.pipelines.precompute (the job) is not importable")
    synth = pytest.importorskip("mirdl.features.synth")
    base = tmp_path_factory.mktemp("job-stores")
    corpus = base / "corpus"
    synth.write_corpus(corpus, n_tracks=8, seed=0, duration=2.0)
    cache: dict[str, Path] = {}

    def make(fmt: str) -> Path:
        if fmt not in cache:
            cache[fmt] = run_job(precompute, corpus=corpus, out=base / f"store-{fmt}", fmt=fmt)
        return cache[fmt]

    return make


def run_job(precompute, *, corpus: Path, out: Path, fmt: str) -> Path:
    """Run ``mirdl prepare`` (in this process) on ``corpus`` into ``out`` in ``fmt``; returns the store."""
    config = out.parent / f"prepare-{fmt}.yaml"
    text = string.Template(_JOB_COMMON + JOB_CONFIGS[fmt][1])
    config.write_text(text.substitute(corpus=corpus, out=out, fmt=fmt, compression=JOB_CONFIGS[fmt][0]),
                      encoding="utf-8")
    status = precompute.run(["--config", str(config), "--workers", "1"])
    assert status == 0, f"prepare failed with status {status}"
    return out


_JOB_COMMON = """\
name: job_$fmt
seed: 0
splits: {fractions: {train: 0.75, valid: 0.25}, group_by: track}
augment: {n_variants: 2, time_stretch_rate: null, pitch_shift_steps: null, eq_max_gain_db: null,
          noise_snr_db: [20, 30]}
store: {format: $fmt, out: $out, shard_bytes: 96KB, compression: $compression}
"""
_LOGMEL = ("{name: logmel, representation: logmel, sample_rate: 16000, "
           "params: {n_fft: 512, hop_length: 256, n_mels: 32}}")
#: Per format: compression and the rest of the config. Each is a different task, so the real
#: stores cover clip labels (TFRecord, GZIP), frame labels (HDF5, gzip) and two features
#: with multi-hot labels (Parquet, zstd).
JOB_CONFIGS = {
    "tfrecord": ("gzip", f"""\
corpus: {{type: csv, csv: $corpus/labels.csv, path_column: path, label_column: label}}
features: [{_LOGMEL}]
segment: {{mode: clip, patch_seconds: 1.0, hop_seconds: 0.5, pad: silence}}
"""),
    "hdf5": ("gzip", f"""\
corpus: {{type: annotations, csv: $corpus/annotations.csv, annotation_column: onsets, annotation_kind: onsets}}
features: [{_LOGMEL}]
segment: {{mode: frames, window_seconds: 1.0, hop_seconds: 0.5, pad: silence, onset_widen: 1}}
"""),
    "parquet": ("zstd", f"""\
corpus: {{type: csv_tags, csv: $corpus/tags.csv, tags_column: tags, tag_separator: ";"}}
features:
  - {_LOGMEL}
  - {{name: mfcc, representation: mfcc, sample_rate: 16000, params: {{n_fft: 512, hop_length: 256, n_mfcc: 13}}}}
segment: {{mode: clip, patch_seconds: 1.0, hop_seconds: 0.5, pad: wrap}}
"""),
}
