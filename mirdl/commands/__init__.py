"""Subcommands of ``mirdl``: each module has ``configure(parser)`` and ``run(args) -> int``
(and ``preload()`` where its imports are heavy; see :mod:`mirdl.cli`)."""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator

__all__ = ["BEAM_UNUSED", "beam_import_notices_dropped", "modules_hidden"]

#: Modules that Beam imports, when they are there, only for integrations mirdl's jobs do not use.
#: The ``mirdl prepare`` and ``mirdl merge`` commands import Beam without them (each import
#: is inside a ``try`` of Beam's, which gives the integration up):
#:
#: - ``pandas``: Beam's DataFrame batch converters (``apache_beam.typehints``), ~0.13 s;
#: - ``bson``: Beam's MongoDB IO (pymongo's ``bson`` is its first import), ~0.05 s;
#: - ``pyarrow``: Beam's Arrow batch converters and its own Parquet IO (mirdl writes and reads
#:   Parquet with pyarrow itself, imported when it is needed, after Beam), ~0.03 s;
#: - ``apache_beam.io.gcp.bigquery``: Beam's BigQuery, Pub/Sub and cross-language IO names in
#:   ``apache_beam.io`` (``gs://`` paths go through Beam's filesystems, which import their own), ~0.04 s.
#:
#: Measured with the collector paused: Beam and the job's modules import in 0.63-0.69 s without
#: them all against 0.72-0.76 s without pandas alone (BENCHMARKS.md, round 10).
BEAM_UNUSED = ("pandas", "bson", "pyarrow", "apache_beam.io.gcp.bigquery")

#: What Beam logs while it is imported without its ``[gcp]`` extra or without :data:`BEAM_UNUSED`
#: (logger name -> text of the message): noise before a command's first line.
BEAM_IMPORT_NOTICES = {
    "": "apitools not found",  # the root logger: "..., and bigquery client libraries are not available"
    "apache_beam.io.mongodbio": "Could not find a compatible bson package",
}


class _Dropped(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def beam_import_notices_dropped() -> Iterator[None]:
    """Inside, the log records of :data:`BEAM_IMPORT_NOTICES` are dropped."""
    filters = [(logging.getLogger(name), _Dropped(text)) for name, text in BEAM_IMPORT_NOTICES.items()]
    for logger, dropped in filters:
        logger.addFilter(dropped)
    try:
        yield
    finally:
        for logger, dropped in filters:
            logger.removeFilter(dropped)


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
