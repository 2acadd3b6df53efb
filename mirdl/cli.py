"""The ``mirdl`` command: one entry point, one subcommand module each.

Each module in :mod:`mirdl.commands` has ``configure(parser)`` (cheap: arguments only)
and ``run(args) -> int`` (imports what it needs). Every :class:`mirdl.errors.MirdlError`
becomes one line on stderr and exit status 2, and Ctrl-C one line and exit status 130
(``mirdl prepare: interrupted; nothing was written``); nothing else is caught, so real bugs
still show their traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from mirdl.errors import MirdlError
from mirdl import __version__

__all__ = ["main", "COMMANDS", "build_parser"]

#: subcommand -> (module, one-line help)
COMMANDS = {
    "synth-corpus": ("mirdl.commands.synth", "write a labelled synthetic corpus (demo and tests)"),
    "features": ("mirdl.commands.features", "compute one feature of one audio file, optionally plot it"),
    "prepare": ("mirdl.commands.prepare", "run the Beam precompute job: corpus -> sharded feature store"),
    "inspect": ("mirdl.commands.inspect", "summarise a store's manifest, optionally plot examples"),
    "verify": ("mirdl.commands.verify", "check a store completely: manifest, sizes, sha256, every record"),
    "train": ("mirdl.commands.train", "train a Keras model from a store"),
    "evaluate": ("mirdl.commands.evaluate", "evaluate a trained model on a store split"),
    "extract": ("mirdl.commands.extract", "write transfer / random-weight features as a new store"),
    "catalog": ("mirdl.commands.catalog", "list the stores of a catalog root (name, version, fingerprint, counts)"),
    "publish": ("mirdl.commands.publish", "copy a store into a catalog as the next version of its name"),
    "pull": ("mirdl.commands.pull", "fetch a catalog version into the local cache and verify it"),
    "diff": ("mirdl.commands.diff", "do two stores hold the same data? keys, labels, features within a tolerance"),
    "probe": ("mirdl.commands.probe", "fit a linear probe on an extracted-feature store"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommands whose module is missing are left out)."""
    parser = _Parser(prog="mirdl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mirdl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``mirdl`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    # TensorFlow's C++ start-up chatter (no GPU found, CPU features) is noise on a command line;
    # a user who wants it sets TF_CPP_MIN_LOG_LEVEL themselves.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except MirdlError as err:
        print(f"mirdl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C: one line (the command may say what it left)
        detail = f"; {interrupt}" if str(interrupt) else ""
        print(f"mirdl {args.command}: interrupted{detail}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
