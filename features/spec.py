"""`FeatureSpec`: everything that changes the numbers of a feature, with a stable fingerprint.

A spec names a representation (a key of :data:`mirdl.features.representations.REPRESENTATIONS`),
the sample rate and channel count the audio is brought to, the output dtype, and every
parameter of the representation function (defaults filled in). Two specs with the same
numbers have the same :meth:`FeatureSpec.fingerprint` on any machine and in any process;
the ``name`` (the key a store uses for the feature) is not part of it.

Examples
--------
>>> spec = FeatureSpec(representation="logmel", params={"n_mels": 96})
>>> spec.n_mels, spec.hop_length
(96, 512)
>>> FeatureSpec.from_dict(spec.to_dict()) == spec
True
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mirdl.errors import ConfigError
from mirdl.features.checks import (
    boolean,
    choice,
    finite_float,
    integer,
    mapping,
    non_negative_float,
    positive_float,
)
from mirdl.features.representations import REPRESENTATIONS, representation_params

__all__ = ["SPEC_FORMAT_VERSION", "FeatureSpec", "load_specs", "read_config", "load_config", "canonical_json", "stable_hash"]

#: Bumped whenever the meaning of a spec field or a representation's numbers changes.
SPEC_FORMAT_VERSION = 1

_DTYPES = ("float32", "float16")
_POSITIVE_INTS = {"n_fft", "hop_length", "n_mels", "n_bins", "bins_per_octave", "n_chroma",
                  "n_mfcc", "n_octaves"}
_POSITIVE_FLOATS = {"amin", "filter_scale"}
_OPTIONAL_POSITIVE_FLOATS = {"top_db"}
_BOOLS = {"center", "log", "htk"}


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no spaces and non-finite floats as strings: the hashing form."""
    return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stable_hash(value: Any, *, n_hex: int = 16) -> str:
    """First ``n_hex`` hex digits of the sha256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:n_hex]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return _jsonable(value.item())
    return value


def _check_param(name: str, value: Any, *, sample_rate: int) -> Any:
    """Validate one representation parameter; return it in canonical Python type."""
    where = f"spec.{name}"
    if name in _POSITIVE_INTS:
        return integer(value, name=where, minimum=1)
    if name in _BOOLS:
        return boolean(value, name=where)
    if name in _POSITIVE_FLOATS:
        return positive_float(value, name=where)
    if name in _OPTIONAL_POSITIVE_FLOATS:
        return None if value is None else positive_float(value, name=where)
    if name == "win_length":
        return None if value is None else integer(value, name=where, minimum=1)
    if name in ("fmin", "fmax"):
        if value is None and name == "fmax":
            return None
        frequency = non_negative_float(value, name=where)
        if frequency > sample_rate / 2:
            raise ConfigError(f"{where}={value!r} is above the Nyquist frequency {sample_rate / 2:g} Hz")
        return frequency
    if name == "power":  # 1: magnitude, 2: power
        return float(choice(value, name=where, options=(1, 2)))
    if name in ("tuning", "lifter"):
        number = finite_float(value, name=where)
        if name == "tuning" and not -0.5 <= number < 0.5:
            raise ConfigError(f"{where}={value!r} must be in [-0.5, 0.5) (fractions of a bin)")
        return number if name == "tuning" else non_negative_float(number, name=where)
    if name == "window":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}={value!r} must be a window name such as 'hann'")
        return value
    if name == "dct_type":
        return choice(value, name=where, options=(1, 2, 3))
    if name == "norm":
        # mel filters: "slaney" or None; chroma: a p-norm (inf, 1, 2, ...) or None.
        if value is None or value == "slaney":
            return value
        if value in ("inf", "Infinity") or (isinstance(value, float) and math.isinf(value) and value > 0):
            return math.inf
        try:
            return positive_float(value, name=where)
        except ConfigError:
            raise ConfigError(f"{where}={value!r} must be 'slaney', inf, a positive number or null") from None
    raise ConfigError(f"spec.{name} is not a known parameter")  # pragma: no cover - registry guard


@dataclass(frozen=True)
class FeatureSpec:
    """What a feature is: representation, audio format and every parameter that changes the numbers.

    Parameters
    ----------
    representation : str
        One of ``stft, mel, logmel, cqt, chroma_stft, chroma_cqt, mfcc, waveform``.
    sample_rate : int > 0
        Audio is resampled to this rate before the representation.
    channels : int >= 1
        1 downmixes to mono (output ``(n_bins, n_frames)``); k > 1 keeps k channels
        (output ``(k, n_bins, n_frames)``, mono files duplicated).
    dtype : {"float32", "float16"}
        Storage dtype of the output.
    params : dict
        Parameters of the representation function; missing ones take the function's
        defaults, unknown ones raise :class:`ConfigError`. Read them back as attributes
        (``spec.n_mels``) or as the dict ``spec.params``.
    name : str or None
        Key of the feature in a store (defaults to ``representation``); not fingerprinted.
    """

    representation: str
    sample_rate: int = 22050
    channels: int = 1
    dtype: str = "float32"
    params: Any = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        choice(self.representation, name="spec.representation", options=sorted(REPRESENTATIONS))
        object.__setattr__(self, "sample_rate", integer(self.sample_rate, name="spec.sample_rate", minimum=1000,
                                                        maximum=384000))
        object.__setattr__(self, "channels", integer(self.channels, name="spec.channels", minimum=1, maximum=64))
        object.__setattr__(self, "dtype", choice(self.dtype, name="spec.dtype", options=_DTYPES))
        if self.name is not None and (not isinstance(self.name, str) or not self.name.isidentifier()):
            raise ConfigError(f"spec.name={self.name!r} must be an identifier (letters, digits, _)")
        given = dict(self.params) if not isinstance(self.params, tuple) else dict(self.params)
        defaults = representation_params(self.representation)
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ConfigError(
                f"spec.{unknown[0]} is not a parameter of representation {self.representation!r} "
                f"(its parameters: {sorted(defaults)})"
            )
        resolved = {
            key: _check_param(key, given.get(key, default), sample_rate=self.sample_rate)
            for key, default in sorted(defaults.items())
        }
        self._check_relations(resolved)
        # Stored as sorted pairs so the dataclass stays hashable and immutable.
        object.__setattr__(self, "params", tuple(resolved.items()))
        if self.name is None:
            object.__setattr__(self, "name", self.representation)

    def _check_relations(self, params: dict[str, Any]) -> None:
        n_fft, win_length = params.get("n_fft"), params.get("win_length")
        if n_fft is not None and win_length is not None and win_length > n_fft:
            raise ConfigError(f"spec.win_length={win_length} must be <= n_fft={n_fft}")
        fmin, fmax = params.get("fmin"), params.get("fmax")
        if fmax is not None and fmin is not None and fmax <= fmin:
            raise ConfigError(f"spec.fmax={fmax} must be above fmin={fmin}")
        if self.representation in ("mel", "logmel") and params["norm"] not in ("slaney", None):
            raise ConfigError(f"spec.norm={params['norm']!r} must be 'slaney' or null for mel filters")
        if self.representation.startswith("chroma") and params["norm"] == "slaney":
            raise ConfigError("spec.norm='slaney' is for mel filters; chroma takes inf, 1, 2 or null")
        if self.representation == "cqt":
            top = params["fmin"] * 2 ** (params["n_bins"] / params["bins_per_octave"])
            if top > self.sample_rate / 2:
                raise ConfigError(
                    f"spec.n_bins={params['n_bins']} reaches {top:.0f} Hz, above the Nyquist "
                    f"frequency {self.sample_rate / 2:g} Hz of sample_rate={self.sample_rate}"
                )

    def __getattr__(self, key: str) -> Any:
        # Only called when normal lookup fails: expose representation parameters as attributes.
        if key.startswith("__"):
            raise AttributeError(key)
        for name, value in object.__getattribute__(self, "params"):
            if name == key:
                return value
        raise AttributeError(f"FeatureSpec of {self.representation!r} has no parameter {key!r}")

    @property
    def param_dict(self) -> dict[str, Any]:
        """The representation parameters as a new dict."""
        return dict(self.params)

    @property
    def hop_seconds(self) -> float:
        """Seconds between frames (one sample for ``waveform``)."""
        hop = dict(self.params).get("hop_length", 1)
        return hop / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-able form; :meth:`from_dict` inverts it."""
        return {
            "name": self.name,
            "representation": self.representation,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "dtype": self.dtype,
            "params": _jsonable(dict(self.params)),
        }

    @classmethod
    def from_dict(cls, data: Any) -> FeatureSpec:
        """Build a spec from a mapping; parameters may be nested under ``params`` or given flat."""
        data = mapping(data, name="spec")
        top = {key: data.pop(key) for key in ("name", "representation", "sample_rate", "channels", "dtype")
               if key in data}
        if "representation" not in top:
            raise ConfigError("spec.representation is missing")
        params = {**mapping(data.pop("params", None), name="spec.params", optional=True), **data}  # flat keys are parameters too
        return cls(params=params, **top)

    def fingerprint(self) -> str:
        """Stable 16-hex-digit hash of everything that changes the numbers (not ``name``)."""
        payload = self.to_dict()
        payload.pop("name")
        payload["spec_format_version"] = SPEC_FORMAT_VERSION
        return stable_hash(payload)

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=True)

    @classmethod
    def from_file(cls, path: str | Path) -> FeatureSpec:
        """Load one spec from a YAML or JSON file; errors name the file and the field."""
        specs = load_specs(path)
        if len(specs) != 1:
            raise ConfigError(f"{path}: expected one spec, found {len(specs)}")
        return specs[0]


def read_config(path: str | Path) -> Any:
    """Parse a YAML (or ``.json``) config file; every failure is one line naming the file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    The parsed document (usually a dict).

    Raises
    ------
    ConfigError
        The file cannot be read, or is not valid YAML/JSON (with line and column).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror or err})") from err
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from err


def load_config(path: str | Path, build: Any) -> Any:
    """Read a config file and build it with ``build(data, base_dir=..., source=...)``.

    Relative paths in the config resolve against the file's folder; any :class:`ConfigError`
    the builder raises is prefixed with the file name, so the CLI prints one line naming the
    file and the field.
    """
    path = Path(path)
    data = read_config(path)
    try:
        return build(data, base_dir=path.resolve().parent, source=str(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def load_specs(path: str | Path) -> list[FeatureSpec]:
    """Load one spec (a mapping) or several (a list, or a mapping with ``features:``) from YAML/JSON.

    Parameters
    ----------
    path : str or Path
        A ``.yaml``/``.yml``/``.json`` file.

    Returns
    -------
    list of FeatureSpec
    """
    path = Path(path)
    data = read_config(path)
    if isinstance(data, dict) and "features" in data:
        data = data["features"]
    entries = data if isinstance(data, list) else [data]
    try:
        specs = [FeatureSpec.from_dict(entry) for entry in entries]
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: spec.name values must be unique, got {names}")
    return specs
