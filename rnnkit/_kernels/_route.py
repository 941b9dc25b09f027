"""When a call goes to PyTorch's own kernel instead of rnnkit's: the one place that decides.

``rnnkit._kernels`` asks :func:`prefers_torch_lstm` on every ``backend="auto"`` call and runs
:func:`torch_recurrence` when it says yes. The rule below was measured on one machine
(``bench/speed.py``); a rule that holds on every CPU replaces it here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["needs_grad", "prefers_torch_lstm", "torch_recurrence"]


# Where PyTorch's own kernel measured faster than the compiled one (bench/speed.py): dense
# float32 LSTM inference from batch x hidden = 16384 (medium and large sizes: 0.85-0.93x;
# training there is 1.0-1.3x on ours, and every smaller or masked call is faster on ours).
_TORCH_LSTM_INFERENCE_MIN_WORK = 16384


def prefers_torch_lstm(x: Tensor, w_hh: Tensor, mask: Tensor | None,
                       *tensors: Tensor | None) -> bool:
    """Whether this LSTM call (time-major ``x``, recurrent weights ``w_hh``) runs faster on
    PyTorch's kernel; ``tensors`` are the call's other inputs, to tell inference from training."""
    return (mask is None and x.dtype == torch.float32 and x.device.type == "cpu"
            and not needs_grad(x, *tensors)
            and x.shape[1] * w_hh.shape[1] >= _TORCH_LSTM_INFERENCE_MIN_WORK)


def needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def torch_recurrence(function: Any, x: Tensor, states: tuple[Tensor, ...], w_ih: Tensor,
                     w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
                     reverse: bool) -> tuple[Tensor, ...]:
    """One layer and direction on PyTorch's own kernel (``torch._VF.lstm``, what ``torch.nn``
    calls; differentiable by autograd, though only inference is sent here). Returns (states,
    *final states)."""
    if (b_ih is None) != (b_hh is None):  # the Keras layout has one bias
        b_ih = b_ih if b_ih is not None else torch.zeros_like(b_hh)  # type: ignore[arg-type]
        b_hh = b_hh if b_hh is not None else torch.zeros_like(b_ih)
    params = [w_ih, w_hh] if b_ih is None else [w_ih, w_hh, b_ih, b_hh]
    inputs = x.flip(0) if reverse else x
    train = needs_grad(x, *states, *params)
    hx = tuple(s.unsqueeze(0) for s in states)
    out, *finals = function(inputs, hx if len(hx) > 1 else hx[0], params, b_ih is not None, 1,
                            0.0, train, False, False)
    return (out.flip(0) if reverse else out, *(f[0] for f in finals))
