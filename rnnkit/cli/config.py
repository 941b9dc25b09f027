"""A run's configuration: one dataclass, saved as ``RUN_DIR/run.json`` and read back as data.

Every option of ``rnnkit train`` lands here after the task's defaults have filled in what the
user left out, so ``run.json`` says exactly what was run and ``--resume`` can rebuild the same
data and model from it. The file is parsed as JSON and checked field by field: never executed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fields import check_int, read_fields

__all__ = ["CELLS", "TASKS", "RunConfig", "file_digest"]

TASKS = ("forecast", "classify", "text", "translate")
# the cells' names, as rnnkit._kernels._cell_spec.CELLS holds them (not imported here: it needs
# torch, which the command's start and --help do without; tests/kernels/test_cell_spec.py holds
# the two equal)
CELLS = ("rnn", "gru", "lstm", "peephole_lstm", "layer_norm_lstm", "layer_norm_gru")
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
            check_int(name, getattr(self, name), minimum)
        for name in ("window", "season", "embedding_dim", "timesteps", "max_chars", "samples"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
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
        return read_fields(cls, data, source, skip=("format", "version", "rnnkit"))

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

    def changed_data(self) -> list[str]:
        """The input files that changed or disappeared since the run started (their digests
        differ from ``data_digests``)."""
        return [name for name, digest in self.data_digests.items()
                if not Path(name).is_file() or file_digest(Path(name)) != digest]

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


_MAY_CHANGE = ("format", "version", "rnnkit", "epochs", "device")
def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
