"""Merge layers: ``Concatenate``, ``Add`` and ``Dot``, with Keras 3's shapes and masks.

Each takes a list of tensors (batch first)::

    Concatenate(axis=-1)([a, b])    cat(a, b) along axis            (B, T, Da + Db)
    Add()([a, b, ...])              a + b + ...                      shapes equal
    Dot(axes)([x, y])               sum_k x[b, ..., k] y[b, ..., k]   batched dot product
                                    over axes (x's, y's); (B, 1) for two (B, D) inputs

Masks (``keras/src/layers/merging``): ``Add`` keeps a mask only when every input has one, and
then it is their OR; ``Concatenate`` fills a missing mask with True, concatenates along
``axis`` and reduces with ANY over the last axis; ``Dot`` returns no mask.

Example::

    >>> import torch
    >>> from rnnkit.layers import Concatenate, Dot
    >>> Concatenate()([torch.ones(2, 3), torch.zeros(2, 4)]).shape
    torch.Size([2, 7])
    >>> Dot(axes=1)([torch.ones(2, 3), torch.ones(2, 3)]).tolist()
    [[3.0], [3.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._base import Layer, Shape, as_tensor, first_weight, training_scope


class ListInputLayer(Layer):
    """A layer called on a list of tensors (merge and attention layers)."""

    min_inputs = 2

    def forward(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A {type(self).__name__} layer ('{self.name}') should be called "
                             f"on a list of inputs. Received: a single input")
        if len(inputs) < self.min_inputs:
            raise ValueError(f"A {type(self).__name__} layer ('{self.name}') should be called "
                             f"on a list of at least {self.min_inputs} inputs. Received "
                             f"{len(inputs)} input(s)")
        tensors = [as_tensor(x) for x in inputs]
        weight = first_weight(self)
        if weight is not None:
            tensors = [t.to(weight.dtype) if t.is_floating_point() else t for t in tensors]
        self.maybe_build([tuple(t.shape) for t in tensors])
        with training_scope(self._resolve_training(kwargs)):
            return self.call(tensors, *args, **kwargs)


def _shape_text(shapes: Sequence[Shape]) -> str:
    return ", ".join(str(tuple(s)) for s in shapes)


class Concatenate(ListInputLayer):
    """Concatenate a list of tensors along ``axis`` (every other axis must match)."""

    supports_masking = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Concatenate axis must be an int, got {axis!r}")
        self.axis = axis

    def build(self, input_shape: Any) -> None:
        shapes = [tuple(s) for s in input_shape]
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(f"A Concatenate layer requires inputs of the same rank; got inputs "
                             f"of shapes {_shape_text(shapes)}")
        rank = ranks.pop()
        axis = self.axis % rank
        if axis == 0:
            raise ValueError("Concatenate cannot join along the batch axis (axis=0)")
        for position in range(1, rank):
            if position == axis:
                continue
            sizes = {s[position] for s in shapes if s[position] is not None}
            if len(sizes) > 1:
                raise ValueError(
                    "A Concatenate layer requires inputs with matching shapes except for the "
                    f"concatenation axis ({self.axis}). Received: input_shape="
                    f"[{_shape_text(shapes)}]"
                )
        super().build(input_shape)

    def call(self, inputs: list[Tensor]) -> Tensor:
        return torch.cat(list(inputs), dim=self.axis)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = [tuple(s) for s in input_shape]
        axis = self.axis % len(shapes[0])
        out = list(shapes[0])
        sizes = [s[axis] for s in shapes]
        out[axis] = None if any(d is None for d in sizes) else sum(sizes)  # type: ignore[arg-type]
        for position in range(1, len(out)):
            if position != axis and out[position] is None:
                out[position] = next((s[position] for s in shapes if s[position] is not None),
                                     None)
        return tuple(out)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Tensor | None:
        if mask is None or not isinstance(mask, (list, tuple)):
            return None
        if all(m is None for m in mask):
            return None
        filled = []
        for tensor, item in zip(inputs, mask):
            if item is None:
                filled.append(torch.ones_like(tensor, dtype=torch.bool))
            elif item.dim() < tensor.dim():
                filled.append(item.unsqueeze(-1).expand(tensor.shape))
            else:
                filled.append(item)
        return torch.cat(filled, dim=self.axis).any(dim=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


class Add(ListInputLayer):
    """The elementwise sum of a list of tensors of the same shape."""

    supports_masking = True

    def build(self, input_shape: Any) -> None:
        shapes = [tuple(s) for s in input_shape]
        first = shapes[0]
        for shape in shapes[1:]:
            if len(shape) != len(first) or any(
                    a is not None and b is not None and a != b and 1 not in (a, b)
                    for a, b in zip(first[1:], shape[1:])):
                raise ValueError(f"Inputs of an Add layer must have the same shape; got "
                                 f"{_shape_text(shapes)}")
        super().build(input_shape)

    def call(self, inputs: list[Tensor]) -> Tensor:
        total = inputs[0]
        for tensor in inputs[1:]:
            total = total + tensor
        return total

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = [tuple(s) for s in input_shape]
        out = []
        for sizes in zip(*shapes):
            known = [d for d in sizes if d is not None and d != 1]
            out.append(known[0] if known else (1 if all(d == 1 for d in sizes) else None))
        return (shapes[0][0], *out[1:])

    def compute_mask(self, inputs: Any, mask: Any = None) -> Tensor | None:
        if mask is None or not isinstance(mask, (list, tuple)):
            return None
        if any(m is None for m in mask):
            return None
        output = mask[0]
        for item in mask[1:]:
            output = output | item
        return output


def _batch_dot(x: Tensor, y: Tensor, axes: tuple[int, int]) -> Tensor:
    """Keras' batch_dot: contract x's axis axes[0] with y's axes[1], batch kept."""
    x = x.movedim(axes[0], -1)  # (B, M..., K)
    y = y.movedim(axes[1], 1)  # (B, K, N...)
    batch, k = x.shape[0], x.shape[-1]
    left, right = x.shape[1:-1], y.shape[2:]
    out = torch.bmm(x.reshape(batch, -1, k), y.reshape(batch, k, -1))  # (B, M, N)
    out = out.reshape(batch, *left, *right)
    return out.unsqueeze(-1) if out.dim() == 1 else out


class Dot(ListInputLayer):
    """The batched dot product of two tensors along ``axes`` (an int for both inputs or a
    pair); ``normalize=True`` L2-normalises both along those axes first (cosine similarity)."""

    supports_masking = False
    min_inputs = 2

    def __init__(self, axes: int | Sequence[int], normalize: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(axes, int):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(f"Invalid type for argument `axes`: it should be a list or an "
                                f"int. Received: axes={axes!r}")
            if len(axes) != 2 or not all(isinstance(a, int) for a in axes):
                raise ValueError(f"Invalid format for argument `axes`: it should contain two "
                                 f"integers. Received: axes={axes!r}")
            axes = [int(a) for a in axes]
        self.axes = axes
        self.normalize = bool(normalize)

    def _axes(self, ranks: Sequence[int]) -> tuple[int, int]:
        if isinstance(self.axes, int):
            return (self.axes % ranks[0], self.axes % ranks[1])
        return (self.axes[0] % ranks[0], self.axes[1] % ranks[1])

    def build(self, input_shape: Any) -> None:
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) != 2:
            raise ValueError(f"A `Dot` layer should be called on a list of 2 inputs. "
                             f"Received: input_shape={shapes}")
        a, b = self._axes([len(s) for s in shapes])
        if 0 in (a, b):
            raise ValueError("Dot cannot contract the batch axis (axis 0)")
        if shapes[0][a] is not None and shapes[1][b] is not None and shapes[0][a] != shapes[1][b]:
            raise ValueError(f"Incompatible input shapes: axis values {shapes[0][a]} (at axis "
                             f"{a}) != {shapes[1][b]} (at axis {b}). Full input shapes: "
                             f"{_shape_text(shapes)}")
        super().build(input_shape)

    def call(self, inputs: list[Tensor]) -> Tensor:
        if len(inputs) != 2:
            raise ValueError(f"A `Dot` layer should be called on exactly 2 inputs. Received "
                             f"{len(inputs)}")
        x, y = inputs
        axes = self._axes([x.dim(), y.dim()])
        if self.normalize:
            x = x / torch.sqrt(torch.clamp((x * x).sum(axes[0], keepdim=True), min=1e-12))
            y = y / torch.sqrt(torch.clamp((y * y).sum(axes[1], keepdim=True), min=1e-12))
        return _batch_dot(x, y, axes)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        first, second = (list(s) for s in input_shape)
        a, b = self._axes([len(first), len(second)])
        first.pop(a)
        second.pop(b)
        second.pop(0)
        shape = first + second
        return tuple(shape) if len(shape) > 1 else (shape[0], 1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


__all__ = ["Concatenate", "Add", "Dot", "ListInputLayer"]
