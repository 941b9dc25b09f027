"""``RepeatVector(n)``: (B, D) -> (B, n, D), the same vector at every step (the seeds'
one-to-many topology: one input, a sequence out).

Example::

    >>> import torch
    >>> from rnnkit.layers import RepeatVector
    >>> RepeatVector(3)(torch.ones(2, 4)).shape
    torch.Size([2, 3, 4])
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from ._base import Layer, Shape


class RepeatVector(Layer):
    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"RepeatVector: Expected an integer value for `n`, got {n!r}")
        if n <= 0:
            raise ValueError(f"RepeatVector: n should be a positive integer, got {n}")
        self.n = int(n)

    def call(self, inputs: Tensor) -> Tensor:
        if inputs.dim() != 2:
            raise ValueError(
                f"RepeatVector '{self.name}' expects inputs of shape (batch, features), got "
                f"shape {tuple(inputs.shape)}"
            )
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"RepeatVector expects (batch, features), got {input_shape}")
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}

    def extra_repr(self) -> str:
        return f"n={self.n}, name={self.name!r}"
