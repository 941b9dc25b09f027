"""``torch.nn``-compatible single-step cells: RNNCell, GRUCell, LSTMCell.

Same parameters (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``), shapes and
``forward(input, hx=None)`` as ``torch.nn``; the equations are those of ``rnnkit._kernels.cells``.
Input (N, H_in) or unbatched (H_in,); state (N, H) or (H,).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._kernels import elman_cell, gru_cell, lstm_cell


class _CellBase(torch.nn.Module):
    gates: int = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for label, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        rows = self.gates * hidden_size
        self.weight_ih = torch.nn.Parameter(torch.empty(rows, input_size, **factory))
        self.weight_hh = torch.nn.Parameter(torch.empty(rows, hidden_size, **factory))
        if bias:
            self.bias_ih = torch.nn.Parameter(torch.empty(rows, **factory))
            self.bias_hh = torch.nn.Parameter(torch.empty(rows, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            torch.nn.init.uniform_(weight, -bound, bound)

    def _prepare(self, input: Tensor, states: list[Tensor | None]) -> tuple[Tensor, list[Tensor], bool]:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name} expects a Tensor input, got {type(input).__name__}")
        if input.dim() not in (1, 2):
            raise ValueError(
                f"{name} expects a 2-D (batched) or 1-D (unbatched) input, got shape {tuple(input.shape)}"
            )
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name} input's last dimension must equal input_size={self.input_size}, "
                f"got {input.shape[-1]}"
            )
        if input.dtype != self.weight_ih.dtype:
            raise ValueError(
                f"{name} input dtype ({input.dtype}) does not match the parameters' dtype "
                f"({self.weight_ih.dtype})"
            )
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
        expected = (input.shape[0], self.hidden_size)
        ready = []
        for label, state in zip(("hx", "cx"), states):
            if state is None:
                ready.append(input.new_zeros(expected))
                continue
            want = expected if batched else (self.hidden_size,)
            if tuple(state.shape) != want:
                raise ValueError(f"{name}: expected {label} of shape {want}, got {tuple(state.shape)}")
            ready.append(state if batched else state.unsqueeze(0))
        return input, ready, batched

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        return text


class RNNCell(_CellBase):
    r""":math:`h' = \tanh(x W_{ih}^T + b_{ih} + h W_{hh}^T + b_{hh})` (or ReLU).

    Example::

        >>> cell = RNNCell(4, 2)
        >>> cell(torch.randn(3, 4)).shape
        torch.Size([3, 2])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: torch.dtype | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, [hx])
        out = elman_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                         self.nonlinearity)
        return out if batched else out.squeeze(0)


class GRUCell(_CellBase):
    """One GRU step in PyTorch's formulation (see :class:`rnnkit.nn.GRU`)."""

    gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, [hx])
        out = gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else out.squeeze(0)


class LSTMCell(_CellBase):
    """One LSTM step; ``hx`` is ``(h, c)`` and so is the result (see :class:`rnnkit.nn.LSTM`)."""

    gates = 4

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        states: list[Tensor | None] = [None, None] if hx is None else list(hx)
        if len(states) != 2:
            raise ValueError(f"LSTMCell expects hx as a tuple (h, c), got {len(states)} tensor(s)")
        x, (h, c), batched = self._prepare(input, states)
        h, c = lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))
