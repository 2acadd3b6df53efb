"""``mirdl inspect STORE``: summarise a store's manifest; ``--plot DIR`` draws examples, ``--verify`` checks it.

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
    parser.add_argument("--verify", action="store_true",
                        help="check the whole store as `mirdl verify` does (sizes, sha256, every record)")


def run(args: argparse.Namespace) -> int:
    """Print the summary, then verify and plot as asked."""
    from mirdl.commands.verify import report
    from mirdl.store import summary as store_summary
    from mirdl.store.verify import verify

    print(store_summary.summary(args.store))
    if args.verify:
        print(report(verify(args.store)))
    if args.plot is not None:
        for path in store_summary.plot(args.store, args.plot):
            print(f"plotted {path}")
    return 0
