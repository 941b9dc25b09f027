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

from torch import Tensor

from ._base import Layer, Shape
from ._checks import check_units


class RepeatVector(Layer):
    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = check_units("RepeatVector n", n)

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
