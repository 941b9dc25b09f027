"""Fused Elman recurrence with a hand-written backward pass (BPTT).

Forward:  pre_t = x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T;  h_t = act(pre_t)
The input projection of all steps is one matrix product before the loop; the loop does one
``addmm`` and one activation per step. The backward pass walks time in the opposite order,
collecting d pre_t for every step, and forms each weight gradient as one matrix product after
the loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._time import previous_states, step_order


class _ElmanFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor | None,
        b_hh: Tensor | None,
        mask: Tensor | None,
        reverse: bool,
        relu: bool,
    ) -> tuple[Tensor, Tensor]:
        steps, batch, features = x.shape
        hidden = w_hh.shape[0]
        bias = _sum_biases(b_ih, b_hh)
        flat_x = x.reshape(steps * batch, features)
        if bias is None:
            projected = flat_x @ w_ih.t()
        else:
            projected = torch.addmm(bias, flat_x, w_ih.t())
        projected = projected.view(steps, batch, hidden)  # (T, B, H)
        out = x.new_empty(steps, batch, hidden)  # (T, B, H)
        w_hh_t = w_hh.t()
        h = h0
        for t in step_order(steps, reverse):
            pre = torch.addmm(projected[t], h, w_hh_t)  # (B, H)
            h_new = torch.relu(pre) if relu else torch.tanh(pre)
            if mask is not None:
                h_new = torch.where(mask[t].unsqueeze(-1), h_new, h)
            out[t] = h_new
            h = out[t]
        ctx.save_for_backward(x, h0, w_ih, w_hh, out, mask)
        ctx.reverse, ctx.relu = reverse, relu
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        return out, h.clone()

    @staticmethod
    def backward(ctx: Any, d_out: Tensor | None, d_hn: Tensor | None):  # type: ignore[override]
        x, h0, w_ih, w_hh, out, mask = ctx.saved_tensors
        steps, batch, features = x.shape
        hidden = w_hh.shape[0]
        if d_out is None:
            d_out = torch.zeros_like(out)
        dh = torch.zeros_like(h0) if d_hn is None else d_hn.clone()
        d_pre = torch.empty_like(out)  # (T, B, H)
        for t in step_order(steps, not ctx.reverse):
            dh = dh + d_out[t]
            h = out[t]
            if ctx.relu:
                dp = dh * (h > 0).to(h.dtype)
            else:
                dp = dh * (1 - h * h)
            if mask is not None:
                keep = mask[t].unsqueeze(-1)
                dp = dp * keep
                dh = torch.addmm(torch.where(keep, torch.zeros_like(dh), dh), dp, w_hh)
            else:
                dh = dp @ w_hh
            d_pre[t] = dp
        flat_dp = d_pre.reshape(steps * batch, hidden)
        need = ctx.needs_input_grad
        dx = (flat_dp @ w_ih).view(steps, batch, features) if need[0] else None
        dw_ih = flat_dp.t() @ x.reshape(steps * batch, features) if need[2] else None
        dw_hh = None
        if need[3]:
            h_prev = previous_states(out, h0, ctx.reverse).reshape(steps * batch, hidden)
            dw_hh = flat_dp.t() @ h_prev
        db = flat_dp.sum(0) if (need[4] or need[5]) else None
        db_ih = db if ctx.has_bias[0] and need[4] else None
        db_hh = db if ctx.has_bias[1] and need[5] else None
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh, None, None, None


def _sum_biases(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    if b_ih is None:
        return b_hh
    if b_hh is None:
        return b_ih
    return b_ih + b_hh


def elman_fused(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    *,
    nonlinearity: str,
    mask: Tensor | None,
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    out, h_n = _ElmanFunction.apply(
        x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, nonlinearity == "relu"
    )
    return out, h_n
