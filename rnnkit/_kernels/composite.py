"""The composite implementation: each recurrence in plain PyTorch operations.

It serves every call the compiled CPU kernels do not take (CUDA and other devices, no C++
compiler, ``RNNKIT_NO_EXTENSION=1``), as the operators' kernel for those devices (see
:mod:`._ops`), and it is what the operators' backward pass differentiates when a graph of the
gradient is asked for (double backward, ``torch.func``). Same arguments and results as the
operators: time-major ``x`` (T, B, D), ``torch.nn`` weight layout, a (T, B) bool ``mask`` that
*holds* the state at masked steps, ``reverse``, ``zero_padding`` (zero outputs at masked steps,
the final state still the held one) and ``train`` (also return the buffers the backward pass
of the compiled kernels reads, else (0,) placeholders).

The input projection of all steps is one matrix product; each step is a ``*_step`` of
:mod:`.cells`.

Example::

    >>> x, h0 = torch.randn(5, 2, 3), torch.zeros(2, 4)
    >>> w_ih, w_hh = torch.randn(12, 3), torch.randn(12, 4)
    >>> out, h_n, _, _ = gru(x, h0, w_ih, w_hh, None, None, None, False, False, False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .cells import elman_step, gru_step, lstm_step

__all__ = ["elman", "gru", "initial_state", "lstm", "recurrence_backward"]

State = tuple[Tensor, ...]


def _run(step: Callable[[Tensor, State], tuple[State, tuple[Tensor, ...]]], gi: Tensor,
         state: State, mask: Tensor | None, reverse: bool, zero_padding: bool,
         saved_widths: Sequence[int]) -> tuple[list[Tensor], State, list[Tensor]]:
    """Step over time. Returns each state component after every step stacked (T, B, H) (the
    first is the output, zeroed at masked steps with ``zero_padding``), the final state, and
    each of the step's extra results stacked (T, B, W)."""
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
    stacked = [torch.stack(per_step[0])] + [torch.stack(b) for b in per_step[1:] if saved_widths]
    if zero_padding and mask is not None:
        stacked[0] = torch.where(mask.unsqueeze(-1), stacked[0], stacked[0].new_zeros(()))
    return stacked, state, [torch.stack(b) for b in saved]


def _project(x: Tensor, w_ih: Tensor, b_ih: Tensor | None) -> Tensor:
    """All steps' input projections in one matrix product: (T, B, D) -> (T, B, G*H)."""
    return torch.nn.functional.linear(x, w_ih, b_ih)


def _placeholder(x: Tensor) -> Tensor:
    return x.new_empty(0)


def initial_state(state: Tensor | None, x: Tensor, w_hh: Tensor) -> Tensor:
    """An initial state, zeros (B, H) where the call passed none (also for the paths of
    :mod:`rnnkit._kernels` that are not the operator)."""
    return x.new_zeros(x.shape[1], w_hh.shape[1]) if state is None else state


def elman(x: Tensor, h0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
          b_hh: Tensor | None, mask: Tensor | None, reverse: bool, relu: bool,
          zero_padding: bool) -> tuple[Tensor, Tensor]:
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh). Returns (states, h_n)."""
    act = torch.relu if relu else torch.tanh

    def step(gi_t: Tensor, state: State) -> tuple[State, tuple[Tensor, ...]]:
        return (elman_step(gi_t, state[0], w_hh, b_hh, act),), ()

    (out,), (h_n,), _ = _run(step, _project(x, w_ih, b_ih), (initial_state(h0, x, w_hh),), mask,
                             reverse, zero_padding, ())
    return out, h_n


def gru(x: Tensor, h0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
        b_hh: Tensor | None, mask: Tensor | None, reverse: bool, zero_padding: bool,
        train: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """PyTorch's GRU. Returns (states, h_n, (r, z, n) per step, W_hn h + b_hn per step)."""
    hidden = w_hh.shape[1]

    def step(gi_t: Tensor, state: State) -> tuple[State, tuple[Tensor, ...]]:
        h, gates, hn = gru_step(gi_t, state[0], w_hh, b_hh)
        return (h,), ((gates, hn) if train else ())

    widths = (3 * hidden, hidden) if train else ()
    (out,), (h_n,), saved = _run(step, _project(x, w_ih, b_ih), (initial_state(h0, x, w_hh),),
                                 mask, reverse, zero_padding, widths)
    if not train:
        return out, h_n, _placeholder(x), _placeholder(x)
    return out, h_n, saved[0], saved[1]


def lstm(x: Tensor, h0: Tensor | None, c0: Tensor | None, w_ih: Tensor, w_hh: Tensor,
         b_ih: Tensor | None, b_hh: Tensor | None, mask: Tensor | None, reverse: bool,
         zero_padding: bool, train: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """LSTM (gates i, f, g, o). Returns (states h, h_n, c_n, activated gates, c per step)."""
    hidden = w_hh.shape[1]

    def step(gi_t: Tensor, state: State) -> tuple[State, tuple[Tensor, ...]]:
        h, c, gates = lstm_step(gi_t, state[0], state[1], w_hh, b_hh)
        return (h, c), ((gates,) if train else ())

    widths = (4 * hidden,) if train else ()
    states = (initial_state(h0, x, w_hh), initial_state(c0, x, w_hh))
    (out, *c_all), (h_n, c_n), saved = _run(step, _project(x, w_ih, b_ih), states, mask,
                                            reverse, zero_padding, widths)
    if not train:
        return out, h_n, c_n, _placeholder(x), _placeholder(x)
    return out, h_n, c_n, saved[0], c_all[0]


_FORWARD = {"elman": elman, "gru": gru, "lstm": lstm}
_STATES = {"elman": 1, "gru": 1, "lstm": 2}


def recurrence_backward(cell: str, grads: Sequence[Tensor], inputs: Sequence[Tensor | None],
                        flags: Sequence[bool], needs: Sequence[bool],
                        create_graph: bool) -> list[Tensor | None]:
    """Gradients of ``cell``'s (states, final states) with respect to its tensor ``inputs``
    (x, the initial states, w_ih, w_hh, b_ih, b_hh, then the mask) by differentiating the
    composite forward pass. ``flags`` are the call's trailing arguments without ``train``;
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
    extra = (False,) if cell != "elman" else ()
    outputs = 1 + _STATES[cell]

    def forward(*values: Tensor) -> tuple[Tensor, ...]:
        tensors = list(inputs)
        for i, value in zip(wanted, values):
            tensors[i] = value
        return tuple(_FORWARD[cell](*tensors, *flags, *extra)[:outputs])

    if create_graph:
        _, pullback = torch.func.vjp(forward, *(inputs[i] for i in wanted))
        found = pullback(tuple(grads))
    else:
        leaves = [inputs[i].detach().requires_grad_() for i in wanted]  # type: ignore[union-attr]
        with torch.enable_grad():
            found = torch.autograd.grad(forward(*leaves), leaves, list(grads), allow_unused=True)
        found = tuple(torch.zeros_like(leaf) if g is None else g for g, leaf in zip(found, leaves))
    for i, g in zip(wanted, found):
        result[i] = g
    return result
