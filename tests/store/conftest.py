"""Fixtures of tests/store: small stores of each format (see small_stores.py)."""
import pytest

from small_stores import build


@pytest.fixture
def small_store(tmp_path):
    """``small_store(fmt="parquet")`` -> path of a fresh small store under tmp_path."""
    def make(fmt="parquet", name="store"):
        root = tmp_path / f"{name}-{fmt}"
        build(root, fmt)
        return root

    return make
