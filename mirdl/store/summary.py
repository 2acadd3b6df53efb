"""Look inside a store: a text summary of its manifest, example plots, an integrity check.

:func:`summary` needs only ``manifest.json`` and ``errors.jsonl``; :func:`plot` reads a few
records (:func:`mirdl.store.adapters.read_shard`) for one example spectrogram per class and
draws the label distribution and track durations from the manifest. The integrity check is
the store layer's :func:`mirdl.store.verify.verify`. matplotlib (Agg figures: not pyplot, not
librosa.display) is imported only by :func:`plot`.

Examples
--------
>>> print(summary("stores/demo"))  # doctest: +SKIP
store demo: hdf5, 5 shards, 0.40 MB, created 2025-01-01T00:00:00+00:00 by mirdl 0.1.0
...
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mirdl.store.dead_letter import ErrorRecord
from mirdl.store.adapters import read_shard
from mirdl.store.files import filesystem_for, is_remote
from mirdl.store.manifest import read_manifest, shard_paths
from mirdl.store.remote import fetched

__all__ = ["summary", "plot", "plot_label_counts", "iter_records", "example_images", "label_counts", "MAX_SCAN_RECORDS", "SKEWED_RATIO", "PLOT_DPI"]

#: Records :func:`plot` reads at most while looking for one example per class.
MAX_SCAN_RECORDS = 5000
_FIRST_REASONS = 5
_VOCABULARY_SHOWN = 12

def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.2f} MB"


_COUNTS_SHOWN = 30
_COUNT_UNITS = {"single_label": "records", "multi_label": "records", "frame_onset": "positive frames",
                "frame_notes": "positive frames", "frame_chords": "frames"}


def _label_count_lines(task: dict[str, Any], splits: dict[str, Any]) -> list[str]:
    """Per-class (tag, pitch, chord) counts per split, from the manifest's ``label_counts``."""
    vocabulary = task.get("vocabulary") or []
    counted = {split: entry.get("label_counts") for split, entry in splits.items()}
    counted = {split: counts for split, counts in counted.items() if counts is not None}
    if not counted or not vocabulary:
        return []
    width = max(12, *(len(str(name)) + 2 for name in vocabulary[:_COUNTS_SHOWN]))
    lines = [f"{_COUNT_UNITS.get(task['type'], 'count')} per class:",
             f"  {'class':<{width}}" + "".join(f"{split:>10}" for split in counted)]
    order = sorted(range(len(vocabulary)), key=lambda i: -sum(counts[i] for counts in counted.values()))
    for i in order[:_COUNTS_SHOWN]:
        lines.append(f"  {str(vocabulary[i]):<{width}}" + "".join(f"{counts[i]:>10}" for counts in counted.values()))
    if len(order) > _COUNTS_SHOWN:
        lines.append(f"  ... {len(order) - _COUNTS_SHOWN} more (least frequent)")
    return lines


def summary(store: str | os.PathLike, *, first_reasons: int = _FIRST_REASONS) -> str:
    """A readable summary of a store: contents, splits, features, task, errors.

    Parameters
    ----------
    store : path-like or str
        A store folder or an ``s3://``/``gs://`` URL.
    first_reasons : int
        Error records shown (from ``errors.jsonl``).

    Returns
    -------
    str
    """
    m = read_manifest(store)
    splits = m["splits"]
    n_shards = sum(len(entry["shards"]) for entry in splits.values())
    total = sum(entry.get("bytes", 0) for entry in splits.values())
    lines = [
        f"store {m['name']}: {m['format']} (compression {m.get('compression', 'none')}), {n_shards} shards, "
        f"{_megabytes(total)}, created {m.get('created', '?')} by mirdl {m.get('mirdl_version', '?')}",
        f"fingerprint {m.get('fingerprint', '?')}, format_version {m['format_version']}",
    ]
    task = m["task"]
    vocabulary = task.get("vocabulary") or []
    shown = ", ".join(vocabulary[:_VOCABULARY_SHOWN]) + (", ..." if len(vocabulary) > _VOCABULARY_SHOWN else "")
    lines.append(f"task {task['type']}: {task.get('n_outputs')} outputs [{shown}]; "
                 f"label shape {task.get('label_shape')} {task.get('label_dtype')}")
    lines.append("features:")
    for name, entry in m["features"].items():
        spec = entry.get("spec", {})
        params = spec.get("params", {})
        hop = f", hop {params['hop_length']}" if "hop_length" in params else ""
        stats = entry.get("stats")
        stats_text = f"; stats on {stats.get('split', '?')} ({stats.get('frames', '?')} frames)" if stats else "; no stats"
        lines.append(f"  {name:<12} {entry['shape']} {entry['dtype']} ({', '.join(entry.get('axes', []))}): "
                     f"{spec.get('representation')} at {spec.get('sample_rate')} Hz{hop}{stats_text}")
    segment = m.get("segment", {})
    if segment:
        seconds = segment.get("patch_seconds", segment.get("window_seconds"))
        lines.append(f"segment {segment['mode']}: {seconds} s, hop {segment['hop_seconds']} s, pad {segment['pad']} "
                     f"({segment.get('patch_frames')} frames, hop {segment.get('hop_frames')} frames)")
    augment = m.get("augment", {})
    if augment:
        lines.append(f"augment: {augment.get('n_variants')} variant(s) per track (0 = clean), "
                     f"fingerprint {augment.get('fingerprint')}")
    lines.append(f"  {'split':<10}{'tracks':>8}{'records':>10}{'shards':>8}{'MB':>10}")
    for split, entry in splits.items():
        lines.append(f"  {split:<10}{entry.get('tracks', 0):>8}{entry['records']:>10}{len(entry['shards']):>8}"
                     f"{entry.get('bytes', 0) / 1e6:>10.2f}")
    lines += _label_count_lines(task, splits)
    corpus = m.get("corpus", {})
    if corpus:
        lines.append(f"corpus {corpus.get('type')}: {corpus.get('files')} files, {corpus.get('tracks')} tracks in "
                     f"the store, {corpus.get('failed')} failed, {corpus.get('audio_seconds', 0) / 3600:.3f} h of "
                     f"audio; listing sha256 {str(corpus.get('listing_sha256'))[:16]}")
    for warning in corpus.get("split_warnings") or []:
        lines.append(f"  warning: {warning}")
    errors = m.get("errors", {})
    count = errors.get("count", 0)
    by_stage = ", ".join(f"{stage} {n}" for stage, n in errors.get("by_stage", {}).items())
    lines.append(f"errors: {count}" + (f" ({by_stage}) in {errors.get('file')}" if count else ""))
    if count:
        filesystem, root = filesystem_for(store)
        name = errors.get("file", "errors.jsonl")
        data = filesystem.read_bytes(root / name if isinstance(root, Path) else f"{root}/{name}")
        for line in itertools.islice((data or b"").decode("utf-8").splitlines(), first_reasons):
            error = ErrorRecord.from_json(line)
            lines.append(f"  [{error.stage}] {error.path}: {error.reason}")
        if count > first_reasons:
            lines.append(f"  ... {count - first_reasons} more")
    return "\n".join(lines)


def iter_records(store: str | os.PathLike, *, splits: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every record of ``splits`` (default: train first, then the others), shard by shard (a
    store on object storage: each shard fetched to a temporary file while it is read)."""
    manifest = read_manifest(store)
    names = splits or sorted(manifest["splits"], key=lambda split: (split != "train", split))
    for split in names:
        for path in shard_paths(store, manifest, split):
            with fetched(str(path)) as local:
                yield from read_shard(local, manifest=manifest)


def _examples(store: Path, manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(title, record) pairs: one clean record per class / tag, or the first few for other tasks.

    Per class, the first record of variant 0 in the order :func:`iter_records` reads (train
    first), among the first :data:`MAX_SCAN_RECORDS`. A split's ``label_counts`` (the manifest's
    count of every record's classes) tell which classes it holds: its scan stops once those are
    found, and a split holding none still missing is not read (the same records are picked).
    """
    task = manifest["task"]
    vocabulary = task.get("vocabulary") or []
    per_class = task["type"] in ("single_label", "multi_label")
    wanted = len(vocabulary) if per_class else 4
    found: dict[str, dict[str, Any]] = {}
    budget = MAX_SCAN_RECORDS
    for split in sorted(manifest["splits"], key=lambda split: (split != "train", split)):
        counts = manifest["splits"][split].get("label_counts") if per_class else None
        held = None if counts is None else {vocabulary[i] for i, n in enumerate(counts) if n > 0}
        if held is not None and held <= found.keys():
            continue
        for record in itertools.islice(iter_records(store, splits=[split]), budget):
            budget -= 1
            if record["variant"] != 0:
                continue
            label = np.asarray(record["label"])
            if task["type"] == "single_label":
                names = [vocabulary[int(label)]]
            elif task["type"] == "multi_label":
                names = [vocabulary[i] for i in np.flatnonzero(label)]
            else:
                names = [record["key"]]
            for name in names:
                found.setdefault(name, record)
            if len(found) >= wanted or (held is not None and held <= found.keys()):
                break
        if len(found) >= wanted or budget <= 0:
            break
    order = vocabulary if per_class else list(found)
    return [(name, found[name]) for name in order if name in found]


def example_images(store: str | os.PathLike, manifest: dict[str, Any]
                   ) -> tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]], list[np.ndarray]] | None:
    """What the example plots draw: ``(feature name, its spec, (title, record) pairs, one 2-D
    float32 image per record (bins x frames; the first channel of a multi-channel feature))``, or
    None when the store's feature has no time axis to draw (a vector per track) or no records."""
    feature_name = manifest.get("segment", {}).get("grid_feature") or next(iter(manifest["features"]))
    entry = manifest["features"][feature_name]
    if "time" not in (entry.get("axes") or ["time"]) or "spec" not in entry \
            or entry["spec"].get("representation") == "transfer":
        return None  # a vector per track (transfer features): nothing to draw as a spectrogram
    examples = _examples(store, manifest)
    if not examples:
        return None
    images = [np.asarray(record[feature_name], dtype=np.float32) for _, record in examples]
    images = [x.reshape(-1, x.shape[-1]) if "channel" not in entry.get("axes", []) else x[0] for x in images]
    return feature_name, entry["spec"], examples, images


def plot(store: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write PNGs: ``examples.png`` (one spectrogram per class), ``labels.png`` (label
    distribution per split), ``durations.png`` (track-duration histogram). Returns their paths."""
    store, out_dir = (store if is_remote(store) else Path(store)), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(store)
    written = []
    for name, draw in (("examples.png", _plot_examples), ("labels.png", _plot_labels),
                       ("durations.png", _plot_durations)):
        figure = draw(_AGG, store, manifest)
        if figure is None:
            continue
        path = out_dir / name
        # One draw: the constrained layout already fits every label inside the figure, so no
        # bbox_inches="tight" (which draws the whole figure a second time to measure it).
        figure.savefig(path, dpi=PLOT_DPI)
        written.append(path)
    return written


#: Resolution of the store card's PNGs.
PLOT_DPI = 100


class _AggFigures:
    """``subplots`` as pyplot has it, on plain Agg figures: no pyplot import (0.6 s), no
    global figure registry to close, whatever backend the caller's process uses."""

    @staticmethod
    def subplots(*args: Any, figsize: tuple[float, float] | None = None, layout: str | None = None,
                 **kwargs: Any):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=figsize, layout=layout)
        FigureCanvasAgg(figure)
        return figure, figure.subplots(*args, **kwargs)


_AGG = _AggFigures()


_DB_REPRESENTATIONS = ("logmel", "stft", "cqt")


def _plot_examples(plt, store: Path, manifest: dict[str, Any]):
    from matplotlib.ticker import MaxNLocator

    found = example_images(store, manifest)
    if found is None:
        return None
    feature_name, spec, examples, images = found
    frame_task = manifest["task"]["type"].startswith("frame_")
    rows = 2 if frame_task else 1
    figure, axes = plt.subplots(rows, len(examples), figsize=(3.2 * len(examples) + 0.6, 2.8 * rows), squeeze=False,
                                layout="constrained")
    # One colour scale for every example (one colour bar): the classes compare at a glance, and
    # the figure has half the axes to lay out.
    low = min(float(np.min(x)) for x in images)
    high = max(float(np.max(x)) for x in images)
    image = None
    for column, ((title, record), x) in enumerate(zip(examples, images)):
        axis = axes[0, column]
        if spec["representation"] == "waveform":
            axis.plot(x[0], linewidth=0.5)
        else:
            image = _spectrogram(axis, x, spec, vmin=low, vmax=high)
            axis.yaxis.set_major_locator(MaxNLocator(5, integer=True))
            if column:
                axis.set_ylabel("")
        heading = f"{record['track_id']} #{record['segment']}"
        axis.set_title(heading if title == record["key"] else f"{title}\n{heading}", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.xaxis.set_major_locator(MaxNLocator(4))
        if frame_task:
            label = np.asarray(record["label"])
            if label.ndim == 2:
                axes[1, column].imshow(label, aspect="auto", origin="lower", interpolation="nearest")
            else:
                axes[1, column].step(np.arange(label.shape[-1]), label, where="mid")
            axes[1, column].set_title("label", fontsize=8)
            axes[1, column].tick_params(labelsize=7)
    if image is not None:
        in_db = spec["representation"] in _DB_REPRESENTATIONS and spec["params"].get("log", True)
        bar = figure.colorbar(image, ax=list(axes[0]), format="%+.0f dB" if in_db else None, pad=0.01,
                              fraction=0.05 / max(1, len(examples)) ** 0.5)
        bar.ax.tick_params(labelsize=6)
    figure.suptitle(f"{manifest['name']}: {feature_name}, clean variant")
    return figure


_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _bin_names(spec: dict[str, Any], n_bins: int) -> tuple[str, list[str]]:
    """The y axis of a feature: its label and one name per bin (centre frequency in Hz, note or
    pitch class, coefficient), from the spec alone (matplotlib only: no librosa.display, whose
    import and coordinate helpers cost the job ~1 s)."""
    params, sr = spec.get("params", {}), spec.get("sample_rate", 22050)
    representation = spec.get("representation")

    def hz(values):
        return [f"{f / 1000:.1f}k" if f >= 1000 else f"{f:.0f}" for f in values]

    if representation in ("mel", "logmel"):
        fmin, fmax = float(params.get("fmin", 0.0)), float(params.get("fmax") or sr / 2)
        if params.get("htk", False):
            to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
            to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
        else:  # Slaney's mel scale: linear below 1 kHz, logarithmic above
            step, log_step = 200.0 / 3, np.log(6.4) / 27.0
            to_mel = lambda f: np.where(f >= 1000, 15.0 + np.log(np.maximum(f, 1e-9) / 1000) / log_step,  # noqa: E731
                                        f / step)
            to_hz = lambda m: np.where(m >= 15.0, 1000 * np.exp(log_step * (m - 15.0)), m * step)  # noqa: E731
        centres = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_bins + 2))[1:-1]
        return "Hz (mel bands)", hz(centres)
    if representation == "stft":
        return "Hz", hz(np.arange(n_bins) * sr / params.get("n_fft", 2 * (n_bins - 1)))
    if representation == "cqt":
        fmin, per_octave = float(params.get("fmin", 32.70319566257483)), int(params.get("bins_per_octave", 12))
        midi = 69 + 12 * np.log2(fmin * 2.0 ** (np.arange(n_bins) / per_octave) / 440.0)
        return "note", [f"{_NOTE_NAMES[int(round(m)) % 12]}{int(round(m)) // 12 - 1}" for m in midi]
    if representation in ("chroma_stft", "chroma_cqt") and n_bins == 12:
        return "pitch class", list(_NOTE_NAMES)
    return "bin", [str(i) for i in range(n_bins)]


def _spectrogram(axis, x: np.ndarray, spec: dict[str, Any], *, vmin: float, vmax: float):
    """``x`` (bins, frames) as an image: time in seconds across, the bins' names up."""
    from matplotlib.ticker import FuncFormatter

    n_bins, n_frames = x.shape
    seconds = n_frames * spec.get("params", {}).get("hop_length", 512) / spec.get("sample_rate", 22050)
    image = axis.imshow(x, origin="lower", aspect="auto", interpolation="nearest", cmap="magma", vmin=vmin,
                        vmax=vmax, extent=(0.0, seconds, -0.5, n_bins - 0.5))
    label, names = _bin_names(spec, n_bins)
    axis.yaxis.set_major_formatter(FuncFormatter(
        lambda value, _: names[int(round(value))] if 0 <= round(value) < len(names) else ""))
    axis.set_ylabel(label, fontsize=7)
    axis.set_xlabel("time (s)", fontsize=7)
    return image


def label_counts(manifest: dict[str, Any]) -> tuple[list[str], dict[str, list[int]]] | None:
    """``(vocabulary, split -> counts per class)`` of the splits whose manifest entry has label
    counts, or None when there is no vocabulary or no counts to draw."""
    vocabulary = manifest["task"].get("vocabulary") or []
    splits = {split: entry.get("label_counts") for split, entry in manifest["splits"].items()}
    splits = {split: counts for split, counts in splits.items() if counts}
    return (vocabulary, splits) if splits and vocabulary else None


def _plot_labels(plt, store: Path, manifest: dict[str, Any]):
    task = manifest["task"]
    found = label_counts(manifest)
    if found is None:
        return None
    vocabulary, splits = found
    return plot_label_counts(plt, vocabulary, splits, title=f"{manifest['name']}: label distribution ({task['type']})",
                             unit="records" if task["type"] in ("single_label", "multi_label") else "frames")


#: Largest / smallest positive count from which :func:`plot_label_counts` uses a log scale.
SKEWED_RATIO = 10


def plot_label_counts(plt, vocabulary: list[str], splits: dict[str, list[int]], *, title: str, unit: str):
    """Bars of counts per class and split, each labelled with its count; log scale when the
    largest positive count is at least :data:`SKEWED_RATIO` times the smallest. Returns the figure."""
    positions = np.arange(len(vocabulary))
    width = 0.8 / len(splits)
    figure, axis = plt.subplots(figsize=(max(6.0, 0.35 * len(vocabulary) * len(splits) ** 0.5 + 2), 3.8),
                                layout="constrained")
    for i, (split, counts) in enumerate(splits.items()):
        bars = axis.bar(positions + i * width, counts, width=width, label=split)
        if len(vocabulary) * len(splits) <= 60:
            axis.bar_label(bars, labels=[str(int(n)) for n in counts], fontsize=6, padding=1)
    positive = [n for counts in splits.values() for n in counts if n > 0]
    skewed = bool(positive) and max(positive) >= SKEWED_RATIO * min(positive)
    if skewed:
        axis.set_yscale("log")
    axis.set_xticks(positions + 0.4 - width / 2)
    long_names = len(vocabulary) > 8 or max(len(str(name)) for name in vocabulary) > 8
    axis.set_xticklabels(vocabulary, rotation=45 if long_names else 0, ha="right" if long_names else "center",
                         fontsize=7)
    axis.set_ylabel(unit + (" (log scale)" if skewed else ""))
    axis.set_title(title)
    axis.legend(fontsize=7)
    return figure


def _plot_durations(plt, store: Path, manifest: dict[str, Any]):
    histogram = manifest.get("corpus", {}).get("duration_histogram")
    if not histogram:
        return None
    edges, counts = histogram["upper_edges_seconds"], histogram["counts"]
    names = [f"<{edges[0]:g}"] + [f"{low:g}-{high:g}" for low, high in zip(edges, edges[1:])] + [f">={edges[-1]:g}"]
    figure, axis = plt.subplots(figsize=(7, 3.2), layout="constrained")
    axis.bar(np.arange(len(counts)), counts)
    axis.set_xticks(np.arange(len(counts)))
    axis.set_xticklabels(names, rotation=45, fontsize=7)
    axis.set_xlabel("track duration (s)")
    axis.set_ylabel("tracks")
    axis.set_title(f"{manifest['name']}: {manifest['corpus'].get('decoded_tracks')} decoded tracks")
    return figure
