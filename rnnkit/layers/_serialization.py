"""The one layer serialiser: ``{"class_name", "config"}`` for a layer, as Keras nests them
(a Sequential's layers, Bidirectional's and TimeDistributed's inner layer, RNN's cell).

A class is found by name among ``rnnkit.layers``' public classes, the model kinds
(``rnnkit.Sequential`` and ``Functional``: a model nested in a model), which register themselves
in :mod:`rnnkit._registry` so that nothing here imports ``rnnkit.models`` (above the layers),
and the classes registered with :func:`rnnkit.register_serializable` (a custom cell or layer;
its config carries ``"registered_name"``) and, while loading, the ``custom_objects`` given to
``load_model`` (:func:`custom_object_scope`). Nothing else is ever imported. As in Keras, any
layer or cell can be written (a class rnnkit does not know is written with its ``"module"``, and
its ``get_config()`` when it has one); the error comes when a config names a class that none of
those provide.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from .. import _registry

# name -> class, while load_model(custom_objects=...) or custom_object_scope(...) runs
_CUSTOM_OBJECTS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "rnnkit_custom_objects", default={})


@contextlib.contextmanager
def custom_object_scope(custom_objects: dict[str, Any] | None) -> Iterator[None]:
    """Classes by name that :func:`deserialize_layer` may build inside the scope (Keras'
    ``keras.saving.custom_object_scope``)."""
    token = _CUSTOM_OBJECTS.set({**_CUSTOM_OBJECTS.get(), **(custom_objects or {})})
    try:
        yield
    finally:
        _CUSTOM_OBJECTS.reset(token)


def _builtin_classes() -> dict[str, type]:
    from .. import layers

    classes = {name: getattr(layers, name) for name in layers.__all__
               if isinstance(getattr(layers, name, None), type) and name != "Layer"}
    classes.update(_registry.model_kinds())
    return classes


def serialize_layer(layer: Any) -> dict[str, Any]:
    """``{"class_name", "config"}``, plus ``registered_name`` for a registered class and
    ``module`` for one rnnkit does not know (loading it then needs ``custom_objects``)."""
    cls = type(layer)
    registered = _registry.registered_name(cls)
    get_config = getattr(layer, "get_config", None)
    spec: dict[str, Any] = {"class_name": cls.__name__,
                            "config": get_config() if callable(get_config) else {}}
    if registered is not None:
        spec["registered_name"] = registered
    elif _builtin_classes().get(cls.__name__) is not cls:
        spec["module"] = cls.__module__
    return spec


def deserialize_layer(spec: Any) -> Any:
    """The inverse of :func:`serialize_layer`."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"A layer config must be {{'class_name': ..., 'config': {{...}}}}, "
                         f"got {spec!r}")
    name = spec.get("class_name")
    cls = _CUSTOM_OBJECTS.get().get(name) if isinstance(name, str) else None
    if cls is None:
        cls = _registry.get_registered_object(spec.get("registered_name") or "")
    if cls is None:
        builtins = _builtin_classes()
        cls = builtins.get(name) if isinstance(name, str) else None
        if cls is None:
            matches = [obj for key, obj in _registry._CUSTOM.items()
                       if key.split(">", 1)[1] == name]
            cls = matches[0] if len(matches) == 1 else None
        if cls is None:
            where = f" (defined in {spec['module']!r})" if "module" in spec else ""
            raise ValueError(
                f"Unknown layer class {name!r}{where}: pass the class to "
                f"load_model(path, custom_objects={{{name!r}: {name}}}), or decorate it with "
                f"@rnnkit.register_serializable(); rnnkit's own classes are {sorted(builtins)}")
    return cls.from_config(dict(spec["config"]))


__all__ = ["custom_object_scope", "deserialize_layer", "serialize_layer"]
