"""Transfer features (Choi et al. 2017, "Transfer learning for music classification and
regression tasks") written as a new store, and a linear probe that scores them.

:func:`extract` runs a convnet over every track of a clip-task store and keeps, per track,
the concatenation of the global averages of several block outputs
(:func:`mirdl_tf.models.feature_extractor`): from a trained model (``mirdl train`` run
directory), or from the same architecture with random weights (seeded), the baseline of
Choi et al. The vector of a track is the mean over all patches of its clean segments
(variant 0), cut as :func:`mirdl_tf.evaluate.window_offsets` says: **one record per track**.

The new store has the layout of ``docs/store-format.md`` (written with
:func:`mirdl.store.build.write_store`: one shard per split, ``manifest.json`` last, the whole
directory renamed into place). Its one feature is ``transfer``, a float32 vector::

    features.transfer = {shape: [D], dtype: float32, axes: ["feature"], fingerprint,
                         spec: {representation: transfer, source_model: {...}, layers: [...],
                                source_store_fingerprint, source_feature: {name, fingerprint},
                                patch_frames, aggregation},
                         stats: {split: train, mean: [D], std: [D]}}

``task`` is copied from the source store (labels are the tracks' clip labels); each record
is ``TRACK#v000#s000000`` with ``variant = segment = start_frame = 0``. The stats are per
dimension (the vector has no time axis).

:func:`probe` fits a linear model on one split of such a store (``StandardScaler`` then
``LogisticRegression`` per class or tag, ``Ridge`` for regression) and scores another with
:func:`mirdl_tf.evaluate.clip_metrics`, the numbers ``mirdl evaluate`` reports.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mirdl.errors import ConfigError, StoreError
from mirdl.features import checks
from mirdl.features.spec import stable_hash
from mirdl.store.build import write_store
from mirdl.store.files import sha256_file
from mirdl.store.format import CLIP_TASKS, FORMAT_VERSION, STORE_FORMATS, record_key
from mirdl.store.manifest import check_destination, read_manifest, shard_paths

__all__ = ["TRANSFER_FEATURE", "CLIP_TASKS", "extract", "read_split", "probe"]

#: Name of the feature an extracted store holds.
TRANSFER_FEATURE = "transfer"
#: Tasks whose labels are per track, so a per-track vector can carry them.
_AGGREGATION = ("mean over the patches of a track's clean segments (variant 0) of the concatenated global "
                "averages of the layers; one record per track")


def _source_model(*, model_dir, random_model, model_args, seed, checkpoint, store, manifest, patch_frames, feature):
    """``(model, feature name, patch_frames, normalization, source_model description)``."""
    from mirdl_tf import data
    from mirdl_tf.evaluate import check_compatible, load_trained
    from mirdl_tf.train import RUN_FILES, ModelConfig, build_for_store

    if (model_dir is None) == (random_model is None):
        raise ConfigError("give exactly one of a trained model directory (--model) or --random-weights")
    if model_dir is not None:
        if model_args:
            raise ConfigError("--model-args is for --random-weights; a trained model has its own")
        model, info = load_trained(model_dir, checkpoint=checkpoint)
        if feature is not None and feature != info["feature"]["name"]:
            raise ConfigError(f"--feature {feature}: the model was trained on {info['feature']['name']!r}")
        check_compatible(info, manifest, store=store, same_task=False)
        if patch_frames is not None and patch_frames != info["patch_frames"]:
            raise ConfigError(f"--patch-frames {patch_frames}: the model takes {info['patch_frames']} frames")
        description = {"kind": "trained", "model_dir": str(Path(model_dir).resolve()), "name": info["model"]["name"],
                       "args": info["model"]["args"], "checkpoint": checkpoint,
                       "config_fingerprint": info.get("config_fingerprint"),
                       "trained_on": info.get("store", {}).get("fingerprint"),
                       "weights_sha256": sha256_file(Path(model_dir) / RUN_FILES[checkpoint])}
        return model, info["feature"]["name"], int(info["patch_frames"]), info.get("normalization"), description
    import keras

    seed = checks.integer(seed, name="seed", minimum=0)
    try:
        described = data.describe(store, feature=feature, patch_frames=patch_frames)
    except ValueError as err:
        raise ConfigError(f"--patch-frames: {err}") from err
    config = ModelConfig(name=random_model, args=dict(model_args or {}))
    keras.utils.set_random_seed(seed)
    model = build_for_store(config, described, args_name="model_args")
    description = {"kind": "random", "name": random_model, "args": dict(config.args), "seed": seed}
    return model, described["feature"], int(described["input_shape"][-1]), None, description


def extract(store: str | os.PathLike, out: str | os.PathLike, *, model_dir: str | os.PathLike | None = None,
            random_model: str | None = None, model_args: Mapping[str, Any] | None = None, seed: int = 0,
            layers: Sequence[str] | None = None, store_format: str = "parquet", splits: Sequence[str] | None = None,
            feature: str | None = None,
            patch_frames: int | None = None, checkpoint: str = "best", batch_size: int = 32,
            overwrite: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the transfer features of every track of ``store`` as a new store at ``out``.

    Parameters
    ----------
    store : path-like
        A clip-task store (single_label, multi_label or regression). For a trained model, its
        feature must be the one the model was trained on (same spec fingerprint); its task
        may differ (that is transfer learning).
    out : path-like
        The new store's directory (must not hold a store unless ``overwrite``).
    model_dir : path-like, optional
        A ``mirdl train`` run directory; its ``checkpoint`` and training normalisation are used.
    random_model : str, optional
        Instead of ``model_dir``: a :data:`mirdl_tf.models.MODELS` name built for ``store``
        with ``model_args`` and random weights drawn from ``seed``; the store's own
        normalisation statistics are applied.
    layers : sequence of str, optional
        Block outputs to pool; default :func:`mirdl_tf.models.feature_layers` (all blocks).
    store_format : {"parquet", "tfrecord", "hdf5"}
    splits : sequence of str, optional
        Default every split of ``store``.
    feature : str, optional
        Random-weight models: the store feature to read (default its first); a trained model
        reads the one it was trained on.
    patch_frames : int, optional
        Random-weight models only: input length (default the stored segment length).
    batch_size : int
        Records per batch.

    Returns
    -------
    dict
        The new store's manifest.
    """
    from mirdl_tf.evaluate import track_outputs
    from mirdl_tf.models import feature_extractor, feature_layers

    out = Path(out)
    store_format = checks.choice(store_format, name="store_format", options=STORE_FORMATS)
    manifest = read_manifest(store)
    task = manifest["task"]
    if task["type"] not in CLIP_TASKS:
        raise ConfigError(f"{store}: task {task['type']!r} has frame labels; extract writes one vector per track, "
                          f"for clip tasks ({', '.join(CLIP_TASKS)})")
    splits = list(manifest["splits"]) if splits is None else list(splits)
    for split in splits:
        if split not in manifest["splits"]:
            raise StoreError(f"split {split!r} is not in {store} (splits: {', '.join(sorted(manifest['splits']))})")
    check_destination(out, param="out", overwrite=overwrite)
    model, feature, patch, normalization, source_model = _source_model(
        model_dir=model_dir, random_model=random_model, model_args=model_args, seed=seed, checkpoint=checkpoint,
        store=store, manifest=manifest, patch_frames=patch_frames, feature=feature)
    available = feature_layers(model)
    layers = available if layers is None else list(layers)
    unknown = [name for name in layers if name not in available]
    if not layers or unknown:
        raise ConfigError(f"--layers {unknown or layers}: not feature layers of {model.name!r} "
                          f"(choices: {', '.join(available)})")
    extractor = feature_extractor(model, layers)
    dimensions = int(extractor.output_shape[-1])
    log(f"extract {source_model['kind']} {source_model['name']} features ({len(layers)} layers, {dimensions} "
        f"dimensions) from {store} -> {out}")

    per_split = {}
    for split in splits:
        outputs = track_outputs(lambda x: extractor.predict_on_batch(x), store, split, feature=feature,
                                patch_frames=patch, task=task["type"], frame_level=False,
                                normalization=normalization, batch_size=batch_size)
        per_split[split] = outputs
        log(f"  {split}: {len(outputs.track_ids)} tracks from {outputs.patches} patches")

    source_feature = manifest["features"][feature]
    stats_split = "train" if "train" in per_split and per_split["train"].track_ids else next(
        (s for s in splits if per_split[s].track_ids), None)
    stats = None
    if stats_split is not None:
        vectors = np.stack(per_split[stats_split].outputs).astype(np.float64)
        stats = {"split": stats_split, "mean": vectors.mean(axis=0).tolist(), "std": vectors.std(axis=0).tolist(),
                 "count": len(vectors), "sum": vectors.sum(axis=0).tolist(),
                 "sum_sq": np.square(vectors).sum(axis=0).tolist()}
    spec = {"representation": "transfer", "source_model": source_model, "layers": layers,
            "source_store_fingerprint": manifest.get("fingerprint"),
            "source_feature": {"name": feature, "fingerprint": source_feature.get("fingerprint")},
            "patch_frames": patch, "aggregation": _AGGREGATION}
    entry = {"shape": [dimensions], "dtype": "float32", "axes": ["feature"], "spec": spec,
             "fingerprint": stable_hash(spec)}
    name = f"{manifest.get('name') or 'store'}_transfer"
    records = {split: [{"key": record_key(track_id=track, variant=0, segment=0), "track_id": track, "variant": 0,
                        "segment": 0, "start_frame": 0, TRANSFER_FEATURE: vector.astype(np.float32), "label": label}
                       for track, vector, label in zip(outputs.track_ids, outputs.outputs, outputs.labels)]
               for split, outputs in per_split.items()}
    return write_store(
        out, records, name=name, store_format=store_format, features={TRANSFER_FEATURE: {**entry, "stats": stats}},
        task=task, overwrite=overwrite, param="out", log=log,
        fingerprint=stable_hash({"format_version": FORMAT_VERSION, "feature": entry["fingerprint"],
                                 "format": store_format, "splits": splits, "task": task}),
        dataset={"description": f"{dimensions}-dimensional {source_model['kind']} {source_model['name']} features "
                                f"(layers {', '.join(layers)}), one vector per track, extracted by `mirdl extract` "
                                f"from store {manifest.get('name')} (fingerprint {manifest.get('fingerprint')})."},
        augment={"n_variants": 1}, segment={"mode": "track", "aggregation": _AGGREGATION},
        source={"store": str(Path(store).resolve()), "name": manifest.get("name"),
                "fingerprint": manifest.get("fingerprint")})


# --------------------------------------------------------------------------------------------
# Probe


def read_split(store: str | os.PathLike, split: str, *, feature: str = TRANSFER_FEATURE,
               manifest: Mapping[str, Any] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(track_ids, X (n, D), labels)`` of one split of a vector store (no TensorFlow involved)."""
    from mirdl.store.adapters import read_shard

    manifest = read_manifest(store) if manifest is None else manifest
    if feature not in manifest["features"]:
        raise StoreError(f"{store}: has no feature {feature!r} (features: {', '.join(manifest['features'])}); "
                         "write one with mirdl extract")
    if len(manifest["features"][feature]["shape"]) != 1:
        raise StoreError(f"{store}: feature {feature!r} has shape {manifest['features'][feature]['shape']}; "
                         "the probe needs one vector per record")
    track_ids, vectors, labels = [], [], []
    for path in shard_paths(store, manifest, split):  # StoreError for an unknown split
        for record in read_shard(path, manifest=manifest):
            track_ids.append(record["track_id"])
            vectors.append(record[feature])
            labels.append(record["label"])
    if not vectors:
        raise StoreError(f"{store}: split {split!r} has no records")
    return track_ids, np.stack(vectors).astype(np.float64), np.stack(labels)


def _proba_columns(classifier, X: np.ndarray, n_outputs: int) -> np.ndarray:
    """``predict_proba`` with one column per class index, zero for classes the training split lacked."""
    scores = np.zeros((len(X), n_outputs))
    scores[:, classifier.classes_.astype(np.int64)] = classifier.predict_proba(X)
    return scores


def probe(store: str | os.PathLike, *, split_train: str = "train", split_test: str = "test",
          feature: str = TRANSFER_FEATURE, c: float = 1.0, alpha: float = 1.0) -> dict[str, Any]:
    """Fit a standardised linear model on ``split_train`` of a vector store, score ``split_test``.

    ``single_label``: multinomial ``LogisticRegression(C=c)``; ``multi_label``: one
    ``LogisticRegression(C=c)`` per tag (a tag constant in the training split predicts its
    training rate); ``regression``: ``Ridge(alpha=alpha)``; all after ``StandardScaler``.

    Returns
    -------
    dict
        ``task``, ``split_train``, ``split_test``, ``n_train``, ``n_test``, ``dimensions``,
        ``model`` and ``metrics`` (:func:`mirdl_tf.evaluate.clip_metrics`).
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mirdl_tf.metrics import clip_metrics

    manifest = read_manifest(store)
    task = manifest["task"]
    if task["type"] not in CLIP_TASKS:
        raise ConfigError(f"{store}: task {task['type']!r}; the probe is for clip tasks ({', '.join(CLIP_TASKS)})")
    _, x_train, y_train = read_split(store, split_train, feature=feature, manifest=manifest)
    _, x_test, y_test = read_split(store, split_test, feature=feature, manifest=manifest)
    n_outputs = int(task.get("n_outputs") or (1 if y_train.ndim == 1 else y_train.shape[1]))
    counts = None
    if task["type"] == "single_label":
        y_train = y_train.astype(np.int64).reshape(-1)
        if len(np.unique(y_train)) < 2:
            raise StoreError(f"{store}: split {split_train!r} has a single class; nothing to fit")
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        model.fit(x_train, y_train)
        scores = _proba_columns(model, x_test, n_outputs)
        counts = np.bincount(y_train, minlength=n_outputs).tolist()
        description = f"StandardScaler + LogisticRegression(C={c})"
    elif task["type"] == "multi_label":
        targets = y_train >= 0.5
        scores = np.zeros((len(x_test), n_outputs))
        scaler = StandardScaler().fit(x_train)
        for j in range(n_outputs):
            if targets[:, j].all() or not targets[:, j].any():
                scores[:, j] = targets[:, j].mean()
                continue
            classifier = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x_train), targets[:, j])
            scores[:, j] = classifier.predict_proba(scaler.transform(x_test))[:, 1]
        description = f"StandardScaler + LogisticRegression(C={c}) per tag"
    else:
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        model.fit(x_train, y_train.reshape(len(y_train), -1))
        scores = model.predict(x_test).reshape(len(x_test), -1)
        description = f"StandardScaler + Ridge(alpha={alpha})"
    metrics = clip_metrics(task["type"], y_test, scores, vocabulary=task.get("vocabulary"),
                           train_label_counts=counts)
    return {"task": task["type"], "store": str(Path(store).resolve()), "split_train": split_train,
            "split_test": split_test, "n_train": len(x_train), "n_test": len(x_test),
            "dimensions": int(x_train.shape[1]), "model": description, "metrics": metrics}
