"""A torch-style cell over a whole sequence: :func:`scan_cell`.

A *torch-style cell* is any ``torch.nn.Module`` whose ``forward(x, hx)`` takes one step's input
(N, H_in) and its state, and returns the new state: one tensor (N, H) (as ``torch.nn.RNNCell``
and ``GRUCell``) or a tuple of them (``LSTMCell``'s ``(h, c)``); the step's output is the first.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._kernels import scan
from .._kernels.capture import CaptureError, captured_scan
from ._checks import ShapeError, step_mask as _step_mask

__all__ = ["scan_cell"]

_BACKENDS = ("captured", "loop")


def _signature(tensors: list[Tensor]) -> tuple[Any, ...]:
    return tuple((tuple(t.shape), t.dtype, t.device, t.requires_grad) for t in tensors)


def scan_cell(
    cell: torch.nn.Module,
    input: Tensor,
    hx: Tensor | tuple[Tensor, ...] | None = None,
    *,
    batch_first: bool = False,
    lengths: Tensor | None = None,
    mask: Tensor | None = None,
    reverse: bool = False,
    backend: str = "captured",
) -> tuple[Tensor, Tensor | tuple[Tensor, ...]]:
    r"""Run ``hx = cell(input[t], hx)`` for every step t and return (every step's output, the
    final state)::

        h_t = cell(x_t, h_{t-1})       where the step is real (mask / lengths)
        h_t = h_{t-1}                  where it is padding: the state is held, output[t] = 0

    Args:
        cell: a torch-style cell (module docstring).
        input: (L, N, H_in), or (N, L, H_in) with ``batch_first``.
        hx: the initial state as ``cell`` takes it; None: one zero state (N, cell.hidden_size).
        lengths: (N,) integer lengths, or ``mask``: (N, L) bool, True at real steps.
        reverse: process time from the end (each sequence from its own last real step); the
            output stays in time order.
        backend: ``"captured"`` (default): the step traced once and run without a Python call
            per step (:mod:`rnnkit._kernels.capture`), falling back to the loop when it cannot
            be captured (the loop's numbers either way); ``"loop"``: the cell called per step.

    Returns: output (L, N, H) (batch first with ``batch_first``), zero at padding, and the final
    state in ``hx``'s structure (held at each sequence's last real step).

    Example::

        >>> cell = torch.nn.GRUCell(3, 4)
        >>> out, h = scan_cell(cell, torch.randn(5, 2, 3), lengths=torch.tensor([5, 3]))
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 2, 4), (2, 4))
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if not isinstance(cell, torch.nn.Module):
        raise TypeError(f"scan_cell needs a torch.nn.Module cell, got {type(cell).__name__}")
    if not isinstance(input, Tensor) or input.dim() != 3:
        raise ShapeError("scan_cell expects a 3-D input (L, N, H_in) (or (N, L, H_in) with "
                         f"batch_first), got {getattr(input, 'shape', type(input).__name__)}")
    x = input.transpose(0, 1) if batch_first else input  # (T, B, D)
    steps, batch = x.shape[0], x.shape[1]
    step_mask = _step_mask(lengths, mask, batch, steps, x.device, "scan_cell")  # (T, B)
    single = hx is None or isinstance(hx, Tensor)
    if hx is None:
        size = getattr(cell, "hidden_size", None)
        if not isinstance(size, int):
            raise ValueError(f"scan_cell: pass hx; {type(cell).__name__} has no int hidden_size "
                             "to make a zero state from")
        hx = x.new_zeros(batch, size)
    states = [hx] if single else list(hx)  # type: ignore[arg-type]

    def cell_step(x_t: Tensor, old: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        new = cell(x_t, old[0] if single else tuple(old))
        new = (new,) if isinstance(new, Tensor) else tuple(new)
        if len(new) != len(old):
            raise ValueError(f"scan_cell: the cell returned {len(new)} state(s) for "
                             f"{len(old)} given")
        return new

    output, final = None, None
    if backend == "captured":
        try:
            output, final = _captured(cell, cell_step, x, states, step_mask, reverse)
        except CaptureError:
            pass
    if output is None or final is None:
        output, final_t = scan(cell_step, x, tuple(states), step_mask, reverse)
        final = list(final_t)
    if step_mask is not None:  # torch.nn's padding: zero output past a sequence's end
        output = output * step_mask.unsqueeze(-1).to(output.dtype)
    if batch_first:
        output = output.transpose(0, 1)
    return output, (final[0] if single else tuple(final))


def _captured(cell: torch.nn.Module, cell_step: Any, x: Tensor, states: list[Tensor],
              mask: Tensor | None, reverse: bool) -> tuple[Tensor, list[Tensor]]:
    named = dict(cell.named_parameters(remove_duplicate=False))
    named.update(cell.named_buffers(remove_duplicate=False))
    names = sorted(named)
    params = [named[n] for n in names]
    xs = [x] if mask is None else [x, mask]
    if reverse:
        xs = [v.flip(0) for v in xs]

    def body(p: Any, x_t: Any, old: Any) -> tuple[Tensor, list[Tensor]]:
        with torch.nn.utils.stateless._reparametrize_module(cell, dict(zip(names, p))):
            new = cell_step(x_t[0], tuple(old))
        if mask is not None:
            keep = x_t[1].unsqueeze(-1)  # (B, 1)
            new = tuple(torch.where(keep, n, s) for n, s in zip(new, old))
        return new[0], list(new)

    key = ("scan_cell", tuple(names), _signature(params), _signature(xs), _signature(states),
           cell.training)
    ys, carried = captured_scan(body, params, xs, states, owner=cell, key=key)
    if reverse:
        ys = ys.flip(0)
    return ys, [c[-1] for c in carried]
