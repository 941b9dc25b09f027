"""The training stack of rnnkit's models: Keras 3's ``compile``/``fit``/``evaluate``/
``predict`` (:class:`Trainer`, and :class:`MultiIOTrainer` for several inputs or outputs),
losses, metrics, optimizers and their schedules, callbacks (``BackupAndRestore`` included),
and distributed training under ``torchrun``.

It sits below :mod:`rnnkit.models` and never imports it: a model kind mixes the trainers in
and provides their hooks (``_call_with_mask(x, training)``, ``_check_input_shape(shape,
what)``, ``_check_input_shapes(shapes, what)``); callbacks reach the model only through the
methods every kind has (``save``, ``get_weights``, ``state_dict``, ``stop_training``, ...).
The public modules are re-exported as ``rnnkit.losses``, ``rnnkit.metrics``,
``rnnkit.optimizers``, ``rnnkit.schedules`` and ``rnnkit.callbacks``.
"""

from __future__ import annotations

from . import callbacks, losses, metrics, optimizers, schedules
from ._multi import MultiIOTrainer
from .callbacks import History
from .trainer import Trainer

__all__ = [
    "Trainer",
    "MultiIOTrainer",
    "History",
    "callbacks",
    "losses",
    "metrics",
    "optimizers",
    "schedules",
]
