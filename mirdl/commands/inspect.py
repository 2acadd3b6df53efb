"""``mirdl inspect STORE``: summarise a store's manifest; ``--plot DIR`` draws examples, ``--verify`` checks it.

Examples
--------
::

    mirdl inspect stores/demo
    mirdl inspect stores/demo --plot plots/ --verify
    mirdl inspect s3://lab-bucket/stores/demo      # manifest and errors.jsonl read in place
    mirdl inspect catalog://demo@2 --catalog /mnt/lab/catalog
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl inspect``."""
    parser.add_argument("store", metavar="STORE", help="store directory (holds manifest.json), s3:// URL or "
                                                       "catalog://NAME[@VERSION]")
    parser.add_argument("--catalog", metavar="ROOT", help="catalog root for catalog:// stores (default $MIRDL_CATALOG)")
    parser.add_argument("--plot", type=Path, metavar="DIR",
                        help="write examples.png (one spectrogram per class), labels.png, durations.png")
    parser.add_argument("--verify", action="store_true",
                        help="check the whole store as `mirdl verify` does (sizes, sha256, every record)")


def run(args: argparse.Namespace) -> int:
    """Print the summary, then verify and plot as asked."""
    from mirdl.commands.verify import report
    from mirdl.store import summary as store_summary
    from mirdl.store.catalog import resolve_store
    from mirdl.store.verify import verify

    store = resolve_store(args.store, catalog=args.catalog, param="STORE")
    print(store_summary.summary(store))
    if args.verify:
        print(report(verify(store)))
    if args.plot is not None:
        for path in store_summary.plot(store, args.plot):
            print(f"plotted {path}")
    return 0
