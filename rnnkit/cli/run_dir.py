"""RUN_DIR: the folder one ``rnnkit train`` leaves behind, and the rules for writing it.

Layout (every file is written atomically: to a temporary file beside it, then renamed)::

    RUN_DIR/
      run.json               the run's configuration (RunConfig); its presence marks a run
      model.rnnkit           the trained model, written by ``model.save`` (load_model reads it)
      preprocessing.json     what predict/generate need: scaler, columns, class names, vocabulary
      history.csv            per-epoch loss and metrics, one row per epoch (epoch counts from 1)
      history.json           the same as {"epoch": [...], "loss": [...], ...}
      metrics.json           test metrics of the model and of the baselines
      learning_curves.png    loss (and validation loss) per epoch
      forecast.png           forecast task: forecast vs actual on the test split
      confusion_matrix.png   classify task
      checkpoint/            the BackupAndRestore state, rewritten after every epoch (resume)
      tensorboard/           with --tensorboard

A folder that exists is never written into unless the user asked: ``--overwrite`` replaces a
previous run (and only a run: a folder without ``run.json`` is refused even then), ``--resume``
continues one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "RunDir",
    "RunDirError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_run_dir",
]

RUN_FILE = "run.json"


class RunDirError(ValueError):
    """A RUN_DIR that cannot be used as asked: missing, not a run, or exists without --overwrite."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a temporary path in ``path``'s folder, then rename it to ``path``.

    The rename is atomic on POSIX and Windows (``os.replace``), so a reader sees either the old
    file or the complete new one, never a half-written file, even if the process dies mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def default_run_dir(task: str, root: Path = Path("runs"), now: datetime | None = None) -> Path:
    """``runs/<task>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``, ... if that name is taken."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    path = root / f"{task}-{stamp}"
    suffix = 2
    while path.exists():
        path = root / f"{task}-{stamp}-{suffix}"
        suffix += 1
    return path


@dataclass(frozen=True)
class RunDir:
    """Paths inside one RUN_DIR, and the checks for creating or opening it."""

    path: Path

    # -- opening ------------------------------------------------------------------------------
    @staticmethod
    def check_new(path: Path, overwrite: bool = False) -> None:
        """Raise RunDirError unless :meth:`create` may use ``path`` (nothing is changed).

        An absent or empty folder may be used. An existing run is replaced only with
        ``overwrite``; anything else that exists (a file, a folder that is not a run) is refused.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"RUN_DIR {path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()):
            if not (path / RUN_FILE).is_file():
                raise RunDirError(
                    f"RUN_DIR {path} exists, is not empty and is not an rnnkit run (no {RUN_FILE});"
                    " refusing to write into it: choose another --out"
                )
            if not overwrite:
                raise RunDirError(
                    f"RUN_DIR {path} already holds a run: pass --overwrite to replace it or "
                    f"--resume {path} to continue it"
                )

    @classmethod
    def create(cls, path: Path, overwrite: bool = False) -> RunDir:
        """A new, empty run folder at ``path`` (see :meth:`check_new` for what is refused)."""
        path = Path(path)
        cls.check_new(path, overwrite)
        if path.is_dir() and any(path.iterdir()):
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run folder; a clear error if ``path`` is missing or is not a run."""
        path = Path(path)
        if not path.exists():
            raise RunDirError(f"RUN_DIR {path} does not exist")
        if not path.is_dir():
            raise RunDirError(f"RUN_DIR {path} is not a folder")
        if not (path / RUN_FILE).is_file():
            raise RunDirError(f"{path} is not an rnnkit run: it has no {RUN_FILE}")
        return cls(path)

    # -- paths --------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / RUN_FILE

    @property
    def model(self) -> Path:
        return self.path / "model.rnnkit"

    @property
    def preprocessing(self) -> Path:
        return self.path / "preprocessing.json"

    @property
    def history_csv(self) -> Path:
        return self.path / "history.csv"

    @property
    def history_json(self) -> Path:
        return self.path / "history.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def plot(self, name: str) -> Path:
        return self.path / f"{name}.png"

    # -- reading and writing ------------------------------------------------------------------
    def write_json(self, path: Path, data: Any) -> None:
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")

    def read_json(self, path: Path) -> Any:
        if not path.is_file():
            raise RunDirError(f"RUN_DIR {self.path} has no {path.name}: the run did not finish")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RunDirError(f"{path} is not valid JSON ({e})") from None

    def write_history(self, history: Mapping[str, Sequence[float]]) -> None:
        """``history.json`` and ``history.csv`` from ``{"loss": [...], ...}``; epochs count from 1."""
        keys = list(history)
        epochs = max((len(v) for v in history.values()), default=0)
        table = {"epoch": list(range(1, epochs + 1)), **{k: list(history[k]) for k in keys}}
        self.write_json(self.history_json, table)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", *keys])
        for i in range(epochs):
            row = [history[k][i] if i < len(history[k]) else "" for k in keys]
            writer.writerow([i + 1, *row])
        atomic_write_text(self.history_csv, buffer.getvalue())
