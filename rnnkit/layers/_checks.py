"""Argument checks shared by the layers: units, rates, options rnnkit does not implement,
and Keras' ``use_cudnn`` as rnnkit's ``backend``. Each bad value is a ValueError naming it."""

from __future__ import annotations

from typing import Any

import numpy as np


def reject_unsupported(owner: str, options: dict[str, Any]) -> None:
    """Raise if a Keras option rnnkit does not implement was given a value (its default,
    None, is accepted so that Keras configs load)."""
    given = sorted(name for name, value in options.items() if value is not None)
    if given:
        raise ValueError(f"{owner} does not support {', '.join(given)}; remove it.")


def check_rate(owner: str, name: str, rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def check_units(owner: str, units: Any) -> int:
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
        raise ValueError(f"{owner}: units must be a positive integer, got {units!r}")
    return int(units)


def backend_from_use_cudnn(owner: str, use_cudnn: Any, backend: str) -> str:
    """Keras' ``use_cudnn`` ("auto", True, False) as rnnkit's ``backend``: True demands a
    kernel (``"fused"`` unless ``"compiled"`` was asked for), False the loop."""
    if use_cudnn not in ("auto", True, False):
        raise ValueError(f"{owner}: use_cudnn must be 'auto', True or False, got {use_cudnn!r}")
    if use_cudnn == "auto":
        return backend
    wanted = "fused" if use_cudnn else "loop"
    if backend != "auto" and (backend == "loop") != (wanted == "loop"):
        raise ValueError(f"{owner}: use_cudnn={use_cudnn} contradicts backend={backend!r}")
    return backend if backend != "auto" else wanted
