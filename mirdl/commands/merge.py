"""``mirdl merge PARTIAL... --out STORE``: combine the partial stores of an array job into one store.

Each partial was written by ``mirdl prepare --partition I/K`` (one array task each); the merge
checks that they are the K parts of one store (same config, corpus listing and K, every part
once), then writes the store a single ``mirdl prepare`` would have written: records re-sharded
by key hash, statistics merged from the stored sufficient statistics, splits, label counts,
errors and the manifest rebuilt (:func:`mirdl.pipelines.merge.merge_partials`). Exit 0 when
written (or up to date), 2 with one line when the partials do not belong together, 5 with one
line when the disk fills up (nothing written).

Examples
--------
::

    mirdl merge partials/part-0 partials/part-1 partials/part-2 --out stores/demo
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["configure", "preload", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mirdl merge``."""
    parser.add_argument("partials", nargs="+", metavar="PARTIAL", help="partial stores (mirdl prepare --partition I/K)")
    parser.add_argument("--out", required=True, help="the merged store to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it holds a mirdl store")


def preload() -> None:
    """Import what :func:`run` needs: Beam among it, without the packages it would import only for
    integrations a merge does not use (:data:`mirdl.commands.BEAM_UNUSED`, as ``mirdl prepare``)."""
    from mirdl.commands import BEAM_UNUSED, beam_import_notices_dropped, modules_hidden

    with beam_import_notices_dropped(), modules_hidden(BEAM_UNUSED):
        import mirdl.pipelines.merge  # noqa: F401


def run(args: argparse.Namespace) -> int:
    """Merge; return the exit status (0; 5 when the disk filled up: one line, nothing written)."""
    from mirdl.pipelines.failures import disk_full_message
    from mirdl.pipelines.merge import merge_partials

    try:
        manifest = merge_partials(args.partials, args.out, overwrite=args.overwrite,
                                  command=["mirdl", *sys.argv[1:]])
    except OSError as err:
        message = disk_full_message(err, store=args.out)
        if message is None:
            raise
        print(f"mirdl merge: error: {message}", file=sys.stderr)
        return 5
    if manifest is not None:
        splits = ", ".join(f"{split} {entry['records']}" for split, entry in manifest["splits"].items())
        print(f"merged {len(args.partials)} partial stores into {args.out}: records {splits}; "
              f"fingerprint {manifest['fingerprint']}")
    return 0
