"""The namespace: ``features/`` and ``pipelines/`` import only as ``mirdl.features`` and ``mirdl.pipelines``.

Run from the repository root, a plain ``import features`` would find the folder and make a
second, top-level copy of the package (its ``ConfigError`` not mirdl's). These tests import
every mirdl module in a fresh interpreter and check that no top-level ``features`` or
``pipelines`` module appears: with the editable install from the repository root, from a
user's folder holding its own ``features.py`` and ``pipelines/`` package, and from a built
wheel unpacked elsewhere.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Every package of the distribution; subpackages are walked.
PACKAGES = ("mirdl", "mirdl.commands", "mirdl.store", "mirdl.features", "mirdl.pipelines", "mirdl_tf")

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
packages = json.loads(sys.argv[1])
names = []
for package_name in packages:
    package = importlib.import_module(package_name)
    names.append(package_name)
    for info in pkgutil.walk_packages(package.__path__, package_name + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
            names.append(info.name)
top = sorted(n for n in sys.modules if n.split(".")[0] in ("features", "pipelines"))
files = {n: getattr(sys.modules[n], "__file__", None) for n in ("mirdl", "mirdl.features", "mirdl.pipelines")}
print(json.dumps({"imported": names, "top_level": top, "files": files}))
"""


def import_everything(*, cwd: Path, packages=PACKAGES, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", _IMPORT_ALL, json.dumps(list(packages))], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # imports TensorFlow and Beam in a fresh interpreter
def test_editable_install_from_the_repository_root_makes_no_top_level_copies():
    # cwd = the repository root: `python -c` puts it first on sys.path, next to features/ and pipelines/.
    result = import_everything(cwd=REPO)
    assert result["top_level"] == []
    assert {"mirdl.features.spec", "mirdl.pipelines.corpus", "mirdl.store.format", "mirdl_tf.data",
            "mirdl.commands.prepare"} <= set(result["imported"])
    assert Path(result["files"]["mirdl.features"]).parent == REPO / "features"


@pytest.mark.slow
def test_a_users_own_features_and_pipelines_modules_do_not_clash(tmp_path):
    (tmp_path / "features.py").write_text("WHOSE = 'user'\n")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "__init__.py").write_text("WHOSE = 'user'\n")
    script = tmp_path / "user_script.py"
    script.write_text(
        "import json, sys\n"
        "from mirdl_tf import data\n"
        "from mirdl.features.spec import FeatureSpec\n"
        "import mirdl.pipelines.corpus\n"
        "before = sorted(n for n in sys.modules if n.split('.')[0] in ('features', 'pipelines'))\n"
        "import features, pipelines\n"
        "print(json.dumps({'before': before, 'features': features.WHOSE, 'pipelines': pipelines.WHOSE,\n"
        "                  'load': callable(data.load), 'spec': FeatureSpec.__module__}))\n")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"before": [], "features": "user", "pipelines": "user", "load": True,
                      "spec": "mirdl.features.spec"}
    # and every mirdl module imports cleanly from there
    assert import_everything(cwd=tmp_path)["top_level"] == []


def _copy_sources(destination: Path) -> None:
    """The files a wheel is built from, without caches or build leftovers."""
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, destination / name)
    for folder in ("mirdl", "features", "pipelines", "mirdl_tf"):
        shutil.copytree(REPO / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> tuple[list[str], Path]:
    source, wheels, unpacked = (tmp_path_factory.mktemp(name) for name in ("source", "wheels", "unpacked"))
    _copy_sources(source)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "--quiet", "--wheel-dir", str(wheels), str(source)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = wheels.glob("mirdl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    return names, unpacked


def test_wheel_maps_the_folders_into_the_namespace(unpacked_wheel):
    names, _ = unpacked_wheel
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"mirdl", "mirdl_tf"}
    in_repo = {path.relative_to(REPO).as_posix() for folder in ("features", "pipelines")
               for path in (REPO / folder).rglob("*.py") if "__pycache__" not in path.parts}
    assert {"mirdl/" + path for path in in_repo} <= set(names)
    # every Python file of the packages is shipped (a new subpackage missing from setup.py fails here)
    for folder, target in (("mirdl", "mirdl"), ("mirdl_tf", "mirdl_tf")):
        shipped = {path.relative_to(REPO).as_posix() for path in (REPO / folder).rglob("*.py")
                   if "__pycache__" not in path.parts}
        assert shipped <= set(names), sorted(shipped - set(names))


def test_wheel_imports_from_its_own_files(unpacked_wheel, tmp_path):
    _, unpacked = unpacked_wheel
    (tmp_path / "features.py").write_text("raise ImportError('the user module must not be imported')\n")
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    # Beam and TensorFlow stay out of it: the pure packages are enough to see where imports resolve.
    result = import_everything(cwd=tmp_path, packages=("mirdl", "mirdl.features", "mirdl.store"), env=env)
    assert result["top_level"] == []
    for name in ("mirdl", "mirdl.features"):
        assert Path(result["files"][name]).is_relative_to(unpacked), result["files"]
    corpus = subprocess.run([sys.executable, "-c", "import mirdl.pipelines.corpus as c; print(c.__file__)"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert corpus.returncode == 0, corpus.stderr[-3000:]
    assert Path(corpus.stdout.strip()).is_relative_to(unpacked)


def test_no_source_imports_features_or_pipelines_at_top_level():
    bad = []
    for folder in ("mirdl", "features", "pipelines", "mirdl_tf", "tests", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module]
                else:
                    continue
                bad += [f"{path.relative_to(REPO)}:{node.lineno} imports {name}" for name in names
                        if name.split(".")[0] in ("features", "pipelines")]
    # this file's own user script imports them on purpose, as a string, which ast does not see as code
    assert bad == []
