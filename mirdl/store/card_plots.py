"""The store card's pictures, drawn from numpy: no matplotlib in the job that writes a store.

``mirdl prepare`` (and ``mirdl merge``, ``write_store``) put three PNGs into ``plots/`` and show
them on the dataset card (:func:`mirdl.store.describe.write_card_with_plots`). Laid out and
rendered by matplotlib they cost a 1-worker job ~1.5 s (its import, the constrained-layout
pass, the text and tick rendering), as much as decoding 10 minutes of audio. Here each picture
is pixels only: the spectrograms through a colour map (magma, from
:data:`MAGMA_ANCHORS`), bars as filled rectangles, written as PNG by :func:`png_bytes` (zlib and
the standard library). Everything a reader needs to read them (titles, class and track of
each example, the axes' ranges and bin names, the colour scale in dB, counts, bin edges) is
Markdown in the card, returned by :func:`card_plots` as each plot's ``caption``.

``mirdl inspect --plot`` keeps matplotlib's figures with their axes (:func:`mirdl.store.summary.plot`).

Examples
--------
>>> import numpy as np
>>> rgb = colour_map(np.array([[0.0, 1.0]]), vmin=0.0, vmax=1.0)
>>> rgb.shape, rgb.dtype, rgb[0, 0].tolist(), rgb[0, 1].tolist()
((1, 2, 3), dtype('uint8'), [0, 0, 4], [252, 253, 191])
>>> png_bytes(rgb)[:8]
b'\\x89PNG\\r\\n\\x1a\\n'
"""
from __future__ import annotations

import dataclasses
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mirdl.store.files import atomic_path

__all__ = ["MAGMA_ANCHORS", "SPLIT_COLOURS", "CardPlot", "colour_map", "png_bytes", "write_png", "card_plots"]

#: matplotlib's ``magma`` at 17 evenly spaced points (0, 16, ..., 255 of its 256 colours),
#: interpolated linearly in between (within 3/255 of matplotlib's table).
MAGMA_ANCHORS = ("000004", "0a0822", "1d1147", "36106b", "51127c", "6a1c81", "832681", "9c2e7f", "b73779",
                 "cf4070", "e55064", "f4695c", "fb8761", "fea571", "fec287", "fde0a1", "fcfdbf")
#: Bar colours of the splits, in manifest order (matplotlib's ``tab10``).
SPLIT_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                 (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
_SPLIT_COLOUR_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan")
_WHITE, _GREY = 255, 200
#: Target height (pixels) of one example spectrogram; bins are repeated to about this.
_EXAMPLE_PIXELS = 192
_GUTTER = 8
_BAR_HEIGHT = 200
_BAR_WIDTH = 14


@dataclasses.dataclass(frozen=True)
class CardPlot:
    """One picture of the card: its file (relative to the store) and the Markdown that reads it."""

    path: str
    caption: str


def _magma_table() -> np.ndarray:
    anchors = np.array([[int(code[i:i + 2], 16) for i in (0, 2, 4)] for code in MAGMA_ANCHORS], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(anchors))
    x = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(x, positions, anchors[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


_MAGMA = _magma_table()


def colour_map(values: np.ndarray, *, vmin: float, vmax: float) -> np.ndarray:
    """``values`` (any shape) as magma RGB, ``(*shape, 3)`` uint8; ``vmin`` black, ``vmax`` pale yellow."""
    span = vmax - vmin if vmax > vmin else 1.0
    scaled = np.clip((np.asarray(values, dtype=np.float64) - vmin) / span, 0.0, 1.0)
    return _MAGMA[np.nan_to_num(scaled * 255.0).round().astype(np.intp)]


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB image ``(height, width, 3)`` uint8 as PNG bytes (8-bit truecolour, no filter, zlib level 6)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # filter byte 0 (None) before each row
    rows[:, 1:] = rgb.reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write ``rgb`` as a PNG file, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(png_bytes(rgb))


# ------------------------------------------------------------------------------------------ drawing
def _canvas(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), _WHITE, dtype=np.uint8)


def _upscaled(image: np.ndarray, *, rows: int, columns: int) -> np.ndarray:
    return np.repeat(np.repeat(image, rows, axis=0), columns, axis=1)


def _waveform_image(x: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """Samples as a filled min/max envelope, one pixel column per ``len(x) / width`` samples."""
    x = np.asarray(x, dtype=np.float64).ravel()
    image = _canvas(height, width)
    if x.size == 0:
        return image
    edges = np.linspace(0, x.size, width + 1).astype(np.intp)
    peak = max(float(np.max(np.abs(x))), 1e-12)
    middle = (height - 1) / 2
    for column, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        part = x[a:max(b, a + 1)]
        top = int(round(middle - float(part.max()) / peak * middle))
        bottom = int(round(middle - float(part.min()) / peak * middle))
        image[top:bottom + 1, column] = SPLIT_COLOURS[0]
    return image


def _label_image(label: np.ndarray, *, width_repeat: int) -> np.ndarray:
    """A frame label: ``(n, frames)`` piano roll (bottom row first) or ``(frames,)`` as a grey strip."""
    label = np.asarray(label, dtype=np.float64)
    rows = label[::-1] if label.ndim == 2 else label.reshape(1, -1)
    high = float(rows.max()) if rows.size and rows.max() > 0 else 1.0
    grey = (255 - np.clip(rows / high, 0, 1) * 255).round().astype(np.uint8)
    strip = np.repeat(grey[..., None], 3, axis=-1)
    return _upscaled(strip, rows=max(1, 48 // rows.shape[0]), columns=width_repeat)


def _stack_columns(images: list[np.ndarray], *, gutter: int = _GUTTER) -> np.ndarray:
    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gutter * (len(images) - 1)
    canvas = _canvas(height, width)
    x = 0
    for image in images:
        canvas[height - image.shape[0]:, x:x + image.shape[1]] = image
        x += image.shape[1] + gutter
    return canvas


def _stack_rows(images: list[np.ndarray], *, gutter: int = _GUTTER) -> np.ndarray:
    width = max(image.shape[1] for image in images)
    height = sum(image.shape[0] for image in images) + gutter * (len(images) - 1)
    canvas = _canvas(height, width)
    y = 0
    for image in images:
        canvas[y:y + image.shape[0], :image.shape[1]] = image
        y += image.shape[0] + gutter
    return canvas


def _bars(groups: list[list[float]], *, log: bool, bar_width: int = _BAR_WIDTH, group_gap: int = 10) -> np.ndarray:
    """Bars ``groups[i][j]`` (group i, series j coloured SPLIT_COLOURS[j]) on a baseline; log10 when ``log``."""
    n_series = max(len(group) for group in groups)
    values = np.array([[float(v) for v in group] + [0.0] * (n_series - len(group)) for group in groups])
    heights = np.log10(np.maximum(values, 1.0)) if log else values
    top = float(heights.max()) if heights.size and heights.max() > 0 else 1.0
    width = len(groups) * (n_series * bar_width + group_gap) + group_gap
    canvas = _canvas(_BAR_HEIGHT + 1, width)
    canvas[_BAR_HEIGHT, :] = _GREY  # the baseline
    for i in range(len(groups)):
        for j in range(n_series):
            pixels = int(round(heights[i, j] / top * (_BAR_HEIGHT - 4)))
            if values[i, j] > 0:
                pixels = max(pixels, 1)  # a count is never invisible
            x = group_gap + i * (n_series * bar_width + group_gap) + j * bar_width
            canvas[_BAR_HEIGHT - pixels:_BAR_HEIGHT, x:x + bar_width - 1] = SPLIT_COLOURS[j % len(SPLIT_COLOURS)]
    return canvas


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
            + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


# ------------------------------------------------------------------------------------------ the three plots
def _examples_plot(store: Path, manifest: dict[str, Any]) -> tuple[np.ndarray, str] | None:
    from mirdl.store.summary import _DB_REPRESENTATIONS, _bin_names, example_images

    found = example_images(store, manifest)
    if found is None:
        return None
    feature_name, spec, examples, images = found
    representation = spec.get("representation")
    low = min(float(np.min(x)) for x in images)
    high = max(float(np.max(x)) for x in images)
    n_bins, n_frames = images[0].shape
    hop = spec.get("params", {}).get("hop_length", 1 if representation == "waveform" else 512)  # waveform: samples
    seconds = n_frames * hop / spec.get("sample_rate", 22050)
    frame_task = manifest["task"]["type"].startswith("frame_")
    columns, repeat = [], max(1, math.ceil(_EXAMPLE_PIXELS / max(n_frames, 1)))
    for (_, record), x in zip(examples, images):
        if representation == "waveform":
            picture = _waveform_image(x, height=_EXAMPLE_PIXELS, width=_EXAMPLE_PIXELS * 2)
            repeat = 1
        else:
            picture = _upscaled(colour_map(x[::-1], vmin=low, vmax=high),
                                rows=max(1, math.ceil(_EXAMPLE_PIXELS / n_bins)), columns=repeat)
        if frame_task:
            label_repeat = max(1, picture.shape[1] // max(1, np.asarray(record["label"]).shape[-1]))
            picture = _stack_rows([picture, _label_image(record["label"], width_repeat=label_repeat)], gutter=4)
        columns.append(picture)
    if representation != "waveform":  # the shared colour scale: low at the bottom, high at the top
        bar = colour_map(np.linspace(high, low, columns[0].shape[0])[:, None], vmin=low, vmax=high)
        columns.append(np.repeat(bar, 12, axis=1))
    image = _stack_columns(columns)

    in_db = representation in _DB_REPRESENTATIONS and spec.get("params", {}).get("log", True)
    unit = " dB" if in_db else ""
    lines = [f"**{manifest['name']}: `{feature_name}`, clean variant**, one segment per "
             f"{'class' if manifest['task']['type'] in ('single_label', 'multi_label') else 'example'}, "
             "left to right:", ""]
    lines += _md_table(["#", "class", "track", "segment"],
                       [[i + 1, f"`{title}`" if title != record["key"] else "-", f"`{record['track_id']}`",
                         record["segment"]] for i, (title, record) in enumerate(examples)])
    lines.append("")
    if representation == "waveform":
        lines.append(f"Each picture: the samples' envelope over {seconds:.2f} s, scaled to its own peak.")
    else:
        axis_label, names = _bin_names(spec, n_bins)
        lines.append(f"Each picture: time 0 to {seconds:.2f} s left to right ({n_frames} frames); {n_bins} bins "
                     f"bottom to top, {axis_label} {names[0]} to {names[-1]}. Colours (magma, one scale for all, "
                     f"the bar at the right): {low:+.1f}{unit} black to {high:+.1f}{unit} pale yellow.")
    if frame_task:
        lines.append(f"Below each: its frame label ({manifest['task']['type']}), white 0, black the largest value.")
    return image, "\n".join(lines)


def _labels_plot(manifest: dict[str, Any]) -> tuple[np.ndarray, str] | None:
    from mirdl.store.summary import SKEWED_RATIO, label_counts

    task = manifest["task"]
    found = label_counts(manifest)
    if found is None:
        return None
    vocabulary, splits = found
    positive = [n for counts in splits.values() for n in counts if n > 0]
    skewed = bool(positive) and max(positive) >= SKEWED_RATIO * min(positive)
    image = _bars([[counts[i] for counts in splits.values()] for i in range(len(vocabulary))], log=skewed)
    unit = "records" if task["type"] in ("single_label", "multi_label") else "frames"
    colours = ", ".join(f"{split} {_SPLIT_COLOUR_NAMES[j % len(_SPLIT_COLOUR_NAMES)]}"
                        for j, split in enumerate(splits))
    lines = [f"**{manifest['name']}: label distribution ({task['type']})**: {unit} per class, one bar per split "
             f"({colours}), classes left to right in vocabulary order; "
             + ("log scale (the largest count is at least " f"{SKEWED_RATIO}x the smallest)." if skewed
                else "linear scale from 0.")]
    lines.append("Classes: " + ", ".join(f"`{word}`" for word in vocabulary) + "; the counts are the card's "
                 "\"Per class\" table.")
    return image, "\n".join(lines)


def _durations_plot(manifest: dict[str, Any]) -> tuple[np.ndarray, str] | None:
    histogram = manifest.get("corpus", {}).get("duration_histogram")
    if not histogram:
        return None
    edges, counts = histogram["upper_edges_seconds"], histogram["counts"]
    names = [f"<{edges[0]:g}"] + [f"{low:g}-{high:g}" for low, high in zip(edges, edges[1:])] + [f">={edges[-1]:g}"]
    image = _bars([[n] for n in counts], log=False)
    lines = [f"**{manifest['name']}: {manifest['corpus'].get('decoded_tracks')} decoded tracks** by duration "
             "(seconds), shortest bin on the left, linear scale from 0:", ""]
    lines += _md_table(["duration (s)", "tracks"], [[name, n] for name, n in zip(names, counts)])
    return image, "\n".join(lines)


def card_plots(store: str | os.PathLike, out_dir: str | os.PathLike) -> list[CardPlot]:
    """Write the card's PNGs into ``out_dir`` and return them with their captions.

    ``examples.png`` (one clean segment per class, one colour scale; frame tasks: the frame label
    below each), ``labels.png`` (label counts per class and split), ``durations.png`` (decoded
    track durations): the files :func:`mirdl.store.summary.plot` writes, each drawn only when
    the store has what it shows. ``path`` is relative to ``store`` when ``out_dir`` is inside it.
    """
    from mirdl.store.manifest import read_manifest

    store, out_dir = Path(store), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(store)
    drawn = []
    for name, draw in (("examples.png", lambda: _examples_plot(store, manifest)),
                       ("labels.png", lambda: _labels_plot(manifest)),
                       ("durations.png", lambda: _durations_plot(manifest))):
        result = draw()
        if result is None:
            continue
        image, caption = result
        path = out_dir / name
        write_png(path, image)
        try:
            shown = path.relative_to(store).as_posix()
        except ValueError:
            shown = path.as_posix()
        drawn.append(CardPlot(path=shown, caption=caption))
    return drawn
