"""The store card's example plot drawn with matplotlib alone (no pyplot, no librosa.display):
the bins keep their names (mel band centres as librosa computes them, notes, pitch classes) (the
drawing itself: tests/pipelines/test_job_fixed_costs.py)."""
from __future__ import annotations

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
