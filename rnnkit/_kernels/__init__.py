"""Recurrences over whole sequences: one layer, one direction, time-major.

Every function takes ``x`` of shape (T, B, D), initial state(s) of shape (B, H) and weights in
``torch.nn``'s layout, and returns the state after every step, (T, B, H), and the final state.

``mask`` is an optional (T, B) bool tensor. Where it is False the state is *held*: the step is
skipped for that sequence. With a prefix mask (per-sequence lengths) this means a sequence's
state stops changing after its last real step, and with ``reverse=True`` the pass starts at each
sequence's own last real step, the same as ``torch.nn`` on a ``PackedSequence``. Returned states
at masked steps are the held state; callers zero them when they want ``torch.nn``'s padding.

``backend`` picks the implementation:
  - ``"fused"``: the input projection of all steps in one matrix product, a tight loop, and a
    hand-written backward pass whose weight gradients are one matrix product each;
  - ``"loop"``: the cell stepped in a Python loop with autograd: the ground truth;
  - ``"auto"``: the fastest available, currently ``"fused"``.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor

from .cells import elman_cell, gru_cell, lstm_cell
from .elman import elman_fused
from .gru import gru_fused
from .loop import scan
from .lstm import lstm_fused

BACKENDS = ("auto", "fused", "loop")

__all__ = ["BACKENDS", "elman", "elman_cell", "gru", "gru_cell", "lstm", "lstm_cell", "scan"]


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return "fused" if backend == "auto" else backend


def elman(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    nonlinearity: str = "tanh",
    mask: Tensor | None = None,
    reverse: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh). Returns (states, h_n)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    if _check_backend(backend) == "fused":
        return elman_fused(
            x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity, mask=mask, reverse=reverse
        )
    step = partial(_elman_step, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, act=nonlinearity)
    out, (h_n,) = scan(step, x, (h0,), mask, reverse)
    return out, h_n


def gru(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    reverse: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """GRU in PyTorch's formulation (gates r, z, n). Returns (states, h_n)."""
    if _check_backend(backend) == "fused":
        return gru_fused(x, h0, w_ih, w_hh, b_ih, b_hh, mask=mask, reverse=reverse)
    step = partial(_gru_step, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    out, (h_n,) = scan(step, x, (h0,), mask, reverse)
    return out, h_n


def lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    reverse: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM (gates i, f, g, o). Returns (states h, h_n, c_n)."""
    if _check_backend(backend) == "fused":
        return lstm_fused(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask=mask, reverse=reverse)
    step = partial(_lstm_step, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    out, (h_n, c_n) = scan(step, x, (h0, c0), mask, reverse)
    return out, h_n, c_n


def _elman_step(x, state, *, w_ih, w_hh, b_ih, b_hh, act):  # type: ignore[no-untyped-def]
    return (elman_cell(x, state[0], w_ih, w_hh, b_ih, b_hh, act),)


def _gru_step(x, state, *, w_ih, w_hh, b_ih, b_hh):  # type: ignore[no-untyped-def]
    return (gru_cell(x, state[0], w_ih, w_hh, b_ih, b_hh),)


def _lstm_step(x, state, *, w_ih, w_hh, b_ih, b_hh):  # type: ignore[no-untyped-def]
    return lstm_cell(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh)
