"""Argument checks shared by the data helpers: each error names the argument and what it got."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as a Python int, or a TypeError/ValueError naming ``name``; bools are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def rng_from(seed: int | np.random.Generator | None) -> np.random.Generator:
    """NumPy's ``default_rng`` semantics: an int seeds, a Generator is used as is, None is fresh."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None:
        check_int("seed", seed, 0)
    return np.random.default_rng(seed)


def check_columns(name: str, value: object, features: int) -> int | list[int]:
    """Column selector, NumPy-style: an int (negative counts from the end) or a non-empty list
    of ints, each in range for ``features`` columns. Returned as non-negative ints."""

    def one(c: object) -> int:
        if isinstance(c, bool) or not isinstance(c, numbers.Integral):
            raise TypeError(f"{name} must be an int or a list of ints, got {value!r}")
        if not -features <= int(c) < features:
            raise ValueError(
                f"{name} column {c} is out of range for {features} columns (0 to {features - 1})"
            )
        return int(c) % features

    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return one(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be an int or a list of ints, got {value!r}")
    if not value:
        raise ValueError(f"{name} must name at least one column, got an empty list")
    return [one(c) for c in value]
