"""Why GRU and LSTM replaced the simple RNN, measured: the adding problem with the same budget.

The adding problem (:func:`rnnkit.data.adding_problem`): each sequence of ``length`` steps
carries random numbers and two markers, one in the first half; the target is the sum of the
two marked numbers. Predicting the mean gives a mean squared error of about 1/6 (0.167), so a
model that stays there has not learned to carry the first number across the sequence.

SimpleRNN, GRU and LSTM with the same units, data, optimizer, batch size and epochs are trained
in turn; for each, the gradient flow ``||dL/dh_t||`` is traced (exactly, see
:func:`rnnkit.diagnostics.trace`) at initialisation and after training. Run it with::

    python -m rnnkit.diagnostics.demo --length 50 --out diagnostics-demo
    rnnkit diagnose --demo --length 50 --out diagnostics-demo

It writes ``demo.png`` (validation MSE per epoch, and the gradient flows), per model a heat
map of its hidden states and its saturation over training, and ``results.md`` / ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from ._callback import DiagnosticsCallback
from ._reading import explain, gradient_ratio
from ._spectra import recurrent_matrices
from ._trace import trace
from .plots import (
    draw_gradient_flow,
    figure,
    hidden_states_plot,
    saturation_history_plot,
    save,
)

__all__ = ["DemoResult", "main", "run_demo"]

CELLS = ("SimpleRNN", "GRU", "LSTM")
BASELINE_MSE = 1.0 / 6.0  # predicting the mean, 1.0, of a sum of two U(0, 1) numbers
TOLERANCE = 0.1  # a prediction within 0.1 of the sum counts as correct


@dataclass
class DemoResult:
    """One model's outcome: validation MSE per epoch, the final accuracy (share of validation
    sums predicted within 0.1), the gradient flows at initialisation and after training, the
    far/near gradient ratios, the plain-language reading and the training time."""

    cell: str
    val_mse: list[float]
    accuracy: float
    flow_initial: list[float]
    flow_trained: list[float]
    ratio_initial: float
    ratio_trained: float
    reading: list[str]
    seconds: float
    parameters: int
    saturation: list[dict[str, Any]] = field(default_factory=list)


def run_demo(
    length: int = 50,
    units: int = 32,
    epochs: int = 12,
    samples: int = 5000,
    batch_size: int = 64,
    learning_rate: float = 5e-3,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    cells: Sequence[str] = CELLS,
    log: Callable[[str], None] | None = print,
    threads: int | None = 1,
) -> list[DemoResult]:
    """Train ``cells`` on the adding problem of ``length`` steps with the same budget; trace
    each; with ``out``, write the plots and tables there. Returns one :class:`DemoResult` per
    cell. The defaults run in about a minute on two CPU cores. ``threads``: torch's intra-op
    threads while it runs (models this small run fastest on one; None keeps torch's setting).
    """
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_demo(length, units, epochs, samples, batch_size, learning_rate, seed, out,
                         cells, log)
    finally:
        torch.set_num_threads(previous)


def _run_demo(length: int, units: int, epochs: int, samples: int, batch_size: int,
              learning_rate: float, seed: int, out: str | os.PathLike[str] | None,
              cells: Sequence[str], log: Callable[[str], None] | None) -> list[DemoResult]:
    import torch

    from .. import layers, optimizers
    from ..data import adding_problem
    from ..models import Sequential

    unknown = [c for c in cells if c not in CELLS]
    if unknown or not cells:
        raise ValueError(f"cells must be some of {CELLS}, got {list(cells)}")
    for name, value in (("length", length), ("units", units), ("epochs", epochs),
                        ("samples", samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name ==
                                                                              "length" else 1):
            raise ValueError(f"{name} must be an integer >= {2 if name == 'length' else 1}, "
                             f"got {value!r}")
    x, y = adding_problem(samples, length, seed=seed)
    x_val, y_val = adding_problem(1000, length, seed=seed + 1)
    probe_x, probe_y = x_val[:64], y_val[:64]
    directory = None if out is None else Path(out)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)

    results: list[DemoResult] = []
    for cell in cells:
        torch.manual_seed(seed)
        model = Sequential([getattr(layers, cell)(units, input_shape=(length, 2)),
                            layers.Dense(1)])
        model.compile(optimizer=optimizers.Adam(learning_rate=learning_rate), loss="mse")
        initial = trace(model, probe_x, probe_y)
        history_path = None if directory is None else directory / f"{cell.lower()}_history.json"
        callback = DiagnosticsCallback(probe_x, probe_y, every=max(1, epochs // 6),
                                       path=history_path)
        start = time.perf_counter()
        history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
                            validation_data=(x_val, y_val), callbacks=[callback])
        seconds = time.perf_counter() - start
        predicted = np.asarray(model.predict(x_val, verbose=0)).reshape(-1)
        trained = trace(model, probe_x, probe_y)
        layer_initial, layer_trained = initial.layers[0], trained.layers[0]
        result = DemoResult(
            cell=cell,
            val_mse=[float(v) for v in history.history["val_loss"]],
            accuracy=float(np.mean(np.abs(predicted - y_val) < TOLERANCE)),
            flow_initial=[float(v) for v in layer_initial.grad_norm()],
            flow_trained=[float(v) for v in layer_trained.grad_norm()],
            ratio_initial=gradient_ratio(layer_initial),
            ratio_trained=gradient_ratio(layer_trained),
            reading=explain(trained, recurrent_matrices(model)),
            seconds=seconds,
            parameters=model.count_params(),
            saturation=callback.history,
        )
        results.append(result)
        if log is not None:
            log(f"{cell:9s} val MSE {result.val_mse[-1]:.4f}  accuracy {result.accuracy:.1%}  "
                f"gradient t=0 / t={length - 1}: {result.ratio_initial:.1e} at init, "
                f"{result.ratio_trained:.1e} trained  ({seconds:.0f} s)")
        if directory is not None:
            hidden_states_plot(layer_trained, directory / f"{cell.lower()}_hidden_states.png",
                               title=f"{cell} after training: one sequence of the adding "
                                     "problem")
            saturation_history_plot(callback.history, directory / f"{cell.lower()}_saturation.png",
                                    title=f"{cell}: saturation over training")
    if directory is not None:
        demo_plot(results, length, directory / "demo.png")
        table = results_table(results, length)
        atomic_write(str(directory / "results.md"), table.encode("utf-8"))
        records = [{k: v for k, v in asdict(r).items() if k != "saturation"} for r in results]
        atomic_write(str(directory / "results.json"),
                     (json.dumps(records, indent=1) + "\n").encode("utf-8"))
    return results


def results_table(results: Sequence[DemoResult], length: int) -> str:
    """The results as a Markdown table."""
    rows = [f"Adding problem, {length} steps (predicting the mean: MSE {BASELINE_MSE:.3f}); "
            "the same units, data, optimizer and epochs for every model.", "",
            "| model | parameters | validation MSE | accuracy (within 0.1) | "
            "gradient t=0 / t=T-1 at init | trained | time |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r.cell} | {r.parameters} | {r.val_mse[-1]:.4f} | {r.accuracy:.1%} | "
                    f"{r.ratio_initial:.1e} | {r.ratio_trained:.1e} | {r.seconds:.0f} s |")
    return "\n".join(rows) + "\n"


def demo_plot(results: Sequence[DemoResult], length: int, path: str | os.PathLike[str]) -> None:
    """Left: validation MSE per epoch against the predict-the-mean baseline. Right: the
    gradient flow of each model at initialisation (dotted) and after training (solid)."""
    fig = figure(11.0, 4.0)
    left, right = fig.subplots(1, 2)
    colors = {"SimpleRNN": "tab:red", "GRU": "tab:blue", "LSTM": "tab:green"}
    for r in results:
        epochs = np.arange(1, len(r.val_mse) + 1)
        left.plot(epochs, r.val_mse, marker="o", markersize=3, color=colors.get(r.cell),
                  label=f"{r.cell} (accuracy {r.accuracy:.1%})")  # as in results_table
    left.axhline(BASELINE_MSE, color="gray", linestyle=":", label="predict the mean")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("validation MSE")
    left.set_title(f"Adding problem, {length} steps: same budget")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    draw_gradient_flow(right, {f"{r.cell} trained": np.asarray(r.flow_trained) for r in results})
    for line, r in zip(right.get_lines(), results):
        line.set_color(colors.get(r.cell))
    for r in results:
        initial = np.asarray(r.flow_initial)
        right.plot(np.arange(initial.size), np.where(initial > 0, initial, np.nan),
                   linestyle=":", color=colors.get(r.cell), label=f"{r.cell} at init")
    right.legend(fontsize=7, ncol=2)
    right.set_title("Gradient reaching each step, ||dLoss/dh_t||")
    save(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnkit.diagnostics.demo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=50, help="steps per sequence (50)")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="diagnostics-demo", help="folder for plots and tables")
    args = parser.parse_args(argv)
    results = run_demo(length=args.length, units=args.units, epochs=args.epochs,
                       samples=args.samples, seed=args.seed, out=args.out)
    print()
    print(results_table(results, args.length))
    for r in results:
        for line in r.reading:
            print(f"{r.cell}: {line}")
    print(f"Plots and tables in {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
