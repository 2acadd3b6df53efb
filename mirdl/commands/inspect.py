"""``mirdl inspect STORE``: summarise a store's manifest; ``--plot DIR`` draws examples, ``--verify`` checks shards.

Examples
--------
::

    mirdl inspect stores/demo
    mirdl inspect stores/demo --plot plots/ --verify
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl inspect``."""
    parser.add_argument("store", metavar="STORE", type=Path, help="store directory (holds manifest.json)")
    parser.add_argument("--plot", type=Path, metavar="DIR",
                        help="write examples.png (one spectrogram per class), labels.png, durations.png")
    parser.add_argument("--verify", action="store_true", help="check every shard's size and sha256")


def run(args: argparse.Namespace) -> int:
    """Print the summary, then plot and verify as asked."""
    from mirdl.pipelines import inspect

    print(inspect.summary(args.store))
    if args.verify:
        print(f"verified: {inspect.verify(args.store)} shards, sizes and sha256 match the manifest")
    if args.plot is not None:
        for path in inspect.plot(args.store, args.plot):
            print(f"plotted {path}")
    return 0
