"""What SimpleRNN, GRU and LSTM share: their cells' Keras arguments and weights
(:class:`RecurrentCell`) and the layer around them (:class:`KerasRNN`: the cell's options as
layer attributes and config entries, and when the fused kernels may run)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import activations, initializers
from ._base import Layer, Shape, activation_name, serialize_option, weight_options_config
from ._checks import check_rate, check_units
from ._dropout_cell import DropoutRNNCell
from .rnn import RNN, States, to_weights_dtype

class RecurrentCell(Layer, DropoutRNNCell):
    """What the built-in cells share: Keras' arguments, their ``kernel`` (D, G*U),
    ``recurrent_kernel`` (U, G*U) and ``bias`` parameters (G gates), and dropout.

    A cell's ``call`` forms its gates' projections in this layout and gate order, with its
    dropout masks, and hands them to its equation in :mod:`rnnkit._kernels.cells`: the same
    equations the composite path and the ``rnnkit.nn`` cells run in torch's layout."""

    gates = 1

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        super().__init__(**kwargs)
        self._given_options = {
            "kernel_regularizer": kernel_regularizer,
            "recurrent_regularizer": recurrent_regularizer,
            "bias_regularizer": bias_regularizer,
            "kernel_constraint": kernel_constraint,
            "recurrent_constraint": recurrent_constraint,
            "bias_constraint": bias_constraint,
        }
        for weight in ("kernel", "recurrent_kernel", "bias"):
            prefix = "recurrent" if weight == "recurrent_kernel" else weight
            self._set_weight_options(weight, self._given_options[f"{prefix}_regularizer"],
                                     self._given_options[f"{prefix}_constraint"])
        self.units = check_units(owner, units)
        self._given = {
            "activation": activation,
            "kernel_initializer": kernel_initializer,
            "recurrent_initializer": recurrent_initializer,
            "bias_initializer": bias_initializer,
        }
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.dropout = check_rate(owner, "dropout", dropout)
        self.recurrent_dropout = check_rate(owner, "recurrent_dropout", recurrent_dropout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"{owner}: seed must be an int or None, got {seed!r}")
        self.seed = seed
        self.state_size: int | list[int] = self.units
        self.output_size = self.units
        # Registered now so that get_weights() follows Keras' order whatever build assigns first.
        self.register_parameter("kernel", None)
        self.register_parameter("recurrent_kernel", None)
        self.register_parameter("bias", None)

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{type(self).__name__} needs a known feature size, got {input_shape}")
        width = self.gates * self.units
        dtype = torch.get_default_dtype()
        self.kernel = torch.nn.Parameter(self.kernel_initializer((features, width), dtype=dtype))
        self.recurrent_kernel = torch.nn.Parameter(
            self.recurrent_initializer((self.units, width), dtype=dtype)
        )
        if self.use_bias:
            self.bias = torch.nn.Parameter(self._initial_bias(dtype))
        super().build(input_shape)

    def _initial_bias(self, dtype: torch.dtype) -> Tensor:
        return self.bias_initializer((self.gates * self.units,), dtype=dtype)

    def convert_inputs(self, inputs: Any) -> Tensor:
        return to_weights_dtype(self, inputs)

    def get_initial_state(self, batch_size: int) -> States:
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        like = self.kernel if self.kernel is not None else torch.empty(0)
        return [like.new_zeros(batch_size, size) for size in sizes]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=serialize_option(
                activations, self._given["activation"], self.activation
            ),
            use_bias=self.use_bias,
            kernel_initializer=serialize_option(
                initializers, self._given["kernel_initializer"], self.kernel_initializer
            ),
            recurrent_initializer=serialize_option(
                initializers, self._given["recurrent_initializer"], self.recurrent_initializer
            ),
            bias_initializer=serialize_option(
                initializers, self._given["bias_initializer"], self.bias_initializer
            ),
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            seed=self.seed,
        )
        config.update(weight_options_config(self))
        return config

    def extra_repr(self) -> str:
        return f"units={self.units}, name={self.name!r}"


class KerasRNN(RNN):
    """What SimpleRNN, GRU and LSTM share: their cell's options as layer attributes and config
    entries, and the conditions for the fused kernels."""

    cell: RecurrentCell
    # activations the fused kernel implements, per role
    fused_activations: dict[str, tuple[str, ...]] = {"activation": ("tanh",)}

    def __getattr__(self, name: str) -> Any:
        # Keras exposes the cell's options on the layer (layer.units, layer.dropout, ...).
        try:
            return super().__getattr__(name)
        except AttributeError:
            cell = self._modules.get("cell")
            if cell is not None and name in _CELL_OPTIONS:
                return getattr(cell, name)
            raise

    @property
    def use_cudnn(self) -> bool | str:
        """Keras' ``use_cudnn`` read back from ``backend``: True when a kernel is demanded,
        False for the loop, ``"auto"`` otherwise."""
        return {"loop": False, "fused": True, "compiled": True}.get(self.backend, "auto")

    def _fast_path_blocker(self, training: bool) -> str | None:
        cell = self.cell
        for role, allowed in self.fused_activations.items():
            name = activation_name(getattr(cell, role))
            if name not in allowed:
                return f"{role} must be one of {allowed} (got {cell._given.get(role, name)!r})"
        if training and cell.recurrent_dropout > 0:
            return "recurrent_dropout is applied inside the step, which only the loop does"
        return None

    def _kernel_default_states(self, inputs: Tensor) -> list[Tensor | None]:
        # RecurrentCell's initial states are zeros, which the kernels make themselves
        if type(self.cell).get_initial_state is RecurrentCell.get_initial_state:
            return [None] * len(self.state_size)
        return super()._kernel_default_states(inputs)

    def get_config(self) -> dict[str, Any]:
        config = self._rnn_config()
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "batch_input_shape"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"units={self.cell.units}, " + super().extra_repr()


_CELL_OPTIONS = frozenset(
    {
        "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
        "recurrent_initializer", "bias_initializer", "dropout", "recurrent_dropout", "seed",
        "reset_after", "unit_forget_bias",
    }
)
