"""``rnnkit diagnose RUN_DIR``: gradient flow, saturation and a plain-language reading of a run.

The run's saved model is traced (:func:`rnnkit.diagnostics.trace`) on a batch of its own
validation data with its own loss. Written into RUN_DIR::

    gradient_flow.png       ||dLoss/dh_t|| per time step, log scale, every recurrent layer
    hidden_states.png       heat maps of the first recurrent layer's h_t and |dLoss/dh_t|
    diagnostics.json        the numbers behind them (summarize(): norms, saturation, spectra)
    saturation_history.png  only when RUN_DIR/diagnostics_history.json exists (written by
                            a DiagnosticsCallback(path=...) during training)

``rnnkit diagnose --demo`` runs :mod:`rnnkit.diagnostics.demo` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._common import console, load_trained, say, seed_everything
from .. import _io
from .fields import check_int, read_fields
from .run_dir import RunDirError

__all__ = ["HISTORY_FILE", "diagnose", "demo"]

HISTORY_FILE = "diagnostics_history.json"
WRITES = ("gradient_flow.png", "hidden_states.png", "diagnostics.json", "saturation_history.png")
# Everything ``diagnose --demo`` writes into its --out folder (rnnkit.diagnostics.demo's files
# and reading.txt); a folder holding anything else is refused.
_DEMO_FILE = re.compile(r"(demo\.png|results\.(md|json)|reading\.txt|"
                        r"(simplernn|gru|lstm)_(history\.json|hidden_states\.png|saturation\.png))"
                        r"|\..*\.tmp")


def diagnose(run_dir: Path, samples: int = 64, device: str | None = None) -> list[str]:
    """Write the diagnostic plots of a trained run and print its reading; returns the lines."""
    from ..diagnostics import (
        explain,
        gradient_flow_plot,
        hidden_states_plot,
        recurrent_matrices,
        saturation_history_plot,
        summarize,
        trace,
    )
    from .tasks import TASKS

    if samples < 1:
        raise ValueError(f"--samples must be at least 1, got {samples}")
    run, config, model, _ = load_trained(run_dir, device)
    history_path = run.path / HISTORY_FILE
    # before writing: --overwrite then knows these are rnnkit's
    run.track(*WRITES[:3], *(WRITES[3:] if history_path.is_file() else ()))
    seed_everything(config.seed)
    task = TASKS[config.task]
    data = task.prepare(config)
    model.compile(**task.compile_args(config, data))
    x, y = data.x_val, data.y_val
    if len(y) == 0:
        x, y = data.x_test, data.y_test
    # a model with several inputs (translate: source and target) takes a list of arrays
    x = [part[:samples] for part in x] if isinstance(x, list) else x[:samples]
    y = y[:samples]
    result = trace(model, x, y)
    matrices = recurrent_matrices(model)
    gradient_flow_plot(result.gradient_flow(), run.plot("gradient_flow"),
                       title=f"Gradient flow through time ({run.path.name})")
    hidden_states_plot(result.layers[0], run.plot("hidden_states"))
    run.write_json(run.path / "diagnostics.json", summarize(result, model))
    written = [run.plot("gradient_flow"), run.plot("hidden_states"), run.path / "diagnostics.json"]
    if history_path.is_file():
        history = read_history(run.read_json(history_path), str(history_path))
        saturation_history_plot(history, run.plot("saturation_history"))
        written.append(run.plot("saturation_history"))
    lines = explain(result, matrices)
    out = console()
    out.print(f"Diagnosis of {run.path} ({len(y)} validation sequences of "
              f"{result.layers[0].steps} steps, loss {result.loss:.4g}):", markup=False)
    for line in lines:
        out.print(f"  - {line}", markup=False)
    say("Wrote " + ", ".join(str(p) for p in written))
    return lines


@dataclass
class HistoryRecord:
    """One record of ``diagnostics_history.json`` (a :class:`DiagnosticsCallback`'s history):
    the fields the saturation plot reads are checked; the rest is shown as it is."""

    epoch: int
    loss: float | None
    layers: dict[str, dict[str, Any]]  # "matrices" (with a model) is not read back

    def __post_init__(self) -> None:
        check_int("epoch", self.epoch, 0)
        for label, entry in self.layers.items():
            numbers = {"saturation": entry.get("saturation"),
                       "gradient_ratio": entry.get("gradient_ratio"),
                       **{f"gate_saturation.{gate}": value
                          for gate, value in _items(entry.get("gate_saturation", {}))}}
            if not isinstance(entry.get("gate_saturation", {}), dict):
                raise ValueError(f"'layers.{label}.gate_saturation' must be an object, got "
                                 f"{entry['gate_saturation']!r}")
            for name, value in numbers.items():
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, (int, float))):
                    raise ValueError(f"'layers.{label}.{name}' must be a number or null, got "
                                     f"{value!r}")


def _items(value: Any) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def read_history(data: Any, source: str) -> list[dict[str, Any]]:
    """``diagnostics_history.json`` checked record by record (one error naming the record and
    the field)."""
    if not isinstance(data, list) or not data:
        raise RunDirError(f"{source} holds no diagnostics records (a list of them)")
    for number, record in enumerate(data, 1):
        try:
            read_fields(HistoryRecord, record, f"{source} record {number}", skip=("matrices",))
        except ValueError as e:
            raise RunDirError(str(e)) from None
    return data


def demo(length: int, epochs: int, out: Path | None) -> None:
    """SimpleRNN vs GRU vs LSTM on the adding problem (see rnnkit.diagnostics.demo)."""
    from ..diagnostics.demo import results_table, run_demo

    target = out or Path("diagnostics-demo")
    check_demo_folder(target)
    results = run_demo(length=length, epochs=epochs, out=target, log=say)
    out_console = console()
    out_console.print(results_table(results, length), markup=False)
    for result in results:
        for line in result.reading:
            out_console.print(f"{result.cell}: {line}", markup=False)
    say(f"Plots and tables in {target}")
    _io.write_text(target / "reading.txt", "\n".join(
        f"{r.cell}: {line}" for r in results for line in r.reading) + "\n", parents=True)


def check_demo_folder(target: Path) -> None:
    """Refuse an --out folder the demo would overwrite files in: anything but an absent or
    empty folder, or one that holds a previous demo's output and nothing else."""
    if target.exists() and not target.is_dir():
        raise ValueError(f"--out {target} exists and is not a folder")
    if not target.is_dir():
        return
    names = sorted(p.name for p in target.iterdir())
    if not names:
        return
    other = [n for n in names if not _DEMO_FILE.fullmatch(n)]
    if other or "results.json" not in names:
        shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "") if other else (
            ", ".join(names[:5]))
        raise ValueError(f"--out {target} already holds files ({shown}) that are not a "
                         "previous demo's output: the demo would overwrite files there; "
                         "choose a new or empty folder")
