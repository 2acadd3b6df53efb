"""Run the docstring examples of every mirdl module, imported through the installed namespace.

pytest's ``--doctest-modules`` would import ``features/*.py`` from the repository folder as a
second, top-level ``features`` package (``features.errors.ConfigError`` is not
``mirdl.errors.ConfigError``), so the examples are collected here, module by module, from
``mirdl.*`` and ``mirdl_tf.*`` as a user imports them.
"""
import doctest
import importlib
import pkgutil

import pytest

#: Packages whose modules' examples are run (subpackages are walked).
PACKAGES = ("mirdl", "mirdl.features", "mirdl.pipelines", "mirdl.store", "mirdl_tf")


def module_names() -> list[str]:
    names = set()
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.add(package_name)
        names.update(info.name for info in pkgutil.walk_packages(package.__path__, package_name + "."))
    return sorted(name for name in names if not name.endswith("__main__"))


@pytest.mark.parametrize("name", module_names())
def test_docstring_examples(name, tmp_path, monkeypatch):
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in finder.find(module, name):
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
