"""Dead-letter records: one per input file that failed, instead of a failed job.

Every step of the precompute job that can fail on one file (a missing audio file, a
corrupt annotation, an undecodable MP3) turns the exception into an :class:`ErrorRecord`
and sends it to a tagged ``errors`` output; the job writes them, one JSON line each, to
the store's ``errors.jsonl`` (:data:`mirdl.store.format.ERRORS_NAME`). ``mirdl predict``
writes the same records for the files it cannot read. This module is plain Python (no Beam,
no TensorFlow), so the listing code, prediction and any reader of ``errors.jsonl`` use it;
``mirdl.pipelines.dead_letter`` re-exports it.

Stages, in the order a track meets them (:data:`STAGES`):

``list``
    Listing the corpus: missing audio file, unreadable CSV row (empty path, bad number),
    unsupported extension.
``annotations``
    Finding or parsing a track's annotation file (JAMS, ``.lab``, CSV).
``decode``
    Reading, resampling and downmixing the audio.
``augment``
    Computing one augmentation variant.
``features``
    Computing a feature representation.
``segment``
    Cutting the features (and frame targets) into fixed-length segments.
``write``
    Serialising or writing records to a shard.

Severities (:data:`SEVERITIES`):

``error``
    The file is not in the store. Only errors count as failed files: they decide the exit
    status and count toward ``--max-error-rate``.
``warning``
    The file is in the store, but something about it is worth knowing (its decoded length
    differs from its header within :data:`mirdl.features.audio.LENGTH_TOLERANCE_SECONDS`).
``skipped``
    A file in the corpus folder the listing did not take as audio (an extension not in
    ``corpus.extensions``, a hidden file or folder); not a failure, and not an input file.

Examples
--------
>>> record = ErrorRecord.from_exc(path="/data/a.wav", track_id="a", stage="decode",
...                               exc=OSError("truncated file"))
>>> record.to_json()
'{"error_type": "OSError", "path": "/data/a.wav", "reason": "truncated file", "severity": "error", "stage": "decode", "track_id": "a"}'
>>> ErrorRecord.from_json(record.to_json()) == record, record.failed
(True, True)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from mirdl.errors import ConfigError, StoreError

__all__ = ["STAGES", "SEVERITIES", "ErrorRecord", "write_error_records", "read_error_records", "error_summary"]

#: Where in the job a file can fail; see the module docstring.
STAGES = ("list", "annotations", "decode", "augment", "features", "segment", "write")
#: How bad a record is; see the module docstring. Only "error" is a failed file.
SEVERITIES = ("error", "warning", "skipped")


@dataclass(frozen=True)
class ErrorRecord:
    """One input file that failed at one stage of the job.

    Parameters
    ----------
    path : str
        The file that failed (audio or annotation file; ``CSV:LINE`` for a CSV row
        without a usable path).
    track_id : str or None
        The track's id, or None when the failure happened before it was known.
    stage : str
        One of :data:`STAGES`.
    reason : str
        Human-readable message (the exception text).
    error_type : str
        Class name of the exception (``"AudioError"``, ``"AnnotationError"``, ...), or of
        the warning (``"AudioWarning"``), or ``"Skipped"``.
    severity : {"error", "warning", "skipped"}
        One of :data:`SEVERITIES`; ``errors.jsonl`` lines written before severities
        existed are errors.
    """

    path: str
    track_id: str | None
    stage: str
    reason: str
    error_type: str
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"ErrorRecord.stage={self.stage!r} must be one of {list(STAGES)}")
        if self.severity not in SEVERITIES:
            raise ConfigError(f"ErrorRecord.severity={self.severity!r} must be one of {list(SEVERITIES)}")
        for name in ("path", "reason", "error_type"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"ErrorRecord.{name}={getattr(self, name)!r} must be a string")
        if self.track_id is not None and not isinstance(self.track_id, str):
            raise ConfigError(f"ErrorRecord.track_id={self.track_id!r} must be a string or None")

    @property
    def failed(self) -> bool:
        """True for an error: the file is not in the store (warnings and skips are not failures)."""
        return self.severity == "error"

    @classmethod
    def from_exc(cls, *, path: str, track_id: str | None, stage: str, exc: BaseException,
                 severity: str = "error") -> ErrorRecord:
        """Record ``exc`` raised (or warning issued) while processing ``path`` at ``stage``.

        The reason is ``str(exc)`` (the class name when the message is empty).
        """
        return cls(
            path=str(path),
            track_id=track_id,
            stage=stage,
            reason=str(exc) or type(exc).__name__,
            error_type=type(exc).__name__,
            severity=severity,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict."""
        return asdict(self)

    def to_json(self) -> str:
        """One JSON line (sorted keys, no newline): the ``errors.jsonl`` form."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> ErrorRecord:
        """Parse one line of ``errors.jsonl``.

        Raises
        ------
        StoreError
            If the line is not a JSON object with exactly the fields of an ErrorRecord
            (``severity`` may be missing: then it is an error).
        """
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise StoreError(f"error record is not JSON ({err}): {line[:200]!r}") from err
        names = {field.name for field in fields(cls)}
        # "severity" came later: a line without it is an error.
        if not isinstance(data, dict) or not names - {"severity"} <= set(data) <= names:
            raise StoreError(f"error record must be a JSON object with keys {sorted(names)}: {line[:200]!r}")
        try:
            return cls(**data)
        except ConfigError as err:
            raise StoreError(f"bad error record ({err}): {line[:200]!r}") from err


def write_error_records(path: Any, records: Any) -> list[ErrorRecord]:
    """Write ``records`` (ErrorRecord) to ``path`` as JSON lines, sorted by (path, stage, reason),
    atomically; return them in that order."""
    from mirdl.store.files import atomic_path

    ordered = sorted(records, key=lambda e: (e.path, e.stage, e.track_id or "", e.reason, e.error_type))
    with atomic_path(path) as tmp:
        tmp.write_text("".join(record.to_json() + "\n" for record in ordered), encoding="utf-8")
    return ordered


def read_error_records(path: Any) -> list[ErrorRecord]:
    """The records of an ``errors.jsonl`` file (an absent file has none)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [ErrorRecord.from_json(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


def error_summary(records: Any) -> dict[str, Any]:
    """The manifest's counts of error records: ``count``, ``failed_files`` (distinct paths with
    an ``error``), ``warnings``, ``skipped_files``, ``by_stage`` (failures per stage, sorted).

    Examples
    --------
    >>> a = ErrorRecord(path="/a.wav", track_id="a", stage="decode", error_type="AudioError", reason="x")
    >>> error_summary([a, ErrorRecord(path="/b.txt", track_id=None, stage="list", error_type="Skipped",
    ...                              reason="y", severity="skipped")])
    {'count': 2, 'failed_files': 1, 'warnings': 0, 'skipped_files': 1, 'by_stage': {'decode': 1}}
    """
    from collections import Counter

    records = list(records)
    failures = [record for record in records if record.failed]  # warnings and skipped files are not failures
    return {"count": len(records), "failed_files": len({record.path for record in failures}),
            "warnings": sum(record.severity == "warning" for record in records),
            "skipped_files": len({record.path for record in records if record.severity == "skipped"}),
            "by_stage": dict(sorted(Counter(record.stage for record in failures).items()))}
