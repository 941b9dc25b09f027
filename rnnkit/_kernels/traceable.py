"""Traceable recurrences for ``torch.export`` and ``torch.compile``: the time loop as one ``scan``.

The fused kernels step time in a Python loop inside a ``torch.autograd.Function``. A tracer
follows that loop step by step, so ``torch.export`` fixes the sequence length T into the graph
and ``torch.compile`` unrolls (and recompiles for) every new T. Here the loop is PyTorch's
``scan`` higher-order operator instead: the step is traced once, the graph holds one loop node,
and T stays a symbolic dimension (``torch.export.Dim``).

Same signatures, layouts and results as the kernels in ``rnnkit._kernels`` (time-major
``x`` (T, B, D), ``torch.nn`` weight layout, a (T, B) bool ``mask`` that *holds* the state at
masked steps, ``reverse=``) and the same equations as ``cells.py``, with the input projection
of all steps hoisted out of the loop into one matrix product. Autograd differentiates through
``scan``, so this path needs no hand-written backward pass.

The kernel dispatch asks :func:`select` which path to take (``"traceable"`` for ``"auto"``
under ``torch.export``, warning once) and wraps the fused kernels in :func:`eager_only`, which
under ``torch.compile`` puts them behind a graph break.

Example::

    >>> x, h0 = torch.randn(5, 2, 3), torch.zeros(2, 4)
    >>> w_ih, w_hh = torch.randn(12, 3), torch.randn(12, 4)
    >>> out, h_n = gru(x, h0, w_ih, w_hh)            # out (5, 2, 4), h_n (2, 4)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan as _scan_op  # prototype API, pinned by tests

__all__ = [
    "FALLBACK_MESSAGE", "dispatch", "eager_only", "elman", "gru", "lstm", "select", "use_traceable",
]

FALLBACK_MESSAGE = "rnnkit: fused kernel is not traceable; using the scan path under torch.export/compile"

State = tuple[Tensor, ...]
_warned = False


def use_traceable() -> bool:
    """True while ``torch.export`` traces the model.

    The fused kernels' time loop cannot be exported with a symbolic sequence length, so the
    dispatch must take this path. Under ``torch.compile`` (not export) this is False: the
    dispatch runs the fused kernel behind a graph break instead (:func:`eager_only`), which
    keeps eager's exact values and speed and compiles in a fraction of the time.
    """
    return torch.compiler.is_exporting()


def select(backend: str) -> str:
    """The path the kernel dispatch takes now for the user's ``backend``.

    ``"auto"`` under ``torch.export`` becomes ``"traceable"`` (with a one-time warning); an
    explicit ``"fused"`` under ``torch.export`` is an error that says how to fix it; anything
    else is returned unchanged.
    """
    if not use_traceable():
        return backend
    if backend == "auto":
        warn_fallback()
        return "traceable"
    if backend in ("fused", "compiled"):
        raise ValueError(
            f"backend={backend!r} cannot be traced by torch.export (its time loop would fix the "
            "sequence length); use backend='auto', which exports the traceable scan path"
        )
    return backend


def warn_fallback() -> None:
    """Warn once per process that the traceable path replaced the fused kernel."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(FALLBACK_MESSAGE, UserWarning, stacklevel=4)


def eager_only(fn: Callable) -> Callable:
    """``fn`` behind a graph break: ``torch.compile`` runs it as in eager mode.

    The fused kernels are ``autograd.Function``s with an in-place Python time loop, which
    Dynamo would unroll (and recompile) for every sequence length. Wrapped once at import
    (``gru_fused = eager_only(gru_fused)``), they run eagerly under ``torch.compile``, forward
    and backward, with exactly eager's values; outside compilation the wrapper costs under a
    microsecond per call.
    """
    return torch.compiler.disable(fn, recursive=True)


def dispatch(traced: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a kernel dispatch function (``elman``/``gru``/``lstm`` of ``rnnkit._kernels``).

    Outside tracing the call goes straight to the kernel. While ``torch.export`` traces, the
    user's ``backend`` goes through :func:`select`: ``"auto"`` runs ``traced`` (this module's scan
    path, warning once), ``"loop"`` stays the autograd loop, ``"fused"``/``"compiled"`` are
    refused. Under ``torch.compile`` every backend but ``"loop"`` runs behind a graph break
    (:func:`eager_only`), so compiled models get exactly eager's values and gradients.

    Example::

        >>> @dispatch(gru)
        ... def gru_kernel(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, mask=None,
        ...                reverse=False, backend="auto"): ...
    """

    def wrap(kernel: Callable[..., Any]) -> Callable[..., Any]:
        eager = eager_only(kernel)

        @functools.wraps(kernel)
        def dispatched(*args: Any, backend: str = "auto", **kwargs: Any) -> Any:
            if not torch.compiler.is_compiling():
                return kernel(*args, backend=backend, **kwargs)
            path = select(backend)
            if path == "traceable":
                zero_padding = kwargs.pop("zero_padding", False)
                out, *final = traced(*args, **kwargs)
                mask = kwargs.get("mask")
                if zero_padding and mask is not None:  # torch.nn's padding, as in the kernels
                    out = out * mask.unsqueeze(-1)
                return (out, *final)
            if path == "loop" or use_traceable():
                return kernel(*args, backend=path, **kwargs)
            return eager(*args, backend=backend, **kwargs)

        return dispatched

    return wrap


def _run(step: Callable[[State, Tensor], State], x_proj: Tensor, state: State,
         mask: Tensor | None, reverse: bool) -> tuple[Tensor, State]:
    """Scan ``step`` over the time axis of ``x_proj`` (T, B, G): returns (states[0] per step, final).

    Masked steps hold the whole state. ``scan`` flips its inputs for ``reverse`` and returns the
    per-step outputs in the original time order.
    """

    def combine(carry: State, xs: tuple[Tensor, ...]) -> tuple[State, Tensor]:
        new = step(carry, xs[0])
        if mask is not None:
            keep = xs[1].unsqueeze(-1)  # (B, 1)
            new = tuple(torch.where(keep, n, c) for n, c in zip(new, carry))
        # scan forbids an output aliasing the carry: hand out a copy of h.
        return new, new[0].clone()

    xs = (x_proj,) if mask is None else (x_proj, mask)
    final, out = _scan_op(combine, state, xs, reverse=reverse)
    return out, tuple(final)


def _project(x: Tensor, w_ih: Tensor, b_ih: Tensor | None) -> Tensor:
    """All steps' input projections in one matrix product: (T, B, D) -> (T, B, G*H)."""
    return torch.nn.functional.linear(x, w_ih, b_ih)


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
) -> tuple[Tensor, Tensor]:
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh). Returns (states (T, B, H), h_n)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    gi = _project(x, w_ih, b_ih)  # (T, B, H)

    def step(state: State, gi_t: Tensor) -> State:
        pre = gi_t + torch.nn.functional.linear(state[0], w_hh, b_hh)
        return (torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre),)

    out, (h_n,) = _run(step, gi, (h0,), mask, reverse)
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
) -> tuple[Tensor, Tensor]:
    """PyTorch's GRU (gates r, z, n; r multiplies W_hn h + b_hn). Returns (states, h_n)."""
    gi = _project(x, w_ih, b_ih)  # (T, B, 3H)

    def step(state: State, gi_t: Tensor) -> State:
        h = state[0]
        gh = torch.nn.functional.linear(h, w_hh, b_hh)  # (B, 3H)
        i_r, i_z, i_n = gi_t.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (n + z * (h - n),)

    out, (h_n,) = _run(step, gi, (h0,), mask, reverse)
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
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM (gates i, f, g, o): c' = f c + i g, h' = o tanh(c'). Returns (states h, h_n, c_n)."""
    gi = _project(x, w_ih, b_ih)  # (T, B, 4H)

    def step(state: State, gi_t: Tensor) -> State:
        h, c = state
        gates = gi_t + torch.nn.functional.linear(h, w_hh, b_hh)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new

    out, (h_n, c_n) = _run(step, gi, (h0, c0), mask, reverse)
    return out, h_n, c_n
