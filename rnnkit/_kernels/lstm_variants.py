"""Two LSTM variants as composite PyTorch steps (no C++ loop yet), in torch.nn's layout:
``w_ih`` (4H, D), ``w_hh`` (4H, H), gate blocks ``i, f, g, o``; ``gi = x W_ih^T`` is formed
for all steps at once by the caller.

Peephole LSTM (Gers & Schmidhuber 2000, "Recurrent nets that time and count"; placed as
TensorFlow's ``LSTMCell(use_peepholes=True)``, diagonal peephole weights ``p_i, p_f, p_o``
(H,), without TensorFlow's ``forget_bias``)::

    i = sigmoid(gi_i + h U_i + p_i * c + b_i)
    f = sigmoid(gi_f + h U_f + p_f * c + b_f)
    c' = f * c + i * tanh(gi_g + h U_g + b_g)
    o = sigmoid(gi_o + h U_o + p_o * c' + b_o)
    h' = o * tanh(c')

Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization", arXiv:1607.06450: the
LN-LSTM equations of its supplementary material, as used for "Teaching machines to read and
comprehend"): the input and recurrent projections normalised separately over all 4H
pre-activations, and the cell state before the output's tanh::

    [i, f, g, o] = LN(x W_ih^T; a_x, b_x) + LN(h W_hh^T; a_h, b_h) + b
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h' = sigmoid(o) * tanh(LN(c'; a_c, b_c))

with ``LN(v; a, b) = a * (v - mean(v)) / sqrt(var(v) + eps) + b`` over the last axis (biased
variance, eps = 1e-5, as ``torch.nn.LayerNorm``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LN_EPS", "layer_norm_lstm_step", "peephole_lstm_step"]

LN_EPS = 1e-5


def peephole_lstm_step(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b: Tensor | None,
                       p_i: Tensor, p_f: Tensor, p_o: Tensor) -> tuple[Tensor, Tensor]:
    """One peephole step from gi = x W_ih^T (B, 4H); returns (h', c')."""
    gates = gi + F.linear(h, w_hh, b)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    i = torch.sigmoid(i + p_i * c)
    f = torch.sigmoid(f + p_f * c)
    c_new = f * c + i * torch.tanh(g)
    o = torch.sigmoid(o + p_o * c_new)
    return o * torch.tanh(c_new), c_new


def layer_norm_lstm_step(ni: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b: Tensor | None,
                         ln_h: tuple[Tensor, Tensor], ln_c: tuple[Tensor, Tensor]
                         ) -> tuple[Tensor, Tensor]:
    """One layer-normalised step from ni = LN(x W_ih^T; a_x, b_x) (B, 4H); returns (h', c')."""
    H = c.shape[-1]
    gates = ni + F.layer_norm(F.linear(h, w_hh), (4 * H,), *ln_h, eps=LN_EPS)
    if b is not None:
        gates = gates + b
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(F.layer_norm(c_new, (H,), *ln_c, eps=LN_EPS))
    return h_new, c_new
