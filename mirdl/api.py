"""The Python API, mirroring the ``mirdl`` command: ``prepare``, ``Store``, ``train``, ``evaluate``, ``predict``.

Each function takes what its command's flags and config file take (a config file path or
the same mapping as a dict) and returns Python objects instead of printing. Everything is
imported lazily, so ``import mirdl`` stays light (``mirdl.prepare`` and friends are resolved
on first use by :func:`mirdl.__getattr__`).

Examples
--------
>>> import mirdl                                                                    # doctest: +SKIP
>>> store = mirdl.prepare("configs/prepare_clips.yaml")                             # doctest: +SKIP
>>> store.describe()["splits"]["train"]["tracks"]                                   # doctest: +SKIP
33
>>> run = mirdl.train("configs/train_clips.yaml")                                   # doctest: +SKIP
>>> mirdl.evaluate(run["out"], store, "test")["metrics"]["accuracy"]                # doctest: +SKIP
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mirdl.errors import ConfigError, StoreError

__all__ = ["Store", "prepare", "merge", "train", "evaluate", "predict"]


class Store:
    """A feature store on disk (written by :func:`prepare` or ``mirdl prepare``).

    Parameters
    ----------
    path : path-like
        The store directory; its manifest is read (and validated) on construction.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        from mirdl.store.manifest import read_manifest

        self.path = Path(path)
        self.manifest = read_manifest(self.path)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def describe(self) -> dict[str, Any]:
        """What the store holds: name, format, task, vocabulary, features (shape, spec), and per
        split its tracks, records and counts per class (``label_counts`` by vocabulary entry)."""
        m = self.manifest
        vocabulary = m["task"].get("vocabulary") or []
        splits = {}
        for split, entry in m["splits"].items():
            counts = entry.get("label_counts")
            splits[split] = {"tracks": entry.get("tracks"), "records": entry["records"],
                             "label_counts": None if counts is None else dict(zip(vocabulary, counts))}
        return {
            "name": m["name"], "format": m["format"], "task": m["task"]["type"], "vocabulary": list(vocabulary),
            "features": {name: {"shape": entry["shape"], "representation": (entry.get("spec") or {}).get(
                "representation")} for name, entry in m["features"].items()},
            "splits": splits,
            "split_warnings": list(m.get("corpus", {}).get("split_warnings") or []),
        }

    def summary(self) -> str:
        """The text ``mirdl inspect`` prints."""
        from mirdl.store.summary import summary

        return summary(self.path)

    def load(self, split: str, *, batch_size: int = 32, **kwargs: Any):
        """A ``tf.data.Dataset`` of the split: :func:`mirdl_tf.data.load` (same keyword arguments)."""
        from mirdl_tf import data

        return data.load(self.path, split, batch_size=batch_size, **kwargs)

    def verify(self) -> dict[str, Any]:
        """Check everything (``mirdl verify``): raises StoreError naming the first problem."""
        from mirdl.store.verify import verify

        return verify(self.path)

    def plot(self, out_dir: str | os.PathLike) -> list[Path]:
        """The PNGs of ``mirdl inspect --plot``: examples, label counts, durations."""
        from mirdl.store.summary import plot

        return plot(self.path, out_dir)


def _config(config: str | os.PathLike | Mapping[str, Any], cls, *, base_dir: str | os.PathLike | None):
    if isinstance(config, Mapping):
        return cls.from_dict(dict(config), base_dir=base_dir if base_dir is not None else os.getcwd())
    if isinstance(config, (str, os.PathLike)):
        return cls.from_file(config)
    raise ConfigError(f"config={config!r} must be a path to a YAML file or a dict")


def prepare(config: str | os.PathLike | Mapping[str, Any], *, workers: int = 2, overwrite: bool = False,
            max_error_rate: float | None = None, base_dir: str | os.PathLike | None = None,
            quiet: bool = False, partition: str | tuple[int, int] | None = None,
            update: str | os.PathLike | None = None) -> Store:
    """Run the precompute job (``mirdl prepare``) and return the store.

    Parameters
    ----------
    config : path-like or dict
        A prepare config file, or its mapping (relative paths then resolve against ``base_dir``,
        default the working directory).
    workers, overwrite, max_error_rate, partition, update
        As ``mirdl prepare``'s flags (``partition="I/K"`` or ``(I, K)``; ``update``: the store to
        update, which is returned).
    quiet : bool
        Print nothing (the summary otherwise goes to stdout, as the command prints it).

    Raises
    ------
    ConfigError, StoreError
        As the command; StoreError also when more than ``max_error_rate`` of the files failed.
        Files that failed without reaching that rate are in the store's ``errors.jsonl``.
    """
    import io
    import sys

    from mirdl.pipelines.config import PrepareConfig
    from mirdl.pipelines.precompute import EXIT_ABORTED, prepare as run_prepare

    checked = _config(config, PrepareConfig, base_dir=base_dir)
    status = run_prepare(checked, workers=workers, overwrite=overwrite, max_error_rate=max_error_rate,
                         out=io.StringIO() if quiet else sys.stdout, partition=partition, update=update)
    if status == EXIT_ABORTED:
        raise StoreError(f"prepare aborted: more than max_error_rate={max_error_rate} of the files failed; "
                         "nothing was written")
    return Store(checked.store.out if update is None else update)


def merge(partials: Iterable[str | os.PathLike | Store], out: str | os.PathLike, *, overwrite: bool = False,
          quiet: bool = False) -> Store:
    """Merge the partial stores of ``prepare(..., partition="I/K")`` into ``out`` (``mirdl merge``).

    Parameters
    ----------
    partials : iterable of path-like or Store
        Every partial store of one job, each once, in any order.
    out : path-like
        The merged store (replaced only if it is a mirdl store and ``overwrite``; left alone
        when it already equals this merge).
    overwrite : bool
    quiet : bool
        Print nothing (progress lines otherwise go to stdout, as the command prints them).

    Returns
    -------
    Store
        The merged store.

    Raises
    ------
    StoreError
        As the command: partials that do not belong together, a part missing or given twice.
    """
    from mirdl.pipelines.merge import merge_partials

    merge_partials([os.fspath(part) for part in partials], os.fspath(out), overwrite=overwrite, param="out",
                   log=(lambda line: None) if quiet else print)
    return Store(out)


def train(config: str | os.PathLike | Mapping[str, Any], *, out: str | os.PathLike | None = None,
          epochs: int | None = None, overwrite: bool = False, base_dir: str | os.PathLike | None = None,
          log=print) -> dict[str, Any]:
    """Train (``mirdl train``); returns ``metrics.json``'s content plus ``out`` (the run directory).

    ``config`` is a train config file or its mapping (a :class:`Store` may stand for ``store``).
    """
    from mirdl_tf.train import TrainConfig, train as run_train

    if isinstance(config, Mapping):
        config = {**config, **({"store": os.fspath(config["store"])} if "store" in config else {})}
    checked = _config(config, TrainConfig, base_dir=base_dir)
    return run_train(checked, out=out, epochs=epochs, overwrite=overwrite, log=log)


def evaluate(model_dir: str | os.PathLike, store: str | os.PathLike | Store, split: str = "test",
             **kwargs: Any) -> dict[str, Any]:
    """Evaluate a run on a store split (``mirdl evaluate``): :func:`mirdl_tf.evaluate.evaluate`."""
    from mirdl_tf.evaluate import evaluate as run_evaluate

    return run_evaluate(model_dir, os.fspath(store), split, **kwargs)


def predict(model_dir: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], **kwargs: Any):
    """Predict new audio (``mirdl predict``): :func:`mirdl_tf.predict.predict` (rows, errors)."""
    from mirdl_tf.predict import predict as run_predict

    return run_predict(model_dir, inputs, **kwargs)
