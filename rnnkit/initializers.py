"""Keras 3's weight initializers, by class and by name, drawing from PyTorch's random generator.

An initializer is called as ``init(shape, dtype=torch.float32)`` and returns a tensor. The
distributions follow Keras 3 (``keras.initializers``): fans are computed as Keras does (for a
kernel (fan_in, fan_out); for a recurrent kernel (units, gates*units)), ``GlorotUniform`` draws
from U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)), ``Orthogonal`` from the QR
decomposition of a normal matrix with the signs of R's diagonal, and so on. The random numbers
themselves come from PyTorch, so they differ from Keras' for the same seed (use ``set_weights``
to carry exact weights across).

Without ``seed`` an initializer draws from the global generator (``torch.manual_seed`` makes it
reproducible); with ``seed`` it draws from its own generator seeded afresh on every call, so it
returns the same values each time, as Keras' seeded initializers do.

Example::

    >>> from rnnkit import initializers
    >>> w = initializers.get("orthogonal")((4, 4))
    >>> bool(((w @ w.T) - __import__("torch").eye(4)).abs().max() < 1e-5)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import _registry

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
    "LecunNormal", "Orthogonal", "Identity", "get", "serialize", "deserialize",
]

Shape = Sequence[int]


def compute_fans(shape: Shape) -> tuple[int, int]:
    """Keras' (fan_in, fan_out): a kernel (in, out) gives (in, out); a vector (n,) gives (n, n);
    larger ranks multiply by the receptive field (all but the last two dimensions)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``__call__(shape, dtype)`` and a JSON ``get_config()``."""

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _dtype(dtype: torch.dtype | None) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


class _Random(Initializer):
    """An initializer with a ``seed``: None draws from the global generator, an int from a
    generator seeded afresh on every call (the same values every time)."""

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"{type(self).__name__}: seed must be an int or None, got {seed!r}")
        self.seed = seed

    def _generator(self) -> torch.Generator | None:
        return None if self.seed is None else torch.Generator().manual_seed(self.seed)

    def _normal(self, shape: Shape, dtype: torch.dtype) -> Tensor:
        return torch.randn(tuple(shape), generator=self._generator(), dtype=dtype)

    def _uniform(self, shape: Shape, low: float, high: float, dtype: torch.dtype) -> Tensor:
        u = torch.rand(tuple(shape), generator=self._generator(), dtype=dtype)
        return u * (high - low) + low

    def _truncated(self, shape: Shape, mean: float, std: float, dtype: torch.dtype) -> Tensor:
        out = torch.empty(tuple(shape), dtype=dtype)
        torch.nn.init.trunc_normal_(out, mean, std, mean - 2 * std, mean + 2 * std,
                                    generator=self._generator())
        return out

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class Zeros(Initializer):
    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        return torch.zeros(tuple(shape), dtype=_dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        return torch.ones(tuple(shape), dtype=_dtype(dtype))


class Constant(Initializer):
    """Every entry ``value``; an array ``value`` is broadcast to the shape (Keras allows that,
    e.g. a fixed one-hot embedding matrix as in the seeds' sentiment example)."""

    def __init__(self, value: Any = 0.0) -> None:
        array = np.asarray(value, dtype=np.float64)
        self.value = float(array) if array.ndim == 0 else array.tolist()

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        value = torch.as_tensor(np.asarray(self.value), dtype=_dtype(dtype))
        try:
            return value.broadcast_to(tuple(shape)).clone()
        except RuntimeError:
            raise ValueError(
                f"Constant initializer of shape {tuple(value.shape)} cannot fill a weight of "
                f"shape {tuple(shape)}"
            ) from None

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class RandomNormal(_Random):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        return self._normal(shape, _dtype(dtype)) * self.stddev + self.mean

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class RandomUniform(_Random):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        return self._uniform(shape, self.minval, self.maxval, _dtype(dtype))

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class TruncatedNormal(_Random):
    """Normal(mean, stddev) with values beyond two standard deviations redrawn."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        return self._truncated(shape, self.mean, self.stddev, _dtype(dtype))

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class VarianceScaling(_Random):
    """Variance ``scale / n`` with n = fan_in, fan_out or their mean (``mode``), drawn from a
    truncated normal, a normal or a uniform distribution (``distribution``)."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None) -> None:
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"VarianceScaling: scale must be positive, got {scale!r}")
        if mode not in self._MODES:
            raise ValueError(f"VarianceScaling: mode must be one of {self._MODES}, got {mode!r}")
        distribution = "untruncated_normal" if distribution == "normal" else distribution
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"VarianceScaling: distribution must be one of "
                             f"{self._DISTRIBUTIONS}, got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        dtype = _dtype(dtype)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return self._uniform(shape, -limit, limit, dtype)
        if self.distribution == "untruncated_normal":
            return self._normal(shape, dtype) * math.sqrt(variance)
        # the standard deviation of a unit normal truncated to [-2, 2]
        return self._truncated(shape, 0.0, math.sqrt(variance) / 0.87962566103423978, dtype)

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


def _variance_scaling(name: str, scale: float, mode: str, distribution: str) -> type:
    def __init__(self: VarianceScaling, seed: int | None = None) -> None:
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self: VarianceScaling) -> dict[str, Any]:
        return {"seed": self.seed}

    doc = f"VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})."
    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                            "__doc__": doc, "__module__": __name__})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(_Random):
    """``gain`` times an orthogonal matrix: Q of the QR decomposition of a normal matrix, with
    the signs of R's diagonal (so Q is uniformly distributed). A (rows, cols) weight with rows <
    cols gets orthonormal rows, otherwise orthonormal columns; higher ranks are flattened to
    (prod(shape[:-1]), shape[-1])."""

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a weight of rank 2 or more, got shape {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        normal = self._normal((max(rows, cols), min(rows, cols)), torch.float64)
        q, r = torch.linalg.qr(normal)
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).to(_dtype(dtype))

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, **super().get_config()}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D weights only)."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = float(gain)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> Tensor:
        if len(shape) != 2:
            raise ValueError(f"Identity needs a 2-D weight, got shape {tuple(shape)}")
        return self.gain * torch.eye(int(shape[0]), int(shape[1]), dtype=_dtype(dtype))

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


_REGISTRY = _registry.Registry(
    "initializer", Initializer,
    [Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
     GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal,
     Identity],
    aliases={
        "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
        "random_normal": RandomNormal, "normal": RandomNormal, "random_uniform": RandomUniform,
        "uniform": RandomUniform, "truncated_normal": TruncatedNormal,
        "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
        "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
        "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
        "identity": Identity,
    },
)


def get(identifier: Any) -> Callable[..., Tensor]:
    """An initializer from a name (``"glorot_uniform"``, ``"GlorotUniform"``), a Keras config
    (``{"class_name": "Constant", "config": {"value": 0.5}}``), an instance or any callable
    ``(shape, dtype) -> tensor``."""
    return _REGISTRY.get(identifier)  # type: ignore[no-any-return]


def serialize(initializer: Any) -> dict[str, Any]:
    """Keras' ``{"class_name": ..., "config": ...}`` form of a built-in (or registered)
    initializer."""
    return _REGISTRY.serialize(get(initializer) if isinstance(initializer, str) else initializer)


def deserialize(config: dict[str, Any]) -> Initializer:
    """The inverse of :func:`serialize` (Keras' module key is ignored)."""
    return _REGISTRY.deserialize(config)  # type: ignore[no-any-return]

