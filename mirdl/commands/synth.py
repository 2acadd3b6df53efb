"""``mirdl synth-corpus OUT``: write the labelled synthetic corpus of :mod:`mirdl.features.synth`.

Examples
--------
::

    mirdl synth-corpus data/synth --tracks 200 --seed 0 --duration 4
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mirdl.features.checks import argparse_type, integer, positive_float

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl synth-corpus``."""
    parser.add_argument("out", metavar="OUT", type=Path,
                        help="directory to create (must be missing or empty unless --overwrite)")
    parser.add_argument("--tracks", type=argparse_type(integer, int, minimum=1), default=64, metavar="N",
                        help="number of tracks, balanced over the classes (default: 64)")
    parser.add_argument("--seed", type=argparse_type(integer, int, minimum=0), default=0, metavar="S",
                        help="random seed; the same seed writes byte-identical files (default: 0)")
    parser.add_argument("--duration", type=argparse_type(positive_float, float), default=4.0, metavar="SEC",
                        help="seconds per track, 0.5 to 600 (default: 4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT if it holds a previous synthetic corpus")
    parser.add_argument("--kind", choices=("demo", "clips"), default="demo",
                        help="demo: the balanced labelled corpus (tags, targets, annotations); clips: a hard "
                             "one-folder-per-class corpus, imbalanced in class sizes and track lengths, with "
                             "overlapping timbres (--tracks and --duration do not apply)")
    parser.add_argument("--scale", type=argparse_type(positive_float, float), default=1.0, metavar="X",
                        help="clips: multiply every class's track count (default 1: 56 tracks)")


def run(args: argparse.Namespace) -> int:
    """Write the corpus and print a one-line summary."""
    from mirdl.features.synth import write_clips_corpus, write_corpus

    if args.kind == "clips":
        files = write_clips_corpus(args.out, seed=args.seed, scale=args.scale, overwrite=args.overwrite)
        counts = ", ".join(f"{label} {len(paths)}" for label, paths in files.items())
        print(f"wrote {sum(map(len, files.values()))} tracks ({counts}; seed {args.seed}) to {args.out}")
        return 0
    listing = write_corpus(args.out, n_tracks=args.tracks, seed=args.seed, duration=args.duration,
                           overwrite=args.overwrite)
    print(f"wrote {len(listing.tracks)} tracks ({len(listing.classes)} classes: {', '.join(listing.classes)}; "
          f"{listing.seconds / 3600:.3f} h of audio; seed {listing.seed}) to {listing.root}")
    return 0
