"""``Dense``: y = activation(x @ kernel + bias) over the last axis, as Keras' ``Dense``.

The kernel is (features, units), Keras' layout, so ``get_weights()`` is ``[kernel, bias]`` with
Keras' shapes. Any input rank works: (B, D) -> (B, units), (B, T, D) -> (B, T, units). A mask
passes through unchanged (Keras 3's Dense supports masking).

Example::

    >>> import torch
    >>> from rnnkit.layers import Dense
    >>> Dense(3, activation="relu")(torch.ones(2, 5, 4)).shape
    torch.Size([2, 5, 3])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import activations, constraints, initializers, regularizers
from ._base import Layer, Shape, serialize_option, weight_options_config
from ._checks import check_units, reject_unsupported


class Dense(Layer):
    """A densely connected layer on the last axis.

    Args:
        units: the output size.
        activation: a name from ``rnnkit.activations``, a callable, or None (linear).
        use_bias: add a bias vector.
        kernel_initializer / bias_initializer: names, configs or callables
            (default ``"glorot_uniform"`` / ``"zeros"``, as Keras).
        kernel_regularizer / bias_regularizer / activity_regularizer: penalties added to the
            loss (:mod:`rnnkit.regularizers`).
        kernel_constraint / bias_constraint: applied after each optimizer step
            (:mod:`rnnkit.constraints`).
    """

    supports_masking = True

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        reject_unsupported("Dense", {"lora_rank": kwargs.pop("lora_rank", None)})
        super().__init__(**kwargs)
        self._given_options = {"kernel_regularizer": kernel_regularizer,
                               "bias_regularizer": bias_regularizer,
                               "kernel_constraint": kernel_constraint,
                               "bias_constraint": bias_constraint}
        self._set_weight_options("kernel", kernel_regularizer, kernel_constraint)
        self._set_weight_options("bias", bias_regularizer, bias_constraint)
        self.units = check_units("Dense", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self._given = {"activation": activation, "kernel_initializer": kernel_initializer,
                       "bias_initializer": bias_initializer}
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.register_parameter("kernel", None)
        self.register_parameter("bias", None)

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1] if input_shape else None
        if features is None:
            raise ValueError(
                f"Dense '{self.name}' needs a known last dimension, got input shape {input_shape}"
            )
        dtype = torch.get_default_dtype()
        self.kernel = torch.nn.Parameter(self.kernel_initializer((features, self.units),
                                                                 dtype=dtype))
        if self.use_bias:
            self.bias = torch.nn.Parameter(self.bias_initializer((self.units,), dtype=dtype))
        super().build(input_shape)

    def call(self, inputs: Tensor) -> Tensor:
        features = self.kernel.shape[0]
        if inputs.dim() == 0 or inputs.shape[-1] != features:
            raise ValueError(
                f"Dense '{self.name}' was built for inputs with {features} features on the last "
                f"axis, got shape {tuple(inputs.shape)}"
            )
        if not inputs.is_floating_point():
            inputs = inputs.to(self.kernel.dtype)
        outputs = inputs @ self.kernel  # (..., units)
        if self.bias is not None:
            outputs = outputs + self.bias
        # Keras lets activation be set to None after construction: linear
        return outputs if self.activation is None else self.activation(outputs)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=serialize_option(activations, self._given["activation"], self.activation),
            use_bias=self.use_bias,
            kernel_initializer=serialize_option(
                initializers, self._given["kernel_initializer"], self.kernel_initializer
            ),
            bias_initializer=serialize_option(
                initializers, self._given["bias_initializer"], self.bias_initializer
            ),
        )
        config.update(weight_options_config(self))
        return config

    def extra_repr(self) -> str:
        return f"units={self.units}, name={self.name!r}"

