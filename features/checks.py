"""Argument checkers shared by every ``features`` module: one place for "must be a positive integer".

Each returns the value in canonical Python type or raises :class:`~mirdl.errors.ConfigError`
whose message starts with ``name=value``, so the caller's field name reaches the user.

Examples
--------
>>> integer(4, name="hop_length", minimum=1)
4
>>> finite_float(0.5, name="rate")
0.5
"""
from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from mirdl.errors import ConfigError

__all__ = ["integer", "finite_float", "positive_float"]


def integer(value: Any, *, name: str, minimum: int | None = None) -> int:
    """``value`` as an int (numpy integers accepted, bools refused), at least ``minimum``."""
    try:
        result = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        result = None
    if result is None or (minimum is not None and result < minimum):
        raise ConfigError(f"{name}={value!r} must be an integer" + ("" if minimum is None else f" >= {minimum}"))
    return result


def finite_float(value: Any, *, name: str) -> float:
    """``value`` as a finite float (numpy numbers accepted, bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name}={value!r} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be finite")
    return value


def positive_float(value: Any, *, name: str) -> float:
    """``value`` as a finite float > 0."""
    result = finite_float(value, name=name)
    if result <= 0:
        raise ConfigError(f"{name}={value!r} must be > 0")
    return result
