"""FeatureSpec: validation naming the field, round trips, a fingerprint stable across processes."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from mirdl.errors import ConfigError
from mirdl.features.spec import FeatureSpec, load_specs

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_are_filled_and_readable_as_attributes():
    spec = FeatureSpec(representation="logmel", params={"n_mels": 96})
    assert spec.n_mels == 96 and spec.hop_length == 512 and spec.name == "logmel"
    assert spec.param_dict["n_fft"] == 2048
    with pytest.raises(AttributeError, match="n_mfcc"):
        _ = spec.n_mfcc


def test_round_trips_through_dict_yaml_and_json(tmp_path):
    spec = FeatureSpec(representation="chroma_stft", sample_rate=16000, params={"n_fft": 1024},
                       name="chroma")
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # norm=inf survives JSON
    (tmp_path / "c.yaml").write_text(spec.to_yaml())
    assert FeatureSpec.from_file(tmp_path / "c.yaml") == spec
    (tmp_path / "c.json").write_text(json.dumps(spec.to_dict()))
    assert FeatureSpec.from_file(tmp_path / "c.json") == spec
    assert math.isinf(spec.norm)


def test_flat_parameters_are_accepted():
    flat = FeatureSpec.from_dict({"representation": "mel", "n_mels": 40, "hop_length": 256})
    assert flat == FeatureSpec(representation="mel", params={"n_mels": 40, "hop_length": 256})


def test_fingerprint_depends_on_the_numbers_only():
    base = FeatureSpec(representation="logmel")
    assert base.fingerprint() == FeatureSpec(representation="logmel", name="other").fingerprint()
    assert base.fingerprint() == FeatureSpec(representation="logmel", params={"n_mels": 128}).fingerprint()
    changed = [
        FeatureSpec(representation="logmel", params={"n_mels": 64}),
        FeatureSpec(representation="logmel", sample_rate=16000),
        FeatureSpec(representation="logmel", dtype="float16"),
        FeatureSpec(representation="logmel", channels=2),
        FeatureSpec(representation="mel"),
    ]
    assert len({base.fingerprint(), *(s.fingerprint() for s in changed)}) == 1 + len(changed)


def test_fingerprint_is_the_same_in_another_process():
    spec = FeatureSpec(representation="cqt", params={"n_bins": 60, "hop_length": 256})
    code = ("from mirdl.features.spec import FeatureSpec;"
            "print(FeatureSpec(representation='cqt', params={'hop_length': 256, 'n_bins': 60}).fingerprint())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert out.stdout.strip() == spec.fingerprint()


def test_fingerprint_is_pinned():
    # Changing this value means every existing store is invalidated: bump SPEC_FORMAT_VERSION on purpose.
    assert FeatureSpec(representation="logmel").fingerprint() == "4828de071087aa37"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"representation": "spectrum"}, "spec.representation"),
        ({"representation": "logmel", "n_mels": 0}, "spec.n_mels"),
        ({"representation": "logmel", "n_mels": 12.5}, "spec.n_mels"),
        ({"representation": "logmel", "hop_length": -1}, "spec.hop_length"),
        ({"representation": "logmel", "fmax": 30000}, "spec.fmax"),
        ({"representation": "logmel", "fmin": 500, "fmax": 400}, "spec.fmax"),
        ({"representation": "logmel", "n_fft": 512, "win_length": 1024}, "spec.win_length"),
        ({"representation": "logmel", "top_db": -3}, "spec.top_db"),
        ({"representation": "logmel", "n_mfcc": 13}, "spec.n_mfcc"),
        ({"representation": "logmel", "sample_rate": 0}, "spec.sample_rate"),
        ({"representation": "logmel", "dtype": "float64"}, "spec.dtype"),
        ({"representation": "logmel", "channels": 0}, "spec.channels"),
        ({"representation": "logmel", "center": "yes"}, "spec.center"),
        ({"representation": "mel", "power": 3}, "spec.power"),
        ({"representation": "cqt", "n_bins": 120}, "spec.n_bins"),
        ({"representation": "chroma_stft", "tuning": 0.7}, "spec.tuning"),
        ({"representation": "mfcc", "dct_type": 4}, "spec.dct_type"),
        ({"representation": "logmel", "name": "log mel"}, "spec.name"),
        ({"n_mels": 40}, "spec.representation"),
    ],
)
def test_bad_fields_are_named(data, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        FeatureSpec.from_dict(data)


def test_load_specs_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("representation: logmel\nn_mels: -4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: spec\.n_mels=-4"):
        load_specs(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_specs(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("representation: [logmel\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_specs(tmp_path / "broken.yaml")
    (tmp_path / "dupe.yaml").write_text("- {representation: logmel}\n- {representation: logmel}\n")
    with pytest.raises(ConfigError, match="unique"):
        load_specs(tmp_path / "dupe.yaml")


def test_several_specs_in_one_file(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("features:\n  - {representation: logmel, n_mels: 64}\n  - {representation: mfcc, n_mfcc: 13}\n")
    specs = load_specs(path)
    assert [s.name for s in specs] == ["logmel", "mfcc"] and specs[1].n_mfcc == 13


def test_example_configs_are_valid():
    paths = sorted(CONFIGS.glob("*.yaml"))
    specs = [FeatureSpec.from_file(p) for p in paths if p.stem in
             ("stft", "mel", "logmel", "cqt", "chroma_stft", "chroma_cqt", "mfcc", "waveform")]
    assert {s.representation for s in specs} == {"stft", "mel", "logmel", "cqt", "chroma_stft", "chroma_cqt",
                                                  "mfcc", "waveform"}


def test_specs_are_hashable_and_picklable():
    import pickle

    spec = FeatureSpec(representation="logmel")
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert len({spec, FeatureSpec(representation="logmel")}) == 1


def test_numpy_numbers_make_the_same_spec_as_python_ones():
    import numpy as np

    python = FeatureSpec(representation="logmel", sample_rate=16000, params={"n_fft": 1024, "fmax": 8000.0})
    numpy = FeatureSpec(representation="logmel", sample_rate=np.int64(16000),
                        params={"n_fft": np.int32(1024), "fmax": np.float32(8000.0)})
    assert numpy == python and numpy.fingerprint() == python.fingerprint()
    assert type(numpy.sample_rate) is int and type(numpy.n_fft) is int
