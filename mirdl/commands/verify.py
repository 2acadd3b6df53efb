"""``mirdl verify STORE``: check a store completely (exit 0 when it is intact, 2 with the first problem).

Checks the manifest against its schema, the store marker, every shard's path (inside the
store), size and sha256, and reads every record back through its format (TFRecord CRCs,
HDF5 fletcher32, Parquet page CRCs), comparing record counts, key order and shapes with the
manifest (:func:`mirdl.store.verify.verify`).

Examples
--------
::

    mirdl verify stores/demo
    mirdl verify s3://lab-bucket/stores/demo          # shard by shard, each fetched to a temporary file
    mirdl verify catalog://demo@2 --catalog /mnt/lab/catalog
"""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["configure", "run", "report"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl verify``."""
    parser.add_argument("store", metavar="STORE", help="store directory (holds manifest.json), s3:// or gs:// URL, "
                                                       "or catalog://NAME[@VERSION]")
    parser.add_argument("--catalog", metavar="ROOT", help="catalog root for catalog:// stores (default $MIRDL_CATALOG)")
    parser.add_argument("--split", action="append", metavar="SPLIT", dest="splits",
                        help="verify only this split (repeatable; default every split)")


def report(checked: dict[str, Any]) -> str:
    """The one line that says what was verified."""
    return (f"verified {checked['store']}: format_version {checked['format_version']}, "
            f"{len(checked['splits'])} split(s), {checked['shards']} shard(s), {checked['records']} records, "
            f"{checked['bytes'] / 1e6:.2f} MB: sizes, sha256 and every record match the manifest")


def run(args: argparse.Namespace) -> int:
    """Verify; a problem is a StoreError, which the CLI prints as one line (exit 2)."""
    from mirdl.store.catalog import resolve_store
    from mirdl.store.verify import verify

    print(report(verify(resolve_store(args.store, catalog=args.catalog), splits=args.splits)))
    return 0
