"""The precompute job's options (mirdl.pipelines.options): Beam-free, flags named by the CLI, parameters by the library."""
import subprocess
import sys

import pytest

from mirdl.cli import main
from mirdl.errors import ConfigError


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "argument --workers: 0 must be an integer >= 1"),
    (["--workers", "two"], "argument --workers: two is not an integer"),
    (["--max-error-rate", "1.5"], r"argument --max-error-rate: 1.5 must be a number in \[0, 1\]"),
])
def test_cli_names_the_flag_in_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(["prepare", "--config", str(tmp_path / "missing.yaml"), *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_library_names_the_parameter(tmp_path):
    pytest.importorskip("apache_beam")
    from mirdl.pipelines.precompute import prepare

    with pytest.raises(ConfigError, match=r"^workers=0 must be an integer >= 1$"):
        prepare(tmp_path / "missing.yaml", workers=0)
    with pytest.raises(ConfigError, match=r"^max_error_rate=2 must be a number in \[0, 1\]$"):
        prepare(tmp_path / "missing.yaml", max_error_rate=2)


def test_options_and_cli_parser_import_no_beam():
    code = ("import sys, mirdl.pipelines.options, mirdl.cli; mirdl.cli.build_parser(); "
            "print(sorted(m for m in ('apache_beam', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
