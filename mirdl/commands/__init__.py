"""Subcommands of ``mirdl``: each module has ``configure(parser)`` and ``run(args) -> int``
(and ``preload()`` where its imports are heavy; see :mod:`mirdl.cli`)."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator

__all__ = ["BEAM_UNUSED", "modules_hidden"]

#: Installed packages that Beam imports, when they are there, only for integrations mirdl's jobs
#: do not use: pandas for Beam's DataFrame batch converters (``apache_beam.typehints`` imports
#: ``pandas_type_compatibility``), ~0.13 s of the ~0.8 s that importing Beam and the job's modules
#: takes here. The ``mirdl prepare`` and ``mirdl merge`` commands import Beam without them.
BEAM_UNUSED = ("pandas",)


@contextlib.contextmanager
def modules_hidden(names: Iterable[str]) -> Iterator[None]:
    """Inside, ``import NAME`` raises ImportError for each of ``names`` that is not imported yet
    (``sys.modules[NAME] = None``); afterwards they import as usual.

    What is imported inside believes them missing for good: only for a command's own process,
    where nothing else needs what they would have enabled. A module already imported is left as
    it is.

    Examples
    --------
    >>> with modules_hidden(["not_a_real_module_name"]):
    ...     try:
    ...         import not_a_real_module_name
    ...     except ImportError:
    ...         print("hidden")
    hidden
    >>> "not_a_real_module_name" in sys.modules
    False
    """
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
