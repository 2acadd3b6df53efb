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
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mirdl.features.checks import argparse_type, integer

__all__ = ["configure", "run"]


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
    result = train(config, out=args.out, epochs=args.epochs, resume=True if args.resume else None,
                   overwrite=args.overwrite, log=lambda line: print(line, flush=True))
    print(f"metrics: {Path(result['out']) / 'metrics.json'}")
    return 0
