"""The PNG plots a run writes: learning curves, forecast vs actual, confusion matrix.

Figures are made with matplotlib's object API (``matplotlib.figure.Figure`` rendered by the
Agg canvas): no pyplot, no global backend switch, no window, safe in tests and on servers.
matplotlib is imported when a plot is drawn, so the rest of the CLI works without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _io

__all__ = ["confusion_matrix_plot", "forecast_plot", "learning_curves_plot"]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install matplotlib "
                          "(or pip install 'rnnkit[cli]')") from e
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure: Any, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    _io.atomic_write(path, buffer.getvalue(), parents=True)


def learning_curves_plot(history: Mapping[str, Sequence[float]], path: Path,
                         title: str = "Learning curves") -> None:
    """Loss (left) and the first other metric (right) per epoch, training and validation."""
    metrics = [k for k in history if not k.startswith("val_") and k != "loss"
               and k != "learning_rate"]
    panels = ["loss", *metrics[:1]]
    figure = _figure(5.0 * len(panels), 3.6)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, name in zip(axes, panels):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            values = history.get(key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                axis.plot(epochs, values, style, marker="o", markersize=3,
                          label="validation" if key.startswith("val_") else "training")
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    _save(figure, path)


def forecast_plot(actual: ArrayLike, predicted: ArrayLike, path: Path, *,
                  times: ArrayLike | None = None, history_times: ArrayLike | None = None,
                  history: ArrayLike | None = None, baseline: ArrayLike | None = None,
                  baseline_label: str = "naive", target: str = "value", unit: str = "",
                  title: str = "Forecast vs actual (test split)") -> None:
    """The test split's actual values against the model's forecasts.

    The y axis is labelled ``target`` and, when known, its ``unit``: ``co2 (ppm)``.

    ``actual``/``predicted``/``baseline`` are (N,) at ``times`` (dates or step numbers);
    ``history`` (with ``history_times``) draws the end of the series before the test split in
    grey for context.
    """
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    x = np.arange(len(actual)) if times is None else np.asarray(times)
    figure = _figure(9.0, 4.0)
    axis = figure.subplots()
    if history is not None and history_times is not None:
        axis.plot(np.asarray(history_times), np.asarray(history), color="0.6", lw=1,
                  label="before the test split")
    axis.plot(x, actual, color="black", lw=1.5, label="actual")
    if baseline is not None:
        axis.plot(x, np.asarray(baseline), color="tab:orange", lw=1, ls=":", label=baseline_label)
    axis.plot(x, predicted, color="tab:blue", lw=1.5, ls="--", label="rnnkit forecast")
    axis.set_ylabel(f"{target} ({unit})" if unit else target)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    _save(figure, path)


def confusion_matrix_plot(matrix: ArrayLike, labels: Sequence[str], path: Path,
                          title: str = "Confusion matrix (test split)") -> None:
    """``matrix[i, j]`` = test samples of true class i predicted as class j, with the counts."""
    matrix = np.asarray(matrix)
    n = len(labels)
    size = min(3.0 + 0.45 * n, 14.0)
    figure = _figure(size + 1.0, size)
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, shrink=0.8)
    axis.set_xticks(range(n), labels=list(labels), rotation=45 if n > 10 else 0)
    axis.set_yticks(range(n), labels=list(labels))
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if n <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                axis.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                          color="white" if matrix[i, j] > threshold else "black")
    axis.set_title(title)
    _save(figure, path)
