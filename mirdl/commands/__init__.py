"""Subcommands of ``mirdl``: each module has ``configure(parser)`` and ``run(args) -> int``."""
