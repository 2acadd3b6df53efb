"""README's code examples run as written (on small stores made by the real job)."""
from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def python_blocks(containing: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    return [block for block in blocks if containing in block]


def test_training_loop_example_runs(job_store):
    (code,) = python_blocks("data.describe")
    store = job_store("tfrecord")
    code = code.replace('"demo-out/stores/demo"', repr(str(store)))
    code = code.replace("epochs=5, steps_per_epoch=20", "epochs=1, steps_per_epoch=2, verbose=0")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["model"].output_shape[-1] == namespace["info"]["n_outputs"]


def test_reading_a_store_with_pandas_example_runs(job_store):
    (code,) = python_blocks("pd.read_parquet")
    store = job_store("parquet")
    code = code.replace('"STORE/manifest.json"', repr(str(store / "manifest.json")))
    code = code.replace('f"STORE/{shard}"', f'f"{store}/{{shard}}"')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    manifest = namespace["m"]
    assert namespace["x"].shape[1:] == tuple(manifest["features"]["logmel"]["shape"])
    assert len(namespace["y"]) == len(namespace["x"]) > 0
