"""``mirdl extract``: transfer features of a trained or random-weight convnet, as a new store.

One record per track: the mean over its patches of the concatenated global averages of the
model's block outputs (Choi et al. 2017, transfer learning); see :mod:`mirdl_tf.transfer`.

Examples
--------
::

    mirdl extract --model runs/fcn --store stores/demo --out stores/demo-fcn
    mirdl extract --random-weights --model-name fcn --model-args '{n_layers: 3, base_filters: 8}' \\
        --seed 0 --store stores/demo --out stores/demo-random --format tfrecord
    mirdl probe --store stores/demo-fcn
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mirdl.features.checks import argparse_type, integer

__all__ = ["configure", "preload", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl extract``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, metavar="DIR", help="a mirdl train run directory")
    source.add_argument("--random-weights", action="store_true",
                        help="a randomly initialised --model-name instead of a trained model")
    parser.add_argument("--model-name", default="fcn", help="architecture for --random-weights (default fcn)")
    parser.add_argument("--model-args", default=None, metavar="YAML",
                        help="builder arguments for --random-weights, e.g. '{n_layers: 3, base_filters: 8}'")
    parser.add_argument("--seed", type=argparse_type(integer, int, minimum=0), default=0, help="weight seed for --random-weights (default 0)")
    parser.add_argument("--store", required=True, type=Path, metavar="STORE", help="a clip-task store")
    parser.add_argument("--out", required=True, type=Path, metavar="STORE2", help="the new store's directory")
    parser.add_argument("--layers", nargs="+", metavar="LAYER",
                        help="block outputs to pool (default: every block, e.g. block_1_out ... block_5_out)")
    parser.add_argument("--format", choices=("parquet", "tfrecord", "hdf5"), default="parquet",
                        help="shard format of the new store (default parquet)")
    parser.add_argument("--splits", nargs="+", metavar="SPLIT", help="splits to extract (default all)")
    parser.add_argument("--feature", metavar="NAME", help="store feature for --random-weights (default its first)")
    parser.add_argument("--patch-frames", type=argparse_type(integer, int, minimum=1), metavar="N", help="input length for --random-weights")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="with --model (best)")
    parser.add_argument("--overwrite", action="store_true", help="replace a store at --out")


def preload() -> None:
    """Import what :func:`run` needs (TensorFlow and Keras among it)."""
    import mirdl_tf.transfer  # noqa: F401


def run(args: argparse.Namespace) -> int:
    """Extract and print a summary."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import yaml

    from mirdl.errors import ConfigError
    from mirdl_tf.transfer import TRANSFER_FEATURE, extract

    model_args = None
    if args.model_args is not None:
        if not args.random_weights:
            raise ConfigError("--model-args is for --random-weights; a trained model has its own")
        try:
            model_args = yaml.safe_load(args.model_args)
        except yaml.YAMLError as err:
            raise ConfigError(f"--model-args {args.model_args!r}: not YAML ({err})") from None
        if not isinstance(model_args, dict):
            raise ConfigError(f"--model-args {args.model_args!r} must be a mapping such as '{{n_layers: 3}}'")
    manifest = extract(args.store, args.out, model_dir=args.model,
                       random_model=args.model_name if args.random_weights else None, model_args=model_args,
                       seed=args.seed, layers=args.layers, store_format=args.format, splits=args.splits,
                       feature=args.feature, patch_frames=args.patch_frames, checkpoint=args.checkpoint, overwrite=args.overwrite,
                       log=lambda line: print(line, flush=True))
    feature = manifest["features"][TRANSFER_FEATURE]
    print(f"store {manifest['name']} ({manifest['format']}) written to {args.out}: {feature['shape'][0]} "
          f"dimensions from {', '.join(feature['spec']['layers'])}")
    return 0
