"""The one layer serialiser: ``{"class_name", "config"}`` for a layer, as Keras nests them
(a Sequential's layers, Bidirectional's and TimeDistributed's inner layer, RNN's cell).

A class is found by name among ``rnnkit.layers``' public classes, the model kinds
(``rnnkit.Sequential`` and ``Functional``: a model nested in a model), which register themselves
in :mod:`rnnkit._registry` so that nothing here imports ``rnnkit.models`` (above the layers),
and the classes registered with :func:`rnnkit.register_serializable` (a custom cell or layer;
its config carries ``"registered_name"``). Nothing else is ever imported.
"""

from __future__ import annotations

from typing import Any

from .. import _registry


def _builtin_classes() -> dict[str, type]:
    from .. import layers

    classes = {name: getattr(layers, name) for name in layers.__all__
               if isinstance(getattr(layers, name, None), type) and name != "Layer"}
    classes.update(_registry.model_kinds())
    return classes


def serialize_layer(layer: Any) -> dict[str, Any]:
    """``{"class_name", "config"}`` (plus ``registered_name`` for a registered class)."""
    cls = type(layer)
    registered = _registry.registered_name(cls)
    if registered is None and _builtin_classes().get(cls.__name__) is not cls:
        raise TypeError(
            f"Layer '{getattr(layer, 'name', layer)}' is a {cls.__name__}, which is neither an "
            "rnnkit.layers class nor registered: decorate the class with "
            "@rnnkit.register_serializable() (and give it get_config()) to save it as a "
            "config, or rebuild the model in code and use save_weights()/load_weights()."
        )
    spec: dict[str, Any] = {"class_name": cls.__name__, "config": layer.get_config()}
    if registered is not None:
        spec["registered_name"] = registered
    return spec


def deserialize_layer(spec: Any) -> Any:
    """The inverse of :func:`serialize_layer`."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"A layer config must be {{'class_name': ..., 'config': {{...}}}}, "
                         f"got {spec!r}")
    name = spec.get("class_name")
    cls = _registry.get_registered_object(spec.get("registered_name") or "")
    if cls is None:
        builtins = _builtin_classes()
        cls = builtins.get(name) if isinstance(name, str) else None
        if cls is None:
            matches = [obj for key, obj in _registry._CUSTOM.items()
                       if key.split(">", 1)[1] == name]
            cls = matches[0] if len(matches) == 1 else None
        if cls is None:
            raise ValueError(f"Unknown layer class {name!r}; expected one of "
                             f"{sorted(builtins)} or a class registered with "
                             "rnnkit.register_serializable")
    return cls.from_config(dict(spec["config"]))


__all__ = ["serialize_layer", "deserialize_layer"]
