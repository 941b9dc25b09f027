"""Keras' SimpleRNN (the Elman network) and its cell.

One step, with ``kernel`` K (D, U), ``recurrent_kernel`` R (U, U) and ``bias`` b (U,)::

    h_t = activation(x_t K + b + h_{t-1} R)        output_t = h_t

Weights are kept in Keras' layout, so ``set_weights(keras_layer.get_weights())`` gives Keras'
numbers; the fused Elman kernel runs them as ``w_ih = K^T``, ``w_hh = R^T``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import _kernels
from .._kernels.cells import rnn_equation
from ._base import activation_name
from ._cells import KerasRNN, RecurrentCell
from .rnn import States


class SimpleRNNCell(RecurrentCell):
    """One step of :class:`SimpleRNN`: ``h = activation(x K + b + h_prev R)``.

    Shapes: inputs (B, D), ``states`` a list holding h_prev (B, U); returns ``(h, [h])``.
    ``dropout`` multiplies the inputs and ``recurrent_dropout`` the previous state by a mask
    drawn once per sequence (when ``training``).

    Example::

        >>> import torch
        >>> cell = SimpleRNNCell(2)
        >>> h, (state,) = cell(torch.ones(3, 4), [torch.zeros(3, 2)])
        >>> tuple(h.shape), bool((h == state).all())
        ((3, 2), True)
    """

    gates = 1

    def call(
        self, inputs: Tensor, states: Any, training: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0:
            h_prev = h_prev * self.get_recurrent_dropout_mask(h_prev)
        projected = inputs @ self.kernel
        if self.bias is not None:
            projected = projected + self.bias
        h = rnn_equation(projected, h_prev @ self.recurrent_kernel, self.activation)
        return h, [h]


class SimpleRNN(KerasRNN):
    """Fully-connected RNN whose output is fed back as the next step's state (Keras' SimpleRNN).

    ``h_t = activation(x_t K + b + h_{t-1} R)``; input (B, T, D), output (B, U), or (B, T, U)
    with ``return_sequences``; ``return_state`` adds the final state: ``[output, h_T]``.
    ``get_weights()`` is ``[kernel (D, U), recurrent_kernel (U, U), bias (U,)]``, so
    ``SimpleRNN(3)`` on 10 features has 10*3 + 3*3 + 3 = 42 parameters, as in Keras.

    tanh and relu run on the fused Elman kernel; other activations and ``recurrent_dropout``
    in training run the cell in a loop (``backend=`` chooses, see :class:`RNN`).

    Example::

        >>> import numpy as np
        >>> layer = SimpleRNN(2, return_sequences=True, return_state=True)
        >>> outputs, state = layer(np.eye(4, dtype=np.float32)[None])  # "hell" one-hot
        >>> tuple(outputs.shape), tuple(state.shape)
        ((1, 4, 2), (1, 2))
    """

    fused_activations = {"activation": ("tanh", "relu")}

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        *,
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        cell = SimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name="simple_rnn_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            backend=backend,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    def _fused_states(
        self, x: Tensor, states: States, mask: Tensor | None
    ) -> tuple[Tensor, States]:
        cell = self.cell
        held, h_n = _kernels.rnn(
            x,
            states[0],
            cell.kernel.t(),
            cell.recurrent_kernel.t(),
            cell.bias,
            None,
            nonlinearity=activation_name(cell.activation),  # tanh or relu: see the blocker
            mask=mask,
            reverse=self.go_backwards,
            backend=self.kernel_backend,
        )
        return held, [h_n]


__all__ = ["SimpleRNN", "SimpleRNNCell"]
