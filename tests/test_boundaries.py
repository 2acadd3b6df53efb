"""Import boundaries between the packages (STYLE.md section 0), checked two ways.

- At run time: a fresh interpreter imports every module of a package and reports which
  forbidden packages ended up in ``sys.modules``.
- In the source: every ``import`` statement of the package's files (function-level ones too)
  is read with :mod:`ast`, so a lazy import that crosses a boundary is caught before anyone
  calls the function that holds it.

The rules: ``mirdl.features`` imports no Beam, TensorFlow, Keras, CLI, ``mirdl_tf`` or
``mirdl.pipelines``; ``mirdl.pipelines`` no ``mirdl_tf``, CLI or TensorFlow; ``mirdl_tf`` no Beam, ``mirdl.pipelines``
or CLI; ``mirdl.store`` (the store format, read by both sides) no Beam, ``mirdl_tf``,
``mirdl.pipelines`` or CLI, and TensorFlow only lazily, in the TFRecord adapter.
"""
from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: package -> (folder in the repository, forbidden import prefixes)
RULES = {
    "mirdl.features": ("features", ("apache_beam", "tensorflow", "keras", "mirdl.cli", "mirdl.commands",
                                    "mirdl_tf", "mirdl.pipelines")),
    "mirdl.pipelines": ("pipelines", ("mirdl_tf", "tensorflow", "keras", "mirdl.cli", "mirdl.commands")),
    "mirdl_tf": ("mirdl_tf", ("apache_beam", "mirdl.pipelines", "mirdl.cli", "mirdl.commands")),
    "mirdl.store": ("mirdl/store", ("apache_beam", "tensorflow", "keras", "mirdl_tf", "mirdl.pipelines", "mirdl.cli",
                                    "mirdl.commands")),
}
#: Function-level imports that are allowed to cross a rule: (file, prefix). TensorFlow is the
#: TFRecord adapter's library (``tf.train.Example``, ``TFRecordDataset``), imported when a TFRecord
#: shard is written or read, so workers writing HDF5/Parquet never import it.
LAZY_ALLOWED = {("mirdl/store/adapters.py", "tensorflow")}
#: Known violations in the source being fixed elsewhere: (package, prefix) -> reason.
PENDING: dict[tuple[str, str], str] = {}

EDGES = [(package, prefix) for package, (_, prefixes) in RULES.items() for prefix in prefixes]


def _edge_param(package: str, prefix: str, *marks):
    marks = list(marks)
    if (package, prefix) in PENDING:
        marks.append(pytest.mark.xfail(strict=False, reason=PENDING[package, prefix]))
    return pytest.param(package, prefix, marks=marks, id=f"{package}-no-{prefix}")


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


_IMPORT_ALL = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


@functools.lru_cache(maxsize=None)
def modules_after_importing(package: str) -> tuple[str, ...]:
    """Every module in ``sys.modules`` after a fresh interpreter imported all of ``package``."""
    out = subprocess.run([sys.executable, "-c", _IMPORT_ALL, package], capture_output=True, text=True,
                         cwd=tempfile.mkdtemp(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.slow  # a fresh interpreter per package (TensorFlow, Beam): about 10 s in all
@pytest.mark.parametrize("package, prefix", [pytest.param(*edge, id=f"{edge[0]}-no-{edge[1]}") for edge in EDGES])
def test_importing_a_package_imports_nothing_it_must_not(package, prefix):
    loaded = [name for name in modules_after_importing(package) if _matches(name, prefix)]
    assert loaded == [], f"importing every module of {package} imports {loaded[:5]}"


def _imports(path: Path, package: str) -> list[tuple[str, int, bool]]:
    """(absolute module name, line, at module level) of every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_level = {id(node) for node in tree.body}
    module_level |= {id(child) for node in tree.body if isinstance(node, (ast.If, ast.Try))
                     for child in ast.walk(node)}  # `if TYPE_CHECKING:` / try-import blocks
    parts = (package + "." + path.relative_to(REPO / RULES[package][0]).with_suffix("").as_posix().replace("/", ".")
             ).split(".")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(parts[: len(parts) - node.level + (path.name == "__init__.py")])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(name, node.lineno, id(node) in module_level) for name in names]
    return found


def _violations(package: str, prefix: str) -> list[str]:
    folder = REPO / RULES[package][0]
    bad = []
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        for name, line, top in _imports(path, package):
            if _matches(name, prefix) and (top or (relative, prefix) not in LAZY_ALLOWED):
                bad.append(f"{relative}:{line} imports {name}")
    return sorted(set(bad))


@pytest.mark.parametrize("package, prefix", [_edge_param(*edge) for edge in EDGES])
def test_no_source_file_imports_across_a_boundary(package, prefix):
    assert _violations(package, prefix) == []


def test_static_check_sees_function_level_imports(tmp_path, monkeypatch):
    # The checker itself: a lazy import inside a function is reported, with its line.
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "sneaky.py").write_text("import numpy\n\n\ndef f():\n    import apache_beam.io\n"
                                      "    from ..commands import prepare\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _violations("mirdl.features", "apache_beam") == ["features/sneaky.py:5 imports apache_beam.io"]
    assert _violations("mirdl.features", "mirdl.commands") == [
        "features/sneaky.py:6 imports mirdl.commands", "features/sneaky.py:6 imports mirdl.commands.prepare"]


def test_cli_and_commands_import_nothing_heavy():
    # `mirdl --help` stays fast: commands import Beam and TensorFlow inside run(), not at import.
    loaded = modules_after_importing("mirdl.commands")
    heavy = [name for name in loaded if any(_matches(name, p) for p in ("apache_beam", "tensorflow", "keras"))]
    assert heavy == []


@pytest.mark.slow  # two fresh interpreters (Beam): ~5 s
def test_pipelines_and_store_writers_import_neither_scipy_signal_nor_tensorflow():
    # A precompute worker imports these: scipy.signal (~1 s) is imported only when augmenting
    # (features.augment imports it inside the filters), TensorFlow not at all (the TFRecord writer
    # is mirdl.store.tfrecord).
    loaded = set(modules_after_importing("mirdl.pipelines")) | set(modules_after_importing("mirdl.store"))
    assert sorted(name for name in loaded if any(_matches(name, p) for p in ("scipy.signal", "tensorflow"))) == []
