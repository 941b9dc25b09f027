"""A functional model's graph as JSON (``get_config``) and back (``from_config``).

The layout follows Keras 3's functional config, so one reader serves rnnkit's own files and
Keras ``.keras`` files (:mod:`rnnkit.models.keras_format`)::

    {"name": ..., "trainable": ...,
     "layers": [{"class_name", "config", "name",
                 "inbound_nodes": [{"args": [...], "kwargs": {...}}, ...]}, ...],
     "input_layers":  [name, node, tensor] or a list / dict of them,
     "output_layers": likewise}

A tensor inside ``args``/``kwargs`` is ``{"class_name": "__keras_tensor__", "config":
{"keras_history": [layer name, node index, tensor index]}}``; node indices count only the calls
that belong to this model (a shared layer may have been called by other models too). Rebuilding
calls each layer on the symbolic tensors its nodes name, in dependency order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..layers._symbolic import KerasTensor, _leaves
from . import saving

TENSOR = "__keras_tensor__"
MASK_OP = object()  # what make_layer returns for an op that only computes a mask


def get_config(model: Any) -> dict[str, Any]:
    in_graph = model._node_set
    local: dict[int, tuple[str, int]] = {}  # id(node) -> (layer name, index in this model)
    for layer in model.layers:
        nodes = [n for n in layer.__dict__.get("_inbound_nodes", []) if n in in_graph]
        for index, node in enumerate(nodes):
            local[id(node)] = (layer.name, index)

    def tensor_ref(tensor: KerasTensor) -> list[Any]:
        layer, node_index, tensor_index = tensor._keras_history
        name, index = local[id(layer._inbound_nodes[node_index])]
        return [name, index, tensor_index]

    def encode(value: Any) -> Any:
        if isinstance(value, KerasTensor):
            return {"class_name": TENSOR, "config": {"shape": list(value.shape),
                                                    "dtype": value.dtype,
                                                    "keras_history": tensor_ref(value)}}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return value

    layers = []
    for layer in model.layers:
        nodes = [n for n in layer.__dict__.get("_inbound_nodes", []) if n in in_graph]
        entry = saving.serialize_layer(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [] if getattr(layer, "is_input", False) else [
            {"args": encode(list(n.args)), "kwargs": encode(n.kwargs)} for n in nodes]
        layers.append(entry)

    def refs(structure: Any) -> Any:
        if isinstance(structure, KerasTensor):
            return tensor_ref(structure)
        if isinstance(structure, dict):
            return {k: tensor_ref(v) for k, v in structure.items()}
        return [tensor_ref(v) for v in structure]

    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": refs(model._input_struct), "output_layers": refs(model._output_struct)}


def rebuild(config: dict[str, Any], make_layer: Callable[[dict[str, Any]], Any],
            source: str = "the config") -> tuple[Any, Any, str | None]:
    """(inputs, outputs, name) of the graph in ``config``, with layers from ``make_layer``."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list) or any(
            key not in config for key in ("input_layers", "output_layers")):
        raise ValueError(f"{source}: a functional config needs 'layers', 'input_layers' and "
                         "'output_layers'")
    created: dict[str, Any] = {}
    outputs: dict[tuple[str, int], list[Any]] = {}
    pending: list[tuple[Any, int, dict[str, Any]]] = []
    for spec in config["layers"]:
        layer = make_layer(spec)
        if layer is MASK_OP:  # Keras' NotEqual of an Embedding's mask: rnnkit derives it
            name = spec.get("name")
            for index, _ in enumerate(spec.get("inbound_nodes") or []):
                outputs[(name, index)] = [MASK_OP]
            continue
        name = spec.get("name") or layer.name
        created[name] = layer
        if getattr(layer, "is_input", False):
            outputs[(name, 0)] = [layer.output]
        for index, node in enumerate(spec.get("inbound_nodes") or []):
            pending.append((layer, index, _node_dict(node, source)))
        if not getattr(layer, "is_input", False):
            layer_name = name
            if layer_name != layer.name:
                layer.name = layer_name

    def decode(value: Any) -> Any:
        if isinstance(value, dict) and value.get("class_name") == TENSOR:
            history = (value.get("config") or {}).get("keras_history")
            key = (history[0], int(history[1]))
            if key not in outputs:
                raise LookupError(key)
            return outputs[key][int(history[2])]
        if isinstance(value, list):
            return [decode(v) for v in value]
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        return value

    while pending:
        progressed = False
        for item in list(pending):
            layer, index, node = item
            try:
                args = decode(node["args"])
                kwargs = decode(node["kwargs"])
            except LookupError:
                continue
            # a mask Keras filled in by its rule at the call: rnnkit fills the same one
            kwargs = {k: v for k, v in kwargs.items() if v is not MASK_OP}
            if any(leaf is MASK_OP for leaf in _leaves((args, kwargs))):
                raise ValueError(f"{source}: layer '{layer.name}' takes a computed mask as an "
                                 "input, which rnnkit cannot rebuild")
            result = layer(*args, **kwargs)
            flat = result if isinstance(result, (list, tuple)) else [result]
            outputs[(layer.name, index)] = list(flat)
            pending.remove(item)
            progressed = True
        if not progressed:
            names = sorted({layer.name for layer, _, _ in pending})
            raise ValueError(f"{source}: the graph cannot be rebuilt: layers {names} wait for "
                             "tensors that no layer produces")

    def lookup(ref: Any) -> Any:
        if isinstance(ref, dict):
            return {k: lookup(v) for k, v in ref.items()}
        if isinstance(ref, list) and ref and isinstance(ref[0], list):
            return [lookup(r) for r in ref]
        if isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str):
            key = (ref[0], int(ref[1]))
            if key not in outputs:
                raise ValueError(f"{source}: the graph has no tensor {ref}")
            return outputs[key][int(ref[2])]
        raise ValueError(f"{source}: bad tensor reference {ref!r}")

    return lookup(config["input_layers"]), lookup(config["output_layers"]), config.get("name")


def _node_dict(node: Any, source: str) -> dict[str, Any]:
    if isinstance(node, dict) and "args" in node:
        return {"args": list(node.get("args") or []), "kwargs": dict(node.get("kwargs") or {})}
    raise ValueError(f"{source}: an inbound node must be {{'args': [...], 'kwargs': {{...}}}}, "
                     f"got {node!r}")


def from_config(config: dict[str, Any]) -> Any:
    from .functional import Functional

    inputs, outputs, name = rebuild(config, saving.deserialize_layer)
    model = Functional(inputs, outputs, name=name)
    if config.get("trainable") is False and not any(
        (spec.get("config") or {}).get("trainable") is True for spec in config["layers"]
    ):
        model.trainable = False
    return model


__all__ = ["get_config", "from_config", "rebuild"]
