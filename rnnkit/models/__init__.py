"""Keras-style models: the three kinds (``Sequential``, functional ``Model(inputs, outputs)``,
subclassed ``class M(rnnkit.Model)``) on one :class:`Model` base, their summaries and their
saving (rnnkit files, Keras 3 ``.keras``/``.h5`` files in).

Training (``compile``/``fit``/``evaluate``/``predict``, losses, metrics, optimizers, callbacks)
lives below, in :mod:`rnnkit.training`; ``rnnkit.Model``, ``rnnkit.Sequential`` and
``rnnkit.load_model`` are re-exported from here.
"""

from __future__ import annotations

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
]
