"""mirdl: audio corpora to deep-learning-ready feature stores and Keras models.

The package itself holds the version; the work is done by :mod:`mirdl.features`,
:mod:`mirdl.pipelines` and :mod:`mirdl_tf`. The Python API that mirrors the ``mirdl``
command (:mod:`mirdl.api`: ``prepare``, ``merge``, ``Store``, ``train``, ``evaluate``, ``predict``) is
imported on first use, so ``import mirdl`` loads neither Beam nor TensorFlow.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "prepare", "merge", "Store", "train", "evaluate", "predict"]

_API = ("prepare", "merge", "Store", "train", "evaluate", "predict")


def __getattr__(name: str):
    if name in _API:
        from mirdl import api

        return getattr(api, name)
    raise AttributeError(f"module 'mirdl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
