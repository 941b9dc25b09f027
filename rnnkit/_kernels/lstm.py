"""Fused LSTM recurrence with a hand-written backward pass.

Per step, with gx = x W_ih^T + b_ih + b_hh precomputed for all steps:
    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gx + h W_hh^T)
    c' = f * c + i * g;  h' = o * tanh(c')
The forward pass keeps the four activated gates and c for every step; the backward pass forms
the pre-activation gradients of every step, then each weight gradient is one matrix product.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._time import previous_states, step_order


class _LSTMFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor | None,
        b_hh: Tensor | None,
        mask: Tensor | None,
        reverse: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        steps, batch, features = x.shape
        hidden = w_hh.shape[1]
        bias = b_ih if b_hh is None else (b_hh if b_ih is None else b_ih + b_hh)
        flat_x = x.reshape(steps * batch, features)
        gx = flat_x @ w_ih.t() if bias is None else torch.addmm(bias, flat_x, w_ih.t())
        gx = gx.view(steps, batch, 4 * hidden)  # (T, B, 4H)
        out = x.new_empty(steps, batch, hidden)
        c_all = x.new_empty(steps, batch, hidden)
        gates_all = x.new_empty(steps, batch, 4 * hidden)  # activated i, f, g, o
        w_hh_t = w_hh.t()
        h, c = h0, c0
        for t in step_order(steps, reverse):
            gates = torch.addmm(gx[t], h, w_hh_t, out=gates_all[t])  # (B, 4H)
            torch.sigmoid(gates[:, : 2 * hidden], out=gates[:, : 2 * hidden])
            torch.tanh(gates[:, 2 * hidden : 3 * hidden], out=gates[:, 2 * hidden : 3 * hidden])
            torch.sigmoid(gates[:, 3 * hidden :], out=gates[:, 3 * hidden :])
            i, f, g, o = gates.chunk(4, dim=1)
            c_new = torch.addcmul(f * c, i, g)
            h_new = o * torch.tanh(c_new)
            if mask is not None:
                keep = mask[t].unsqueeze(-1)
                c_new = torch.where(keep, c_new, c)
                h_new = torch.where(keep, h_new, h)
            c_all[t] = c_new
            out[t] = h_new
            h, c = out[t], c_all[t]
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, out, c_all, gates_all, mask)
        ctx.reverse = reverse
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        return out, h.clone(), c.clone()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, d_out: Tensor | None, d_hn: Tensor | None, d_cn: Tensor | None
    ):
        x, h0, c0, w_ih, w_hh, out, c_all, gates_all, mask = ctx.saved_tensors
        steps, batch, features = x.shape
        hidden = w_hh.shape[1]
        if d_out is None:
            d_out = torch.zeros_like(out)
        c_prev_all = previous_states(c_all, c0, ctx.reverse)
        dh = torch.zeros_like(h0) if d_hn is None else d_hn.clone()
        dc = torch.zeros_like(c0) if d_cn is None else d_cn.clone()
        d_gates = x.new_empty(steps, batch, 4 * hidden)  # (T, B, 4H) pre-activation grads
        for t in step_order(steps, not ctx.reverse):
            dh = dh + d_out[t]
            i, f, g, o = gates_all[t].chunk(4, dim=1)
            tanh_c = torch.tanh(c_all[t])
            dc_t = dc + dh * o * (1 - tanh_c * tanh_c)
            da = d_gates[t]
            torch.mul(dc_t * g, i * (1 - i), out=da[:, :hidden])
            torch.mul(dc_t * c_prev_all[t], f * (1 - f), out=da[:, hidden : 2 * hidden])
            torch.mul(dc_t * i, 1 - g * g, out=da[:, 2 * hidden : 3 * hidden])
            torch.mul(dh * tanh_c, o * (1 - o), out=da[:, 3 * hidden :])
            if mask is not None:
                keep = mask[t].unsqueeze(-1)
                da.mul_(keep.to(da.dtype))
                dh = torch.where(keep, da @ w_hh, dh)
                dc = torch.where(keep, dc_t * f, dc)
            else:
                dh = da @ w_hh
                dc = dc_t * f
        need = ctx.needs_input_grad
        flat_da = d_gates.reshape(steps * batch, 4 * hidden)
        dx = (flat_da @ w_ih).view(steps, batch, features) if need[0] else None
        dw_ih = flat_da.t() @ x.reshape(steps * batch, features) if need[3] else None
        dw_hh = None
        if need[4]:
            h_prev = previous_states(out, h0, ctx.reverse).reshape(steps * batch, hidden)
            dw_hh = flat_da.t() @ h_prev
        db = flat_da.sum(0) if (need[5] or need[6]) else None
        db_ih = db if ctx.has_bias[0] and need[5] else None
        db_hh = db if ctx.has_bias[1] and need[6] else None
        return dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh, None, None


def lstm_fused(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    *,
    mask: Tensor | None,
    reverse: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    out, h_n, c_n = _LSTMFunction.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, reverse)
    return out, h_n, c_n
