"""``RNN(cell)`` over a user's cell without a Python call per step (see
:mod:`rnnkit._kernels.capture`): the Keras loop's step, masking included, captured once per
cell and input signature. :func:`run_captured` returns None when the cell cannot be captured
(the caller then runs the loop, which gives the same numbers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .._kernels.capture import CaptureError, captured_scan
from ._dropout_cell import DropoutRNNCell

if TYPE_CHECKING:
    from .rnn import RNN, States


def _signature(tensors: list[Tensor]) -> tuple[Any, ...]:
    return tuple((tuple(t.shape), t.dtype, t.device, t.requires_grad) for t in tensors)


def run_captured(
    layer: RNN, inputs: Tensor, states: States, mask: Tensor | None, training: bool
) -> tuple[Tensor, Tensor | None, States] | None:
    """Keras' ``backend.rnn`` semantics (see :meth:`RNN._run_loop`) on the captured step, or
    None when the cell cannot take this path: not a ``torch.nn.Module`` (its weights cannot be
    found), dropout masks drawn per call, or a step :func:`captured_scan` refuses."""
    from .rnn import _expand, _state_list

    cell = layer.cell
    if not isinstance(cell, torch.nn.Module):
        return None
    if training and isinstance(cell, DropoutRNNCell) and (cell.dropout or cell.recurrent_dropout):
        return None
    named = dict(cell.named_parameters(remove_duplicate=False))
    named.update(cell.named_buffers(remove_duplicate=False))
    names = sorted(named)
    params = [named[n] for n in names]
    step = layer._cell_step(training)
    zero_output = layer.zero_output_for_mask
    masked = mask is not None
    x = inputs.transpose(0, 1)  # (T, B, D)
    xs = [x] if mask is None else [x, mask.t()]  # mask (T, B)
    if layer.go_backwards:  # the loop's processing order
        xs = [v.flip(0) for v in xs]
    n_states = len(states)

    def body(p: Any, x_t: Any, carry: Any) -> tuple[Tensor, list[Tensor]]:
        previous, old = (carry[0], list(carry[1:])) if masked else (None, list(carry))
        with torch.nn.utils.stateless._reparametrize_module(cell, dict(zip(names, p))):
            output, new = step(x_t[0], old)
        new = _state_list(new)
        if len(new) != n_states:
            raise CaptureError(f"the cell returned {len(new)} state(s), expected {n_states}")
        if masked:
            keep = x_t[1]
            fill = torch.zeros_like(output) if zero_output else previous
            output = torch.where(_expand(keep, output), output, fill)
            new = [torch.where(_expand(keep, n), n, s) for n, s in zip(new, old)]
            return output, [output, *new]
        return output, new

    carry = list(states)
    if masked:  # the previous output, zero before the first real step (as the loop's fill)
        size = layer.output_size
        carry = [inputs.new_zeros(inputs.shape[0], size), *carry]
    key = (tuple(names), _signature(params), _signature(xs), _signature(carry), training,
           masked, zero_output)
    try:
        ys, carried = captured_scan(body, params, xs, carry, owner=cell, key=key)
    except CaptureError:
        return None
    finals = [c[-1] for c in carried]
    last = finals[0] if masked else ys[-1]
    final_states = finals[1:] if masked else finals
    sequence = ys.transpose(0, 1) if layer.return_sequences else None
    return last, sequence, final_states
