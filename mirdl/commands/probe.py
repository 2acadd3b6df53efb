"""``mirdl probe --store STORE2``: a linear probe on extracted features (:func:`mirdl_tf.transfer.probe`).

Fits ``StandardScaler`` + ``LogisticRegression`` (``Ridge`` for regression) on one split and
prints the metrics ``mirdl evaluate`` uses on another.

Examples
--------
::

    mirdl probe --store stores/demo-fcn --split-train train --split-test test --out probe.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mirdl.features.checks import argparse_type, positive_float

__all__ = ["configure", "preload", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl probe``."""
    parser.add_argument("--store", required=True, type=Path, metavar="STORE2", help="a store written by mirdl extract")
    parser.add_argument("--split-train", default="train", metavar="SPLIT", help="split to fit on (train)")
    parser.add_argument("--split-test", default="test", metavar="SPLIT", help="split to score (test)")
    parser.add_argument("--c", type=argparse_type(positive_float, float), default=1.0, help="inverse regularisation of LogisticRegression (1.0)")
    parser.add_argument("--alpha", type=argparse_type(positive_float, float), default=1.0, help="regularisation of Ridge (1.0)")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="also write the result as JSON")


def preload() -> None:
    """Import what :func:`run` needs (TensorFlow and Keras among it)."""
    import mirdl_tf.transfer  # noqa: F401


def run(args: argparse.Namespace) -> int:
    """Fit, score, print (and write)."""
    from mirdl.errors import ConfigError
    from mirdl.store.files import write_json_atomic
    from mirdl.commands.evaluate import format_metrics
    from mirdl_tf.transfer import probe

    result = probe(args.store, split_train=args.split_train, split_test=args.split_test, c=args.c, alpha=args.alpha)
    print(f"probe {result['model']} on {result['dimensions']}-dimensional features: "
          f"{result['split_train']} ({result['n_train']}) -> {result['split_test']} ({result['n_test']}), "
          f"{result['task']}")
    for line in format_metrics(result["metrics"]):
        print(line)
    if args.out is not None:
        write_json_atomic(args.out, result)
        print(f"metrics: {args.out}")
    return 0
