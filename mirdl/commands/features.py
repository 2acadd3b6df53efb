"""``mirdl features FILE --spec SPEC.yaml``: compute one feature of one audio file, optionally plot it.

The file is decoded with :func:`mirdl.features.audio.load` at the spec's rate and channel count and
the feature computed with :func:`mirdl.features.representations.compute`, exactly as the precompute
job does, so ``--out`` gives the numbers a store would hold for the whole file.

Examples
--------
::

    mirdl features song.flac --spec configs/logmel.yaml --plot logmel.png --out logmel.npy
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

__all__ = ["configure", "run", "AXIS_NAMES"]

#: representation -> name of the bin axis, for the printed shape.
AXIS_NAMES = {
    "stft": "freq_bins", "mel": "mel_bins", "logmel": "mel_bins", "cqt": "cqt_bins",
    "chroma_stft": "chroma", "chroma_cqt": "chroma", "mfcc": "mfcc", "waveform": "1",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl features``."""
    parser.add_argument("file", metavar="FILE", type=Path, help="audio file (any format libsndfile reads)")
    parser.add_argument("--spec", required=True, type=Path, metavar="SPEC.yaml",
                        help="feature spec (YAML or JSON), e.g. configs/logmel.yaml")
    parser.add_argument("--name", metavar="NAME", help="which spec, when the file holds several")
    parser.add_argument("--out", type=Path, metavar="FEAT.npy", help="save the feature as .npy (atomically)")
    parser.add_argument("--plot", type=Path, metavar="OUT.png",
                        help="draw the feature (PNG, or PDF/SVG by the suffix)")


def run(args: argparse.Namespace) -> int:
    """Decode, compute, print a summary, then save and plot as asked."""
    import numpy as np

    from mirdl.features import audio, representations
    from mirdl.features.spec import load_specs

    spec = _select_spec(load_specs(args.spec), name=args.name, path=args.spec)
    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        if path is not None:
            _check_output(path, flag=flag)
    plot_format = _plot_format(args.plot) if args.plot is not None else None

    _load_librosa()
    start = time.perf_counter()
    y, sr = audio.load(args.file, sample_rate=spec.sample_rate, channels=spec.channels)
    decoded = time.perf_counter()
    feature = representations.compute(y, spec=spec)
    computed = time.perf_counter()

    axes = ("channels",) * (feature.ndim - 2) + (AXIS_NAMES[spec.representation],
                                                  "samples" if spec.representation == "waveform" else "frames")
    values = feature.astype(np.float32, copy=False)
    print(f"{args.file}")
    print(f"  spec     {spec.name} ({spec.representation}, fingerprint {spec.fingerprint()}) from {args.spec}")
    print(f"  audio    {y.shape[-1] / sr:.3f} s at {sr} Hz, {spec.channels} channel(s); "
          f"decoded in {decoded - start:.3f} s")
    print(f"  feature  shape {feature.shape} = ({', '.join(axes)}) {feature.dtype}, "
          f"hop {1000 * spec.hop_seconds:.2f} ms; computed in {computed - decoded:.3f} s")
    print(f"  values   min {values.min():.4g}  max {values.max():.4g}  mean {values.mean():.4g}")
    if args.out is not None:
        _save_npy(args.out, feature)
        print(f"  saved    {args.out}")
    if args.plot is not None:
        _plot(feature, y=y, spec=spec, title=f"{spec.name} [{spec.fingerprint()}] {args.file.name}",
              path=args.plot, file_format=plot_format)
        print(f"  plotted  {args.plot}")
    return 0


def _load_librosa() -> None:
    """Import librosa's lazily loaded parts now, so the printed times are the work alone."""
    import librosa

    for attribute in ("stft", "cqt", "power_to_db"):
        getattr(librosa, attribute)
    librosa.feature.mfcc, librosa.filters.mel  # noqa: B018


def _select_spec(specs: list, *, name: str | None, path: Path) -> Any:
    from mirdl.errors import ConfigError

    if name is None:
        if len(specs) == 1:
            return specs[0]
        raise ConfigError(f"{path} holds {len(specs)} specs; choose one with --name "
                          f"({', '.join(spec.name for spec in specs)})")
    for spec in specs:
        if spec.name == name:
            return spec
    raise ConfigError(f"--name {name!r} is not a spec of {path} ({', '.join(spec.name for spec in specs)})")


def _check_output(path: Path, *, flag: str) -> None:
    """Fail before any work if the output cannot be written where asked."""
    from mirdl.errors import ConfigError

    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: directory {parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory")


def _plot_format(path: Path) -> str:
    from mirdl.errors import ConfigError

    file_format = path.suffix.lower().lstrip(".") or "png"
    if file_format not in ("png", "pdf", "svg"):
        raise ConfigError(f"--plot {path}: unsupported format {file_format!r} (use .png, .pdf or .svg)")
    return file_format


def _save_npy(path: Path, feature) -> None:
    import numpy as np

    from mirdl.store.files import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a temporary name
            np.save(f, feature, allow_pickle=False)


def _display_kwargs(spec) -> dict[str, Any]:
    """specshow axes for a representation: the frequency axis each one really has."""
    p = spec.param_dict
    common = {"sr": spec.sample_rate, "hop_length": p.get("hop_length", 512), "x_axis": "time"}
    rep = spec.representation
    if rep == "stft":
        return {**common, "y_axis": "log", "n_fft": p["n_fft"]}
    if rep in ("mel", "logmel"):
        return {**common, "y_axis": "mel", "fmin": p["fmin"], "fmax": p["fmax"] or spec.sample_rate / 2,
                "htk": p["htk"]}
    if rep == "cqt":
        return {**common, "y_axis": "cqt_note", "fmin": p["fmin"], "bins_per_octave": p["bins_per_octave"]}
    if rep in ("chroma_stft", "chroma_cqt"):
        return {**common, "y_axis": "chroma", "bins_per_octave": p["n_chroma"]}
    return {**common, "y_axis": None}  # mfcc: coefficient index


def _display_values(feature, spec) -> tuple[Any, str | None]:
    """What to draw and the colorbar format: dB values shown as they are, linear spectra in dB."""
    import librosa
    import numpy as np

    values = feature.astype(np.float32)
    rep, p = spec.representation, spec.param_dict
    if rep == "logmel" or (rep in ("stft", "cqt") and p["log"]):
        return values, "%+2.0f dB"
    if rep in ("stft", "cqt"):
        return librosa.amplitude_to_db(values, ref=1.0, amin=1e-5), "%+2.0f dB"
    if rep == "mel":
        scale = librosa.power_to_db if p["power"] == 2.0 else librosa.amplitude_to_db
        return scale(values, ref=1.0, amin=1e-10), "%+2.0f dB"
    return values, None


def _plot(feature, *, y, spec, title: str, path: Path, file_format: str) -> None:
    """Draw one panel per channel with librosa.display; write the image atomically."""
    # No pyplot: a Figure with an Agg canvas touches no global backend state.
    import librosa.display
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mirdl.store.files import atomic_path

    n_channels = 1 if spec.channels == 1 else spec.channels
    fig = Figure(figsize=(10, 3.2 * n_channels), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(n_channels, 1, squeeze=False)[:, 0])
    for channel, ax in enumerate(axes):
        if spec.representation == "waveform":
            signal = y if spec.channels == 1 else y[channel]
            librosa.display.waveshow(signal, sr=spec.sample_rate, ax=ax)
            ax.set_ylabel("amplitude")
        else:
            values, colorbar_format = _display_values(feature if spec.channels == 1 else feature[channel], spec)
            image = librosa.display.specshow(values, ax=ax, **_display_kwargs(spec))
            if spec.representation == "mfcc":
                ax.set_ylabel("MFCC")
            fig.colorbar(image, ax=ax, format=colorbar_format)
        ax.set_title(title if n_channels == 1 else f"{title} (channel {channel})")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=file_format, dpi=100)
