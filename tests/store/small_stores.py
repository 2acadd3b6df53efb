"""A small store of each format, written through the store layer (no Beam, no TensorFlow for HDF5/Parquet).

Imported by this folder's tests and conftest (and by a subprocess in the concurrency test).
"""
import numpy as np

from mirdl.store.build import write_store
from mirdl.store.format import record_key

FORMATS = ("tfrecord", "hdf5", "parquet")
TASK = {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": 2, "vocabulary": ["a", "b"]}


def make_records(n_tracks=4, n_segments=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"key": record_key(track_id=f"t{track}", variant=0, segment=segment), "track_id": f"t{track}",
             "variant": 0, "segment": segment, "start_frame": 4 * segment,
             "x": rng.standard_normal((3, 4)).astype(np.float32), "label": np.int64(track % 2)}
            for track in range(n_tracks) for segment in range(n_segments)]


def build(root, fmt="parquet", *, n_shards=2, overwrite=False, records=None):
    """Write the small store at ``root``; return its manifest."""
    records = make_records() if records is None else records
    features = {"x": {"shape": [3, 4], "dtype": "float32", "axes": ["bin", "time"],
                      "stats": {"split": "train", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}}}
    return write_store(root, {"train": records[:8], "test": records[8:]}, name="small", store_format=fmt,
                       features=features, task=TASK, fingerprint="f" * 16, n_shards=n_shards, overwrite=overwrite)
