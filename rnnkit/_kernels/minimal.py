"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201): gates
from the input only, so the recurrence is linear in the state and a whole sequence is one
parallel scan.

The formulation is the paper's log-space one (Section 3.1.3 and 3.2.3, "minGRU/minLSTM",
and Appendix B.3, the log-space versions; the same as lucidrains' ``minGRU-pytorch``), with the
candidate state kept positive by ``g``::

    g(x) = x + 0.5 if x >= 0 else sigmoid(x)

    minGRU (projection k = x W + b, blocks k_z, k_h; G = 2):
        z_t  = sigmoid(k_z)
        h_t  = (1 - z_t) * h_{t-1} + z_t * g(k_h)

    minLSTM (blocks k_f, k_i, k_h; G = 3):
        f_t, i_t = sigmoid(k_f), sigmoid(k_i)
        f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)
        h_t  = f'_t * h_{t-1} + i'_t * g(k_h)

Both are ``h_t = a_t * h_{t-1} + b_t``. Training runs the scan over time in log space
(Heinsen's form, as in the paper): with ``A_t = sum_{s<=t} log a_s``,
``h_t = exp(A_t) * h_0 + exp(A_t + logcumsumexp_t(log b_s - A_s))``; the initial state enters
linearly (the paper takes its log, which needs h_0 > 0; here any h_0 works). ``log a`` and
``log b`` are formed with softplus, never by taking the log of a sigmoid: ``log z =
-softplus(-k_z)``, ``log (1 - z) = -softplus(k_z)``; for minLSTM with ``d = softplus(-k_f) -
softplus(-k_i)``, ``log f' = -softplus(d)``, ``log i' = -softplus(-d)``. :func:`min_step` is
one step in the plain form above, for inference and streaming.

``mask`` (T, B) False holds the state (``a = 1``, ``b = 0``); ``reverse`` runs from the end.
Weights are torch-style: ``w`` (G*H, D), ``b`` (G*H,), blocks in the orders above.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GATES", "min_log_coefficients", "min_scan", "min_step", "min_sequence"]

GATES = {"mingru": 2, "minlstm": 3}


def g(x: Tensor) -> Tensor:
    """The paper's positive candidate activation: x + 0.5 for x >= 0, sigmoid(x) below."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), without the log of a sigmoid: log(relu(x) + 0.5) or -softplus(-x)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def _check(cell: str) -> int:
    if cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
    return GATES[cell]


def min_log_coefficients(cell: str, k: Tensor) -> tuple[Tensor, Tensor]:
    """(log a, log b) of ``h_t = a_t h_{t-1} + b_t`` from the projection k (..., G*H)."""
    blocks = k.chunk(_check(cell), dim=-1)
    if cell == "mingru":
        k_z, k_h = blocks
        return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)
    k_f, k_i, k_h = blocks
    d = F.softplus(-k_f) - F.softplus(-k_i)
    return -F.softplus(d), -F.softplus(-d) + log_g(k_h)


def min_scan(log_a: Tensor, log_b: Tensor, h0: Tensor | None = None,
             mask: Tensor | None = None, reverse: bool = False) -> Tensor:
    """Every state of ``h_t = a_t h_{t-1} + b_t`` (T, B, H) in time order, from log a, log b
    (T, B, H), h0 (B, H) or None (zeros) and mask (T, B) (False: the state is held)."""
    if reverse:
        log_a, log_b = log_a.flip(0), log_b.flip(0)
        mask = None if mask is None else mask.flip(0)
    if mask is not None:
        keep = mask.unsqueeze(-1)  # (T, B, 1)
        log_a = torch.where(keep, log_a, torch.zeros_like(log_a))
        # b = 0 at held steps, as a very negative finite log: an infinite one would give
        # NaN gradients through logcumsumexp while no real step has been seen yet
        nothing = torch.finfo(log_b.dtype).min / 4
        log_b = torch.where(keep, log_b, torch.full_like(log_b, nothing))
    a_star = log_a.cumsum(0)  # (T, B, H)
    h = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=0))
    if h0 is not None:
        h = h + torch.exp(a_star) * h0
    return h.flip(0) if reverse else h


def min_sequence(cell: str, x: Tensor, w: Tensor, b: Tensor | None, h0: Tensor | None = None,
                 mask: Tensor | None = None, reverse: bool = False) -> tuple[Tensor, Tensor]:
    """The cell over time-major x (T, B, D): (every state (T, B, H) in time order, held at
    masked steps, and the final state (B, H)), by the parallel scan."""
    log_a, log_b = min_log_coefficients(cell, F.linear(x, w, b))
    h = min_scan(log_a, log_b, h0, mask, reverse)
    return h, (h[0] if reverse else h[-1])


def min_step(cell: str, x: Tensor, h: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """One step in the plain (not log-space) form of the module docstring: x (B, D), h (B, H)."""
    blocks = F.linear(x, w, b).chunk(_check(cell), dim=-1)
    if cell == "mingru":
        z = torch.sigmoid(blocks[0])
        return (1 - z) * h + z * g(blocks[1])
    f, i = torch.sigmoid(blocks[0]), torch.sigmoid(blocks[1])
    return (f * h + i * g(blocks[2])) / (f + i)
