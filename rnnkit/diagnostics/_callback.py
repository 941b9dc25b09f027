"""A fit callback that traces the model on a fixed batch every N epochs (and before training)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from ..training.callbacks import Callback, Logs
from .._io import atomic_write
from ._reading import gradient_ratio
from ._spectra import recurrent_matrices
from ._trace import Trace, trace

__all__ = ["DiagnosticsCallback", "summarize"]


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def summarize(result: Trace, model: Any = None) -> dict[str, Any]:
    """A JSON-ready summary of a trace: per layer label, the gradient norms per step, the
    far/near gradient ratio, the mean |h|, the mean fraction of saturated units and gates; with
    ``model``, the spectral numbers of its recurrent matrices."""
    layers: dict[str, Any] = {}
    for layer in result.layers:
        entry: dict[str, Any] = {
            "cell": layer.cell,
            "mean_abs": _mean(layer.mean_abs()),
            "saturation": _mean(layer.saturation()),
            "gate_saturation": {g: _mean(v) for g, v in layer.gate_saturation().items()},
        }
        if layer.grad_h is not None:
            entry["grad_norm"] = [float(v) for v in layer.grad_norm()]
            entry["gradient_ratio"] = _number(gradient_ratio(layer))
        layers[layer.label] = entry
    summary: dict[str, Any] = {"loss": result.loss, "layers": layers}
    if model is not None:
        summary["matrices"] = [
            {"layer": m.layer, "cell": m.cell, "gate": m.gate,
             "spectral_radius": _number(m.spectral_radius),
             "largest_singular_value": _number(m.largest_singular_value)}
            for m in recurrent_matrices(model)]
    return summary


class DiagnosticsCallback(Callback):
    """Record gradient flow, saturation and spectral numbers during ``fit``.

    At the start of training (epoch 0) and after every ``every``-th epoch, the model is traced
    on the fixed batch ``(x, y)`` (see :func:`trace`) and :func:`summarize`'s record, with
    ``"epoch"`` added, is appended to :attr:`history`. With ``path`` the whole history is
    (re)written there as JSON after each record, so ``rnnkit diagnose`` can plot saturation over
    training (:func:`saturation_history_plot`).

    Args:
        x, y: the batch to trace (a few dozen sequences are enough; every step is kept).
        every: trace every this many epochs (>= 1).
        loss: the loss to differentiate; default the model's compiled loss.
        path: optional JSON file for the history.

    Example::

        >>> import numpy as np, rnnkit as rk
        >>> x, y = np.random.rand(16, 10, 1), np.random.rand(16, 1)
        >>> model = rk.Sequential([rk.layers.SimpleRNN(4, input_shape=(10, 1)), rk.layers.Dense(1)])
        >>> model.compile(optimizer="adam", loss="mse")
        >>> callback = DiagnosticsCallback(x[:4], y[:4], every=2)
        >>> _ = model.fit(x, y, epochs=4, verbose=0, callbacks=[callback])
        >>> [record["epoch"] for record in callback.history]
        [0, 2, 4]
    """

    def __init__(self, x: Any, y: Any, every: int = 1, loss: Any = None,
                 path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer (epochs), got {every!r}")
        if x is None or y is None:
            raise ValueError("DiagnosticsCallback needs a batch: x and y (targets for the loss)")
        self.x, self.y, self.every, self.loss = x, y, every, loss
        self.path = None if path is None else os.fspath(path)
        self.history: list[dict[str, Any]] = []

    def _record(self, epoch: int) -> None:
        result = trace(self.model, self.x, self.y, loss=self.loss)
        self.history.append({"epoch": epoch, **summarize(result, self.model)})
        if self.path is not None:
            text = json.dumps(self.history, indent=1) + "\n"
            atomic_write(self.path, text.encode("utf-8"))

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.history = []
        self._record(0)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if (epoch + 1) % self.every == 0:
            self._record(epoch + 1)
