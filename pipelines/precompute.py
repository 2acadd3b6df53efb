"""The precompute job: a corpus and a config in, a sharded feature store out (``mirdl prepare``).

::

    Listing (file) -> ParseTracks -> Reshuffle -> [Annotations] -> Decode -> Augment -> Features -> Segment -> records
    records -> SpillRecords (record, or for TFRecord its final frame, to a spill file; index entry out) -> index
    index   -> RecordBytes -> BytesPerSplit -> ShardsPerSplit --(side input)--+
    index   -> AssignShard <------------------------------------------------+
            -> GroupByShard -> WriteShard (read back from the spill, sorted by key) -> ShardList -> SaveShards
    records -> RecordSummaries (split, track, frame moments of the statistics split) --+
    Decode  -> DecodedTracks (id, samples, sha256 of the bytes) ------------------------+-> Summaries (Flatten)
    errors of every step ---------------------------------------------------------------+
        -> Summary (one CombineGlobally: statistics, tracks per split, durations, decoded list,
           errors + the listing's errors) -> SaveSummary (errors.jsonl sorted, summary.json)
        -> TooManyFailed --(side input)--> WriteShard

    (on Beam's local engine the listing file is read by a FlatMap after an Impulse, and there is
    no Reshuffle with 1 worker; with N > 1 local workers, Reshuffle is ToEveryWorker -> GroupCopies
    -> ClaimTracks: a copy of the listing per worker, each track computed by the worker that claims
    it first, costliest first, see claimed_tracks)

The driver holds the listing (paths and labels) only: audio and features live in the
workers. Records do not go through the runner's shuffle: each one is appended to a spill
file of its bundle (:mod:`mirdl.pipelines.spill`) and only a small index entry per record is
shuffled; the shard writer reads its records back (a TFRecord store's records are spilled
as their final TFRecord frames, serialised where they are computed, and copied into the
shard). Everything, spill files included, is written into a temporary sibling of
``store.out``; the driver reads the small summaries the pipeline saved there, deletes the
spill files and the summaries, writes ``manifest.json`` last and renames the directory onto
``store.out`` (on any failure or abort the whole temporary directory is deleted). Shards
are byte-identical for the same corpus, config and seed whatever the runner or worker count
(records are sharded by a hash of their key and sorted inside a shard).

Array jobs and updates: ``--partition I/K`` runs the same graph on the tracks of part ``I``
(splits assigned on the whole listing) into a partial store ``STORE.part-I-of-K``;
``--update STORE`` runs it on the new and changed tracks only and combines the result with
the unchanged tracks' records copied from ``STORE`` (:mod:`mirdl.pipelines.merge`).

Exit status of :func:`run`: 0 every file made it into the store; 3 the store was written
but some files failed (``errors.jsonl``); 4 more than ``--max-error-rate`` of the files
failed, nothing was written; 5 the disk filled up, nothing was written (one line names the
path and the free space there). A config, Beam option or destination problem raises
:class:`~mirdl.errors.MirdlError` (the CLI prints one line and exits 2); Ctrl-C raises
``KeyboardInterrupt("nothing was written")`` once the temporary store is deleted (the CLI
prints one line and exits 130). See :mod:`mirdl.pipelines.failures`.

Runner: without ``--runner``, the DirectRunner's own local engine (Beam's FnApiRunner) with
``--direct_running_mode=multi_threading --direct_num_workers=N`` (``--workers N`` worker
threads in this process; 1 runs in this process without them); ``--direct_running_mode=multi_processing``
runs worker processes instead, which stop quietly on Ctrl-C and leave their error reports
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
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from mirdl.errors import ConfigError, StoreError
from mirdl.features import audio
from mirdl.features.checks import fraction, integer, positive_float
from mirdl.features.checks import partition as partition_check
from mirdl.pipelines.beam_options import check_beam_args
from mirdl.pipelines.config import PrepareConfig
from mirdl.features.spec import stable_hash
from mirdl.pipelines.corpus import Track, list_tracks, listing_entry, listing_hash, partition_of, split_warnings, task_for
from mirdl.pipelines.dead_letter import ErrorRecord, error_summary, write_error_records
from mirdl.pipelines.failures import disk_full_message, quiet_failed_bundles, stop_on_interrupt
from mirdl.pipelines.local_runner import LocalRunner
from mirdl.pipelines.manifest import build_manifest, inputs_sha256, store_fingerprint, write_track_list
from mirdl.pipelines.options import add_arguments
from mirdl.pipelines.runners import (
    DEFAULT_STALL_TIMEOUT,
    JobTimeout,
    check_endpoints,
    describe_runner,
    in_background,
    is_local,
    packaging_note,
    resolve_packaging,
    wait_guarded,
    workers_on_this_host,
)
from mirdl.pipelines.stats import JobSummaryFn, record_summary
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
from mirdl.store.files import atomic_path, is_remote, sha256_file, write_json_atomic
from mirdl.store.format import ERRORS_NAME, MANIFEST_NAME, TRACKS_NAME
from mirdl.store.manifest import provenance, read_manifest
from mirdl.store.remote import upload_store
from mirdl.store.verify import check_shards

__all__ = ["EXIT_OK", "EXIT_SOME_FAILED", "EXIT_ABORTED", "EXIT_DISK_FULL", "EXIT_TIMEOUT", "run", "prepare",
           "pipeline_options", "partial_store_path", "claim_order", "claimed_tracks", "PROBE_LIMIT",
           "DECODE_COST"]

EXIT_OK = 0
EXIT_SOME_FAILED = 3
EXIT_ABORTED = 4
EXIT_DISK_FULL = 5
EXIT_TIMEOUT = 6
#: Folder inside the temporary store where the pipeline leaves its summaries for the driver.
WORK_DIR = "_work"
#: Folder inside WORK_DIR for the records on their way to their shard (:mod:`mirdl.pipelines.spill`).
SPILL_DIR = "spill"
#: Files in WORK_DIR where the pipeline saves the job's summary (JobSummaryFn) and its shard list.
SUMMARY_NAME = "summary.json"
SHARDS_NAME = "shards.json"
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
                   stall_timeout=args.stall_timeout, beam_args=beam_args, partition=args.partition,
                   update=args.update)


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
            # Threads, not processes: decoding, resampling, FFTs and the mel projection release the
            # GIL (it is held ~7 % of the time), and a thread costs no start-up (a worker process
            # imports Beam, numpy and librosa again: ~3 s of CPU). BENCHMARKS.md "Workers as threads".
            args.append(f"--direct_running_mode={'multi_threading' if workers > 1 else 'in_memory'}")
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
            out: TextIO | None = None, partition: str | tuple[int, int] | None = None,
            update: str | os.PathLike | None = None) -> int:
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

    ``partition="I/K"`` (array jobs) computes part ``I`` of ``K`` of the corpus (a stable hash of
    the track id; splits assigned on the whole listing) into the partial store ``STORE.part-I-of-K`` next to ``store.out``,
    which :func:`mirdl.pipelines.merge.merge_partials` (``mirdl merge``) combines with the other
    parts. ``update=STORE`` brings a store this config wrote up to date with the corpus as it is
    now (``docs/cluster.md``): unchanged tracks are copied, not decoded; the result replaces ``STORE``.
    """
    out = out or sys.stdout
    workers = integer(workers, name="workers", minimum=1)
    if max_error_rate is not None:
        max_error_rate = fraction(max_error_rate, name="max_error_rate")
    timeouts = {name: positive_float(value, name=name) if value is not None else None
                for name, value in (("job_timeout", job_timeout), ("stall_timeout", stall_timeout))}
    if partition is not None:
        partition = partition_check(partition, name="partition")
        if update is not None:
            raise ConfigError("partition and update cannot be used together (update a merged store instead)")
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
    if update is not None:
        if is_remote(update, param="update"):
            raise ConfigError(f"update={str(update)!r}: only a store on a local or shared filesystem can be updated")
        return _update(config, Path(update), workers=workers, max_error_rate=max_error_rate, options=options,
                       out=out, **timeouts)
    if not is_remote(config.store.out, param="store.out"):
        return _prepare(config, workers=workers, overwrite=overwrite, max_error_rate=max_error_rate,
                        options=options, out=out, partition=partition, **timeouts)
    if partition is not None:
        raise ConfigError(f"store.out={config.store.out!r}: partial stores (partition) are written to a shared "
                          "filesystem, not to object storage; merge them there, then publish or copy the result")
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


def _decoders_provenance(config: PrepareConfig, tracks: list[Track]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``provenance.decoders`` and ``provenance.decode``: the versions of the decoders the config's
    mode picks for these tracks (Ogg files are sniffed by their first page, as the decode step
    does), and the mode with those decoders."""
    used = sorted({audio.decoder_for(track.path, mode=config.audio.decoder).name for track in tracks})
    return audio.decoder_versions(used), config.audio.provenance(used)


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
             job_timeout: float | None = None, stall_timeout: float | None = None,
             partition: tuple[int, int] | None = None) -> int:
    tracks, listing_errors = list_tracks(config.corpus, config.splits)
    layout = RecordLayout.build(config, task_for(config.corpus, tracks))
    listing_sha256 = listing_hash(tracks)
    fingerprint = store_fingerprint(config, task=layout.task, listing_sha256=listing_sha256)
    store = Path(config.store.out) if store is None else store
    if remote is not None and _remote_up_to_date(remote, fingerprint=fingerprint, overwrite=overwrite):
        print(f"{remote}: up to date (fingerprint {fingerprint}); nothing to do", file=out)
        return EXIT_OK
    job = _Job.of(config, tracks=tracks, listing_errors=listing_errors, layout=layout, listing_sha256=listing_sha256,
                  fingerprint=fingerprint)
    if partition is not None:
        job = job.partition(config, *partition)
        store = partial_store_path(store, *partition)
    status, _ = _run_job(config, job, workers=workers, overwrite=overwrite, max_error_rate=max_error_rate,
                         options=options, out=out, store=store, job_timeout=job_timeout, stall_timeout=stall_timeout)
    return status


def partial_store_path(store: str | os.PathLike, index: int, count: int) -> Path:
    """Where ``--partition I/K`` writes its partial store: ``STORE.part-I-of-K`` next to ``store.out``,
    so the K tasks of an array job share one config.

    Examples
    --------
    >>> partial_store_path("stores/demo", 2, 16).as_posix()
    'stores/demo.part-2-of-16'
    """
    store = Path(store)
    return store.with_name(f"{store.name}.part-{index}-of-{count}")


@dataclasses.dataclass(frozen=True)
class _Job:
    """What one run of the pipeline computes: the tracks to decode and what the store's manifest
    says about the whole corpus (listing hash, splits, files, warnings) when they are only a part
    of it (``part``: the partial store's ``partition`` section, :mod:`mirdl.pipelines.merge`)."""

    tracks: list[Track]
    listing_errors: list[ErrorRecord]
    layout: RecordLayout
    listing_sha256: str
    fingerprint: str
    inputs: str
    n_files: int
    split_names: list[str]
    stats_split: str
    split_warnings: list[str]
    part: dict[str, Any] | None = None
    version: int = 1

    @classmethod
    def of(cls, config: PrepareConfig, *, tracks: list[Track], listing_errors: list[ErrorRecord],
           layout: RecordLayout, listing_sha256: str, fingerprint: str) -> _Job:
        """The job of a whole listing (``tracks`` with their splits, ``listing_errors``)."""
        split_names = sorted({track.split for track in tracks} | set(config.splits.names if config.splits.column is None
                                                                       else ()))
        # Skipped files (not audio to this corpus) are not input files: only tracks and failed listings count.
        n_rejected = sum(error.failed for error in listing_errors)
        return cls(tracks=tracks, listing_errors=listing_errors, layout=layout, listing_sha256=listing_sha256,
                   fingerprint=fingerprint, inputs=inputs_sha256(tracks), n_files=len(tracks) + n_rejected,
                   split_names=split_names,
                   stats_split="train" if "train" in split_names or not split_names else split_names[0],
                   split_warnings=split_warnings(tracks, split_names=split_names, min_tracks=config.splits.min_tracks))

    def part_section(self, config: PrepareConfig, *, index: int, count: int) -> dict[str, Any]:
        """The ``partition`` section of a partial store of this job: what its merge needs of the whole."""
        return {"index": index, "count": count, "store_fingerprint": self.fingerprint,
                "listing_sha256": self.listing_sha256, "inputs_sha256": self.inputs, "files": self.n_files,
                "split_warnings": list(self.split_warnings), "row_group_records": config.store.row_group_records,
                "dataset": dict(config.dataset), "version": self.version}

    def partition(self, config: PrepareConfig, index: int, count: int) -> _Job:
        """Part ``index`` of ``count`` (:func:`~mirdl.pipelines.corpus.partition_of` of the track id;
        listing records without one by their path). Splits were assigned on the whole listing."""
        tracks = [track for track in self.tracks if partition_of(track.track_id, count) == index]
        errors = [error for error in self.listing_errors
                  if partition_of(error.track_id or error.path, count) == index]
        return self.subset(config, tracks, errors, index=index, count=count)

    def subset(self, config: PrepareConfig, tracks: list[Track], listing_errors: list[ErrorRecord], *, index: int,
               count: int) -> _Job:
        """A job computing ``tracks`` only, into a partial store: part ``index`` of ``count`` of this one."""
        return dataclasses.replace(
            self, tracks=tracks, listing_errors=listing_errors, inputs=inputs_sha256(tracks),
            n_files=len(tracks) + sum(error.failed for error in listing_errors),
            fingerprint=stable_hash({"store": self.fingerprint, "partition": [index, count]}),
            part=self.part_section(config, index=index, count=count))


def _run_job(config: PrepareConfig, job: _Job, *, workers: int, overwrite: bool, max_error_rate: float | None,
             options: PipelineOptions, out: TextIO, store: Path, quiet: bool = False,
             job_timeout: float | None = None, stall_timeout: float | None = None) -> tuple[int, Any]:
    """Run the pipeline of ``job`` into ``store``; return the exit status and the manifest (None
    when nothing was written)."""
    tracks, listing_errors, layout = job.tracks, job.listing_errors, job.layout
    fingerprint, n_files = job.fingerprint, job.n_files
    part = job.part
    n_skipped = sum(error.severity == "skipped" for error in listing_errors)
    with open_destination(store, param="store.out", overwrite=overwrite, fingerprint=fingerprint,
                          inputs_sha256=job.inputs) as destination:
        for note in destination.notes():
            print(note, file=out)
        if destination.status == "up to date":
            print(f"{store}: up to date (fingerprint {fingerprint}); nothing to do", file=out)
            return EXIT_OK, None
        ran_on = describe_runner(options, workers=workers)
        if quiet:  # a step of --update, which said what it does
            print(f"{config.name}: computing {len(tracks)} new or changed track(s) on {ran_on}", file=out)
        else:
            what = "" if part is None else f" (partition {part['index']}/{part['count']})"
            print(f"{config.name}{what}: {len(tracks)} tracks listed ({n_files - len(tracks)} rejected, {n_skipped} "
                  f"skipped), {config.augment.n_variants} variant(s), {config.store.format} -> {store}", file=out)
            print(f"running on {ran_on}", file=out)
        note = packaging_note(options)
        if note:
            print(note, file=out)
        if not quiet:
            _print_split_warnings(job.split_warnings, file=out)
        started = time.monotonic()
        try:
            with stop_on_interrupt(), destination.write() as tmp:  # Ctrl-C: stops, deletes tmp, then raises
                work = tmp / WORK_DIR
                work.mkdir()
                pipeline = beam.Pipeline(runner=_runner(options), options=options)
                _build(pipeline, config=config, layout=layout, tracks=tracks, listing_errors=listing_errors,
                       directory=tmp, work=work, n_files=n_files, max_error_rate=max_error_rate,
                       stats_split=job.stats_split, local_workers=_local_workers(options))
                # The decoders these tracks use (each Ogg file's first page) and their versions (PyAV
                # imported for its and FFmpeg's only where a track goes to it): driver work for the
                # manifest, done on a thread of its own while the pipeline runs instead of after it.
                decoders = in_background(lambda: _decoders_provenance(config, tracks), name="mirdl-driver-background")
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
                outputs = _read_outputs(work, directory=tmp, config=config, layout=layout,
                                        listing_errors=listing_errors)
                failed = outputs["errors"]["failed_files"]
                if _too_many_failed(failed, n_files, max_error_rate):
                    _print_errors(tmp / ERRORS_NAME, outputs["errors"], file=sys.stderr)
                    raise _Aborted
                decoder_versions, decode = decoders.result(timeout=_BACKGROUND_TIMEOUT)
                manifest = build_manifest(config=config, layout=layout, fingerprint=fingerprint,
                                          listing_sha256=job.listing_sha256, inputs=job.inputs, n_files=n_files,
                                          split_names=job.split_names, stats_split=job.stats_split, outputs=outputs,
                                          provenance=provenance(decoders=decoder_versions, decode=decode),
                                          split_warnings=job.split_warnings, version=job.version, partition=part)
                write_track_list(tmp / TRACKS_NAME, decoded=outputs["decoded"], tracks=tracks)
                shutil.rmtree(work)
                if not quiet:  # an update's partial store is read once and deleted: no card
                    write_card_with_plots(tmp, manifest, dataset=config.dataset,
                                          log=lambda line: print(f"mirdl prepare: {line}", file=out))
                write_json_atomic(tmp / MANIFEST_NAME, manifest)
        except _Aborted:
            print(f"mirdl prepare: aborted: {failed} of {n_files} files failed, more than --max-error-rate="
                  f"{max_error_rate:g}; nothing was written", file=sys.stderr)
            return EXIT_ABORTED, None
        except JobTimeout as err:
            print(f"mirdl prepare: error: {err} (on {ran_on}); nothing was written", file=sys.stderr)
            return EXIT_TIMEOUT, None
        except Exception as err:
            message = disk_full_message(err, store=store)
            if message is None:
                raise
            print(f"mirdl prepare: error: {message}", file=sys.stderr)
            return EXIT_DISK_FULL, None
    elapsed = time.monotonic() - started
    if not quiet:
        _print_summary(store, manifest, metrics=_metrics(result), elapsed=elapsed, ran_on=ran_on, file=out)
    return (EXIT_SOME_FAILED if failed else EXIT_OK), manifest


#: Seconds the driver waits for its background work (:func:`~mirdl.pipelines.runners.in_background`)
#: once the pipeline is done.
_BACKGROUND_TIMEOUT = 600.0


def _update(config: PrepareConfig, store: Path, *, workers: int, max_error_rate: float | None,
            options: PipelineOptions, out: TextIO, job_timeout: float | None = None,
            stall_timeout: float | None = None) -> int:
    """``mirdl prepare --update STORE``: see :func:`prepare` and ``docs/cluster.md``.

    A track is unchanged when the store lists it in ``tracks.jsonl`` with the same listing entry
    (file name, label, tags, targets, group, sizes; the split aside) and the same sha256 of its
    audio (and annotation) bytes, and the store was written with the same config
    (``config_fingerprint``) and task: its records are copied from the old shards. Every track
    the store holds keeps its split; new tracks get the split the new listing gives them. New
    and changed tracks go through the pipeline into a partial store next to ``STORE``, which is
    combined with the copied records (:func:`mirdl.pipelines.merge.combine`); the result
    replaces ``STORE`` with ``version`` + 1.
    """
    from mirdl.store.manifest import is_mirdl_store

    if not is_mirdl_store(store):
        raise StoreError(f"--update {str(store)!r} is not a mirdl store (no marker file); give a store that "
                         "mirdl prepare wrote")
    # The store's lock is held from reading the old store to replacing it: no other writer in between.
    with open_destination(store, param="--update", overwrite=True) as destination:
        for note in destination.notes():
            print(note, file=out)
        return _update_locked(config, store, destination, workers=workers, max_error_rate=max_error_rate,
                              options=options, out=out, job_timeout=job_timeout, stall_timeout=stall_timeout)


def _update_locked(config: PrepareConfig, store: Path, destination: Any, *, workers: int,
                   max_error_rate: float | None, options: PipelineOptions, out: TextIO,
                   job_timeout: float | None = None, stall_timeout: float | None = None) -> int:
    from mirdl.pipelines.merge import Part, combine
    from mirdl.pipelines.manifest import config_fingerprint, read_track_list

    old = read_manifest(store)
    if old.get("partition"):
        raise StoreError(f"--update {str(store)!r} is a partial store (partition {old['partition'].get('index')}/"
                         f"{old['partition'].get('count')}); merge the partials first (mirdl merge), then update")
    if old.get("config_fingerprint") != config_fingerprint(config):
        raise StoreError(f"--update {str(store)!r} was written with another config (config fingerprint "
                         f"{old.get('config_fingerprint')}, this config gives {config_fingerprint(config)}): "
                         "its records cannot be reused; rebuild it with --overwrite")
    old_tracks = {line["track_id"]: line for line in read_track_list(store)}
    tracks, listing_errors = list_tracks(config.corpus, config.splits)
    # Splits of the tracks the store holds never move (with splits.stratify they could in a fresh build).
    tracks = [dataclasses.replace(track, split=old_tracks[track.track_id]["listing"]["split"])
              if track.track_id in old_tracks else track for track in tracks]
    layout = RecordLayout.build(config, task_for(config.corpus, tracks))
    if layout.task != old["task"]:
        raise StoreError(f"--update {str(store)!r}: the task changed (vocabulary {old['task'].get('vocabulary')} -> "
                         f"{layout.task['vocabulary']}): every label would change; rebuild it with --overwrite")
    listing_sha256 = listing_hash(tracks)
    fingerprint = store_fingerprint(config, task=layout.task, listing_sha256=listing_sha256)
    whole = dataclasses.replace(_Job.of(config, tracks=tracks, listing_errors=listing_errors, layout=layout,
                                        listing_sha256=listing_sha256, fingerprint=fingerprint),
                                version=int(old["version"]) + 1)
    if old["fingerprint"] == fingerprint and old["corpus"].get("inputs_sha256") == whole.inputs:
        print(f"{store}: up to date (fingerprint {fingerprint}); nothing to do", file=out)
        return EXIT_OK
    kept = {track.track_id for track in tracks if _unchanged(track, old_tracks.get(track.track_id))}
    computed = [track for track in tracks if track.track_id not in kept]
    print(f"{config.name}: updating {store} (version {old['version']} -> {whole.version}): {len(kept)} unchanged "
          f"track(s) copied, {len(computed)} to compute, {len(set(old_tracks) - {t.track_id for t in tracks})} "
          "removed", file=out)
    _print_split_warnings(whole.split_warnings, file=out)
    job = whole.subset(config, computed, listing_errors, index=0, count=1)
    started = time.monotonic()
    try:
        # Everything happens inside the store's temporary sibling (owner file: swept if this run dies).
        with destination.write() as tmp:
            partial = tmp / WORK_DIR / "update"
            status, manifest = _run_job(config, job, workers=workers, overwrite=False, max_error_rate=None,
                                        options=options, out=out, store=partial, quiet=True,
                                        job_timeout=job_timeout, stall_timeout=stall_timeout)
            if manifest is None:
                raise _Unwritten(status)
            failed = manifest["errors"]["failed_files"]
            if _too_many_failed(failed, whole.n_files, max_error_rate):
                _print_errors(partial / ERRORS_NAME, manifest["errors"], file=sys.stderr)
                print(f"mirdl prepare: aborted: {failed} of {whole.n_files} files failed, more than "
                      f"--max-error-rate={max_error_rate:g}; {store} was not changed", file=sys.stderr)
                raise _Unwritten(EXIT_ABORTED)
            parts = [Part(store, old, keep=kept, stats="records"), Part(partial, manifest)]
            result = combine(parts, tmp, base=manifest, fingerprint=fingerprint, version=whole.version,
                             log=lambda line: print(line, file=out),
                             before_manifest=lambda: shutil.rmtree(tmp / WORK_DIR))
    except _Unwritten as unwritten:
        return unwritten.status
    except OSError as err:
        message = disk_full_message(err, store=store)
        if message is None:
            raise
        print(f"mirdl prepare: error: {message}", file=sys.stderr)
        return EXIT_DISK_FULL
    _print_summary(store, result, metrics={"files_read": manifest["corpus"]["decoded_tracks"]},
                   elapsed=time.monotonic() - started, ran_on=describe_runner(options, workers=workers), file=out)
    return EXIT_SOME_FAILED if result["errors"]["failed_files"] else EXIT_OK


class _Unwritten(Exception):
    """The update's new tracks could not be computed (status ``status``): the store is left as it was."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _unchanged(track: Track, old: Mapping[str, Any] | None) -> bool:
    """Whether ``track`` is the one ``old`` (its ``tracks.jsonl`` line) describes: same listing
    entry (its split aside: the old one is kept) and same bytes (sha256; hashed only when the
    rest agrees)."""
    if old is None:
        return False
    entry = {**listing_entry(track), "split": None}
    if entry != {**old["listing"], "split": None}:
        return False
    try:
        return sha256_file(track.path) == old.get("sha256") and (
            track.annotation_path is None or sha256_file(track.annotation_path) == old.get("annotation_sha256"))
    except OSError:
        return False


def _too_many_failed(failed: int, n_files: int, max_error_rate: float | None) -> bool:
    return max_error_rate is not None and n_files > 0 and failed / n_files > max_error_rate


# ------------------------------------------------------------------------------------------ the graph
def _save_json(value: Any, path: str) -> None:
    write_json_atomic(path, value)


def _save_errors(errors: list[ErrorRecord], *, path: str) -> dict[str, Any]:
    """Write ``errors.jsonl`` sorted (file, stage, reason); return its summary (counts)."""
    return error_summary(write_error_records(path, errors))


#: Up to this many tracks, :func:`track_costs` reads each file's header for its duration
#: (a few ms per file); beyond, file sizes stand in for it.
PROBE_LIMIT = 5000
#: CPU per second of audio of a codec (libsndfile subtype, else container format) relative to
#: PCM WAV, decode + resample + log-mel at 22.05 kHz: 6.13 (Opus), 1.89 (Vorbis), 1.49 (FLAC) and
#: 0.74 (WAV) ms per second of stereo 44.1/48 kHz audio on the ``make bench`` corpus (least of two
#: passes, process CPU; BENCHMARKS.md "make bench", round 4). Equal durations are not equal work:
#: with FLAC counted as WAV, round 4's 2 buckets of tracks came out 0.3 s of CPU apart, 0.06 s with it.
DECODE_COST = {"OPUS": 8.3, "VORBIS": 2.6, "FLAC": 2.0}


def track_costs(tracks: list[Track]) -> dict[str, float]:
    """``track_id -> work``: the duration from the file header (:func:`mirdl.features.audio.probe`)
    times its codec's :data:`DECODE_COST` for up to :data:`PROBE_LIMIT` tracks, else the file size
    over 16 kB/s; a file that cannot be probed counts as its size (its decode fails or is short anyway)."""
    costs = {}
    for track in tracks:
        cost = None
        if len(tracks) <= PROBE_LIMIT:
            try:
                info = audio.probe(track.path)
                cost = None if info.duration is None else \
                    info.duration * DECODE_COST.get(info.subtype, DECODE_COST.get(info.format, 1.0))
            except Exception:  # noqa: BLE001 - a file that cannot be probed fails in the job, once
                cost = None
        if cost is None:
            try:
                cost = os.path.getsize(track.path) / 16000
            except OSError:
                cost = 0.0
        costs[track.track_id] = float(cost)
    return costs


def claim_order(tracks: list[Track]) -> dict[str, int]:
    """``track_id -> rank``: the costliest track (:func:`track_costs`) first, ties by id.

    >>> from mirdl.pipelines.corpus import Track
    >>> claim_order([Track(track_id=f"t{i}", path=f"/nonexistent/t{i}.wav") for i in range(3)])
    {'t0': 0, 't1': 1, 't2': 2}
    """
    costs = track_costs(tracks)
    costliest_first = sorted(costs, key=lambda track_id: (-costs[track_id], track_id))
    return {track_id: rank for rank, track_id in enumerate(costliest_first)}


def claimed_tracks(copy: tuple[Any, Any], *, rank: Mapping[str, int], claims: str) -> Iterator[Track]:
    """The tracks of a worker's copy of the listing that this worker claims first, in ``rank``'s order.

    A claim is a file named after the track (sha256 of its id) created with ``O_EXCL`` in ``claims``:
    of every worker that tries, exactly one creates it, threads and processes alike. A generator: the
    next track is claimed only once the job has computed the previous one, so every worker takes
    the next unclaimed track as it becomes free (list scheduling, costliest first).

    >>> import tempfile
    >>> from mirdl.pipelines.corpus import Track
    >>> tracks = [Track(track_id=f"t{i}", path=f"/t{i}.wav") for i in range(3)]
    >>> folder = tempfile.mkdtemp()
    >>> a = claimed_tracks((0, tracks), rank={"t0": 0, "t1": 1, "t2": 2}, claims=folder)
    >>> b = claimed_tracks((1, tracks), rank={"t0": 0, "t1": 1, "t2": 2}, claims=folder)
    >>> next(a).track_id, next(b).track_id, next(b).track_id, next(a, None)
    ('t0', 't1', 't2', None)
    """
    for track in sorted(copy[1], key=lambda track: rank[track.track_id]):
        name = hashlib.sha256(track.track_id.encode("utf-8")).hexdigest()
        try:
            os.close(os.open(os.path.join(claims, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue  # another worker has it
        yield track


def _local_workers(options: PipelineOptions) -> int:
    """Workers (threads or processes) of Beam's local engine for ``options`` (0: another runner runs the job)."""
    if options.view_as(StandardOptions).runner != "FnApiRunner":
        return 0
    direct = options.view_as(DirectOptions)
    parallel = direct.direct_running_mode in ("multi_processing", "multi_threading")
    return int(direct.direct_num_workers or 1) if parallel else 1


def _build(pipeline: beam.Pipeline, *, config: PrepareConfig, layout: RecordLayout, tracks: list[Track],
           listing_errors: list[ErrorRecord], directory: Path, work: Path, n_files: int,
           max_error_rate: float | None, stats_split: str, local_workers: int = 0) -> None:
    """Add the job's steps to ``pipeline`` (see the module docstring for the graph).

    With ``local_workers`` > 1 (Beam's local engine with worker threads or processes) every worker
    gets a copy of the listing and computes the tracks it claims first (:func:`claimed_tracks`)
    instead of a random reshuffle: in both modes that engine hands each worker a fixed share of a
    stage's input (``ParallelBundleManager``, no dynamic splitting), so a fixed share left one
    worker with the long tracks while the other idled, and buckets of estimated equal work
    (round 4 to 12) still ended apart by the estimate's error.
    """
    # The listing goes through a file, not beam.Create: the pipeline graph stays small and the
    # runner splits the reading, however many tracks there are.
    listing_path = work / "listing.jsonl"
    with atomic_path(listing_path) as tmp:
        tmp.write_text("".join(track_to_json(track) + "\n" for track in tracks), encoding="utf-8")
    if local_workers:
        # Beam's local engine: the file is read in one step (an Impulse, no splittable source:
        # one stage fewer, and no source machinery to set up), and with one worker the tracks go
        # straight on in the listing's order: a Reshuffle only breaks fusion, for workers to share.
        parsed = (pipeline
                  | "Listing" >> beam.Impulse()
                  | "ParseTracks" >> beam.FlatMap(_read_listing, path=str(listing_path)))
    else:
        parsed = (pipeline
                  | "Listing" >> beam.io.ReadFromText(str(listing_path))
                  | "ParseTracks" >> beam.Map(track_from_json))
    if local_workers == 1:
        listing = parsed
    elif local_workers > 1:
        # One key per worker: the local engine gives the i-th key of a grouped stage to worker
        # i mod n, so each worker gets one copy of the whole listing. Each computes, costliest
        # first, the tracks it claims before the others do (claimed_tracks): the work is shared as
        # it goes, where fixed buckets of estimated equal work ended apart by the estimate's error.
        rank = claim_order(tracks)
        claims = work / "claims"
        claims.mkdir()
        listing = (parsed
                   | "ToEveryWorker" >> beam.FlatMap(lambda track: [(copy, track) for copy in range(local_workers)])
                   | "GroupCopies" >> beam.GroupByKey()
                   | "ClaimTracks" >> beam.FlatMap(claimed_tracks, rank=rank, claims=str(claims)))
    else:
        listing = parsed | "Reshuffle" >> beam.Reshuffle()
    computed = listing | "ComputeRecords" >> ComputeRecords(config=config, layout=layout,
                                                            progress_path=str(work / "progress.log"))
    records = computed["records"]
    # One global combine for every summary of the corpus (statistics, tracks per split, durations,
    # decoded tracks, errors) over one Flatten of small elements: on Beam's local engine each global
    # combine was a stage plus a stage for its default, each Flatten a stage (BENCHMARKS.md
    # "Fixed costs, round 3"). Without defaults: an empty input saves nothing and the driver
    # summarises nothing itself (_read_outputs); the listing's own errors are the combine's.
    summaries = (
        (*computed["errors"], computed["decoded"],
         records | "RecordSummaries" >> beam.Map(record_summary, feature_names=layout.feature_names,
                                                 stats_split=stats_split))
        | "Summaries" >> beam.Flatten()
        | "Summary" >> beam.CombineGlobally(_summary_fn(config, layout, listing_errors)).without_defaults()
        | "SaveSummary" >> beam.Map(_save_summary, errors_path=str(directory / ERRORS_NAME),
                                    path=str(work / SUMMARY_NAME))
    )
    abort = summaries | "TooManyFailed" >> beam.Map(
        lambda errors: _too_many_failed(errors["failed_files"], n_files, max_error_rate))
    (records
     | "WriteShards" >> WriteShards(directory=str(directory), spill_directory=str(work / SPILL_DIR), config=config,
                                    layout=layout, abort=abort)
     | "ShardList" >> beam.CombineGlobally(beam.combiners.ToListCombineFn()).without_defaults()
     | "SaveShards" >> beam.Map(_save_json, path=str(work / SHARDS_NAME)))


def _read_listing(_: bytes, *, path: str) -> Iterator[Track]:
    """The tracks of the job's listing file (:func:`~mirdl.pipelines.transforms.track_to_json` lines)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield track_from_json(line)


def _summary_fn(config: PrepareConfig, layout: RecordLayout, listing_errors: list[ErrorRecord]) -> JobSummaryFn:
    return JobSummaryFn(feature_names=layout.feature_names, sample_rate=config.sample_rate,
                        listing_errors=listing_errors)


def _save_summary(summary: dict[str, Any], *, errors_path: str, path: str) -> dict[str, Any]:
    """Write ``errors.jsonl`` (sorted) and the job's summary (:class:`JobSummaryFn`'s output, its
    errors replaced by their counts) to ``path``; return the error counts."""
    errors = _save_errors(summary["errors"], path=errors_path)
    write_json_atomic(path, {**summary, "errors": errors})
    return errors


def _read_outputs(work: Path, *, directory: Path, config: PrepareConfig, layout: RecordLayout,
                  listing_errors: list[ErrorRecord]) -> dict[str, Any]:
    """The pipeline's summaries for :func:`~mirdl.pipelines.manifest.build_manifest`: ``shards``,
    ``stats``, ``tracks_per_split``, ``corpus``, ``errors``, ``decoded``. A summary the pipeline
    did not save had no input (no track, no shard): it is the summary of nothing."""
    summary_path, shards_path = work / SUMMARY_NAME, work / SHARDS_NAME
    if not summary_path.exists():
        fn = _summary_fn(config, layout, listing_errors)
        _save_summary(fn.extract_output(fn.create_accumulator()), errors_path=str(directory / ERRORS_NAME),
                      path=str(summary_path))
    outputs = json.loads(summary_path.read_text(encoding="utf-8"))
    outputs["shards"] = json.loads(shards_path.read_text(encoding="utf-8")) if shards_path.exists() else []
    return outputs


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
    shown = [name for name in ("variants", "segments", "spilled_bytes", "shards", "shard_bytes", "errors_unexpected")
             if name in metrics]
    if shown:
        print("  counters: " + ", ".join(f"{name} {metrics[name]}" for name in shown), file=file)
    if errors["failed_files"]:
        by_stage = ", ".join(f"{stage} {count}" for stage, count in errors["by_stage"].items())
        print(f"  {corpus['failed']} file(s) failed ({by_stage}): see {store / ERRORS_NAME}", file=file)
    elif errors["count"]:
        print(f"  no file failed; {errors['count']} warning or skipped-file record(s): see {store / ERRORS_NAME}",
              file=file)
