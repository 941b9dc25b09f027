"""The plain path: step a cell in a Python loop and let autograd differentiate it.

This is the ground truth the compiled kernels and the composite implementation are tested
against (``backend="loop"``), and the time loop of the cells and cases that have no operator of
their own (``rnnkit.nn``'s LSTM variants and scan cells, for instance). Keras-style layers over
a user's cell run their own loop or capture the cell's step (:mod:`rnnkit.layers.rnn`,
:mod:`rnnkit._kernels.capture`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

State = tuple[Tensor, ...]


def scan(
    step: Callable[[Tensor, State], State],
    x: Tensor,
    state: State,
    mask: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, State]:
    """Run ``state = step(x[t], state)`` over time and stack ``state[0]`` of every step.

    x: (T, B, D) time-major. mask: (T, B) bool; where it is False the whole state is held,
    so a sequence's state stops changing after its last real step and a reverse pass starts
    at each sequence's own last real step. Returns (outputs (T, B, H), final state).
    """
    steps: Sequence[int] = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outputs: list[Tensor] = [x.new_empty(0)] * x.shape[0]
    for t in steps:
        new = step(x[t], state)
        if mask is not None:
            keep = mask[t].unsqueeze(-1)  # (B, 1)
            new = tuple(torch.where(keep, n, s) for n, s in zip(new, state))
        state = new
        outputs[t] = state[0]
    return torch.stack(outputs), state
