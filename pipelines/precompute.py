"""The precompute job: a corpus and a config in, a sharded feature store out (``mirdl prepare``).

::

    Listing (file) -> ParseTracks -> Reshuffle -> [Annotations] -> Decode -> Augment -> Features -> Segment -> records
    records -> SpillRecords (record to a spill file, index entry out) -> index
    index   -> RecordBytes -> BytesPerSplit -> ShardsPerSplit --(side input)--+
    index   -> AssignShard <------------------------------------------------+
            -> GroupByShard -> WriteShard (read back from the spill, sorted by key) -> ShardList -> SaveShards
    records -> TrainRecords -> Stats (per-bin mean/std, CombineFn) -> SaveStats
    records -> SplitTrack -> DistinctTracks -> TracksPerSplit -> SaveTracks
    Decode  -> DecodedSamples -> Durations -> SaveCorpus
    errors of every step + listing errors -> ErrorList -> SaveErrors (errors.jsonl, sorted)
                                                     \\-> TooManyFailed --(side input)--> WriteShard

The driver holds the listing (paths and labels) only: audio and features live in the
workers. Records do not go through the runner's shuffle: each one is appended to a spill
file of its bundle (:mod:`mirdl.pipelines.spill`) and only a small index entry per record is
shuffled; the shard writer reads its records back. Everything, spill files included, is
written into a temporary sibling of ``store.out``; the driver reads the small summaries the
pipeline saved there, deletes the spill files and the summaries, writes ``manifest.json``
last and renames the directory onto ``store.out`` (on any failure or abort the whole
temporary directory is deleted). Shards are byte-identical for the same corpus, config and seed
whatever the runner or worker count (records are sharded by a hash of their key and sorted
inside a shard).

Exit status of :func:`run`: 0 every file made it into the store; 3 the store was written
but some files failed (``errors.jsonl``); 4 more than ``--max-error-rate`` of the files
failed, nothing was written; 5 the disk filled up, nothing was written (one line names the
path and the free space there). A config, Beam option or destination problem raises
:class:`~mirdl.errors.MirdlError` (the CLI prints one line and exits 2); Ctrl-C raises
``KeyboardInterrupt("nothing was written")`` once the temporary store is deleted (the CLI
prints one line and exits 130). See :mod:`mirdl.pipelines.failures`.

Runner: without ``--runner``, the DirectRunner's own local engine (Beam's FnApiRunner) with
``--direct_running_mode=multi_processing --direct_num_workers=N`` (``--workers N``; 1 runs in
this process), with worker processes that stop quietly on Ctrl-C and leave their error reports
to this driver (:class:`~mirdl.pipelines.local_runner.LocalRunner`). It is named directly because Beam 2.77's
``DirectRunner`` first tries to download and start the Prism runner, a network call that fails
offline before it falls back to this same engine; ``--runner=DirectRunner`` still works when
given. Any other Beam option is passed through unchanged (``--runner=DataflowRunner
--project=...``, ``--runner=FlinkRunner ...``) once checked: an unknown runner, or an option
no Beam runner knows, is a config error (:mod:`mirdl.pipelines.beam_options`). With any other
runner (``--runner=PortableRunner --job_endpoint=... --environment_type=EXTERNAL ...``) the
endpoints must answer before the job is submitted, ``--setup_file`` / ``--requirements_file``
are resolved and checked, and the driver cancels a job that outlives ``--job-timeout`` or
finishes no input file for ``--stall-timeout`` (exit 6; :mod:`mirdl.pipelines.runners`). No
step depends on state set in the driver's modules or on its working directory (every path in
the graph is absolute), so workers need only the installed package. On a cluster
``store.out`` must be on a filesystem every worker sees (shards and spill files are written
there). The local runner keeps what it shuffles in memory: the index entries (about 0.5 KB
per record at the peak), not the records, so a local run's memory is about one shard per
worker plus that index, whatever the store's size in bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from mirdl.errors import ConfigError, StoreError
from mirdl.features import audio
from mirdl.features.checks import fraction, integer, positive_float
from mirdl.pipelines.beam_options import check_beam_args
from mirdl.pipelines.config import PrepareConfig
from mirdl.pipelines.corpus import Track, list_tracks, listing_hash, split_warnings, task_for
from mirdl.pipelines.dead_letter import ErrorRecord, write_error_records
from mirdl.pipelines.failures import disk_full_message, quiet_failed_bundles, stop_on_interrupt
from mirdl.pipelines.local_runner import LocalRunner
from mirdl.pipelines.manifest import build_manifest, inputs_sha256, store_fingerprint
from mirdl.pipelines.options import add_arguments
from mirdl.pipelines.runners import (
    DEFAULT_STALL_TIMEOUT,
    JobTimeout,
    check_endpoints,
    describe_runner,
    is_local,
    packaging_note,
    resolve_packaging,
    wait_guarded,
    workers_on_this_host,
)
from mirdl.pipelines.stats import DurationSummaryFn, FeatureStatsFn
from mirdl.pipelines.transforms import (
    METRICS_NAMESPACE,
    ComputeRecords,
    RecordLayout,
    WriteShards,
    track_from_json,
    track_to_json,
)
from mirdl.store.build import open_destination
from mirdl.store.describe import write_card_with_plots
from mirdl.store.files import atomic_path, is_remote, write_json_atomic
from mirdl.store.format import ERRORS_NAME, MANIFEST_NAME
from mirdl.store.manifest import provenance, read_manifest
from mirdl.store.remote import upload_store
from mirdl.store.verify import check_shards

__all__ = ["EXIT_OK", "EXIT_SOME_FAILED", "EXIT_ABORTED", "EXIT_DISK_FULL", "EXIT_TIMEOUT", "run", "prepare",
           "pipeline_options", "balance_tracks", "PROBE_LIMIT"]

EXIT_OK = 0
EXIT_SOME_FAILED = 3
EXIT_ABORTED = 4
EXIT_DISK_FULL = 5
EXIT_TIMEOUT = 6
#: Folder inside the temporary store where the pipeline leaves its summaries for the driver.
WORK_DIR = "_work"
#: Folder inside WORK_DIR for the records on their way to their shard (:mod:`mirdl.pipelines.spill`).
SPILL_DIR = "spill"
_FIRST_REASONS = 5


class _Aborted(Exception):
    """Too many files failed: unwinds out of the temporary store, which is then deleted."""


def run(argv: list[str] | None = None) -> int:
    """Run the job with command-line arguments; unknown ones are Beam pipeline options.

    Examples
    --------
    >>> run(["--config", "configs/prepare_demo.yaml", "--workers", "2"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(prog="mirdl prepare", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args, beam_args = parser.parse_known_args(argv)
    return prepare(args.config, workers=args.workers, overwrite=args.overwrite,
                   max_error_rate=args.max_error_rate, job_timeout=args.job_timeout,
                   stall_timeout=args.stall_timeout, beam_args=beam_args)


def pipeline_options(beam_args: list[str], *, workers: int) -> PipelineOptions:
    """Beam options: ``beam_args`` as given; unless they name a runner, Beam's local FnApiRunner
    with ``workers`` processes (1: in this process). Not ``DirectRunner``: in Beam 2.77 it first
    tries to download and start the Prism runner, which needs the network.

    ``--setup_file`` and ``--requirements_file`` are made absolute (relative to the working
    directory) and must exist (:func:`mirdl.pipelines.runners.resolve_packaging`).

    Raises
    ------
    mirdl.errors.ConfigError
        An unknown ``--runner``, an option no Beam runner knows, or a missing ``--setup_file`` /
        ``--requirements_file`` (named in the message).
    """
    check_beam_args(beam_args, other_flags=_own_flags())
    args = list(beam_args)

    def given(flag: str) -> bool:
        return any(arg == flag or arg.startswith(flag + "=") for arg in args)

    if not given("--runner"):
        args.append("--runner=FnApiRunner")
        if not given("--direct_running_mode"):
            args.append(f"--direct_running_mode={'multi_processing' if workers > 1 else 'in_memory'}")
        if not given("--direct_num_workers"):
            args.append(f"--direct_num_workers={workers}")
    options = PipelineOptions(args)
    resolve_packaging(options)
    return options


def _own_flags() -> list[str]:
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return [flag for action in parser._actions for flag in action.option_strings]  # noqa: SLF001


def _runner(options: PipelineOptions) -> LocalRunner | None:
    """The runner object for ``options``: Beam's local engine with quiet workers, else None (Beam
    makes the runner ``--runner`` names)."""
    return LocalRunner() if options.view_as(StandardOptions).runner == "FnApiRunner" else None


def prepare(config_path: str | os.PathLike | PrepareConfig, *, workers: int = 2, overwrite: bool = False,
            max_error_rate: float | None = None, job_timeout: float | None = None,
            stall_timeout: float | None = None, beam_args: list[str] | None = None,
            out: TextIO | None = None) -> int:
    """Build (or confirm) the store a config (file, or a checked PrepareConfig) describes; return the exit status (see module docs).

    With ``store.out`` on object storage (``s3://``, ``gs://``) the store is built in a local
    staging folder (under ``$MIRDL_CACHE`` if set, else the system's temporary folder), then
    copied to the URL atomically (:func:`mirdl.store.remote.upload_store`: temporary prefix,
    manifest last) and the staging folder removed. The workers write locally, so this is for
    the local runner; on a cluster, give ``store.out`` on a shared filesystem.

    With a runner other than the local engine, ``--job_endpoint`` and an ``EXTERNAL``
    environment's ``--environment_config`` must accept a connection before anything is
    submitted, and the job is cancelled (exit 6, nothing written) after ``job_timeout`` seconds
    or ``stall_timeout`` seconds (default 600) without an input file finishing
    (:mod:`mirdl.pipelines.runners`). The local engine cannot be cancelled: both need ``--runner``.
    """
    out = out or sys.stdout
    workers = integer(workers, name="workers", minimum=1)
    if max_error_rate is not None:
        max_error_rate = fraction(max_error_rate, name="max_error_rate")
    timeouts = {name: positive_float(value, name=name) if value is not None else None
                for name, value in (("job_timeout", job_timeout), ("stall_timeout", stall_timeout))}
    options = pipeline_options(beam_args or [], workers=workers)
    if is_local(options):
        given = [name for name, value in timeouts.items() if value is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{given[0]}={timeouts[given[0]]:g} ({flag}) needs a --runner: the local engine cannot "
                              "be cancelled (Ctrl-C stops it)")
    else:
        check_endpoints(options)
        if timeouts["stall_timeout"] is None:
            timeouts["stall_timeout"] = DEFAULT_STALL_TIMEOUT
    config = config_path if isinstance(config_path, PrepareConfig) else PrepareConfig.from_file(config_path)
    if not is_remote(config.store.out, param="store.out"):
        return _prepare(config, workers=workers, overwrite=overwrite, max_error_rate=max_error_rate,
                        options=options, out=out, **timeouts)
    url = config.store.out
    if not workers_on_this_host(options):
        raise ConfigError(f"store.out={url!r}: a store on object storage is built in a staging folder on this "
                          f"machine, which the workers of {describe_runner(options, workers=workers)} do not see; "
                          "give store.out on a filesystem every worker mounts (then `mirdl publish` the store to "
                          "object storage)")
    staging = Path(tempfile.mkdtemp(prefix="mirdl-prepare-", dir=os.environ.get("MIRDL_CACHE") or None))
    try:
        local = staging / config.name
        status = _prepare(config, workers=workers, overwrite=overwrite, max_error_rate=max_error_rate,
                          options=options, out=out, store=local, remote=url, **timeouts)
        if local.is_dir():
            upload_store(local, url, overwrite=overwrite, param="store.out")
            print(f"copied {config.name} to {url} (manifest last)", file=out)
        return status
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remote_up_to_date(url: str, *, fingerprint: str, overwrite: bool) -> bool:
    """Whether the store at ``url`` is this config's (same fingerprint, verified sizes): then
    nothing is built. A store with another fingerprint needs ``--overwrite``."""
    try:
        manifest = read_manifest(url)
    except StoreError as err:
        if "missing" in str(err):
            return False
        if overwrite:
            return False
        raise StoreError(f"store.out={url!r} holds a damaged store ({err}); pass --overwrite to replace it") from err
    if overwrite:
        return False
    if manifest.get("fingerprint") != fingerprint:
        raise StoreError(f"store.out={url!r} holds a store with fingerprint {manifest.get('fingerprint')}, this "
                         f"config gives {fingerprint}; pass --overwrite to replace it")
    check_shards(url, manifest)
    return True


def _prepare(config: PrepareConfig, *, workers: int, overwrite: bool, max_error_rate: float | None,
             options: PipelineOptions, out: TextIO, store: Path | None = None, remote: str | None = None,
             job_timeout: float | None = None, stall_timeout: float | None = None) -> int:
    tracks, listing_errors = list_tracks(config.corpus, config.splits)
    layout = RecordLayout.build(config, task_for(config.corpus, tracks))
    listing_sha256 = listing_hash(tracks)
    fingerprint = store_fingerprint(config, task=layout.task, listing_sha256=listing_sha256)
    store = Path(config.store.out) if store is None else store
    if remote is not None and _remote_up_to_date(remote, fingerprint=fingerprint, overwrite=overwrite):
        print(f"{remote}: up to date (fingerprint {fingerprint}); nothing to do", file=out)
        return EXIT_OK
    inputs = inputs_sha256(tracks)
    # Skipped files (not audio to this corpus) are not input files: only tracks and failed listings count.
    n_rejected = sum(error.failed for error in listing_errors)
    n_skipped = sum(error.severity == "skipped" for error in listing_errors)
    n_files = len(tracks) + n_rejected
    split_names = sorted({track.split for track in tracks} | set(config.splits.names if config.splits.column is None
                                                                   else ()))
    stats_split = "train" if "train" in split_names or not split_names else split_names[0]
    warnings_ = split_warnings(tracks, split_names=split_names, min_tracks=config.splits.min_tracks)
    with open_destination(store, param="store.out", overwrite=overwrite, fingerprint=fingerprint,
                          inputs_sha256=inputs) as destination:
        for note in destination.notes():
            print(note, file=out)
        if destination.status == "up to date":
            print(f"{store}: up to date (fingerprint {fingerprint}); nothing to do", file=out)
            return EXIT_OK
        print(f"{config.name}: {len(tracks)} tracks listed ({n_rejected} rejected, {n_skipped} skipped), "
              f"{config.augment.n_variants} variant(s), {config.store.format} -> {store}", file=out)
        ran_on = describe_runner(options, workers=workers)
        print(f"running on {ran_on}", file=out)
        note = packaging_note(options)
        if note:
            print(note, file=out)
        _print_split_warnings(warnings_, file=out)
        started = time.monotonic()
        try:
            with stop_on_interrupt(), destination.write() as tmp:  # Ctrl-C: stops, deletes tmp, then raises
                work = tmp / WORK_DIR
                work.mkdir()
                pipeline = beam.Pipeline(runner=_runner(options), options=options)
                _build(pipeline, config=config, layout=layout, tracks=tracks, listing_errors=listing_errors,
                       directory=tmp, work=work, n_files=n_files, max_error_rate=max_error_rate,
                       stats_split=stats_split, local_workers=_local_workers(options))
                with _ProgressBar(work / "progress.log", total=len(tracks)) as bar, quiet_failed_bundles():
                    result = pipeline.run()
                    if is_local(options):  # run() has run it; nothing to cancel
                        state = result.wait_until_finish()
                    else:
                        state = wait_guarded(result, progress=lambda: bar.files_done, total=len(tracks),
                                             job_timeout=job_timeout, stall_timeout=stall_timeout)
                if state != PipelineState.DONE:
                    raise StoreError(f"the Beam pipeline ended in state {state}; nothing was written")
                shutil.rmtree(work / SPILL_DIR, ignore_errors=True)  # as big as the store: free it now
                outputs = {name: json.loads((work / f"{name}.json").read_text(encoding="utf-8"))
                           for name in ("shards", "stats", "tracks_per_split", "corpus", "errors")}
                failed = outputs["errors"]["failed_files"]
                if _too_many_failed(failed, n_files, max_error_rate):
                    _print_errors(tmp / ERRORS_NAME, outputs["errors"], file=sys.stderr)
                    raise _Aborted
                manifest = build_manifest(config=config, layout=layout, fingerprint=fingerprint,
                                          listing_sha256=listing_sha256, inputs=inputs, n_files=n_files,
                                          split_names=split_names, stats_split=stats_split, outputs=outputs,
                                          provenance=provenance(decoders=audio.decoder_versions()),
                                          split_warnings=warnings_)
                shutil.rmtree(work)
                write_card_with_plots(tmp, manifest, dataset=config.dataset,
                                      log=lambda line: print(f"mirdl prepare: {line}", file=out))
                write_json_atomic(tmp / MANIFEST_NAME, manifest)
        except _Aborted:
            print(f"mirdl prepare: aborted: {failed} of {n_files} files failed, more than --max-error-rate="
                  f"{max_error_rate:g}; nothing was written", file=sys.stderr)
            return EXIT_ABORTED
        except JobTimeout as err:
            print(f"mirdl prepare: error: {err} (on {ran_on}); nothing was written", file=sys.stderr)
            return EXIT_TIMEOUT
        except Exception as err:
            message = disk_full_message(err, store=store)
            if message is None:
                raise
            print(f"mirdl prepare: error: {message}", file=sys.stderr)
            return EXIT_DISK_FULL
    elapsed = time.monotonic() - started
    _print_summary(store, manifest, metrics=_metrics(result), elapsed=elapsed, ran_on=ran_on, file=out)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _too_many_failed(failed: int, n_files: int, max_error_rate: float | None) -> bool:
    return max_error_rate is not None and n_files > 0 and failed / n_files > max_error_rate


# ------------------------------------------------------------------------------------------ the graph
def _save_json(value: Any, path: str) -> None:
    write_json_atomic(path, value)


def _save_errors(errors: list[ErrorRecord], *, path: str, summary_path: str) -> dict[str, Any]:
    """Write ``errors.jsonl`` sorted (file, stage, reason) and its summary; return the summary."""
    ordered = write_error_records(path, errors)
    failures = [error for error in ordered if error.failed]  # warnings and skipped files are not failures
    summary = {"count": len(ordered), "failed_files": len({error.path for error in failures}),
               "warnings": sum(error.severity == "warning" for error in ordered),
               "skipped_files": len({error.path for error in ordered if error.severity == "skipped"}),
               "by_stage": dict(sorted(Counter(error.stage for error in failures).items()))}
    write_json_atomic(summary_path, summary)
    return summary


#: Up to this many tracks, :func:`balance_tracks` reads each file's header for its duration
#: (a few ms per file); beyond, file sizes stand in for it.
PROBE_LIMIT = 5000


def balance_tracks(tracks: list[Track], n_buckets: int) -> dict[str, int]:
    """``track_id -> bucket`` in ``range(n_buckets)``, buckets of about equal audio.

    Longest first into the bucket with the least audio so far (LPT scheduling: within 4/3 of the
    best split). The duration is the file header's (:func:`mirdl.features.audio.probe`) for up
    to :data:`PROBE_LIMIT` tracks, else the file size; a file that cannot be probed counts as
    its size in bytes over 16 kB/s (its decode fails or is short anyway).

    Examples
    --------
    >>> from mirdl.pipelines.corpus import Track
    >>> tracks = [Track(track_id=f"t{i}", path=f"/nonexistent/t{i}.wav") for i in range(4)]
    >>> sorted(balance_tracks(tracks, 2).values())
    [0, 0, 1, 1]
    """
    costs = {}
    for track in tracks:
        cost = None
        if len(tracks) <= PROBE_LIMIT:
            try:
                cost = audio.probe(track.path).duration
            except Exception:  # noqa: BLE001 - a file that cannot be probed fails in the job, once
                cost = None
        if cost is None:
            try:
                cost = os.path.getsize(track.path) / 16000
            except OSError:
                cost = 0.0
        costs[track.track_id] = float(cost)
    loads, counts = [0.0] * n_buckets, [0] * n_buckets
    bucket_of = {}
    for track_id in sorted(costs, key=lambda track_id: (-costs[track_id], track_id)):
        bucket = min(range(n_buckets), key=lambda b: (loads[b], counts[b], b))  # ties: fewest tracks
        bucket_of[track_id] = bucket
        loads[bucket] += costs[track_id]
        counts[bucket] += 1
    return bucket_of


def _local_workers(options: PipelineOptions) -> int:
    """Worker processes of Beam's local engine for ``options`` (0: another runner runs the job)."""
    if options.view_as(StandardOptions).runner != "FnApiRunner":
        return 0
    direct = options.view_as(DirectOptions)
    return int(direct.direct_num_workers or 1) if direct.direct_running_mode == "multi_processing" else 1


def _build(pipeline: beam.Pipeline, *, config: PrepareConfig, layout: RecordLayout, tracks: list[Track],
           listing_errors: list[ErrorRecord], directory: Path, work: Path, n_files: int,
           max_error_rate: float | None, stats_split: str, local_workers: int = 0) -> None:
    """Add the job's steps to ``pipeline`` (see the module docstring for the graph).

    With ``local_workers`` > 1 (Beam's local engine in ``multi_processing`` mode) the tracks go
    to the workers in buckets of equal audio (:func:`balance_tracks`) instead of a random
    reshuffle: that engine hands each worker a fixed share of a stage's input (no dynamic
    splitting), so one worker could get the long tracks while the other idles.
    """
    # The listing goes through a file, not beam.Create: the pipeline graph stays small and the
    # runner splits the reading, however many tracks there are.
    listing_path = work / "listing.jsonl"
    with atomic_path(listing_path) as tmp:
        tmp.write_text("".join(track_to_json(track) + "\n" for track in tracks), encoding="utf-8")
    parsed = (pipeline
              | "Listing" >> beam.io.ReadFromText(str(listing_path))
              | "ParseTracks" >> beam.Map(track_from_json))
    if local_workers > 1:
        # One key per worker: the local engine gives the i-th key of a grouped stage to worker
        # i mod n, so each worker gets exactly one bucket.
        bucket_of = balance_tracks(tracks, local_workers)
        listing = (parsed
                   | "BucketByAudio" >> beam.Map(lambda track: (bucket_of.get(track.track_id, 0), track))
                   | "GroupBuckets" >> beam.GroupByKey()
                   | "Unbucket" >> beam.FlatMap(lambda bucket: sorted(bucket[1], key=lambda track: track.track_id)))
    else:
        listing = parsed | "Reshuffle" >> beam.Reshuffle()
    computed = listing | "ComputeRecords" >> ComputeRecords(config=config, layout=layout,
                                                            progress_path=str(work / "progress.log"))
    records = computed["records"]
    errors = (
        (computed["errors"], pipeline | "ListingErrors" >> beam.Create(listing_errors))
        | "AllErrors" >> beam.Flatten()
    )
    errors_summary = (
        errors
        | "ErrorList" >> beam.combiners.ToList()
        | "SaveErrors" >> beam.Map(_save_errors, path=str(directory / ERRORS_NAME),
                                   summary_path=str(work / "errors.json"))
    )
    abort = errors_summary | "TooManyFailed" >> beam.Map(
        lambda summary: _too_many_failed(summary["failed_files"], n_files, max_error_rate))
    (records
     | "WriteShards" >> WriteShards(directory=str(directory), spill_directory=str(work / SPILL_DIR), config=config,
                                    layout=layout, abort=abort)
     | "ShardList" >> beam.combiners.ToList()
     | "SaveShards" >> beam.Map(_save_json, path=str(work / "shards.json")))
    (records
     | "TrainRecords" >> beam.Filter(lambda record: record["split"] == stats_split)
     | "Stats" >> beam.CombineGlobally(FeatureStatsFn(layout.feature_names))
     | "SaveStats" >> beam.Map(_save_json, path=str(work / "stats.json")))
    (records
     | "SplitTrack" >> beam.Map(lambda record: (record["split"], record["track_id"]))
     | "DistinctTracks" >> beam.Distinct()
     | "TracksPerSplit" >> beam.combiners.Count.PerKey()
     | "TracksDict" >> beam.combiners.ToDict()
     | "SaveTracks" >> beam.Map(_save_json, path=str(work / "tracks_per_split.json")))
    (computed["samples"]
     | "Durations" >> beam.CombineGlobally(DurationSummaryFn(config.sample_rate))
     | "SaveCorpus" >> beam.Map(_save_json, path=str(work / "corpus.json")))


# ------------------------------------------------------------------------------------------ reporting
class _ProgressBar:
    """A tqdm bar of files done and audio hours, fed by the progress file the workers append to.

    Workers (in any process, on any machine sharing the store's filesystem) append one line
    per file with its decoded seconds; a thread here follows the file.
    """

    def __init__(self, path: Path, *, total: int, interval: float = 0.5) -> None:
        self.path, self.total, self.interval = path, total, interval
        self._stop = threading.Event()
        self._offset, self._seconds = 0, 0.0
        self.files_done = 0  # files finished so far, as the workers reported them

    def __enter__(self) -> _ProgressBar:
        from tqdm import tqdm

        self._bar = tqdm(total=self.total, unit="file", desc="prepare", mininterval=self.interval, file=sys.stderr)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        lines = complete.split()
        if lines:
            self._seconds += sum(float(line) for line in lines)
            self._bar.set_postfix_str(f"audio {self._bar.format_interval(self._seconds)}", refresh=False)
            self._bar.update(len(lines))
            self.files_done += len(lines)

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()
        self._bar.close()


def _metrics(result: Any) -> dict[str, int]:
    """The job's counters (namespace ``mirdl``), committed values where the runner has them."""
    try:
        counters = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - some runners do not report metrics; the summary goes without
        return {}
    values: dict[str, int] = {}
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        values[counter.key.metric.name] = values.get(counter.key.metric.name, 0) + int(value or 0)
    return values


def _print_split_warnings(lines: list[str], *, file: TextIO, shown: int = 5) -> None:
    """The listing's split warnings, at most ``shown`` lines (all are in the manifest)."""
    for line in lines[:shown]:
        print(f"warning: {line}", file=file)
    if len(lines) > shown:
        print(f"warning: ... and {len(lines) - shown} more (manifest corpus.split_warnings)", file=file)


def _print_errors(errors_path: Path, summary: dict[str, Any], *, file: TextIO) -> None:
    by_stage = ", ".join(f"{stage} {count}" for stage, count in summary["by_stage"].items())
    print(f"{summary['failed_files']} file(s) failed ({by_stage}); first reasons:", file=file)
    with open(errors_path, encoding="utf-8") as handle:
        failures = (error for error in map(ErrorRecord.from_json, handle) if error.failed)
        for _, error in zip(range(_FIRST_REASONS), failures):
            print(f"  [{error.stage}] {error.path}: {error.reason}", file=file)


def _print_summary(store: Path, manifest: dict[str, Any], *, metrics: dict[str, int], elapsed: float,
                   ran_on: str, file: TextIO) -> None:
    print(f"store {manifest['name']} ({manifest['format']}) written to {store}, "
          f"fingerprint {manifest['fingerprint']}", file=file)
    print(f"  {'split':<10}{'tracks':>8}{'records':>10}{'shards':>8}{'MB':>10}", file=file)
    for split, entry in manifest["splits"].items():
        print(f"  {split:<10}{entry['tracks']:>8}{entry['records']:>10}{len(entry['shards']):>8}"
              f"{entry['bytes'] / 1e6:>10.2f}", file=file)
    corpus, errors = manifest["corpus"], manifest["errors"]
    seconds = corpus["audio_seconds"]
    print(f"  files {corpus['files']}, read {metrics.get('files_read', corpus['decoded_tracks'])}, "
          f"failed {corpus['failed']}; {seconds / 3600:.3f} h of audio in {elapsed:.1f} s "
          f"({seconds / max(elapsed, 1e-9):.1f} audio s/s on {ran_on})", file=file)
    if metrics:
        shown = ("variants", "segments", "spilled_bytes", "shards", "shard_bytes", "errors_unexpected")
        print("  counters: " + ", ".join(f"{name} {metrics[name]}" for name in shown if name in metrics), file=file)
    if errors["failed_files"]:
        by_stage = ", ".join(f"{stage} {count}" for stage, count in errors["by_stage"].items())
        print(f"  {corpus['failed']} file(s) failed ({by_stage}): see {store / ERRORS_NAME}", file=file)
    elif errors["count"]:
        print(f"  no file failed; {errors['count']} warning or skipped-file record(s): see {store / ERRORS_NAME}",
              file=file)
