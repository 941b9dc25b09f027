"""One time step of each recurrence, in PyTorch's weight layout.

These are the equations, written once. The looped reference path, the ``rnnkit.nn`` cells and
the tests all call them. Weights follow ``torch.nn``: ``w_ih`` is ``(gates*H, D)``, ``w_hh`` is
``(gates*H, H)``; GRU gates are ordered ``r, z, n`` and LSTM gates ``i, f, g, o``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return torch.nn.functional.linear(x, w, b)


def elman_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> Tensor:
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    pre = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """PyTorch's GRU: the reset gate multiplies the recurrent projection *after* its bias.

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
    """
    gi = _linear(x, w_ih, b_ih)  # (B, 3H)
    gh = _linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n)


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (W_i x + b_i + W_h h + b_h);
    c' = f * c + i * g;  h' = o * tanh(c')."""
    gates = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    g = torch.tanh(g)
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new
