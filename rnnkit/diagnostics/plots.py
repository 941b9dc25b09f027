"""PNG pictures of a trace: gradient norm vs time step, hidden activations over time, and
saturation over training.

Drawn with matplotlib's object API (``Figure`` rendered by the Agg canvas: no pyplot, no
window, safe on servers and in tests) and written atomically. matplotlib is imported when a
plot is drawn.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._io import atomic_write
from ._trace import LayerTrace

__all__ = ["gradient_flow_plot", "hidden_states_plot", "saturation_history_plot"]

PathLike = str | os.PathLike[str]


def figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` (constrained layout, 100 dpi)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("rnnkit.diagnostics plots need matplotlib: pip install matplotlib")\
            from e
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save(fig: Any, path: PathLike) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (its folder is created)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write(str(path), buffer.getvalue())


def draw_gradient_flow(axis: Any, flows: Mapping[str, np.ndarray]) -> None:
    """``||dL/dh_t||`` against t on a log scale, one line per entry of ``flows``."""
    for label, norms in flows.items():
        norms = np.asarray(norms, dtype=np.float64)
        shown = np.where(norms > 0, norms, np.nan)  # log scale: zeros are left out
        axis.plot(np.arange(norms.size), shown, label=label, linewidth=1.6)
    axis.set_yscale("log")
    axis.set_xlabel("time step t")
    axis.set_ylabel("||dLoss/dh_t||")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)


def gradient_flow_plot(flows: Mapping[str, np.ndarray], path: PathLike,
                       title: str = "Gradient flow through time") -> None:
    """Write the gradient norm per time step (log scale) of each layer to ``path`` (PNG).

    ``flows`` is :meth:`Trace.gradient_flow`'s ``{label: norms (T,)}``. A line that drops by
    orders of magnitude towards t=0 is a vanishing gradient.
    """
    if not flows:
        raise ValueError("gradient_flow_plot needs at least one layer's gradient norms")
    fig = figure(6.4, 3.8)
    draw_gradient_flow(fig.add_subplot(1, 1, 1), flows)
    fig.suptitle(title)
    save(fig, path)


def hidden_states_plot(layer: LayerTrace, path: PathLike, sample: int = 0,
                       title: str | None = None) -> None:
    """Heat maps over (time, unit) of one sequence: the hidden state ``h_t`` and, when the trace
    has gradients, ``log10 |dL/dh_t|``. Masked steps are blank."""
    batch = layer.h.shape[0]
    if not 0 <= sample < batch:
        raise ValueError(f"sample must be in [0, {batch}), got {sample}")
    h = layer.h[sample].astype(np.float64).T  # (U, T)
    keep = None if layer.mask is None else layer.mask[sample]
    if keep is not None:
        h = np.where(keep[None, :], h, np.nan)
    panels = 2 if layer.grad_h is not None else 1
    fig = figure(7.0, 2.2 + 1.6 * panels)
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    bound = max(1.0, float(np.nanmax(np.abs(h)))) if np.isfinite(h).any() else 1.0
    image = axes[0].imshow(h, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound,
                           interpolation="nearest")
    axes[0].set_ylabel("unit")
    axes[0].set_title("hidden state h_t")
    fig.colorbar(image, ax=axes[0])
    if layer.grad_h is not None:
        grad = np.abs(layer.grad_h[sample].astype(np.float64)).T
        with np.errstate(divide="ignore"):
            logs = np.where(grad > 0, np.log10(np.where(grad > 0, grad, 1.0)), np.nan)
        if keep is not None:
            logs = np.where(keep[None, :], logs, np.nan)
        image = axes[1].imshow(logs, aspect="auto", cmap="viridis", interpolation="nearest")
        axes[1].set_ylabel("unit")
        axes[1].set_title("log10 |dLoss/dh_t|")
        fig.colorbar(image, ax=axes[1])
    axes[-1].set_xlabel("time step t")
    fig.suptitle(title or f"{layer.label} ({layer.cell}), sequence {sample}")
    save(fig, path)


def saturation_history_plot(history: Sequence[Mapping[str, Any]], path: PathLike,
                            title: str = "Saturation over training") -> None:
    """Saturation over training from :class:`DiagnosticsCallback`'s records: the mean fraction
    of saturated hidden units and gates per layer (left), and the gradient's far/near ratio
    (right, log scale)."""
    if not history:
        raise ValueError("saturation_history_plot needs at least one record")
    epochs = [record["epoch"] for record in history]
    labels = list(history[-1]["layers"])
    fig = figure(10.0, 3.8)
    left, right = fig.subplots(1, 2)
    for label in labels:
        def series(key: str, gate: str | None = None) -> list[float]:
            out = []
            for record in history:
                entry = record["layers"].get(label, {})
                value = entry.get(key) if gate is None else entry.get(key, {}).get(gate)
                out.append(np.nan if value is None else value)
            return out

        left.plot(epochs, series("saturation"), marker="o", markersize=3, label=f"{label}: |h|")
        for gate in history[-1]["layers"][label].get("gate_saturation", {}):
            left.plot(epochs, series("gate_saturation", gate), marker=".", linestyle="--",
                      label=f"{label}: gate {gate}")
        ratios = np.asarray(series("gradient_ratio"), dtype=np.float64)
        right.plot(epochs, np.where(ratios > 0, ratios, np.nan), marker="o", markersize=3,
                   label=label)
    left.set_xlabel("epoch")
    left.set_ylabel("fraction saturated")
    left.set_ylim(-0.02, 1.02)
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    right.set_yscale("log")
    right.set_xlabel("epoch")
    right.set_ylabel("||dL/dh_first|| / ||dL/dh_last||")
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=7)
    fig.suptitle(title)
    save(fig, path)
