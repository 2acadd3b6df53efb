"""``mirdl synth-corpus`` and ``mirdl features`` as a user runs them: outputs, and one-line errors."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mirdl.features.audio import load
from mirdl.features.representations import REPRESENTATIONS, compute
from mirdl.features.spec import FeatureSpec
from mirdl.cli import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
#: The example spec of each representation (other configs, e.g. prepare_*.yaml, are job configs).
REPRESENTATION_CONFIGS = [CONFIGS / f"{name}.yaml" for name in sorted(REPRESENTATIONS)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_mirdl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mirdl", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def assert_one_line_error(status, stderr, *needles):
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def stereo_track(synth_corpus):
    """A stereo corpus file at a rate other than 22.05 kHz: load() resamples and downmixes it."""
    track = next(t for t in synth_corpus.tracks if t.channels == 2 and t.sample_rate != 22050)
    return synth_corpus.root / track.path


def write_spec(path, **changes):
    data = yaml.safe_load((CONFIGS / "logmel.yaml").read_text())
    data["params"].update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


# --------------------------------------------------------------------------------------------------
# configs


def test_there_is_one_example_config_per_representation():
    assert [p for p in REPRESENTATION_CONFIGS if not p.is_file()] == []


@pytest.mark.parametrize("path", REPRESENTATION_CONFIGS, ids=lambda p: p.stem)
def test_configs_load_spell_out_every_parameter_and_are_commented(path):
    spec = FeatureSpec.from_file(path)
    raw = yaml.safe_load(path.read_text())
    assert spec.representation == path.stem == spec.name
    assert spec.to_dict() == raw  # every field explicit, in to_dict() form: what you read is what runs
    assert path.read_text().startswith("#")


# --------------------------------------------------------------------------------------------------
# synth-corpus


def test_synth_corpus_writes_the_layout_and_prints_one_line(tmp_path):
    out = tmp_path / "corpus"
    result = run_mirdl("synth-corpus", out, "--tracks", 4, "--seed", 2, "--duration", 0.5)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()
    assert len(summary) == 1
    assert "4 tracks" in summary[0] and "4 classes" in summary[0] and "h of audio" in summary[0]
    assert str(out) in summary[0]
    for name in ("labels.csv", "tags.csv", "targets.csv", "annotations.csv", "README.txt"):
        assert (out / name).is_file()
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["brass", "pad", "perc", "pluck"]
    assert len(list((out / "annotations").glob("*.onsets.csv"))) == 4
    assert "seed 2" in (out / "README.txt").read_text()


def test_synth_corpus_refuses_a_non_empty_out_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_one_line_error(main(["synth-corpus", str(out), "--tracks", "1", "--duration", "0.5"]),
                          capsys.readouterr().err, str(out), "not empty", "--overwrite")
    # --overwrite replaces only a previous synthetic corpus, never other files.
    assert_one_line_error(main(["synth-corpus", str(out), "--tracks", "1", "--duration", "0.5", "--overwrite"]),
                          capsys.readouterr().err, "not a synthetic corpus")
    assert (out / "keep.txt").read_text() == "mine"
    corpus = tmp_path / "synth"
    assert main(["synth-corpus", str(corpus), "--tracks", "1", "--duration", "0.5"]) == 0
    assert main(["synth-corpus", str(corpus), "--tracks", "2", "--duration", "0.5", "--overwrite"]) == 0
    assert "wrote 2 tracks" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["--tracks", "0"], "--tracks"),
    (["--seed", "-1"], "--seed"),
    (["--duration", "0.1"], "duration=0.1"),
])
def test_synth_corpus_bad_arguments_are_one_line_errors(tmp_path, capsys, args, needle):
    try:
        status = main(["synth-corpus", str(tmp_path / "out"), *args])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert_one_line_error(status, capsys.readouterr().err, needle)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# features


@pytest.mark.parametrize("path", REPRESENTATION_CONFIGS, ids=lambda p: p.stem)
def test_features_out_equals_compute_on_the_same_file(tmp_path, capsys, stereo_track, path):
    out = tmp_path / "feature.npy"
    assert main(["features", str(stereo_track), "--spec", str(path), "--out", str(out)]) == 0
    spec = FeatureSpec.from_file(path)
    y, _ = load(stereo_track, sample_rate=spec.sample_rate, channels=spec.channels)
    expected = compute(y, spec=spec)
    saved = np.load(out, allow_pickle=False)
    assert saved.dtype == expected.dtype and saved.shape == expected.shape
    np.testing.assert_array_equal(saved, expected)  # exact: the CLI saves what compute() returns, same process
    printed = capsys.readouterr().out
    assert f"shape {expected.shape}" in printed and spec.fingerprint() in printed and "2.000 s" in printed
    assert [p.name for p in tmp_path.iterdir()] == ["feature.npy"]  # no temporary file left


@pytest.mark.parametrize("name", ["logmel", "stft", "cqt", "chroma_cqt", "mfcc", "waveform"])
def test_features_plot_writes_a_valid_png(tmp_path, capsys, stereo_track, name):
    png = tmp_path / f"{name}.png"
    assert main(["features", str(stereo_track), "--spec", str(CONFIGS / f"{name}.yaml"), "--plot", str(png)]) == 0
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(png).shape
    assert width == 1000 and height >= 300


def test_features_plots_one_panel_per_channel_of_a_stereo_spec(tmp_path, capsys, stereo_track):
    spec = write_spec(tmp_path / "stereo.yaml")
    data = yaml.safe_load(spec.read_text())
    data["channels"] = 2
    spec.write_text(yaml.safe_dump(data))
    png, out = tmp_path / "stereo.png", tmp_path / "stereo.npy"
    assert main(["features", str(stereo_track), "--spec", str(spec), "--plot", str(png), "--out", str(out)]) == 0
    assert np.load(out).shape[0] == 2
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[0] >= 600  # two panels


def test_features_error_in_a_real_process_is_one_line_without_traceback(tmp_path, stereo_track):
    spec = write_spec(tmp_path / "bad.yaml", n_mels=-3)
    result = run_mirdl("features", stereo_track, "--spec", spec)
    assert_one_line_error(result.returncode, result.stderr, "n_mels", str(spec))
    assert result.stdout == ""


@pytest.mark.parametrize("case", [
    "missing_file", "not_audio", "nan", "bad_field", "unknown_field", "missing_spec", "out_dir_missing",
    "plot_format", "several_specs", "too_short_uncentred",
])
def test_features_errors_are_one_line_naming_the_problem(tmp_path, capsys, odd_audio, stereo_track, case):
    spec = CONFIGS / "logmel.yaml"
    audio = stereo_track
    extra = []
    if case == "missing_file":
        audio, needles = tmp_path / "nope.wav", ["nope.wav", "not found"]
    elif case == "not_audio":
        audio, needles = odd_audio["not_audio"], [odd_audio["not_audio"].name]
    elif case == "nan":
        audio, needles = odd_audio["nan"], [odd_audio["nan"].name, "NaN"]
    elif case == "bad_field":
        spec, needles = write_spec(tmp_path / "bad.yaml", hop_length=0), ["hop_length", "bad.yaml"]
    elif case == "unknown_field":
        spec, needles = write_spec(tmp_path / "typo.yaml", n_mel=96), ["n_mel", "typo.yaml"]
    elif case == "missing_spec":
        spec, needles = tmp_path / "absent.yaml", ["absent.yaml"]
    elif case == "out_dir_missing":
        extra, needles = ["--out", str(tmp_path / "no" / "dir" / "f.npy")], ["--out", "does not exist"]
    elif case == "plot_format":
        extra, needles = ["--plot", str(tmp_path / "f.jpg")], ["--plot", "'jpg'"]
    elif case == "several_specs":
        spec = tmp_path / "two.yaml"
        one = yaml.safe_load((CONFIGS / "logmel.yaml").read_text())
        spec.write_text(yaml.safe_dump({"features": [one, {**one, "name": "other"}]}))
        needles = ["--name", "logmel", "other"]
    elif case == "too_short_uncentred":
        audio = odd_audio["short"]
        spec, needles = write_spec(tmp_path / "uncentred.yaml", center=False), ["n_fft=1024"]
    status = main(["features", str(audio), "--spec", str(spec), *extra])
    captured = capsys.readouterr()
    assert_one_line_error(status, captured.err, *needles)
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".npy", ".png", ".jpg")) == []


def test_features_name_picks_one_spec_of_several(tmp_path, capsys, stereo_track):
    spec = tmp_path / "two.yaml"
    one = yaml.safe_load((CONFIGS / "logmel.yaml").read_text())
    spec.write_text(yaml.safe_dump({"features": [one, {**one, "name": "small", "params": {"n_mels": 32}}]}))
    out = tmp_path / "small.npy"
    assert main(["features", str(stereo_track), "--spec", str(spec), "--name", "small", "--out", str(out)]) == 0
    assert np.load(out).shape[0] == 32
