"""Per-format shard readers for :mod:`mirdl_tf.data`: one shard path in, a dataset of records out.

Every reader turns one shard file into a ``tf.data.Dataset`` whose elements are the same
dict (:data:`RECORD_FIELDS`), so everything after parsing is one code path:

``feature``      the chosen feature, manifest shape, stored dtype (float32/float16)
``label``        manifest ``task.label_shape`` / ``task.label_dtype``
``key``, ``track_id``                      tf.string scalars
``variant``, ``segment``, ``start_frame``  tf.int64 scalars

- TFRecord: :func:`tfrecord_reader` yields serialised examples (native, no Python);
  :func:`tfrecord_parser` parses batches of them in graph (``FixedLenFeature`` +
  ``decode_raw``), mapped in parallel on ``batch(READ_CHUNK)`` after the interleave, then unbatched.
- HDF5 (h5py) and Parquet (pyarrow): :func:`hdf5_reader` / :func:`parquet_reader` run a
  Python generator *per shard* (``Dataset.from_generator`` inside ``interleave``), which
  opens its own file handle, reads :data:`READ_CHUNK` records at a time and yields them as
  one batch that is ``unbatch()``-ed in graph; no handle is ever shared between threads.
- HDF5 (tensorflow-io): :func:`tfio_hdf5_reader` zips ``tfio.IODataset.from_hdf5`` column
  datasets (native ops, no Python per record); only where tensorflow-io loads.

The readers know the record layout of ``docs/store-format.md`` and nothing about the
manifest beyond the :class:`Layout` handed to them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mirdl.errors import StoreError

__all__ = [
    "READ_CHUNK",
    "RECORD_FIELDS",
    "Layout",
    "record_signature",
    "tfrecord_reader",
    "tfrecord_parser",
    "hdf5_reader",
    "parquet_reader",
    "tfio_hdf5_reader",
    "load_tfio",
]

#: Records read per Python call by the HDF5 and Parquet readers (one HDF5 chunk is one record).
READ_CHUNK = 64
#: Keys of every parsed record.
RECORD_FIELDS = ("feature", "label", "key", "track_id", "variant", "segment", "start_frame")
_INT_FIELDS = ("variant", "segment", "start_frame")
_STRING_FIELDS = ("key", "track_id")


@dataclass(frozen=True)
class Layout:
    """What a reader needs to know about the records of one store (taken from its manifest).

    Parameters
    ----------
    feature : str
        Column / dataset name of the feature to read.
    feature_shape : tuple of int
        Shape of one record's feature, time last.
    feature_dtype : {"float32", "float16"}
    label_shape : tuple of int
    label_dtype : {"int64", "float32"}
    compression : str or None
        ``"gzip"`` for GZIP-compressed TFRecord shards.
    """

    feature: str
    feature_shape: tuple[int, ...]
    feature_dtype: str
    label_shape: tuple[int, ...]
    label_dtype: str
    compression: str | None = None

    @property
    def feature_tf_dtype(self) -> tf.DType:
        return tf.as_dtype(self.feature_dtype)

    @property
    def label_tf_dtype(self) -> tf.DType:
        return tf.as_dtype(self.label_dtype)


def record_signature(layout: Layout, *, batched: bool = False) -> dict[str, tf.TensorSpec]:
    """``tf.TensorSpec`` of each record field (with a leading ``None`` axis if ``batched``)."""
    lead = (None,) if batched else ()
    spec = {
        "feature": tf.TensorSpec(lead + layout.feature_shape, layout.feature_tf_dtype),
        "label": tf.TensorSpec(lead + layout.label_shape, layout.label_tf_dtype),
    }
    spec.update({name: tf.TensorSpec(lead, tf.string) for name in _STRING_FIELDS})
    spec.update({name: tf.TensorSpec(lead, tf.int64) for name in _INT_FIELDS})
    return spec


# --------------------------------------------------------------------------- TFRecord
def tfrecord_reader(layout: Layout):
    """``path -> TFRecordDataset`` of serialised ``tf.train.Example`` (GZIP if the store says so)."""
    compression_type = "GZIP" if (layout.compression or "").lower() == "gzip" else ""

    def read(path: tf.Tensor) -> tf.data.Dataset:
        # The interleave already reads several files in parallel; a read buffer per file
        # keeps each file's reads sequential and large.
        return tf.data.TFRecordDataset(path, compression_type=compression_type, buffer_size=1 << 20)

    return read


def tfrecord_parser(layout: Layout):
    """``batch of serialised Examples -> batch of record dicts``, all in graph.

    Vectorised (``tf.io.parse_example`` on a batch, as the tf.data guide recommends for
    cheap maps): apply to ``ds.batch(READ_CHUNK)`` and ``unbatch()`` after.
    """
    description = {
        layout.feature: tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature(layout.label_shape, layout.label_tf_dtype),
    }
    description.update({name: tf.io.FixedLenFeature([], tf.string) for name in _STRING_FIELDS})
    description.update({name: tf.io.FixedLenFeature([], tf.int64) for name in _INT_FIELDS})

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        examples = tf.io.parse_example(serialized, description)
        # Raw bytes are little-endian (docs/store-format.md), decode_raw's default; a feature of
        # the wrong byte length fails here, in the reshape.
        raw = tf.io.decode_raw(examples.pop(layout.feature), layout.feature_tf_dtype)
        examples["feature"] = tf.reshape(raw, (-1, *layout.feature_shape))
        return examples

    return parse


# --------------------------------------------------------------------------- h5py / pyarrow
def _from_python(layout: Layout, chunks):
    """``path -> dataset``: run ``chunks(path_str)`` (a generator of record-batch dicts) per shard."""
    signature = record_signature(layout, batched=True)

    def read(path: tf.Tensor) -> tf.data.Dataset:
        batches = tf.data.Dataset.from_generator(
            lambda p: chunks(p.decode() if isinstance(p, bytes) else str(p)),
            output_signature=signature,
            args=(path,),
        )
        return batches.unbatch()

    return read


def _h5_chunks(path: str, layout: Layout):
    import h5py  # imported here: only HDF5 stores need it

    with h5py.File(path, "r") as h5:  # one handle per shard, owned by this generator
        dataset_name = f"features/{layout.feature}"
        if dataset_name not in h5:
            raise StoreError(f"{path}: has no dataset {dataset_name!r}")
        features, labels = h5[dataset_name], h5["label"]
        n = features.shape[0]
        for start in range(0, n, READ_CHUNK):
            stop = min(start + READ_CHUNK, n)
            chunk = {
                "feature": features[start:stop].astype(layout.feature_dtype, copy=False),
                "label": labels[start:stop].astype(layout.label_dtype, copy=False),
            }
            for name in _STRING_FIELDS:
                chunk[name] = np.asarray(h5[name].asstr()[start:stop], dtype=object)
            for name in _INT_FIELDS:
                chunk[name] = h5[name][start:stop].astype(np.int64, copy=False)
            yield chunk


def hdf5_reader(layout: Layout):
    """``path -> dataset`` of record dicts read with h5py, :data:`READ_CHUNK` records per call."""
    return _from_python(layout, lambda path: _h5_chunks(path, layout))


def _column_array(column, *, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A pyarrow column (scalar or fixed_size_list) as an ``(n, *shape)`` numpy array."""
    import pyarrow as pa

    n = len(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    while pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type) \
            or pa.types.is_large_list(column.type):
        column = column.flatten()
    values = column.to_numpy(zero_copy_only=False)
    return values.reshape((n, *shape)).astype(dtype, copy=False)


def _parquet_chunks(path: str, layout: Layout):
    import pyarrow.parquet as pq  # imported here: only Parquet stores need it

    columns = [layout.feature, "label", *_STRING_FIELDS, *_INT_FIELDS]
    with pq.ParquetFile(path) as parquet:  # one reader per shard, owned by this generator
        missing = [name for name in columns if name not in parquet.schema_arrow.names]
        if missing:
            raise StoreError(f"{path}: has no column {missing[0]!r}")
        for batch in parquet.iter_batches(batch_size=READ_CHUNK, columns=columns, use_threads=False):
            chunk = {
                "feature": _column_array(batch.column(layout.feature), shape=layout.feature_shape,
                                         dtype=layout.feature_dtype),
                "label": _column_array(batch.column("label"), shape=layout.label_shape, dtype=layout.label_dtype),
            }
            for name in _STRING_FIELDS:
                chunk[name] = np.asarray(batch.column(name).to_pylist(), dtype=object)
            for name in _INT_FIELDS:
                chunk[name] = batch.column(name).to_numpy().astype(np.int64, copy=False)
            yield chunk


def parquet_reader(layout: Layout):
    """``path -> dataset`` of record dicts read with pyarrow, one row batch per call."""
    return _from_python(layout, lambda path: _parquet_chunks(path, layout))


# --------------------------------------------------------------------------- tensorflow-io
def load_tfio():
    """Import tensorflow-io and check its HDF5 kernels load; return the module.

    Raises
    ------
    StoreError
        If tensorflow-io is not installed or its native ops do not load with this
        TensorFlow (tensorflow-io 0.37.1 needs TensorFlow 2.17), saying so.
    """
    try:
        import tensorflow_io as tfio
        # Importing succeeds even where the shared library does not load; touching an op does not.
        tfio.IODataset.from_hdf5  # noqa: B018 - attribute access triggers the lazy op library load
        from tensorflow_io.python.ops import core_ops

        core_ops.io_hdf5_readable_info  # noqa: B018 - loads libtensorflow_io.so
    except Exception as err:  # ImportError, NotImplementedError, tf.errors.NotFoundError, ...
        raise StoreError(
            f"hdf5_backend='tfio' needs tensorflow-io's native ops, which are not loadable here "
            f"(tensorflow {tf.__version__}): {type(err).__name__}: {err}. "
            f"Use hdf5_backend='h5py', or the [tfio] extra (tensorflow==2.17.1, tensorflow-io==0.37.1)."
        ) from err
    return tfio


def tfio_hdf5_reader(layout: Layout):
    """``path -> dataset`` of record dicts from tensorflow-io's HDF5 ops (no Python per record)."""
    tfio = load_tfio()
    signature = record_signature(layout)

    def column(path: tf.Tensor, name: str, spec: tf.DType) -> tf.data.Dataset:
        return tfio.IODataset.from_hdf5(path, dataset=name, spec=spec)

    def read(path: tf.Tensor) -> tf.data.Dataset:
        columns = {
            "feature": column(path, f"/features/{layout.feature}", layout.feature_tf_dtype),
            "label": column(path, "/label", layout.label_tf_dtype),
        }
        columns.update({name: column(path, f"/{name}", tf.int64) for name in _INT_FIELDS})
        columns.update({name: column(path, f"/{name}", tf.string) for name in _STRING_FIELDS})
        # tfio's datasets carry no static shape; the manifest's shapes are checked here.
        return tf.data.Dataset.zip(columns).map(
            lambda record: {name: tf.ensure_shape(value, signature[name].shape) for name, value in record.items()})

    return read
