"""Where one ``mirdl prepare`` run spends its time, phase by phase, in this process.

Runs the job in-process (``mirdl.pipelines.precompute.run``) with timers around its phases: the
imports before ``run()``, building the Beam graph (``_build``), ``Pipeline.to_runner_api``, the
local engine's stages (each stage's wall time, and their number), the store card; wall and CPU
seconds of the process (every thread). Beam internals are wrapped by name (Beam 2.77's
``FnApiRunner``); the job itself is unchanged.

Usage (arguments are ``mirdl prepare``'s)::

    python benchmarks/bench_job_phases.py --config prepare.yaml --workers 1 --overwrite
"""
import collections
import sys
import time

_start_wall, _start_cpu = time.perf_counter(), time.process_time()
from apache_beam.runners.portability.fn_api_runner import fn_runner  # noqa: E402
import apache_beam as beam  # noqa: E402

from mirdl.pipelines import precompute  # noqa: E402

_imported_wall, _imported_cpu = time.perf_counter(), time.process_time()
PHASES: dict[str, list[float]] = {}
STAGES: collections.Counter = collections.Counter()


def _timed(name, fn):
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            seen = PHASES.setdefault(name, [0.0, 0.0, 0])
            seen[0] += time.perf_counter() - wall
            seen[1] += time.process_time() - cpu
            seen[2] += 1
    return wrapper


def _stage_timer(execute):
    def wrapper(self, runner_execution_context, bundle_context_manager, bundle_input):
        wall = time.perf_counter()
        try:
            return execute(self, runner_execution_context, bundle_context_manager, bundle_input)
        finally:
            STAGES[bundle_context_manager.stage.name] += time.perf_counter() - wall
    return wrapper


def main(argv=None) -> int:
    precompute._build = _timed("building the graph (_build)", precompute._build)
    beam.Pipeline.to_runner_api = _timed("Pipeline.to_runner_api", beam.Pipeline.to_runner_api)
    fn_runner.FnApiRunner.run_stages = _timed("the local engine's stages", fn_runner.FnApiRunner.run_stages)
    fn_runner.FnApiRunner._execute_bundle = _stage_timer(fn_runner.FnApiRunner._execute_bundle)
    precompute.write_card_with_plots = _timed("store card", precompute.write_card_with_plots)
    wall, cpu = time.perf_counter(), time.process_time()
    status = precompute.run(sys.argv[1:] if argv is None else argv)
    print(f"imports before run(): {_imported_wall - _start_wall:.2f} s wall, {_imported_cpu - _start_cpu:.2f} s CPU",
          file=sys.stderr)
    for name, (seconds, cpu_seconds, calls) in PHASES.items():
        print(f"{name}: {seconds:.2f} s wall, {cpu_seconds:.2f} s CPU ({calls} call(s))", file=sys.stderr)
    print(f"run(): {time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU; "
          f"{len(STAGES)} stages, slowest first:", file=sys.stderr)
    for name, seconds in STAGES.most_common():
        print(f"  {seconds:7.3f} s  {name[:160]}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
