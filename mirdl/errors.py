"""Error hierarchy shared by every mirdl layer.

Errors are raised at the edge with a clear type; the CLI turns any
:class:`MirdlError` into one line on stderr and a non-zero exit status.
"""

__all__ = ["MirdlError", "ConfigError", "AudioError", "StoreError"]


class MirdlError(Exception):
    """Base class of every error mirdl raises on purpose."""


class ConfigError(MirdlError, ValueError):
    """A spec, config file or argument is invalid; the message names the field."""


class AudioError(MirdlError):
    """An audio file cannot be decoded or its samples are unusable."""


class StoreError(MirdlError):
    """A feature store is missing, incomplete, corrupt or of an unknown format version."""
