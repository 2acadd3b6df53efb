"""Dead-letter records of the precompute job: :mod:`mirdl.store.dead_letter`, re-exported here.

The records live in ``mirdl.store`` so that ``mirdl_tf`` (``mirdl predict``) writes the same
``errors.jsonl`` lines without importing ``mirdl.pipelines``.
"""
from mirdl.store.dead_letter import (
    SEVERITIES, STAGES, ErrorRecord, error_summary, read_error_records, write_error_records)

__all__ = ["STAGES", "SEVERITIES", "ErrorRecord", "write_error_records", "read_error_records", "error_summary"]
