"""The small commands: ``evaluate``, ``summary``, ``predict``, ``generate`` and ``bench``.

Each opens a RUN_DIR written by ``rnnkit train`` and calls the same library code the Python
API does (``load_model``, ``predict``, ``summary``, the task's ``evaluate``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ._common import console, load_trained, print_report, say
from .. import _io

__all__ = ["bench", "evaluate", "generate", "predict", "summary"]


def evaluate(run_dir: Path, device: str | None = None) -> None:
    """Recompute the test metrics of a finished run from its data and saved model."""
    from .tasks import TASKS

    run, config, model, _ = load_trained(run_dir, device)
    changed = config.changed_data()
    if changed:
        from .run_state import retrain_command

        raise ValueError(f"the data of this run changed or disappeared since training: "
                         f"{', '.join(changed)}; its test metrics cannot be recomputed. Train "
                         f"it again on the new data with: {retrain_command(run)}")
    from ._common import seed_everything

    seed_everything(config.seed)
    task = TASKS[config.task]
    data = task.prepare(config)
    model.compile(**task.compile_args(config, data))
    report = task.evaluate(model, config, data, plot_dir=None)
    print_report(report, f"Test results ({task.name}, {run.path})")


def summary(run_dir: Path) -> None:
    """The model's Keras-style table, the run's settings and its final metrics."""
    from rich.table import Table

    run, config, model, _ = load_trained(run_dir)
    out = console()
    model.summary(print_fn=lambda text, *args, **kwargs: out.print(text, markup=False))
    settings = Table(title=f"Run {run.path}", title_justify="left", show_header=False)
    settings.add_column("option")
    settings.add_column("value")
    for key, value in config.to_dict().items():
        if value not in (None, [], {}) and key not in ("format", "version", "data_digests"):
            settings.add_row(key, str(value))
    out.print(settings)
    if run.metrics.is_file():
        from .run_state import read_metrics

        metrics = read_metrics(run)
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        table = Table(title="Final metrics (metrics.json)", title_justify="left",
                      show_header=False)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in shown.items():
            table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
        out.print(table)


def predict(run_dir: Path, csv_path: Path | None, npy_path: Path | None, output: Path | None,
            all_windows: bool, device: str | None = None) -> None:
    """Forecasts or classes for new data: CSV on stdout or into ``output``."""
    from .predict import predict_rows, to_csv

    _, config, model, preprocessing = load_trained(run_dir, device)
    header, rows = predict_rows(config, model, preprocessing, csv_path, npy_path, all_windows)
    text = to_csv(header, rows)
    if output is None:
        sys.stdout.write(text)
    else:
        _io.write_text(output, text)
        say(f"Wrote {len(rows)} row(s) to {output}")


def generate(run_dir: Path, prime: str, length: int, temperature: float, seed: int | None,
             output: Path | None, device: str | None = None) -> None:
    """Text sampled from a ``--task text`` run, starting with ``prime``."""
    from ..data import Vocabulary
    from .generate import sample_text

    _, config, model, preprocessing = load_trained(run_dir, device)
    if preprocessing.get("task") != "text":
        raise ValueError(f"{run_dir} is a {preprocessing.get('task')} run: generate needs a run "
                         "trained with --task text")
    vocabulary = Vocabulary.from_dict(preprocessing["vocabulary"])
    text = sample_text(model, vocabulary, prime, length, temperature,
                       window=int(preprocessing["window"]), seed=seed)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        _io.write_text(output, text)
        say(f"Wrote {len(text)} characters to {output}")


def bench(args: list[str]) -> Any:
    """Run the project's benchmark (:mod:`rnnkit.bench.speed`), passing ``args`` on."""
    from ..bench import speed

    return speed.main(args)
