"""Keras weights read from HDF5 with h5py, into rnnkit layers (Keras' ``get_weights`` order).

Two layouts exist:

- Keras 3 (``.weights.h5``, and ``model.weights.h5`` inside a ``.keras`` archive): a group per
  layer, by name, under ``layers/``; its variables are ``vars/0``, ``vars/1``, ... in
  ``get_weights`` order. Recurrent layers keep theirs under ``cell/vars``, ``Bidirectional``
  under ``forward_layer/`` and ``backward_layer/``, ``TimeDistributed`` under ``layer/``.
- Keras 2 / legacy HDF5 (full-model ``.h5`` under ``model_weights/``, or a Keras 2
  ``save_weights`` file at the root): the ``layer_names`` attribute lists the layers that have
  weights, in model order, and each layer group's ``weight_names`` attribute lists its datasets
  in ``get_weights`` order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...layers import Bidirectional, Layer, TimeDistributed


def _names(attribute: Any) -> list[str]:
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in np.asarray(attribute)]


def _array(dataset: Any, where: str) -> np.ndarray:
    import h5py

    if not isinstance(dataset, h5py.Dataset):
        raise ValueError(f"{where} is not a dataset")
    value = np.asarray(dataset[()])
    if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype, np.integer):
        raise ValueError(f"{where} holds {value.dtype} data, not numbers")
    return value


def _vars(group: Any, where: str) -> list[np.ndarray]:
    vars_group = group.get("vars")
    if vars_group is None:
        return []
    keys = sorted(vars_group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if any(not k.isdigit() for k in keys) or [int(k) for k in keys] != list(range(len(keys))):
        raise ValueError(f"{where}/vars should hold datasets 0, 1, ..., got {keys}")
    return [_array(vars_group[k], f"{where}/vars/{k}") for k in keys]


def keras3_layer_weights(layer: Layer, group: Any, where: str) -> list[np.ndarray]:
    """The weights of one rnnkit ``layer`` from its Keras 3 group (layout in the module doc)."""

    def child(name: str) -> Any:
        sub = group.get(name)
        if sub is None:
            raise ValueError(f"{where} has no '{name}' group for layer '{layer.name}'")
        return sub

    if isinstance(layer, Bidirectional):
        return [*keras3_layer_weights(layer.forward_layer, child("forward_layer"),
                                      f"{where}/forward_layer"),
                *keras3_layer_weights(layer.backward_layer, child("backward_layer"),
                                      f"{where}/backward_layer")]
    if isinstance(layer, TimeDistributed):
        return keras3_layer_weights(layer.layer, child("layer"), f"{where}/layer")
    if hasattr(layer, "cell"):
        return _vars(child("cell"), f"{where}/cell")
    return _vars(group, where)


def load_keras3_weights(model: Any, root: Any, source: str) -> None:
    """Set every weighted layer of ``model`` from a Keras 3 weights file (matched by name)."""
    layers_group = root.get("layers")
    if layers_group is None:
        raise ValueError(f"{source}: no 'layers' group; this is not a Keras 3 weights file")
    keys = [layer.name for layer in model.layers]
    if type(model).__name__ == "Functional":
        keys = _container_names(model.layers)
    for layer, key in zip(model.layers, keys):
        if not layer.keras_weights():
            continue
        group = layers_group.get(key)
        if group is None:
            raise ValueError(
                f"{source}: no weights for layer '{layer.name}'. The file has layers "
                f"{sorted(layers_group.keys())}; Keras 3 weights are matched by layer name, so "
                "build the rnnkit model with the same names (name=...)"
            )
        _set(layer, keras3_layer_weights(layer, group, f"layers/{layer.name}"), source)


def _container_names(layers: list[Layer]) -> list[str]:
    """The names Keras 3's saving gives the layers of a functional model's layer list: the
    class name in snake case, numbered in list order (``lstm``, ``lstm_1``; not layer.name)."""
    from ...layers._base import _snake_case

    used: dict[str, int] = {}
    names = []
    for layer in layers:
        base = _snake_case(type(layer).__name__)
        if base in used:
            used[base] += 1
            names.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            names.append(base)
    return names


def load_legacy_weights(model: Any, root: Any, source: str) -> None:
    """Set the weights from a legacy HDF5 group holding ``layer_names`` (matched in order, as
    Keras 2's ``load_weights`` does)."""
    if "layer_names" not in root.attrs:
        raise ValueError(f"{source}: no 'layer_names' attribute; not a Keras HDF5 weights group")
    names = [n for n in _names(root.attrs["layer_names"])
             if n in root and _names(root[n].attrs.get("weight_names", []))]
    weighted = [layer for layer in model.layers if layer.keras_weights()]
    if len(names) != len(weighted):
        raise ValueError(
            f"{source}: the file has weights for {len(names)} layers {names}, but the model has "
            f"{len(weighted)} layers with weights {[layer.name for layer in weighted]}"
        )
    for layer, name in zip(weighted, names):
        group = root[name]
        arrays = [_array(group[w], f"{name}/{w}") if w in group else _missing(source, name, w)
                  for w in _names(group.attrs["weight_names"])]
        _set(layer, arrays, source)


def _missing(source: str, layer: str, weight: str) -> np.ndarray:
    raise ValueError(f"{source}: layer '{layer}' lists weight '{weight}', which is not in the file")


def _set(layer: Layer, arrays: list[np.ndarray], source: str) -> None:
    try:
        layer.set_weights(arrays)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
