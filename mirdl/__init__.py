"""mirdl: audio corpora to deep-learning-ready feature stores and Keras models.

This package holds only the version and the ``mirdl`` command line entry point;
the work is done by :mod:`mirdl.features`, :mod:`mirdl.pipelines` and :mod:`mirdl_tf`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
