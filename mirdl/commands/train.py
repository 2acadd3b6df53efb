"""``mirdl train --config CONFIG.yaml``: train a Keras model from a store (:mod:`mirdl_tf.train`).

Writes the run directory (``train_config.yaml``, ``model_info.json``, ``best.keras``,
``last.keras``, ``state.json``, ``metrics.json``, ``logs/``) and prints one line per epoch.
A run directory holding a run of the same config is resumed from its last epoch.

Examples
--------
::

    mirdl train --config configs/train_demo.yaml
    mirdl train --config configs/train_demo.yaml --out runs/fcn --epochs 40      # resume, train longer
    mirdl train --config configs/train_demo.yaml --out runs/fcn-seed1 --seed 1   # another training seed
    tensorboard --logdir runs/fcn/logs
    mirdl train --config configs/train_demo.yaml --out runs/fcn-2w --workers 2   # 2 local workers (CPU)

``--workers N`` (N > 1) starts N ``mirdl train`` processes on this machine, each with its own
``TF_CONFIG`` (127.0.0.1, free ports), and waits for them; if one fails, or ``--worker-timeout``
passes, the others are stopped. On a real cluster, set ``TF_CONFIG`` on every machine and run
``mirdl train`` (without ``--workers``) on each: see docs/cluster.md.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mirdl.features.checks import argparse_type, integer, positive_float

__all__ = ["configure", "preload", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl train``."""
    parser.add_argument("--config", required=True, type=Path, metavar="CONFIG.yaml", help="train config (YAML)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (overrides the config's out)")
    parser.add_argument("--store", metavar="STORE", help="store: a path or catalog://NAME[@VERSION] (overrides the "
                                                        "config's store)")
    parser.add_argument("--catalog", metavar="ROOT", help="catalog root for catalog:// stores (default $MIRDL_CATALOG)")
    parser.add_argument("--epochs", type=argparse_type(integer, int, minimum=1), metavar="N", help="total epochs (overrides the config)")
    parser.add_argument("--seed", type=argparse_type(integer, int, minimum=0), metavar="S",
                        help="training seed: weights, data order, crops and masks (overrides the config's seed)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="resume the run in the run directory, or fail (default: resume when there is one "
                           "of the same config)")
    mode.add_argument("--overwrite", action="store_true", help="discard the run in the run directory")
    parser.add_argument("--workers", type=argparse_type(integer, int, minimum=1), default=1, metavar="N",
                        help="train with N local worker processes (tf.distribute.MultiWorkerMirroredStrategy on "
                             "CPU); default 1. On a cluster set TF_CONFIG instead (docs/cluster.md)")
    parser.add_argument("--worker-timeout", type=argparse_type(positive_float, float), metavar="SECONDS",
                        help="with --workers: stop every worker and fail after this long (default: no limit)")
    parser.add_argument("--audit", type=Path, metavar="DIR",
                        help="multi-worker runs: each worker writes the keys of the records it trained on and its "
                             "final weights to DIR")


def preload() -> None:
    """Import what :func:`run` needs (TensorFlow and Keras among it)."""
    import mirdl_tf.train  # noqa: F401


def run(args: argparse.Namespace) -> int:
    """Load the config, train, print where everything went."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dataclasses import replace

    from mirdl_tf.train import TrainConfig, train

    config = TrainConfig.from_file(args.config)
    if args.store is not None:
        config = replace(config, store=str(args.store))
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    if config.store.startswith("catalog://"):  # a verified local copy in the cache (pulled once)
        from mirdl.store.catalog import pull

        path, fetched, _ = pull(config.store, args.catalog)
        print(f"{config.store}: {'pulled into' if fetched else 'cached at'} {path}", flush=True)
        config = replace(config, store=str(path))
    if args.workers > 1:
        return _run_local_workers(args, config)
    result = train(config, out=args.out, epochs=args.epochs, resume=True if args.resume else None,
                   overwrite=args.overwrite, log=lambda line: print(line, flush=True), audit=args.audit)
    print(f"metrics: {Path(result['out']) / 'metrics.json'}")
    return 0


def _run_local_workers(args: argparse.Namespace, config) -> int:
    """``--workers N``: N ``mirdl train`` processes on 127.0.0.1, one ``TF_CONFIG`` each; worker 0 writes the run."""
    import shutil
    import sys
    import tempfile

    from mirdl.errors import ConfigError
    from mirdl_tf.train import local_cluster, run_workers

    if os.environ.get("TF_CONFIG"):
        raise ConfigError("--workers starts local workers, but TF_CONFIG is set: unset it, or run one mirdl train "
                          "per worker without --workers")
    if args.resume:
        raise ConfigError("--resume is not supported with --workers: a multi-worker run starts afresh")
    out = args.out if args.out is not None else config.out
    if out is None:
        raise ConfigError("out is missing: set out in the config or pass --out")
    if config.batch_size % args.workers:
        raise ConfigError(f"batch_size={config.batch_size} must be a multiple of --workers {args.workers} "
                          "(it is the global batch)")
    command = [sys.executable, "-m", "mirdl.cli", "train", "--config", str(args.config), "--out", str(out),
               "--store", config.store, "--seed", str(config.seed)]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    if args.overwrite:
        command.append("--overwrite")
    if args.audit is not None:
        command += ["--audit", str(args.audit)]
    # CPU workers; TensorFlow's C++ start-up notes off unless asked for.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    log_dir = Path(tempfile.mkdtemp(prefix="mirdl-train-workers-"))
    print(f"starting {args.workers} workers on 127.0.0.1 (worker 0 writes {out}; worker logs in {log_dir})",
          flush=True)
    run_workers([command] * args.workers, envs=[{**env, "TF_CONFIG": tf_config} for tf_config in
                                                local_cluster(args.workers)],
                log_dir=log_dir, timeout=args.worker_timeout)  # worker 0 prints the epochs and "metrics: ..."
    shutil.rmtree(log_dir, ignore_errors=True)  # kept when a worker failed (the error names it)
    return 0
