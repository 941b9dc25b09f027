"""RUN_DIR: the folder one ``rnnkit train`` leaves behind, and the rules for writing it.

Layout (every file is written by rnnkit's one atomic writer, :mod:`rnnkit._io`)::

    RUN_DIR/
      manifest.json          what rnnkit wrote here (each name added before its file is
                             written), the command that started the run and what it was
                             trained with; written first
      run.json               the run's configuration (RunConfig); its presence marks a run
      preprocessing.json     what predict/generate need: scaler, columns, class names, vocabulary
      checkpoint/            the BackupAndRestore state, rewritten after every epoch (resume)
      history.json           per-epoch loss and metrics as {"epoch": [...], "loss": [...], ...}
      history.csv            the same, one row per epoch (epoch counts from 1)
      learning_curves.png    loss (and validation loss) per epoch
      model.rnnkit           the trained model, written by ``model.save`` (load_model reads it)
      forecast.png           forecast task: forecast vs actual on the test split
      confusion_matrix.png   classify task
      metrics.json           test metrics of the model and of the baselines; written last
      tensorboard/           with --tensorboard

(:mod:`rnnkit.cli.run_state` names the states a crash can leave this folder in.)

A folder that exists is never written into unless the user asked: ``--overwrite`` replaces a
previous run and ``--resume`` continues one. ``--overwrite`` removes only the files the
manifest lists (what rnnkit wrote; files the user put in the folder stay) and refuses a folder
that holds the run's own input data. A folder without ``run.json`` is refused, unless all it
holds is what a ``rnnkit train`` killed before writing ``run.json`` left behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import _io
from .fields import read_fields

__all__ = ["MANIFEST", "RUN_FILE", "WRITTEN", "RunDir", "RunDirError", "default_run_dir"]

RUN_FILE = "run.json"
MANIFEST = "manifest.json"
_MANIFEST_FORMAT = "rnnkit-run-manifest"
# What rnnkit train writes in a run of every task; a task's plots, tensorboard/ and what
# rnnkit diagnose writes are added to the manifest (RunDir.track) only when they are written.
WRITTEN = (RUN_FILE, "preprocessing.json", "checkpoint", "history.json", "history.csv",
           "learning_curves.png", "model.rnnkit", "metrics.json")
# All that a run made before manifests may hold (what --overwrite removes from one).
LEGACY_LAYOUT = (*WRITTEN, "forecast.png", "confusion_matrix.png", "tensorboard",
                 "gradient_flow.png", "hidden_states.png", "diagnostics.json",
                 "saturation_history.png")


@dataclass
class ManifestFile:
    """``manifest.json``: the schema :meth:`RunDir.manifest` checks (:mod:`rnnkit.cli.fields`)."""

    format: str
    version: int
    command: str  # empty when not known
    trained_with: dict[str, Any]
    files: list[str]

    def __post_init__(self) -> None:
        if self.format != _MANIFEST_FORMAT:  # checked first by RunDir.manifest
            raise ValueError(f"'format' must be {_MANIFEST_FORMAT!r}, got {self.format!r}")
        if self.version != 1:
            raise ValueError(f"'version' must be 1 (this rnnkit's manifests), got "
                             f"{self.version!r}")
        if self.command and not self.command.startswith("rnnkit train "):
            raise ValueError(f"'command' must be an rnnkit train command, got "
                             f"{self.command!r:.60}")
        odd = [f for f in self.files if not f or "/" in f or "\\" in f or f in (".", "..")]
        if odd:
            raise ValueError(f"'files' must hold names of entries of the run folder, got "
                             f"{odd[0]!r}")


class RunDirError(ValueError):
    """A RUN_DIR that cannot be used as asked: missing, not a run, or exists without --overwrite."""


def default_run_dir(task: str, root: Path = Path("runs"), now: datetime | None = None) -> Path:
    """``runs/<task>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``, ... if that name is taken."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    path = root / f"{task}-{stamp}"
    suffix = 2
    while path.exists():
        path = root / f"{task}-{stamp}-{suffix}"
        suffix += 1
    return path


def _inside(file: str | Path, folder: Path) -> bool:
    try:
        return Path(file).resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


@dataclass(frozen=True)
class RunDir:
    """Paths inside one RUN_DIR, its manifest, and the checks for creating or opening it."""

    path: Path

    # -- opening ------------------------------------------------------------------------------
    @staticmethod
    def check_new(path: Path, overwrite: bool = False, data_files: Iterable[str] = ()) -> None:
        """Raise RunDirError unless :meth:`create` may use ``path`` (nothing is changed).

        An absent or empty folder may be used, and so may one holding only what a train killed
        before its run.json left. An existing run is replaced only with ``overwrite``, and never
        when it holds one of ``data_files`` (the new run's input); anything else is refused.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"RUN_DIR {path} exists and is not a folder")
        if not path.is_dir() or not any(path.iterdir()):
            return
        run = RunDir(path)
        if not run.config.is_file():
            if run.foreign_entries():
                raise RunDirError(
                    f"RUN_DIR {path} exists, is not empty and is not an rnnkit run (no "
                    f"{RUN_FILE}); refusing to write into it: choose another --out")
            return  # only the leftovers of a train that stopped before writing run.json
        if not overwrite:
            raise RunDirError(f"RUN_DIR {path} already holds a run: pass --overwrite to replace "
                              f"it or --resume {path} to continue it")
        held = [f for f in data_files if _inside(f, path)]
        if held:
            raise RunDirError(f"RUN_DIR {path} holds this run's input data ({', '.join(held)}): "
                              "--overwrite would replace the folder it is read from; move the "
                              "data or choose another --out")

    @classmethod
    def create(cls, path: Path, overwrite: bool = False, data_files: Iterable[str] = (),
               command: str = "", trained_with: Mapping[str, Any] | None = None,
               files: Sequence[str] = WRITTEN) -> RunDir:
        """A run folder at ``path`` holding its new manifest and nothing else of rnnkit's (see
        :meth:`check_new` for what is refused).

        A new folder appears complete or not at all: it is made under a temporary name beside
        ``path`` and renamed. Replacing a run first writes the new manifest (listing the old
        run's files too, so an interrupted replacement can be finished), then removes what the
        old manifest lists and nothing else.
        """
        path = Path(path)
        data_files = list(data_files)
        cls.check_new(path, overwrite, data_files)
        run = cls(path)
        manifest = {"format": _MANIFEST_FORMAT, "version": 1, "command": command,
                    "trained_with": dict(trained_with or {}), "files": list(files)}
        if path.is_dir() and any(path.iterdir()):
            old = [n for n in run.manifest()["files"] if n not in files]
            run._write_manifest({**manifest, "files": [*files, *old]})
            run.remove_own_files(keep_manifest=True)
            run._write_manifest(manifest)
            return run
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(_io.temporary_names(path)):  # left by a killed create
            shutil.rmtree(stale, ignore_errors=True)
        staging = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        staging.mkdir()
        try:
            cls(staging)._write_manifest(manifest)
            os.replace(staging, path)  # onto an absent or empty folder: atomic
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return run

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run folder; a clear error if ``path`` is missing or is not a run."""
        path = Path(path)
        if not path.exists():
            raise RunDirError(f"RUN_DIR {path} does not exist")
        if not path.is_dir():
            raise RunDirError(f"RUN_DIR {path} is not a folder")
        run = cls(path)
        if not run.config.is_file():
            command = run.train_command()
            if command:
                raise RunDirError(f"RUN_DIR {path} is not a run yet: its rnnkit train stopped "
                                  f"before writing {RUN_FILE}; start it again with: {command}")
            raise RunDirError(f"{path} is not an rnnkit run: it has no {RUN_FILE}")
        return run

    # -- the manifest -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any]:
        """The manifest (for a run made before manifests: one listing :data:`LEGACY_LAYOUT`)."""
        if not self.manifest_path.is_file():
            return {"format": _MANIFEST_FORMAT, "version": 1, "command": "",
                    "trained_with": {}, "files": list(LEGACY_LAYOUT)}
        data = self.read_json(self.manifest_path)
        if isinstance(data, dict) and data.get("format", _MANIFEST_FORMAT) != _MANIFEST_FORMAT:
            raise RunDirError(f"{self.manifest_path} is not an rnnkit run manifest (field "
                              f"'format' is {data['format']!r})")
        try:
            read_fields(ManifestFile, data, str(self.manifest_path))
        except ValueError as e:
            raise RunDirError(str(e)) from None
        return data

    def train_command(self) -> str:
        """The ``rnnkit train`` command that started this run (from the manifest; "" when not
        known), writing into this folder: a copied run folder's manifest names the folder it
        was copied from."""
        command = self.manifest()["command"] if self.manifest_path.is_file() else ""
        if not command:
            return ""
        words = shlex.split(command)
        if "--out" in words[:-1]:
            words[words.index("--out") + 1] = str(self.path)
        else:
            words += ["--out", str(self.path)]
        return shlex.join(words)

    def _write_manifest(self, data: Mapping[str, Any]) -> None:
        _io.write_json(self.manifest_path, dict(data))

    def track(self, *names: str) -> None:
        """Add ``names`` (entries of this folder) to the manifest before they are written, so
        that --overwrite knows rnnkit wrote them."""
        manifest = self.manifest()
        new = [n for n in names if n not in manifest["files"]]
        if new:
            self._write_manifest({**manifest, "files": [*manifest["files"], *new]})

    def own_entries(self) -> set[str]:
        """Names in the folder that rnnkit wrote: the manifest, what it lists, and temporary
        files a killed write of one of them left."""
        listed = {MANIFEST, *self.manifest()["files"]}
        own = set()
        for entry in self.path.iterdir():
            name = entry.name
            if name in listed or any(entry.match(_io.temporary_names(n)) for n in listed):
                own.add(name)
        return own

    def foreign_entries(self) -> list[str]:
        """Names in the folder that rnnkit did not write (the user's files)."""
        own = self.own_entries()
        return sorted(p.name for p in self.path.iterdir() if p.name not in own)

    def remove_own_files(self, keep_manifest: bool = False) -> None:
        """Delete what rnnkit wrote here (run.json first, so the folder stops being a run at
        once; the manifest last, so an interrupted removal can be finished)."""
        own = self.own_entries()
        order = sorted(own - {MANIFEST}, key=lambda n: n != RUN_FILE)
        order += [] if keep_manifest else [MANIFEST]
        for name in order:
            entry = self.path / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()

    def remove_temporary_files(self) -> None:
        """Temporary files a killed write left (the complete files are never touched)."""
        for folder in (self.path, self.checkpoint):
            if folder.is_dir():
                for entry in folder.glob(".*.tmp"):
                    entry.unlink(missing_ok=True)

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
        _io.write_json(path, data)

    def read_json(self, path: Path) -> Any:
        if not path.is_file():
            raise RunDirError(f"RUN_DIR {self.path} has no {path.name}: the run did not finish")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
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
        _io.write_text(self.history_csv, buffer.getvalue())
