"""``TimeDistributed(layer)``: the same layer applied to every time step (many-to-many heads).

For x of shape (B, T, ...) the inner layer sees (B*T, ...) and its output is reshaped back to
(B, T, ...): one weight set shared by all steps, as Keras' ``TimeDistributed``. The mask passes
through to the next layer; masked steps are computed like the others (Keras does the same; the
recurrent layer before it decides what they hold).

Example::

    >>> import torch
    >>> from rnnkit.layers import Dense, TimeDistributed
    >>> TimeDistributed(Dense(2))(torch.ones(3, 5, 4)).shape
    torch.Size([3, 5, 2])
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from ._base import Layer, Shape
from ._serialization import deserialize_layer, serialize_layer


class TimeDistributed(Layer):
    input_dim_is_step_features = True
    supports_masking = True

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps an rnnkit layer, got {type(layer).__name__}")
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 3:
            raise ValueError(
                f"TimeDistributed '{self.name}' expects inputs of shape (batch, time, ...), got "
                f"{input_shape}"
            )
        self.layer.maybe_build((None, *tuple(input_shape)[2:]))
        super().build(input_shape)

    def convert_inputs(self, inputs: Any) -> Tensor:
        return self.layer.convert_inputs(inputs)

    def call(self, inputs: Tensor, mask: Tensor | None = None,
             training: bool = False) -> Tensor:
        if inputs.dim() < 3:
            raise ValueError(
                f"TimeDistributed '{self.name}' expects inputs of shape (batch, time, ...), got "
                f"shape {tuple(inputs.shape)}"
            )
        if mask is not None and tuple(mask.shape[:2]) != tuple(inputs.shape[:2]):
            raise ValueError(
                f"The `mask` passed to the `TimeDistributed` layer has a shape "
                f"{tuple(mask.shape)} that does not start with the input's (batch, time) = "
                f"{tuple(inputs.shape[:2])} (layer '{self.name}')"
            )
        batch, steps = inputs.shape[:2]
        kwargs: dict[str, Any] = {}
        arguments = self.layer._call_arguments()
        if "training" in arguments:
            kwargs["training"] = training
        if mask is not None and "mask" in arguments:
            kwargs["mask"] = mask.reshape(batch * steps, *mask.shape[2:])
        flat = inputs.reshape(batch * steps, *inputs.shape[2:])  # (B*T, ...)
        outputs = self.layer(flat, **kwargs)
        return outputs.reshape(batch, steps, *outputs.shape[1:])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        inner = self.layer.compute_output_shape((input_shape[0], *tuple(input_shape)[2:]))
        assert isinstance(inner, tuple)
        return (input_shape[0], input_shape[1], *inner[1:])

    def keras_weights(self) -> list[torch.nn.Parameter]:
        return self.layer.keras_weights()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": serialize_layer(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = copy.deepcopy(config)
        config["layer"] = deserialize_layer(config["layer"])
        return cls(**config)
