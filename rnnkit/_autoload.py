"""PyTorch's ``torch.backends`` entry point for ``RNNKIT_ACCELERATE`` (see :mod:`._accelerate`).

``import torch`` runs the ``torch.backends`` entry points of installed packages. This module
imports nothing but the standard library, so with the variable unset the hook costs nothing,
and it cannot meet :mod:`._accelerate` half-imported: when that module is the one whose
``import torch`` runs the hook, the hook leaves the switch to it (its last line turns
acceleration on once its functions exist).
"""

from __future__ import annotations

import os
import sys

__all__ = ["ENV_ACCELERATE", "autoload", "wanted"]

ENV_ACCELERATE = "RNNKIT_ACCELERATE"


def wanted() -> bool:
    """Whether ``RNNKIT_ACCELERATE`` asks for acceleration: ``1`` on; unset, empty or ``0`` off;
    anything else is an error naming the variable."""
    value = os.environ.get(ENV_ACCELERATE, "").strip()
    if value in ("", "0"):
        return False
    if value != "1":
        raise ValueError(f"{ENV_ACCELERATE} must be 1 (on) or 0 (off), got {value!r}")
    return True


def autoload() -> None:
    """The entry point: turns :func:`rnnkit.accelerate` on when :func:`wanted`."""
    if not wanted():
        return
    importing = sys.modules.get("rnnkit._accelerate")
    if importing is not None and not hasattr(importing, "accelerate"):
        return  # rnnkit._accelerate is importing torch right now and switches itself on
    from ._accelerate import accelerate

    accelerate()
