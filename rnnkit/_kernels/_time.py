"""Time bookkeeping shared by the fused kernels."""

from __future__ import annotations

import torch
from torch import Tensor


def step_order(steps: int, reverse: bool) -> range:
    """The order in which time steps are processed: 0..T-1, or T-1..0 when reversed."""
    return range(steps - 1, -1, -1) if reverse else range(steps)


def previous_states(states: Tensor, initial: Tensor, reverse: bool) -> Tensor:
    """The state each step started from: (T, B, H) from the states after each step.

    Forward: [h0, h_0, ..., h_{T-2}]; reversed: [h_1, ..., h_{T-1}, h0].
    """
    if reverse:
        return torch.cat([states[1:], initial.unsqueeze(0)])
    return torch.cat([initial.unsqueeze(0), states[:-1]])
