"""Functional models: ``rnnkit.Model(inputs, outputs)`` over a graph of layer calls.

Calling layers on symbolic tensors (``rnnkit.Input``) records nodes
(:mod:`rnnkit.layers._symbolic`); the model walks them back from its outputs, as Keras 3's
``map_graph`` does, and on a call runs them in order on real tensors::

    enc_in = rk.Input(shape=(None, 12)); dec_in = rk.Input(shape=(None, 9))
    _, h, c = rk.layers.LSTM(32, return_state=True)(enc_in)
    seq = rk.layers.LSTM(32, return_sequences=True)(dec_in, initial_state=[h, c])
    probs = rk.layers.Dense(9, activation="softmax")(seq)
    model = rk.Model([enc_in, dec_in], probs)          # two inputs, one output

Inputs and outputs may be one tensor, a list or a dict of them; calls take data of the same
structure (a dict keyed by the input names works for list inputs too) and return the outputs'
structure. A layer called several times (a shared layer) is one layer with several nodes: its
weights are used by every call. Masks travel with the tensors by Keras' rule (see
:mod:`rnnkit.layers._symbolic`), and the outputs' masks reach the loss.

``model.layers`` lists the layers by depth (inputs first), ``model.inputs``/``outputs`` the
symbolic tensors, and a layer's ``input``/``output`` its symbolic tensors, so a decoding model
can be assembled from a trained model's layers::

    encoder = rk.Model(model.input[0], model.layers[2].output[1:])
"""

from __future__ import annotations

import collections
from typing import Any

import torch
from torch import Tensor

from .._registry import register_model_kind
from ..layers._base import Layer, as_mask, as_tensor, unique_name
from ..layers._symbolic import (
    KerasTensor,
    Node,
    _call_signature,
    _leaves,
    bound_argument,
    flatten_symbolic,
)
from .model import Model


@register_model_kind
class Functional(Model):
    """A model defined by a graph from ``inputs`` to ``outputs`` (see the module docstring).

    Args:
        inputs: an ``rnnkit.Input`` tensor, or a list or dict of them (or of intermediate
            symbolic tensors).
        outputs: a symbolic tensor reachable from ``inputs``, or a list or dict of them.
        name: the model's name (default ``"functional"``, ``"functional_1"``, ...).
    """

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None,
                 trainable: bool = True) -> None:
        Model.__init__(self, name=name if name is not None else unique_name("functional"),
                       trainable=trainable)
        self._input_struct = _check_structure(inputs, "inputs")
        self._output_struct = _check_structure(outputs, "outputs")
        if isinstance(self._input_struct, dict):
            self._input_keys: list[str] = list(self._input_struct)
        self._inputs = flatten_symbolic(self._input_struct)
        self._outputs = flatten_symbolic(self._output_struct)
        self._nodes, self._nodes_by_depth, layers = _map_graph(self._inputs, self._outputs)
        names = [layer.name for layer in layers]
        for layer_name in names:
            if names.count(layer_name) > 1:
                raise ValueError(f'The name "{layer_name}" is used {names.count(layer_name)} '
                                 "times in the model. All layer names should be unique.")
        self._layers = torch.nn.ModuleList(layers)
        self.built = True
        if not trainable:
            self.trainable = False

    # -- structure ----------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._outputs)

    @property
    def input(self) -> Any:
        """The inputs as given: one tensor, a list or a dict."""
        return self._input_struct

    @property
    def output(self) -> Any:
        return self._output_struct

    @property
    def input_names(self) -> list[str]:
        if isinstance(self._input_struct, dict):
            return list(self._input_keys)
        return [tensor.name for tensor in self._inputs]

    @property
    def output_names(self) -> list[str]:
        """Keras' output names: the dict keys, else the name of each output's layer."""
        if isinstance(self._output_struct, dict):
            return list(self._output_struct)
        return [tensor._keras_history[0].name for tensor in self._outputs]

    @property
    def input_shape(self) -> Any:
        shapes = [tensor.shape for tensor in self._inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self) -> Any:
        shapes = [tensor.shape for tensor in self._outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def layer_output_shapes(self) -> list[Any]:
        """Each layer's output shape in its last call, as Keras' summary shows it."""
        shapes = []
        for layer in self._layers:
            node = self._last_node(layer)
            tensors = node.output_tensors if node is not None else []
            shape = [t.shape for t in tensors]
            shapes.append(shape[0] if len(shape) == 1 else shape)
        return shapes

    def _last_node(self, layer: Layer) -> Node | None:
        nodes = [n for n in layer.__dict__.get("_inbound_nodes", []) if n in self._node_set]
        return nodes[-1] if nodes else None

    @property
    def _node_set(self) -> set[Node]:
        return {node for nodes in self._nodes_by_depth.values() for node in nodes}

    def _summary_connections(self) -> list[str] | None:
        """The ``Connected to`` column, or None when the graph is a plain chain (Keras then
        prints the Sequential table)."""
        chain = all(len(nodes) == 1 and len(nodes[0].input_tensors) <= 1
                    for nodes in self._nodes_by_depth.values())
        if chain:
            in_graph = self._node_set
            chain = all(sum(n in in_graph for n in layer.__dict__.get("_inbound_nodes", [])) <= 1
                        for layer in self._layers)
        if chain:
            return None
        in_graph = self._node_set
        column = []
        for layer in self._layers:
            parts = []
            for node in layer.__dict__.get("_inbound_nodes", []):
                if node not in in_graph:
                    continue
                for tensor in node.input_tensors:
                    source, node_index, tensor_index = tensor._keras_history
                    parts.append(f"{source.name}[{node_index}][{tensor_index}]")
            column.append(", ".join(parts) or "-")
        return column

    # -- calling ------------------------------------------------------------------------------
    def forward(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        """Run the graph on data shaped like :attr:`input` (see the module docstring)."""
        outputs, _ = self._run_graph(inputs, training, mask)
        return outputs

    def _call_with_mask(self, inputs: Any, training: bool | None = None,
                        mask: Any = None) -> tuple[Any, Any]:
        return self._run_graph(inputs, training, mask)

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        return self.forward(inputs, training=training, mask=mask)

    def _standardize_inputs(self, inputs: Any) -> list[Any]:
        count = len(self._inputs)
        if isinstance(inputs, dict):
            names = self.input_names
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(f"Model '{self.name}' expects inputs named {names}; the dict "
                                 f"given has keys {sorted(inputs)} (missing {missing})")
            return [inputs[n] for n in names]
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != count:
                raise ValueError(f"Model '{self.name}' expects {count} input(s) "
                                 f"{[t.shape for t in self._inputs]}, but received "
                                 f"{len(inputs)}")
            return list(inputs)
        if count != 1:
            raise ValueError(f"Model '{self.name}' expects {count} inputs "
                             f"{[t.shape for t in self._inputs]} (a list or a dict keyed by "
                             f"{self.input_names}), but received a single input")
        return [inputs]

    def _run_graph(self, inputs: Any, training: bool | None, mask: Any) -> tuple[Any, Any]:
        flat = self._standardize_inputs(inputs)
        masks_in = [None] * len(flat) if mask is None else (
            list(mask) if isinstance(mask, (list, tuple)) else [mask])
        values: dict[int, Tensor] = {}
        masks: dict[int, Tensor | None] = {}
        for tensor, value, given in zip(self._inputs, flat, masks_in):
            values[id(tensor)] = _to_tensor(value, tensor, self)
            masks[id(tensor)] = as_mask(given)
        for node in self._nodes:
            if node.is_input or all(id(t) in values for t in node.output_tensors):
                continue
            self._run_node(node, values, masks, training)
        outputs = _rebuild(self._output_struct, values)
        output_masks = _rebuild(self._output_struct, masks)
        return outputs, output_masks

    @staticmethod
    def _run_node(node: Node, values: dict[int, Tensor], masks: dict[int, Any],
                  training: bool | None) -> None:
        layer = node.layer
        real = lambda t: values[id(t)]  # noqa: E731
        args = _map(real, node.args)
        kwargs = _map(real, node.kwargs)
        if node.mask_argument is not None:
            source = bound_argument(layer, node.args, node.kwargs, node.mask_source)  # type: ignore
            given = _collapse(_map(lambda t: masks.get(id(t)), source))
            if given is not None:
                kwargs[node.mask_argument] = given
        if training is not None and "training" in _call_signature(layer).parameters:
            kwargs["training"] = training  # the model's mode wins over the recorded one (Keras)
        outputs = layer(*args, **kwargs)
        first = args[0] if args else next(iter(kwargs.values()))
        previous = kwargs.get("mask")
        if previous is None:
            first_symbolic = node.args[0] if node.args else next(iter(node.kwargs.values()))
            previous = _collapse(_map(lambda t: masks.get(id(t)), first_symbolic))
        output_masks = layer.compute_mask(first, previous)
        flat_outputs = [o for o in _leaves(outputs) if isinstance(o, Tensor)]
        flat_masks = _leaves(output_masks) if output_masks is not None else []
        for index, (symbolic, value) in enumerate(zip(node.output_tensors, flat_outputs)):
            values[id(symbolic)] = value
            masks[id(symbolic)] = flat_masks[index] if index < len(flat_masks) else None

    def _check_input_shape(self, shape: tuple[int, ...], what: str) -> None:
        """One input: the rank and the feature (last) axis must match (Keras 3 lets the time
        axis vary)."""
        if len(self._inputs) != 1:
            return
        _check_shape(self._inputs[0], shape, what, self)

    def _check_input_shapes(self, shapes: list[tuple[int, ...]], what: str) -> None:
        for index, (spec, shape) in enumerate(zip(self._inputs, shapes)):
            _check_shape(spec, shape, f"{what}[{index}]", self)

    # -- configuration ------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The graph as JSON-ready values, in Keras' functional config layout."""
        from . import _functional_config

        return _functional_config.get_config(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Functional:
        from . import _functional_config

        return _functional_config.from_config(config)


# -- helpers ------------------------------------------------------------------------------------
def _check_structure(value: Any, what: str) -> Any:
    leaves = _leaves(value)
    bad = [leaf for leaf in leaves if not isinstance(leaf, KerasTensor)]
    if bad or not leaves:
        example = bad[0] if bad else value
        raise ValueError(
            f"rnnkit.Model({what}=...) takes symbolic tensors (rnnkit.Input(...) and the outputs "
            f"of layers called on them), as one tensor, a list or a dict; got "
            f"{type(example).__name__}"
            + (f" of shape {tuple(example.shape)}" if hasattr(example, "shape") else "")
        )
    if isinstance(value, tuple):
        value = list(value)
    return value


def _map(function: Any, value: Any) -> Any:
    if isinstance(value, KerasTensor):
        return function(value)
    if isinstance(value, list):
        return [_map(function, v) for v in value]
    if isinstance(value, tuple):
        return tuple(_map(function, v) for v in value)
    if isinstance(value, dict):
        return {k: _map(function, v) for k, v in value.items()}
    return value


def _collapse(masks: Any) -> Any:
    """A structure of masks that are all None is no mask."""
    return None if all(m is None for m in _leaves(masks)) else masks


def _rebuild(structure: Any, values: dict[int, Any]) -> Any:
    return _map(lambda t: values[id(t)], structure)


def _to_tensor(value: Any, spec: KerasTensor, model: Functional) -> Tensor:
    if isinstance(value, KerasTensor):
        raise ValueError(f"Model '{model.name}' was called on symbolic and real inputs at once")
    tensor = as_tensor(value)
    if spec.dtype.startswith("int") or spec.dtype == "bool":
        if tensor.is_floating_point():
            tensor = tensor.long() if spec.dtype == "int64" else tensor.to(torch.int64)
    elif tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64, torch.bool):
        from ..layers._symbolic import _torch_dtype

        wanted = _torch_dtype(spec.dtype)
        if tensor.dtype != wanted:
            tensor = tensor.to(wanted)
    _check_shape(spec, tuple(tensor.shape), f"input '{spec.name}'", model)
    return tensor


def _check_shape(spec: KerasTensor, shape: tuple[int, ...], what: str,
                 model: Functional) -> None:
    expected = spec.shape
    if len(shape) != len(expected):
        raise ValueError(f"{what} has shape {shape} (rank {len(shape)}), but model "
                         f"'{model.name}' expects {expected} (rank {len(expected)}, batch first)")
    if expected[-1] is not None and len(shape) >= 2 and shape[-1] != expected[-1]:
        raise ValueError(f"{what} has shape {shape}, but model '{model.name}' expects "
                         f"{expected}: the last axis has size {shape[-1]}, expected "
                         f"{expected[-1]}")


def _map_graph(inputs: list[KerasTensor], outputs: list[KerasTensor]
               ) -> tuple[list[Node], dict[int, list[Node]], list[Layer]]:
    """Keras 3's map_graph: nodes in topological order, nodes by depth, layers by depth
    (ties in traversal order); raises when an output cannot be computed from the inputs."""
    input_ids = {id(t) for t in inputs}
    finished: set[Node] = set()
    in_progress: set[Node] = set()
    ordered: list[Node] = []
    layer_index: dict[Layer, int] = {}

    def visit(tensor: KerasTensor) -> None:
        if tensor._keras_history is None:
            return
        layer, node_index, _ = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        if node in finished:
            return
        if not node.is_input and id(tensor) in input_ids:
            finished.add(node)
            return
        if node in in_progress:
            raise ValueError(f"Tensor {tensor} from layer '{layer.name}' is part of a cycle.")
        layer_index.setdefault(layer, len(layer_index))
        in_progress.add(node)
        if not node.is_input:
            for parent in node.input_tensors:
                visit(parent)
        finished.add(node)
        in_progress.discard(node)
        ordered.append(node)

    for tensor in outputs:
        visit(tensor)
    in_graph = set(ordered)
    node_depth: dict[Node, int] = {}
    layer_depth: dict[Layer, int] = {}
    for node in reversed(ordered):
        depth = node_depth.setdefault(node, 0)
        depth = max(depth, layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = depth
        node_depth[node] = depth
        if node.is_input:
            continue
        for parent in node.input_tensors:
            layer, index, _ = parent._keras_history
            parent_node = layer._inbound_nodes[index]
            if parent_node in in_graph:
                node_depth[parent_node] = max(depth + 1, node_depth.get(parent_node, 0))
    for tensor in inputs:  # inputs not connected to any output still belong to the model
        layer, index, _ = tensor._keras_history
        node = layer._inbound_nodes[index]
        if node.is_input and layer not in layer_depth:
            layer_depth[layer] = 0
            layer_index[layer] = -1
            node_depth[node] = 0
            ordered.insert(0, node)
    nodes_by_depth: dict[int, list[Node]] = collections.defaultdict(list)
    for node, depth in node_depth.items():
        nodes_by_depth[depth].append(node)
    layers_by_depth: dict[int, list[Layer]] = collections.defaultdict(list)
    for layer, depth in layer_depth.items():
        layers_by_depth[depth].append(layer)
    layers: list[Layer] = []
    for depth in sorted(layers_by_depth, reverse=True):
        layers.extend(sorted(layers_by_depth[depth], key=lambda la: layer_index[la]))
    computable = set(input_ids)
    done: list[str] = []
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if not node.is_input:
                for tensor in node.input_tensors:
                    if id(tensor) not in computable:
                        raise ValueError(
                            f"Graph disconnected: cannot find parent for tensor {tensor} at "
                            f"layer '{node.layer.name}' ({type(node.layer).__name__}). The "
                            f"model's inputs are {[t.shape for t in inputs]} "
                            f"({[t.name for t in inputs]}); the layers reached from them "
                            f"without issue: {done}. Pass the Input this tensor comes from in "
                            "inputs=."
                        )
            elif not any(id(t) in input_ids for t in node.output_tensors):
                raise ValueError(
                    f"Graph disconnected: the output depends on Input '{node.layer.name}' "
                    f"{node.layer.shape}, which is not among the model's inputs "
                    f"{[t.name for t in inputs]}. Pass it in inputs=."
                )
            done.append(node.layer.name)
            computable.update(id(t) for t in node.output_tensors)
    execution = [node for depth in sorted(nodes_by_depth, reverse=True)
                 for node in nodes_by_depth[depth]]
    return execution, dict(nodes_by_depth), layers


__all__ = ["Functional"]
