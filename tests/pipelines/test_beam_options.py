"""Beam options passed through ``mirdl prepare``: runners' own flags pass, unknown ones and an
unknown runner are one ``ConfigError`` line naming the option (exit 2), before any work."""
import subprocess
import sys

import pytest

from mirdl.errors import ConfigError
from mirdl.pipelines.beam_options import RUNNER_NAMES, check_beam_args, check_runner

ACCEPTED = [
    # Dataflow
    ["--runner=DataflowRunner", "--project=my-project", "--region", "europe-west1", "--temp_location=gs://b/tmp",
     "--staging_location=gs://b/staging", "--machine_type=n1-standard-4", "--max_num_workers=10",
     "--service_account_email=a@b.iam.gserviceaccount.com"],
    # Flink
    ["--runner=FlinkRunner", "--flink_master=host:8081", "--parallelism=32", "--flink_version=1.19"],
    # Spark, portable and Prism
    ["--runner=SparkRunner", "--spark_master_url=spark://host:7077"],
    ["--runner=PortableRunner", "--job_endpoint=localhost:8099", "--environment_type=LOOPBACK",
     "--sdk_worker_parallelism=4", "--environment_config=apache/beam_python3.11_sdk"],
    ["--runner=prism", "--prism_location=/opt/prism"],
    # Dependencies, local engine, logging; a value as the next argument; a repeatable flag
    ["--setup_file=./setup.py", "--requirements_file", "requirements.txt", "--direct_num_workers=4",
     "--direct_running_mode=multi_threading", "--experiments=a", "--experiments=b", "--save_main_session",
     "--default_sdk_harness_log_level=DEBUG"],
    # Beam resolves runner names case-insensitively, "Runner" optional; dotted path of a runner class
    ["--runner=dataflow"], ["--runner", "direct"],
    ["--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner"],
    ["--runner=mirdl.pipelines.local_runner.LocalRunner"],
    [],
]


@pytest.mark.parametrize("beam_args", ACCEPTED, ids=lambda args: " ".join(args)[:40] or "none")
def test_options_some_runner_knows_pass(beam_args):
    check_beam_args(beam_args)


REJECTED = [
    (["--bogus_option=1"], r"^unknown option --bogus_option=1: not a flag of this command nor an option of any "
                           r"Beam runner$"),
    (["--runner=FlinkRunner", "--flink_mastr=host:8081"], r"unknown option --flink_mastr=host:8081: .* "
                                                          r"\(did you mean --flink_master\?\)"),
    (["--projct", "p"], r"unknown option --projct: .*did you mean --project\?"),  # Beam takes no abbreviations
    (["--proj=p"], r"unknown option --proj=p"),
    (["--direct_running_mode=fast"], r"argument --direct_running_mode: invalid choice: 'fast'"),
    (["--direct_num_workers=many"], r"argument --direct_num_workers: invalid int value: 'many'"),
    (["stray"], r"unexpected argument 'stray'"),
    (["--runner=NoSuchRunner"], r"--runner='NoSuchRunner' is not a Beam runner: use one of .*DataflowRunner, "
                                r"DirectRunner, FlinkRunner.*, or the dotted path of a PipelineRunner subclass"),
    (["--runner=no.such.Runner"], r"--runner='no.such.Runner' cannot be imported \(ModuleNotFoundError"),
    (["--runner=apache_beam.runners.runner.PipelineState"], r"is not a PipelineRunner subclass"),
]


@pytest.mark.parametrize("beam_args, message", REJECTED, ids=lambda x: " ".join(x)[:40] if isinstance(x, list) else "")
def test_unknown_options_and_runners_are_named(beam_args, message):
    with pytest.raises(ConfigError, match=message):
        check_beam_args(beam_args)


def test_the_commands_own_flags_are_suggested():
    with pytest.raises(ConfigError, match=r"did you mean --max-error-rate\?"):
        check_beam_args(["--max_error_rate=0.1"], other_flags=["--workers", "--max-error-rate"])


def test_runner_names_are_beams():
    from apache_beam.runners.runner import create_runner

    assert {"DataflowRunner", "DirectRunner", "FlinkRunner", "FnApiRunner", "PortableRunner",
            "PrismRunner", "SparkRunner"} <= set(RUNNER_NAMES)
    for name in ("FnApiRunner", "fnapi", "BundleBasedDirectRunner"):  # what we accept, Beam can make
        check_runner(name)
        create_runner(name)
    with pytest.raises(ValueError):  # and what we refuse, Beam refuses (later, with a traceback)
        create_runner("NoSuchRunner")


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    from mirdl.cli import main

    config = tmp_path / "prepare.yaml"  # never read: options are checked first
    for flag, message in [("--bogus_option=1", "unknown option --bogus_option=1"),
                          ("--runner=NoSuchRunner", "--runner='NoSuchRunner' is not a Beam runner")]:
        assert main(["prepare", "--config", str(config), flag]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mirdl prepare: error: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize("flag, value, message", [
    ("--workers", "0", "argument --workers: 0 must be an integer >= 1"),
    ("--workers", "two", "argument --workers: two is not an integer"),
    ("--max-error-rate", "2", "argument --max-error-rate: 2 must be a number in [0, 1]"),
    ("--max-error-rate", "nan", "argument --max-error-rate: nan must be finite"),
])
def test_bad_job_flags_are_one_line(tmp_path, capsys, flag, value, message):
    from mirdl.cli import main

    try:
        status = main(["prepare", "--config", str(tmp_path / "prepare.yaml"), flag, value])
    except SystemExit as exit_:  # the argument parser's own errors
        status = exit_.code
    assert status == 2
    assert capsys.readouterr().err == f"mirdl prepare: error: {message}\n"


@pytest.mark.parametrize("args, message", [
    (["--bogus_option=1"], "unknown option --bogus_option=1: not a flag of this command nor an option of any "
                           "Beam runner"),
    (["--workers", "0"], "argument --workers: 0 must be an integer >= 1"),
])
def test_a_bad_option_is_the_only_line_on_stderr(tmp_path, args, message):
    """As a user runs it: nothing else on stderr (not Beam's import-time warnings either)."""
    result = subprocess.run([sys.executable, "-m", "mirdl", "prepare", "--config", str(tmp_path / "x.yaml"), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == f"mirdl prepare: error: {message}\n"
