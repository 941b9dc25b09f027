"""``torch.nn``-compatible single-step cells: RNNCell, GRUCell, LSTMCell.

Subclasses of :class:`torch.nn.RNNCell` / ``GRUCell`` / ``LSTMCell``: the constructor, parameters
(``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``), ``reset_parameters`` and ``extra_repr``
are ``torch.nn``'s own, so ``isinstance(cell, torch.nn.LSTMCell)`` holds. Input (N, H_in) or
unbatched (H_in,); state (N, H) or (H,).

``forward(input, hx=None)`` checks its arguments and runs one step on PyTorch's own fused cell
kernel (``torch._VF.rnn_tanh_cell`` / ``rnn_relu_cell`` / ``gru_cell`` / ``lstm_cell``, what
``torch.nn``'s cells call; the same equations as ``rnnkit._kernels.cells``, which the tests
compare it with, values and gradients). One step is the latency of streaming inference and of
decoding, and there the C++ kernel beats any Python composition of the equations: stepping
``rnnkit._kernels.cells`` ran at 0.6-0.9x ``torch.nn``'s cell at batch 1 (``python -m
rnnkit.bench --step``), each of its dozen small operators paying Python's dispatch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _torchscript
from ._checks import ShapeError


def _prepare(
    cell: torch.nn.RNNCellBase, input: Tensor, states: list[Tensor | None], labels: tuple[str, ...],
) -> tuple[Tensor, list[Tensor], bool]:
    """Batched (N, H_in) input and (N, H) states (zeros for None), after :func:`_checked`'s
    checks. A well-formed call is recognised in a few comparisons (the checks cost a tenth of
    a batch-1 step); anything else goes through the checks, which raise or pass it."""
    if isinstance(input, Tensor):
        dim = input.dim()
        if (dim == 2 or dim == 1) and input.shape[-1] == cell.input_size:
            batched = dim == 2
            x = input if batched else input.unsqueeze(0)
            expected = (x.shape[0], cell.hidden_size)
            ready = []
            for state in states:
                if state is None:
                    ready.append(x.new_zeros(expected))
                    continue
                if state.dim() != dim:
                    break
                state = state if batched else state.unsqueeze(0)
                if state.shape != expected:
                    break
                ready.append(state)
            else:
                if x.dtype == cell.weight_ih.dtype:
                    return x, ready, batched
    return _checked(cell, input, states, labels)


def _checked(
    cell: torch.nn.RNNCellBase, input: Tensor, states: list[Tensor | None], labels: tuple[str, ...],
) -> tuple[Tensor, list[Tensor], bool]:
    """Checks (with ``torch.nn``'s wording), then batched (N, H_in) input and (N, H) states."""
    name = type(cell).__name__
    if not isinstance(input, Tensor):
        raise TypeError(f"{name} expects a Tensor input, got {type(input).__name__}")
    if input.dim() not in (1, 2):
        raise ShapeError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead "
                         f"(input shape {tuple(input.shape)})")
    for label, state in zip(labels, states):
        if state is not None and state.dim() not in (1, 2):
            raise ShapeError(f"{name}: Expected {label} to be 1D or 2D, got {state.dim()}D "
                             f"instead ({label} shape {tuple(state.shape)})")
    if input.shape[-1] != cell.input_size:
        raise ShapeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} "
                         f"expected {cell.input_size} (input shape {tuple(input.shape)})")
    batched = input.dim() == 2
    if not batched:
        input = input.unsqueeze(0)
    ready = []
    for index, state in enumerate(states):
        if state is None:
            ready.append(input.new_zeros(input.shape[0], cell.hidden_size))
            continue
        if state.dim() != input.dim() if batched else state.dim() != 1:
            raise ShapeError(
                f"{name}: for {'batched 2-D' if batched else 'unbatched 1-D'} input, "
                f"{labels[index]} should also be {2 if batched else 1}-D, got shape "
                f"{tuple(state.shape)}"
            )
        state = state if batched else state.unsqueeze(0)
        if state.shape[0] != input.shape[0]:
            raise ShapeError(f"{name}: Input batch size {input.shape[0]} doesn't match "
                             f"hidden{index} batch size {state.shape[0]}")
        if state.shape[1] != cell.hidden_size:
            raise ShapeError(f"{name}: hidden{index} has inconsistent hidden_size: got "
                             f"{state.shape[1]}, expected {cell.hidden_size}")
        ready.append(state)
    weight = cell.weight_ih  # after the shape checks, in torch.nn's order
    if input.dtype != weight.dtype and not torch.is_autocast_enabled(input.device.type):
        raise ValueError(f"{name} input dtype ({input.dtype}) does not match the parameters' "
                         f"dtype ({weight.dtype}); convert the input with .to({weight.dtype}) "
                         f"or the module with .to({input.dtype})")
    return input, ready, batched


class RNNCell(torch.nn.RNNCell):
    r""":math:`h' = \tanh(x W_{ih}^T + b_{ih} + h W_{hh}^T + b_{hh})` (or ReLU).

    ``RNNCell(input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None)``
    as :class:`torch.nn.RNNCell`, except that an unknown ``nonlinearity`` is refused here, not at
    the first call.

    Example::

        >>> cell = RNNCell(4, 2)
        >>> cell(torch.randn(3, 4)).shape
        torch.Size([3, 2])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity {nonlinearity!r}. Select from 'tanh' or 'relu'."
            )
        super().__init__(input_size, hidden_size, bias, nonlinearity, device, dtype)

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """What ``torch.jit.script`` compiles: see :mod:`._torchscript`."""
        return _torchscript.torch_nn_twin(self)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = _prepare(self, input, [hx], ("hidden",))
        step = torch._VF.rnn_tanh_cell if self.nonlinearity == "tanh" else torch._VF.rnn_relu_cell
        out = step(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else out.squeeze(0)


class GRUCell(torch.nn.GRUCell):
    """One GRU step in PyTorch's formulation (see :class:`rnnkit.nn.GRU`).

    Example::

        >>> GRUCell(4, 2)(torch.randn(3, 4)).shape
        torch.Size([3, 2])
    """

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """What ``torch.jit.script`` compiles: see :mod:`._torchscript`."""
        return _torchscript.torch_nn_twin(self)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = _prepare(self, input, [hx], ("hidden",))
        out = torch._VF.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih,
                                 self.bias_hh)
        return out if batched else out.squeeze(0)


class LSTMCell(torch.nn.LSTMCell):
    """One LSTM step; ``hx`` is ``(h, c)`` and so is the result (see :class:`rnnkit.nn.LSTM`).

    Example::

        >>> h, c = LSTMCell(4, 2)(torch.randn(3, 4))
        >>> h.shape, c.shape
        (torch.Size([3, 2]), torch.Size([3, 2]))
    """

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """What ``torch.jit.script`` compiles: see :mod:`._torchscript`."""
        return _torchscript.torch_nn_twin(self)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        states: list[Tensor | None] = [None, None] if hx is None else list(hx)
        if len(states) != 2:
            raise ValueError(f"LSTMCell expects hx as a tuple (h, c), got {len(states)} tensor(s)")
        x, (h, c), batched = _prepare(self, input, states, ("hx[0]", "hx[1]"))
        h, c = torch._VF.lstm_cell(x, (h, c), self.weight_ih, self.weight_hh, self.bias_ih,
                                   self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))
