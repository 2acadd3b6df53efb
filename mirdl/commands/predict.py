"""``mirdl predict --model RUN FILES_OR_DIRS --out predictions.csv``: a trained model on new audio.

Each file is decoded, computed and cut with the feature spec and segmentation the model was
trained on (:mod:`mirdl_tf.predict`). Clip tasks write one row per file (CSV with a header,
or JSON lines); frame tasks write JSON lines with onset times, notes or chord segments; a
folder gets one JAMS file per input file (any task but regression). Files
that cannot be read are error records in ``OUT.errors.jsonl``; the exit status is then 3.

Examples
--------
::

    mirdl predict --model runs/clips new-recordings/ --out predictions.csv
    mirdl predict --model runs/onsets take1.wav take2.flac --out onsets.jsonl
    mirdl predict --model runs/onsets takes/ --out onsets/          # takes/a.wav -> onsets/a.jams
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mirdl.features.checks import argparse_type, integer

__all__ = ["configure", "preload", "run", "EXIT_SOME_FAILED"]

#: Exit status when some files could not be predicted (as ``mirdl prepare``).
EXIT_SOME_FAILED = 3


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl predict``."""
    parser.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR",
                        help="audio files, or folders (every audio file below them)")
    parser.add_argument("--model", required=True, type=Path, metavar="RUN", help="a mirdl train run directory")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT.csv|OUT.jsonl|FOLDER",
                        help="predictions: .csv (clip tasks: one row per file), .jsonl (any task), or a "
                             "folder (no extension): one .jams file per input file (not for regression)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint (best)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="tag / onset / piano-roll activation threshold (default 0.5)")
    parser.add_argument("--batch-size", type=argparse_type(integer, int, minimum=1), default=32, metavar="N",
                        help="patches per model call (default 32)")


def preload() -> None:
    """Import what :func:`run` needs (TensorFlow and Keras among it)."""
    import mirdl_tf.predict  # noqa: F401


def run(args: argparse.Namespace) -> int:
    """Predict, write, print a one-line summary (and the first failures)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mirdl_tf.predict import predict

    result = predict(args.model, args.inputs, out=args.out, checkpoint=args.checkpoint, batch_size=args.batch_size,
                     threshold=args.threshold)
    print(f"predict: {len(result.rows)} file(s) -> {args.out}"
          + (f"; {len(result.errors)} failed: see {args.out}.errors.jsonl" if result.errors else ""))
    for error in result.errors[:3]:
        print(f"  [{error.stage}] {error.path}: {error.reason}")
    return EXIT_SOME_FAILED if result.errors else 0
