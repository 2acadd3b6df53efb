"""The docstring examples of ``benchmarks/bench_all.py`` (``make bench``'s own rules, such as when the
alternated reader rounds stop); the benchmark itself is not part of ``make test``."""
import doctest
import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_all_docstring_examples(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("bench_all")
    try:
        results = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    finally:
        sys.modules.pop("bench_all", None)
    assert results.attempted > 0
    assert results.failed == 0
