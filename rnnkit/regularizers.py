"""Keras 3's weight regularizers: a penalty ``regularizer(w) -> scalar`` added to the loss.

Give one to a layer (``Dense(4, kernel_regularizer=L2(0.01))``, ``LSTM(...,
recurrent_regularizer="l1")``, ``activity_regularizer=`` for the layer's outputs): the layer's
``losses`` then hold the penalties and ``fit``/``evaluate`` add their sum to the loss, as
Keras does (the logged ``loss`` includes them)::

    L1(l1):        l1 * sum(|w|)                      (default l1 = 0.01)
    L2(l2):        l2 * sum(w^2)                      (default l2 = 0.01)
    L1L2(l1, l2):  l1 * sum(|w|) + l2 * sum(w^2)      (defaults 0.0)

In a plain PyTorch loop add ``sum(model.losses)`` to your loss yourself.

Example::

    >>> import torch
    >>> from rnnkit.regularizers import L2
    >>> float(L2(0.5)(torch.tensor([1.0, 2.0])))
    2.5
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import _registry


def _factor(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Regularizer:
    """Base class: ``__call__(w) -> scalar tensor`` and ``get_config()``."""

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class L1(Regularizer):
    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = _factor("L1", "l1", l1)

    def __call__(self, x: Tensor) -> Tensor:
        return self.l1 * torch.sum(torch.abs(x))

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = _factor("L2", "l2", l2)

    def __call__(self, x: Tensor) -> Tensor:
        return self.l2 * torch.sum(torch.square(x))

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


class L1L2(Regularizer):
    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _factor("L1L2", "l1", l1)
        self.l2 = _factor("L1L2", "l2", l2)

    def __call__(self, x: Tensor) -> Tensor:
        value = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.l1:
            value = value + self.l1 * torch.sum(torch.abs(x))
        if self.l2:
            value = value + self.l2 * torch.sum(torch.square(x))
        return value

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


_REGISTRY = _registry.Registry("regularizer", Regularizer, [L1, L2, L1L2],
                               aliases={"l1": L1, "l2": L2, "l1_l2": L1L2, "L1_L2": L1L2})


def get(identifier: Any) -> Regularizer | Any | None:
    """A regularizer from None, a name (``"l1"``, ``"l2"``, ``"l1_l2"``, Keras' defaults), a
    ``{"class_name", "config"}`` dict, an instance or any callable ``w -> scalar``."""
    return _REGISTRY.get(identifier)


def serialize(regularizer: Any) -> dict[str, Any] | None:
    return None if regularizer is None else _REGISTRY.serialize(regularizer)


def deserialize(config: dict[str, Any]) -> Regularizer:
    return _REGISTRY.deserialize(config)


l1, l2, l1_l2 = L1, L2, L1L2

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize",
           "deserialize"]
