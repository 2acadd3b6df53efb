"""mirdl.features: pure numpy/librosa audio I/O, representations, augmentation, specs.

No Beam and no TensorFlow are imported here.
"""
from mirdl.errors import AudioError, ConfigError, MirdlError, StoreError

__all__ = ["AudioError", "ConfigError", "MirdlError", "StoreError"]
