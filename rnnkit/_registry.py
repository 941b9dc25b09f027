"""One lookup for every kind of named object rnnkit writes into a config.

Activations, initializers, regularizers, constraints, losses, metrics, optimizers, schedules
and layers are each a :class:`Registry`: built-in names (and aliases) to classes or functions,
plus what users registered with :func:`register_serializable` (Keras'
``register_keras_serializable``), so a custom cell, layer or loss saves and loads by name::

    @rnnkit.register_serializable(package="my_project")
    class MyCell(rnnkit.layers.Layer): ...

A config is Keras' ``{"class_name": ..., "config": {...}}``; a registered object also carries
``"registered_name": "package>Name"``, which is looked up first when loading.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

# "package>Name" -> class or function, filled by register_serializable.
_CUSTOM: dict[str, Any] = {}


def snake_case(name: str) -> str:
    """Keras' automatic names: ``SimpleRNN`` -> ``simple_rnn``, ``GRUCell`` -> ``gru_cell``,
    ``MeanSquaredError`` -> ``mean_squared_error``."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def register_serializable(package: str = "Custom", name: str | None = None
                          ) -> Callable[[Any], Any]:
    """Register a class or function under ``"package>name"`` (name: its ``__name__``) so that
    configs naming it load again. A class must have ``get_config()``."""

    def decorate(obj: Any) -> Any:
        key = f"{package}>{name or obj.__name__}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(f"Cannot register {obj.__name__}: it needs a get_config() method")
        _CUSTOM[key] = obj
        obj._registered_name = key
        return obj

    return decorate


def registered_name(obj: Any) -> str | None:
    """``"package>Name"`` of a registered class, function or instance, else None."""
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    key = target.__dict__.get("_registered_name") if hasattr(target, "__dict__") else None
    return key if key is not None and _CUSTOM.get(key) is target else None


# class name -> model kind (Sequential, Functional): layer configs nest models, and the model
# kinds register themselves here (register_model_kind) so the layer serialiser needs no import
# of rnnkit.models, which sits above rnnkit.layers.
_MODEL_KINDS: dict[str, type] = {}


def register_model_kind(cls: type) -> type:
    """Class decorator: a model kind a layer config may nest, found by its class name."""
    _MODEL_KINDS[cls.__name__] = cls
    return cls


def model_kinds() -> dict[str, type]:
    """The registered model kinds by class name (those of the rnnkit.models imported so far)."""
    return dict(_MODEL_KINDS)


def get_registered_object(key: str) -> Any:
    """The object registered under ``key`` ("package>Name"), or None."""
    return _CUSTOM.get(key)


class Registry:
    """Names to objects of one kind.

    Args:
        kind: what the objects are, for messages ("initializer").
        base: the base class instances must have (None for plain functions).
        entries: classes or functions, registered by ``__name__`` (and their snake_case name).
        aliases: extra names to entries (``"glorot_uniform" -> GlorotUniform``).
        expected: how the module's own ``get`` names what else it takes, for the unknown-name
            error (losses: "one of ['mae', 'mse', ...]"); by default the registered names.
        plural: the kind in the plural, for the error of :meth:`serialize` ("losses").
        advice: what that error tells the user to do instead.
    """

    def __init__(self, kind: str, base: type | None, entries: Iterable[Any],
                 aliases: dict[str, Any] | None = None, expected: str | None = None,
                 plural: str | None = None, advice: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.advice = advice or "register its class with @rnnkit.register_serializable()"
        self.base = base
        self.expected = expected
        self.by_name: dict[str, Any] = {}
        for entry in entries:
            self.by_name[entry.__name__] = entry
        for alias, entry in (aliases or {}).items():
            self.by_name[alias] = entry

    def names(self) -> list[str]:
        return sorted(self.by_name)

    def lookup(self, name: str, registered: str | None = None, in_config: bool = False) -> Any:
        """The entry called ``name`` (a built-in, a registered ``package>Name``, or a class
        registered under any package with that name); ``in_config`` says, in the error, that
        the name is a config's class_name."""
        for key in (registered, name):
            if key and key in _CUSTOM:
                return _CUSTOM[key]
        if name in self.by_name:
            return self.by_name[name]
        matches = [obj for key, obj in _CUSTOM.items() if key.split(">", 1)[1] == name
                   and self._accepts(obj)]
        if len(matches) == 1:
            return matches[0]
        what = f"{self.kind} class" if in_config else self.kind
        expected = self.expected or f"one of {self.names()}"
        raise ValueError(f"Unknown {what} {name!r}; expected {expected}, or an object "
                         "registered with rnnkit.register_serializable")

    def _accepts(self, obj: Any) -> bool:
        """Whether a registered object is of this kind: a subclass of ``base``, or a plain
        function (for a registry of functions, such as the activations, functions only)."""
        if not inspect.isclass(obj):
            return True
        return self.base is not None and issubclass(obj, self.base)

    def name_of(self, entry: Any, exclude: Iterable[str] = ()) -> str | None:
        """The first name ``entry`` is registered under (skipping ``exclude``), or None."""
        skipped = set(exclude)
        return next((name for name, known in self.by_name.items()
                     if known is entry and name not in skipped), None)

    def get(self, identifier: Any) -> Any:
        """None (stays None), a name (an instance with defaults), a config dict, or an object
        or callable (returned as it is)."""
        if identifier is None:
            return None
        if isinstance(identifier, str):
            entry = self.lookup(identifier)
            return entry() if inspect.isclass(entry) else entry
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        if callable(identifier):
            return identifier
        article = "An" if self.kind[:1] in "aeiou" else "A"
        raise TypeError(f"{article} {self.kind} must be a name, a config dict or a callable, "
                        f"got {identifier!r}")

    def serialize(self, obj: Any) -> dict[str, Any]:
        """Keras' ``{"class_name", "config"}`` of an instance of a known or registered class."""
        cls = type(obj)
        key = registered_name(cls)
        if key is None and self.by_name.get(cls.__name__) is not cls:
            raise TypeError(
                f"Cannot write the custom {self.kind} {obj!r} into a config: only rnnkit's "
                f"built-in {self.plural} and registered classes can be; {self.advice}")
        config: dict[str, Any] = {"class_name": cls.__name__, "config": obj.get_config()}
        if key is not None:
            config["registered_name"] = key
        return config

    def deserialize(self, config: Any, **kwargs: Any) -> Any:
        """The inverse of :meth:`serialize` (Keras' ``module`` key is ignored)."""
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise ValueError(f"A {self.kind} config needs a class_name, got {config!r}")
        cls = self.lookup(config["class_name"], config.get("registered_name"), in_config=True)
        options = dict(config.get("config") or {})
        if not inspect.isclass(cls):
            return cls
        if hasattr(cls, "from_config"):
            return cls.from_config(options, **kwargs)
        return cls(**options)


__all__ = ["Registry", "get_registered_object", "model_kinds", "register_model_kind",
           "register_serializable", "registered_name", "snake_case"]
