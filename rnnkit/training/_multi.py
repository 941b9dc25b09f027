"""Training models with several inputs or outputs: list/dict data, a loss per output,
``loss_weights``, metrics per output, and Keras 3's log names.

For a model with outputs named ``o_1 .. o_k`` (:attr:`Functional.output_names`) compiled with
losses ``L_i``, weights ``w_i`` (default 1) and per-output metrics, one batch gives::

    loss   = sum_i w_i * L_i(y_i, y_pred_i, sample_weight, mask_i)
    logs   = {"loss", "o_1_loss", ..., "o_k_loss", "o_1_<metric>", ...}

as Keras 3.15 names them (``val_`` in front for validation). ``loss`` may be one loss for every
output, a list in output order or a dict by output name; ``metrics`` a list of lists or a dict
by output name (a flat list is refused for several outputs, as Keras does). A model with one
output and a plain loss trains exactly as before, through :class:`Trainer`.

Several inputs or targets are carried through the fit loop as one :class:`TensorStruct`, which
slices like a tensor (``x[index]``), so batching, shuffling and ``validation_split`` are the
same code for every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from . import _data, losses, metrics as metrics_module


class TensorStruct:
    """Tensors with the same number of samples, sliced together along the first axis."""

    def __init__(self, items: Sequence[Tensor]) -> None:
        self.items = list(items)

    @property
    def shape(self) -> torch.Size:
        return self.items[0].shape

    def __getitem__(self, index: Any) -> TensorStruct:
        return TensorStruct([item[index] for item in self.items])

    def to(self, *args: Any, **kwargs: Any) -> TensorStruct:
        return TensorStruct([item.to(*args, **kwargs) for item in self.items])

    def __len__(self) -> int:
        return int(self.items[0].shape[0])


def unwrap(value: Any) -> Any:
    return value.items if isinstance(value, TensorStruct) else value


def _is_struct(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict))


class MultiIOTrainer:
    """Overrides of :class:`~rnnkit.training.Trainer`'s hooks for models with several
    inputs or outputs (mixed in before it by :class:`rnnkit.Model`)."""

    # -- names ------------------------------------------------------------------------------
    def _output_names(self) -> list[str]:
        names = getattr(self, "output_names", None)
        return list(names) if names else ["output"]

    def _multi_output(self) -> bool:
        return len(self._output_names()) > 1

    # -- compile ----------------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None,
                metrics: Any = None, **kwargs: Any) -> None:
        """Keras' ``compile``; see the module docstring for several outputs."""
        self.__dict__["_multi"] = None
        names = self._output_names()
        if len(names) == 1 and not _is_struct(loss) and not isinstance(metrics, dict) \
                and loss_weights is None:
            super().compile(optimizer=optimizer, loss=loss, metrics=metrics,  # type: ignore
                            **kwargs)
            return
        if len(names) == 1 and _is_struct(loss):
            loss = _per_output(loss, names, "loss")[0]
            super().compile(optimizer=optimizer, loss=loss,  # type: ignore
                            metrics=_per_output(metrics, names, "metrics", nested=True)[0]
                            if metrics is not None else None, **kwargs)
            return
        super().compile(optimizer=optimizer, loss=None, metrics=None, **kwargs)  # type: ignore
        self.loss = loss
        specs = _per_output(loss, names, "loss")
        weights = [1.0] * len(names) if loss_weights is None else [
            float(w) if w is not None else 1.0
            for w in _per_output(loss_weights, names, "loss_weights")]
        metric_specs = [[]] * len(names) if metrics is None else [
            [m for m in (ms or [])] for ms in _per_output(metrics, names, "metrics", nested=True)]
        for group in metric_specs:
            for spec in group:
                if not (isinstance(spec, str) and spec.lower() in ("accuracy", "acc")):
                    metrics_module.get(spec)
        outputs = []
        for name, spec, weight, group in zip(names, specs, weights, metric_specs):
            resolved_later = isinstance(spec, str) and spec.lower() in ("crossentropy", "ce")
            outputs.append({
                "name": name, "spec": spec, "weight": weight, "metric_specs": group,
                "loss": None if (spec is None or resolved_later) else losses.get(spec),
                "tracker": metrics_module.Mean(name=f"{name}_loss"), "metrics": [],
                "built": False,
            })
        self.__dict__["_multi"] = outputs
        self.compiled_loss = _MultiLoss(outputs)  # type: ignore[assignment]

    def _assert_has_loss(self, method: str) -> None:
        if self.__dict__.get("_multi") is not None:
            if all(o["spec"] is None for o in self.__dict__["_multi"]):
                raise ValueError(f"{method}() needs a loss, but the model was compiled without "
                                 "one; call compile(loss=...) first")
            return
        super()._assert_has_loss(method)  # type: ignore[misc]

    def _build_compiled(self, y: Any, y_pred: Any) -> None:
        outputs = self.__dict__.get("_multi")
        if outputs is None:
            super()._build_compiled(y, y_pred)  # type: ignore[misc]
            return
        for output, target, prediction in zip(outputs, unwrap(y), y_pred):
            if output["built"]:
                continue
            spec = output["spec"]
            if output["loss"] is None and isinstance(spec, str):
                binary, sparse = metrics_module.is_binary_or_sparse(target, prediction)
                name = ("binary_crossentropy" if binary else "sparse_categorical_crossentropy"
                        if sparse else "categorical_crossentropy")
                output["loss"] = losses.get(name)
            built = []
            for metric_spec in output["metric_specs"]:
                metric = metrics_module.get(metric_spec, target, prediction)
                if isinstance(metric_spec, str):
                    metric.name = metric_spec
                built.append(metric)
            output["metrics"] = built
            output["built"] = True

    # -- metrics ----------------------------------------------------------------------------
    @property
    def metrics(self) -> list[Any]:
        outputs = self.__dict__.get("_multi")
        if outputs is None:
            return super().metrics  # type: ignore[misc]
        return [self._loss_tracker, *[o["tracker"] for o in outputs],  # type: ignore
                *[m for o in outputs for m in o["metrics"]]]

    def _metrics_result(self) -> dict[str, float]:
        outputs = self.__dict__.get("_multi")
        if outputs is None:
            return super()._metrics_result()  # type: ignore[misc]
        logs = {"loss": self._loss_tracker.result()}  # type: ignore[attr-defined]
        with_loss = [o for o in outputs if o["spec"] is not None]
        if len(with_loss) > 1:  # Keras logs per-output losses only when there are several
            for output in with_loss:
                logs[f"{output['name']}_loss"] = output["tracker"].result()
        for output in outputs:
            for metric in output["metrics"]:
                logs[f"{output['name']}_{metric.name}"] = metric.result()
        return logs

    def _update_metrics(self, y: Any, y_pred: Any, mask: Any) -> None:
        outputs = self.__dict__.get("_multi")
        if outputs is None:
            super()._update_metrics(y, y_pred, mask)  # type: ignore[misc]
            return
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(outputs)
        for output, target, prediction, output_mask in zip(outputs, unwrap(y), y_pred, masks):
            prediction = prediction.detach()
            for metric in output["metrics"]:
                if isinstance(metric, metrics_module.MeanMetricWrapper):
                    metric.update_state(target, prediction, mask=output_mask)
                else:
                    metric.update_state(target, prediction)

    # -- data -------------------------------------------------------------------------------
    def _prepare(self, x: Any, y: Any, sample_weight: Any, method: str, prefix: str = "",
                 need_y: bool = True) -> tuple[Any, Any, Any]:
        multi_in = _is_struct(x)
        multi_out = _is_struct(y) or self.__dict__.get("_multi") is not None
        if not multi_in and not multi_out:
            return super()._prepare(x, y, sample_weight, method, prefix,  # type: ignore[misc]
                                    need_y)
        names = (f"{prefix}x", f"{prefix}y", f"{prefix}sample_weight")
        if x is None:
            raise ValueError(f"{method}() needs input data {names[0]}, got None")
        x_t: Any
        if multi_in:
            x_t = TensorStruct(self._standardize_data(x, names[0]))
        else:
            x_t = _data.to_data_tensor(x, names[0])
            _data.check_not_empty(x_t, names[0])
            self._check_input_shape(tuple(x_t.shape), names[0])  # type: ignore[attr-defined]
        y_t: Any = None
        if y is not None:
            if self.__dict__.get("_multi") is not None or _is_struct(y):
                items = self._standardize_targets(y, names[1])
                for item in items:
                    _data.check_same_samples(_first(x_t), item, names[0], names[1])
                y_t = TensorStruct(items) if len(items) > 1 or _is_struct(y) else items[0]
            else:
                y_t = _data.to_data_tensor(y, names[1])
                _data.check_same_samples(_first(x_t), y_t, names[0], names[1])
        elif need_y and self.compiled and self.loss is not None:  # type: ignore[attr-defined]
            raise ValueError(f"{method}() needs targets {names[1]}: the model was compiled "
                             f"with loss {self.loss!r}")  # type: ignore[attr-defined]
        w_t = None
        if sample_weight is not None:
            w_t = _data.check_sample_weight(_data.to_data_tensor(sample_weight, names[2]),
                                            _first(x_t).shape[0], names[2])
        return x_t, y_t, w_t

    def _standardize_data(self, x: Any, what: str) -> list[Tensor]:
        standardize = getattr(self, "_standardize_inputs", None)
        items = standardize(x) if standardize is not None else (
            list(x.values()) if isinstance(x, dict) else list(x))
        tensors = []
        for index, item in enumerate(items):
            label = f"{what}[{index}]"
            tensor = _data.to_data_tensor(item, label)
            _data.check_not_empty(tensor, label)
            _data.check_finite(tensor, label)
            if tensors:
                _data.check_same_samples(tensors[0], tensor, f"{what}[0]", label)
            tensors.append(tensor)
        self._check_input_shapes([tuple(t.shape) for t in tensors], what)  # type: ignore
        return tensors

    def _standardize_targets(self, y: Any, what: str) -> list[Tensor]:
        names = self._output_names()
        if isinstance(y, dict):
            missing = [n for n in names if n not in y]
            if missing:
                raise ValueError(f"{what} is a dict with keys {sorted(y)}, but the model's "
                                 f"outputs are named {names} (missing {missing})")
            items = [y[n] for n in names]
        elif isinstance(y, (list, tuple)):
            if len(y) != len(names):
                raise ValueError(f"{what} has {len(y)} target arrays, but the model has "
                                 f"{len(names)} outputs {names}")
            items = list(y)
        else:
            if len(names) != 1:
                raise ValueError(f"{what} is one array, but the model has {len(names)} "
                                 f"outputs {names}: pass a list or a dict of targets")
            items = [y]
        tensors = []
        for index, item in enumerate(items):
            tensor = _data.to_data_tensor(item, f"{what}[{index}]")
            _data.check_finite(tensor, f"{what}[{index}]")
            tensors.append(tensor)
        return tensors

    def _model_output(self, x: Any, training: bool) -> tuple[Any, Any]:
        if self.__dict__.get("_multi") is None and not isinstance(x, TensorStruct):
            return super()._model_output(x, training)  # type: ignore[misc]
        y_pred, mask = self._call_with_mask(unwrap(x), training=training)  # type: ignore
        if self.__dict__.get("_multi") is None:
            if not isinstance(y_pred, Tensor):
                raise ValueError("The model has several outputs; compile it with a loss per "
                                 "output (a list or a dict)")
            return y_pred, mask
        return _flat_outputs(y_pred, self._output_names()), _flat_outputs(
            mask, self._output_names(), allow_none=True)

    def _predict_step(self, x: Any) -> Any:
        x = x.to(self._device())  # type: ignore[attr-defined]
        outputs, _ = self._call_with_mask(unwrap(x), training=False)  # type: ignore
        if isinstance(outputs, dict):
            self.__dict__["_predict_keys"] = list(outputs)
            return list(outputs.values())
        self.__dict__["_predict_keys"] = None
        return outputs

    def predict(self, x: Any, batch_size: int | None = None, verbose: str | int = "auto",
                callbacks: Any = None) -> Any:
        result = super().predict(x, batch_size=batch_size, verbose=verbose,  # type: ignore
                                 callbacks=callbacks)
        keys = self.__dict__.get("_predict_keys")
        if keys:
            return dict(zip(keys, result))
        return result

    def predict_on_batch(self, x: Any) -> Any:
        result = super().predict_on_batch(x)  # type: ignore[misc]
        keys = self.__dict__.get("_predict_keys")
        return dict(zip(keys, result)) if keys else result


def _first(value: Any) -> Tensor:
    return value.items[0] if isinstance(value, TensorStruct) else value


def _flat_outputs(value: Any, names: list[str], allow_none: bool = False) -> list[Any]:
    if isinstance(value, dict):
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)):
        return list(value)
    if value is None and allow_none:
        return [None] * len(names)
    return [value]


def _per_output(value: Any, names: list[str], what: str, nested: bool = False) -> list[Any]:
    """``value`` for each output: a dict by name, a list in order, or one for all."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"Invalid `{what}`: keys {unknown} are not output names of the "
                             f"model {names}")
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)):
        if nested and len(names) > 1 and not all(
                isinstance(v, (list, tuple)) or v is None for v in value):
            raise ValueError(f"Invalid `{what}`: for a model with several outputs {names} give "
                             f"a list of lists (one per output) or a dict by output name; got "
                             f"{what}={list(value)!r}")
        if nested and len(names) == 1 and not any(isinstance(v, (list, tuple)) for v in value):
            return [list(value)]
        if len(value) != len(names):
            raise ValueError(f"Invalid `{what}`: {len(value)} entries for the model's "
                             f"{len(names)} outputs {names}")
        return list(value)
    return [value] * len(names)


class _MultiLoss:
    """The compiled loss of a model with several outputs: sum_i w_i L_i (module docstring).
    Each call also feeds each output's loss tracker, weighted by the batch size."""

    def __init__(self, outputs: list[dict[str, Any]]) -> None:
        self.outputs = outputs
        self.name = "loss"

    def __call__(self, y: Any, y_pred: Any, sample_weight: Any = None, *,
                 mask: Any = None) -> Tensor:
        targets = unwrap(y)
        targets = targets if isinstance(targets, list) else [targets]
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(self.outputs)
        total: Tensor | None = None
        for output, target, prediction, output_mask in zip(self.outputs, targets, y_pred,
                                                           masks):
            if output["loss"] is None:
                continue
            value = output["loss"](target, prediction, sample_weight, mask=output_mask)
            output["tracker"].update_state(value.detach(), sample_weight=target.shape[0])
            term = value * output["weight"]
            total = term if total is None else total + term
        assert total is not None
        return total


__all__ = ["MultiIOTrainer", "TensorStruct"]
