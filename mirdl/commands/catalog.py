"""``mirdl catalog ROOT``: list the stores of a catalog (name, version, fingerprint, created, size, splits, counts).

The catalog is a listing of ``ROOT/NAME/VERSION/`` prefixes that hold a manifest
(:mod:`mirdl.store.catalog`): a local or NFS folder, or ``s3://BUCKET/PREFIX``.

Examples
--------
::

    mirdl catalog /mnt/lab/catalog
    mirdl catalog s3://lab-bucket/catalog --json
"""
from __future__ import annotations

import argparse
import json

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl catalog``."""
    parser.add_argument("root", metavar="ROOT", help="catalog root: a folder, or s3://BUCKET/PREFIX")
    parser.add_argument("--json", action="store_true", help="one JSON object per version instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per published version."""
    from mirdl.store.catalog import describe_entry, list_catalog

    entries = list_catalog(args.root)
    if args.json:
        for entry in entries:
            print(json.dumps(describe_entry(entry), sort_keys=True))
        return 0
    print(f"{'name':<20} {'ver':>4}  {'fingerprint':<16}  {'created':<25} {'size':>12}  records per split")
    for entry in entries:
        print(entry.line())
    if not entries:
        print(f"(no published store in {args.root})")
    return 0
