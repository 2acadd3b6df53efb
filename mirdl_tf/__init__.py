"""mirdl_tf: TensorFlow side of mirdl — tf.data input pipelines from feature stores, Keras models.

Submodules are imported on first use (``mirdl_tf.data``, ``mirdl_tf.models``,
``mirdl_tf.layers``, ``mirdl_tf.train``, ``mirdl_tf.evaluate``, ``mirdl_tf.metrics``,
``mirdl_tf.transfer``), so ``import mirdl_tf`` itself does not import TensorFlow.
Imports TensorFlow and :mod:`mirdl.features`, never Apache Beam.

Examples
--------
>>> import mirdl_tf
>>> sorted(mirdl_tf.__all__)
['data', 'evaluate', 'layers', 'metrics', 'models', 'train', 'transfer']
"""
import importlib

__all__ = ["data", "evaluate", "layers", "metrics", "models", "train", "transfer"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
