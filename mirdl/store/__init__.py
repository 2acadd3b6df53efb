"""mirdl.store: the feature-store format, its one owner.

Both the writer (:mod:`mirdl.pipelines`) and the readers (:mod:`mirdl_tf`) import the store
format from here: format constants and shard naming, the manifest schema, atomic writes,
one adapter per shard format, and ``verify``. Nothing here imports Beam; TensorFlow,
h5py and pyarrow are imported only by the adapter that needs them.
"""
