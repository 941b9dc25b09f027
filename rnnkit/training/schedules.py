"""Keras 3's learning-rate schedules: ``schedule(step) -> learning rate``.

Give one as an optimizer's ``learning_rate`` (``Adam(learning_rate=ExponentialDecay(...))``):
before each update the optimizer sets every parameter group's ``lr`` to ``schedule(iterations)``
(``iterations`` counts the updates done, from 0), as Keras does. ``torch.optim.lr_scheduler``
schedulers work on rnnkit's optimizers too; use one or the other, not both.

The formulas, with ``s`` the step (float32, as Keras computes them)::

    ExponentialDecay:       lr0 * rate ** (s / decay_steps)            (staircase: floor(s / ...))
    InverseTimeDecay:       lr0 / (1 + rate * s / decay_steps)         (staircase: floor)
    PiecewiseConstantDecay: values[i] for boundaries[i-1] < s <= boundaries[i]
    PolynomialDecay:        (lr0 - end) * (1 - min(s, decay_steps) / decay_steps) ** power + end
    CosineDecay:            lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * min(s, decay_steps) /
                            decay_steps)) + alpha), after a linear warm-up to warmup_target
                            over warmup_steps when warmup_target is given

Example::

    >>> from rnnkit.training.schedules import ExponentialDecay
    >>> schedule = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> round(schedule(10), 6)
    0.05
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _registry

f32 = np.float32


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float`` and ``get_config()``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def _positive(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")


class ExponentialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str = "ExponentialDecay") -> None:
        _positive("ExponentialDecay", "decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: int) -> float:
        p = f32(step) / f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(f32(self.initial_learning_rate) * np.power(f32(self.decay_rate), p))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str = "InverseTimeDecay") -> None:
        _positive("InverseTimeDecay", "decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: int) -> float:
        p = f32(step) / f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(f32(self.initial_learning_rate) / (f32(1) + f32(self.decay_rate) * p))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    def __init__(self, boundaries: list[int], values: list[float],
                 name: str = "PiecewiseConstant") -> None:
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantDecay: values must have one more entry than "
                             f"boundaries, got {len(values)} values and {len(boundaries)} "
                             "boundaries")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(f32(value))
        return float(f32(self.values[-1]))

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate: float, decay_steps: int,
                 end_learning_rate: float = 0.0001, power: float = 1.0, cycle: bool = False,
                 name: str = "PolynomialDecay") -> None:
        _positive("PolynomialDecay", "decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step: int) -> float:
        s, steps = f32(step), f32(self.decay_steps)
        if self.cycle:
            steps = steps * (f32(1) if step == 0 else np.ceil(s / steps))
        else:
            s = min(s, steps)
        p = s / steps
        initial, end = f32(self.initial_learning_rate), f32(self.end_learning_rate)
        return float((initial - end) * np.power(f32(1) - p, f32(self.power)) + end)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class CosineDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 name: str = "CosineDecay", warmup_target: float | None = None,
                 warmup_steps: int = 0) -> None:
        _positive("CosineDecay", "decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step: Any, start: Any) -> float:
        fraction = step / f32(self.decay_steps)
        cosine = f32(0.5) * (f32(1) + np.cos(f32(math.pi) * fraction))
        alpha = f32(self.alpha)
        return float(start * ((f32(1) - alpha) * cosine + alpha))

    def __call__(self, step: int) -> float:
        s, initial = f32(step), f32(self.initial_learning_rate)
        if self.warmup_target is None:
            return self._decay(min(s, f32(self.decay_steps)), initial)
        target, warmup = f32(self.warmup_target), f32(self.warmup_steps)
        s = min(s, f32(self.decay_steps) + warmup)
        if s < warmup:
            return float((target - initial) * (s / warmup) + initial)
        return self._decay(s - warmup, target)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


_REGISTRY = _registry.Registry(
    "learning rate schedule", LearningRateSchedule,
    [ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay, CosineDecay])


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name", "config"}``."""
    return _REGISTRY.serialize(schedule)


def deserialize(config: dict[str, Any]) -> LearningRateSchedule:
    return _REGISTRY.deserialize(config)


__all__ = ["LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay",
           "PiecewiseConstantDecay", "PolynomialDecay", "CosineDecay", "serialize",
           "deserialize"]
