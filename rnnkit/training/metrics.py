"""Keras 3's metrics: running means over the batches of an epoch, accumulated as Keras does.

A metric keeps ``total`` and ``count`` in float32 (Keras' metric variables) and reports
``total / count``. For a per-sample metric with values ``v_i`` (averaged over any further axes,
e.g. time steps) and weights ``w_i`` (1, or the output mask)::

    total += sum_i v_i * w_i        count += sum_i w_i        result = total / count

so an epoch's value is the mean over all its samples: the batch means weighted by batch size.
The loss is tracked the same way (``Mean`` updated with the batch loss and weight batch_size).

``"accuracy"`` / ``"acc"`` is resolved from the first batch as Keras does: binary when the
output's last axis is 1, sparse categorical when the targets have a lower rank than the output
(or a trailing axis of 1 against several classes), categorical otherwise.

Example::

    >>> import torch
    >>> from rnnkit.training import metrics
    >>> m = metrics.BinaryAccuracy()
    >>> m.update_state(torch.tensor([[1.0], [0.0]]), torch.tensor([[0.7], [0.6]]))
    >>> m.result()
    0.5
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import _registry
from . import losses
from .losses import squeeze_or_expand_to_same_rank, to_tensor


# -- per-sample metric functions -----------------------------------------------------------------
def accuracy(y_true: Any, y_pred: Any) -> Tensor:
    """1.0 where ``y_pred == y_true`` exactly, else 0.0."""
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, like=y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return torch.eq(y_true, y_pred.to(y_true.dtype)).to(torch.get_default_dtype())


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Tensor:
    """1.0 where ``(y_pred > threshold) == y_true``: y_pred are probabilities."""
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, like=y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    predicted = (y_pred > threshold).to(y_true.dtype)
    return torch.eq(y_true, predicted).to(torch.get_default_dtype())


def categorical_accuracy(y_true: Any, y_pred: Any) -> Tensor:
    """1.0 where ``argmax(y_pred) == argmax(y_true)`` over the last axis (one-hot targets)."""
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, like=y_pred)
    if not y_true.is_floating_point():  # boolean or integer one-hot rows, as Keras casts them
        y_true = y_true.to(y_pred.dtype)
    labels = torch.argmax(y_true, dim=-1)
    return torch.eq(labels, torch.argmax(y_pred, dim=-1)).to(torch.get_default_dtype())


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Tensor:
    """1.0 where ``argmax(y_pred) == y_true`` (integer labels, shape (batch,) or (batch, 1))."""
    y_pred = to_tensor(y_pred)
    labels = to_tensor(y_true, like=y_pred)
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    predicted = torch.argmax(y_pred, dim=-1).to(labels.dtype)
    return torch.eq(labels, predicted).to(torch.get_default_dtype())


# -- metric objects -----------------------------------------------------------------------------
class Metric:
    """Base class: ``update_state(y_true, y_pred, sample_weight=None)``, ``result()``,
    ``reset_state()``. ``direction`` ("up" / "down") tells callbacks in ``mode="auto"``
    whether larger is better."""

    direction: str | None = None

    def __init__(self, name: str | None = None) -> None:
        self.name = name or losses._snake_case(type(self).__name__)

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def reduce_to_samplewise(values: Tensor, sample_weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """Weighted per-sample values and per-sample weights, as Keras' ``Mean`` takes them."""
    values = values.float()
    if values.dim() == 0:
        values = values.reshape(1)
    if sample_weight is None:
        weight = torch.ones(values.shape[:1], dtype=values.dtype, device=values.device)
    else:
        weight = to_tensor(sample_weight, like=values, dtype=values.dtype)
        values, weight = squeeze_or_expand_to_same_rank(values, weight)
        if weight.dim() > values.dim():
            raise ValueError(
                f"sample_weight of shape {tuple(weight.shape)} has more axes than the metric "
                f"values of shape {tuple(values.shape)}"
            )
        if values.dim() > weight.dim():
            values = values.mean(dim=tuple(range(weight.dim(), values.dim())))
        weight = torch.broadcast_to(weight, values.shape)
        values = values * weight
        if weight.dim() > 1:
            weight = weight.mean(dim=tuple(range(1, weight.dim())))
        elif weight.dim() == 0:
            weight = weight.reshape(1)
    if values.dim() > 1:
        values = values.mean(dim=tuple(range(1, values.dim())))
    return values, weight


class Mean(Metric):
    """The weighted mean of the values given to :meth:`update_state` (float32 sums)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.reset_state()

    def reset_state(self) -> None:
        self.total = torch.zeros((), dtype=torch.float32)
        self.count = torch.zeros((), dtype=torch.float32)

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values = to_tensor(values).detach()
        if sample_weight is not None and not isinstance(sample_weight, Tensor):
            sample_weight = torch.as_tensor(sample_weight, dtype=torch.float32)
        values, weight = reduce_to_samplewise(values, sample_weight)
        self.total = self.total + values.sum().to(torch.float32).cpu()
        self.count = self.count + weight.sum().to(torch.float32).cpu()

    def result(self) -> float:
        if float(self.count) == 0.0:
            return 0.0
        return float(self.total / self.count)


class MeanMetricWrapper(Mean):
    """A running mean of ``fn(y_true, y_pred, **kwargs)`` (per-sample values).

    ``update_state(y_true, y_pred, sample_weight=None, mask=None)``: a (batch, time) ``mask``
    (the model's output mask) weights the per-step values, so masked steps do not count.
    """

    def __init__(self, fn: Callable[..., Tensor], name: str | None = None,
                 direction: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name or getattr(fn, "__name__", None))
        self.fn = fn
        self._fn_kwargs = kwargs
        if direction is not None:
            self.direction = direction

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *,
                     mask: Any = None) -> None:
        with torch.no_grad():
            y_pred = to_tensor(y_pred).detach()
            values = to_tensor(self.fn(y_true, y_pred, **self._fn_kwargs), like=y_pred)
            if mask is not None:
                mask = to_tensor(mask, like=values).to(torch.float32)
                mask, _ = squeeze_or_expand_to_same_rank(mask, values)
                if mask.shape == values.shape:
                    if sample_weight is not None:
                        weight = to_tensor(sample_weight, like=values, dtype=torch.float32)
                        mask, weight = squeeze_or_expand_to_same_rank(mask, weight)
                        sample_weight = weight * mask
                    else:
                        sample_weight = mask
            super().update_state(values, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self._fn_kwargs}


def _is_torchmetric(obj: Any) -> bool:
    """A ``torchmetrics.Metric`` (duck-typed: ``update``, ``compute`` and ``reset``)."""
    return not isinstance(obj, Metric) and all(
        callable(getattr(obj, name, None)) for name in ("update", "compute", "reset"))


class TorchMetric(Metric):
    """A ``torchmetrics`` metric (or any object with ``update(preds, target)``, ``compute()``
    and ``reset()``) in ``compile(metrics=...)``. Targets and predictions first get Keras'
    shape rule (:func:`~rnnkit.training.losses.squeeze_or_expand_to_same_rank`: ``(batch,)``
    targets meet ``(batch, 1)`` outputs as ``(batch, 1)``). It cannot weight samples, so a
    sample weight or an output mask that hides steps is an error rather than ignored."""

    def __init__(self, metric: Any, name: str | None = None) -> None:
        super().__init__(name=name or losses._snake_case(type(metric).__name__))
        self.metric = metric
        higher = getattr(metric, "higher_is_better", None)
        if higher is not None:
            self.direction = "up" if higher else "down"

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *,
                     mask: Any = None) -> None:
        if sample_weight is not None or (mask is not None and not bool(
                to_tensor(mask).bool().all())):
            raise ValueError(f"metric {self.name!r} ({type(self.metric).__name__}) cannot weight "
                             "samples or skip masked steps; use an rnnkit metric for those")
        with torch.no_grad():
            y_pred = to_tensor(y_pred).detach()
            y_true = to_tensor(y_true).to(y_pred.device)
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            if isinstance(self.metric, torch.nn.Module):
                self.metric.to(y_pred.device)
            self.metric.update(y_pred, y_true)

    def result(self) -> float:
        return float(self.metric.compute())

    def reset_state(self) -> None:
        self.metric.reset()


def _outside_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A user's ``fn(y_true, y_pred)`` called after Keras' shape rule, so ``(batch,)`` targets
    against ``(batch, 1)`` outputs are compared sample by sample instead of broadcasting to a
    (batch, batch) table."""

    def call(y_true: Any, y_pred: Any, **kwargs: Any) -> Any:
        y_pred = to_tensor(y_pred)
        y_true, y_pred = squeeze_or_expand_to_same_rank(to_tensor(y_true, like=y_pred), y_pred)
        return fn(y_true, y_pred, **kwargs)

    call.__name__ = getattr(fn, "__name__", "metric")
    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call


class Accuracy(MeanMetricWrapper):
    """How often y_pred equals y_true exactly."""

    direction = "up"

    def __init__(self, name: str = "accuracy") -> None:
        super().__init__(accuracy, name=name)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches 0/1 targets."""

    direction = "up"

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name=name, threshold=float(threshold))


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of y_pred matches the one-hot target's."""

    direction = "up"

    def __init__(self, name: str = "categorical_accuracy") -> None:
        super().__init__(categorical_accuracy, name=name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of y_pred matches the integer label."""

    direction = "up"

    def __init__(self, name: str = "sparse_categorical_accuracy") -> None:
        super().__init__(sparse_categorical_accuracy, name=name)


class MeanSquaredError(MeanMetricWrapper):
    """Running mean squared error."""

    direction = "down"

    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(losses.mean_squared_error, name=name)


class MeanAbsoluteError(MeanMetricWrapper):
    """Running mean absolute error."""

    direction = "down"

    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(losses.mean_absolute_error, name=name)


class BinaryCrossentropy(MeanMetricWrapper):
    """Running binary cross-entropy."""

    direction = "down"

    def __init__(self, name: str = "binary_crossentropy", from_logits: bool = False,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(losses.binary_crossentropy, name=name, from_logits=bool(from_logits),
                         label_smoothing=float(label_smoothing))


class CategoricalCrossentropy(MeanMetricWrapper):
    """Running categorical cross-entropy."""

    direction = "down"

    def __init__(self, name: str = "categorical_crossentropy", from_logits: bool = False,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(losses.categorical_crossentropy, name=name,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing))


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Running sparse categorical cross-entropy."""

    direction = "down"

    def __init__(self, name: str = "sparse_categorical_crossentropy",
                 from_logits: bool = False) -> None:
        super().__init__(losses.sparse_categorical_crossentropy, name=name,
                         from_logits=bool(from_logits))


_METRIC_CLASSES = (Mean, Accuracy, BinaryAccuracy, CategoricalAccuracy,
                   SparseCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
                   BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy)

# Names Keras' ``metrics.get`` understands: name -> (function, larger is better).
_FUNCTIONS: dict[str, tuple[Callable[..., Tensor], bool]] = {
    "binary_accuracy": (binary_accuracy, True),
    "categorical_accuracy": (categorical_accuracy, True),
    "sparse_categorical_accuracy": (sparse_categorical_accuracy, True),
    "mean_squared_error": (losses.mean_squared_error, False),
    "mse": (losses.mean_squared_error, False),
    "mean_absolute_error": (losses.mean_absolute_error, False),
    "mae": (losses.mean_absolute_error, False),
    "binary_crossentropy": (losses.binary_crossentropy, False),
    "categorical_crossentropy": (losses.categorical_crossentropy, False),
    "sparse_categorical_crossentropy": (losses.sparse_categorical_crossentropy, False),
}
_UP_FUNCTIONS = {accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy}
_DOWN_FUNCTIONS = {losses.mean_squared_error, losses.mean_absolute_error,
                   losses.binary_crossentropy, losses.categorical_crossentropy,
                   losses.sparse_categorical_crossentropy}


_REGISTRY = _registry.Registry(
    "metric", Metric, _METRIC_CLASSES,
    expected=f"'accuracy', one of {sorted(_FUNCTIONS)}, "
             f"{sorted(c.__name__ for c in _METRIC_CLASSES)}, a Metric object or a function "
             "(y_true, y_pred) -> values",
)


def is_binary_or_sparse(y_true: Tensor, y_pred: Tensor) -> tuple[bool, bool]:
    """Keras' test: binary when the output's last axis is 1; sparse when the targets have a lower
    rank than the output, or a trailing axis of 1 against several classes."""
    binary = y_pred.shape[-1] == 1 if y_pred.dim() else False
    sparse = y_true.dim() < y_pred.dim() or (
        y_true.dim() > 0 and y_pred.dim() > 0 and y_true.shape[-1] == 1 and y_pred.shape[-1] > 1
    )
    return binary, sparse


def get(identifier: Any, y_true: Tensor | None = None, y_pred: Tensor | None = None) -> Metric:
    """A :class:`Metric` from a name, a Metric class or instance, a ``{"class_name", "config"}``
    dict or a function ``fn(y_true, y_pred) -> per-sample values``.

    ``"accuracy"`` / ``"acc"`` needs ``y_true`` and ``y_pred`` (a batch of each) to pick the
    binary, categorical or sparse categorical accuracy, as Keras' ``compile`` does. A metric
    given by name is named by that string (``"mae"`` logs as ``mae``).
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            if y_true is None or y_pred is None:
                raise ValueError(
                    f"metric {identifier!r} is resolved from the data: pass y_true and y_pred"
                )
            binary, sparse = is_binary_or_sparse(to_tensor(y_true), to_tensor(y_pred))
            if binary:
                return BinaryAccuracy(name=identifier)
            if sparse:
                return SparseCategoricalAccuracy(name=identifier)
            return CategoricalAccuracy(name=identifier)
        if identifier in _FUNCTIONS:
            function, up = _FUNCTIONS[identifier]
            return MeanMetricWrapper(function, name=identifier, direction="up" if up else "down")
        return _REGISTRY.get(identifier)  # type: ignore[no-any-return]
    if inspect.isclass(identifier) and issubclass(identifier, Metric):
        return identifier()
    if _is_torchmetric(identifier):
        return TorchMetric(identifier)
    if callable(identifier):
        direction = None
        if identifier in _UP_FUNCTIONS:
            direction = "up"
        elif identifier in _DOWN_FUNCTIONS:
            direction = "down"
        fn = identifier if direction is not None else _outside_function(identifier)
        return MeanMetricWrapper(fn, name=getattr(identifier, "__name__", "metric"),
                                 direction=direction)
    raise TypeError(f"Could not interpret metric {identifier!r} ({type(identifier).__name__})")


def serialize(metric: Any) -> Any:
    """A metric as JSON: names stay names; built-in metric objects become
    ``{"class_name", "config"}``; anything else is a TypeError."""
    if isinstance(metric, str):
        return metric
    if isinstance(metric, MeanMetricWrapper) and not _REGISTRY.name_of(type(metric)):
        for name, (function, _) in _FUNCTIONS.items():
            if metric.fn is function and not metric._fn_kwargs:
                return name if metric.name == name else {"class_name": "function",
                                                         "config": {"fn": name,
                                                                    "name": metric.name}}
    return _REGISTRY.serialize(metric)


def deserialize(config: dict[str, Any]) -> Metric:
    """The inverse of :func:`serialize` for dict configs (built-in metrics only)."""
    name = config.get("class_name") if isinstance(config, dict) else None
    if name == "function":
        inner = config.get("config", {})
        if inner.get("fn") in _FUNCTIONS:
            function, up = _FUNCTIONS[inner["fn"]]
            return MeanMetricWrapper(function, name=inner.get("name"),
                                     direction="up" if up else "down")
    return _REGISTRY.deserialize(config)  # type: ignore[no-any-return]


__all__ = [
    "Metric",
    "Mean",
    "MeanMetricWrapper",
    "TorchMetric",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "get",
    "serialize",
    "deserialize",
]
