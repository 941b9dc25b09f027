"""Fused GRU recurrence (PyTorch's formulation) with a hand-written backward pass.

Per step, with gi = x W_ih^T + b_ih precomputed for all steps and gh = h W_hh^T + b_hh:
    r = sigmoid(gi_r + gh_r);  z = sigmoid(gi_z + gh_z)
    n = tanh(gi_n + r * gh_n);  h' = n + z * (h - n)
The forward pass keeps r, z, n and gh_n for every step; the backward pass turns them into the
gate gradients of every step, then each weight gradient is one matrix product.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._time import previous_states, step_order


class _GRUFunction(torch.autograd.Function):
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
    ) -> tuple[Tensor, Tensor]:
        steps, batch, features = x.shape
        hidden = w_hh.shape[1]
        flat_x = x.reshape(steps * batch, features)
        gi = flat_x @ w_ih.t() if b_ih is None else torch.addmm(b_ih, flat_x, w_ih.t())
        gi = gi.view(steps, batch, 3 * hidden)  # (T, B, 3H)
        out = x.new_empty(steps, batch, hidden)
        rz_all = x.new_empty(steps, batch, 2 * hidden)
        n_all = x.new_empty(steps, batch, hidden)
        hn_all = x.new_empty(steps, batch, hidden)
        w_hh_t = w_hh.t()
        h = h0
        for t in step_order(steps, reverse):
            gh = h @ w_hh_t if b_hh is None else torch.addmm(b_hh, h, w_hh_t)  # (B, 3H)
            rz = torch.sigmoid(gi[t, :, : 2 * hidden] + gh[:, : 2 * hidden], out=rz_all[t])
            r, z = rz[:, :hidden], rz[:, hidden:]
            hn_all[t] = gh[:, 2 * hidden :]
            n = torch.tanh(torch.addcmul(gi[t, :, 2 * hidden :], r, hn_all[t]), out=n_all[t])
            h_new = torch.addcmul(n, z, h - n)
            if mask is not None:
                h_new = torch.where(mask[t].unsqueeze(-1), h_new, h)
            out[t] = h_new
            h = out[t]
        ctx.save_for_backward(x, h0, w_ih, w_hh, out, rz_all, n_all, hn_all, mask)
        ctx.reverse = reverse
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        return out, h.clone()

    @staticmethod
    def backward(ctx: Any, d_out: Tensor | None, d_hn: Tensor | None):  # type: ignore[override]
        x, h0, w_ih, w_hh, out, rz_all, n_all, hn_all, mask = ctx.saved_tensors
        steps, batch, features = x.shape
        hidden = w_hh.shape[1]
        if d_out is None:
            d_out = torch.zeros_like(out)
        h_prev_all = previous_states(out, h0, ctx.reverse)
        dh = torch.zeros_like(h0) if d_hn is None else d_hn.clone()
        d_gi = x.new_empty(steps, batch, 3 * hidden)  # (T, B, 3H)
        d_gh = x.new_empty(steps, batch, 3 * hidden)
        for t in step_order(steps, not ctx.reverse):
            dh = dh + d_out[t]
            r, z = rz_all[t, :, :hidden], rz_all[t, :, hidden:]
            n, hn, h_prev = n_all[t], hn_all[t], h_prev_all[t]
            d_an = dh * (1 - z) * (1 - n * n)
            d_ar = d_an * hn * r * (1 - r)
            d_az = dh * (h_prev - n) * z * (1 - z)
            gi_t, gh_t = d_gi[t], d_gh[t]
            gi_t[:, :hidden] = d_ar
            gi_t[:, hidden : 2 * hidden] = d_az
            gi_t[:, 2 * hidden :] = d_an
            gh_t[:, : 2 * hidden] = gi_t[:, : 2 * hidden]
            gh_t[:, 2 * hidden :] = d_an * r
            if mask is not None:
                keep = mask[t].unsqueeze(-1)
                gi_t.mul_(keep.to(gi_t.dtype))
                gh_t.mul_(keep.to(gh_t.dtype))
                through = torch.addmm(dh * z, gh_t, w_hh)
                dh = torch.where(keep, through, dh)
            else:
                dh = torch.addmm(dh * z, gh_t, w_hh)
        need = ctx.needs_input_grad
        flat_gi = d_gi.reshape(steps * batch, 3 * hidden)
        flat_gh = d_gh.reshape(steps * batch, 3 * hidden)
        dx = (flat_gi @ w_ih).view(steps, batch, features) if need[0] else None
        dw_ih = flat_gi.t() @ x.reshape(steps * batch, features) if need[2] else None
        dw_hh = flat_gh.t() @ h_prev_all.reshape(steps * batch, hidden) if need[3] else None
        db_ih = flat_gi.sum(0) if ctx.has_bias[0] and need[4] else None
        db_hh = flat_gh.sum(0) if ctx.has_bias[1] and need[5] else None
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh, None, None


def gru_fused(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    *,
    mask: Tensor | None,
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    out, h_n = _GRUFunction.apply(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse)
    return out, h_n
