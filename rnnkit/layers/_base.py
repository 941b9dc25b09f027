"""The contract every Keras-style layer in rnnkit follows.

A :class:`Layer` is a ``torch.nn.Module`` that behaves like a Keras 3 layer:

- it builds lazily: ``build(input_shape)`` creates its parameters on the first call (or earlier
  when ``input_shape`` / ``batch_input_shape`` was given), from the input's shape;
- ``layer(x, mask=None, training=None, **kwargs)`` accepts NumPy arrays or tensors, batch first;
  ``training=None`` means ``self.training``, and layers start in training mode like any
  ``torch.nn.Module`` (``fit`` trains in training mode; ``evaluate``/``predict`` run in
  inference mode and give the mode back afterwards);
- masks are (batch, time) bool tensors; ``compute_mask(inputs, mask)`` gives the mask the next
  layer receives (``Sequential`` threads it through);
- ``get_weights()`` / ``set_weights()`` use Keras' order and shapes (``keras_weights()`` lists
  the parameters in that order); ``count_params()`` matches Keras' count;
- ``get_config()`` returns the constructor arguments as JSON-serialisable values and
  ``from_config(config)`` rebuilds the layer, so models can be saved without pickle.

Shapes given to ``build`` and ``compute_output_shape`` are tuples with ``None`` for unknown
dimensions (the batch), as Keras prints them in ``summary()``.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import _symbolic

Shape = tuple[int | None, ...]

_name_counters: defaultdict[str, itertools.count[int]] = defaultdict(itertools.count)


def _snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """Keras' automatic names: ``simple_rnn``, then ``simple_rnn_1``, ``simple_rnn_2``, ..."""
    index = next(_name_counters[base])
    return base if index == 0 else f"{base}_{index}"


def as_tensor(x: Any, dtype: torch.dtype | None = None) -> Tensor:
    """NumPy arrays, lists and tensors to a tensor; floating NumPy data becomes float32 as in Keras."""
    if isinstance(x, Tensor):
        return x if dtype is None else x.to(dtype)
    array = np.asarray(x)
    if dtype is None and np.issubdtype(array.dtype, np.floating):
        dtype = torch.get_default_dtype()
    return torch.as_tensor(array, dtype=dtype)


def first_weight(module: torch.nn.Module) -> torch.nn.Parameter | None:
    """The module's first parameter (``next(module.parameters())``), or None. Layers ask on
    every call (for the dtype and device of inputs and states), and walking the module tree is
    slow at tiny sizes, so where it was found is remembered; the lookup there stays live, so a
    replaced parameter is seen."""
    found = module.__dict__.get("_first_weight_at")
    if found is not None:
        owner, name = found
        weight = owner._parameters.get(name)
        if weight is not None:
            return weight
    for owner in module.modules():
        for name, weight in owner._parameters.items():
            if weight is not None:
                module.__dict__["_first_weight_at"] = (owner, name)  # not a submodule
                return weight
    return None


def as_mask(mask: Any, batch: int | None = None, steps: int | None = None) -> Tensor | None:
    """Validate a (batch, time) boolean mask; ``None`` passes through."""
    if mask is None:
        return None
    mask = mask if isinstance(mask, Tensor) else torch.as_tensor(np.asarray(mask))
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean (batch, time) tensor, got dtype {mask.dtype}")
    if mask.dim() != 2:
        raise ValueError(f"mask must have shape (batch, time), got shape {tuple(mask.shape)}")
    if batch is not None and steps is not None and tuple(mask.shape) != (batch, steps):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match the input's (batch, time) = "
            f"({batch}, {steps})"
        )
    return mask


class Layer(torch.nn.Module):
    """Base class of rnnkit's Keras-style layers (see the module docstring for the contract)."""

    supports_masking: bool = False
    # True for a layer whose inputs are token ids (Embedding): no axis of them is a feature
    # axis, so a model starting with it checks only their rank.
    input_is_ids: bool = False

    def __init__(
        self,
        *,
        name: str | None = None,
        trainable: bool = True,
        input_shape: Sequence[int | None] | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        input_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        # Keras 2 style arguments users still write; everything else is a typo.
        kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s): {sorted(kwargs)}"
            )
        self.name = name if name is not None else unique_name(_snake_case(type(self).__name__))
        self.built = False
        self._trainable = trainable
        if batch_input_shape is not None:
            self.batch_input_shape: Shape | None = tuple(batch_input_shape)
        elif input_shape is not None:
            self.batch_input_shape = (batch_size, *tuple(input_shape))
        elif input_dim is not None:
            self.batch_input_shape = (batch_size, None, input_dim)
        else:
            self.batch_input_shape = None

    # -- building -------------------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """Create the parameters for inputs of this shape. Subclasses call ``super().build``."""
        self.built = True
        if not self._trainable:
            self.requires_grad_(False)

    def maybe_build(self, input_shape: Shape) -> None:
        if not self.built:
            self.build(tuple(input_shape))
            self.built = True
            if not self._trainable:
                self.requires_grad_(False)

    def compute_output_shape(self, input_shape: Shape) -> Shape | list[Shape]:
        return tuple(input_shape)

    def compute_mask(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor | None:
        """The mask the next layer receives. Layers that do not support masking drop it."""
        return mask if self.supports_masking else None

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Symbolic arguments (rnnkit.Input and layer outputs) record a graph node instead of
        # computing: see rnnkit/layers/_symbolic.py and rnnkit.Model.
        if _symbolic.is_symbolic_call(args, kwargs):
            return _symbolic.symbolic_call(self, args, kwargs)
        return torch.nn.Module.__call__(self, *args, **kwargs)

    @property
    def input(self) -> Any:
        """The symbolic input of this layer's one call in a graph (as Keras' ``layer.input``)."""
        return self._only_node("input").first_argument()

    @property
    def output(self) -> Any:
        """The symbolic output(s) of this layer's one call in a graph (``layer.output``)."""
        return self._only_node("output").outputs

    def _only_node(self, what: str) -> Any:
        nodes = self.__dict__.get("_inbound_nodes", [])
        # ValueError, not AttributeError: torch.nn.Module.__getattr__ would hide the message
        if not nodes:
            raise ValueError(f"Layer '{self.name}' has never been called on symbolic "
                                 f"tensors (rnnkit.Input), so it has no defined {what}.")
        if len(nodes) > 1:
            raise ValueError(
                f"Layer '{self.name}' has been called {len(nodes)} times in a graph (a shared "
                f"layer), so `layer.{what}` is ambiguous; use the tensors each call returned."
            )
        return nodes[0]

    def call(self, inputs: Tensor, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def forward(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = self.convert_inputs(inputs)
        self.maybe_build(tuple(inputs.shape))
        if kwargs.get("training") is None and "training" in self._call_arguments():
            kwargs["training"] = self.training
        if "mask" in kwargs and kwargs["mask"] is not None:
            kwargs["mask"] = as_mask(kwargs["mask"])
        return self.call(inputs, *args, **kwargs)

    def convert_inputs(self, inputs: Any) -> Tensor:
        """NumPy to tensor (float32 by default). Layers with integer inputs override this."""
        tensor = as_tensor(inputs)
        first = first_weight(self)
        if first is not None and tensor.is_floating_point() and tensor.dtype != first.dtype:
            tensor = tensor.to(first.dtype)
        return tensor

    def _call_arguments(self) -> tuple[str, ...]:
        code = type(self).call.__code__
        return code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]

    # -- weights --------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        self.requires_grad_(self._trainable)

    def keras_weights(self) -> list[torch.nn.Parameter]:
        """Parameters in Keras' ``get_weights()`` order. Default: registration order."""
        return list(self.parameters())

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"You tried to call {what} on layer '{self.name}', but the layer isn't built. "
                "Call it on data, or give it `input_shape=`, first."
            )

    def get_weights(self) -> list[np.ndarray]:
        return [p.detach().cpu().numpy().copy() for p in self.keras_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        self._require_built("set_weights()")
        params = self.keras_weights()
        if len(weights) != len(params):
            raise ValueError(
                f"Layer '{self.name}' expects {len(params)} weights "
                f"{[tuple(p.shape) for p in params]}, but received {len(weights)}"
            )
        for index, (param, value) in enumerate(zip(params, weights)):
            value = np.asarray(value)
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"Layer '{self.name}' weight {index} has shape {tuple(param.shape)}, "
                    f"but the value given has shape {tuple(value.shape)}"
                )
        with torch.no_grad():
            for param, value in zip(params, weights):
                param.copy_(torch.as_tensor(np.asarray(value), dtype=param.dtype))

    def count_params(self) -> int:
        self._require_built("count_params()")
        return sum(p.numel() for p in self.keras_weights())

    # -- configuration --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "trainable": self._trainable}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
