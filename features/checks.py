"""Argument checkers shared by every mirdl layer: one place for "must be a positive integer".

Each returns the value in canonical Python type or raises :class:`~mirdl.errors.ConfigError`
whose message starts with ``name=value``, so the caller's name reaches the user: a config
file passes the dotted field (``store.shard_bytes``), a Python function its parameter
(``hop_length``), the CLI its flag (``--workers``, through :func:`mirdl.pipelines.options.flag`).
Numpy numbers are accepted wherever Python numbers are, bools never are.

Examples
--------
>>> integer(np.int64(4), name="hop_length", minimum=1)
4
>>> finite_float(0.5, name="rate")
0.5
>>> fraction(1, name="max_error_rate")
1.0
>>> choice("hdf5", name="store.format", options=("hdf5", "parquet", "tfrecord"))
'hdf5'
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from mirdl.errors import ConfigError

__all__ = ["CheckError", "integer", "partition", "finite_float", "positive_float", "non_negative_float", "fraction", "choice", "boolean",
           "string", "mapping", "generator", "argparse_type"]


class CheckError(ConfigError):
    """The error of every checker here: ``name=value requirement``.

    The parts stay available, so a layer that knows the value under another name can say so:
    the CLI names its flag (``--workers``), a config loader the field (``model.args.dropout``),
    a Keras builder uses Keras' phrasing.

    Attributes
    ----------
    name : str
    value : Any
    requirement : str
        What the value must be, e.g. ``"must be an integer >= 1"``.
    """

    def __init__(self, name: str, value: Any, requirement: str) -> None:
        self.name, self.value, self.requirement = name, value, requirement
        super().__init__(f"{name}={value!r} {requirement}")

    def __reduce__(self):  # keep the parts through pickling (Beam moves exceptions between workers)
        return type(self), (self.name, self.value, self.requirement)

    def renamed(self, name: str) -> CheckError:
        """The same error naming the value ``name``."""
        return type(self)(name, self.value, self.requirement)


def integer(value: Any, *, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (numpy integers accepted, bools refused), in ``[minimum, maximum]``.

    Examples
    --------
    >>> integer(3, name="channels", minimum=1, maximum=2)
    Traceback (most recent call last):
    ...
    mirdl.features.checks.CheckError: channels=3 must be an integer in [1, 2]
    """
    try:
        result = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        result = None
    if result is None or (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
        if minimum is not None and maximum is not None:
            bound = f" in [{minimum}, {maximum}]"
        elif minimum is not None:
            bound = f" >= {minimum}"
        else:
            bound = "" if maximum is None else f" <= {maximum}"
        raise CheckError(name, value, f"must be an integer{bound}")
    return result


def partition(value: Any, *, name: str) -> tuple[int, int]:
    """An array job's part: ``"I/K"`` (or a pair ``(I, K)``) with integers ``0 <= I < K``, as ``(I, K)``.

    Examples
    --------
    >>> partition("2/3", name="partition")
    (2, 3)
    >>> partition("3/3", name="partition")
    Traceback (most recent call last):
    ...
    mirdl.features.checks.CheckError: partition='3/3' must be I/K with integers 0 <= I < K (task index, number of tasks)
    """
    requirement = "must be I/K with integers 0 <= I < K (task index, number of tasks)"
    parts = value.split("/") if isinstance(value, str) else value
    try:
        index, count = (int(part) if isinstance(part, str) else part for part in parts)
        index, count = integer(index, name=name, minimum=0), integer(count, name=name, minimum=1)
    except (TypeError, ValueError, CheckError):
        raise CheckError(name, value, requirement) from None
    if index >= count:
        raise CheckError(name, value, requirement)
    return index, count


def finite_float(value: Any, *, name: str) -> float:
    """``value`` as a finite float (numpy numbers accepted, bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CheckError(name, value, "must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise CheckError(name, value, "must be finite")
    return value


def positive_float(value: Any, *, name: str) -> float:
    """``value`` as a finite float > 0."""
    result = finite_float(value, name=name)
    if result <= 0:
        raise CheckError(name, value, "must be > 0")
    return result


def non_negative_float(value: Any, *, name: str) -> float:
    """``value`` as a finite float >= 0."""
    result = finite_float(value, name=name)
    if result < 0:
        raise CheckError(name, value, "must be >= 0")
    return result


def fraction(value: Any, *, name: str) -> float:
    """``value`` as a float in ``[0, 1]``."""
    result = finite_float(value, name=name)
    if not 0.0 <= result <= 1.0:
        raise CheckError(name, value, "must be a number in [0, 1]")
    return result


def choice(value: Any, *, name: str, options: Iterable[Any]) -> Any:
    """The option equal to ``value`` (so numpy strings come back as ``str``); bools never match numbers.

    Examples
    --------
    >>> choice("zarr", name="store.format", options=("hdf5", "parquet"))
    Traceback (most recent call last):
    ...
    mirdl.features.checks.CheckError: store.format='zarr' must be one of ['hdf5', 'parquet']
    """
    options = list(options)
    for option in options:
        if isinstance(option, bool) == isinstance(value, (bool, np.bool_)) and option == value:
            return option
    raise CheckError(name, value, f"must be one of {options}")


def boolean(value: Any, *, name: str) -> bool:
    """``value`` if it is a bool (numpy bools accepted): ``1`` and ``"yes"`` are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise CheckError(name, value, "must be true or false")
    return bool(value)


def string(value: Any, *, name: str, optional: bool = False) -> str | None:
    """``value`` if it is a non-empty string (numpy strings as ``str``); ``None`` too when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise CheckError(name, value, "must be a non-empty string" + (" or null" if optional else ""))
    return str(value)


def mapping(value: Any, *, name: str | None, fields: Iterable[str] | type | None = None,
            optional: bool = False) -> dict[str, Any]:
    """A config section as a new dict: a mapping (``None`` is ``{}`` when ``optional``) with known keys only.

    Parameters
    ----------
    value : Any
        The section as read from YAML/JSON, or a Python mapping.
    name : str or None
        Dotted name of the section (``"store"``, ``"model.args"``); None for the top level of a
        file, whose keys are named bare (``batch_size``).
    fields : iterable of str, dataclass type or None
        The allowed keys (a dataclass: its field names); None allows any key.
    optional : bool
        Accept ``None`` (a section left empty in YAML) as ``{}``.

    Examples
    --------
    >>> mapping({"out": "s"}, name="store", fields=("out", "format"))
    {'out': 's'}
    >>> mapping({"outt": "s"}, name="store", fields=("out", "format"))
    Traceback (most recent call last):
    ...
    mirdl.errors.ConfigError: store.outt is not a field (fields: format, out)
    """
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name or 'config'} must be a mapping, got {type(value).__name__}")
    if fields is not None:
        known = [field.name for field in dataclasses.fields(fields)] if isinstance(fields, type) else list(fields)
        unknown = sorted(set(value) - set(known), key=str)
        if unknown:
            key = unknown[0] if name is None else f"{name}.{unknown[0]}"
            raise ConfigError(f"{key} is not a field (fields: {', '.join(sorted(known))})")
    return dict(value)


def generator(value: Any, *, name: str = "rng") -> np.random.Generator:
    """``value`` if it is a :class:`numpy.random.Generator` (randomness is always explicit)."""
    if not isinstance(value, np.random.Generator):
        raise ConfigError(f"{name} must be a numpy.random.Generator, got {type(value).__name__}")
    return value


_WHAT = {int: "an integer", float: "a number"}


def argparse_type(check: Callable[..., Any], convert: Callable[[str], Any], **kwargs: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` that converts the text and runs ``check`` on it.

    A failure is an :class:`argparse.ArgumentTypeError`, which argparse reports under the flag
    (``argument --workers: ...``) with exit status 2.

    Examples
    --------
    >>> argparse_type(integer, int, minimum=1)("3")
    3
    """
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text} is not {_WHAT.get(convert, 'valid')}") from None
        try:
            return check(value, name="value", **kwargs)
        except CheckError as err:  # argparse puts the flag in front: "argument --workers: 0 must be ..."
            raise argparse.ArgumentTypeError(f"{text} {err.requirement}") from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse
