"""Reading the JSON files of a run folder back as checked dataclasses.

Every file rnnkit reads back from RUN_DIR (``run.json``, ``preprocessing.json``,
``metrics.json``, ``manifest.json``) is described by a dataclass whose type hints are the
file's schema. :func:`read_fields` checks a parsed file against it: unknown fields, missing
fields, each value's type (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``list[X]``,
``dict[str, X]``, ``Any``, a nested dataclass), then the dataclass' own ``__post_init__``
range checks. Any failure is one ``ValueError`` naming the file and the field::

    runs/x/preprocessing.json: field 'scaling.scale' must be a list of numbers, got 'abc'

A ``__post_init__`` raises ``ValueError("'name' must be ...")`` (the field's name first, quoted);
:func:`read_fields` adds the file and, for nested objects, the path to the field.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, TypeVar

__all__ = ["check_int", "check_number", "read_fields"]

T = TypeVar("T")


def read_fields(cls: type[T], data: Any, source: str, skip: tuple[str, ...] = (),
                prefix: str = "") -> T:
    """``cls(**data)`` after checking ``data`` field by field (see the module notes).

    ``skip`` names keys that are allowed and left out (a format marker checked by the
    caller). Every field must be present: rnnkit writes them all (the dataclass' defaults are
    for the Python API, never a silent stand-in for a field deleted from the file).
    """
    where = f"field {prefix.rstrip('.')!r}" if prefix else "it"
    if not isinstance(data, dict):
        raise ValueError(f"{source}: {where} must be an object, got {_shown(data)}")
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values = {k: v for k, v in data.items() if k not in skip}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        names = ", ".join(prefix + name for name in unknown)
        raise ValueError(f"{source} has unknown fields: {names}")
    for name in fields:
        if name not in values:
            raise ValueError(f"{source}: field {prefix + name!r} is missing")
    for name, value in values.items():
        expected = hints[name]
        if dataclasses.is_dataclass(expected):
            values[name] = read_fields(expected, value, source, prefix=f"{prefix}{name}.")
        elif not _is_instance(value, expected):
            raise ValueError(f"{source}: field {prefix + name!r} must be "
                             f"{_describe(expected)}, got {_shown(value)}")
    try:
        return cls(**values)
    except ValueError as e:  # a value out of range: the check names the field first
        text = str(e)
        if prefix and text.startswith("'"):
            text = "'" + prefix + text[1:]
        raise ValueError(f"{source}: field {text}") from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_instance(value: Any, expected: Any) -> bool:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, arg) for arg in args)
    if expected is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_is_instance(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _is_instance(k, args[0]) and _is_instance(v, args[1]) for k, v in value.items())
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _describe(expected: Any) -> str:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if expected is type(None):
        return "null"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if origin in (list, dict):
        whole, item = ("a list", args[0]) if origin is list else ("an object", args[1])
        if item is Any:
            return whole
        plural = _describe(item)
        plural = "objects" if plural.startswith("an object") else plural
        plural = "lists" if plural.startswith("a list") else plural
        return f"{whole} of {re.sub(r'^an? ', '', plural).removesuffix('s')}s"
    return names.get(expected, getattr(expected, "__name__", str(expected)))


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    """``ValueError("'name' must be ...")`` unless ``value`` is an int in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name!r} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name!r} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name!r} must be <= {maximum}, got {value}")


def check_number(name: str, values: list[float], positive: bool = False,
                 length: int | None = None) -> None:
    """``ValueError`` unless every value is finite (and > 0 with ``positive``) and, with
    ``length``, there are that many."""
    if length is not None and len(values) != length:
        raise ValueError(f"{name!r} must hold {length} number(s), got {len(values)}")
    for value in values:
        if not math.isfinite(value) or (positive and not value > 0):
            need = "finite numbers > 0" if positive else "finite numbers"
            raise ValueError(f"{name!r} must hold {need}, got {value!r}")
