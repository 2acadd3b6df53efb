"""Tests for the severities of mirdl.pipelines.dead_letter.ErrorRecord."""
import json

import pytest

from mirdl.errors import ConfigError, StoreError
from mirdl.pipelines.dead_letter import SEVERITIES, ErrorRecord


def test_severity_defaults_to_error_and_round_trips():
    assert SEVERITIES == ("error", "warning", "skipped")
    error = ErrorRecord(path="p", track_id="t", stage="decode", reason="r", error_type="AudioError")
    assert error.severity == "error" and error.failed
    for severity in ("warning", "skipped"):
        record = ErrorRecord.from_exc(path="p", track_id=None, stage="list", exc=UserWarning("w"), severity=severity)
        assert not record.failed
        assert json.loads(record.to_json())["severity"] == severity
        assert ErrorRecord.from_json(record.to_json()) == record


def test_lines_written_before_severities_are_errors():
    old = '{"error_type": "AudioError", "path": "a.wav", "reason": "r", "stage": "decode", "track_id": "a"}'
    record = ErrorRecord.from_json(old)
    assert record.severity == "error" and record.failed


def test_bad_severity_is_refused():
    with pytest.raises(ConfigError, match="ErrorRecord.severity='fatal' must be one of"):
        ErrorRecord(path="p", track_id=None, stage="list", reason="r", error_type="E", severity="fatal")
    good = json.loads(ErrorRecord(path="p", track_id=None, stage="list", reason="r", error_type="E").to_json())
    with pytest.raises(StoreError, match="bad error record"):
        ErrorRecord.from_json(json.dumps({**good, "severity": "fatal"}))
    with pytest.raises(StoreError, match="keys"):
        ErrorRecord.from_json(json.dumps({**good, "extra": 1}))
