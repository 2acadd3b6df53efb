"""``mirdl publish STORE ROOT [--name N]``: copy a store into a catalog as the next version of its name.

The store is verified first; the next version is claimed exclusively (two people publishing
at once get two versions), then the store is copied under ``ROOT/NAME/VERSION/`` with its
manifest last (:func:`mirdl.store.catalog.publish`).

Examples
--------
::

    mirdl publish stores/demo /mnt/lab/catalog
    mirdl publish stores/demo s3://lab-bucket/catalog --name demo-logmel
"""
from __future__ import annotations

import argparse

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl publish``."""
    parser.add_argument("store", metavar="STORE", help="store to publish: a directory or s3:// URL")
    parser.add_argument("root", metavar="ROOT", help="catalog root: a folder, or s3://BUCKET/PREFIX")
    parser.add_argument("--name", metavar="NAME", help="name in the catalog (default: the store's name)")


def run(args: argparse.Namespace) -> int:
    """Publish; print the new version's reference and location."""
    from mirdl.store.catalog import publish

    entry = publish(args.store, args.root, name=args.name)
    print(f"published {args.store} as catalog://{entry.name}@{entry.version} ({entry.location}, fingerprint "
          f"{entry.fingerprint}, {entry.bytes / 1e6:.2f} MB)")
    return 0
