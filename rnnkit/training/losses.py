"""Keras 3's losses on tensors: the same formulas, clipping, shape rules and reduction.

A loss turns ``(y_true, y_pred)`` into one value per sample (per time step for sequence
outputs), then reduces them. With ``values`` the per-sample losses and ``w`` the sample weights
(the output mask of a masked model included)::

    "sum_over_batch_size" (default), "mean":  sum(values * w) / values.numel()
    "sum":                                    sum(values * w)
    "mean_with_sample_weight":                sum(values * w) / sum(w)
    None / "none":                            values * w

A mask (batch, time) is folded into ``w`` as Keras does, so that masked steps count for nothing
and the mean runs over the real steps only: ``sum(values * mask) / sum(mask)``.

The per-sample formulas (``axis=-1`` is the class / feature axis, ``eps = 1e-7``)::

    mean_squared_error          mean((y_true - y_pred)^2)
    mean_absolute_error         mean(|y_true - y_pred|)
    binary_crossentropy         mean(-(y log p + (1-y) log(1-p))),  p = clip(y_pred, eps, 1-eps)
                                (from_logits: the numerically stable form on the logits)
    categorical_crossentropy    -sum(y log p),  p = clip(y_pred / sum(y_pred), eps, 1-eps)
                                (from_logits: p = softmax(y_pred), taken as log_softmax)
    sparse_categorical_...      the same with integer labels (batch,) or (batch, 1)

Before a function runs, ``y_true`` and ``y_pred`` whose ranks differ by one trailing axis of size
1 are brought to the same rank (Keras' ``squeeze_or_expand_to_same_rank``), so targets of shape
``(batch,)`` work with outputs of shape ``(batch, 1)``.

Example::

    >>> import torch
    >>> from rnnkit.training import losses
    >>> loss = losses.MeanSquaredError()
    >>> float(loss(torch.tensor([1.0, 2.0]), torch.tensor([[1.5], [2.0]])))
    0.125
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _registry

EPSILON = 1e-7
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# -- tensors and shapes ---------------------------------------------------------------------------
def to_tensor(value: Any, like: Tensor | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """A tensor on ``like``'s device; floating NumPy data becomes float32 (Keras' floatx)."""
    if isinstance(value, Tensor):
        tensor = value
    else:
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"Expected numeric data, got an object array of shape {array.shape}")
        tensor = torch.as_tensor(array)
        if tensor.is_floating_point() and dtype is None:
            tensor = tensor.to(torch.get_default_dtype())
    if like is not None and tensor.device != like.device:
        tensor = tensor.to(like.device)
    return tensor if dtype is None else tensor.to(dtype)


def squeeze_or_expand_to_same_rank(
    x1: Tensor, x2: Tensor, expand_rank_1: bool = True
) -> tuple[Tensor, Tensor]:
    """Make two tensors whose ranks differ by a trailing axis of size 1 the same rank.

    The longer one loses that axis, except that a rank-1 partner is expanded instead (so
    ``(batch,)`` targets meet ``(batch, 1)`` outputs as ``(batch, 1)``).
    """
    r1, r2 = x1.dim(), x2.dim()
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def _prepare(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    y_pred = to_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.get_default_dtype())
    y_true = to_tensor(y_true, like=y_pred, dtype=y_pred.dtype)
    return y_true, y_pred


def _same_shape(name: str, y_true: Tensor, y_pred: Tensor) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: y_true and y_pred must have the same shape, got y_true.shape="
            f"{tuple(y_true.shape)} and y_pred.shape={tuple(y_pred.shape)}"
        )


# -- the per-sample functions ------------------------------------------------------------------
def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor:
    """``mean((y_true - y_pred)^2, axis=-1)``: one value per sample."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_prepare(y_true, y_pred))
    return torch.mean(torch.square(y_true - y_pred), dim=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Tensor:
    """``mean(|y_true - y_pred|, axis=-1)``: one value per sample."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_prepare(y_true, y_pred))
    return torch.mean(torch.abs(y_true - y_pred), dim=-1)


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Binary cross-entropy averaged over ``axis``; probabilities are clipped to
    ``[eps, 1 - eps]``, logits go through the stable ``log_sigmoid`` form."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_prepare(y_true, y_pred))
    _same_shape("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        p = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
        values = -(y_true * torch.log(p) + (1.0 - y_true) * torch.log(1.0 - p))
    return torch.mean(values, dim=axis)


def _log_probabilities(y_pred: Tensor, from_logits: bool, axis: int) -> Tensor:
    if from_logits:
        return F.log_softmax(y_pred, dim=axis)
    p = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
    return torch.log(torch.clamp(p, EPSILON, 1.0 - EPSILON))


def _warn_single_class(name: str, y_pred: Tensor) -> None:
    if y_pred.dim() > 0 and y_pred.shape[-1] == 1:
        warnings.warn(
            f"In loss {name}, expected y_pred.shape to be (batch_size, num_classes) with "
            f"num_classes > 1, got y_pred.shape={tuple(y_pred.shape)}. Consider "
            "'binary_crossentropy' if you only have 2 classes.",
            stacklevel=3,
        )


def categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """``-sum(y_true * log p, axis)`` with one-hot (or soft) targets of y_pred's shape."""
    y_true, y_pred = _prepare(y_true, y_pred)
    _warn_single_class("categorical_crossentropy", y_pred)
    _same_shape("categorical_crossentropy", y_true, y_pred)
    if label_smoothing:
        classes = y_pred.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / classes
    return -torch.sum(y_true * _log_probabilities(y_pred, from_logits, axis), dim=axis)


def integer_labels(y_true: Any, like: Tensor, classes: int, what: str) -> Tensor:
    """Class indices as int64, checked to be whole numbers in ``[0, classes)``."""
    labels = to_tensor(y_true, like=like)
    if labels.is_floating_point():
        if not torch.equal(labels, torch.round(labels)):
            raise ValueError(f"{what}: labels must be whole class indices, got fractional values")
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(
            f"{what}: labels must be in [0, {classes}) for {classes} classes, got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return labels


def _sparse_labels(y_true: Any, y_pred: Tensor, axis: int, what: str) -> Tensor:
    labels = to_tensor(y_true, like=y_pred)
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    expected = list(y_pred.shape)
    del expected[axis]
    if list(labels.shape) != expected:
        raise ValueError(
            f"{what}: y_true must hold one class index per sample, shape {tuple(expected)} (or "
            f"with a trailing 1), got y_true.shape={tuple(to_tensor(y_true).shape)} for "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    return labels


def sparse_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
) -> Tensor:
    """Categorical cross-entropy with integer targets; ``ignore_class`` labels give 0."""
    y_pred = to_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.get_default_dtype())
    name = "sparse_categorical_crossentropy"
    labels = _sparse_labels(y_true, y_pred, axis, name)
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = torch.where(valid, labels, torch.zeros_like(labels))
    classes = y_pred.shape[axis]
    labels = integer_labels(labels, y_pred, classes, name)
    log_p = _log_probabilities(y_pred, from_logits, axis)
    values = -torch.gather(log_p.movedim(axis, -1), -1, labels.unsqueeze(-1)).squeeze(-1)
    if valid is not None:
        values = torch.where(valid, values, torch.zeros_like(values))
    return values


# -- reduction ----------------------------------------------------------------------------------
def _check_reduction(reduction: Any) -> str | None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def apply_mask(sample_weight: Tensor | None, mask: Tensor | None, reduction: Any) -> Any:
    """Fold a mask into the sample weights; for mean reductions the real entries are scaled by
    ``total / valid`` so that the mean runs over the real entries only."""
    if mask is None:
        return sample_weight
    mask = mask.to(torch.get_default_dtype() if sample_weight is None else sample_weight.dtype)
    if reduction in ("mean", "sum_over_batch_size"):
        valid = mask.sum()
        scale = torch.where(valid > 0, mask.numel() / valid.clamp_min(1e-38), valid * 0)
        mask = mask * scale
    if sample_weight is None:
        return mask
    mask, sample_weight = squeeze_or_expand_to_same_rank(mask, sample_weight)
    return sample_weight * mask


def reduce_weighted_values(
    values: Tensor,
    sample_weight: Any = None,
    mask: Tensor | None = None,
    reduction: str | None = "sum_over_batch_size",
) -> Tensor:
    """Keras' reduction of per-sample losses (see the module docstring)."""
    weight = None if sample_weight is None else to_tensor(sample_weight, like=values)
    if mask is not None:
        mask = to_tensor(mask, like=values)
        mask, _ = squeeze_or_expand_to_same_rank(mask, values)
        if mask.shape != values.shape:
            mask = None  # a mask for another shape (e.g. per step while the loss is per sample)
    weight = apply_mask(weight, mask, reduction)
    if weight is not None:
        weight = weight.to(values.dtype)
        values, weight = squeeze_or_expand_to_same_rank(values, weight)
        values = values * weight
    if reduction in (None, "none") or values.dim() == 0 or values.shape == (0,):
        return values
    total = torch.sum(values)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and weight is not None:
        divisor = torch.sum(weight)
        return torch.where(divisor != 0, total / divisor, torch.zeros_like(total))
    return total / values.numel()


# -- loss objects --------------------------------------------------------------------------------
class Loss:
    """Base class: ``call(y_true, y_pred)`` gives per-sample values; ``__call__`` reduces them.

    Args:
        name: the loss' name (used in configs).
        reduction: see the module docstring.
    """

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size"):
        self.name = name or _snake_case(type(self).__name__)
        self.reduction = _check_reduction(reduction)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def values_mask(self, y_true: Any, y_pred: Tensor) -> Tensor | None:
        """A mask over the per-sample values the loss itself produces (``ignore_class``)."""
        return None

    def __call__(
        self, y_true: Any, y_pred: Any, sample_weight: Any = None, *, mask: Any = None
    ) -> Tensor:
        y_pred = to_tensor(y_pred)
        if not y_pred.is_floating_point():
            y_pred = y_pred.to(torch.get_default_dtype())
        y_true = to_tensor(y_true, like=y_pred, dtype=y_pred.dtype)  # as Keras: in the loss dtype
        values = self.call(y_true, y_pred)
        own = self.values_mask(y_true, y_pred)
        if mask is not None and own is not None:
            mask = to_tensor(mask, like=values).bool() & own
        elif own is not None:
            mask = own
        return reduce_weighted_values(values, sample_weight, mask, self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class LossFunctionWrapper(Loss):
    """A loss from a function ``fn(y_true, y_pred, **kwargs) -> per-sample values``."""

    def __init__(
        self,
        fn: Callable[..., Tensor],
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true: Any, y_pred: Tensor) -> Tensor:
        values = self.fn(y_true, y_pred, **self._fn_kwargs)
        return to_tensor(values, like=y_pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._fn_kwargs}


class MeanSquaredError(LossFunctionWrapper):
    """``mean((y_true - y_pred)^2)`` over the last axis, then the reduction."""

    def __init__(self, reduction: str | None = "sum_over_batch_size",
                 name: str = "mean_squared_error") -> None:
        super().__init__(mean_squared_error, reduction=reduction, name=name)


class MeanAbsoluteError(LossFunctionWrapper):
    """``mean(|y_true - y_pred|)`` over the last axis, then the reduction."""

    def __init__(self, reduction: str | None = "sum_over_batch_size",
                 name: str = "mean_absolute_error") -> None:
        super().__init__(mean_absolute_error, reduction=reduction, name=name)


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary cross-entropy for 0/1 targets; ``from_logits=True`` when y_pred are logits."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str | None = "sum_over_batch_size",
                 name: str = "binary_crossentropy") -> None:
        super().__init__(binary_crossentropy, reduction=reduction, name=name,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing),
                         axis=axis)


class CategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy for one-hot targets of y_pred's shape."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str | None = "sum_over_batch_size",
                 name: str = "categorical_crossentropy") -> None:
        super().__init__(categorical_crossentropy, reduction=reduction, name=name,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing),
                         axis=axis)


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy for integer class targets; ``ignore_class`` labels are masked out."""

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str | None = "sum_over_batch_size",
                 name: str = "sparse_categorical_crossentropy") -> None:
        super().__init__(sparse_categorical_crossentropy, reduction=reduction, name=name,
                         from_logits=bool(from_logits), ignore_class=ignore_class)

    def values_mask(self, y_true: Any, y_pred: Tensor) -> Tensor | None:
        ignore = self._fn_kwargs["ignore_class"]
        if ignore is None:
            return None
        return _sparse_labels(y_true, y_pred, -1, self.name) != ignore


# -- lookup ---------------------------------------------------------------------------------------
_snake_case = _registry.snake_case  # the one snake_case (Keras' automatic names)


_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}
_LOSS_CLASSES = (MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy,
                 CategoricalCrossentropy, SparseCategoricalCrossentropy)
_REGISTRY = _registry.Registry(
    "loss", Loss, _LOSS_CLASSES,
    expected=f"one of {sorted(_FUNCTIONS)} or {sorted(c.__name__ for c in _LOSS_CLASSES)}, "
             "a Loss object or a function (y_true, y_pred) -> values",
    plural="losses", advice="compile the loaded model again with your loss",
)
_CLASS_OF_FUNCTION = {
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    binary_crossentropy: BinaryCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
}


def get(identifier: Any) -> Loss | None:
    """A :class:`Loss` from a name (``"mse"``, ``"binary_crossentropy"``, ``"MeanSquaredError"``,
    ...), a Loss class or instance, a ``{"class_name", "config"}`` dict, or a function
    ``fn(y_true, y_pred) -> per-sample values``. ``None`` stays ``None``."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            function = _FUNCTIONS[identifier]
            return _CLASS_OF_FUNCTION[function](name=identifier)
        return _REGISTRY.get(identifier)  # type: ignore[no-any-return]
    if inspect.isclass(identifier) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and identifier in _CLASS_OF_FUNCTION:
        return _CLASS_OF_FUNCTION[identifier](name=identifier.__name__)
    if callable(identifier):
        return LossFunctionWrapper(identifier, name=getattr(identifier, "__name__", "loss"))
    raise TypeError(f"Could not interpret loss {identifier!r} ({type(identifier).__name__})")


def serialize(loss: Loss) -> dict[str, Any]:
    """``{"class_name", "config"}`` for a built-in loss; a TypeError for a user's function."""
    spec = _REGISTRY.serialize(loss)
    spec["config"].pop("fn", None)
    return spec


def deserialize(config: dict[str, Any]) -> Loss:
    """The inverse of :func:`serialize` (rnnkit's loss classes and registered ones)."""
    return _REGISTRY.deserialize(config)  # type: ignore[no-any-return]


__all__ = [
    "Loss",
    "LossFunctionWrapper",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "get",
    "serialize",
    "deserialize",
    "squeeze_or_expand_to_same_rank",
    "reduce_weighted_values",
]
