"""``mirdl diff STORE_A STORE_B``: do two stores hold the same data? (exit 0 same, 1 different, 2 error)

Compares feature specs and task, the keys of every split, labels (exactly) and every feature
value within ``--atol``/``--rtol`` (``|a - b| <= atol + rtol * |b|``), printing the largest and
mean absolute difference per feature (:func:`mirdl.store.diff.diff_stores`). Stores built on
CPUs with other SIMD features differ in the last bits of their floats, so their sha256 differ
while this says "same data".

Examples
--------
::

    mirdl diff stores/demo /mnt/lab/stores/demo
    mirdl diff stores/demo other/demo --atol 1e-4 --split test
"""
from __future__ import annotations

import argparse

from mirdl.features.checks import argparse_type, non_negative_float

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl diff``."""
    from mirdl.store.diff import DEFAULT_ATOL, DEFAULT_RTOL

    parser.add_argument("store_a", metavar="STORE_A", help="first store: a directory, s3:// URL or catalog://NAME[@V]")
    parser.add_argument("store_b", metavar="STORE_B", help="second store")
    parser.add_argument("--atol", type=argparse_type(non_negative_float, float), default=DEFAULT_ATOL,
                        help=f"absolute tolerance of feature values (default {DEFAULT_ATOL:g})")
    parser.add_argument("--rtol", type=argparse_type(non_negative_float, float), default=DEFAULT_RTOL,
                        help=f"relative tolerance of feature values (default {DEFAULT_RTOL:g})")
    parser.add_argument("--split", action="append", metavar="SPLIT", dest="splits",
                        help="compare only this split (repeatable; default every split)")


def run(args: argparse.Namespace) -> int:
    """Print the comparison; 0 when the stores hold the same data, 1 when they differ."""
    from mirdl.store.diff import diff_stores

    result = diff_stores(args.store_a, args.store_b, atol=args.atol, rtol=args.rtol, splits=args.splits)
    for line in result.lines():
        print(line)
    return 0 if result.same else 1
