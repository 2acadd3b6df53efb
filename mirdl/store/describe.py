"""What a store is, for people and for other tools: the dataset card and the descriptions
TensorFlow Datasets and Croissant read.

:func:`write_descriptions` writes, into a (temporary) store directory, before its manifest:

- ``README.md``, the dataset card (:func:`dataset_card`): name, description, license and
  source of the audio (when the writer gives them), each feature spec, splits and counts with
  per-class counts, the command and package versions that built it, the errors summary, the
  plots, and how to open the store with each tool;
- ``croissant.json`` (:func:`croissant`, MLCommons Croissant 1.1): one FileSet and one
  RecordSet per split; ``mlcroissant`` validates it for every store and reads the records of
  Parquet stores (it reads no TFRecord or HDF5);
- for an uncompressed TFRecord store, ``dataset_info.json``, ``features.json`` and
  ``label.labels.txt`` (:func:`tfds_files`), so that
  ``tfds.builder_from_directory(STORE).as_dataset(split="train")`` reads it. TFDS opens shards
  without a compression type, so a GZIP store gets none of them and its card says so.

Only the manifest is read (standard library only), so the writer of any store calls it.

Examples
--------
>>> manifest = {"name": "demo", "format": "tfrecord", "compression": "gzip", "format_version": 2,
...             "features": {}, "task": {"type": "regression"}, "splits": {}}
>>> tfds_files(manifest) is None
True
>>> print(tfds_unreadable_reason(manifest))
its TFRecord shards are GZIP-compressed and TensorFlow Datasets opens shards without a compression type; rebuild with `store.compression: none` to open it with TFDS
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mirdl.store.files import write_json_atomic, write_text_atomic
from mirdl.store.format import ERRORS_NAME, EXTENSIONS, INT_COLUMNS, LABEL_COLUMN, MANIFEST_NAME, STRING_COLUMNS

__all__ = [
    "CARD_NAME",
    "CROISSANT_NAME",
    "TFDS_INFO_NAME",
    "TFDS_FEATURES_NAME",
    "PLOTS_DIR",
    "dataset_card",
    "croissant",
    "tfds_files",
    "tfds_unreadable_reason",
    "write_descriptions",
    "write_card_with_plots",
]

CARD_NAME = "README.md"
CROISSANT_NAME = "croissant.json"
TFDS_INFO_NAME = "dataset_info.json"
TFDS_FEATURES_NAME = "features.json"
#: Folder of the card's plots inside the store.
PLOTS_DIR = "plots"
_TFDS = "tensorflow_datasets.core.features."


def _glob(manifest: Mapping[str, Any], split: str) -> str:
    """A glob matching exactly the shards of ``split`` (no file name holds a split word otherwise)."""
    name, ext = manifest["name"], EXTENSIONS[manifest["format"]]
    if manifest["format"] == "tfrecord" or manifest.get("format_version", 2) < 2:
        return f"{name}-{split}.{ext}-*"
    return f"{name}-{split}-*.{ext}"


def tfds_unreadable_reason(manifest: Mapping[str, Any]) -> str | None:
    """Why TensorFlow Datasets cannot read this store, or None if it can."""
    if manifest["format"] != "tfrecord":
        return f"TensorFlow Datasets reads TFRecord stores; this one is {manifest['format']}"
    if (manifest.get("compression") or "none") != "none":
        return ("its TFRecord shards are GZIP-compressed and TensorFlow Datasets opens shards without a compression "
                "type; rebuild with `store.compression: none` to open it with TFDS")
    return None


# ------------------------------------------------------------------------------------------ TFDS
def _tfds_tensor(shape: Sequence[int], dtype: str, *, encoding: str) -> dict[str, Any]:
    kind = "scalar.Scalar" if not shape else "tensor_feature.Tensor"
    return {"pythonClassName": _TFDS + kind,
            "tensor": {"dtype": dtype, "encoding": encoding,
                       "shape": {"dimensions": [str(int(n)) for n in shape]} if shape else {}}}


def tfds_files(manifest: Mapping[str, Any]) -> dict[str, str] | None:
    """File name -> text of the TFDS description of an uncompressed TFRecord store (None otherwise).

    The features mirror the records' ``tf.train.Example`` exactly: strings as ``Text``, integer
    columns as ``Scalar``, each feature as a ``Tensor`` with ``bytes`` encoding (its raw
    little-endian bytes, as stored), the label as ``ClassLabel`` (single-label) or a
    ``Tensor``.
    """
    if tfds_unreadable_reason(manifest) is not None:
        return None
    task = manifest["task"]
    features: dict[str, Any] = {name: {"pythonClassName": _TFDS + "text_feature.Text", "text": {}}
                                for name in STRING_COLUMNS}
    features.update({name: _tfds_tensor((), "int64", encoding="none") for name in INT_COLUMNS})
    features.update({name: _tfds_tensor(entry["shape"], entry["dtype"], encoding="bytes")
                     for name, entry in manifest["features"].items()})
    files: dict[str, str] = {}
    if task["type"] == "single_label" and task.get("vocabulary"):
        features[LABEL_COLUMN] = {"pythonClassName": _TFDS + "class_label_feature.ClassLabel",
                                  "classLabel": {"numClasses": str(task["n_outputs"])}}
        files[f"{LABEL_COLUMN}.labels.txt"] = "".join(f"{name}\n" for name in task["vocabulary"])
    else:
        features[LABEL_COLUMN] = _tfds_tensor(task["label_shape"], task["label_dtype"], encoding="none")
    splits = [{"name": split, "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
               "numBytes": str(entry.get("bytes", 0)),
               "shardLengths": [str(shard["records"]) for shard in entry["shards"]]}
              for split, entry in manifest["splits"].items() if entry["shards"]]
    info = {"name": manifest["name"], "version": f"{int(manifest.get('version', 1))}.0.0", "moduleName": "mirdl",
            "fileFormat": "tfrecord", "description": f"mirdl store {manifest['name']} (see README.md, manifest.json)",
            "splits": splits}
    files[TFDS_INFO_NAME] = json.dumps(info, indent=2, sort_keys=True) + "\n"
    files[TFDS_FEATURES_NAME] = json.dumps(
        {"pythonClassName": _TFDS + "features_dict.FeaturesDict", "featuresDict": {"features": features}},
        indent=2, sort_keys=True) + "\n"
    return files


# ------------------------------------------------------------------------------------------ Croissant
_CROISSANT_TYPES = {"string": "sc:Text", "int64": "sc:Integer", "float32": "sc:Float", "float16": "sc:Float"}
_ENCODING = {"parquet": "application/x-parquet", "tfrecord": "application/x-tfrecord", "hdf5": "application/x-hdf5"}


def _croissant_context() -> dict[str, Any]:
    # The standard Croissant 1.1 @context (as mlcroissant writes it).
    terms = ("arrayShape", "citeAs", "column", "containedIn", "equivalentProperty", "extract", "field",
             "fileObject", "fileProperty", "fileSet", "format", "includes", "isArray", "isLiveDataset", "jsonPath",
             "key", "md5", "parentField", "path", "recordSet", "references", "regex", "repeated", "replace",
             "samplingRate", "separator", "source", "subField", "transform")
    context: dict[str, Any] = {term: f"cr:{term}" for term in terms}
    context.update({
        "@language": "en", "@vocab": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
        "rai": "http://mlcommons.org/croissant/RAI/", "dct": "http://purl.org/dc/terms/",
        "sc": "https://schema.org/", "conformsTo": "dct:conformsTo",
        "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
        "examples": {"@id": "cr:examples", "@type": "@json"},
    })
    return context


def croissant(manifest: Mapping[str, Any], *, dataset: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Croissant 1.1 description of a store: one FileSet and one RecordSet per split.

    Fields: the record columns, each feature as an array of its stored shape (``isArray``,
    ``arrayShape``), the label (class index, or an array).
    """
    dataset = dict(dataset or {})
    name = manifest["name"]
    encoding = _ENCODING[manifest["format"]]
    task = manifest["task"]
    distribution, record_sets = [], []
    for split, entry in manifest["splits"].items():
        if not entry["shards"]:
            continue
        files_id = f"{split}-shards"
        distribution.append({"@type": "cr:FileSet", "@id": files_id, "name": files_id,
                             "description": f"the {split} shards ({entry['records']} records)",
                             "encodingFormat": encoding, "includes": _glob(manifest, split)})

        def field(column: str, dtype: str, shape: Sequence[int] = (), description: str | None = None) -> dict:
            item: dict[str, Any] = {"@type": "cr:Field", "@id": f"{split}/{column}", "name": column,
                                    "dataType": _CROISSANT_TYPES[dtype],
                                    "source": {"fileSet": {"@id": files_id}, "extract": {"column": column}}}
            if shape:
                item.update({"isArray": True, "arrayShape": ",".join(str(int(n)) for n in shape)})
            if description:
                item["description"] = description
            return item

        fields = [field(column, "string") for column in STRING_COLUMNS]
        fields += [field(column, "int64") for column in INT_COLUMNS]
        fields += [field(feature, spec["dtype"], spec["shape"],
                         f"{feature}: shape {list(spec['shape'])} ({', '.join(spec.get('axes') or [])})")
                   for feature, spec in manifest["features"].items()]
        vocabulary = task.get("vocabulary") or []
        label_text = (f"class index into {vocabulary}" if task["type"] == "single_label"
                      else f"{task['type']} label, shape {task['label_shape']}")
        fields.append(field(LABEL_COLUMN, task["label_dtype"], task["label_shape"], label_text[:500]))
        record_sets.append({"@type": "cr:RecordSet", "@id": split, "name": split,
                            "description": f"records of the {split} split", "key": {"@id": f"{split}/key"},
                            "field": fields})
    return {
        "@context": _croissant_context(),
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "name": name,
        "description": dataset.get("description") or f"mirdl feature store {name} (fingerprint "
                                                      f"{manifest.get('fingerprint')}); see README.md",
        "license": dataset.get("license") or "unknown (not given when the store was prepared)",
        "url": dataset.get("url") or dataset.get("source") or f"file:./{MANIFEST_NAME}",
        "citeAs": dataset.get("citation") or f"@misc{{{name}, title={{{name}: a mirdl feature store}}, "
                                             f"note={{fingerprint {manifest.get('fingerprint')}}}}}",
        "version": f"{int(manifest.get('version', 1))}.0.0",
        "datePublished": manifest.get("created"),
        "distribution": distribution,
        "recordSet": record_sets,
    }


# ------------------------------------------------------------------------------------------ card
def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def dataset_card(manifest: Mapping[str, Any], *, dataset: Mapping[str, Any] | None = None,
                 plots: Sequence[str] = ()) -> str:
    """The dataset card (Markdown) of a store: what a colleague reads before using it.

    Parameters
    ----------
    manifest : mapping
        The store's manifest.
    dataset : mapping, optional
        ``description``, ``license``, ``source`` (of the audio), ``url``: shown when given.
    plots : sequence of str or CardPlot
        Plot files, relative to the store (``plots/labels.png``, ...), or
        :class:`mirdl.store.card_plots.CardPlot` (file and caption: the caption follows the image).
    """
    dataset = dict(dataset or {})
    m = manifest
    name, task = m["name"], m["task"]
    lines = [f"# {name}", ""]
    lines.append(dataset.get("description") or f"A mirdl feature store ({m['format']}), prepared by `mirdl`.")
    lines.append("")
    lines += [f"- **License of the audio**: {dataset.get('license') or 'not given when the store was prepared'}",
              f"- **Source of the audio**: {dataset.get('source') or 'not given when the store was prepared'}",
              f"- **Fingerprint**: `{m.get('fingerprint')}` (same config and corpus listing, same fingerprint)",
              f"- **Format**: {m['format']}, compression {m.get('compression') or 'none'}, store format_version "
              f"{m.get('format_version')}, dataset version {m.get('version', 1)}",
              f"- **Created**: {m.get('created')} by mirdl {m.get('mirdl_version')}", ""]

    lines += ["## Features", ""]
    rows = []
    for feature, entry in m["features"].items():
        spec = entry.get("spec") or {}
        params = ", ".join(f"{key}={value}" for key, value in sorted((spec.get("params") or {}).items()))
        rows.append([f"`{feature}`", spec.get("representation", "-"), spec.get("sample_rate", "-"),
                     entry["shape"], ", ".join(entry.get("axes") or []), entry["dtype"],
                     f"`{entry.get('fingerprint', '-')}`", params or "-"])
    lines += _table(["name", "representation", "sample rate", "shape", "axes", "dtype", "fingerprint", "parameters"],
                    rows) + [""]
    segment = m.get("segment") or {}
    if segment:
        seconds = segment.get("patch_seconds", segment.get("window_seconds"))
        lines += [f"Segments: {segment.get('mode')} mode, {seconds} s every {segment.get('hop_seconds')} s, "
                  f"padding {segment.get('pad')}.", ""]
    augment = m.get("augment") or {}
    if augment:
        lines += [f"Augmentation: {augment.get('n_variants', 1)} variant(s) per track (variant 0 is the clean "
                  f"audio), seed {augment.get('seed')}.", ""]

    vocabulary = task.get("vocabulary") or []
    lines += ["## Task and splits", "",
              f"Task `{task['type']}`: {task.get('n_outputs')} outputs, label shape {task.get('label_shape')} "
              f"({task.get('label_dtype')}).", ""]
    splits = m["splits"]
    lines += _table(["split", "tracks", "records", "shards", "MB"],
                    [[split, entry.get("tracks", "-"), entry["records"], len(entry["shards"]),
                      f"{entry.get('bytes', 0) / 1e6:.2f}"] for split, entry in splits.items()]) + [""]
    if vocabulary and any(entry.get("label_counts") for entry in splits.values()):
        unit = "records" if task["type"] in ("single_label", "multi_label") else "positive frames"
        lines += [f"Per class ({unit}):", ""]
        rows = [[f"`{word}`", *[(entry.get("label_counts") or ["-"] * len(vocabulary))[i]
                                for entry in splits.values()]] for i, word in enumerate(vocabulary)]
        lines += _table(["class", *splits], rows) + [""]

    corpus = m.get("corpus") or {}
    errors = m.get("errors") or {}
    lines += ["## Errors", ""]
    if corpus:
        lines.append(f"{corpus.get('files')} input files listed, {corpus.get('tracks')} tracks in the store, "
                     f"{corpus.get('failed')} failed; {float(corpus.get('audio_seconds') or 0) / 3600:.3f} h of audio.")
    if errors:
        by_stage = ", ".join(f"{stage}: {n}" for stage, n in (errors.get("by_stage") or {}).items()) or "none"
        lines.append(f"{errors.get('count', 0)} error records ({errors.get('failed_files', 0)} failed files; by "
                     f"stage {by_stage}), one JSON line each in `{errors.get('file', ERRORS_NAME)}`.")
    else:
        lines.append("No error summary in the manifest.")
    lines.append("")

    if plots:
        lines += ["## Plots", ""]
        for plot in plots:  # a path, or a CardPlot (mirdl.store.card_plots): path + the Markdown reading it
            path, caption = (plot, None) if isinstance(plot, str) else (plot.path, plot.caption)
            lines += [f"![{Path(path).stem}]({path})", ""] + ([caption, ""] if caption else [])

    provenance = m.get("provenance") or {}
    lines += ["## How it was built", ""]
    command = provenance.get("command")
    if command:
        lines += ["```", " ".join(str(part) for part in command), "```", ""]
    platform = provenance.get("platform") or {}
    numpy_info = provenance.get("numpy") or {}
    lines.append(f"Python {provenance.get('python', '?')} on {platform.get('system', '?')} "
                 f"{platform.get('machine', '?')}; numpy SIMD targets: "
                 f"{', '.join(numpy_info.get('dispatch_available') or []) or 'unknown'} (stores from CPUs with other "
                 "targets differ in the last bits of their floats: compare with `mirdl diff`).")
    lines.append("")
    packages = {"mirdl": provenance.get("mirdl", m.get("mirdl_version")), **(provenance.get("packages") or {})}
    lines += _table(["package", "version"], [[package, version] for package, version in packages.items()]) + [""]

    lines += ["## Opening it", "",
              "Check it first: `mirdl verify STORE` (sizes, sha256, every record).", "",
              "```python", "from mirdl_tf.data import load",
              f"ds = load(\"STORE\", split=\"{next(iter(splits), 'train')}\", batch_size=32)", "```", ""]
    reason = tfds_unreadable_reason(m)
    if m["format"] == "tfrecord":
        if reason is None:
            lines += ["TensorFlow Datasets (`dataset_info.json`, `features.json`):", "", "```python",
                      "import tensorflow_datasets as tfds",
                      "ds = tfds.builder_from_directory(\"STORE\").as_dataset(split=\"train\")", "```", ""]
        else:
            lines += [f"TensorFlow Datasets cannot read this store: {reason}.", ""]
    if m["format"] == "parquet":
        lines += ["Hugging Face `datasets` (ClassLabel labels, arrays in their stored shape) and DuckDB:", "",
                  "```python", "import datasets, duckdb",
                  "ds = datasets.load_dataset(\"parquet\", data_dir=\"STORE\")",
                  f"duckdb.sql(\"SELECT key, label FROM read_parquet('STORE/{_glob(m, 'train')}')\")", "```", ""]
    lines += [f"Croissant (`{CROISSANT_NAME}`): `mlcroissant.Dataset(\"STORE/{CROISSANT_NAME}\")`"
              + (" reads the records." if m["format"] == "parquet" else
                 " validates it; mlcroissant reads no TFRecord or HDF5 records."), "",
              f"The whole contract is `{MANIFEST_NAME}` (docs/store-format.md in mirdl).", ""]
    return "\n".join(lines)


def write_descriptions(directory: str | os.PathLike, manifest: Mapping[str, Any], *,
                       dataset: Mapping[str, Any] | None = None, plots: Sequence[str] = ()) -> list[str]:
    """Write the card, ``croissant.json`` and (uncompressed TFRecord) the TFDS files into a store
    directory, each atomically; return the names written. Call it before writing the manifest."""
    directory = Path(directory)
    written = [CARD_NAME, CROISSANT_NAME]
    write_text_atomic(directory / CARD_NAME, dataset_card(manifest, dataset=dataset, plots=plots))
    write_json_atomic(directory / CROISSANT_NAME, croissant(manifest, dataset=dataset))
    for name, text in (tfds_files(manifest) or {}).items():
        write_text_atomic(directory / name, text)
        written.append(name)
    return written


def write_card_with_plots(directory: str | os.PathLike, manifest: Mapping[str, Any], *,
                          dataset: Mapping[str, Any] | None = None,
                          log: Callable[[str], None] = print) -> list[str]:
    """Draw the store's plots into ``PLOTS_DIR`` (:func:`mirdl.store.card_plots.card_plots`: pixels
    from numpy, their titles, axes and numbers in the card's Markdown; no matplotlib), then write
    the descriptions that show them (:func:`write_descriptions`); return the plot paths.

    The plots read records back, so the manifest is in place while they are drawn; it is removed
    again, and the caller writes it last, as always. A plot that fails does not cost the store:
    ``log`` says so and the card goes without it.
    """
    from mirdl.store.card_plots import card_plots

    directory = Path(directory)
    write_json_atomic(directory / MANIFEST_NAME, manifest)
    try:
        plots = card_plots(directory, directory / PLOTS_DIR)
    except Exception as err:  # noqa: BLE001 - the store matters more than its pictures; the log names why
        log(f"plots not drawn ({type(err).__name__}: {err})")
        plots = []
    (directory / MANIFEST_NAME).unlink()
    write_descriptions(directory, manifest, dataset=dataset, plots=plots)
    return [plot.path for plot in plots]
