"""The composite implementation: each recurrence in plain PyTorch operations.

It serves every call the compiled CPU kernels do not take (CUDA and other devices, no C++
compiler, ``RNNKIT_NO_EXTENSION=1``), as the operators' kernel for those devices (see
:mod:`._ops`), and it is what the operators' backward pass differentiates when a graph of the
gradient is asked for (double backward, ``torch.func``). Same arguments and results as the
operators: time-major ``x`` (T, B, D), ``torch.nn`` weight layout, a (T, B) bool ``mask`` that
*holds* the state at masked steps, ``reverse``, ``zero_padding`` (zero outputs at masked steps,
the final state still the held one) and ``train`` (also return the buffers the backward pass
of the compiled kernels reads, else (0,) placeholders).

The input projection of all steps is one matrix product; each step is the cell's
:attr:`~._cell_spec.CellSpec.step` (a ``*_step`` of :mod:`.cells`). One implementation for
every cell, made by :func:`forward` from the cell's description.

Example::

    >>> x, h0 = torch.randn(5, 2, 3), torch.zeros(2, 4)
    >>> w_ih, w_hh = torch.randn(12, 3), torch.randn(12, 4)
    >>> gru = forward(CELLS["gru"])
    >>> out, h_n, _, _ = gru(x, h0, w_ih, w_hh, None, None, None, False, False, False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._cell_spec import CELLS, CellSpec

__all__ = ["forward", "initial_states", "recurrence_backward"]

State = tuple[Tensor, ...]


def _run(step: Callable[[Tensor, State], tuple[State, tuple[Tensor, ...]]], gi: Tensor,
         state: State, mask: Tensor | None, reverse: bool, zero_padding: bool,
         saved_widths: Sequence[int],
         keep_states: bool) -> tuple[list[Tensor], State, list[Tensor]]:
    """Step over time. Returns the output after every step stacked (T, B, H) (zeroed at masked
    steps with ``zero_padding``) and, with ``keep_states``, every later state component too,
    the final state, and each of the step's extra results stacked (T, B, W)."""
    steps, batch = gi.shape[0], gi.shape[1]
    if steps == 0:
        empty = [gi.new_empty(0, batch, w) for w in saved_widths]
        return [gi.new_empty(0, batch, s.shape[-1]) for s in state], state, empty
    per_step: list[list[Tensor]] = [[gi] * steps for _ in state]
    saved: list[list[Tensor]] = [[gi] * steps for _ in saved_widths]
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        new, extra = step(gi[t], state)
        if mask is not None:
            keep = mask[t].unsqueeze(-1)  # (B, 1)
            new = tuple(torch.where(keep, n, s) for n, s in zip(new, state))
        state = new
        for buffer, value in zip(per_step, new):
            buffer[t] = value
        for buffer, value in zip(saved, extra):
            buffer[t] = value
    stacked = [torch.stack(per_step[0])] + [torch.stack(b) for b in per_step[1:] if keep_states]
    if zero_padding and mask is not None:
        stacked[0] = torch.where(mask.unsqueeze(-1), stacked[0], stacked[0].new_zeros(()))
    return stacked, state, [torch.stack(b) for b in saved]


def _placeholder(x: Tensor) -> Tensor:
    return x.new_empty(0)


def initial_states(cell: CellSpec, states: Sequence[Tensor | None], x: Tensor,
                   w_hh: Tensor) -> State:
    """The initial states, zeros (B, width) where the call passed none (also for the paths of
    :mod:`rnnkit._kernels` that are not the operator)."""
    return tuple(x.new_zeros(x.shape[1], cell.state_width(i, w_hh)) if s is None else s
                 for i, s in enumerate(states))


def forward(cell: CellSpec) -> Callable[..., tuple[Tensor, ...]]:
    """The composite kernel of ``cell``'s operator (same arguments and results, see
    :mod:`._cell_spec`): (states, *final states, *saved buffers)."""
    count, own = len(cell.states), len(cell.weights)

    def recurrence(x: Tensor, *args: Any) -> tuple[Tensor, ...]:
        states, (w_ih, w_hh, b_ih, b_hh), weights = \
            args[:count], args[count:count + 4], args[count + 4:count + 4 + own]
        mask, reverse, zero_padding, train, *flags = args[count + 4 + own:]
        hidden = w_hh.shape[0] // cell.gates

        def step(gi_t: Tensor, state: State) -> tuple[State, tuple[Tensor, ...]]:
            new, extra = cell.step(gi_t, state, w_hh, b_hh, *weights, *flags)
            return new, (extra if train else ())

        # the saved buffers: the step's extras, then every later state per step
        widths = tuple(w * hidden for _, w in cell.saved[:len(cell.saved) - count + 1]) \
            if train else ()
        initial = initial_states(cell, states, x, w_hh)
        # all steps' input projections in one matrix product: (T, B, D) -> (T, B, G*H)
        gi = cell.input_side(x, w_ih, b_ih, weights)
        per_step, finals, extras = _run(step, gi, initial, mask, reverse,
                                        zero_padding, widths, keep_states=bool(train))
        if not train:
            return (per_step[0], *finals, *(_placeholder(x) for _ in cell.saved))
        return (per_step[0], *finals, *extras, *per_step[1:])

    recurrence.__name__ = cell.name
    return recurrence


_FORWARD = {name: forward(cell) for name, cell in CELLS.items()}


def recurrence_backward(cell: str, grads: Sequence[Tensor], inputs: Sequence[Tensor | None],
                        flags: Sequence[bool], needs: Sequence[bool],
                        create_graph: bool) -> list[Tensor | None]:
    """Gradients of ``cell``'s (states, final states) with respect to its tensor ``inputs``
    (x, the initial states, w_ih, w_hh, b_ih, b_hh, the cell's own weights, then the mask) by
    differentiating the composite forward pass. ``flags`` are the call's trailing arguments without ``train``;
    ``needs`` says which of the differentiable inputs want a gradient.

    With ``create_graph`` the result is itself differentiable (double backward, and inside
    ``torch.func`` transforms): the forward pass is differentiated by ``torch.func.vjp``, which
    composes with autograd and with the transforms around it. Without, a fresh graph is
    recorded on detached copies.
    """
    differentiable = len(needs)
    wanted = [i for i in range(differentiable) if needs[i] and inputs[i] is not None]
    result: list[Tensor | None] = [None] * differentiable
    if not wanted:
        return result
    outputs = 1 + len(CELLS[cell].states)
    reverse, zero_padding, *own = flags

    def run(*values: Tensor) -> tuple[Tensor, ...]:
        tensors = list(inputs)
        for i, value in zip(wanted, values):
            tensors[i] = value
        return tuple(_FORWARD[cell](*tensors, reverse, zero_padding, False, *own)[:outputs])

    if create_graph:
        _, pullback = torch.func.vjp(run, *(inputs[i] for i in wanted))
        found = pullback(tuple(grads))
    else:
        leaves = [inputs[i].detach().requires_grad_() for i in wanted]  # type: ignore[union-attr]
        with torch.enable_grad():
            found = torch.autograd.grad(run(*leaves), leaves, list(grads), allow_unused=True)
        found = tuple(torch.zeros_like(leaf) if g is None else g for g, leaf in zip(found, leaves))
    for i, g in zip(wanted, found):
        result[i] = g
    return result
