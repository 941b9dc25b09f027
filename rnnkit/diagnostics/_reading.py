"""A short plain-language reading of a trace: does the gradient reach the early steps, are the
units saturated, are the gates stuck, do the recurrent matrices force vanishing?"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._spectra import RecurrentMatrix
from ._trace import LayerTrace, Trace

__all__ = ["explain", "gradient_ratio"]

VANISHED = 1e-4   # far/near gradient ratio below which the far end gets no usable signal
WEAK = 1e-2
EXPLODING = 1e2
SATURATED = 0.5   # mean fraction of saturated units that deserves a sentence


def _far_near(layer: LayerTrace) -> tuple[int, int]:
    """The step processed first (farthest from a loss at the end) and the one processed last."""
    last = layer.steps - 1
    return (last, 0) if layer.direction == "backward" else (0, last)


def gradient_ratio(layer: LayerTrace) -> float:
    """``||dL/dh||`` at the step processed first over that at the step processed last: how
    much of the gradient at the end of the sequence survives the trip back to its start.
    NaN when the last step's gradient is 0."""
    norms = layer.grad_norm()
    far, near = _far_near(layer)
    return float(norms[far] / norms[near]) if norms[near] > 0 else float("nan")


def _steps_reached(layer: LayerTrace, fraction: float = WEAK) -> int:
    """How many steps back from the last processed step the gradient stays above
    ``fraction`` of its largest value."""
    norms = layer.grad_norm()
    order = norms[::-1] if layer.direction == "forward" else norms
    peak = norms.max()
    if peak <= 0:
        return 0
    below = np.nonzero(order < fraction * peak)[0]
    return int(below[0]) if below.size else layer.steps


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def explain(result: Trace, matrices: Sequence[RecurrentMatrix] = ()) -> list[str]:
    """One sentence per finding, in plain language (gradient flow, saturation, gates, matrices).

    Example sentence: ``"simple_rnn: the gradient at t=0 is 3e-07 of the gradient at t=99:
    long-range dependencies cannot be learned; consider GRU/LSTM or a shorter window."``
    """
    lines: list[str] = []
    for layer in result.layers:
        label = layer.label
        if layer.grad_h is not None:
            ratio = gradient_ratio(layer)
            far, near = _far_near(layer)
            head = (f"{label}: the gradient at t={far} is {ratio:.1g} of the gradient at "
                    f"t={near}")
            if math.isnan(ratio):
                lines.append(f"{label}: no gradient reaches the last step (is the layer used "
                             "by the loss?)")
            elif ratio < VANISHED:
                advice = ("GRU/LSTM or a shorter window" if layer.cell == "SimpleRNN"
                          else "a shorter window")
                lines.append(f"{head}: long-range dependencies cannot be learned; consider "
                             f"{advice}.")
            elif ratio < WEAK:
                lines.append(f"{head}: the gradient fades; dependencies longer than about "
                             f"{_steps_reached(layer)} steps will be hard to learn.")
            elif ratio > EXPLODING:
                lines.append(f"{head}: the gradient grows going back in time (exploding); clip "
                             "it (optimizer clipnorm=1.0) or lower the learning rate.")
            else:
                lines.append(f"{head}: the gradient reaches the whole sequence.")
        saturation = _mean(layer.saturation())
        if saturation >= SATURATED:
            lines.append(f"{label}: {saturation:.0%} of the hidden units are saturated "
                         "(|h| > 0.99), where tanh passes almost no gradient; scale the inputs "
                         "or lower the learning rate.")
        for gate, values in layer.gate_saturation().items():
            share = _mean(values)
            if share >= SATURATED:
                lines.append(f"{label}: gate {gate} is within 0.01 of 0 or 1 for {share:.0%} "
                             "of the units and steps (saturated gates learn slowly).")
    for matrix in matrices:
        if matrix.cell not in ("SimpleRNN", "RNN") or math.isnan(matrix.spectral_radius):
            continue  # gated cells: the gates, not R alone, decide the flow
        if matrix.largest_singular_value < 1.0:
            lines.append(f"{matrix.layer}: the recurrent matrix has largest singular value "
                         f"{matrix.largest_singular_value:.2f} < 1, so the gradient shrinks at "
                         "least that much per step (it must vanish over long sequences).")
        elif matrix.spectral_radius > 1.2:
            lines.append(f"{matrix.layer}: the recurrent matrix has spectral radius "
                         f"{matrix.spectral_radius:.2f} > 1: the state can blow up or saturate.")
    return lines
