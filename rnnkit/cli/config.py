"""A run's configuration: one dataclass, saved as ``RUN_DIR/run.json`` and read back as data.

Every option of ``rnnkit train`` lands here after the task's defaults have filled in what the
user left out, so ``run.json`` says exactly what was run and ``--resume`` can rebuild the same
data and model from it. The file is parsed as JSON and checked field by field: never executed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CELLS", "TASKS", "RunConfig", "file_digest"]

TASKS = ("forecast", "classify", "text", "translate")
CELLS = ("rnn", "gru", "lstm")  # the cells' names (rnnkit._kernels._cell_spec; not imported: torch)
FORMAT = "rnnkit-run"
VERSION = 1


@dataclass
class RunConfig:
    """Everything that decides what a training run computes.

    Data options that a task does not use stay ``None``. ``data_digests`` maps each input file
    to its SHA-256, so that ``--resume`` can refuse data that changed since the run started.
    """

    task: str = "forecast"
    # -- data ----------------------------------------------------------------------------------
    dataset: str | None = None  # a built-in dataset's name when no file is given
    csv: str | None = None
    target: str | None = None
    features: list[str] = field(default_factory=list)
    date_column: str | None = None
    window: int | None = None
    horizon: int = 1
    season: int | None = None
    relative: bool = True
    npy: str | None = None
    labels: str | None = None
    timesteps: int | None = None
    text: str | None = None
    max_chars: int | None = None
    tsv: str | None = None  # translate: tab-separated pairs
    samples: int | None = None  # translate: pairs to generate (or to read from --tsv)
    data_digests: dict[str, str] = field(default_factory=dict)
    # -- model ---------------------------------------------------------------------------------
    cell: str = "lstm"
    units: int = 32
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    embedding_dim: int | None = None
    attention: bool = False  # translate: Luong attention over the encoder's outputs
    # -- training ------------------------------------------------------------------------------
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"'task' must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.cell not in CELLS:
            raise ValueError(f"'cell' must be one of {', '.join(CELLS)}, got {self.cell!r}")
        for name, minimum in (("units", 1), ("layers", 1), ("epochs", 1), ("batch_size", 1),
                              ("horizon", 1), ("seed", 0)):
            _check_int(name, getattr(self, name), minimum)
        for name in ("window", "season", "embedding_dim", "timesteps", "max_chars", "samples"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"'dropout' must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise ValueError(f"'lr' must be > 0, got {self.lr}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"'device' must be cpu or cuda, got {self.device!r}")

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        return {"format": FORMAT, "version": VERSION, "rnnkit": __version__,
                **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "run.json") -> RunConfig:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{source} is not an rnnkit run configuration")
        if data.get("version") != VERSION:
            raise ValueError(f"{source} has version {data.get('version')!r}; this rnnkit reads "
                             f"version {VERSION}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k not in ("format", "version", "rnnkit")}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source} has unknown fields: {', '.join(unknown)}")
        for name, value in values.items():
            _check_type(name, value, _FIELD_TYPES[name], source)
        try:
            return cls(**values)
        except ValueError as e:  # a value out of range: the check names the field
            raise ValueError(f"{source}: field {e}") from None

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from None
        return cls.from_dict(data, source=str(path))

    def trained_with(self) -> dict[str, Any]:
        """The fields that decide what a run computes, as JSON data: all but those --resume may
        change (``epochs``, ``device``). Saved in the run's manifest, so that a run.json edited
        afterwards is caught instead of silently giving other numbers."""
        return {k: v for k, v in self.to_dict().items() if k not in _MAY_CHANGE}

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


_MAY_CHANGE = ("format", "version", "rnnkit", "epochs", "device")
_FIELD_TYPES = typing.get_type_hints(RunConfig)


def _check_type(name: str, value: Any, expected: Any, source: str) -> None:
    """One ``ValueError`` naming the field when ``value`` is not of the field's declared type
    (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``list[str]``, ``dict[str, str]``)."""
    if not _is_instance(value, expected):
        raise ValueError(f"{source}: field {name!r} must be {_describe(expected)}, got "
                         f"{value!r}")


def _is_instance(value: Any, expected: Any) -> bool:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, arg) for arg in args)
    if expected is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_is_instance(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _is_instance(k, args[0]) and _is_instance(v, args[1]) for k, v in value.items())
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _describe(expected: Any) -> str:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if expected is type(None):
        return "null"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "an object of strings"
    return names.get(expected, getattr(expected, "__name__", str(expected)))


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name!r} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name!r} must be >= {minimum}, got {value}")
