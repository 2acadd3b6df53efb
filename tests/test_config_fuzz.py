"""Fuzzed configs: any mutation of a valid prepare or train config (values replaced by arbitrary
JSON, keys deleted, keys added) ends in a valid config or a ConfigError, never another exception
type. The example configs of configs/ are the starting points."""
import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirdl.errors import ConfigError
from mirdl.pipelines.config import PrepareConfig
from mirdl_tf.train import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**9) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10) | st.sampled_from(["64MB", "1e3", "train", "-1", "", "all", "none"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, prefix + (i,))


def _mutated(data, draw):
    config = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(config) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    return config


@pytest.mark.parametrize("name", ["prepare_demo.yaml", "prepare_onsets.yaml", "prepare_tags.yaml"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_prepare_configs_end_in_config_error(name, data, tmp_path):
    original = yaml.safe_load((CONFIGS / name).read_text())
    config = _mutated(original, data.draw)
    try:
        PrepareConfig.from_dict(config, base_dir=tmp_path, source=name)
    except ConfigError:
        pass


@pytest.mark.parametrize("name", ["train_demo.yaml", "train_onsets.yaml"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_train_configs_end_in_config_error(name, data, tmp_path):
    original = yaml.safe_load((CONFIGS / name).read_text())
    config = _mutated(original, data.draw)
    try:
        TrainConfig.from_dict(config, base_dir=tmp_path, source=name)
    except ConfigError:
        pass


def test_a_yaml_file_that_is_not_a_mapping_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text in ("- just\n- a list\n", "key: [unclosed\n", "\x00\x01", ""):
        bad.write_text(text)
        with pytest.raises(ConfigError):
            PrepareConfig.from_file(bad)
        with pytest.raises(ConfigError):
            TrainConfig.from_file(bad)
