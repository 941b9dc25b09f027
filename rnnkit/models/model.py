"""``rnnkit.Model``: the base of the model kinds, and a subclassed model when used directly.

Three ways to make a model, as in Keras 3:

- functional: ``rk.Model(inputs, outputs)`` from symbolic tensors (returns a
  :class:`~rnnkit.models.functional.Functional`);
- subclassed: ``class Seq2Seq(rk.Model)`` creating layers in ``__init__`` and computing in
  ``call(self, inputs, training=None)``;
- ``rk.Sequential``: a stack of layers.

A model is a :class:`~rnnkit.layers.Layer` (so one model can be called inside another, and on
symbolic tensors) and a ``torch.nn.Module``, with Keras' ``compile/fit/evaluate/predict``,
``summary``, ``get_weights/set_weights``, ``save``. Inputs and targets may be lists or dicts of
arrays for models with several inputs or outputs (:mod:`rnnkit.training._multi`).

Example (subclassed)::

    >>> import numpy as np, rnnkit as rk
    >>> class Regressor(rk.Model):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.rnn = rk.layers.GRU(4)
    ...         self.head = rk.layers.Dense(1)
    ...     def call(self, inputs, training=None):
    ...         return self.head(self.rnn(inputs, training=training))
    >>> model = Regressor()
    >>> model.predict(np.zeros((2, 5, 3)), verbose=0).shape
    (2, 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..layers._base import Layer, _snake_case, training_scope, unique_name
from ..training import MultiIOTrainer, Trainer
from . import saving, summary


class Model(MultiIOTrainer, Trainer, Layer):
    """Base of rnnkit's models; ``Model(inputs, outputs)`` makes a functional model and a
    subclass with ``call`` is a subclassed model (see the module docstring)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional

            return Functional.__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args: Any, name: str | None = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__ got unexpected arguments "
                f"{[*map(type, args), *kwargs]}; a subclassed model calls "
                "super().__init__(name=...) and rnnkit.Model(inputs, outputs) makes a "
                "functional model"
            )
        Layer.__init__(self, name=name if name is not None else
                       unique_name(_snake_case(type(self).__name__)))
        self._init_trainer()
        self._trainable = trainable

    # -- calling ----------------------------------------------------------------------------
    def call(self, inputs: Any, training: bool | None = None) -> Any:
        raise NotImplementedError(
            f"Model '{self.name}' ({type(self).__name__}) has no call(): a subclassed model "
            "defines call(self, inputs, training=None); rnnkit.Model(inputs, outputs) makes a "
            "functional model"
        )

    def forward(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        with training_scope(self._resolve_training(kwargs)):
            return self._forward(inputs, *args, **kwargs)

    def _forward(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if self.built:
            return self.call(inputs, *args, **kwargs)
        # the building call: remembered so that a saved subclassed model can be rebuilt, and
        # each layer's output shape in it, which summary() shows as Keras' does
        self.__dict__["_build_input_shape"] = _shapes_of(inputs)
        shapes: dict[int, Any] = {}

        def record(layer: torch.nn.Module, _: Any, output: Any) -> None:
            found = [tuple(t.shape) for t in torch.utils._pytree.tree_leaves(output)
                     if isinstance(t, torch.Tensor)]
            shapes[id(layer)] = found[0] if len(found) == 1 else found

        hooks = [layer.register_forward_hook(record) for layer in self.layers]
        try:
            outputs = self.call(inputs, *args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        self.__dict__["_layer_shapes"] = shapes
        self.built = True
        return outputs

    def build(self, input_shape: Any = None) -> None:
        """Build a subclassed model by calling it once on zeros of ``input_shape`` (unknown
        sizes 1), as Keras' ``Model.build`` does."""
        if self.built:
            return
        if input_shape is None:
            raise ValueError(f"build() of model '{self.name}' needs input_shape")
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.nn.Module.__call__(self, _zeros_like_shapes(input_shape))
        self.__dict__["_build_input_shape"] = _shapes_of(_zeros_like_shapes(input_shape))

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape(s) for inputs of ``input_shape`` (batch first), measured as a
        symbolic call measures a layer: the model runs on zeros twice, unknown sizes 2 then 3,
        and a size that differs between the runs is unknown (None)."""
        kwargs = {"training": False} if "training" in self._call_arguments() else {}
        runs = []
        for unknown in (2, 3):
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                runs.append(torch.nn.Module.__call__(
                    self, _zeros_like_shapes(input_shape, unknown), **kwargs))
        return _measured_shapes(*runs)

    def _call_with_mask(self, inputs: Any, training: bool | None = None,
                        mask: Any = None) -> tuple[Any, Any]:
        """The outputs and their masks (a subclassed model's outputs carry none)."""
        kwargs: dict[str, Any] = {}
        if "training" in self._call_arguments():
            kwargs["training"] = training
        return self(inputs, **kwargs), None

    def _check_input_shape(self, shape: tuple[int, ...], what: str) -> None:
        """Subclassed models declare no input shape: their layers check what they get."""

    def _check_input_shapes(self, shapes: list[tuple[int, ...]], what: str) -> None:
        """The same for several inputs (``what[0]``, ``what[1]``, ...)."""

    # -- layers and weights -------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers, in the order they were assigned (Keras' tracking order)."""
        return [m for m in self.children() if isinstance(m, Layer)]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index in :attr:`layers`."""
        layers = self.layers
        if (name is None) == (index is None):
            raise ValueError("Provide exactly one of name= or index=")
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"index {index} is out of range for a model of {len(layers)} "
                                 "layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in layers]}.")

    def _weights_by_layer(self) -> list[tuple[Any, int, torch.nn.Parameter]]:
        """(owner, index in the owner's weights, weight) in Keras' order: layer by layer, a
        shared layer once, then any weights the model holds itself."""
        seen: set[int] = set()
        out = []
        for layer in self.layers:
            if not layer.built:
                continue
            for index, weight in enumerate(layer.keras_weights()):
                if id(weight) not in seen:
                    seen.add(id(weight))
                    out.append((layer, index, weight))
        own = [w for w in self.parameters() if id(w) not in seen
               and not isinstance(w, torch.nn.parameter.UninitializedParameter)]
        out.extend((self, index, weight) for index, weight in enumerate(own))
        return out

    @property
    def weights(self) -> list[torch.nn.Parameter]:
        """All weights in Keras' order (layer by layer; a shared layer once), then any the model
        holds itself."""
        return [weight for _, _, weight in self._weights_by_layer()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set all weights from a list in :meth:`get_weights` order; every shape is checked
        before anything changes."""
        self._require_built("set_weights()")
        weights = list(weights)
        expected = self._weights_by_layer()
        if len(weights) != len(expected):
            counts: dict[str, int] = {}
            for owner, _, _ in expected:
                counts[owner.name] = counts.get(owner.name, 0) + 1
            raise ValueError(
                f"You called set_weights(weights) on model '{self.name}' with a list of "
                f"{len(weights)} weights, but the model expects {len(expected)}: "
                + ", ".join(f"{name}: {count}" for name, count in counts.items())
            )
        for position, (value, (owner, index, param)) in enumerate(zip(weights, expected)):
            shape = tuple(np.shape(value))
            if shape != tuple(param.shape):
                raise ValueError(
                    f"Layer '{owner.name}' weight {index} (entry {position} of the list) has "
                    f"shape {tuple(param.shape)}, but the value given has shape {shape}"
                )
        with torch.no_grad():
            for value, (_, _, param) in zip(weights, expected):
                param.copy_(torch.as_tensor(np.asarray(value), dtype=param.dtype))

    def keras_weights(self) -> list[torch.nn.Parameter]:
        return self.weights

    @property
    def trainable_weights(self) -> list[torch.nn.Parameter]:
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list[torch.nn.Parameter]:
        return [w for w in self.weights if not w.requires_grad]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = value
        if not value:
            self.requires_grad_(False)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(f"You tried to call {what} on model '{self.name}', but it isn't "
                             "built yet: call it on data first.")

    def _layer_chain(self) -> list[Layer] | None:
        """The layers in order when each feeds the next and nothing else (what ONNX export
        walks, :mod:`rnnkit.export`); None for a graph or a subclassed model's ``call``."""
        return None

    def layer_output_shapes(self) -> list[Any] | None:
        """Each layer's output shape for ``summary()``: a subclassed model's, in the call that
        built it (None for a layer that call did not use, or before it)."""
        shapes = self.__dict__.get("_layer_shapes", {})
        return [shapes.get(id(layer)) for layer in self.layers]

    # -- description --------------------------------------------------------------------------
    def summary(
        self,
        line_length: int | None = None,
        positions: Sequence[float] | None = None,
        print_fn: Callable[..., Any] | None = None,
        expand_nested: bool = False,
        show_trainable: bool = False,
        layer_range: Sequence[str] | None = None,
    ) -> None:
        """Print Keras' summary table; a functional model that is not a plain chain gets the
        ``Connected to`` column (see :mod:`rnnkit.models.summary`)."""
        summary.print_summary(self, line_length=line_length, positions=positions,
                              print_fn=print_fn, show_trainable=show_trainable,
                              layer_range=layer_range)

    def get_config(self) -> dict[str, Any]:
        """A subclassed model has no config unless its class defines ``get_config``."""
        raise NotImplementedError(
            f"Model '{self.name}' ({type(self).__name__}) is a subclassed model without "
            "get_config(): define get_config() (the __init__ arguments) and from_config() to "
            "save it, or use save_weights()/load_weights()"
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        return cls(**config)

    # -- saving ---------------------------------------------------------------------------------
    def save(self, filepath: str | os.PathLike[str], overwrite: bool = True,
             include_optimizer: bool = True) -> None:
        """Write the model (config, weights, compile settings, optimizer state) to one file,
        atomically; see :mod:`rnnkit.models.saving`."""
        saving.save_model(self, filepath, overwrite=overwrite,
                          include_optimizer=include_optimizer)

    def save_weights(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write the weights only (safetensors), atomically."""
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str | os.PathLike[str]) -> None:
        """Load weights written by :meth:`save_weights` or :meth:`save` into this model."""
        saving.load_weights(self, filepath)

    def export_onnx(self, path: str | os.PathLike[str], **kwargs: Any) -> str:
        """Write the model as ONNX; see :func:`rnnkit.export.onnx` (same keyword arguments;
        a Sequential model, the one kind that is a chain of layers)."""
        from ..export import onnx

        return onnx(self, path, **kwargs)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _shapes_of(inputs: Any) -> Any:
    """[None, *shape[1:]] of a tensor/array, or a list/dict of them (JSON-ready)."""
    if isinstance(inputs, dict):
        return {k: _shapes_of(v) for k, v in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return [_shapes_of(v) for v in inputs]
    shape = getattr(inputs, "shape", None)
    return None if shape is None else [None, *[int(d) for d in tuple(shape)[1:]]]


def _zeros_like_shapes(shapes: Any, unknown: int = 1) -> Any:
    if isinstance(shapes, dict):
        return {k: _zeros_like_shapes(v, unknown) for k, v in shapes.items()}
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple,
                                                                                dict)):
        return [_zeros_like_shapes(v, unknown) for v in shapes]
    return torch.zeros([unknown if d is None else int(d) for d in shapes])


def _measured_shapes(first: Any, second: Any) -> Any:
    """The shapes of two runs' outputs, None where their sizes differ."""
    if isinstance(first, dict):
        return {k: _measured_shapes(first[k], second[k]) for k in first}
    if isinstance(first, (list, tuple)):
        return [_measured_shapes(a, b) for a, b in zip(first, second)]
    return tuple(a if a == b else None for a, b in zip(first.shape, second.shape))


__all__ = ["Model"]
