"""The local runner's bundles sample their state every ``SAMPLING_PERIOD_MS`` (issue 10, round 10):
a bundle's end joins its sampler's thread, which sleeps a period at a time, so Beam's 200 ms
period made every long bundle wait up to 200 ms for it."""
import threading

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.worker import statesampler

from mirdl.pipelines.local_runner import SAMPLING_PERIOD_MS, LocalRunner, state_sampling_period


def beam_default_period() -> int:
    return statesampler.StateSampler("step", None).sampling_period_ms


class RecordPeriod(beam.DoFn):
    """Each element -> the sampling period of the bundle that processes it."""

    def process(self, element):
        yield statesampler.get_current_tracker().sampling_period_ms


@pytest.mark.parametrize("workers", [1, 2])
def test_the_bundles_of_a_local_run_sample_at_its_period_and_beam_s_default_returns(workers, tmp_path):
    options = PipelineOptions(direct_num_workers=workers, direct_running_mode="multi_threading")
    out = tmp_path / "periods"
    with beam.Pipeline(runner=LocalRunner(), options=options) as pipeline:
        _ = (pipeline | beam.Create(range(8)) | beam.Reshuffle() | beam.ParDo(RecordPeriod())
             | beam.Map(str) | beam.io.WriteToText(str(out)))
    periods = {int(line) for path in tmp_path.glob("periods*") for line in path.read_text().split()}
    assert periods == {SAMPLING_PERIOD_MS}
    assert SAMPLING_PERIOD_MS < statesampler.DEFAULT_SAMPLING_PERIOD_MS
    assert beam_default_period() == statesampler.DEFAULT_SAMPLING_PERIOD_MS


def test_overlapping_runs_restore_beam_s_default_when_the_last_one_ends():
    first_in, second_done, periods = threading.Event(), threading.Event(), []

    def second():
        first_in.wait()
        with state_sampling_period(10):
            periods.append(beam_default_period())
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with state_sampling_period(10):
        first_in.set()
        second_done.wait()
        periods.append(beam_default_period())  # the second run ended inside the first one
    thread.join()
    assert periods == [10, 10]
    assert beam_default_period() == statesampler.DEFAULT_SAMPLING_PERIOD_MS


def test_another_beam_s_sampler_is_left_alone(monkeypatch):
    # A Beam whose documented default is not its sampler's default: nothing is changed.
    monkeypatch.setattr(statesampler, "DEFAULT_SAMPLING_PERIOD_MS", 150)
    with state_sampling_period(10):
        assert beam_default_period() == 200
    assert beam_default_period() == 200
