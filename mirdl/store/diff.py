"""Do two stores hold the same data? Keys per split, labels, features within a tolerance, specs.

Two stores built from the same corpus and config on machines with other SIMD features (numpy
dispatches float32 kernels differently on AVX2 and AVX-512) are not byte-identical, so their
sha256 differ; :func:`diff_stores` answers the question a colleague actually has: same records
(keys per split), same labels (exactly), same features up to ``atol + rtol * |b|`` (numpy's
``allclose`` rule), with the largest and mean absolute difference of each feature, and the
same feature specs and task.

Records are streamed, never held whole: every shard of a split is sorted by key, so merging
a split's shards by key gives the split in key order, and the two stores are walked side by
side like two sorted files (memory: one batch per shard). Two stores with other shard counts
or formats compare as well as two copies of one store.

Examples
--------
>>> import tempfile, numpy as np
>>> from mirdl.store.build import write_store
>>> features = {"x": {"shape": [2], "dtype": "float32"}}
>>> task = {"type": "single_label", "label_shape": [], "label_dtype": "int64", "n_outputs": 2,
...         "vocabulary": ["a", "b"]}
>>> rec = {"key": "t#v000#s000000", "track_id": "t", "variant": 0, "segment": 0, "start_frame": 0,
...        "x": np.array([1.0, 2.0], np.float32), "label": 1}
>>> root = Path(tempfile.mkdtemp())
>>> _ = write_store(root / "a", {"train": [rec]}, name="s", store_format="parquet", features=features,
...                 task=task, fingerprint="0" * 16)
>>> near = dict(rec, x=np.array([1.0, 2.0 + 1e-6], np.float32))
>>> _ = write_store(root / "b", {"train": [near]}, name="s", store_format="hdf5", features=features,
...                 task=task, fingerprint="0" * 16)
>>> result = diff_stores(root / "a", root / "b")
>>> result.same, result.features["x"].max_abs > 0
(True, True)
"""
from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirdl.errors import StoreError
from mirdl.features.checks import non_negative_float
from mirdl.store.adapters import adapter_for
from mirdl.store.format import LABEL_COLUMN
from mirdl.store.catalog import resolve_store
from mirdl.store.manifest import read_manifest, shard_paths
from mirdl.store.remote import fetched

__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "FeatureDiff", "SplitDiff", "StoreDiff", "diff_stores"]

#: Default tolerance: ``|a - b| <= atol + rtol * |b|`` per value. Last-bit differences of float32
#: (relative 6e-8) pass by a wide margin; a changed parameter does not.
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5
#: Keys shown per split when stores hold different records.
_SHOWN = 3


@dataclass
class FeatureDiff:
    """How far one feature's values are apart over the records both stores hold."""

    values: int = 0
    max_abs: float = 0.0
    sum_abs: float = 0.0
    records_outside: int = 0  # records with at least one value outside the tolerance
    first_outside: str | None = None

    @property
    def mean_abs(self) -> float:
        return self.sum_abs / self.values if self.values else 0.0

    def add(self, key: str, a: np.ndarray, b: np.ndarray, *, atol: float, rtol: float) -> None:
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        both_nan = np.isnan(a64) & np.isnan(b64)
        delta = np.where(both_nan, 0.0, np.abs(a64 - b64))
        delta = np.where(np.isnan(delta), np.inf, delta)  # NaN on one side only: as far apart as it gets
        self.values += delta.size
        self.sum_abs += float(delta.sum())
        self.max_abs = max(self.max_abs, float(delta.max(initial=0.0)))
        if np.any(delta > atol + rtol * np.abs(np.nan_to_num(b64))):
            self.records_outside += 1
            self.first_outside = self.first_outside or key


@dataclass
class SplitDiff:
    """One split: records in both, only in A, only in B, and label mismatches."""

    common: int = 0
    only_a: int = 0
    only_b: int = 0
    only_a_keys: list[str] = field(default_factory=list)
    only_b_keys: list[str] = field(default_factory=list)
    label_mismatches: int = 0
    first_label_mismatch: str | None = None

    @property
    def same(self) -> bool:
        return not (self.only_a or self.only_b or self.label_mismatches)


@dataclass
class StoreDiff:
    """The answer of :func:`diff_stores`; :attr:`same` says whether the stores hold the same data."""

    store_a: str
    store_b: str
    atol: float
    rtol: float
    spec_differences: list[str] = field(default_factory=list)
    splits: dict[str, SplitDiff] = field(default_factory=dict)
    features: dict[str, FeatureDiff] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        return (not self.spec_differences and all(split.same for split in self.splits.values())
                and all(feature.records_outside == 0 for feature in self.features.values()))

    def lines(self) -> list[str]:
        """A report: one line per difference found, then one per split and per feature."""
        lines = [f"spec: {text}" for text in self.spec_differences]
        for name, split in self.splits.items():
            line = f"split {name}: {split.common} records in both"
            if split.only_a:
                line += f", {split.only_a} only in A (e.g. {', '.join(split.only_a_keys)})"
            if split.only_b:
                line += f", {split.only_b} only in B (e.g. {', '.join(split.only_b_keys)})"
            if split.label_mismatches:
                line += f", {split.label_mismatches} with other labels (first {split.first_label_mismatch})"
            lines.append(line + ("" if split.same else "  DIFFERENT"))
        for name, feature in self.features.items():
            line = (f"feature {name}: max |a-b| {feature.max_abs:.3g}, mean |a-b| {feature.mean_abs:.3g} over "
                    f"{feature.values} values")
            if feature.records_outside:
                line += (f"; {feature.records_outside} records outside atol={self.atol:g} rtol={self.rtol:g} "
                         f"(first {feature.first_outside})  DIFFERENT")
            lines.append(line)
        verdict = "same data" if self.same else "DIFFERENT data"
        lines.append(f"{self.store_a} vs {self.store_b}: {verdict} (features within atol={self.atol:g}, "
                     f"rtol={self.rtol:g})")
        return lines


def _spec_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    found = []
    if list(a["features"]) != list(b["features"]):
        found.append(f"features {list(a['features'])} vs {list(b['features'])}")
    for name in a["features"]:
        if name not in b["features"]:
            continue
        fa, fb = a["features"][name], b["features"][name]
        for key in ("shape", "dtype", "fingerprint", "spec"):
            if fa.get(key) != fb.get(key):
                shown = (fa.get(key), fb.get(key)) if key != "spec" else ("...", "...")
                found.append(f"features.{name}.{key} differs ({shown[0]} vs {shown[1]})")
    for key in ("type", "vocabulary", "label_shape", "label_dtype", "n_outputs"):
        if a["task"].get(key) != b["task"].get(key):
            found.append(f"task.{key} differs ({a['task'].get(key)} vs {b['task'].get(key)})")
    if sorted(a["splits"]) != sorted(b["splits"]):
        found.append(f"splits {sorted(a['splits'])} vs {sorted(b['splits'])}")
    return found


def _records(store: Path, manifest: Mapping[str, Any], split: str, features: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The records of a split in key order: its shards (each sorted by key) merged."""
    adapter = adapter_for(manifest["format"], param="format")

    def shard(path) -> Iterator[dict[str, Any]]:
        with fetched(path) as local:  # a shard on object storage: one temporary local copy at a time
            for batch in adapter.read_batches(local, manifest=manifest, features=features):
                for i, key in enumerate(batch["key"]):
                    yield {"key": key, LABEL_COLUMN: batch[LABEL_COLUMN][i],
                           **{name: batch[name][i] for name in features}}

    previous = None
    for record in heapq.merge(*(shard(path) for path in shard_paths(store, manifest, split)), key=lambda r: r["key"]):
        if previous is not None and not record["key"] > previous:
            raise StoreError(f"{store}: split {split!r} holds key {record['key']!r} twice or out of order")
        previous = record["key"]
        yield record


def diff_stores(store_a: str | os.PathLike, store_b: str | os.PathLike, *, atol: float = DEFAULT_ATOL,
                rtol: float = DEFAULT_RTOL, splits: Sequence[str] | None = None) -> StoreDiff:
    """Compare two stores record by record.

    Parameters
    ----------
    store_a, store_b : path-like or str
        Store directories (any formats, shard counts and compressions), ``s3://`` URLs or
        ``catalog://`` references.
    atol, rtol : float >= 0
        A feature value agrees when ``|a - b| <= atol + rtol * |b|``; NaN agrees with NaN.
    splits : sequence of str, optional
        Splits to compare (default: every split either store has).

    Returns
    -------
    StoreDiff
        ``same`` is True when the specs and task agree, every split holds the same keys with
        equal labels, and every feature value is within the tolerance.

    Raises
    ------
    StoreError
        Either store cannot be read (missing, damaged, corrupt shard).
    mirdl.features.checks.CheckError
        ``atol`` or ``rtol`` not a finite number >= 0.
    """
    atol, rtol = non_negative_float(atol, name="atol"), non_negative_float(rtol, name="rtol")
    store_a, store_b = resolve_store(store_a, param="store_a"), resolve_store(store_b, param="store_b")
    a, b = read_manifest(store_a), read_manifest(store_b)
    result = StoreDiff(store_a=str(store_a), store_b=str(store_b), atol=float(atol), rtol=float(rtol),
                       spec_differences=_spec_differences(a, b))
    shared = [name for name in a["features"] if name in b["features"]
              and a["features"][name]["shape"] == b["features"][name]["shape"]]
    result.features = {name: FeatureDiff() for name in shared}
    labels_comparable = a["task"]["label_shape"] == b["task"]["label_shape"]
    names = sorted(set(a["splits"]) | set(b["splits"])) if splits is None else list(splits)
    for split in names:
        result.splits[split] = split_diff = SplitDiff()
        rec_a = _records(store_a, a, split, shared) if split in a["splits"] else iter(())
        rec_b = _records(store_b, b, split, shared) if split in b["splits"] else iter(())
        _walk(rec_a, rec_b, split_diff, result.features, labels_comparable=labels_comparable, atol=atol, rtol=rtol)
    return result


def _walk(rec_a: Iterator[dict[str, Any]], rec_b: Iterator[dict[str, Any]], split: SplitDiff,
          features: dict[str, FeatureDiff], *, labels_comparable: bool, atol: float, rtol: float) -> None:
    """Merge-join two key-sorted record streams into ``split`` and ``features``."""
    x, y = next(rec_a, None), next(rec_b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x["key"] < y["key"]):
            split.only_a += 1
            if len(split.only_a_keys) < _SHOWN:
                split.only_a_keys.append(x["key"])
            x = next(rec_a, None)
        elif x is None or y["key"] < x["key"]:
            split.only_b += 1
            if len(split.only_b_keys) < _SHOWN:
                split.only_b_keys.append(y["key"])
            y = next(rec_b, None)
        else:
            key = x["key"]
            split.common += 1
            if not labels_comparable or not np.array_equal(x[LABEL_COLUMN], y[LABEL_COLUMN], equal_nan=True):
                split.label_mismatches += 1
                split.first_label_mismatch = split.first_label_mismatch or key
            for name, feature in features.items():
                feature.add(key, np.asarray(x[name]), np.asarray(y[name]), atol=atol, rtol=rtol)
            x, y = next(rec_a, None), next(rec_b, None)
