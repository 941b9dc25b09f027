"""``StackedRNNCells``: several cells as one, each step feeding the next (Keras' class).

``RNN([cell_1, ..., cell_n])`` wraps the list in it. For one time step with states
``s = [s^1, ..., s^n]`` (each cell's own list, flattened in order)::

    y^0 = x_t;   y^i, s^i_t = cell_i(y^{i-1}, s^i_{t-1})   for i = 1..n;   output = y^n

so ``state_size`` is every cell's sizes in order (``initial_state`` may be that flat list or
one entry per cell), ``return_state`` returns one entry per cell as Keras 3 does (a tensor for
a one-state cell such as GRUCell, a list for LSTMCell's ``[h, c]``), and the weights are each
cell's, in order (``get_weights()`` is Keras').

Example::

    >>> import torch
    >>> from rnnkit.layers import RNN, GRUCell, LSTMCell
    >>> layer = RNN([LSTMCell(4), GRUCell(2)], return_state=True)
    >>> output, lstm_states, gru_state = layer(torch.randn(3, 5, 6))
    >>> tuple(output.shape), [tuple(t.shape) for t in lstm_states], tuple(gru_state.shape)
    ((3, 2), [(3, 4), (3, 4)], (3, 2))
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._base import Layer, Shape
from ._serialization import deserialize_layer, serialize_layer


def _sizes(cell: Any) -> list[int]:
    size = getattr(cell, "state_size", None)
    return list(size) if isinstance(size, (list, tuple)) else [size]


def _output_size(cell: Any) -> int:
    size = getattr(cell, "output_size", None)
    return int(size) if size is not None else int(_sizes(cell)[0])


class StackedRNNCells(Layer):
    """Cells run one after another within each time step (see the module docstring)."""

    def __init__(self, cells: Sequence[Any], **kwargs: Any) -> None:
        cells = list(cells)
        if not cells:
            raise ValueError("StackedRNNCells needs at least one cell")
        for cell in cells:
            if not callable(getattr(cell, "call", None)) and not isinstance(cell, torch.nn.Module):
                raise TypeError(f"StackedRNNCells: {cell!r} is not an RNN cell (it has no "
                                "call(inputs, states))")
            if getattr(cell, "state_size", None) is None:
                raise ValueError(f"StackedRNNCells: the cell {type(cell).__name__} has no "
                                 "state_size")
        super().__init__(**kwargs)
        self.cells = torch.nn.ModuleList(cells)

    @property
    def state_size(self) -> list[int]:
        return [int(s) for cell in self.cells for s in _sizes(cell)]

    @property
    def output_size(self) -> int:
        return _output_size(self.cells[-1])

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape)
        for cell in self.cells:
            if isinstance(cell, Layer):
                cell.maybe_build(shape)
            elif callable(getattr(cell, "build", None)) and not getattr(cell, "built", False):
                cell.build(shape)
            shape = (*shape[:-1], _output_size(cell))
        super().build(input_shape)

    def group_states(self, flat: Sequence[Any]) -> list[Any]:
        """Flat states (or shapes) as Keras 3 returns them: one entry per cell, a tensor for a
        cell with one int ``state_size``, else a list."""
        grouped: list[Any] = []
        start = 0
        for cell in self.cells:
            count = len(_sizes(cell))
            own = list(flat[start:start + count])
            start += count
            single = not isinstance(getattr(cell, "state_size", None), (list, tuple))
            grouped.append(own[0] if single else own)
        return grouped

    def get_initial_state(self, batch_size: int) -> list[Tensor]:
        states: list[Tensor] = []
        for cell in self.cells:
            make = getattr(cell, "get_initial_state", None)
            if callable(make):
                made = make(batch_size=batch_size)
                states.extend([made] if isinstance(made, Tensor) else list(made))
            else:
                like = next(iter(cell.parameters()), torch.empty(0))
                states.extend(like.new_zeros(batch_size, s) for s in _sizes(cell))
        return states

    def call(self, inputs: Tensor, states: Sequence[Tensor],
             training: bool = False) -> tuple[Tensor, list[Tensor]]:
        new_states: list[Tensor] = []
        start = 0
        for cell in self.cells:
            count = len(_sizes(cell))
            own = list(states[start:start + count])
            start += count
            step = cell.call if isinstance(cell, Layer) or not isinstance(
                cell, torch.nn.Module) else cell
            target = step if step is not cell else cell.forward
            try:
                takes_training = "training" in inspect.signature(target).parameters
            except (TypeError, ValueError):
                takes_training = False
            inputs, own = step(inputs, own, training=training) if takes_training else step(
                inputs, own)
            new_states.extend([own] if isinstance(own, Tensor) else list(own))
        return inputs, new_states

    # -- dropout: every cell's masks are drawn once per call and cleared after it -----------
    def reset_dropout_mask(self) -> None:
        for cell in self.cells:
            if hasattr(cell, "reset_dropout_mask"):
                cell.reset_dropout_mask()

    def reset_recurrent_dropout_mask(self) -> None:
        for cell in self.cells:
            if hasattr(cell, "reset_recurrent_dropout_mask"):
                cell.reset_recurrent_dropout_mask()

    def keras_weights(self) -> list[torch.nn.Parameter]:
        weights: list[torch.nn.Parameter] = []
        for cell in self.cells:
            weights.extend(cell.keras_weights() if isinstance(cell, Layer)
                           else list(cell.parameters()))
        return weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cells": [serialize_layer(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = dict(config)
        cells = [deserialize_layer(spec) for spec in config.pop("cells")]
        return cls(cells, **config)


__all__ = ["StackedRNNCells"]
