"""Recurrences over whole sequences: one layer, one direction, time-major.

Every function takes ``x`` of shape (T, B, D), initial state(s) of shape (B, H) and weights in
``torch.nn``'s layout, and returns the state after every step, (T, B, H), and the final state.

``mask`` is an optional (T, B) bool tensor. Where it is False the state is *held*: the step is
skipped for that sequence. With a prefix mask (per-sequence lengths) this means a sequence's
state stops changing after its last real step, and with ``reverse=True`` the pass starts at each
sequence's own last real step, the same as ``torch.nn`` on a ``PackedSequence``. Returned states
at masked steps are the held state, or zero with ``zero_padding=True`` (``torch.nn``'s padding;
the final state is still the held one). The compiled kernels zero them inside the time loop, so
no second (T, B, H) tensor and no extra pass are needed; the other paths multiply by the mask.

``backend`` picks the implementation:
  - ``"compiled"``: the same algorithm with the time loop and its backward pass in C++
    (``csrc/``, built on first use, see :mod:`.compiled`); CPU float32/float64 only. An error
    says why when it cannot run (no compiler, ``RNNKIT_NO_EXTENSION=1``, a GPU tensor);
  - ``"fused"``: the input projection of all steps in one matrix product, a tight loop in
    Python, and a hand-written backward pass whose weight gradients are one matrix product each;
  - ``"loop"``: the cell stepped in a Python loop with autograd: the ground truth;
  - ``"auto"``: ``"compiled"`` where it can run, else ``"fused"``. ``bench/speed.py`` measures
    both paths on every cell and size; the compiled one was faster on every row (the Python
    loop's per-step overhead dominates at small sizes and still costs 10-30% at large ones).
    One exception, where PyTorch's own kernel measured faster: dense (unmasked) float32 LSTM
    *inference* on the CPU from batch x hidden = 16384 (oneDNN's fused LSTM, at about 95% of
    the matrix-multiply peak there; the compiled kernel ran at 0.85-0.93x). With a mask, in
    training, or below that size the compiled kernel wins.
"""

from __future__ import annotations

from functools import partial
import torch
from torch import Tensor

from . import compiled as _compiled
from . import traceable as _traceable
from ._route import prefers_torch_lstm as _prefers_torch_lstm
from ._route import torch_recurrence as _torch_recurrence
from .cells import elman_cell, gru_cell, lstm_cell
from .elman import elman_fused
from .gru import gru_fused
from .loop import scan
from .lstm import lstm_fused

BACKENDS = ("auto", "compiled", "fused", "loop")

__all__ = ["BACKENDS", "elman", "elman_cell", "gru", "gru_cell", "lstm", "lstm_cell",
           "prefix_mask", "scan", "zero_masked"]


def _choose(backend: str, x: Tensor, *tensors: Tensor | None) -> str:
    """The path a call takes: ``backend`` itself, or for ``"auto"`` the fastest that can run."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "compiled":
        reason = _compiled_refuses(x, tensors)
        if reason is not None:
            raise ValueError(f"backend='compiled' cannot run this call: {reason}; "
                             "use backend='auto' or 'fused'")
        _compiled.load()  # raises ExtensionUnavailable saying why
        return "compiled"
    if backend != "auto":
        return backend
    if torch.compiler.is_compiling() or _compiled_refuses(x, tensors) is not None:
        return "fused"
    return "compiled" if _compiled.available() else "fused"


def _compiled_refuses(x: Tensor, tensors: tuple[Tensor | None, ...]) -> str | None:
    """Why the compiled kernels cannot take these tensors, or None when they can."""
    if not x.is_cpu:
        return f"it runs on CPU tensors, got {x.device}"
    dtype = x.dtype
    if dtype not in (torch.float32, torch.float64):
        return f"it runs float32 and float64, got {dtype}"
    for t in tensors:  # is_cpu and dtype are cheap; this runs on every call
        if t is not None and (t.dtype != dtype or not t.is_cpu):
            return f"every tensor must be {dtype} on the CPU like x, got {t.dtype} on {t.device}"
    return None


@_traceable.dispatch(_traceable.elman)  # torch.export/compile: see traceable.py
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
    zero_padding: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh). Returns (states, h_n)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    path = _choose(backend, x, h0, w_ih, w_hh, b_ih, b_hh)
    if path == "compiled":
        out, h_n = _compiled.load().elman(
            x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, nonlinearity == "relu", zero_padding
        )
        return out, h_n
    if path == "fused":
        out, h_n = elman_fused(
            x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity, mask=mask, reverse=reverse
        )
    else:
        step = partial(_elman_step, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, act=nonlinearity)
        out, (h_n,) = scan(step, x, (h0,), mask, reverse)
    return _padded(out, mask, zero_padding), h_n


@_traceable.dispatch(_traceable.gru)  # torch.export/compile: see traceable.py
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
    zero_padding: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """GRU in PyTorch's formulation (gates r, z, n). Returns (states, h_n)."""
    path = _choose(backend, x, h0, w_ih, w_hh, b_ih, b_hh)
    if path == "compiled":
        out, h_n = _compiled.load().gru(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse,
                                        zero_padding)
        return out, h_n
    if path == "fused":
        out, h_n = gru_fused(x, h0, w_ih, w_hh, b_ih, b_hh, mask=mask, reverse=reverse)
    else:
        step = partial(_gru_step, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
        out, (h_n,) = scan(step, x, (h0,), mask, reverse)
    return _padded(out, mask, zero_padding), h_n


@_traceable.dispatch(_traceable.lstm)  # torch.export/compile: see traceable.py
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
    zero_padding: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM (gates i, f, g, o). Returns (states h, h_n, c_n)."""
    path = _choose(backend, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    if backend == "auto" and path == "compiled" and _prefers_torch_lstm(
            x, w_hh, mask, h0, c0, w_ih, w_hh, b_ih, b_hh):
        out, h_n, c_n = _torch_recurrence(torch._VF.lstm, x, (h0, c0), w_ih, w_hh, b_ih, b_hh,
                                          reverse)
        return out, h_n, c_n
    if path == "compiled":
        out, h_n, c_n = _compiled.load().lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, reverse,
                                              zero_padding)
        return out, h_n, c_n
    if path == "fused":
        out, h_n, c_n = lstm_fused(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask=mask, reverse=reverse)
    else:
        step = partial(_lstm_step, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
        out, (h_n, c_n) = scan(step, x, (h0, c0), mask, reverse)
    return _padded(out, mask, zero_padding), h_n, c_n


def prefix_mask(lengths: Tensor, steps: int) -> tuple[Tensor, int, int]:
    """The (T, B) bool mask of each sequence's first ``lengths[b]`` real steps, and the smallest
    and largest length (0, 0 for an empty batch). ``lengths`` is a 1-D integer tensor; values
    out of [0, T] are the caller's to refuse. One compiled pass for CPU lengths (five small
    tensor ops otherwise, a tenth of a small RNN's forward pass)."""
    if lengths.is_cpu and not torch.compiler.is_compiling() and _compiled.available():
        mask, low, high = _compiled.load().prefix_mask(lengths, steps)
        return mask, low, high
    low, high = (int(v) for v in torch.aminmax(lengths)) if lengths.numel() else (0, 0)
    mask = torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)
    return mask, low, high


def zero_masked(out: Tensor, mask: Tensor) -> Tensor:
    """``out`` (T, B, F) with the steps where ``mask`` (T, B) is False set to zero (torch.nn's
    padding past each sequence's end). In place on the compiled path when ``out`` needs no
    gradient (inference: nothing saved it for a backward pass); otherwise a multiply, which
    passes zero gradient to the masked steps."""
    if (not out.requires_grad and out.is_cpu and out.is_contiguous()
            and out.dtype in (torch.float32, torch.float64)
            and not torch.compiler.is_compiling() and _compiled.available()):
        _compiled.load().zero_masked_(out, mask)
        return out
    return out * mask.unsqueeze(-1)


def _padded(out: Tensor, mask: Tensor | None, zero_padding: bool) -> Tensor:
    """The held states of a non-compiled path, zeroed at masked steps when asked to be."""
    return zero_masked(out, mask) if zero_padding and mask is not None else out


def _elman_step(x, state, *, w_ih, w_hh, b_ih, b_hh, act):  # type: ignore[no-untyped-def]
    return (elman_cell(x, state[0], w_ih, w_hh, b_ih, b_hh, act),)


def _gru_step(x, state, *, w_ih, w_hh, b_ih, b_hh):  # type: ignore[no-untyped-def]
    return (gru_cell(x, state[0], w_ih, w_hh, b_ih, b_hh),)


def _lstm_step(x, state, *, w_ih, w_hh, b_ih, b_hh):  # type: ignore[no-untyped-def]
    return lstm_cell(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh)
