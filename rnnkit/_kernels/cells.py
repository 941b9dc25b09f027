"""One time step of each recurrence, in PyTorch's weight layout.

These are the equations, written once. The composite implementation (:mod:`.composite`), the
autograd loop (:func:`rnnkit._kernels.scan`), the ``rnnkit.nn`` cells and the tests all call
them. Weights follow ``torch.nn``: ``w_ih`` is ``(gates*H, D)``, ``w_hh`` is ``(gates*H, H)``;
GRU gates are ordered ``r, z, n`` and LSTM gates ``i, f, g, o``.

Each ``*_step`` takes the input projection ``gi = x W_ih^T + b_ih`` already formed (the
composite implementation forms it for all steps in one product) and also returns what the
backward pass of the compiled kernels keeps (the activated gates); each ``*_cell`` is the step
from ``x`` itself.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return torch.nn.functional.linear(x, w, b)


def elman_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None,
               nonlinearity: str = "tanh") -> Tensor:
    """h' = act(gi + h W_hh^T + b_hh)."""
    pre = gi + _linear(h, w_hh, b_hh)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def gru_step(gi: Tensor, h: Tensor, w_hh: Tensor,
             b_hh: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """PyTorch's GRU: the reset gate multiplies the recurrent projection *after* its bias.

    r = sigmoid(gi_r + W_hr h + b_hr)
    z = sigmoid(gi_z + W_hz h + b_hz)
    n = tanh(gi_n + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

    Returns (h', (r, z, n) as (B, 3H), W_hn h + b_hn).
    """
    gh = _linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n), torch.cat([r, z, n], dim=-1), h_n


def lstm_step(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor,
              b_hh: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gi + W_h h + b_h);
    c' = f * c + i * g;  h' = o * tanh(c'). Returns (h', c', activated gates (B, 4H))."""
    gates = gi + _linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    g = torch.tanh(g)
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new, torch.cat([i, f, g, o], dim=-1)


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
    return elman_step(_linear(x, w_ih, b_ih), h, w_hh, b_hh, nonlinearity)


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """PyTorch's GRU step from x (see :func:`gru_step`)."""
    return gru_step(_linear(x, w_ih, b_ih), h, w_hh, b_hh)[0]


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The LSTM step from x (see :func:`lstm_step`). Returns (h', c')."""
    h_new, c_new, _ = lstm_step(_linear(x, w_ih, b_ih), h, c, w_hh, b_hh)
    return h_new, c_new
