"""The Python API (:mod:`mirdl.api`): ``import mirdl`` stays light, and the README's example runs verbatim."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_api_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_mirdl_loads_neither_beam_nor_tensorflow(tmp_path):
    code = ("import json, sys, mirdl; names = [n for n in ('prepare', 'Store', 'train', 'evaluate', 'predict') "
            "if n in dir(mirdl)]; print(json.dumps([names, sorted(m for m in ('apache_beam', 'tensorflow', "
            "'mirdl.api') if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout) == [["prepare", "Store", "train", "evaluate", "predict"], []]
    import mirdl

    assert mirdl.Store is __import__("mirdl.api").api.Store
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        mirdl.nope  # noqa: B018


def test_store_api_on_a_store(tmp_path):
    import importlib.util

    import mirdl

    spec = importlib.util.spec_from_file_location("balance_tests", REPO / "tests" / "mirdl_tf" / "test_balance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    write_imbalanced_store = module.write_imbalanced_store
    from mirdl.errors import ConfigError, StoreError

    store = mirdl.Store(write_imbalanced_store(tmp_path / "s"))
    described = store.describe()
    assert described["splits"]["train"]["label_counts"] == {"c0": 60, "c1": 2, "c2": 6}
    assert described["task"] == "single_label" and described["vocabulary"] == ["c0", "c1", "c2"]
    assert store.verify()["records"] == 68
    assert "records per class:" in store.summary()
    x, y = next(iter(store.load("train", batch_size=4, shuffle=False)))
    assert tuple(x.shape) == (4, 4, 8)
    with pytest.raises(StoreError):
        mirdl.Store(tmp_path / "missing")
    with pytest.raises(ConfigError, match="must be a path to a YAML file or a dict"):
        mirdl.train(42)


@pytest.mark.slow
def test_readme_python_example_runs_verbatim(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", readme_api_example()], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout
    assert json.loads(lines[0].replace("'", '"').replace("None", "null"))["tracks"] >= 5
    accuracy, baseline = map(float, lines[1].split())
    assert 0.0 <= accuracy <= 1.0 and 0.0 <= baseline <= 1.0
    assert (tmp_path / "api-out" / "hits.csv").read_text().startswith("file,label,score,")
