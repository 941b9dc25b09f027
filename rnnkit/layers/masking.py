"""``Masking``: marks time steps whose features all equal ``mask_value`` as padding.

For x of shape (B, T, D): ``mask[b, t] = any(x[b, t, :] != mask_value)``; the output is x with
the masked steps set to zero (Keras 3's ``Masking``), and the mask goes on to the next layers.

Example::

    >>> import torch
    >>> from rnnkit.layers import Masking
    >>> x = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    >>> Masking(0.0).compute_mask(x).tolist()
    [[True, False]]
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ._base import Layer, as_tensor


class Masking(Layer):
    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def call(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        keep = self.compute_mask(inputs)
        return inputs * keep.unsqueeze(-1).to(inputs.dtype)

    def compute_mask(self, inputs: Any, mask: Tensor | None = None) -> Tensor:
        inputs = as_tensor(inputs)
        if inputs.dim() < 2:
            raise ValueError(
                f"Masking '{self.name}' expects inputs of shape (batch, time, ...), got shape "
                f"{tuple(inputs.shape)}"
            )
        return (inputs != self.mask_value).any(dim=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask_value": self.mask_value}

    def extra_repr(self) -> str:
        return f"mask_value={self.mask_value}, name={self.name!r}"
