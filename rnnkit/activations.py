"""Keras 3's activation functions by name, as functions over tensors.

``get(name)`` returns the *same* function object for a name every time, so layers can tell which
activation they were given (the fused kernels implement tanh, sigmoid and relu). ``None`` and
``"linear"`` are the identity. Definitions follow Keras 3 (``keras.activations``), including its
choices that differ from older Keras or PyTorch: ``hard_sigmoid(x) = relu6(x + 3) / 6``,
``leaky_relu`` with ``negative_slope=0.2``, exact (erf) ``gelu``, ``softmax`` over the last axis.

Example::

    >>> import torch
    >>> from rnnkit import activations
    >>> activations.get("hard_sigmoid")(torch.tensor([-3.0, 0.0, 3.0]))
    tensor([0.0000, 0.5000, 1.0000])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _registry

Activation = Callable[[Tensor], Tensor]

__all__ = ["get", "serialize", "deserialize", "names", *[
    "linear", "relu", "relu6", "tanh", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "elu",
    "selu", "softplus", "softsign", "swish", "silu", "gelu", "exponential", "leaky_relu",
    "hard_silu", "hard_swish", "mish",
]]


def linear(x: Tensor) -> Tensor:
    """The identity (``activation=None``)."""
    return x


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return torch.relu(x)


def relu6(x: Tensor) -> Tensor:
    """min(max(x, 0), 6)."""
    return F.relu6(x)


def tanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x))."""
    return torch.sigmoid(x)


def hard_sigmoid(x: Tensor) -> Tensor:
    """Keras 3's piecewise-linear sigmoid: relu6(x + 3) / 6 (0 below -3, 1 above 3)."""
    return F.relu6(x + 3.0) / 6.0


def softmax(x: Tensor) -> Tensor:
    """exp(x) / sum(exp(x)) over the last axis."""
    return torch.softmax(x, dim=-1)


def log_softmax(x: Tensor) -> Tensor:
    return torch.log_softmax(x, dim=-1)


def elu(x: Tensor) -> Tensor:
    """x for x > 0, exp(x) - 1 otherwise (alpha = 1)."""
    return F.elu(x)


def selu(x: Tensor) -> Tensor:
    return F.selu(x)


def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x))."""
    return F.softplus(x)


def softsign(x: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    return F.softsign(x)


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return F.silu(x)


swish = silu


def gelu(x: Tensor) -> Tensor:
    """x * Phi(x) with the exact normal CDF (Keras 3's default, ``approximate=False``)."""
    return F.gelu(x)


def exponential(x: Tensor) -> Tensor:
    return torch.exp(x)


def leaky_relu(x: Tensor) -> Tensor:
    """x for x >= 0, 0.2 * x otherwise (Keras 3's default slope)."""
    return F.leaky_relu(x, negative_slope=0.2)


def hard_silu(x: Tensor) -> Tensor:
    """x * hard_sigmoid(x) (also called hard_swish)."""
    return x * hard_sigmoid(x)


hard_swish = hard_silu


def mish(x: Tensor) -> Tensor:
    """x * tanh(softplus(x))."""
    return F.mish(x)


_REGISTRY = _registry.Registry(
    "activation", None,
    [linear, relu, relu6, tanh, sigmoid, hard_sigmoid, softmax, log_softmax, elu, selu, softplus,
     softsign, silu, gelu, exponential, leaky_relu, hard_silu, mish],
    aliases={"swish": swish, "hard_swish": hard_swish},
)


def names() -> list[str]:
    """Every name ``get`` accepts."""
    return _REGISTRY.names()


def get(identifier: Any) -> Activation:
    """An activation from its name (``"tanh"``), ``None`` (linear), a Keras config dict
    (``{"class_name": "function", "config": "tanh"}``) or any callable (returned as it is)."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        identifier = identifier.get("config", identifier.get("class_name"))
        if isinstance(identifier, dict):  # {"config": {"name": "tanh"}}
            identifier = identifier.get("name")
    if isinstance(identifier, str) or callable(identifier):
        return _REGISTRY.get(identifier)  # type: ignore[no-any-return]
    raise TypeError(f"An activation must be a name, None or a callable, got {identifier!r}")


def serialize(activation: Any) -> str:
    """The name of a built-in activation (``"linear"`` for None); other callables cannot be
    written into a config."""
    name = _REGISTRY.name_of(get(activation), exclude=("swish", "hard_swish"))
    if name is None:
        raise TypeError(
            f"Cannot write the custom activation {activation!r} into a config; pass a built-in "
            f"name ({', '.join(names())}) or rebuild the layer in code"
        )
    return name


def deserialize(name: Any) -> Activation:
    return get(name)
