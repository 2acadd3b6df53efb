"""Write and read one shard of a feature store: one interface, three formats.

:func:`write_shard` takes records already sorted by key and writes them in the layout
``docs/store-format.md`` gives for TFRecord, HDF5 or Parquet; :func:`read_shard` reads
any of them back as the same record dicts. A record is a dict::

    {"key": str, "track_id": str, "variant": int, "segment": int, "start_frame": int,
     FEATURE_NAME: np.ndarray (manifest shape and dtype), ..., "label": np.ndarray or int}

Extra keys (the job's ``split``) are ignored. What a shard holds is described by two
manifest sections, passed as they appear in ``manifest.json``: ``features`` (name ->
``{"shape", "dtype", ...}``, in column order) and ``task`` (``label_shape``, ``label_dtype``).

Every byte of a shard is a function of its records and these arguments: no timestamps, no
dictionary order, no host name, so writing the same records twice gives the same sha256
(TFRecord: ``SerializeToString(deterministic=True)``, GZIP without a modification time;
HDF5: no object timestamps; Parquet: no time in its
metadata). The format libraries are imported lazily, so a worker writing HDF5 or Parquet
never imports TensorFlow.

Examples
--------
>>> import tempfile, numpy as np
>>> features = {"logmel": {"shape": [2, 3], "dtype": "float32"}}
>>> task = {"label_shape": [], "label_dtype": "int64"}
>>> record = {"key": "a#v000#s000000", "track_id": "a", "variant": 0, "segment": 0,
...           "start_frame": 0, "logmel": np.ones((2, 3), np.float32), "label": 1}
>>> path = Path(tempfile.mkdtemp()) / "demo-train.h5-00000-of-00001"
>>> info = write_shard([record], path=path, store_format="hdf5", features=features, task=task)
>>> info.records, info.path
(1, 'demo-train.h5-00000-of-00001')
>>> manifest = {"features": features, "task": task}
>>> next(read_shard(path, store_format="hdf5", manifest=manifest))["label"]
array(1)
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirdl.errors import StoreError
from mirdl.store.format import LABEL_COLUMN, STORE_FORMATS, atomic_path, sha256_file

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_ROW_GROUP_RECORDS",
    "ShardInfo",
    "write_shard",
    "read_shard",
    "record_nbytes",
]

#: Compression each store format supports ("none" first: the default).
COMPRESSIONS = {
    "tfrecord": ("none", "gzip"),
    "hdf5": ("none", "gzip", "lzf"),
    "parquet": ("none", "gzip", "zstd"),
}
#: Records per Parquet row group unless the config says otherwise.
DEFAULT_ROW_GROUP_RECORDS = 256
# The columns of mirdl.store.format.RECORD_COLUMNS, by type.
_STRING_COLUMNS = ("key", "track_id")
_INT_COLUMNS = ("variant", "segment", "start_frame")


@dataclass(frozen=True)
class ShardInfo:
    """One written shard, as listed in ``manifest.splits[split].shards``.

    Attributes
    ----------
    path : str
        File name relative to the store directory.
    records : int
    bytes : int
        File size.
    sha256 : str
        Hex digest of the file.
    """

    path: str
    records: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_nbytes(record: Mapping[str, Any], *, feature_names: Iterable[str]) -> int:
    """Bytes of a record's arrays and strings: the size estimate the shard count is computed from."""
    arrays = sum(np.asarray(record[name]).nbytes for name in feature_names)
    return arrays + np.asarray(record[LABEL_COLUMN]).nbytes + 8 * len(_INT_COLUMNS) \
        + sum(len(record[name].encode("utf-8")) for name in _STRING_COLUMNS)


def _check_args(store_format: str, compression: str) -> None:
    if store_format not in STORE_FORMATS:
        raise StoreError(f"store_format={store_format!r} must be one of {sorted(STORE_FORMATS)}")
    if compression not in COMPRESSIONS[store_format]:
        raise StoreError(
            f"compression={compression!r} is not supported by {store_format} "
            f"(supported: {list(COMPRESSIONS[store_format])})"
        )


def _checked(records: Iterable[Mapping[str, Any]], *, features: Mapping[str, Any],
             task: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The records with features and label as C-ordered little-endian arrays of the manifest's
    shape and dtype; StoreError on a wrong shape or keys out of order (shards must be sorted)."""
    label_shape, label_dtype = tuple(task["label_shape"]), np.dtype(task["label_dtype"]).newbyteorder("<")
    previous = None
    for record in records:
        key = record["key"]
        if previous is not None and not key > previous:
            raise StoreError(f"records must be sorted by key with no repeats: {key!r} after {previous!r}")
        previous = key
        out = {name: str(record[name]) for name in _STRING_COLUMNS}
        out.update({name: int(record[name]) for name in _INT_COLUMNS})
        for name, entry in features.items():
            array = np.asarray(record[name])
            if array.shape != tuple(entry["shape"]):
                raise StoreError(f"record {key!r}: feature {name!r} has shape {array.shape}, "
                                 f"the store's is {tuple(entry['shape'])}")
            out[name] = np.asarray(array, dtype=np.dtype(entry["dtype"]).newbyteorder("<"), order="C")
        label = np.asarray(record[LABEL_COLUMN])
        if label.shape != label_shape:
            raise StoreError(f"record {key!r}: label has shape {label.shape}, the store's is {label_shape}")
        out[LABEL_COLUMN] = np.asarray(label, dtype=label_dtype, order="C")
        yield out


def write_shard(records: Iterable[Mapping[str, Any]], *, path: str | os.PathLike, store_format: str,
                features: Mapping[str, Mapping[str, Any]], task: Mapping[str, Any],
                compression: str = "none",
                row_group_records: int = DEFAULT_ROW_GROUP_RECORDS) -> ShardInfo:
    """Write records (sorted by key) to one shard file, atomically.

    Parameters
    ----------
    records : iterable of dict
        Sorted by ``key``, no repeats (checked). Read once; HDF5 and Parquet hold one
        shard's records (about ``store.shard_bytes``) in memory.
    path : path-like
        Final shard path (in the store's temporary directory); written through
        :func:`mirdl.store.format.atomic_path`, so it appears complete or not at all.
    store_format : {"tfrecord", "hdf5", "parquet"}
    features : mapping
        ``manifest["features"]``: name -> ``{"shape": [...], "dtype": "float32"|"float16"}``,
        in column order.
    task : mapping
        ``manifest["task"]`` (``label_shape``, ``label_dtype``).
    compression : str
        One of :data:`COMPRESSIONS` ``[store_format]``.
    row_group_records : int > 0
        Parquet only: records per row group.

    Returns
    -------
    ShardInfo
        File name, record count, size and sha256 of the written file.

    Raises
    ------
    StoreError
        Unknown format or compression, unsorted keys, a feature or label of the wrong shape.
    """
    _check_args(store_format, compression)
    if isinstance(row_group_records, bool) or not isinstance(row_group_records, int) or row_group_records < 1:
        raise StoreError(f"row_group_records={row_group_records!r} must be a positive integer")
    path = Path(path)
    checked = _checked(records, features=features, task=task)
    writer = {"tfrecord": _write_tfrecord, "hdf5": _write_hdf5, "parquet": _write_parquet}[store_format]
    with atomic_path(path) as tmp:
        n_records = writer(checked, tmp, features=features, task=task, compression=compression,
                           row_group_records=row_group_records)
        info = ShardInfo(path=path.name, records=n_records, bytes=tmp.stat().st_size, sha256=sha256_file(tmp))
    return info


# ------------------------------------------------------------------------------------------ TFRecord
def _tensorflow():
    """TensorFlow, imported on first use only (the TFRecord format is the one place it is needed),
    without its start-up chatter (CUDA probing, CPU features) unless the user asked for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _write_tfrecord(records, tmp: Path, *, features, task, compression, row_group_records) -> int:
    tf = _tensorflow()

    label_is_int = task["label_dtype"] == "int64"
    options = tf.io.TFRecordOptions(compression_type="GZIP" if compression == "gzip" else "")
    n_records = 0
    with tf.io.TFRecordWriter(str(tmp), options) as writer:
        for record in records:
            feature = {name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[record[name].encode("utf-8")]))
                       for name in _STRING_COLUMNS}
            feature.update({name: tf.train.Feature(int64_list=tf.train.Int64List(value=[record[name]]))
                            for name in _INT_COLUMNS})
            feature.update({name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[record[name].tobytes()]))
                            for name in features})
            label = record[LABEL_COLUMN].reshape(-1)
            feature[LABEL_COLUMN] = (tf.train.Feature(int64_list=tf.train.Int64List(value=label)) if label_is_int
                                     else tf.train.Feature(float_list=tf.train.FloatList(value=label)))
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString(deterministic=True))
            n_records += 1
    return n_records


def _read_tfrecord(path: Path, manifest: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    tf = _tensorflow()

    features, task = manifest["features"], manifest["task"]
    label_dtype = tf.int64 if task["label_dtype"] == "int64" else tf.float32
    description = {name: tf.io.FixedLenFeature([], tf.string) for name in (*_STRING_COLUMNS, *features)}
    description.update({name: tf.io.FixedLenFeature([], tf.int64) for name in _INT_COLUMNS})
    description[LABEL_COLUMN] = tf.io.FixedLenFeature(task["label_shape"], label_dtype)
    compression_type = "GZIP" if manifest.get("compression") == "gzip" else ""
    dataset = tf.data.TFRecordDataset(str(path), compression_type=compression_type).map(
        lambda serialized: tf.io.parse_single_example(serialized, description))
    for example in dataset.as_numpy_iterator():
        record = {name: example[name].decode("utf-8") for name in _STRING_COLUMNS}
        record.update({name: int(example[name]) for name in _INT_COLUMNS})
        for name, entry in features.items():
            dtype = np.dtype(entry["dtype"]).newbyteorder("<")
            record[name] = np.frombuffer(example[name], dtype=dtype).reshape(entry["shape"]).astype(entry["dtype"])
        record[LABEL_COLUMN] = example[LABEL_COLUMN].astype(task["label_dtype"])
        yield record


# ------------------------------------------------------------------------------------------ HDF5
def _write_hdf5(records, tmp: Path, *, features, task, compression, row_group_records) -> int:
    import h5py

    rows = list(records)  # the datasets' length is needed up front
    n = len(rows)
    filters = {} if compression == "none" else {"compression": compression}  # gzip: h5py's level 4
    # track_times=False on every dataset. Groups: h5py creates them without timestamps, but
    # not with track_order=True (its creation-order property list keeps times), so that
    # stays off and datasets list alphabetically. A test writes a shard twice, a second
    # apart, and compares the bytes.
    with h5py.File(tmp, "w") as h5:
        strings = h5py.string_dtype("utf-8")
        for name in _STRING_COLUMNS:
            h5.create_dataset(name, data=np.array([row[name] for row in rows], dtype=object), dtype=strings,
                              track_times=False)
        for name in _INT_COLUMNS:
            h5.create_dataset(name, data=np.array([row[name] for row in rows], dtype="<i8"), track_times=False)
        group = h5.create_group("features")
        arrays = [(name, (n, *entry["shape"]), np.dtype(entry["dtype"]).newbyteorder("<"))
                  for name, entry in features.items()]
        arrays.append((LABEL_COLUMN, (n, *task["label_shape"]), np.dtype(task["label_dtype"]).newbyteorder("<")))
        for name, shape, dtype in arrays:
            parent = h5 if name == LABEL_COLUMN else group
            # One record per chunk (a reader fetching one record decompresses one chunk);
            # an empty dataset cannot be chunked by a zero-length chunk.
            chunks = (1, *shape[1:]) if n and shape[1:] else (True if n else None)
            options = {**filters, "chunks": chunks} if n else {}
            dataset = parent.create_dataset(name, shape=shape, dtype=dtype, track_times=False, **options)
            for i, row in enumerate(rows):
                dataset[i] = row[name]
    return n


def _read_hdf5(path: Path, manifest: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    import h5py

    features, task = manifest["features"], manifest["task"]
    with h5py.File(path, "r") as h5:
        columns = {name: h5[name].asstr()[:] for name in _STRING_COLUMNS}
        columns.update({name: h5[name][:] for name in _INT_COLUMNS})
        for i in range(len(columns["key"])):
            record = {name: str(columns[name][i]) for name in _STRING_COLUMNS}
            record.update({name: int(columns[name][i]) for name in _INT_COLUMNS})
            record.update({name: h5[f"features/{name}"][i].astype(entry["dtype"]) for name, entry in features.items()})
            record[LABEL_COLUMN] = np.asarray(h5[LABEL_COLUMN][i]).astype(task["label_dtype"])
            yield record


# ------------------------------------------------------------------------------------------ Parquet
def _parquet_schema(features, task):
    import pyarrow as pa

    def array_type(dtype: str, shape) -> pa.DataType:
        return pa.list_(pa.from_numpy_dtype(np.dtype(dtype)), int(np.prod(shape, dtype=np.int64)))

    fields = [pa.field(name, pa.string(), nullable=False) for name in _STRING_COLUMNS]
    fields += [pa.field(name, pa.int64(), nullable=False) for name in _INT_COLUMNS]
    fields += [pa.field(name, array_type(entry["dtype"], entry["shape"]), nullable=False)
               for name, entry in features.items()]
    label_type = pa.from_numpy_dtype(np.dtype(task["label_dtype"])) if not task["label_shape"] \
        else array_type(task["label_dtype"], task["label_shape"])
    fields.append(pa.field(LABEL_COLUMN, label_type, nullable=False))
    return pa.schema(fields)


def _parquet_table(rows: list[dict[str, Any]], schema):
    import pyarrow as pa

    columns = []
    for field in schema:
        name = field.name
        if pa.types.is_fixed_size_list(field.type):
            flat = np.concatenate([row[name].reshape(-1) for row in rows]) if rows else \
                np.empty(0, dtype=field.type.value_type.to_pandas_dtype())
            columns.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, type=field.type.value_type),
                                                             field.type.list_size))
        elif name == LABEL_COLUMN:
            columns.append(pa.array(np.array([row[name] for row in rows], dtype=field.type.to_pandas_dtype()),
                                    type=field.type))
        else:
            columns.append(pa.array([row[name] for row in rows], type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _write_parquet(records, tmp: Path, *, features, task, compression, row_group_records) -> int:
    import pyarrow.parquet as pq

    schema = _parquet_schema(features, task)
    n_records = 0
    codec = "NONE" if compression == "none" else compression.upper()
    with pq.ParquetWriter(str(tmp), schema, compression=codec) as writer:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) == row_group_records:
                writer.write_table(_parquet_table(batch, schema), row_group_size=row_group_records)
                n_records, batch = n_records + len(batch), []
        if batch or not n_records:  # an empty shard still gets its schema and one empty row group
            writer.write_table(_parquet_table(batch, schema), row_group_size=row_group_records)
            n_records += len(batch)
    return n_records


def _read_parquet(path: Path, manifest: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    features, task = manifest["features"], manifest["task"]
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=DEFAULT_ROW_GROUP_RECORDS, use_threads=False):
            columns = batch.to_pydict()
            for i in range(batch.num_rows):
                record = {name: columns[name][i] for name in (*_STRING_COLUMNS, *_INT_COLUMNS)}
                record.update({name: np.asarray(columns[name][i], dtype=entry["dtype"]).reshape(entry["shape"])
                               for name, entry in features.items()})
                record[LABEL_COLUMN] = np.asarray(columns[LABEL_COLUMN][i], dtype=task["label_dtype"]) \
                    .reshape(task["label_shape"])
                yield record


def read_shard(path: str | os.PathLike, *, store_format: str,
               manifest: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Read one shard back as record dicts (numpy arrays of the manifest's shapes and dtypes).

    For tests and ``mirdl inspect``; training reads shards with :mod:`mirdl_tf`.

    Parameters
    ----------
    path : path-like
        A shard file.
    store_format : {"tfrecord", "hdf5", "parquet"}
    manifest : mapping
        At least its ``features``, ``task`` and (TFRecord) ``compression`` sections.

    Yields
    ------
    dict
        ``key``, ``track_id`` (str), ``variant``, ``segment``, ``start_frame`` (int), one
        array per feature, ``label`` (array of ``task.label_shape``).
    """
    if store_format not in STORE_FORMATS:
        raise StoreError(f"store_format={store_format!r} must be one of {sorted(STORE_FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such shard file")
    reader = {"tfrecord": _read_tfrecord, "hdf5": _read_hdf5, "parquet": _read_parquet}[store_format]
    return reader(path, manifest)

