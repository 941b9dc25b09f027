"""Keras' GRU and its cell, both conventions (``reset_after=True``, the default, and False).

With ``kernel`` K (D, 3U) and ``recurrent_kernel`` R (U, 3U) split into gate blocks z, r, h,
input bias b and, with ``reset_after=True``, recurrent bias rb (``bias`` is then (2, 3U) =
[b, rb]; with ``reset_after=False`` it is b alone, (3U,))::

    z  = recurrent_activation(x K_z + b_z + h R_z + rb_z)
    r  = recurrent_activation(x K_r + b_r + h R_r + rb_r)
    hh = activation(x K_h + b_h + r * (h R_h + rb_h))       reset_after=True
    hh = activation(x K_h + b_h + (r * h) R_h)              reset_after=False
    h' = z * h + (1 - z) * hh

The cell calls the one GRU equation, :func:`rnnkit._kernels.cells.gru_equation`
(``reset_after=False`` is its ``reset_before``). ``reset_after=True`` is PyTorch's GRU with the
gate blocks reordered (torch: r, z, n); the fused kernel runs it with the blocks permuted by
differentiable indexing, so gradients reach the Keras-layout parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import _kernels, activations
from .._kernels.cells import gru_equation
from ._base import serialize_option
from ._cells import KerasRNN, RecurrentCell
from ._checks import backend_from_use_cudnn
from .rnn import States


_ORDERS: dict[tuple[int, torch.device], Tensor] = {}


def _rzn_order(units: int, device: torch.device) -> Tensor:
    """Column indices that reorder Keras' gate blocks (z, r, h) into torch's (r, z, n): one
    index_select per weight on every call (slices and a concatenation cost several times
    more, more than a tiny GRU's whole recurrence). Kept per size and device."""
    order = None if torch.compiler.is_compiling() else _ORDERS.get((units, device))
    if order is None:
        order = torch.arange(3 * units, device=device).view(3, units)[[1, 0, 2]].reshape(-1)
        if not torch.compiler.is_compiling():
            _ORDERS[(units, device)] = order
    return order


class GRUCell(RecurrentCell):
    """One step of :class:`GRU` (equations in the module docstring).

    Shapes: inputs (B, D), ``states`` a list holding h (B, U); returns ``(h', [h'])``.
    With ``recurrent_dropout`` each gate gets its own dropout masks, as Keras' implementation 1.

    Example::

        >>> import torch
        >>> cell = GRUCell(2)
        >>> h, _ = cell(torch.ones(3, 4), [torch.zeros(3, 2)])
        >>> tuple(h.shape), tuple(cell.bias.shape)
        ((3, 2), (2, 6))
    """

    gates = 3

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        reset_after: bool = True,
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
        self.reset_after = bool(reset_after)
        self.dropout_mask_count = 3 if self.recurrent_dropout > 0 else None

    def _initial_bias(self, dtype: torch.dtype) -> Tensor:
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        return self.bias_initializer(shape, dtype=dtype)

    def call(
        self, inputs: Tensor, states: Any, training: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        h = states[0] if isinstance(states, (list, tuple)) else states
        units = self.units
        input_bias = recurrent_bias = None
        if self.bias is not None:
            input_bias, recurrent_bias = self.bias if self.reset_after else (self.bias, None)

        drop = self.get_dropout_mask(inputs) if training and self.dropout > 0 else None
        kernels = self.kernel.split(units, dim=1)  # K_z, K_r, K_h
        if isinstance(drop, list):  # one mask per gate
            x_z, x_r, x_h = ((inputs * m) @ k for m, k in zip(drop, kernels))
        else:
            x_z, x_r, x_h = ((inputs if drop is None else inputs * drop) @ self.kernel).split(
                units, dim=-1
            )
        if input_bias is not None:
            b_z, b_r, b_h = input_bias.split(units)
            x_z, x_r, x_h = x_z + b_z, x_r + b_r, x_h + b_h

        rec_drop = self.get_recurrent_dropout_mask(h) if training else None
        h_z, h_r, h_h = (h * m for m in rec_drop) if rec_drop is not None else (h, h, h)
        r_z, r_r, r_h = self.recurrent_kernel.split(units, dim=1)  # R_z, R_r, R_h
        rec_z, rec_r = h_z @ r_z, h_r @ r_r
        if recurrent_bias is not None:
            rb_z, rb_r, rb_h = recurrent_bias.split(units)
            rec_z, rec_r = rec_z + rb_z, rec_r + rb_r

        if self.reset_after:  # the reset gate multiplies h R_h + rb_h
            rec_h, reset_before = h_h @ r_h, None
            if recurrent_bias is not None:
                rec_h = rec_h + rb_h
        else:  # it multiplies h, before R_h
            rec_h, reset_before = h_h, r_h
        h_new = gru_equation(x_r, x_z, x_h, rec_r, rec_z, rec_h, h, self.activation,
                             self.recurrent_activation, reset_before=reset_before)[0]
        return h_new, [h_new]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["recurrent_activation"] = serialize_option(
            activations, self._given["recurrent_activation"], self.recurrent_activation
        )
        config["reset_after"] = self.reset_after
        return config


class GRU(KerasRNN):
    """Gated Recurrent Unit (Cho et al. 2014) with Keras 3's arguments and numbers.

    Input (B, T, D); output (B, U), or (B, T, U) with ``return_sequences``; ``return_state``
    adds the final state: ``[output, h_T]``. ``get_weights()`` is ``[kernel (D, 3U),
    recurrent_kernel (U, 3U), bias]`` with bias (2, 3U) when ``reset_after`` (the default) and
    (3U,) otherwise; gate blocks are ordered z, r, h as in Keras.

    The default configuration (tanh, sigmoid, ``reset_after=True``, no ``recurrent_dropout``
    while training) runs the fused GRU kernel; anything else steps the cell in a loop.
    ``backend=`` (or Keras' ``use_cudnn=``) chooses, see :class:`RNN`.

    Example::

        >>> import torch
        >>> layer = GRU(4, return_sequences=True)
        >>> tuple(layer(torch.randn(2, 5, 3)).shape)
        (2, 5, 4)
        >>> layer.count_params()  # 3*(3*4 + 4*4) + 2*3*4
        108
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
        reset_after: bool = True,
        use_cudnn: Any = "auto",
        *,
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        cell = GRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
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
            reset_after=reset_after,
            seed=seed,
            name="gru_cell",
        )
        kwargs.pop("implementation", None)
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            backend=backend_from_use_cudnn("GRU", use_cudnn, backend),
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    def _fast_path_blocker(self, training: bool) -> str | None:
        if not self.cell.reset_after:
            return "reset_after=False (the kernel is the reset-after GRU)"
        return super()._fast_path_blocker(training)

    def _fused_states(
        self, x: Tensor, states: States, mask: Tensor | None
    ) -> tuple[Tensor, States]:
        cell = self.cell
        return fused_states(x, states, cell.kernel, cell.recurrent_kernel, cell.bias, mask,
                            reverse=self.go_backwards, backend=self.kernel_backend)


def torch_layout(kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor | None
                 ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Keras' reset-after GRU weights in torch's layout and gate order: (W_ih, W_hh, b_ih,
    b_hh), by differentiable indexing, so gradients reach the Keras-layout tensors."""
    order = _rzn_order(recurrent_kernel.shape[0], kernel.device)
    b_ih = b_hh = None
    if bias is not None:  # (2, 3U) with reset_after: input and recurrent bias
        b_ih, b_hh = bias.index_select(-1, order).unbind(0)
    # rows selected from the transposed views: contiguous (3U, D) and (3U, U) results, which
    # the kernels take as they are (a transposed result would be copied again in each pass)
    return (kernel.t().index_select(0, order), recurrent_kernel.t().index_select(0, order),
            b_ih, b_hh)


def fused_states(
    x: Tensor, states: States, kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor | None,
    mask: Tensor | None, *, reverse: bool, backend: str = "auto",
) -> tuple[Tensor, States]:
    """Keras' reset-after GRU weights (gate blocks z, r, h) on the fused kernel.

    x (T, B, D) time-major, ``states`` [h (B, U)], ``mask`` (T, B) or None; returns h after
    every step in time order (T, B, U), held at masked steps, and [h_T].
    """
    held, h_n = _kernels.gru(x, states[0], *torch_layout(kernel, recurrent_kernel, bias),
                             mask=mask, reverse=reverse, backend=backend)
    return held, [h_n]


__all__ = ["GRU", "GRUCell", "fused_states", "torch_layout"]
