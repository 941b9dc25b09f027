"""Keras' LSTM (Hochreiter & Schmidhuber 1997) and its cell.

With ``kernel`` K (D, 4U), ``recurrent_kernel`` R (U, 4U) and ``bias`` b (4U,) split into gate
blocks i, f, c, o (PyTorch's i, f, g, o: the same order, so torch's weights are the transposes)::

    i = recurrent_activation(x K_i + h R_i + b_i)     f = recurrent_activation(x K_f + h R_f + b_f)
    g = activation(x K_c + h R_c + b_c)               o = recurrent_activation(x K_o + h R_o + b_o)
    c' = f * c + i * g                                h' = o * activation(c')

The states are ``[h, c]``; the output is h. ``unit_forget_bias=True`` (the default) starts
b_f at one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _kernels, activations
from .._kernels.cells import lstm_equation
from ._base import serialize_option
from ._cells import KerasRNN, RecurrentCell
from ._checks import backend_from_use_cudnn
from .rnn import States


class LSTMCell(RecurrentCell):
    """One step of :class:`LSTM` (equations in the module docstring).

    Shapes: inputs (B, D), ``states`` = [h (B, U), c (B, U)]; returns ``(h', [h', c'])``.

    Example::

        >>> import torch
        >>> cell = LSTMCell(2)
        >>> h, (h_again, c) = cell(torch.ones(3, 4), [torch.zeros(3, 2), torch.zeros(3, 2)])
        >>> tuple(c.shape), cell.bias.tolist()  # unit_forget_bias: forget block starts at 1
        ((3, 2), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    """

    gates = 4

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("implementation", None)  # Keras' choice of matmul grouping: same numbers
        super().__init__(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            **kwargs,
        )
        self._given["recurrent_activation"] = recurrent_activation
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]
        self.dropout_mask_count = 4 if self.recurrent_dropout > 0 else None

    def _initial_bias(self, dtype: torch.dtype) -> Tensor:
        units = self.units
        if not self.unit_forget_bias:
            return self.bias_initializer((4 * units,), dtype=dtype)
        return torch.cat(
            [
                self.bias_initializer((units,), dtype=dtype),
                torch.ones(units, dtype=dtype),
                self.bias_initializer((2 * units,), dtype=dtype),
            ]
        )

    def call(
        self, inputs: Tensor, states: Any, training: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        h, c = states[0], states[1]
        units = self.units
        drop = self.get_dropout_mask(inputs) if training and self.dropout > 0 else None
        rec_drop = self.get_recurrent_dropout_mask(h) if training else None
        if isinstance(drop, list) or rec_drop is not None:  # one mask per gate
            inputs_g = [inputs * m for m in drop] if drop is not None else [inputs] * 4
            h_g = [h * m for m in rec_drop] if rec_drop is not None else [h] * 4
            kernels = self.kernel.split(units, dim=1)
            recurrents = self.recurrent_kernel.split(units, dim=1)
            z = torch.cat(
                [x @ k + s @ r for x, k, s, r in zip(inputs_g, kernels, h_g, recurrents)], dim=-1
            )
        else:
            z = (inputs if drop is None else inputs * drop) @ self.kernel
            z = z + h @ self.recurrent_kernel
        if self.bias is not None:
            z = z + self.bias
        h_new, c_new, _ = lstm_equation(*z.split(units, dim=-1), c, self.activation,
                                        self.recurrent_activation)  # blocks i, f, c, o
        return h_new, [h_new, c_new]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["recurrent_activation"] = serialize_option(
            activations, self._given["recurrent_activation"], self.recurrent_activation
        )
        config["unit_forget_bias"] = self.unit_forget_bias
        return config


class LSTM(KerasRNN):
    """Long Short-Term Memory layer with Keras 3's arguments and numbers.

    Input (B, T, D); output (B, U), or (B, T, U) with ``return_sequences``; ``return_state``
    adds the final states: ``[output, h_T, c_T]``. ``get_weights()`` is ``[kernel (D, 4U),
    recurrent_kernel (U, 4U), bias (4U,)]`` with gate blocks i, f, c, o as in Keras.

    tanh/sigmoid without ``recurrent_dropout`` in training run the fused LSTM kernel; anything
    else steps the cell in a loop. ``backend=`` (or Keras' ``use_cudnn=``) chooses, see
    :class:`RNN`.

    Example::

        >>> import torch
        >>> outputs, h, c = LSTM(4, return_sequences=True, return_state=True)(torch.randn(2, 5, 3))
        >>> tuple(outputs.shape), tuple(h.shape), tuple(c.shape)
        ((2, 5, 4), (2, 4), (2, 4))
    """

    fused_activations = {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)}

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        use_cudnn: Any = "auto",
        *,
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name="lstm_cell",
        )
        kwargs.pop("implementation", None)
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            backend=backend_from_use_cudnn("LSTM", use_cudnn, backend),
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    def _fused_states(
        self, x: Tensor, states: States, mask: Tensor | None
    ) -> tuple[Tensor, States]:
        cell = self.cell
        return fused_states(x, states, cell.kernel, cell.recurrent_kernel, cell.bias, mask,
                            reverse=self.go_backwards, backend=self.kernel_backend)


def fused_states(
    x: Tensor, states: States, kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor | None,
    mask: Tensor | None, *, reverse: bool, backend: str = "auto",
) -> tuple[Tensor, States]:
    """Keras' LSTM weights (gate blocks i, f, c, o) on the fused kernel.

    x (T, B, D) time-major, ``states`` [h (B, U), c (B, U)], ``mask`` (T, B) or None; returns h
    after every step in time order (T, B, U), held at masked steps, and [h_T, c_T].
    """
    held, h_n, c_n = _kernels.lstm(x, states[0], states[1], kernel.t(), recurrent_kernel.t(),
                                   bias, None, mask=mask, reverse=reverse, backend=backend)
    return held, [h_n, c_n]


__all__ = ["LSTM", "LSTMCell", "fused_states"]
