"""``Sequential``: a stack of rnnkit layers, each feeding the next, with Keras 3's model API.

Calling the model runs the layers in order and threads the mask: a layer whose ``call`` takes
``mask`` receives ``previous_layer.compute_mask(inputs, mask)`` (so ``Embedding(mask_zero=True)``
or ``Masking`` reach the recurrent layers after them)::

    h_0 = x,  m_0 = mask
    h_i = layer_i(h_{i-1}, mask=m_{i-1}),   m_i = layer_i.compute_mask(h_{i-1}, m_{i-1})

The model is built as soon as its input shape is known: from the first layer's
``input_shape`` / ``batch_input_shape``, a first ``rnnkit.Input(...)`` / ``InputLayer``, or
``model.build(shape)``; otherwise on the first call or ``fit``. It is a ``torch.nn.Module``
(``parameters()``, ``to()``, ``state_dict()`` work); note that ``compile`` is Keras' (not
``torch.nn.Module.compile``) and that the model starts in training mode, as every
``torch.nn.Module`` does (``model.eval()`` before calling it for inference; ``predict`` and
``evaluate`` switch to inference mode themselves and give the mode back).

Example::

    >>> import numpy as np
    >>> from rnnkit.layers import SimpleRNN, Dense
    >>> from rnnkit.models import Sequential
    >>> model = Sequential([SimpleRNN(10, input_shape=(4, 1)), Dense(1)])
    >>> model.count_params()
    131
    >>> model.compile(optimizer="adam", loss="mse")
    >>> history = model.fit(np.zeros((6, 4, 1)), np.zeros(6), epochs=2, verbose=0)
    >>> sorted(history.history)
    ['loss']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..layers._base import (
    Layer,
    Shape,
    as_mask,
    as_tensor,
    is_structure,
    map_structure,
    unique_name,
)
from .._registry import register_model_kind
from ..layers._symbolic import input_layer_of
from . import saving
from .model import Model


def is_input_spec(obj: Any) -> bool:
    """An ``Input(...)`` / ``InputLayer`` marker: it carries ``batch_input_shape`` and is not a
    computing layer (duck-typed, so any input marker of rnnkit.layers works)."""
    obj = input_layer_of(obj)  # rnnkit.Input(...) is the symbolic tensor of an InputLayer
    if getattr(obj, "batch_input_shape", None) is None:
        return False
    return not isinstance(obj, Layer) or type(obj).__name__ == "InputLayer" or bool(
        getattr(obj, "is_input", False)
    )


@register_model_kind
class Sequential(Model):
    """A linear stack of layers; the training, summary, weights and saving API is
    :class:`~rnnkit.Model`'s (as in Keras 3, a Sequential is a Model, and so a Layer: it nests
    in another model or in ``TimeDistributed``).

    Args:
        layers: the layers (an ``rnnkit.Input(shape)`` may come first to declare the input).
        name: the model's name (default ``"sequential"``, ``"sequential_1"``, ...).
        trainable: whether the layers' weights are trained.
    """

    def __init__(self, layers: Iterable[Any] | None = None, name: str | None = None,
                 trainable: bool = True) -> None:
        Model.__init__(self, name=name if name is not None else unique_name("sequential"))
        if layers is not None and not isinstance(layers, (list, tuple)):
            layers = [layers] if isinstance(layers, Layer) or is_input_spec(layers) else layers
        self._layers = torch.nn.ModuleList()
        self._input_shape: Shape | None = None  # batch first, None for unknown sizes
        self._input_declared = False  # given by the user (checked strictly) or seen in data
        self._output_shapes: list[Any] | None = None
        for layer in layers or []:
            self.add(layer)
        if not trainable:
            self.trainable = False

    # -- layers ----------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers, in order (a copy: use ``add``/``pop`` to change them)."""
        return list(self._layers)

    @layers.setter
    def layers(self, value: Any) -> None:
        raise AttributeError("`Sequential.layers` attribute is reserved and should not be used. "
                             "Use `add()` and `pop()` to change the layers in this model.")

    def add(self, layer: Any) -> None:
        """Append a layer; the first element may instead declare the input shape."""
        layer = input_layer_of(layer)
        if is_input_spec(layer):
            if len(self._layers) or self._input_declared:
                raise ValueError(
                    f"Sequential model '{self.name}' has already been configured to use input "
                    f"shape {_show(self._input_shape) if self._input_shape else None} or has "
                    "layers; an Input/InputLayer can only be its first element"
                )
            self._set_input_shape(tuple(layer.batch_input_shape), declared=True)
            return
        if not isinstance(layer, Layer):
            raise ValueError(
                "Only instances of rnnkit.layers.Layer (a model too, nested as one layer) "
                f"can be added to a Sequential model, got {layer!r} of type "
                f"{type(layer).__name__}"
            )
        if layer is self:
            raise ValueError(f"Sequential model '{self.name}' cannot contain itself")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"All layers added to a Sequential model should have unique names. Name "
                f"'{layer.name}' is already the name of a layer in this model. Pass a unique "
                "name= to the layer."
            )
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"Layer '{layer.name}' is already in this model")
        if not len(self._layers) and self._input_shape is None:
            shape = _declared_input_shape(layer)
            if shape is not None:
                self._input_shape = shape
                self._input_declared = True
        self._layers.append(layer)
        layer.train(self.training)
        self._rebuild()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not len(self._layers):
            raise TypeError("There are no layers in the model.")
        layer = self._layers[-1]
        del self._layers[-1]
        self._rebuild()
        return layer

    # -- building --------------------------------------------------------------------------
    def _set_input_shape(self, shape: Sequence[int | None], declared: bool) -> None:
        self._input_shape = tuple(None if d is None else int(d) for d in shape)
        self._input_declared = declared
        self._rebuild()

    def _rebuild(self) -> None:
        """Build the layers and work out their output shapes once the input shape is known."""
        self._output_shapes = None
        if self._input_shape is None or not len(self._layers):
            return
        shapes: list[Any] = []
        shape: Any = self._input_shape
        for index, layer in enumerate(self._layers):
            _single_input(layer)
            if index:
                _single_output(self._layers[index - 1], shape)
            layer.maybe_build(shape)
            try:
                shape = _as_shape(layer.compute_output_shape(shape))
            except NotImplementedError:
                # A layer that cannot say its output shape (Keras' "dynamic" layer) is built
                # by the call; the shapes from here on are unknown ("?" in the summary).
                shapes.extend([None] * (len(self._layers) - index))
                break
            shapes.append(shape)
        self._output_shapes = shapes

    def build(self, input_shape: Sequence[int | None] | None = None) -> None:
        """Build every layer for inputs of ``input_shape`` (batch first, e.g. ``(None, 4, 1)``)."""
        if not len(self._layers):
            raise ValueError(f"Sequential model '{self.name}' cannot be built because it has no "
                             "layers. Call model.add(layer) first.")
        if input_shape is None:
            if self._input_shape is None:
                raise ValueError("build() needs input_shape, e.g. (None, timesteps, features)")
            self._rebuild()
            return
        input_shape = tuple(input_shape)
        if self._input_declared and self._input_shape is not None and not _compatible(
                self._input_shape, input_shape):
            raise ValueError(
                f"Sequential model '{self.name}' has already been configured to use input "
                f"shape {_show(self._input_shape)}. You cannot build it with input_shape "
                f"{_show(input_shape)}"
            )
        self._set_input_shape(input_shape, declared=True)

    @property
    def built(self) -> bool:
        return bool(len(self._layers)) and self._output_shapes is not None and all(
            layer.built for layer in self._layers
        )

    @built.setter
    def built(self, value: bool) -> None:
        """Nothing to set: a Sequential is built when its layers and shapes are (the Layer
        base starts every layer unbuilt)."""

    def layer_output_shapes(self) -> list[Any] | None:
        """Each layer's output shape (batch first), once the model is built."""
        return None if self._output_shapes is None else list(self._output_shapes)

    @property
    def input_shape(self) -> Shape:
        if self._input_shape is None:
            raise NoShapeError(f"Sequential model '{self.name}' has no input shape yet: give the "
                             "first layer input_shape=, call build(), or call it on data")
        return self._input_shape

    @property
    def output_shape(self) -> Any:
        if self._output_shapes is None:
            raise NoShapeError(f"Sequential model '{self.name}' has no output shape yet: it "
                               "is not built")
        return self._output_shapes[-1]

    def __getattr__(self, name: str) -> Any:
        if name in ("input_shape", "output_shape"):
            # The property raised NoShapeError; torch.nn.Module.__getattr__ would replace its
            # message by "no attribute", so ask the property again for its own error.
            getattr(type(self), name).fget(self)
        return super().__getattr__(name)

    def _check_input_shape(self, shape: tuple[int, ...], what: str) -> None:
        """Keras 3's rule: inputs must have the model's rank and, when the first layer reads
        features, its feature (last) axis; the batch and time axes are free, so a model
        trained on 10 steps predicts on 50 (a first layer of token ids, an Embedding, checks
        the rank only)."""
        expected = self._input_shape
        if expected is None:
            return
        if len(shape) != len(expected):
            raise ValueError(
                f"{what} has shape {shape} (rank {len(shape)}), but the model expects inputs "
                f"of shape {_show(expected)} (rank {len(expected)}, batch first)"
            )
        first = self._layers[0] if len(self._layers) else None
        if getattr(first, "input_is_ids", False) or len(shape) < 2:
            return
        axis = len(shape) - 1
        if expected[axis] is not None and shape[axis] != expected[axis]:
            raise ValueError(
                f"{what} has shape {shape}, but the model expects inputs of shape "
                f"{_show(expected)}: axis {axis} (features) has size {shape[axis]}, expected "
                f"{expected[axis]}"
            )

    # -- calling ---------------------------------------------------------------------------
    def forward(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        """Run the layers in order (see the module docstring); ``training=None`` follows each
        layer's mode."""
        outputs, _ = self._call_with_mask(inputs, training=training, mask=mask)
        return outputs

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        return self.forward(inputs, training=training, mask=mask)

    def _call_with_mask(self, inputs: Any, training: bool | None = None,
                        mask: Any = None) -> tuple[Any, Tensor | None]:
        if not len(self._layers):
            raise ValueError(f"Sequential model '{self.name}' has no layers; add some with "
                             "model.add(layer) first")
        structured = is_structure(inputs)
        x: Any = (map_structure(as_tensor, inputs) if structured
                  else inputs if isinstance(inputs, Tensor) else as_tensor(inputs))
        first_shape = None if structured else tuple(x.shape)
        mask = as_mask(mask)
        last = len(self._layers) - 1
        for index, layer in enumerate(self._layers):
            _single_input(layer)
            arguments = layer._call_arguments()
            kwargs: dict[str, Any] = {}
            if mask is not None and "mask" in arguments:
                kwargs["mask"] = mask
            if training is not None and "training" in arguments:
                kwargs["training"] = training
            outputs = layer(x, **kwargs)
            if index < last and isinstance(outputs, (list, tuple)):
                _single_output(layer, [None] * len(outputs))
            if mask is not None or not is_structure(x):
                mask = layer.compute_mask(x if isinstance(x, Tensor) else as_tensor(x), mask)
            x = outputs
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        self.__dict__["_output_mask"] = mask  # what compute_mask gives, nested in a model
        if self._input_shape is None and first_shape is not None:
            self._set_input_shape((None, *first_shape[1:]), declared=False)
        elif self._output_shapes is None:
            self._rebuild()
        return x, mask

    # -- as a layer (nested in another model, or in TimeDistributed) --------------------------
    supports_masking = True

    @property
    def batch_input_shape(self) -> Shape | None:
        return self._input_shape if self._input_declared else None

    @batch_input_shape.setter
    def batch_input_shape(self, shape: Sequence[int | None] | None) -> None:
        if shape is not None:  # the Layer base sets None: nothing declared yet
            self._set_input_shape(tuple(shape), declared=True)

    def _call_arguments(self) -> tuple[str, ...]:
        return ("inputs", "training", "mask")

    def maybe_build(self, input_shape: Sequence[int | None]) -> None:
        if not self.built:
            self._set_input_shape(tuple(input_shape), declared=self._input_declared)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> Any:
        """The output shape for inputs of ``input_shape`` (batch first), layer by layer."""
        if not len(self._layers):
            if self._input_declared:  # only an Input: the identity (Keras)
                return tuple(input_shape)
            raise ValueError(f"Sequential model '{self.name}' has no layers")
        shape: Any = tuple(input_shape)
        for index, layer in enumerate(self._layers):
            if index:
                _single_output(self._layers[index - 1], shape)
            layer.maybe_build(shape)
            shape = _as_shape(layer.compute_output_shape(shape))
        return shape

    def compute_mask(self, inputs: Any, mask: Tensor | None = None) -> Tensor | None:
        """The output mask of the last call (the mask the next layer receives)."""
        return self.__dict__.get("_output_mask")

    def _layer_chain(self) -> list[Layer]:
        return list(self._layers)

    # -- weights ---------------------------------------------------------------------------
    def _require_built(self, what: str) -> None:
        unbuilt = [layer.name for layer in self._layers if not layer.built]
        if not len(self._layers) or unbuilt:
            raise ValueError(
                f"You tried to call {what} on model '{self.name}', but it isn't built"
                + (f" (unbuilt layers: {unbuilt})" if unbuilt else " (it has no layers)")
                + ". Give the first layer input_shape=, call model.build(input_shape), or call "
                "the model on data first."
            )

    def get_config(self) -> dict[str, Any]:
        """The architecture as JSON-ready values: name, layer configs and the input shape."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [saving.serialize_layer(layer) for layer in self._layers],
            "build_input_shape": None if self._input_shape is None else list(self._input_shape),
            "input_declared": self._input_declared,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuild a model from :meth:`get_config` (layers come from rnnkit.layers only)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config must be a dict with a 'layers' list")
        model = cls(name=config.get("name"))
        for spec in config["layers"]:
            model.add(saving.deserialize_layer(spec))
        shape = config.get("build_input_shape")
        if shape is not None and model._output_shapes is None and len(model._layers):
            model._set_input_shape(tuple(shape), declared=bool(config.get("input_declared")))
        # The model-level flag is all(layer.trainable): a model with one frozen layer (the
        # seeds' frozen Embedding) saves False, and its layers' own configs already restore
        # each flag. Freeze everything only for a config whose layers do not say otherwise.
        if config.get("trainable") is False and not any(
            isinstance(spec, dict) and (spec.get("config") or {}).get("trainable") is True
            for spec in config["layers"]
        ):
            model.trainable = False
        return model

class NoShapeError(AttributeError, ValueError):
    """A shape asked of a model that has none yet: an AttributeError as in Keras (so
    ``hasattr(model, "input_shape")`` is False) and a ValueError as rnnkit raised before."""


def _compatible(declared: Shape, given: Sequence[int | None]) -> bool:
    return len(declared) == len(given) and all(
        a is None or b is None or a == b for a, b in zip(declared, given))


def _single_input(layer: Any) -> None:
    """Keras' rule: a layer of a Sequential takes one required positional argument."""
    call = getattr(type(layer), "call", None)
    if call is None:
        return
    code = call.__code__
    required = code.co_argcount - 1 - len(call.__defaults__ or ())  # minus self
    if required > 1:
        names = list(code.co_varnames[1:1 + required])
        raise ValueError(
            "Layers added to a Sequential model can only have a single required positional "
            f"argument, the input tensor. Layer {type(layer).__name__} has multiple required "
            f"positional arguments: {names}"
        )


def _declared_input_shape(layer: Layer) -> Shape | None:
    """The input shape a first layer declares: its ``batch_input_shape``, or a model's one
    input shape (Keras builds a Sequential whose first layer is a functional model from it)."""
    if layer.batch_input_shape is not None:
        return tuple(layer.batch_input_shape)
    if isinstance(layer, Model):
        try:
            shape = layer.input_shape
        except (AttributeError, ValueError):  # a subclassed model declares none
            return None
        if isinstance(shape, tuple):  # one input (a list is several)
            return shape
    return None


def _as_shape(shape: Any) -> Any:
    if isinstance(shape, list):
        return [_as_shape(s) for s in shape]
    return tuple(None if d is None else int(d) for d in shape)


def _show(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _single_output(layer: Layer, output: Any) -> None:
    if isinstance(output, list):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) returns a list of {len(output)} "
            "tensors (return_state=True, or merge_mode=None), so it cannot feed the next layer of "
            "a Sequential model. Put it last, or drop return_state."
        )


__all__ = ["Sequential", "is_input_spec"]
