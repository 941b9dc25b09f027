r"""minGRU and minLSTM in ``torch.nn``'s style: :class:`MinGRU`, :class:`MinLSTM` (sequences,
trained with a parallel scan over time) and :class:`MinGRUCell`, :class:`MinLSTMCell` (one step,
for inference and streaming). The equations, and which formulation of Feng et al. 2024 this is
(the log-space one, with the positive candidate ``g``), are in :mod:`rnnkit._kernels.minimal`.

Gates read the input only, so there is no ``weight_hh``: layer k holds ``weight_ih_l{k}``
(G*H, H_in) and ``bias_ih_l{k}`` (G*H,) (``_reverse`` for the backward direction), with
G = 2 (minGRU: blocks z, h) or 3 (minLSTM: f, i, h), initialised U(-1/sqrt(H), 1/sqrt(H)) as
``torch.nn``'s recurrent layers are.

Shapes: input (L, N, H_in) (``batch_first``: (N, L, H_in)) or unbatched (L, H_in); ``hx``
(num_layers * D, N, H) with D = 2 if ``bidirectional``; output (L, N, D*H), zero past each
sequence's end; ``h_n`` (num_layers * D, N, H), each sequence's state after its last real step.
``lengths`` (N,) or ``mask`` (N, L) give variable lengths without packing.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._kernels.minimal import GATES, min_sequence, min_step
from ._checks import ShapeError, check_input, step_mask as _step_mask

__all__ = ["MinGRU", "MinGRUCell", "MinLSTM", "MinLSTMCell"]


class _MinRNN(torch.nn.Module):
    cell: str

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, bidirectional: bool = False,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        for what, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        directions = 2 if bidirectional else 1
        width = GATES[self.cell] * hidden_size
        factory = {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            features = input_size if layer == 0 else directions * hidden_size
            for suffix in ("", "_reverse")[:directions]:
                self.register_parameter(f"weight_ih_l{layer}{suffix}", torch.nn.Parameter(
                    torch.empty(width, features, **factory)))
                self.register_parameter(f"bias_ih_l{layer}{suffix}", torch.nn.Parameter(
                    torch.empty(width, **factory)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            torch.nn.init.uniform_(weight, -bound, bound)

    def forward(self, input: Tensor, hx: Tensor | None = None, *,
                lengths: Tensor | None = None,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        name = type(self).__name__
        directions = 2 if self.bidirectional else 1
        if not isinstance(input, Tensor) or input.dim() not in (2, 3):
            raise ShapeError(f"{name}: expected a 2-D (unbatched) or 3-D input, got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
        batched = input.dim() == 3
        if not batched:
            if lengths is not None or mask is not None:
                raise ShapeError(f"{name}: lengths/mask need batched 3-D input")
            input = input.unsqueeze(1)
            hx = None if hx is None else hx.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        x = input  # (T, B, D)
        check_input(x, self.input_size, self.weight_ih_l0.dtype, name)
        steps, batch = x.shape[0], x.shape[1]
        expected = (self.num_layers * directions, batch, self.hidden_size)
        if hx is not None and tuple(hx.shape) != expected:
            raise ShapeError(f"{name}: hx must have shape {expected}, got {tuple(hx.shape)}")
        step_mask = _step_mask(lengths, mask, batch, steps, x.device, name)  # (T, B)
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(("", "_reverse")[:directions]):
                index = layer * directions + direction
                h, h_n = min_sequence(
                    self.cell, x, getattr(self, f"weight_ih_l{layer}{suffix}"),
                    getattr(self, f"bias_ih_l{layer}{suffix}"),
                    None if hx is None else hx[index], step_mask, reverse=direction == 1)
                outputs.append(h)
                finals.append(h_n)
            x = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
            if step_mask is not None:  # zero past each end, also as the next layer's input
                x = x * step_mask.unsqueeze(-1).to(x.dtype)
        h_n = torch.stack(finals)
        if not batched:
            return x.squeeze(1), h_n.squeeze(1)
        return (x.transpose(0, 1) if self.batch_first else x), h_n

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        for flag, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("bidirectional", False)):
            if getattr(self, flag) != default:
                text += f", {flag}={getattr(self, flag)}"
        return text


class MinGRU(_MinRNN):
    """minGRU over sequences (the module docstring; equations in
    :mod:`rnnkit._kernels.minimal`).

    Example::

        >>> out, h_n = MinGRU(4, 8)(torch.randn(5, 3, 4), lengths=torch.tensor([5, 2, 4]))
        >>> tuple(out.shape), tuple(h_n.shape)
        ((5, 3, 8), (1, 3, 8))
    """

    cell = "mingru"


class MinLSTM(_MinRNN):
    """minLSTM over sequences (the module docstring; equations in
    :mod:`rnnkit._kernels.minimal`).

    Example::

        >>> out, h_n = MinLSTM(4, 8, bidirectional=True)(torch.randn(5, 3, 4))
        >>> tuple(out.shape), tuple(h_n.shape)
        ((5, 3, 16), (2, 3, 8))
    """

    cell = "minlstm"


class _MinCell(torch.nn.Module):
    cell: str

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        width = GATES[self.cell] * hidden_size
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = torch.nn.Parameter(torch.empty(width, input_size, **factory))
        self.bias_ih = torch.nn.Parameter(torch.empty(width, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            torch.nn.init.uniform_(weight, -bound, bound)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.dim() not in (1, 2):
            raise ShapeError(f"{name}: Expected input to be 1D or 2D, got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has inconsistent input_size: got "
                             f"{input.shape[-1]} expected {self.input_size}")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        h = x.new_zeros(x.shape[0], self.hidden_size) if hx is None else (
            hx if batched else hx.unsqueeze(0))
        if tuple(h.shape) != (x.shape[0], self.hidden_size):
            raise ShapeError(f"{name}: hx must have shape {(x.shape[0], self.hidden_size)}, "
                             f"got {tuple(h.shape)}")
        out = min_step(self.cell, x, h, self.weight_ih, self.bias_ih)
        return out if batched else out.squeeze(0)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class MinGRUCell(_MinCell):
    """One minGRU step, ``h' = (1 - z) h + z g(k_h)`` (:mod:`rnnkit._kernels.minimal`).

    Example::

        >>> MinGRUCell(4, 2)(torch.randn(3, 4)).shape
        torch.Size([3, 2])
    """

    cell = "mingru"


class MinLSTMCell(_MinCell):
    """One minLSTM step, ``h' = f' h + i' g(k_h)`` (:mod:`rnnkit._kernels.minimal`).

    Example::

        >>> MinLSTMCell(4, 2)(torch.randn(3, 4)).shape
        torch.Size([3, 2])
    """

    cell = "minlstm"
