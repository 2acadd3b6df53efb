"""``mirdl prepare`` on Beam's portable runner: Beam's own local job service and SDK worker pool,
started here on 127.0.0.1 (free ports) and stopped by their process group's id.

One tiny corpus (3 tracks + one corrupt file). The portable store must equal the local engine's
byte for byte; the job must ship the package (``--setup_file``) and run from another working
directory; a pool whose workers lack ``apache_beam`` must end in a clear error, not a hang.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from mirdl.cli import main  # noqa: E402
from mirdl.features.synth import ODD_FILES  # noqa: E402
from mirdl.pipelines.precompute import EXIT_SOME_FAILED, EXIT_TIMEOUT, prepare  # noqa: E402
from mirdl.errors import ConfigError  # noqa: E402
from mirdl.store.manifest import read_manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SR = 16000
CORRUPT = sorted(name for name, (_, decodes, _) in ODD_FILES.items() if not decodes)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it when the test process dies, so a pytest run
    killed mid-test (SIGTERM/SIGKILL: no finalizers) leaves no job service or pool behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_service(request, args: list[str], *, port: int, path: str, log: Path, cwd: Path) -> subprocess.Popen:
    """Start ``python -m ARGS`` in its own process group with ``PATH=path``; wait until ``port``
    accepts connections; stop the group (SIGTERM, then SIGKILL) when the module ends."""
    env = {**os.environ, "PATH": path}
    with open(log, "wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=cwd, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=_die_with_parent)

    def stop() -> None:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    request.addfinalizer(stop)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start: {log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(0.2)


def start_beam(request, root: Path, *, path: str) -> dict:
    """A local job service and an EXTERNAL SDK worker pool whose workers run ``python`` from ``path``."""
    root.mkdir(parents=True)
    staging, job_port, pool_port = root / "staging", free_port(), free_port()
    start_service(request, ["apache_beam.runners.portability.local_job_service_main", "--port", str(job_port),
                            "--staging_dir", str(staging)], port=job_port, path=path, log=root / "job.log", cwd=root)
    start_service(request, ["apache_beam.runners.worker.worker_pool_main", "--service_port", str(pool_port)],
                  port=pool_port, path=path, log=root / "pool.log", cwd=root)
    return {"staging": staging, "flags": ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                                          "--environment_type=EXTERNAL",
                                          f"--environment_config=localhost:{pool_port}"],
            "job_endpoint": f"localhost:{job_port}", "pool": f"localhost:{pool_port}"}


@pytest.fixture(scope="module")
def beam_services(request, tmp_path_factory):
    """Job service + worker pool with this venv's bin first on PATH (the workers import apache_beam and mirdl)."""
    return start_beam(request, tmp_path_factory.mktemp("beam") / "services",
                      path=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]))


@pytest.fixture(scope="module")
def corpus(synth_corpus, odd_audio, tmp_path_factory):
    """3 synthetic tracks and one corrupt file, listed in labels.csv."""
    root = tmp_path_factory.mktemp("portable") / "corpus"
    rows = []
    for track in synth_corpus.tracks[:3]:
        (root / track.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_corpus.root / track.path, root / track.path)
        rows.append(f"{track.path},{track.label},{track.artist}")
    (root / "odd").mkdir()
    shutil.copy(odd_audio[CORRUPT], root / "odd" / odd_audio[CORRUPT].name)
    rows.append(f"odd/{odd_audio[CORRUPT].name},pluck,odd")
    (root / "labels.csv").write_text("path,label,artist\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root


def write_config(corpus: Path, name: str) -> Path:
    """A config next to the corpus writing store ``name`` (relative paths: resolved from the config's folder)."""
    config = {
        "name": "tiny", "seed": 3,
        "corpus": {"type": "csv", "csv": "corpus/labels.csv", "group_column": "artist"},
        "splits": {"fractions": {"train": 0.5, "test": 0.5}, "group_by": "track"},
        "features": [{"name": "logmel", "representation": "logmel", "sample_rate": SR,
                      "params": {"n_fft": 512, "hop_length": 256, "n_mels": 16}}],
        "augment": {"n_variants": 1},
        "segment": {"mode": "clip", "patch_seconds": 0.5, "hop_seconds": 0.5, "pad": "silence"},
        "store": {"format": "parquet", "out": name, "compression": "none", "shard_bytes": "16KB"},
    }
    path = corpus.parent / f"{name}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def comparable(manifest: dict) -> dict:
    """The manifest without what docs/store-format.md says may differ between two identical runs on
    one machine: ``created`` and ``provenance.command``."""
    provenance = {key: value for key, value in manifest["provenance"].items() if key != "command"}
    return {**{key: value for key, value in manifest.items() if key != "created"}, "provenance": provenance}


@pytest.mark.slow
def test_portable_store_is_byte_identical_ships_the_package_and_keeps_dead_letters(
        beam_services, corpus, tmp_path, monkeypatch, capsys):
    assert prepare(write_config(corpus, "local"), workers=1, out=sys.stdout) == EXIT_SOME_FAILED
    assert "audio s/s on Beam's local engine in this process)" in capsys.readouterr().out
    # From an unrelated working directory, with --setup_file relative to it: nothing in the job
    # may depend on the driver's working directory or on state set in the driver's modules.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    setup_file = os.path.relpath(REPO / "setup.py", elsewhere)
    config = write_config(corpus, "portable")
    status = main(["prepare", "--config", str(config), *beam_services["flags"], f"--setup_file={setup_file}",
                   "--stall-timeout", "120", "--job-timeout", "300"])
    output = capsys.readouterr()
    assert status == EXIT_SOME_FAILED, output.err[-3000:]

    local, portable = corpus.parent / "local", corpus.parent / "portable"
    mine, theirs = read_manifest(local), read_manifest(portable)
    # Bit identity is the promise (same machine, same environment): shard names, sizes and sha256.
    assert theirs["splits"] == mine["splits"]
    assert comparable(theirs) == comparable(mine)
    # The corrupt file is a dead-letter record under the portable runner too.
    errors = (portable / "errors.jsonl").read_text(encoding="utf-8")
    corrupt = next((corpus / "odd").iterdir())
    assert [json.loads(line)["path"] for line in errors.splitlines()] == [str(corrupt)]
    assert errors == (local / "errors.jsonl").read_text(encoding="utf-8")
    # The summary says what ran.
    ran = (f"PortableRunner (job endpoint {beam_services['job_endpoint']}, EXTERNAL workers at "
           f"{beam_services['pool']})")
    assert f"running on {ran}" in output.out
    assert f"audio s/s on {ran})" in output.out
    assert "worker(s)" not in output.out
    assert "no --setup_file" not in output.out  # a package was given: no note about what workers need
    # The job service received the package built from setup.py (Beam's workflow tarball: an sdist of mirdl).
    staged = [path for path in beam_services["staging"].rglob("*") if path.is_file() and tarfile.is_tarfile(path)]
    names = [name for path in staged for name in tarfile.open(path).getnames()]
    assert any(name.endswith("/setup.py") and name.split("/")[0].startswith("mirdl-") for name in names), staged
    assert any(name.endswith("/pipelines/precompute.py") for name in names)


@pytest.mark.slow
def test_no_package_given_says_what_the_workers_need(beam_services, corpus, capsys):
    config = write_config(corpus, "no-package")
    assert main(["prepare", "--config", str(config), *beam_services["flags"]]) == EXIT_SOME_FAILED
    out = capsys.readouterr().out
    assert "note: no --setup_file, --requirements_file, --extra_package or --sdk_container_image given" in out
    assert "must already have mirdl" in out


@pytest.mark.parametrize("flag", ["--job_endpoint", "--environment_config"])
def test_unreachable_endpoint_is_one_line_naming_the_flag(beam_services, corpus, flag, capsys):
    dead = f"localhost:{free_port()}"  # nothing listens there
    flags = [f"{flag}={dead}" if arg.startswith(flag + "=") else arg for arg in beam_services["flags"]]
    started = time.monotonic()
    assert main(["prepare", "--config", str(write_config(corpus, "unreachable")), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert time.monotonic() - started < 30
    assert len(err.splitlines()) == 1 and f"{flag}={dead}: cannot connect" in err, err
    assert not (corpus.parent / "unreachable").exists()


@pytest.mark.parametrize("flag", ["--setup_file", "--requirements_file"])
def test_missing_package_file_is_one_line_naming_the_flag(corpus, flag, capsys):
    status = main(["prepare", "--config", str(write_config(corpus, "missing")), "--runner=PortableRunner",
                   "--job_endpoint=localhost:1", f"{flag}=no/such/file.txt"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and f"{flag}=no/such/file.txt: no such file" in err, err


def test_a_store_on_object_storage_needs_workers_on_this_host(corpus, capsys):
    """store.out=s3://... is built in a local staging folder: remote workers would write elsewhere."""
    config = write_config(corpus, "s3-store")
    config.write_text(config.read_text().replace('"out": "s3-store"', '"out": "s3://lab-bucket/stores/tiny"'))
    status = main(["prepare", "--config", str(config), "--runner=FlinkRunner", "--flink_master=jobmanager:8081"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    assert "store.out='s3://lab-bucket/stores/tiny'" in err and "workers of FlinkRunner do not see" in err, err


def test_job_timeouts_need_a_runner(corpus, capsys):
    with pytest.raises(ConfigError, match=r"job_timeout=5 \(--job-timeout\) needs a --runner"):
        prepare(write_config(corpus, "local-timeout"), workers=1, job_timeout=5)
    assert main(["prepare", "--config", str(write_config(corpus, "local-timeout")), "--stall-timeout", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(--stall-timeout) needs a --runner" in err, err


@pytest.mark.slow
@pytest.mark.parametrize("limit, message", [
    (["--stall-timeout", "8"], "job cancelled: no input file finished for --stall-timeout=8 s (0 of 4 done)"),
    (["--job-timeout", "6", "--stall-timeout", "1000"], "job cancelled: it did not finish within --job-timeout=6 s"),
], ids=["stall", "job"])
def test_a_pool_without_the_project_env_is_cancelled_with_a_clear_error(request, corpus, tmp_path, capsys, limit,
                                                                        message):
    """The known hang: a pool whose PATH lacks the venv starts `python` without apache_beam; the
    job would stay RUNNING forever. --stall-timeout (or --job-timeout) cancels it: exit 6, one
    line, nothing written."""
    bare_bin = tmp_path / "bare-bin"
    bare_bin.mkdir()
    (bare_bin / "python").symlink_to(shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3")
    assert subprocess.run([str(bare_bin / "python"), "-c", "import apache_beam"], capture_output=True,
                          timeout=60).returncode != 0, "this test needs a python without apache_beam"
    services = start_beam(request, tmp_path / "bare", path=os.pathsep.join([str(bare_bin), "/usr/bin", "/bin"]))
    started = time.monotonic()
    status = main(["prepare", "--config", str(write_config(corpus, "hang")), *services["flags"], *limit])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert status == EXIT_TIMEOUT, err[-3000:]
    assert elapsed < 60
    last = err.strip().splitlines()[-1]
    assert message in last, err[-3000:]
    assert "nothing was written" in last and f"job endpoint {services['job_endpoint']}" in last
    assert not (corpus.parent / "hang").exists()
