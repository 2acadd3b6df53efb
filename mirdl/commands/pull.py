"""``mirdl pull NAME[@VERSION] --from ROOT``: copy a catalog version into the local cache and verify it.

The cache is ``$MIRDL_CACHE`` (default ``~/.cache/mirdl``); a version already there is
verified and reused. The root defaults to ``$MIRDL_CATALOG``.

Examples
--------
::

    mirdl pull demo --from /mnt/lab/catalog           # the latest version
    mirdl pull demo@2 --from s3://lab-bucket/catalog
"""
from __future__ import annotations

import argparse

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl pull``."""
    parser.add_argument("reference", metavar="NAME[@VERSION]", help="store name, optionally @version (default latest)")
    parser.add_argument("--from", dest="root", metavar="ROOT", help="catalog root (default $MIRDL_CATALOG)")
    parser.add_argument("--cache", metavar="DIR", help="local cache (default $MIRDL_CACHE or ~/.cache/mirdl)")


def run(args: argparse.Namespace) -> int:
    """Pull and verify; print the local path (last line, for scripts)."""
    from mirdl.commands.verify import report
    from mirdl.store.catalog import pull

    path, fetched, checked = pull(args.reference, args.root, cache=args.cache)
    print(("pulled; " if fetched else "already in the cache; ") + report(checked))
    print(path)
    return 0
