"""``Embedding``: integer token ids to dense vectors, as Keras' ``Embedding``.

x of shape (B, T) with ids in [0, input_dim) gives (B, T, output_dim) (any input rank works:
a dimension is appended). With ``mask_zero=True`` id 0 is padding: ``compute_mask`` returns
``x != 0`` and ``Sequential`` passes it to the next layers, so recurrent layers skip the padded
steps (the seeds' sentiment example). ``input_dim`` must then count the pad id too.

Example::

    >>> from rnnkit.layers import Embedding
    >>> layer = Embedding(10, 4, mask_zero=True)
    >>> layer([[3, 5, 0, 0]]).shape, layer.compute_mask([[3, 5, 0, 0]]).tolist()
    (torch.Size([1, 4, 4]), [[True, True, False, False]])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import initializers
from ._base import Layer, Shape, serialize_option, weight_options_config
from ._checks import check_units, reject_unsupported


def as_token_ids(inputs: Any, owner: str) -> Tensor:
    """Token ids as an int64 tensor; float data must hold whole numbers (pad_sequences' float
    output, say), anything else is an error naming the problem."""
    tensor = inputs if isinstance(inputs, Tensor) else torch.as_tensor(np.asarray(inputs))
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{owner} expects integer token ids, got dtype {tensor.dtype}")
    if tensor.is_floating_point():
        if not torch.isfinite(tensor).all() or (tensor != tensor.round()).any():
            raise ValueError(f"{owner} expects integer token ids, got non-integer values")
    return tensor.long()


class Embedding(Layer):
    """A lookup table of ``input_dim`` vectors of size ``output_dim``.

    Args:
        input_dim: the vocabulary size (largest id + 1).
        output_dim: the size of each vector.
        embeddings_initializer: default ``"uniform"`` (U(-0.05, 0.05)), as Keras.
        embeddings_regularizer / activity_regularizer: penalties in :attr:`losses`.
        embeddings_constraint: applied after each optimizer step.
        mask_zero: treat id 0 as padding and emit a mask.
        weights: ``[table]`` of shape (input_dim, output_dim): builds the layer with it.
        input_length: Keras 2's argument; sets the input shape to (batch, input_length).
    """

    input_is_ids = True

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        weights: Any = None,
        input_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        reject_unsupported("Embedding", {"lora_rank": kwargs.pop("lora_rank", None)})
        kwargs.pop("sparse", None)
        if input_length is not None and "input_shape" not in kwargs and (
                "batch_input_shape" not in kwargs):
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        self.input_dim = check_units("Embedding input_dim", input_dim)
        self.output_dim = check_units("Embedding output_dim", output_dim)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self._given_initializer = embeddings_initializer
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self._given_options = {"embeddings_regularizer": embeddings_regularizer,
                               "embeddings_constraint": embeddings_constraint}
        self._set_weight_options("embeddings", embeddings_regularizer, embeddings_constraint)
        self.register_parameter("embeddings", None)
        if weights is not None:  # Keras: build now and set them (the table, or [table])
            self.maybe_build((None, None))
            self.set_weights([weights] if isinstance(weights, (np.ndarray, Tensor)) else weights)

    def build(self, input_shape: Shape | None = None) -> None:
        """Create the table; the input shape does not matter (any shape of ids works)."""
        shape = (self.input_dim, self.output_dim)
        self.embeddings = torch.nn.Parameter(
            self.embeddings_initializer(shape, dtype=torch.get_default_dtype())
        )
        super().build((None, None) if input_shape is None else input_shape)

    def convert_inputs(self, inputs: Any) -> Tensor:
        return as_token_ids(inputs, f"Embedding '{self.name}'")

    def call(self, inputs: Tensor) -> Tensor:
        table = self.embeddings
        # F.embedding: its backward sums the rows' gradients deterministically
        if torch.compiler.is_compiling():
            # A traced graph (torch.export/compile) cannot branch on values; check them as it runs.
            in_range = ((inputs >= 0) & (inputs < self.input_dim)).all()
            torch._assert_async(in_range, f"Embedding '{self.name}' got a token id outside "
                                f"[0, {self.input_dim}); input_dim must be the largest id + 1")
        elif inputs.is_cpu and table.is_cpu and not torch._C._is_tracing():
            # On the CPU F.embedding itself refuses an id out of range (IndexError), so the ids
            # are only searched for the message then (a min and a max cost more than the lookup)
            try:
                return torch.nn.functional.embedding(inputs, table)
            except IndexError:
                error = self._id_error(inputs)
                if error is None:
                    raise
            raise error
        elif (error := self._id_error(inputs)) is not None:
            raise error
        return torch.nn.functional.embedding(inputs.to(table.device), table)

    def _id_error(self, inputs: Tensor) -> ValueError | None:
        """The error for ids outside [0, input_dim), or None when they are all inside."""
        if not inputs.numel():
            return None
        low, high = (int(v) for v in torch.aminmax(inputs))
        if low >= 0 and high < self.input_dim:
            return None
        bad = low if low < 0 else high
        return ValueError(
            f"Embedding '{self.name}' got token id {bad}, outside [0, {self.input_dim}) "
            f"(input_dim={self.input_dim}); input_dim must be the largest id + 1"
        )

    def compute_mask(self, inputs: Any, mask: Tensor | None = None) -> Tensor | None:
        if not self.mask_zero:
            return None
        return as_token_ids(inputs, f"Embedding '{self.name}'") != 0

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=serialize_option(
                initializers, self._given_initializer, self.embeddings_initializer
            ),
            mask_zero=self.mask_zero,
        )
        config.update(weight_options_config(self))
        return config

    def extra_repr(self) -> str:
        return f"{self.input_dim}, {self.output_dim}, mask_zero={self.mask_zero}, name={self.name!r}"
