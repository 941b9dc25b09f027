"""Keras-style minGRU and minLSTM (Feng et al. 2024): :class:`MinGRU` / :class:`MinLSTM`
layers, trained with a parallel scan over time, and their cells :class:`MinGRUCell` /
:class:`MinLSTMCell` (one step, for ``RNN(cell)`` and streaming). The equations and the
formulation (the paper's log-space one) are in :mod:`rnnkit._kernels.minimal`.

The cell holds ``kernel`` (D, G*U) and ``bias`` (G*U,), blocks ``z, h`` (minGRU, G = 2) or
``f, i, h`` (minLSTM, G = 3); there is no recurrent kernel. The layers take ``RNN``'s arguments
(``return_sequences``, ``return_state``, ``go_backwards``, ``stateful``, masks) and Keras' mask
semantics; ``backend="loop"`` steps the cell instead of the scan (the same numbers).

Example::

    >>> import torch
    >>> layer = MinGRU(8, return_sequences=True)
    >>> tuple(layer(torch.randn(2, 5, 3)).shape)
    (2, 5, 8)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import initializers
from .._kernels.minimal import GATES, min_sequence, min_step
from ._base import Layer, Shape, serialize_option
from ._checks import check_units
from .rnn import RNN, States, to_weights_dtype

__all__ = ["MinGRU", "MinGRUCell", "MinLSTM", "MinLSTMCell"]


class _MinCell(Layer):
    kind: str

    def __init__(self, units: int, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = check_units(type(self).__name__, units)
        self.use_bias = bool(use_bias)
        self._given = {"kernel_initializer": kernel_initializer,
                       "bias_initializer": bias_initializer}
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.state_size = self.units
        self.output_size = self.units
        self.register_parameter("kernel", None)
        self.register_parameter("bias", None)

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{type(self).__name__} needs a known feature size, got {input_shape}")
        width = GATES[self.kind] * self.units
        dtype = torch.get_default_dtype()
        self.kernel = torch.nn.Parameter(self.kernel_initializer((features, width), dtype=dtype))
        if self.use_bias:
            self.bias = torch.nn.Parameter(self.bias_initializer((width,), dtype=dtype))
        super().build(input_shape)

    def convert_inputs(self, inputs: Any) -> Tensor:
        return to_weights_dtype(self, inputs)

    def call(self, inputs: Tensor, states: States) -> tuple[Tensor, States]:
        h = min_step(self.kind, inputs, states[0], self.kernel.t(), self.bias)
        return h, [h]

    def get_initial_state(self, batch_size: int) -> States:
        like = self.kernel if self.kernel is not None else torch.empty(0)
        return [like.new_zeros(batch_size, self.units)]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            use_bias=self.use_bias,
            kernel_initializer=serialize_option(
                initializers, self._given["kernel_initializer"], self.kernel_initializer),
            bias_initializer=serialize_option(
                initializers, self._given["bias_initializer"], self.bias_initializer),
        )
        return config

    def extra_repr(self) -> str:
        return f"units={self.units}, name={self.name!r}"


class MinGRUCell(_MinCell):
    """One minGRU step: ``h = (1 - z) h_prev + z g(k_h)``, ``[k_z, k_h] = x kernel + bias``."""

    kind = "mingru"


class MinLSTMCell(_MinCell):
    """One minLSTM step: ``h = f' h_prev + i' g(k_h)``, ``[k_f, k_i, k_h] = x kernel + bias``."""

    kind = "minlstm"


class _MinLayer(RNN):
    cell_class: type[_MinCell]
    cell: _MinCell

    def __init__(self, units: int, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 *, backend: str = "auto", **kwargs: Any) -> None:
        cell = self.cell_class(units, use_bias=use_bias, kernel_initializer=kernel_initializer,
                               bias_initializer=bias_initializer)
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         backend=backend, **kwargs)

    @property
    def units(self) -> int:
        return self.cell.units

    def _fast_path_blocker(self, training: bool) -> str | None:
        return None  # every configuration runs the scan

    def _fused_states(self, x: Tensor, states: States,
                      mask: Tensor | None) -> tuple[Tensor, States]:
        cell = self.cell
        held, h_n = min_sequence(cell.kind, x, cell.kernel.t(), cell.bias, states[0], mask,
                                 reverse=self.go_backwards)
        return held, [h_n]

    def get_config(self) -> dict[str, Any]:
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "batch_input_shape", "dtype"):
            cell_config.pop(key, None)
        return {**self._rnn_config(), **cell_config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"units={self.cell.units}, " + super().extra_repr()


class MinGRU(_MinLayer):
    """minGRU over sequences (B, T, D), by a parallel scan over time (module docstring)."""

    cell_class = MinGRUCell


class MinLSTM(_MinLayer):
    """minLSTM over sequences (B, T, D), by a parallel scan over time (module docstring)."""

    cell_class = MinLSTMCell
