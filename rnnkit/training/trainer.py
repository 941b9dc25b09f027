"""``compile``, ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` steps, as in Keras 3.

One training step on a batch ``(x, y)`` of ``b`` samples::

    y_pred, mask = model(x, training=True)          # the model's output and output mask
    loss = compiled_loss(y, y_pred, sample_weight, mask=mask) + sum(model.losses)
    loss.backward(); optimizer.step()               # the trainable parameters only
    (then each weight's constraint, as Keras' optimizers apply them)
    loss tracker += loss weighted by b; metrics += (y, y_pred, mask)

The logged ``loss`` and metrics are running means over the epoch's samples (Keras' float32
``Mean``), reset at each epoch. The model is in train mode (dropout active) during ``fit`` and
``train_on_batch`` and in eval mode in ``evaluate``/``predict`` (and fit's validation); each
gives back the mode the model had before (a new model is in train mode, as torch modules are).

Under ``torchrun`` (or with ``fit(distributed=True)``) each process trains on its share of every
global batch behind ``DistributedDataParallel``, with the same steps as one process with the
same ``batch_size``; see :mod:`rnnkit.training.distributed`.

Data are checked before any step: sample counts of x, y and sample_weight, an empty x, NaN or
inf values, the feature size the model was built for, y missing when a loss needs it. Each is a
``ValueError`` naming the problem.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import constraints
from ..layers._base import collect_losses
from . import _data, distributed as distributed_module, losses, metrics as metrics_module, optimizers
from .callbacks import Callback, CallbackList, History

# Keras compile() arguments that change how Keras runs, not what it computes.
_ACCEPTED_COMPILE_FLAGS = ("run_eagerly", "jit_compile", "steps_per_execution", "auto_scale_loss")


class Trainer:
    """The Keras training API for a model that provides ``_call_with_mask(x, training)`` and
    ``_check_input_shape(shape, what)`` (see :class:`rnnkit.Model`)."""

    def _init_trainer(self) -> None:
        self.optimizer: optimizers.Optimizer | None = None
        self.loss: Any = None
        self.compiled_loss: losses.Loss | None = None
        self.compiled_metrics: list[metrics_module.Metric] = []
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        self._metric_specs: list[Any] = []
        self._metrics_built = False
        self._loss_tracker = metrics_module.Mean(name="loss")
        # Set by a callback in on_train_begin (BackupAndRestore) to resume an interrupted fit.
        self._initial_epoch: int | None = None
        # A distributed fit's context and DDP-wrapped forward, set in __dict__ so torch.nn
        # does not register the wrapper (which holds the model) as a submodule.
        self.__dict__["_distributed"] = None
        self.__dict__["_ddp_forward"] = None

    # -- compile -----------------------------------------------------------------------------
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Configure training.

        Args:
            optimizer: ``"adam"``, ``"sgd"``, ``"rmsprop"``, ``"adamw"`` (Keras' defaults), an
                ``rnnkit.optimizers`` object, or a ``torch.optim`` class (created with the
                model's trainable parameters) or instance.
            loss: a name (``"mse"``, ``"mae"``, ``"binary_crossentropy"``,
                ``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"``, or
                ``"crossentropy"`` resolved from the data), an ``rnnkit.losses`` object or class,
                or a function ``(y_true, y_pred) -> per-sample values``.
            metrics: a list of names (``"accuracy"`` resolved from the data as Keras does,
                ``"mae"``, ``"mse"``, ...), ``rnnkit.metrics`` objects or functions.
            run_eagerly, jit_compile, steps_per_execution, auto_scale_loss: accepted for Keras
                compatibility; they do not change the results.
        """
        unknown = sorted(set(kwargs) - set(_ACCEPTED_COMPILE_FLAGS))
        if unknown:
            raise TypeError(f"compile() got unexpected keyword argument(s) {unknown}")
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"Expected `metrics` to be a list or tuple, got metrics={metrics!r} "
                             f"of type {type(metrics).__name__}")
        self.optimizer = optimizers.get(optimizer)
        self.loss = loss
        resolved_later = isinstance(loss, str) and loss.lower() in ("crossentropy", "ce")
        self.compiled_loss = None if resolved_later else losses.get(loss)
        self._metric_specs = [m for m in (metrics or []) if m is not None]
        for spec in self._metric_specs:  # fail now on unknown names, not at the first batch
            if not (isinstance(spec, str) and spec.lower() in ("accuracy", "acc")):
                metrics_module.get(spec)
        self.compiled_metrics = []
        self._metrics_built = False
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.compiled = True

    def _assert_compiled(self, method: str) -> None:
        if not self.compiled:
            raise ValueError(f"You must call compile() before using the model in {method}().")

    def _assert_has_loss(self, method: str) -> None:
        if self.compiled_loss is None and not isinstance(self.loss, str):
            raise ValueError(f"{method}() needs a loss, but the model was compiled without one; "
                             "call compile(loss=...) first")

    def _build_compiled(self, y: Tensor, y_pred: Tensor) -> None:
        """Resolve "crossentropy" and "accuracy" from the first batch, as Keras does."""
        if self.compiled_loss is None and isinstance(self.loss, str):
            binary, sparse = metrics_module.is_binary_or_sparse(y, y_pred)
            name = ("binary_crossentropy" if binary else "sparse_categorical_crossentropy"
                    if sparse else "categorical_crossentropy")
            self.compiled_loss = losses.get(name)
            self.compiled_loss.name = self.loss
        if not self._metrics_built:
            built = []
            for spec in self._metric_specs:
                metric = metrics_module.get(spec, y, y_pred)
                if isinstance(spec, str):
                    metric.name = spec
                built.append(metric)
            self.compiled_metrics = built
            self._metrics_built = True

    # -- metrics --------------------------------------------------------------------------------
    @property
    def metrics(self) -> list[metrics_module.Metric]:
        """The loss tracker then the compiled metrics (built at the first batch)."""
        return [self._loss_tracker, *self.compiled_metrics] if self.compiled else []

    @property
    def metrics_names(self) -> list[str]:
        return list(self._metrics_result())

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    def _metrics_result(self) -> dict[str, float]:
        context = self.__dict__.get("_distributed")
        reduced: dict[int, float] = {}
        if context is not None and self.compiled:  # the same logs on every rank
            results = context.reduced_results(self.metrics)
            reduced = {id(m): r for m, r in zip(self.metrics, results) if r is not None}
        logs = {"loss": reduced.get(id(self._loss_tracker), None)} if self.compiled else {}
        if self.compiled and logs["loss"] is None:
            logs["loss"] = self._loss_tracker.result()
        counts: dict[str, int] = {}
        for metric in self.compiled_metrics:
            name = metric.name
            if name in logs or name in counts:
                counts[name] = counts.get(name, 0) + 1
                name = f"{name}_{counts[name]}"
            else:
                counts[name] = 0
            logs[name] = reduced[id(metric)] if id(metric) in reduced else metric.result()
        return logs

    def _update_metrics(self, y: Tensor, y_pred: Tensor, mask: Tensor | None) -> None:
        y_pred = y_pred.detach()
        for metric in self.compiled_metrics:
            if isinstance(metric, (metrics_module.MeanMetricWrapper, metrics_module.TorchMetric)):
                metric.update_state(y, y_pred, mask=mask)
            else:
                metric.update_state(y, y_pred)

    # -- data --------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        for param in self.parameters():  # type: ignore[attr-defined]
            return param.device
        return torch.device("cpu")

    def _prepare(self, x: Any, y: Any, sample_weight: Any, method: str, prefix: str = "",
                 need_y: bool = True) -> tuple[Tensor, Tensor | None, Tensor | None]:
        names = (f"{prefix}x", f"{prefix}y", f"{prefix}sample_weight")
        if x is None:
            raise ValueError(f"{method}() needs input data {names[0]}, got None")
        x_t = _data.to_data_tensor(x, names[0])
        _data.check_not_empty(x_t, names[0])
        _data.check_finite(x_t, names[0])
        self._check_input_shape(tuple(x_t.shape), names[0])  # type: ignore[attr-defined]
        y_t = None
        if y is None:
            if need_y and (self.compiled_loss is not None or self.loss is not None):
                raise ValueError(
                    f"{method}() needs targets {names[1]}: the model was compiled with loss "
                    f"{self.loss!r}, which compares predictions with targets"
                )
        else:
            y_t = _data.to_data_tensor(y, names[1])
            _data.check_same_samples(x_t, y_t, names[0], names[1])
            _data.check_finite(y_t, names[1])
        w_t = None
        if sample_weight is not None:
            w_t = _data.check_sample_weight(_data.to_data_tensor(sample_weight, names[2]),
                                            x_t.shape[0], names[2])
        return x_t, y_t, w_t

    def _model_output(self, x: Tensor, training: bool) -> tuple[Tensor, Tensor | None]:
        ddp_forward = self.__dict__.get("_ddp_forward")
        if training and ddp_forward is not None:  # gradients all-reduced in backward
            y_pred, mask = ddp_forward(x)
        else:
            y_pred, mask = self._call_with_mask(x, training=training)  # type: ignore[attr-defined]
        if not isinstance(y_pred, Tensor):
            raise ValueError(
                "The model returns a list of tensors (its last layer returns states: "
                "return_state=True); training and evaluation need a single output tensor"
            )
        return y_pred, mask

    # -- steps -------------------------------------------------------------------------------
    def _train_step(self, x: Tensor, y: Tensor | None, weight: Tensor | None, *,
                    loss_scale: float = 1.0, samples: int | None = None) -> dict[str, float]:
        """One step; a distributed fit differentiates ``loss_scale * loss`` and counts
        ``samples`` real samples (0 for a rank with nothing in this batch)."""
        device = self._device()
        x = x.to(device)
        y = None if y is None else y.to(device)
        y_pred, mask = self._model_output(x, training=True)
        if y is None:
            raise ValueError("training needs targets y")
        self._build_compiled(y, y_pred)
        assert self.compiled_loss is not None
        loss = self.compiled_loss(y, y_pred, None if weight is None else weight.to(device),
                                  mask=mask) + self._regularization_loss(y_pred)
        samples = x.shape[0] if samples is None else samples
        if samples:
            self._loss_tracker.update_state(loss.detach(), sample_weight=samples)
        trainable = [p for p in self.parameters() if p.requires_grad]  # type: ignore[attr-defined]
        if not trainable:
            warnings.warn("The model does not have any trainable weights.", stacklevel=3)
        elif not loss.requires_grad:
            raise ValueError("The loss does not depend on any trainable weight of the model "
                             "(was the output detached?), so there is nothing to train")
        else:
            assert self.optimizer is not None
            if not self.optimizer.built:
                self.optimizer.build(trainable)
            self.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
            (loss if loss_scale == 1.0 else loss * loss_scale).backward()
            self.optimizer.step()
            if isinstance(self.optimizer, optimizers.TorchOptimizer):  # rnnkit's do it
                constraints.apply_constraints(self)  # type: ignore[arg-type]
        if samples:
            self._update_metrics(y, y_pred, mask)
        return self._metrics_result()

    def _test_step(self, x: Tensor, y: Tensor | None, weight: Tensor | None) -> dict[str, float]:
        self._test_update(x, y, weight)
        return self._metrics_result()

    def _test_update(self, x: Tensor, y: Tensor | None, weight: Tensor | None) -> None:
        device = self._device()
        x = x.to(device)
        y = None if y is None else y.to(device)
        y_pred, mask = self._model_output(x, training=False)
        if y is None:
            raise ValueError("evaluate() needs targets y")
        self._build_compiled(y, y_pred)
        assert self.compiled_loss is not None
        loss = self.compiled_loss(y, y_pred, None if weight is None else weight.to(device),
                                  mask=mask) + self._regularization_loss(y_pred)
        self._loss_tracker.update_state(loss, sample_weight=x.shape[0])
        self._update_metrics(y, y_pred, mask)

    def _regularization_loss(self, like: Tensor) -> Tensor | float:
        """Keras adds ``sum(model.losses)`` (regularizer penalties, ``add_loss`` terms of this
        call) to the loss, in training and evaluation alike."""
        terms = collect_losses(self)  # type: ignore[arg-type]
        if not terms:
            return 0.0
        return torch.stack([t.to(like.dtype).reshape(()) for t in terms]).sum()

    def _predict_step(self, x: Tensor) -> Any:
        outputs, _ = self._call_with_mask(x.to(self._device()), training=False)  # type: ignore
        return outputs

    # -- fit ---------------------------------------------------------------------------------
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: str | int = "auto",
        callbacks: Sequence[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        *,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
        distributed: bool | str | None = "auto",
    ) -> History:
        """Train for ``epochs`` epochs (from ``initial_epoch``) on ``x``, ``y``.

        ``x`` is an array (with ``y`` and ``sample_weight`` beside it) or, as in Keras 3, data
        that comes in batches of ``(x, y)`` or ``(x, y, sample_weight)``: a
        ``torch.utils.data.DataLoader``, a ``Dataset`` (batched by ``batch_size``), a generator,
        or a ``Sequence``-like object (``len()`` batches, ``[i]`` the i-th); ``steps_per_epoch``
        caps the batches per epoch (a generator is one stream: each epoch continues it, and
        training stops with a warning when it runs out, as in Keras).

        ``validation_split`` holds out the LAST fraction of the samples (before shuffling) as
        validation data; ``validation_data`` = ``(x_val, y_val)``, ``(x_val, y_val,
        sample_weight_val)`` or a batch source takes precedence. ``shuffle`` reorders the
        training samples every epoch with torch's global generator (``torch.manual_seed`` makes
        fits repeatable). Returns a :class:`History` whose ``history`` maps ``loss``, each metric
        and their ``val_`` versions to per-epoch lists.

        ``distributed``: ``"auto"`` trains data-parallel when the script runs under ``torchrun``
        with more than one process (or initialised a process group), ``True`` demands it,
        ``False`` never. Each rank then trains on its share of every global batch of
        ``batch_size`` samples, metrics are summed over ranks, and only rank 0 prints and runs
        the callbacks that write files (:mod:`rnnkit.training.distributed`). A distributed fit
        takes arrays.

        Example::

            >>> model.compile(optimizer="adam", loss="mse")           # doctest: +SKIP
            >>> history = model.fit(x, y, epochs=100, verbose=0)      # doctest: +SKIP
            >>> history.history["loss"][-1] < history.history["loss"][0]  # doctest: +SKIP
            True
        """
        self._assert_compiled("fit")
        self._assert_has_loss("fit")
        _data.check_validation_split(validation_split)
        verbose = _data.check_verbose(verbose)
        epochs = _check_count("epochs", epochs)
        initial_epoch = _check_count("initial_epoch", initial_epoch)
        validation_freq = _check_count("validation_freq", validation_freq, minimum=1)
        if _data.is_batch_source(x):
            _no_arrays_beside(x, "fit", y=y, sample_weight=sample_weight,
                              validation_split=validation_split)
            source = _data.BatchSource(x, "x", batch_size, shuffle, steps_per_epoch)
            if distributed_module.get_context(distributed, self._device()) is not None:
                raise ValueError("A distributed fit takes arrays (each rank cuts its share of "
                                 f"every batch); got x as a {type(x).__name__}")
            train_batches = self._source_batches(source, "fit")
            validation = self._validation_batches(validation_data, validation_batch_size,
                                                  validation_steps, None)
            return self._fit_loop(train_batches, validation, epochs, verbose, callbacks,
                                  initial_epoch, validation_freq, source.steps, None)
        batch_size = _data.check_batch_size(batch_size)
        x_t, y_t, w_t = self._prepare(x, y, sample_weight, "fit")
        validation_arrays = None
        if validation_data is None and validation_split:
            (x_t, y_t, w_t), validation_arrays = _data.train_validation_split(
                (x_t, y_t, w_t), validation_split)
        samples = x_t.shape[0]
        steps = _data.num_batches(samples, batch_size)
        if steps_per_epoch is not None:
            steps = min(steps, _check_count("steps_per_epoch", steps_per_epoch, minimum=1))
        context = self._start_distributed(distributed, x_t)
        try:
            train_batches = self._array_batches(x_t, y_t, w_t, batch_size, shuffle, context,
                                                train=True, steps=steps_per_epoch)
            validation = self._validation_batches(
                validation_data, validation_batch_size or batch_size, validation_steps,
                validation_arrays, context)
            return self._fit_loop(train_batches, validation, epochs, verbose, callbacks,
                                  initial_epoch, validation_freq, steps, context)
        finally:
            self.__dict__["_distributed"] = None
            self.__dict__["_ddp_forward"] = None

    def _start_distributed(self, distributed: Any, x: Tensor
                           ) -> distributed_module.DistributedContext | None:
        context = distributed_module.get_context(distributed, self._device())
        if context is None:
            return None
        if self._device() != context.device:
            self.to(context.device)  # type: ignore[attr-defined]
        if any(_is_lazy(p) for p in self.parameters()) or not getattr(self, "built", True):
            with torch.no_grad():  # DDP needs the parameters: build on one sample
                self._call_with_mask(x[:1].to(context.device), training=False)  # type: ignore
        self.__dict__["_ddp_forward"] = context.wrap(self)  # type: ignore[arg-type]
        self.__dict__["_distributed"] = context
        return context

    # -- batches -------------------------------------------------------------------------------
    # Every loop below runs over "batches": a function giving one epoch's iterator of
    # (x, y, sample_weight, loss_scale, samples) tensors; loss_scale and samples are a
    # distributed fit's (1.0 and None otherwise).
    def _array_batches(self, x: Tensor, y: Tensor | None, w: Tensor | None, batch_size: int,
                       shuffle: bool, context: Any, train: bool,
                       steps: int | None = None) -> Callable[[], Iterator[tuple[Any, ...]]]:
        share = context.broadcast_order if context is not None and train else None

        def batches() -> Iterator[tuple[Any, ...]]:
            indices = _data.batch_indices(x.shape[0], batch_size, shuffle, share=share)
            for step, index in enumerate(indices):
                if steps is not None and step >= steps:
                    return
                scale, count = 1.0, None
                if context is not None and train:
                    index, count, scale = context.shard(index)
                elif context is not None:  # each rank its share; the logs sum over ranks
                    index = context.eval_shard(index)
                yield (x[index], None if y is None else y[index],
                       None if w is None else w[index], scale, count)

        return batches

    def _source_batches(self, source: _data.BatchSource, method: str, prefix: str = "",
                        need_y: bool = True) -> Callable[[], Iterator[tuple[Any, ...]]]:
        def batches() -> Iterator[tuple[Any, ...]]:
            for batch in source.epoch():
                x, y, weight = _data.unpack_batch(batch, f"{prefix}x")
                if not need_y:
                    y = weight = None
                yield (*self._prepare(x, y, weight, method, prefix=prefix, need_y=need_y),
                       1.0, None)

        return batches

    def _validation_batches(self, data: Any, batch_size: int | None, steps: int | None,
                            arrays: Any, context: Any = None
                            ) -> Callable[[], Iterator[tuple[Any, ...]]] | None:
        if data is None and arrays is None:
            return None
        if data is not None and _data.is_batch_source(data):
            source = _data.BatchSource(data, "validation_data", None, False, steps)
            return self._source_batches(source, "fit", prefix="validation_data ")
        if arrays is None:
            arrays = self._unpack_validation(data)
        return self._array_batches(*arrays, batch_size or 32, False, context, train=False,
                                   steps=steps)

    def _fit_loop(self, batches: Callable[[], Iterator[tuple[Any, ...]]], validation: Any,
                  epochs: int, verbose: int, callbacks: Any, initial_epoch: int,
                  validation_freq: int, steps: int | None,
                  context: distributed_module.DistributedContext | None) -> History:
        if context is not None:
            callbacks = context.callbacks(callbacks)
            verbose = verbose if context.is_main else 0
        callback_list = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                     model=self, verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        self._initial_epoch = None
        callback_list.on_train_begin()
        initial_epoch = self._initial_epoch or initial_epoch
        self._initial_epoch = None
        training_logs: dict[str, float] = {}
        was_training = self.training  # type: ignore[attr-defined]
        try:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                callback_list.on_epoch_begin(epoch)
                self.train()  # type: ignore[attr-defined]
                drawn = 0
                for step, (x, y, weight, scale, count) in enumerate(batches()):
                    drawn += 1
                    callback_list.on_train_batch_begin(step)
                    logs = self._train_step(x, y, weight, loss_scale=scale, samples=count)
                    callback_list.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                if not drawn:
                    warnings.warn(
                        "Your input ran out of data; interrupting training. Make sure that "
                        "your dataset or generator can generate at least `steps_per_epoch * "
                        "epochs` batches.", stacklevel=3)
                    break
                epoch_logs = self._metrics_result()
                if validation is not None and (epoch + 1) % validation_freq == 0:
                    val_logs = self._evaluate_batches(validation, callback_list)
                    epoch_logs.update({f"val_{key}": value for key, value in val_logs.items()})
                callback_list.on_epoch_end(epoch, epoch_logs)
                training_logs = epoch_logs
                if self.stop_training:
                    break
        finally:
            self.train(was_training)  # type: ignore[attr-defined]
        callback_list.on_train_end(training_logs)
        assert callback_list.history is not None
        self.history = callback_list.history
        return callback_list.history

    def _unpack_validation(self, data: Any) -> tuple[Tensor, Tensor | None, Tensor | None]:
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError(
                "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                "sample_weight_val), or a DataLoader, Dataset, generator or Sequence, got "
                f"{type(data).__name__}"
                + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
            )
        weight = data[2] if len(data) == 3 else None
        return self._prepare(data[0], data[1], weight, "fit", prefix="validation_data ")

    # -- evaluate ----------------------------------------------------------------------------
    def _evaluate_batches(self, batches: Callable[[], Iterator[tuple[Any, ...]]],
                          callback_list: CallbackList) -> dict[str, float]:
        logs: dict[str, float] = {}
        with _mode(self, training=False), torch.no_grad():
            self.reset_metrics()
            callback_list.on_test_begin()
            for step, (x, y, weight, _, _) in enumerate(batches()):
                callback_list.on_test_batch_begin(step)
                if x.shape[0]:  # a distributed rank may have no share of a last batch
                    self._test_update(x, y, weight)
                logs = self._metrics_result()
                callback_list.on_test_batch_end(step, logs)
            logs = self._metrics_result()
            callback_list.on_test_end(logs)
        return logs

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: str | int = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: Sequence[Callback] | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """The loss and metrics on ``x``, ``y`` (eval mode, no updates): a float when there are
        no metrics, else ``[loss, *metrics]``; a dict with ``return_dict=True``. ``x`` may be
        a DataLoader, Dataset, generator or Sequence of batches, as in :meth:`fit`."""
        self._assert_compiled("evaluate")
        self._assert_has_loss("evaluate")
        verbose = _data.check_verbose(verbose)
        batches, count = self._batches_for(x, y, sample_weight, batch_size, steps, "evaluate")
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                     verbose=verbose, epochs=1, steps=count)
        logs = self._evaluate_batches(batches, callback_list)
        return _flatten_logs(logs, return_dict)

    def _batches_for(self, x: Any, y: Any, sample_weight: Any, batch_size: Any,
                     steps: int | None, method: str
                     ) -> tuple[Callable[[], Iterator[tuple[Any, ...]]], int | None]:
        """evaluate's and predict's batches (in order) and their number, when known."""
        need_y = method != "predict"
        if _data.is_batch_source(x):
            _no_arrays_beside(x, method, y=y, sample_weight=sample_weight)
            source = _data.BatchSource(x, "x", batch_size, False, steps)
            return self._source_batches(source, method, need_y=need_y), source.steps
        batch_size = _data.check_batch_size(batch_size)
        x_t, y_t, w_t = self._prepare(x, y, sample_weight, method, need_y=need_y)
        count = _data.num_batches(x_t.shape[0], batch_size)
        if steps is not None:
            count = min(count, _check_count("steps", steps, minimum=1))
        context = self.__dict__.get("_distributed") if need_y else None
        return self._array_batches(x_t, y_t, w_t, batch_size, False, context, train=False,
                                   steps=steps), count

    # -- predict -----------------------------------------------------------------------------
    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: str | int = "auto",
        steps: int | None = None,
        callbacks: Sequence[Callback] | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """The model's outputs for ``x`` in batches, in eval mode, as NumPy (a list of arrays
        when the last layer returns states). ``x`` may be a DataLoader, Dataset, generator or
        Sequence (of ``x`` or ``(x, ...)`` batches; anything after ``x`` is ignored)."""
        verbose = _data.check_verbose(verbose)
        batches, count = self._batches_for(x, None, None, batch_size, steps, "predict")
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                     verbose=verbose, epochs=1, steps=count)
        callback_list.on_predict_begin()
        pieces: list[Any] = []
        with _mode(self, training=False), torch.no_grad():
            for step, (x_batch, *_) in enumerate(batches()):
                callback_list.on_predict_batch_begin(step)
                output = self._predict_step(x_batch)
                pieces.append(output)
                callback_list.on_predict_batch_end(step, {"outputs": output})
        callback_list.on_predict_end()
        if not pieces:
            raise ValueError("predict() got no batches: x is empty")
        return _concat_outputs(pieces)

    # -- single batches ------------------------------------------------------------------------
    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One optimizer step on one batch. As in Keras 3 the returned loss and metrics are
        running means since the last ``reset_metrics()`` (or fit/evaluate)."""
        self._assert_compiled("train_on_batch")
        self._assert_has_loss("train_on_batch")
        x_t, y_t, w_t = self._prepare(x, y, sample_weight, "train_on_batch")
        with _mode(self, training=True):
            logs = self._train_step(x_t, y_t, w_t)
        return _flatten_logs(logs, return_dict)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                      return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Loss and metrics on one batch, no update (running means, as ``train_on_batch``)."""
        self._assert_compiled("test_on_batch")
        self._assert_has_loss("test_on_batch")
        x_t, y_t, w_t = self._prepare(x, y, sample_weight, "test_on_batch")
        with _mode(self, training=False), torch.no_grad():
            logs = self._test_step(x_t, y_t, w_t)
        return _flatten_logs(logs, return_dict)

    def predict_on_batch(self, x: Any) -> np.ndarray | list[np.ndarray]:
        """The model's outputs for one batch, in eval mode, as NumPy."""
        x_t, _, _ = self._prepare(x, None, None, "predict_on_batch", need_y=False)
        with _mode(self, training=False), torch.no_grad():
            return _concat_outputs([self._predict_step(x_t)])


@contextlib.contextmanager
def _mode(model: Any, training: bool) -> Iterator[None]:
    """Run in train or eval mode, then give back the mode the model had."""
    was_training = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)


def _no_arrays_beside(x: Any, method: str, y: Any = None, sample_weight: Any = None,
                      validation_split: float = 0.0) -> None:
    """y, sample_weight and validation_split belong to arrays; a batch source carries them."""
    kind = type(x).__name__
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(f"{method}(): `{name}` must not be given when x is a {kind}; its "
                             "batches carry (x, y) or (x, y, sample_weight)")
    if validation_split:
        raise ValueError(f"{method}(): validation_split needs arrays; x is a {kind}, so pass "
                         "validation_data instead")


def _is_lazy(parameter: Tensor) -> bool:
    return isinstance(parameter, torch.nn.parameter.UninitializedParameter)


def _check_count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _flatten_logs(logs: dict[str, float], return_dict: bool) -> Any:
    if return_dict:
        return dict(logs)
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _concat_outputs(pieces: list[Any]) -> np.ndarray | list[np.ndarray]:
    first = pieces[0]
    if isinstance(first, Tensor):
        return torch.cat([p.detach().cpu() for p in pieces]).numpy()
    return [
        torch.cat([p[i].detach().cpu() for p in pieces]).numpy() for i in range(len(first))
    ]
