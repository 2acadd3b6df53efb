"""How a run ends on Ctrl-C and on a full disk (:mod:`mirdl.pipelines.failures`), piece by piece.

The whole job under both is tested end to end in ``test_precompute.py``.
"""
import logging
import os
import re
import shutil
import signal
import threading
import time

import pytest

from mirdl.pipelines.failures import (
    disk_full_message,
    free_bytes,
    quiet_failed_bundles,
    stop_on_interrupt,
    unwritable_path,
)


def ctrl_c():
    """SIGINT to this process, as a Ctrl-C at the terminal; its handler runs right after the kill."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # interrupted by the handler's exception
    raise AssertionError("SIGINT was not handled")


def test_ctrl_c_leaves_as_one_keyboard_interrupt_whatever_beam_wraps_it_in():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="^nothing was written$") as raised:
        with stop_on_interrupt():
            try:
                ctrl_c()
            except KeyboardInterrupt as interrupt:  # what Beam does inside a step (in this process)
                raise RuntimeError("KeyboardInterrupt [while running 'Decode']") from interrupt
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_again_does_not_cut_the_clean_up_short():
    cleaned = []
    with pytest.raises(KeyboardInterrupt, match="nothing was written"):
        with stop_on_interrupt():
            try:
                ctrl_c()
            finally:  # e.g. deleting the temporary store, while the user presses Ctrl-C again
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                cleaned.append(True)
    assert cleaned == [True]


def test_after_ctrl_c_the_shutdown_logs_and_thread_errors_are_silent(capfd):
    logger = logging.getLogger("apache_beam.runners.portability.fn_api_runner.worker_handlers")
    hook = threading.excepthook
    with pytest.raises(KeyboardInterrupt):
        with stop_on_interrupt():
            try:
                ctrl_c()
            finally:  # what Beam's clean-up does when workers are gone
                logger.error("Error closing worker_handler", exc_info=ValueError("broken pipe"))
                thread = threading.Thread(target=lambda: 1 / 0)
                thread.start()
                thread.join()
    assert capfd.readouterr().err == ""
    assert logger.isEnabledFor(logging.ERROR) and threading.excepthook is hook  # both restored


def test_without_ctrl_c_errors_pass_unchanged():
    with pytest.raises(ValueError, match="a bug"):
        with stop_on_interrupt():
            raise ValueError("a bug")
    with stop_on_interrupt():
        pass


def test_failed_bundles_are_raised_not_also_logged(caplog):
    from apache_beam.runners import common  # logs a failed step's exception, then raises it

    beam_logger = logging.getLogger(common.__name__)
    caplog.clear()
    with quiet_failed_bundles():
        beam_logger.exception(RuntimeError("OSError: [Errno 28] No space left on device"))
    assert caplog.records == []
    beam_logger.error("after")  # levels are restored
    assert [record.getMessage() for record in caplog.records] == ["after"]


FULL = [
    (OSError(28, "No space left on device"), ""),
    (OSError(28, "No space left on device", "/data/out/x.parquet"), "/data/out/x.parquet"),
    # TensorFlow's TFRecordWriter, as Beam re-raises it in the same process or from a worker
    (RuntimeError("tensorflow.python.framework.errors_impl.ResourceExhaustedError: /data/.s.tmp-1/a.tfrecord; "
                  "No space left on device [while running 'WriteShards/WriteShard']"), "/data/.s.tmp-1/a.tfrecord"),
    (RuntimeError("OSError: [Errno 28] No space left on device [while running 'WriteShards/SpillRecords']"), ""),
    # h5py
    (OSError(28, "Can't synchronously write data (file write failed: filename = '/data/x.h5', errno = 28, "
                 "error message = 'No space left on device')"), "/data/x.h5"),
    # pyarrow
    (OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device"), ""),
]


@pytest.mark.parametrize("error, path", FULL)
def test_a_full_disk_is_recognised_with_its_path(error, path):
    assert unwritable_path(error) == path
    try:  # also when it is only the cause of what reaches the driver
        raise RuntimeError("Pipeline failed") from error
    except RuntimeError as wrapped:
        assert unwritable_path(wrapped) == path


@pytest.mark.parametrize("error", [OSError(13, "Permission denied", "/data/x"), MemoryError(),
                                   RuntimeError("ResourceExhaustedError: OOM when allocating tensor"),
                                   ValueError("28 files")])
def test_other_errors_are_not_a_full_disk(error):
    assert unwritable_path(error) is None
    assert disk_full_message(error, store="/data/store") is None


def test_the_message_names_the_store_for_its_temporary_files_else_the_file(tmp_path):
    store = tmp_path / "stores" / "demo"
    spill_file = store.parent / ".demo.tmp-ab12" / "_work" / "spill" / "x.spill"
    inside = OSError(28, "No space left on device", str(spill_file))
    for error in (inside, OSError(28, "No space left on device")):
        message = disk_full_message(error, store=store)
        assert message.startswith(f"no space left on device writing {store} (") and message.endswith(
            "; nothing was written")
    elsewhere = OSError(28, "No space left on device", str(tmp_path / "scratch" / "x"))
    assert disk_full_message(elsewhere, store=store).startswith(f"no space left on device writing {tmp_path}/scratch")
    # The free space is the one of the store's filesystem (measured at its nearest existing parent).
    free_mb = float(re.search(r"\(([\d,.]+) MB free there\)", message)[1].replace(",", ""))
    assert free_mb == pytest.approx(shutil.disk_usage(tmp_path).free / 1e6, abs=50)  # other tests write too
    assert free_bytes(store) == pytest.approx(shutil.disk_usage(tmp_path).free, abs=50e6)
