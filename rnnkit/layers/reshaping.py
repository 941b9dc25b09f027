"""``Lambda``, ``Flatten`` and ``Reshape``: small glue layers of functional models.

- ``Lambda(function)`` wraps a function of torch tensors (``lambda x: x[:, -1]``). Its code is
  never serialised: saving a model that holds one raises an error saying so (rebuild the model
  in code and use ``save_weights``), as rnnkit never pickles or evaluates code.
- ``Flatten()``: (B, d_1, ..., d_k) -> (B, d_1 * ... * d_k).
- ``Reshape(target_shape)``: (B, ...) -> (B, *target_shape); one entry may be -1.

Example::

    >>> import torch
    >>> from rnnkit.layers import Flatten, Lambda, Reshape
    >>> Flatten()(torch.ones(2, 3, 4)).shape
    torch.Size([2, 12])
    >>> Reshape((4, -1))(torch.ones(2, 12)).shape
    torch.Size([2, 4, 3])
    >>> Lambda(lambda x: 2 * x)(torch.ones(1, 2)).tolist()
    [[2.0, 2.0]]
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from ._base import Layer, Shape


class Lambda(Layer):
    """A layer computing ``function(inputs, **arguments)`` (see the module docstring).

    Args:
        function: takes the input tensor (or list of tensors); it may also take ``mask`` and
            ``training`` keyword arguments.
        output_shape: accepted for Keras compatibility; the shape is found by calling it.
        mask: ``None`` (no output mask), a fixed mask, or ``fn(inputs, mask) -> mask``.
        arguments: extra keyword arguments for ``function``.
    """

    def __init__(self, function: Callable[..., Any], output_shape: Any = None, mask: Any = None,
                 arguments: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda needs a callable, got {type(function).__name__}")
        self.function = function
        self.output_shape_given = output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})
        self.supports_masking = mask is not None
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):  # builtins without a signature
            parameters = {}  # type: ignore[assignment]
        self._takes = {name for name in ("mask", "training") if name in parameters}

    def forward(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        # any structure of tensors goes to the function as it is
        return self.call(inputs, *args, **kwargs)

    def call(self, inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        extra = dict(self.arguments)
        if "mask" in self._takes:
            extra["mask"] = mask
        if "training" in self._takes:
            extra["training"] = training
        return self.function(inputs, **extra)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def get_config(self) -> dict[str, Any]:
        raise TypeError(
            f"Lambda layer '{self.name}' cannot be saved: rnnkit never serialises Python code "
            "(Keras would have to pickle or eval it). Rebuild the model in code and use "
            "save_weights()/load_weights(), or write the computation as a Layer subclass."
        )

    def extra_repr(self) -> str:
        return f"name={self.name!r}, function={getattr(self.function, '__name__', '?')}"


class Flatten(Layer):
    """Flatten every axis after the batch: (B, d_1, ..., d_k) -> (B, prod d_i)."""

    def call(self, inputs: Tensor) -> Tensor:
        return inputs.reshape(inputs.shape[0], -1) if inputs.dim() != 1 else inputs.unsqueeze(-1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else math.prod(rest)  # type: ignore[arg-type]
        return (input_shape[0], size if rest else 1)


class Reshape(Layer):
    """Reshape to ``(batch, *target_shape)``; one entry of ``target_shape`` may be -1."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in target) > 1 or any(d == 0 or d < -1 for d in target):
            raise ValueError(f"Reshape target_shape must hold positive sizes and at most one "
                             f"-1, got {tuple(target_shape)}")
        self.target_shape = target

    def call(self, inputs: Tensor) -> Tensor:
        try:
            return inputs.reshape(inputs.shape[0], *self.target_shape)
        except RuntimeError:
            raise ValueError(f"Reshape '{self.name}': an input of shape {tuple(inputs.shape)} "
                             f"cannot be reshaped to (batch, *{self.target_shape})") from None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        rest = input_shape[1:]
        if -1 not in self.target_shape:
            return (input_shape[0], *self.target_shape)
        if any(d is None for d in rest):
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
        known = math.prod(d for d in self.target_shape if d != -1)
        total = math.prod(rest)  # type: ignore[arg-type]
        if total % known:
            raise ValueError(f"Reshape '{self.name}': {total} values per sample cannot be "
                             f"reshaped to {self.target_shape}")
        return (input_shape[0], *(total // known if d == -1 else d for d in self.target_shape))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


__all__ = ["Lambda", "Flatten", "Reshape"]
