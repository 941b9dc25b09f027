"""``Dropout``: zeroes a fraction ``rate`` of the inputs during training and scales the rest by
1 / (1 - rate) (inverted dropout, as Keras); the identity at inference::

    y = x * keep / (1 - rate),   keep ~ Bernoulli(1 - rate)   (training)
    y = x                                                      (inference)

``rate`` is in [0, 1] as in Keras 3 (``rate=1`` drops everything: zeros in training).
``noise_shape`` broadcasts one draw across axes, e.g. ``(batch, 1, features)`` drops the same
features at every time step; each entry is None (the input's size), 1 or the input's size.
A mask passes through.

Example::

    >>> import torch
    >>> from rnnkit.layers import Dropout
    >>> layer = Dropout(0.5, seed=1)
    >>> bool((layer(torch.ones(2, 3)) == 1).all())      # inference: the identity
    True
    >>> sorted(set(layer(torch.ones(4, 8), training=True).flatten().tolist()))
    [0.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._base import Layer


def _check_noise_shape(noise_shape: Any) -> tuple[int | None, ...] | None:
    """None, or a tuple of positive ints and Nones (Keras' rule)."""
    if noise_shape is None:
        return None
    if isinstance(noise_shape, (str, bytes)) or not isinstance(noise_shape, (tuple, list)):
        raise ValueError(f"Dropout: noise_shape must be a tuple or list of integers (or None "
                         f"for the input's size), got {noise_shape!r}")
    for size in noise_shape:
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError(f"Dropout: every entry of noise_shape must be an integer or None, "
                             f"got {noise_shape!r}")
        if size <= 0:
            raise ValueError(f"Dropout: noise_shape sizes must be positive integers or None, "
                             f"got {noise_shape!r}")
    return tuple(noise_shape)


class Dropout(Layer):
    supports_masking = True

    def __init__(self, rate: float, noise_shape: Sequence[int | None] | None = None,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout: rate must be a number in [0, 1], got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = _check_noise_shape(noise_shape)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"Dropout: seed must be an int or None, got {seed!r}")
        self.seed = seed
        self._generator: torch.Generator | None = None

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        if not training or self.rate == 0.0:
            return inputs
        shape = inputs.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != inputs.dim():
                raise ValueError(
                    f"Dropout '{self.name}': noise_shape {self.noise_shape} must have the "
                    f"input's rank {inputs.dim()}"
                )
            for size, n in zip(inputs.shape, self.noise_shape):
                if n is not None and n not in (1, size):
                    raise ValueError(
                        f"Dropout '{self.name}': noise_shape {self.noise_shape} does not "
                        f"broadcast to the input's shape {tuple(inputs.shape)}; each entry must "
                        "be None, 1 or the input's size"
                    )
            shape = torch.Size(s if n is None else n for s, n in zip(inputs.shape,
                                                                      self.noise_shape))
        if self.rate == 1.0:
            return torch.zeros_like(inputs)
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator(inputs.device).manual_seed(self.seed)
        noise = torch.rand(shape, generator=self._generator, device=inputs.device)
        keep = (noise >= self.rate).to(inputs.dtype)
        return inputs * keep / (1.0 - self.rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                "seed": self.seed}

    def extra_repr(self) -> str:
        return f"rate={self.rate}, name={self.name!r}"
