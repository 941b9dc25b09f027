"""Keras 3's weight constraints: ``constraint(w) -> w'``, applied after every optimizer step.

Give one to a layer (``Dense(4, kernel_constraint=MaxNorm(2.0))``); rnnkit's optimizers apply
it to the weight after each update, as Keras' do (``fit`` does it for ``torch.optim``
optimizers too; in your own loop with one, call :func:`apply_constraints` after the step).
Norms are over ``axis`` (0: each column of a (features, units) kernel), ``eps = 1e-7``::

    MaxNorm(m):                w * clip(n, 0, m) / (eps + n)
    NonNeg():                  w * (w >= 0)
    UnitNorm():                w / (eps + n)
    MinMaxNorm(lo, hi, rate):  w * (rate * clip(n, lo, hi) + (1 - rate) * n) / (eps + n)

with ``n = sqrt(sum(w^2, axis, keepdims=True))``.

Example::

    >>> import torch
    >>> from rnnkit.constraints import NonNeg
    >>> NonNeg()(torch.tensor([-1.0, 2.0])).tolist()
    [-0.0, 2.0]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _registry

EPSILON = 1e-7  # Keras' backend.epsilon()


class Constraint:
    """Base class: ``__call__(w) -> constrained w`` and ``get_config()``."""

    def __call__(self, w: Tensor) -> Tensor:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def _norms(w: Tensor, axis: Any) -> Tensor:
    return torch.sqrt(torch.sum(torch.square(w), dim=axis, keepdim=True))


class MaxNorm(Constraint):
    def __init__(self, max_value: float = 2.0, axis: Any = 0) -> None:
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w: Tensor) -> Tensor:
        norms = _norms(w, self.axis)
        desired = torch.clamp(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w: Tensor) -> Tensor:
        return w * (w >= 0).to(w.dtype)


class UnitNorm(Constraint):
    def __init__(self, axis: Any = 0) -> None:
        self.axis = axis

    def __call__(self, w: Tensor) -> Tensor:
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: Any = 0) -> None:
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w: Tensor) -> Tensor:
        norms = _norms(w, self.axis)
        desired = (self.rate * torch.clamp(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


_REGISTRY = _registry.Registry(
    "constraint", Constraint, [MaxNorm, NonNeg, UnitNorm, MinMaxNorm],
    aliases={"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
             "min_max_norm": MinMaxNorm})


def get(identifier: Any) -> Constraint | Any | None:
    """A constraint from None, a name (``"max_norm"``, ``"non_neg"``, ``"unit_norm"``,
    ``"min_max_norm"``), a ``{"class_name", "config"}`` dict, an instance or a callable."""
    return _REGISTRY.get(identifier)


def serialize(constraint: Any) -> dict[str, Any] | None:
    return None if constraint is None else _REGISTRY.serialize(constraint)


def deserialize(config: dict[str, Any]) -> Constraint:
    return _REGISTRY.deserialize(config)


def apply_constraints(module: torch.nn.Module) -> None:
    """Apply every parameter's ``constraint`` in ``module`` (after an optimizer step that does
    not do it itself, such as a ``torch.optim`` one)."""
    with torch.no_grad():
        for param in module.parameters():
            constraint = getattr(param, "constraint", None)
            if constraint is not None:
                param.copy_(constraint(param))


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm", "non_neg",
           "unit_norm", "min_max_norm", "get", "serialize", "deserialize", "apply_constraints"]
