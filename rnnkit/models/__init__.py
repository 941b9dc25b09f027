"""Keras-style models: ``Sequential``, training (``compile``/``fit``/``evaluate``/``predict``),
losses, metrics, optimizers, callbacks, summaries and saving.

The lead re-exports ``rnnkit.Sequential`` and the modules ``rnnkit.losses``, ``rnnkit.metrics``,
``rnnkit.optimizers`` and ``rnnkit.callbacks`` from here.
"""

from __future__ import annotations

from . import callbacks, losses, metrics, optimizers
from .callbacks import History
from .functional import Functional
from .keras_format import load_keras
from .model import Model
from .saving import load_model
from .sequential import Sequential

__all__ = [
    "Model",
    "Functional",
    "Sequential",
    "load_model",
    "load_keras",
    "History",
    "callbacks",
    "losses",
    "metrics",
    "optimizers",
]
