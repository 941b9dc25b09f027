"""The states a RUN_DIR can be in, and what each command does in each of them.

``rnnkit train`` writes a run in this order (every file atomically, :mod:`rnnkit._io`)::

    manifest.json -> run.json -> preprocessing.json -> checkpoint/ after epoch 1, 2, ... N
      -> history.json, history.csv -> learning_curves.png -> model.rnnkit -> task plots
      -> metrics.json

so a crash at any moment leaves the folder in one of these states (:func:`inspect`):

=========  =================================================  ===============================
state      what is on disk                                    what continues it
=========  =================================================  ===============================
new        manifest.json only (killed before run.json)        the same ``rnnkit train`` again
started    run.json, no completed epoch                       ``rnnkit train --resume RUN``
training   checkpoint of k < N epochs; model.rnnkit only if   ``rnnkit train --resume RUN``
           Ctrl-C wrote it (the model of epoch k) or an       (trains epochs k+1 .. N)
           earlier finish did
trained    checkpoint of N of N epochs, metrics.json missing  ``rnnkit train --resume RUN``
           (killed while writing the results)                 (writes them; no training)
finished   metrics.json of N epochs, model.rnnkit             nothing: ``--resume --epochs M``
                                                              with M > N trains further
stranded   not finished, checkpoint/ gone (deleted by hand)   nothing: the model, if any, is
                                                              kept; training cannot go on
=========  =================================================  ===============================

``predict``, ``evaluate``, ``summary``, ``generate``, ``translate`` and ``diagnose`` work
whenever ``model.rnnkit`` exists (on a run that is not finished they say so, and name the
command that continues it: ``--resume``, or, when the run's data changed since it started,
training it again); without it they fail with one line naming that command. ``--resume`` works in
every state but finished (without ``--epochs M > N``) and stranded, where it refuses and keeps
everything: a finished run is never retrained from scratch or overwritten by a resume.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .config import RunConfig
from .fields import check_int, read_fields
from .run_dir import RunDir, RunDirError

__all__ = ["State", "Status", "inspect", "resume_command"]


class State(str, Enum):
    STARTED = "started"
    TRAINING = "training"
    TRAINED = "trained"
    FINISHED = "finished"
    STRANDED = "stranded"


def resume_command(run: RunDir) -> str:
    return f"rnnkit train --resume {shlex.quote(str(run.path))}"


@dataclass(frozen=True)
class Status:
    """Where a run stands: its state, epochs in the checkpoint (or in metrics.json) of the
    configured ``epochs``, and whether a model file exists."""

    run: RunDir
    state: State
    done: int
    epochs: int
    has_model: bool
    data_changed: tuple[str, ...] = ()  # input files that changed since the run started

    def _cannot_resume(self) -> str | None:
        """Why --resume would refuse this run, with the command that works instead."""
        if not self.data_changed:
            return None
        return (f"its data changed since it started ({', '.join(self.data_changed)}), so "
                f"--resume would not reproduce it; train it again on the new data with: "
                f"{retrain_command(self.run)}")

    def require_model(self) -> None:
        """A RunDirError naming the command that continues the run, unless its model exists."""
        if self.has_model:
            return
        run, command = self.run, resume_command(self.run)
        if self.state is not State.STRANDED and self._cannot_resume():
            raise RunDirError(f"RUN_DIR {run.path} has no trained model ({run.model.name}) "
                              f"after {self.done} of {self.epochs} epochs, and "
                              f"{self._cannot_resume()}")
        if self.state is State.TRAINED:
            raise RunDirError(f"RUN_DIR {run.path} finished training ({self.done} of "
                              f"{self.epochs} epochs) but its model was not written; write it "
                              f"(no training) with: {command}")
        if self.state is State.STRANDED:
            raise RunDirError(f"RUN_DIR {run.path} has neither its model nor its checkpoint/: "
                              f"nothing is left to continue; train it again with "
                              f"{retrain_command(run)}")
        raise RunDirError(f"RUN_DIR {run.path} has no trained model ({run.model.name}) yet: its "
                          f"training stopped after {self.done} of {self.epochs} epochs; "
                          f"continue it with: {command}")

    def note(self) -> str | None:
        """A line for commands that work on a run that is not finished, else None."""
        if self.state is State.FINISHED:
            return None
        if self.state is State.STRANDED:
            return (f"note: {self.run.path} did not finish and its checkpoint/ is gone: this is "
                    "the model it had when it stopped")
        if self._cannot_resume():
            return (f"note: {self.run.path} is not finished ({self.done} of {self.epochs} "
                    f"epochs trained) and {self._cannot_resume()}")
        return (f"note: {self.run.path} is not finished ({self.done} of {self.epochs} epochs "
                f"trained); continue it with: {resume_command(self.run)}")


def retrain_command(run: RunDir) -> str:
    """The command that trains this run again from scratch, in this folder."""
    command = run.train_command()
    return f"{command} --overwrite" if command else f"rnnkit train ... --out {run.path} --overwrite"


@dataclass
class MetricsFile:
    """What ``metrics.json`` must hold besides the task's own metrics (which are shown, never
    computed with): the epochs trained, the last epoch's logs and the training time."""

    epochs: int
    final: dict[str, float]
    train_seconds_this_session: float

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1)
        if not self.train_seconds_this_session >= 0:
            raise ValueError(f"'train_seconds_this_session' must be >= 0, got "
                             f"{self.train_seconds_this_session}")


def read_metrics(run: RunDir) -> dict[str, Any]:
    """``metrics.json``, checked (one error naming the field)."""
    data: Any = run.read_json(run.metrics)
    own = {f.name for f in dataclasses.fields(MetricsFile)}
    others = tuple(k for k in data if k not in own) if isinstance(data, dict) else ()
    try:
        read_fields(MetricsFile, data, str(run.metrics), skip=others)
    except ValueError as e:
        raise RunDirError(str(e)) from None
    return data


def _metrics_epochs(run: RunDir) -> int | None:
    return read_metrics(run)["epochs"] if run.metrics.is_file() else None


def inspect(run: RunDir, config: RunConfig) -> Status:
    """The state of ``run`` (see the module notes); ``config`` is its validated run.json."""
    from ..training.backup import FILENAME, BackupAndRestore

    has_checkpoint = (run.checkpoint / FILENAME).is_file()
    try:
        done = BackupAndRestore.completed_epochs(run.checkpoint) if has_checkpoint else 0
    except ValueError as e:
        raise RunDirError(f"RUN_DIR {run.path}: {e}") from None
    has_model = run.model.is_file()
    finished_epochs = _metrics_epochs(run)
    n = config.epochs
    if finished_epochs == n and has_model and (not has_checkpoint or done == n):
        return Status(run, State.FINISHED, n, n, True)
    changed = tuple(config.changed_data())
    if has_checkpoint:
        if done > n:
            raise RunDirError(f"{run.config}: field 'epochs' is {n}, but the checkpoint has "
                              f"{done} completed epochs; run.json was edited")
        return Status(run, State.TRAINED if done == n else State.TRAINING, done, n, has_model,
                      changed)
    if has_model or finished_epochs is not None:
        return Status(run, State.STRANDED, finished_epochs or 0, n, has_model)
    return Status(run, State.STARTED, 0, n, False, changed)


def load_config(run: RunDir) -> RunConfig:
    """``run.json`` read and checked on every read: its schema (one error naming the field),
    the task's own checks, and that the fields deciding what was computed still say what the
    run was trained with (recorded in the manifest when the run started)."""
    from .tasks import TASKS

    config = RunConfig.load(run.config)
    try:
        TASKS[config.task].check(config)
    except ValueError as e:
        raise RunDirError(f"{run.config}: {e}") from None
    before = run.manifest().get("trained_with") or {}
    now = config.trained_with()
    for name, value in before.items():
        if now.get(name) != value:
            raise RunDirError(
                f"{run.config}: field {name!r} is {now.get(name)!r}, but the run was trained "
                f"with {value!r} ({run.manifest_path.name}); restore it, or train a new run "
                "with the new setting")
    return config


def load_preprocessing(run: RunDir, config: RunConfig) -> dict[str, Any]:
    """``preprocessing.json`` read and checked on every read, like run.json: the task's schema
    (:attr:`~rnnkit.cli.tasks.Task.preprocessing_file`, one error naming the field), and the
    settings it shares with run.json agreeing with it."""
    from dataclasses import asdict

    from .fields import read_fields
    from .tasks import TASKS

    data = run.read_json(run.preprocessing)
    try:
        checked = asdict(read_fields(TASKS[config.task].preprocessing_file, data,
                                     str(run.preprocessing)))
    except ValueError as e:
        raise RunDirError(str(e)) from None
    for name in ("window", "horizon"):
        if name in checked and checked[name] != getattr(config, name):
            raise RunDirError(f"{run.preprocessing}: field {name!r} is {checked[name]!r}, but "
                              f"{run.config.name} says {getattr(config, name)!r}; the files "
                              "were edited")
    return checked


def open_run(path: Any) -> tuple[RunDir, RunConfig, Status]:
    """An existing run, its checked configuration and its state."""
    run = RunDir.open(path)
    config = load_config(run)
    return run, config, inspect(run, config)
