"""Symbolic tensors: calling a layer on ``rnnkit.Input(...)`` records a graph, as in Keras 3.

A :class:`KerasTensor` holds a shape (``None`` for sizes not known yet, the batch first), a
dtype name and where it came from (``_keras_history = (layer, node_index, tensor_index)``).
Calling a layer on one (or on a list/dict of them, or with ``initial_state=[h, c]`` of them)
does not compute anything: it builds the layer for the input shapes, works out the output
shapes and dtypes, and appends a :class:`Node` to ``layer._inbound_nodes``::

    x = rk.Input(shape=(None, 8))               # KerasTensor (None, None, 8)
    out, h, c = rk.layers.LSTM(4, return_state=True)(x)
    # LSTM._inbound_nodes[0]: inputs (x,), outputs [out, h, c]; out.shape == (None, 4)

``rnnkit.Model(inputs, outputs)`` walks these nodes back from the outputs and runs them in order
on real tensors (:mod:`rnnkit.models.functional`).

Output shapes come from the layer's own ``compute_output_shape`` when it defines one, otherwise
from running the layer on two small zero inputs (every unknown size 2, then 3): a size that
changes between the two runs is unknown (``None``). The test runs happen without gradients,
in inference mode, with torch's random state and any stateful RNN states restored afterwards.

Masks follow Keras 3's rule (``keras/src/layers/layer.py``, step 6 of ``__call__``): when a
layer's ``call`` takes ``mask`` and the call has exactly ONE tensor argument, that argument's
mask is passed; with several tensor arguments (``LSTM(...)(x, initial_state=[h, c])``) only
arguments named ``<arg>_mask`` are filled. The outputs carry ``layer.compute_mask(first
argument, mask)``.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

Shape = tuple[int | None, ...]

_tensor_names = itertools.count()


class KerasTensor:
    """A symbolic tensor: the shape (batch first, ``None`` unknown), the dtype name, the layer
    call that made it. It has no values; only layers and ``rnnkit.Model`` take it."""

    __slots__ = ("shape", "dtype", "name", "_keras_history", "_has_mask", "__weakref__")

    def __init__(self, shape: Any, dtype: str = "float32", name: str | None = None,
                 history: tuple[Any, int, int] | None = None, has_mask: bool = False) -> None:
        self.shape: Shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(dtype)
        index = next(_tensor_names)
        self.name = name or ("keras_tensor" if index == 0 else f"keras_tensor_{index}")
        self._keras_history = history
        self._has_mask = has_mask

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __len__(self) -> int:
        raise TypeError(f"{self!r} is symbolic: it has no length. Unpack a layer's outputs "
                        "(return_state=True) as `out, h, c = layer(x)`.")

    def __iter__(self) -> Any:
        raise TypeError(f"{self!r} is symbolic and cannot be iterated")

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} is symbolic: it has no truth value")

    def numpy(self) -> Any:
        raise TypeError(f"{self!r} is symbolic: it has no values. Build a model with "
                        "rnnkit.Model(inputs, outputs) and call it on data.")


class Node:
    """One call of ``layer`` on symbolic arguments (see the module docstring).

    ``input_tensors`` lists the KerasTensors in the call's arguments, in order (the
    ``Connected to`` column of ``summary()``); ``outputs`` is the returned structure."""

    def __init__(self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 outputs: Any, mask_argument: str | None, mask_source: str | None) -> None:
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.outputs = outputs
        self.input_tensors = flatten((args, kwargs))
        self.output_tensors = flatten(outputs)
        self.mask_argument = mask_argument  # the call argument filled with a mask, or None
        self.mask_source = mask_source  # the tensor argument whose mask fills it
        self.is_input = bool(getattr(layer, "is_input", False))

    @property
    def parent_nodes(self) -> list[Node]:
        parents = []
        for tensor in self.input_tensors:
            layer, index, _ = tensor._keras_history
            parents.append(layer._inbound_nodes[index])
        return parents

    def first_argument(self) -> Any:
        return self.args[0] if self.args else next(iter(self.kwargs.values()))


# -- structures --------------------------------------------------------------------------------
def flatten(value: Any) -> list[Any]:
    """The KerasTensors (or tensors) in a nest of tuples, lists and dicts, in order."""
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in flatten(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in flatten(item)]
    return [value] if isinstance(value, (KerasTensor, Tensor)) else []


def map_structure(function: Callable[[Any], Any], value: Any) -> Any:
    """``function`` applied to every KerasTensor in a nest (other leaves kept)."""
    if isinstance(value, KerasTensor):
        return function(value)
    if isinstance(value, list):
        return [map_structure(function, item) for item in value]
    if isinstance(value, tuple):
        return tuple(map_structure(function, item) for item in value)
    if isinstance(value, dict):
        return {key: map_structure(function, item) for key, item in value.items()}
    return value


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


def is_symbolic_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a layer call has a KerasTensor among its arguments (also inside lists, tuples and
    dicts: ``initial_state=[h, c]``, merge layers). Plain tensors are passed over first: this
    runs on every layer call."""
    for value in itertools.chain(args, kwargs.values()):
        if type(value) is Tensor or value is None:
            continue
        if isinstance(value, KerasTensor):
            return True
        if isinstance(value, (list, tuple, dict)) and flatten_symbolic(value):
            return True
    return False


def flatten_symbolic(value: Any) -> list[KerasTensor]:
    return [leaf for leaf in _leaves(value) if isinstance(leaf, KerasTensor)]


def input_layer_of(value: Any) -> Any:
    """The InputLayer that made ``value`` (an ``rnnkit.Input(...)`` tensor), else ``value``."""
    if isinstance(value, KerasTensor) and value._keras_history is not None:
        layer = value._keras_history[0]
        if getattr(layer, "is_input", False):
            return layer
    return value


# -- the symbolic call -------------------------------------------------------------------------
def _torch_dtype(name: str) -> torch.dtype:
    if name == "float32":
        return torch.get_default_dtype()
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"Unknown dtype {name!r}")
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _describe(value: Any) -> str:
    if isinstance(value, KerasTensor):
        return str(value.shape)
    if isinstance(value, Tensor):
        return f"tensor {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"array {value.shape}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    return repr(value)


def describe_call(layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()
                                            if flatten_symbolic(v) or flatten(v)]
    return f"layer '{layer.name}' ({type(layer).__name__}) called on " + ", ".join(parts)


def _check_not_mixed(layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    leaves = _leaves((args, kwargs))
    if any(isinstance(leaf, (Tensor, np.ndarray)) for leaf in leaves):
        raise ValueError(
            f"{describe_call(layer, args, kwargs)}: the arguments mix symbolic tensors "
            "(rnnkit.Input and layer outputs) with real tensors/arrays. Call a layer either on "
            "symbolic tensors (to build a model) or on data, not both at once."
        )


def _call_signature(layer: Any) -> inspect.Signature:
    call = type(layer).call
    cached = call.__dict__.get("_rnnkit_signature") if hasattr(call, "__dict__") else None
    if cached is None:
        cached = inspect.signature(call)
        try:
            call.__dict__["_rnnkit_signature"] = cached
        except (AttributeError, TypeError):  # pragma: no cover - builtins
            pass
    return cached


def _mask_rule(layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[str | None, str | None]:
    """(argument filled with a mask, tensor argument it comes from) by Keras' rule."""
    signature = _call_signature(layer)
    try:
        bound = signature.bind(layer, *args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{describe_call(layer, args, kwargs)}: {error}") from None
    names = list(signature.parameters)
    tensors = {name: value for name, value in bound.arguments.items()
               if name != names[0] and name != "mask" and flatten_symbolic(value)}
    if len(tensors) == 1:
        if "mask" in names and bound.arguments.get("mask") is None:
            return "mask", next(iter(tensors))
        return None, None
    for name in tensors:  # several tensor arguments: only `<name>_mask` ones are filled
        if f"{name}_mask" in names and bound.arguments.get(f"{name}_mask") is None:
            return f"{name}_mask", name
    return None, None


def bound_argument(layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    bound = _call_signature(layer).bind(layer, *args, **kwargs)
    return bound.arguments.get(name)


def _shape_of(value: Any) -> Any:
    if isinstance(value, KerasTensor):
        return value.shape
    if isinstance(value, (list, tuple)):
        return [_shape_of(v) for v in value]
    if isinstance(value, dict):
        return {k: _shape_of(v) for k, v in value.items()}
    return None


def _dummy(value: KerasTensor, unknown: int) -> Tensor:
    shape = [unknown if d is None else d for d in value.shape]
    return torch.zeros(shape, dtype=_torch_dtype(value.dtype))


def _dummy_mask(value: KerasTensor, unknown: int) -> Tensor | None:
    if not value._has_mask or value.ndim < 2:
        return None
    shape = [unknown if d is None else d for d in value.shape[:2]]
    return torch.ones(shape, dtype=torch.bool)


def _saved_states(layer: torch.nn.Module) -> list[tuple[dict[str, Any], str, Any]]:
    saved = []
    for module in layer.modules():
        for key in ("states", "_state_batch"):
            if key in module.__dict__:
                saved.append((module.__dict__, key, module.__dict__[key]))
    return saved


def _masks_of(value: Any, unknown: int) -> Any:
    masks = map_structure(lambda t: _dummy_mask(t, unknown), value)
    return None if all(m is None for m in _leaves(masks)) else masks


def _trial_run(layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any], unknown: int,
               mask_argument: str | None, mask_source: str | None) -> tuple[Any, Any]:
    """Run ``layer`` on zeros shaped like the symbolic arguments: (outputs, output masks)."""
    real_args = map_structure(lambda t: _dummy(t, unknown), args)
    real_kwargs = map_structure(lambda t: _dummy(t, unknown), kwargs)
    if mask_argument is not None:
        source = bound_argument(layer, args, kwargs, mask_source)  # type: ignore[arg-type]
        real_kwargs[mask_argument] = _masks_of(source, unknown)
    if "training" in _call_signature(layer).parameters and kwargs.get("training") is None:
        real_kwargs["training"] = False
    previous = real_kwargs.get("mask")
    first = real_args[0] if real_args else next(iter(real_kwargs.values()))
    if previous is None:
        first_symbolic = args[0] if args else next(iter(kwargs.values()))
        previous = _masks_of(first_symbolic, unknown)
    saved = _saved_states(layer)
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            outputs = torch.nn.Module.__call__(layer, *real_args, **real_kwargs)
            masks = layer.compute_mask(first, previous)
    finally:
        for owner, key, value in saved:
            owner[key] = value
    return outputs, masks


def _output_structure(outputs: Any) -> Any:
    if isinstance(outputs, Tensor):
        return outputs
    if isinstance(outputs, (list, tuple)) and all(isinstance(o, Tensor) for o in outputs):
        return list(outputs) if isinstance(outputs, list) else tuple(outputs)
    if isinstance(outputs, dict) and all(isinstance(o, Tensor) for o in outputs.values()):
        return dict(outputs)
    raise TypeError(f"returned {type(outputs).__name__}; a layer in a functional model must "
                    "return a tensor, or a list/tuple/dict of tensors")


def _declared_shapes(layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     count: int) -> list[Shape] | None:
    from ._base import Layer  # the base's compute_output_shape is the identity: not a rule

    if type(layer).compute_output_shape is Layer.compute_output_shape:
        return None
    first = args[0] if args else next(iter(kwargs.values()))
    try:
        shapes = layer.compute_output_shape(_shape_of(first))
    except Exception:  # noqa: BLE001 - fall back on measuring the trial runs
        return None
    if isinstance(shapes, tuple) and all(d is None or isinstance(d, int) for d in shapes):
        shapes = [shapes]
    shapes = list(shapes) if isinstance(shapes, (list, tuple)) else None
    if shapes is None or len(shapes) != count:
        return None
    return [tuple(s) for s in shapes]


def symbolic_call(layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Record ``layer(*args, **kwargs)`` on symbolic arguments; return symbolic outputs."""
    _check_not_mixed(layer, args, kwargs)
    mask_argument, mask_source = _mask_rule(layer, args, kwargs)
    first = args[0] if args else next(iter(kwargs.values()))
    try:
        shape = _shape_of(first)
        if hasattr(layer, "maybe_build") and not layer.built:
            layer.maybe_build(shape if isinstance(shape, tuple) else tuple(shape))
        outputs, masks = _trial_run(layer, args, kwargs, 2, mask_argument, mask_source)
        outputs = _output_structure(outputs)
        flat = flatten(outputs)
        shapes = _declared_shapes(layer, args, kwargs, len(flat))
        if shapes is None or any(len(s) != o.dim() for s, o in zip(shapes, flat)):
            again, _ = _trial_run(layer, args, kwargs, 3, mask_argument, mask_source)
            again_flat = flatten(_output_structure(again))
            shapes = [tuple(a if a == b else None for a, b in zip(o.shape, p.shape))
                      for o, p in zip(flat, again_flat)]
    except Exception as error:
        raise ValueError(f"Exception encountered when calling {describe_call(layer, args, kwargs)}"
                         f": {type(error).__name__}: {error}") from error
    flat_masks = [None] * len(flat)
    if masks is not None:
        given = masks if isinstance(masks, (list, tuple)) else [masks]
        flat_masks = [given[i] if i < len(given) else None for i in range(len(flat))]
    nodes = layer.__dict__.setdefault("_inbound_nodes", [])
    index = len(nodes)
    symbolic = [KerasTensor(s, dtype_name(o.dtype), history=(layer, index, i),
                            has_mask=m is not None)
                for i, (s, o, m) in enumerate(zip(shapes, flat, flat_masks))]
    replacements = iter(symbolic)
    structure = _replace_tensors(outputs, replacements)
    nodes.append(Node(layer, args, dict(kwargs), structure, mask_argument, mask_source))
    return structure


def _replace_tensors(value: Any, replacements: Any) -> Any:
    if isinstance(value, Tensor):
        return next(replacements)
    if isinstance(value, list):
        return [_replace_tensors(v, replacements) for v in value]
    if isinstance(value, tuple):
        return tuple(_replace_tensors(v, replacements) for v in value)
    if isinstance(value, dict):
        return {k: _replace_tensors(v, replacements) for k, v in value.items()}
    return value


def input_tensor(layer: Any, shape: Shape, dtype: str) -> KerasTensor:
    """The KerasTensor of an InputLayer (its one node, which has no inputs)."""
    tensor = KerasTensor(shape, dtype, name=layer.name, history=(layer, 0, 0))
    layer.__dict__["_inbound_nodes"] = [Node(layer, (), {}, tensor, None, None)]
    return tensor


__all__ = ["KerasTensor", "Node", "symbolic_call", "is_symbolic_call", "input_layer_of"]
