"""What the commands share: the error boundary, output, seeding, devices, opening a run."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer

from .config import RunConfig
from .run_dir import RunDir, RunDirError

__all__ = ["Fail", "console", "error_boundary", "load_trained", "print_report", "seed_everything",
           "select_device"]

T = TypeVar("T")

# Errors that describe bad input (a file, a column, an option, a run folder). At the CLI
# boundary they become one line on stderr and exit code 1; anything else is a bug and keeps
# its traceback. RNNKIT_DEBUG=1 shows the traceback of these too.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError,
               NotADirectoryError, PermissionError, ImportError)
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT (Ctrl-C)


class Fail(Exception):
    """Stop with a message already tailored for the user and an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """A status line on stderr (results go to stdout)."""
    console(stderr=True).print(message, markup=False)


def _one_line(error: BaseException) -> str:
    text = str(error) if not isinstance(error, KeyError) else str(error.args[0] if error.args
                                                                    else error)
    return " ".join(text.split()) or type(error).__name__


@contextmanager
def error_boundary() -> Iterator[None]:
    """Turn user errors into ``error: <one line>`` and a non-zero exit, without traceback."""
    try:
        yield
    except Fail as e:
        print(f"error: {_one_line(e)}" if e.code != EXIT_INTERRUPTED else str(e),
              file=sys.stderr)
        raise typer.Exit(e.code) from None
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except USER_ERRORS as e:
        if os.environ.get("RNNKIT_DEBUG"):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        raise typer.Exit(1) from None


def guarded(function: Callable[..., T]) -> Callable[..., T]:
    """Decorator form of :func:`error_boundary` that keeps the signature (for typer)."""
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with error_boundary():
            return function(*args, **kwargs)

    return wrapper


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


def select_device(device: str) -> Any:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (torch "
                         f"{torch.__version__}); use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"--device {device!r} is not a device torch knows ({e})") from None


def load_trained(path: Path, device: str | None = None) -> tuple[RunDir, RunConfig, Any, dict]:
    """Open RUN_DIR: its checked config, the saved model (on ``device``) and preprocessing.json.

    Works in every state of :mod:`.run_state` in which the model exists (with a note on stderr
    when the run is not finished); otherwise one error naming the command that continues it.
    """
    from .run_state import load_preprocessing, open_run

    run, config, status = open_run(path)
    status.require_model()
    note = status.note()
    if note:
        say(note)
    preprocessing = load_preprocessing(run, config)
    from ..models import load_model

    from .tasks import TASKS
    from .tasks._base import check_fits

    model = load_model(run.model)
    try:
        check_fits(TASKS[config.task], preprocessing, model, str(run.preprocessing))
    except ValueError as e:
        raise RunDirError(str(e)) from None
    model.to(select_device(device or "cpu"))
    return run, config, model, preprocessing


def print_report(report: Any, title: str) -> None:
    """The task's results as a rich table on stdout, then its headline."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("model")
    for column in report.columns:
        table.add_column(column, justify="right")
    for label, values in report.rows:
        table.add_row(label, *values)
    out = console()
    out.print(table)
    out.print(report.headline, markup=False)
