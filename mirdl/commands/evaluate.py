"""``mirdl evaluate --model DIR --store STORE``: per-track metrics of a trained model on a split.

See :mod:`mirdl_tf.evaluate` for how patches are aggregated per track and which
scikit-learn / mir_eval metrics each task gets. Writes ``OUT/metrics.json`` (default
``DIR/eval-SPLIT``) and, with ``--plot``, the task's PNG; prints the metrics.

Examples
--------
::

    mirdl evaluate --model runs/fcn --store stores/demo --split test --plot
    mirdl evaluate --model runs/fcn --store s3://lab-bucket/stores/demo      # read shard by shard
    mirdl evaluate --model runs/fcn --store catalog://demo@1                 # pulled (verified) once
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

__all__ = ["configure", "preload", "run", "format_metrics"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl evaluate``."""
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="a mirdl train run directory")
    parser.add_argument("--store", required=True, metavar="STORE",
                        help="store to evaluate on: a folder, s3:// URL or catalog://NAME[@VERSION]")
    parser.add_argument("--catalog", metavar="ROOT", help="catalog root for catalog:// stores (default $MIRDL_CATALOG)")
    parser.add_argument("--split", default="test", help="split (default: test)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where metrics.json goes (default DIR/eval-SPLIT)")
    parser.add_argument("--plot", action="store_true",
                        help="also draw the task's PNG (confusion matrix, per-tag AUCs, onset activations, ...)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint (best)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="onset peak / piano-roll activation threshold (frame tasks; default 0.5)")


def format_metrics(metrics: dict[str, Any], indent: str = "  ") -> list[str]:
    """The scalar metrics (and baseline) as aligned ``name value`` lines; per-class tables left out."""
    lines = []
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
            lines.append(f"{indent}{key:<24} {value:.4f}" if isinstance(value, float) else f"{indent}{key:<24} {value}")
        elif key.endswith("baseline") and isinstance(value, dict):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in value.items() if isinstance(v, float))
            lines.append(f"{indent}{key:<24} {shown} ({value.get('method')})")
    return lines


def preload() -> None:
    """Import what :func:`run` needs (TensorFlow and Keras among it)."""
    import mirdl_tf.evaluate  # noqa: F401


def run(args: argparse.Namespace) -> int:
    """Evaluate and print."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mirdl.store.catalog import resolve_store
    from mirdl_tf.evaluate import evaluate

    store = args.store
    if store.startswith("catalog://"):  # a verified local copy in the cache, as mirdl train reads it
        from mirdl.store.catalog import pull

        store, fetched, _ = pull(store, args.catalog)
        print(f"{args.store}: {'pulled into' if fetched else 'cached at'} {store}", flush=True)
    else:
        store = resolve_store(store, param="--store")
    result = evaluate(args.model, store, args.split, out=args.out, plot=args.plot, checkpoint=args.checkpoint,
                      threshold=args.threshold)
    print(f"{result['model']} ({result['checkpoint']}) on {args.store} [{args.split}]: {result['task']}, "
          f"{result['tracks']} tracks, {result['patches']} patches")
    for line in format_metrics(result["metrics"]):
        print(line)
    print(f"metrics: {Path(result['out']) / 'metrics.json'}")
    if "plot" in result:
        print(f"plot: {result['plot']}")
    return 0
