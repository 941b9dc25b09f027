"""``rnnkit train``: options -> RunConfig -> data -> model -> ``fit`` -> RUN_DIR and a report.

The training itself is ``model.fit`` of the Python API, with two callbacks: ``BackupAndRestore``
(a checkpoint after every epoch, which ``--resume`` restores) and, when asked, TensorBoard.

Data-parallel training: ``--nproc N`` starts N processes on this machine with PyTorch's elastic
launcher (what ``torchrun --standalone --nproc_per_node N`` does), and ``torchrun ... -m rnnkit
train ...`` runs this same command once per process, on one machine or several. Every process
trains on its share of each batch (``fit``'s ``distributed="auto"`` finds torchrun's
environment); rank 0 alone writes RUN_DIR and prints.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _faults
from ..training.callbacks import Callback
from ._common import EXIT_INTERRUPTED, Fail, console, say, seed_everything, select_device
from .config import RunConfig, file_digest
from .run_dir import WRITTEN, RunDir, default_run_dir
from .tasks import TASKS, Task

__all__ = ["TrainOptions", "train"]

# Options that --resume may change: everything else comes from the run's run.json.
RESUME_OPTIONS = ("epochs", "device", "tensorboard", "quiet")


@dataclass
class TrainOptions:
    """``rnnkit train``'s options as given; None means "not given" (the task's default)."""

    task: str | None = None
    dataset: str | None = None
    csv: Path | None = None
    target: str | None = None
    features: list[str] = field(default_factory=list)
    date_column: str | None = None
    window: int | None = None
    horizon: int | None = None
    season: int | None = None
    relative: bool | None = None
    npy: Path | None = None
    labels: Path | None = None
    timesteps: int | None = None
    text: Path | None = None
    max_chars: int | None = None
    tsv: Path | None = None
    samples: int | None = None
    attention: bool | None = None
    cell: str | None = None
    units: int | None = None
    layers: int | None = None
    bidirectional: bool | None = None
    dropout: float | None = None
    embedding_dim: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    device: str | None = None
    out: Path | None = None
    overwrite: bool = False
    resume: Path | None = None
    tensorboard: bool = False
    quiet: bool = False
    nproc: int | None = None


def _given(options: TrainOptions) -> list[str]:
    """Names of the options the user gave (not None / not False / not empty)."""
    return [f.name for f in dataclasses.fields(options)
            if getattr(options, f.name) not in (None, False, [])]


def make_config(options: TrainOptions) -> tuple[RunConfig, Task]:
    """A new run's configuration: the user's options over the task's defaults."""
    task_name = options.task or ("classify" if options.npy else "text" if options.text
                                 else "forecast")
    if task_name not in TASKS:
        raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {task_name!r}")
    task = TASKS[task_name]
    values: dict[str, Any] = {"task": task_name}
    for f in dataclasses.fields(RunConfig):
        value = getattr(options, f.name, None)
        if value is None or f.name == "task":
            continue
        values[f.name] = str(Path(value).resolve()) if isinstance(value, Path) else value
    if options.features:
        values["features"] = list(options.features)
    for key, default in task.defaults.items():
        values.setdefault(key, default)
    if task_name == "forecast" and "window" not in values:
        values["window"] = task.window_default(RunConfig(**values))  # type: ignore[attr-defined]
    config = RunConfig(**values)
    task.check(config)
    return config, task


def _digests(task: Task, config: RunConfig) -> dict[str, str]:
    digests = {}
    for name in task.data_files(config):
        path = Path(name)
        if path.is_file():
            digests[name] = file_digest(path)
    return digests


def _open_for_resume(options: TrainOptions) -> tuple[RunDir, RunConfig, Task, int]:
    """The run to continue, its configuration with the allowed changes, and the epoch to
    start from (``config.epochs`` itself: only the results are left to write)."""
    from .run_state import State, inspect, load_config

    assert options.resume is not None
    extra = [n for n in _given(options) if n not in (*RESUME_OPTIONS, "resume")]
    if extra:
        flags = ", ".join("--" + n.replace("_", "-") for n in extra)
        raise ValueError(f"--resume continues a run with the settings in its run.json; only "
                         f"--epochs, --device, --tensorboard and --quiet may change ({flags} "
                         "given)")
    run = RunDir.open(options.resume)
    config = load_config(run)
    task = TASKS[config.task]
    changed = config.changed_data()
    if changed:
        from .run_state import retrain_command

        raise ValueError(f"the data of this run changed or disappeared since it started: "
                         f"{', '.join(changed)}; resuming would not reproduce the run. Train "
                         f"it again on the new data with: {retrain_command(run)}")
    status = inspect(run, config)
    if options.epochs is not None:
        config = config.replace(epochs=options.epochs)
    if options.device is not None:
        config = config.replace(device=options.device)
    asked = config.epochs
    if status.state is State.STRANDED:
        raise ValueError(f"RUN_DIR {run.path} cannot be continued: its checkpoint/ is missing, "
                         f"so training cannot go on from where it stopped (the run is kept as "
                         f"it is{'; its model still works' if status.has_model else ''})")
    if status.state is State.FINISHED:
        if options.epochs is None or asked <= status.done:
            raise ValueError(f"RUN_DIR {run.path} has already completed {status.done} epochs "
                             f"(asked for {asked}): pass --epochs N with N > {status.done} to "
                             "train further")
        if not (run.checkpoint / "backup.safetensors").is_file():
            raise ValueError(f"RUN_DIR {run.path} is finished and its checkpoint/ is missing: "
                             "it cannot be trained further (the run is kept as it is)")
    if status.done > asked:
        raise ValueError(f"RUN_DIR {run.path} has already completed {status.done} epochs (asked "
                         f"for {asked}): pass --epochs N with N > {status.done} to train further")
    return run, config, task, status.done


def train(options: TrainOptions) -> RunDir:
    """Run one ``rnnkit train``; returns the RUN_DIR written (on ranks other than 0 of a
    distributed run, which write nothing, the RUN_DIR that rank 0 writes)."""
    from ..training.backup import BackupAndRestore
    from ..training.distributed import is_main_process, launched_by_torchrun

    if options.nproc is not None and options.nproc > 1:
        return launch(options)
    main = is_main_process()  # rank 0 (or the only process) writes RUN_DIR and talks

    if options.tensorboard:
        from .tensorboard import TensorBoardLogger

        TensorBoardLogger.check_available()
    if options.resume is not None:
        if options.out is not None or options.overwrite:
            raise ValueError("--resume RUN_DIR continues that run in place: do not combine it "
                             "with --out or --overwrite")
        run, config, task, start = _open_for_resume(options)
        if main:
            say(f"Resuming {run.path} at epoch {start + 1} of {config.epochs}" if start <
                config.epochs else f"{run.path} finished its {start} epochs: writing its model "
                "and results from the last checkpoint (no training)")
    else:
        config, task = make_config(options)
        out = options.out or default_run_dir(task.name)
        if main:
            RunDir.check_new(out, options.overwrite, task.data_files(config))
        config = config.replace(data_digests=_digests(task, config))
        start = 0
    device = select_device(config.device)

    seed_everything(config.seed)
    data = task.prepare(config)
    model = task.build_model(config, data)
    model.to(device)
    model.compile(**task.compile_args(config, data))

    if not main:
        return _train_other_rank(options, config, data, model, start)
    if launched_by_torchrun() and config.device.startswith("cuda"):
        say("Distributed: each process trains on cuda:LOCAL_RANK")
    if options.resume is None:
        run = RunDir.create(out, options.overwrite, task.data_files(config),
                            command=_command(options, out), trained_with=config.trained_with(),
                            files=(*WRITTEN, *(["tensorboard"] if options.tensorboard else [])))
        run.write_json(run.config, config.to_dict())
        run.write_json(run.preprocessing, data.preprocessing)
        say(f"Run folder: {run.path}")
    else:
        run.remove_temporary_files()
        if options.epochs is not None or options.device is not None:
            run.write_json(run.config, config.to_dict())
        if not run.preprocessing.is_file():  # killed between run.json and preprocessing.json
            run.write_json(run.preprocessing, data.preprocessing)
    say(f"Data: {data.description}")
    say(f"Model: {config.layers} x {'bidirectional ' if config.bidirectional else ''}"
        f"{config.cell.upper()}({config.units}), {model.count_params():,} parameters, "
        f"{config.epochs} epochs on {device}")

    from .._kernels import compiled

    if device.type == "cpu" and compiled.needs_build():
        say("Building rnnkit's compiled CPU kernels: once per machine, a minute or two...")
        compiled.available()
    backup = BackupAndRestore(run.checkpoint, delete_checkpoint=False)
    callbacks: list[Any] = [backup, FaultPoints()]
    if options.tensorboard:
        run.track(run.tensorboard.name)  # --resume may add it
        callbacks.append(TensorBoardLogger(run.tensorboard))
    began = time.perf_counter()
    try:
        # With start == epochs no epoch runs: the backup restores the trained state.
        model.fit(data.x_train, data.y_train, batch_size=config.batch_size, epochs=config.epochs,
                  initial_epoch=start, validation_data=(data.x_val, data.y_val), shuffle=True,
                  verbose=0 if options.quiet else 1, callbacks=callbacks)
    except KeyboardInterrupt:
        _end_progress_line(options)
        _save_interrupted(run, model, backup)
    finally:
        for callback in callbacks[2:]:
            callback.close()
    seconds = time.perf_counter() - began
    try:
        report, epochs_done = _write_results(run, task, config, data, model, backup, seconds)
    except KeyboardInterrupt:
        from .run_state import resume_command

        raise Fail(f"Interrupted while writing the results of the {config.epochs} trained "
                   f"epochs; write them (no training) with: {resume_command(run)}",
                   EXIT_INTERRUPTED) from None

    from ._common import print_report

    print_report(report, f"Test results ({task.name}, {epochs_done} epochs, {seconds:.1f} s)")
    files = sorted(p.name for p in run.path.iterdir() if not p.name.startswith("."))
    console().print(f"Saved to {run.path}: {', '.join(files)}", markup=False)
    return run


def _write_results(run: RunDir, task: Task, config: RunConfig, data: Any, model: Any,
                   backup: Any, seconds: float) -> tuple[Any, int]:
    """Everything after training, in the order :mod:`.run_state` relies on: metrics.json,
    the mark of a finished run, last."""
    from .plots import learning_curves_plot

    history = backup.history
    run.write_history(history)
    learning_curves_plot(history, run.plot("learning_curves"),
                         title=f"{task.name}: {config.cell.upper()} learning curves")
    model.save(run.model)
    run.track(*task.plots)  # before they are written: --overwrite then knows they are rnnkit's
    report = task.evaluate(model, config, data, run.path)
    epochs_done = len(history.get("loss", []))
    run.write_json(run.metrics, {**report.metrics, "epochs": epochs_done,
                                 "final": {k: v[-1] for k, v in history.items() if v},
                                 "train_seconds_this_session": round(seconds, 3)})
    return report, epochs_done


class FaultPoints(Callback):
    """The points inside training at which the fault-injection test hook may stop the process
    (:mod:`rnnkit._faults`): after each batch (``batch:EPOCH:STEP``, from 1) and after each
    epoch's checkpoint (``epoch:EPOCH``). Free unless ``RNNKIT_FAULT`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        _faults.point(f"batch:{self._epoch}:{batch + 1}")

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        _faults.point(f"epoch:{epoch + 1}")


def _command(options: TrainOptions, out: Path) -> str:
    """The ``rnnkit train`` command line of ``options`` (paths made absolute), for the manifest:
    what starts the run again if it stopped before writing run.json."""
    words = ["rnnkit", "train"]
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if f.name in ("out", "overwrite", "resume") or value in (None, False, []):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "relative":
            words.append("--relative" if value else "--no-relative")
        elif value is True:
            words.append(flag)
        else:
            for item in value if isinstance(value, list) else [value]:
                words += [flag, str(Path(item).resolve()) if isinstance(item, Path) else str(item)]
    words += ["--out", str(Path(out).resolve())]
    return shlex.join(words)


def _end_progress_line(options: TrainOptions) -> None:
    """Ctrl-C stops fit in the middle of a progress line drawn in place: end it, so the
    messages that follow start on their own line."""
    import sys

    if options.quiet:
        return
    # A live progress display redirects sys.stdout/stderr through itself and would redraw its
    # line under every message that follows: take the real streams back first.
    for name in ("stdout", "stderr"):
        real = getattr(getattr(sys, name), "rich_proxied_file", None)
        if real is not None:
            setattr(sys, name, real)
    if sys.stdout.isatty():
        sys.stdout.write("\n")
        sys.stdout.flush()


def _train_other_rank(options: TrainOptions, config: RunConfig, data: Any, model: Any,
                      start: int) -> RunDir:
    """A rank other than 0: the same fit (its share of every batch), no files, no output. On
    --resume it restores the same checkpoint as rank 0 so all ranks start alike."""
    from ..training.backup import BackupAndRestore

    callbacks: list[Any] = []
    if options.resume is not None:
        callbacks.append(BackupAndRestore(RunDir.open(options.resume).checkpoint,
                                          delete_checkpoint=False))
    try:
        model.fit(data.x_train, data.y_train, batch_size=config.batch_size, epochs=config.epochs,
                  initial_epoch=start, validation_data=(data.x_val, data.y_val), shuffle=True,
                  verbose=0, callbacks=callbacks)
    except KeyboardInterrupt:
        raise Fail("Interrupted", EXIT_INTERRUPTED) from None
    return RunDir(Path(options.resume or options.out or "."))


def launch(options: TrainOptions) -> RunDir:
    """``--nproc N``: this command in N processes on this machine (PyTorch's elastic launch, as
    ``torchrun --standalone --nproc_per_node N``); returns rank 0's RUN_DIR."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from ..training.distributed import ENV_VARS

    assert options.nproc is not None
    if any(name in os.environ for name in ("WORLD_SIZE", "TORCHELASTIC_RUN_ID")):
        raise ValueError("--nproc starts its own processes, but this command already runs "
                         "under torchrun (WORLD_SIZE is set): drop --nproc, torchrun's "
                         "--nproc_per_node decides")
    if options.resume is None:  # check the options once, and fix one RUN_DIR for all ranks
        run_config, task = make_config(options)
        out = options.out or default_run_dir(task.name)
        RunDir.check_new(out, options.overwrite, task.data_files(run_config))
        options = dataclasses.replace(options, out=Path(out).resolve())
    per_rank = dataclasses.replace(options, nproc=None)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=options.nproc,
                          run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0)
    say(f"Distributed: {options.nproc} processes on this machine ({', '.join(ENV_VARS[:3])} "
        "set by PyTorch's elastic launcher)")
    # The launcher logs a failed process's traceback; the CLI shows one line (RNNKIT_DEBUG=1:
    # everything), as for any other bad input.
    launcher_log = logging.getLogger("torch.distributed.elastic")
    level = launcher_log.level
    if os.environ.get("RNNKIT_DEBUG", "") in ("", "0"):
        launcher_log.setLevel(logging.CRITICAL)
    try:
        results = elastic_launch(config, _rank_entry)(per_rank)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        raise Fail(f"training failed in process {rank} of {options.nproc}: "
                   f"{_failure_text(failure)}") from None
    finally:
        launcher_log.setLevel(level)
    return RunDir(Path(results[0]))


def _failure_text(failure: Any) -> str:
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", message)
    text = str(message).strip().splitlines()
    return text[-1] if text else f"exit code {failure.exitcode}"


def _rank_entry(options: TrainOptions) -> str:
    """One process of ``--nproc``: the ordinary command under the launcher's environment."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return str(record(train)(options).path)


def _save_interrupted(run: RunDir, model: Any, backup: Any) -> None:
    """Ctrl-C during fit: keep the last completed epoch (already in the checkpoint), write its
    model and history, and stop with the shell's interrupt code."""
    from .run_state import resume_command

    command = resume_command(run)
    if not backup.path.is_file():
        raise Fail(f"Interrupted before the first epoch finished: nothing to save. Start again "
                   f"with: {command}", EXIT_INTERRUPTED)
    done = backup.completed_epochs(backup.backup_dir)
    try:
        backup.restore_weights()  # the weights at the end of the last completed epoch
        model.save(run.model)
        run.write_history(backup.history)
    except KeyboardInterrupt:  # a second Ctrl-C: the checkpoint is all that is needed
        pass
    raise Fail(f"Interrupted: kept the {done} completed epoch(s) in {run.path} (checkpoint and "
               f"model). Continue with: {command}", EXIT_INTERRUPTED)
