"""Keras-style models: ``Sequential``, training (``compile``/``fit``/``evaluate``/``predict``),
losses, metrics, optimizers, callbacks, summaries and saving.

The lead re-exports ``rnnkit.Sequential`` and the modules ``rnnkit.losses``, ``rnnkit.metrics``,
``rnnkit.optimizers`` and ``rnnkit.callbacks`` from here.
"""

from __future__ import annotations

from . import callbacks, losses, metrics, optimizers
from .callbacks import History
from .keras_format import load_keras
from .saving import load_model
from .sequential import Sequential

__all__ = [
    "Sequential",
    "load_model",
    "load_keras",
    "History",
    "callbacks",
    "losses",
    "metrics",
    "optimizers",
]
