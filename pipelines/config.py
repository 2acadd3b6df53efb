"""The prepare config: one YAML file says what ``mirdl prepare`` builds, validated up front.

Every section becomes a frozen dataclass; every bad field raises
:class:`~mirdl.errors.ConfigError` naming it (``store.format='zarr' must be one of
['hdf5', 'parquet', 'tfrecord']``), before any audio is read. Relative paths resolve against
the folder of the YAML file, so a config travels with its corpus.

Schema (``docs/store-format.md`` has the same with examples)::

    name: demo                 # store name: shard files are NAME-SPLIT.EXT-00000-of-00004
    seed: 0                    # default seed of splits and augment (each may set its own)
    corpus: {...}              # mirdl.pipelines.corpus_config.CorpusConfig
    splits: {...}              # mirdl.pipelines.corpus_config.SplitConfig (optional: 80/10/10 by group)
    features:                  # one or more mirdl.features.spec.FeatureSpec, computed in one pass;
      - {name: logmel, representation: logmel, sample_rate: 22050, n_mels: 96}
                               # all share sample_rate and channels
    audio:
      decoder: reference       # reference (default) | fast: Ogg Opus through FFmpeg's decoder; see AudioConfig
    augment: {...}             # mirdl.features.augment.AugmentSpec (optional: 1 variant, the clean one)
                               # + background_dir: folder of background recordings
    segment:
      mode: clip               # clip: patch_seconds, hop_seconds, pad  (clip labels)
      patch_seconds: 3.0       # frames: window_seconds, hop_seconds, pad, onset_widen (frame labels)
      hop_seconds: 3.0         # default: = patch/window seconds (no overlap)
      pad: silence             # silence | wrap | drop
    store:
      format: tfrecord         # tfrecord | hdf5 | parquet
      out: stores/demo         # the store directory
      shard_bytes: 64MB        # int bytes or "512KB" / "64MB" / "1GB" (powers of 1024)
      compression: none        # tfrecord: none|gzip; hdf5: none|gzip|lzf; parquet: none|gzip|zstd
      row_group_records: 256   # parquet only

Seconds become frames of the first feature: ``frames = max(1, floor(seconds / hop + 0.5))``
with its hop (``hop_length / sample_rate``), i.e. the nearest frame, halves up
(:meth:`SegmentConfig.frames`); the other features cover the same time span in their own
frames (:mod:`mirdl.pipelines.transforms`, "Time grid of a record").

Examples
--------
>>> SegmentConfig.from_dict({"mode": "clip", "patch_seconds": 3.0, "hop_seconds": 1.5})
SegmentConfig(mode='clip', seconds=3.0, hop_seconds=1.5, pad='silence', onset_widen=0)
>>> parse_bytes("64MB"), parse_bytes(1000)
(67108864, 1000)
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any


from mirdl.features.audio import AUDIO_EXTENSIONS, DECODER_MODES, OPUS_FAST_BOUND_DB
from mirdl.features.augment import AugmentSpec
from mirdl.features.checks import choice, integer, mapping, positive_float
from mirdl.errors import ConfigError
from mirdl.features.segment import PAD_MODES
from mirdl.features.spec import FeatureSpec, load_config, stable_hash
from mirdl.store.files import is_remote
from mirdl.store.format import STORE_FORMATS
from mirdl.pipelines.corpus_config import CorpusConfig, SplitConfig
from mirdl.store.format import COMPRESSIONS, DEFAULT_ROW_GROUP_RECORDS

__all__ = [
    "SEGMENT_MODES",
    "DEFAULT_SHARD_BYTES",
    "parse_bytes",
    "DEFAULT_DECODER",
    "AudioConfig",
    "SegmentConfig",
    "StoreConfig",
    "PrepareConfig",
]

SEGMENT_MODES = ("clip", "frames")
DEFAULT_SHARD_BYTES = 64 * 1024**2
_SECTIONS = ("name", "seed", "corpus", "splits", "features", "audio", "augment", "segment", "store", "dataset")
#: ``audio.decoder`` when the config does not say. ``reference``: FFmpeg's Opus decoder misses the issue's
#: example bound (<= 0.1 dB mean, <= 1 dB max on log-mel) at 63 kb/s stereo (max 4.9 dB in a few quiet
#: bins; mean 0.010 dB), so it is opt-in (README "Faster Opus decoding").
DEFAULT_DECODER = "reference"
#: ``dataset:`` keys: what the dataset card and croissant.json say about the data (not fingerprinted).
DATASET_FIELDS = ("description", "license", "source", "url", "citation")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_bytes(value: Any, *, where: str = "store.shard_bytes") -> int:
    """A byte count from an int or a string such as ``"64MB"`` (K/M/G/T are powers of 1024)."""
    if not isinstance(value, (str, bool)):
        try:
            return integer(value, name=where, minimum=1)  # bytes
        except ConfigError:
            pass  # fall through to the message that also names sizes such as "64MB"
    match = _BYTES.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{where}={value!r} must be a positive integer or a size such as '64MB'")
    count = float(match[1]) * 1024 ** " KMGT".index(match[2].upper() or " ")
    if count < 1:
        raise ConfigError(f"{where}={value!r} must be at least 1 byte")
    return int(count)


@dataclass(frozen=True)
class SegmentConfig:
    """How features are cut into records: the ``segment:`` section.

    Parameters
    ----------
    mode : {"clip", "frames"}
        ``clip``: long decision scale, every patch gets the track's label (YAML
        ``patch_seconds``). ``frames``: short decision scale, windows with one label per
        frame from the track's annotations (YAML ``window_seconds``).
    seconds : float > 0
        Length of a segment.
    hop_seconds : float > 0
        Distance between segment starts (default: ``seconds``).
    pad : {"silence", "wrap", "drop"}
        What happens to the last, partial segment (:mod:`mirdl.features.segment`).
    onset_widen : int >= 0
        ``frames`` mode with onset targets: frames either side of an onset marked 0.5
        (:func:`mirdl.features.labels.onset_frames`).
    """

    mode: str = "clip"
    seconds: float = 3.0
    hop_seconds: float | None = None
    pad: str = "silence"
    onset_widen: int = 0

    def __post_init__(self) -> None:
        choice(self.mode, name="segment.mode", options=SEGMENT_MODES)
        length_key = self.length_key
        object.__setattr__(self, "seconds", positive_float(self.seconds, name=f"segment.{length_key}"))
        hop = self.seconds if self.hop_seconds is None else self.hop_seconds
        object.__setattr__(self, "hop_seconds", positive_float(hop, name="segment.hop_seconds"))
        choice(self.pad, name="segment.pad", options=PAD_MODES)
        object.__setattr__(self, "onset_widen", integer(self.onset_widen, name="segment.onset_widen", minimum=0))
        if self.onset_widen and self.mode != "frames":
            raise ConfigError("segment.onset_widen is only used with mode: frames")

    @property
    def length_key(self) -> str:
        """The YAML name of :attr:`seconds` in this mode."""
        return "patch_seconds" if self.mode == "clip" else "window_seconds"

    def frames(self, seconds: float, spec: FeatureSpec) -> int:
        """``seconds`` in frames of ``spec``: nearest frame, halves up, at least 1."""
        return max(1, math.floor(seconds / spec.hop_seconds + 0.5))

    def to_dict(self) -> dict[str, Any]:
        data = {"mode": self.mode, self.length_key: self.seconds, "hop_seconds": self.hop_seconds, "pad": self.pad}
        if self.mode == "frames":
            data["onset_widen"] = self.onset_widen
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SegmentConfig:
        data = mapping(data, name="segment", optional=True)
        mode = data.get("mode", "clip")
        choice(mode, name="segment.mode", options=SEGMENT_MODES)
        length_key = "patch_seconds" if mode == "clip" else "window_seconds"
        known = ("mode", length_key, "hop_seconds", "pad") + (("onset_widen",) if mode == "frames" else ())
        mapping(data, name="segment", fields=known)
        if length_key not in data:
            raise ConfigError(f"segment.{length_key} is missing (mode: {mode})")
        return cls(mode=mode, seconds=data[length_key], hop_seconds=data.get("hop_seconds"),
                   pad=data.get("pad", "silence"), onset_widen=data.get("onset_widen", 0))


@dataclass(frozen=True)
class AudioConfig:
    """How files are decoded: the ``audio:`` section.

    Parameters
    ----------
    decoder : {"fast", "reference"}
        ``reference``: libsndfile (libopus, libvorbis) for every file it opens. ``fast``: Ogg Opus
        files through FFmpeg's own Opus decoder, about twice as fast, within
        :data:`mirdl.features.audio.OPUS_FAST_BOUND_DB` of the reference on log-mel; every other
        format exactly as ``reference``. Part of the store fingerprint.

    Examples
    --------
    >>> AudioConfig.from_dict({"decoder": "reference"})
    AudioConfig(decoder='reference')
    >>> AudioConfig(decoder="fast").provenance()["opus_bound_db"]
    {'mean': 0.02, 'p999': 2.0, 'max': 10.0}
    """

    decoder: str = DEFAULT_DECODER

    def __post_init__(self) -> None:
        choice(self.decoder, name="audio.decoder", options=DECODER_MODES)

    def to_dict(self) -> dict[str, Any]:
        return {"decoder": self.decoder}

    def fingerprint_payload(self) -> dict[str, Any] | None:
        """What the store fingerprint covers; None for ``reference``, which is how every store was
        decoded before this option (their fingerprints stay valid)."""
        return None if self.decoder == "reference" else self.to_dict()

    def provenance(self, decoders_used: list[str] | None = None) -> dict[str, Any]:
        """``provenance.decode`` of a store: the mode, the decoders that read its files and the
        stated bound of the fast Opus decoder against the reference (None with ``reference``)."""
        return {"mode": self.decoder, "decoders_used": sorted(decoders_used or []),
                "opus_bound_db": dict(OPUS_FAST_BOUND_DB) if self.decoder == "fast" else None}

    @classmethod
    def from_dict(cls, data: Any) -> AudioConfig:
        data = mapping(data, name="audio", fields=("decoder",), optional=True)
        return cls(**data)


@dataclass(frozen=True)
class StoreConfig:
    """Where and how the store is written: the ``store:`` section.

    Parameters
    ----------
    format : {"tfrecord", "hdf5", "parquet"}
    out : str
        Absolute path of the store directory (the YAML's relative path, resolved). On a
        cluster it must be on a filesystem every worker sees.
    shard_bytes : int > 0
        Target bytes of records per shard (before compression).
    compression : str
        One of :data:`mirdl.store.format.COMPRESSIONS` ``[format]``.
    row_group_records : int > 0
        Parquet records per row group.
    """

    format: str
    out: str
    shard_bytes: int = DEFAULT_SHARD_BYTES
    compression: str = "none"
    row_group_records: int = DEFAULT_ROW_GROUP_RECORDS

    def __post_init__(self) -> None:
        choice(self.format, name="store.format", options=sorted(STORE_FORMATS))
        if not isinstance(self.out, str) or not self.out:
            raise ConfigError(f"store.out={self.out!r} must be a path")
        object.__setattr__(self, "shard_bytes", parse_bytes(self.shard_bytes))
        if self.compression not in COMPRESSIONS[self.format]:
            raise ConfigError(f"store.compression={self.compression!r} must be one of "
                              f"{list(COMPRESSIONS[self.format])} for format {self.format!r}")
        object.__setattr__(self, "row_group_records",
                           integer(self.row_group_records, name="store.row_group_records", minimum=1))

    def to_dict(self) -> dict[str, Any]:
        data = {"format": self.format, "shard_bytes": self.shard_bytes, "compression": self.compression}
        if self.format == "parquet":
            data["row_group_records"] = self.row_group_records
        return data

    @classmethod
    def from_dict(cls, data: Any, *, base_dir: str | os.PathLike) -> StoreConfig:
        data = mapping(data, name="store", fields=("format", "out", "shard_bytes", "compression", "row_group_records"),
                       optional=True)
        for key in ("format", "out"):
            if key not in data:
                raise ConfigError(f"store.{key} is missing")
        if "row_group_records" in data and data["format"] != "parquet":
            raise ConfigError(f"store.row_group_records is only used by format 'parquet', not {data['format']!r}")
        out = data["out"]
        # s3:// and gs:// stay URLs; any other scheme is a ConfigError, never a local folder "s3:".
        if isinstance(out, str) and out and not is_remote(out, param="store.out"):
            data["out"] = os.path.normpath(os.path.join(os.fspath(base_dir), os.path.expanduser(out)))
        return cls(**data)


@dataclass(frozen=True)
class PrepareConfig:
    """Everything ``mirdl prepare`` needs, checked: see the module docstring for the YAML.

    Attributes
    ----------
    name : str
    corpus : CorpusConfig
    splits : SplitConfig
    features : tuple of FeatureSpec
        Unique names; one sample rate and channel count. The first sets the segment grid
        (and the frame grid of frame labels).
    augment : AugmentSpec
    segment : SegmentConfig
    store : StoreConfig
    seed : int
    background_dir : str or None
        Folder of background recordings for ``augment.background_snr_db`` (YAML
        ``augment.background_dir``).
    audio : AudioConfig
        The decoder choice (YAML ``audio:``).
    source : str or None
        The YAML file this came from (for messages only).
    dataset : dict
        ``description``, ``license``, ``source`` (of the audio), ``url``, ``citation``: shown
        by the dataset card and ``croissant.json``; not part of the fingerprint.
    """

    name: str
    corpus: CorpusConfig
    splits: SplitConfig
    features: tuple[FeatureSpec, ...]
    augment: AugmentSpec
    segment: SegmentConfig
    store: StoreConfig
    seed: int = 0
    background_dir: str | None = None
    audio: AudioConfig = field(default_factory=AudioConfig)
    source: str | None = field(default=None, compare=False)
    dataset: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"name={self.name!r} must be letters, digits, '_' and '.', starting with a "
                              "letter or digit (it names the shard files)")
        if not self.features:
            raise ConfigError("features is empty: give at least one feature spec")
        first = self.features[0]
        names = [spec.name for spec in self.features]
        for i, spec in enumerate(self.features):
            if names.count(spec.name) > 1:
                raise ConfigError(f"features[{i}].name={spec.name!r} is used twice; names must be unique")
            if spec.name in ("key", "track_id", "variant", "segment", "start_frame", "label", "split"):
                raise ConfigError(f"features[{i}].name={spec.name!r} is a record column; choose another name")
            for attribute in ("sample_rate", "channels"):
                if getattr(spec, attribute) != getattr(first, attribute):
                    raise ConfigError(
                        f"features[{i}].{attribute}={getattr(spec, attribute)!r} differs from features[0]"
                        f".{attribute}={getattr(first, attribute)!r}: all features are computed from one decode")
        frame_labels = self.corpus.type == "annotations"
        if frame_labels != (self.segment.mode == "frames"):
            raise ConfigError(
                f"segment.mode={self.segment.mode!r} does not fit corpus.type={self.corpus.type!r}: "
                "annotation corpora have frame labels (mode: frames), the others clip labels (mode: clip)")
        if (self.augment.background_snr_db is None) != (self.background_dir is None):
            raise ConfigError("augment.background_dir and augment.background_snr_db go together: "
                              "give both (mix backgrounds) or neither")

    @property
    def sample_rate(self) -> int:
        """The rate audio is decoded at (shared by every feature)."""
        return self.features[0].sample_rate

    @property
    def channels(self) -> int:
        return self.features[0].channels

    def background_files(self) -> list[str]:
        """Background recordings (sorted absolute paths; empty without ``background_dir``)."""
        if self.background_dir is None:
            return []
        return sorted(
            os.path.join(folder, name)
            for folder, _, names in os.walk(self.background_dir)
            for name in names
            if not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS
        )

    def background_listing(self) -> list[list[Any]]:
        """(relative name, size) of every background file: what the fingerprint covers."""
        return [[os.path.relpath(path, self.background_dir), os.path.getsize(path)]
                for path in self.background_files()]

    def fingerprint_payload(self) -> dict[str, Any]:
        """Everything in the config that changes the bytes of the store (not paths or the source file)."""
        payload = {
            "name": self.name,
            "features": [{"name": spec.name, "fingerprint": spec.fingerprint()} for spec in self.features],
            "augment": self.augment.fingerprint(),
            "background": stable_hash(self.background_listing()) if self.background_dir else None,
            "segment": self.segment.to_dict(),
            "splits": self.splits.to_dict(),
            "corpus": {key: value for key, value in self.corpus.to_dict().items() if key not in ("root", "csv")},
            "store": self.store.to_dict(),
        }
        if self.audio.fingerprint_payload() is not None:
            payload["audio"] = self.audio.fingerprint_payload()
        return payload

    @classmethod
    def from_dict(cls, data: Any, *, base_dir: str | os.PathLike, source: str | None = None) -> PrepareConfig:
        """Check and build a config from the YAML mapping; relative paths resolve against ``base_dir``."""
        data = mapping(data, name=None, fields=_SECTIONS, optional=True)
        for key in ("name", "corpus", "features", "store"):
            if key not in data:
                raise ConfigError(f"{key} is missing (a prepare config needs name, corpus, features, store)")
        seed = integer(data.get("seed", 0), name="seed", minimum=0)
        corpus = CorpusConfig.from_dict(mapping(data["corpus"], name="corpus", optional=True), base_dir=base_dir)
        splits_data = mapping(data.get("splits"), name="splits", optional=True)
        splits_data.setdefault("seed", seed)
        splits = SplitConfig.from_dict(splits_data)
        entries = data["features"]
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list):
            raise ConfigError(f"features must be a list of feature specs, got {type(entries).__name__}")
        specs = []
        for i, entry in enumerate(entries):
            try:
                specs.append(FeatureSpec.from_dict(entry))
            except ConfigError as err:
                raise ConfigError(f"features[{i}]: {err}") from err
        augment_data = mapping(data.get("augment"), name="augment", optional=True)
        background_dir = augment_data.pop("background_dir", None)
        if background_dir is not None:
            if not isinstance(background_dir, str) or not background_dir:
                raise ConfigError(f"augment.background_dir={background_dir!r} must be a folder path")
            background_dir = os.path.normpath(os.path.join(os.fspath(base_dir), os.path.expanduser(background_dir)))
            if not os.path.isdir(background_dir):
                raise ConfigError(f"augment.background_dir={background_dir!r} is not a directory")
        augment_data.setdefault("seed", seed)
        augment = AugmentSpec.from_dict(augment_data)
        if "segment" not in data:
            raise ConfigError("segment is missing (mode: clip with patch_seconds, or mode: frames with "
                              "window_seconds)")
        config = cls(
            name=data["name"], corpus=corpus, splits=splits, features=tuple(specs), augment=augment,
            segment=SegmentConfig.from_dict(data["segment"]),
            store=StoreConfig.from_dict(data["store"], base_dir=base_dir), seed=seed,
            background_dir=background_dir, source=source, dataset=_dataset_section(data.get("dataset")),
            audio=AudioConfig.from_dict(data.get("audio")),
        )
        if background_dir is not None and not config.background_files():
            raise ConfigError(f"augment.background_dir={background_dir!r} holds no audio files")
        return config

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> PrepareConfig:
        """Load a YAML config; errors name the file and the field."""
        return load_config(path, cls.from_dict)


def _dataset_section(value: Any) -> dict[str, str]:
    """The ``dataset:`` section: known keys, each a non-empty string."""
    section = mapping(value, name="dataset", fields=DATASET_FIELDS, optional=True)
    for key, text in section.items():
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"dataset.{key}={text!r} must be a non-empty string")
    return {key: text.strip() for key, text in section.items()}
