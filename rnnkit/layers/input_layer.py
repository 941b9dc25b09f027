"""``Input(shape)`` / ``InputLayer``: declares a model's input shape (and dtype) up front.

``Sequential([Input(shape=(10, 4)), SimpleRNN(8)])`` builds at once, so ``summary()`` works
before any data is seen. ``shape`` excludes the batch; ``None`` marks a free size (the time axis
of variable-length data). An ``InputLayer`` computes nothing: it only carries the shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from . import _symbolic
from ._base import Layer, Shape

DTYPES = ("float32", "float64", "float16", "bfloat16", "int32", "int64", "int16", "int8",
          "uint8", "bool")


class InputLayer(Layer):
    """The input marker (see the module docstring). ``batch_shape`` includes the batch size."""

    is_input = True

    def __init__(
        self,
        shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        dtype: str | None = None,
        batch_shape: Sequence[int | None] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if batch_shape is None and shape is None:
            shape = kwargs.pop("input_shape", None)
            batch_shape = kwargs.pop("batch_input_shape", None)
        if (shape is None) == (batch_shape is None):
            raise ValueError("Input needs exactly one of shape= (without the batch) or "
                             "batch_shape= (with it)")
        if batch_shape is None:
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size, *tuple(shape))  # type: ignore[arg-type]
        for dim in batch_shape:
            if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
                raise ValueError(f"Input shape entries must be positive ints or None, got "
                                 f"{tuple(batch_shape)}")
        if dtype is not None and str(dtype) not in DTYPES:
            raise ValueError(f"Input dtype must be one of {DTYPES}, got {dtype!r}")
        super().__init__(name=name, batch_input_shape=tuple(batch_shape), **kwargs)
        self.dtype = None if dtype is None else str(dtype)
        self.built = True
        _symbolic.input_tensor(self, self.batch_input_shape, self.dtype or "float32")

    @property
    def shape(self) -> Shape:
        assert self.batch_input_shape is not None
        return self.batch_input_shape

    def call(self, inputs: Tensor) -> Tensor:
        return inputs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("batch_input_shape", None)
        config.pop("trainable", None)
        return {**config, "batch_shape": list(self.shape), "dtype": self.dtype}

    def extra_repr(self) -> str:
        return f"shape={self.shape}, name={self.name!r}"


def Input(  # noqa: N802 - Keras' name
    shape: Sequence[int | None] | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
    batch_shape: Sequence[int | None] | None = None,
    name: str | None = None,
) -> _symbolic.KerasTensor:
    """Keras' ``Input``: a symbolic tensor to call layers on (``rnnkit.Model(inputs, outputs)``)
    or to put first in a ``Sequential``. Its :class:`InputLayer` is ``x._keras_history[0]``."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                       name=name)
    return layer.output
