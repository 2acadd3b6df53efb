"""Bad flag values: argparse names the flag in one line (exit 2), using the checkers the library uses."""
import re

import pytest

from mirdl.cli import main


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", "c.yaml", "--epochs", "0"], r"argument --epochs: 0 must be an integer >= 1"),
    (["probe", "--store", "s", "--c", "0"], r"argument --c: 0 must be > 0"),
    (["probe", "--store", "s", "--alpha", "nan"], r"argument --alpha: nan must be finite"),
    (["synth-corpus", "out", "--tracks", "0"], r"argument --tracks: 0 must be an integer >= 1"),
    (["synth-corpus", "out", "--seed", "-1"], r"argument --seed: -1 must be an integer >= 0"),
    (["synth-corpus", "out", "--duration", "x"], r"argument --duration: x is not a number"),
    (["extract", "--random-weights", "--store", "s", "--out", "o", "--seed", "-2"],
     r"argument --seed: -2 must be an integer >= 0"),
    (["extract", "--random-weights", "--store", "s", "--out", "o", "--patch-frames", "0"],
     r"argument --patch-frames: 0 must be an integer >= 1"),
    (["prepare", "--config", "c.yaml", "--workers", "1.5"], r"argument --workers: 1.5 is not an integer"),
])
def test_bad_flag_values_are_one_line_naming_the_flag(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


def test_only_the_command_process_freezes_its_heap(tmp_path, monkeypatch, capsys):
    """``mirdl`` (argv from ``sys.argv``) freezes the heap before its process exits, so its teardown
    does not run the cyclic collector over every object; a call from Python leaves the caller's
    collector alone."""
    import gc
    import sys

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    argv = ["verify", str(tmp_path / "missing-store")]
    assert main(argv) == 2
    assert frozen == []
    monkeypatch.setattr(sys, "argv", ["mirdl", *argv])
    assert main(quiet=False) == 2
    assert frozen == [True]
    assert "mirdl verify: error" in capsys.readouterr().err


def test_the_command_process_preloads_with_the_collector_paused(tmp_path, monkeypatch, capsys):
    """``mirdl`` calls the command's ``preload()`` (its heavy imports) with the cyclic collector
    paused, freezes what it made, and enables the collector again; a call from Python does not."""
    import gc
    import sys

    import mirdl.commands.verify as verify_command

    calls, frozen = [], []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(verify_command, "preload", lambda: calls.append(gc.isenabled()), raising=False)
    argv = ["verify", str(tmp_path / "missing-store")]
    assert main(argv) == 2
    assert calls == [] and frozen == []
    monkeypatch.setattr(sys, "argv", ["mirdl", *argv])
    assert gc.isenabled()
    assert main(quiet=False) == 2
    assert calls == [False]  # paused while preloading
    assert frozen == [True, True]  # after the preload, and before the process exits
    assert gc.isenabled()
    assert "mirdl verify: error" in capsys.readouterr().err


def test_collector_paused_restores_the_collector_state(monkeypatch):
    import gc

    from mirdl.cli import collector_paused

    monkeypatch.setattr(gc, "freeze", lambda: None)
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("an import failed")
    assert gc.isenabled()  # enabled again, even after an error
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was disabled before: left disabled
    finally:
        gc.enable()


@pytest.mark.parametrize("command", ["prepare", "merge"])
def test_the_job_commands_import_beam_without_the_integrations_they_do_not_use(command):
    """``mirdl prepare``'s and ``mirdl merge``'s own processes import Beam with
    :data:`~mirdl.commands.BEAM_UNUSED` hidden (Beam imports them, when installed, only for
    integrations the jobs do not use), silently, and each imports as usual afterwards (pyarrow
    is what mirdl's Parquet stores are written with); a Python caller's ``import`` of the job
    gets Beam as it is."""
    import subprocess
    import sys

    from mirdl.commands import BEAM_UNUSED

    pytest.importorskip("pandas")
    assert {"pandas", "bson", "pyarrow", "apache_beam.io.gcp.bigquery"} <= set(BEAM_UNUSED)
    hidden = list(BEAM_UNUSED) + ["pymongo"]  # bson is pymongo's, imported first
    preloaded = (f"import sys; import mirdl.commands.{command} as c; c.preload(); "
                 f"print(*[name in sys.modules for name in {hidden!r}]); "
                 "import pyarrow.parquet, pandas, bson; print(pyarrow.parquet.__name__, pandas.__name__, bson.__name__)")
    plain = "import sys; import mirdl.pipelines.precompute; print('pandas' in sys.modules, 'pyarrow' in sys.modules)"
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
            for code in (preloaded, plain)]
    assert outs[0].stdout.split() == ["False"] * len(hidden) + ["pyarrow.parquet", "pandas", "bson"]
    assert outs[0].stderr == ""  # Beam's "apitools" and "bson" notices are dropped
    assert outs[1].stdout.split() == ["True", "True"]
