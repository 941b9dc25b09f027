"""rnnkit: recurrent neural networks on PyTorch.

Fused RNN/GRU/LSTM kernels with hand-written backward passes, a ``torch.nn`` drop-in
(``rnnkit.nn``) and a Keras-style front end (``rnnkit.layers``, ``rnnkit.Sequential``)::

    import rnnkit as rk

    model = rk.Sequential([rk.layers.SimpleRNN(10, input_shape=(4, 1)), rk.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")

The names below are imported on first use, so ``import rnnkit.data`` (NumPy only) and the
``rnnkit`` command's ``--help`` do not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "accelerate": ("._accelerate", "accelerate"),
    "activations": (".activations", None),
    "callbacks": (".training.callbacks", None),
    "constraints": (".constraints", None),
    "data": (".data", None),
    "export": (".export", None),
    "diagnostics": (".diagnostics", None),
    "initializers": (".initializers", None),
    "is_accelerated": ("._accelerate", "is_accelerated"),
    "layers": (".layers", None),
    "losses": (".training.losses", None),
    "metrics": (".training.metrics", None),
    "models": (".models", None),
    "nn": (".nn", None),
    "optimizers": (".training.optimizers", None),
    "preprocessing": (".preprocessing", None),
    "reference": (".reference", None),
    "regularizers": (".regularizers", None),
    "schedules": (".training.schedules", None),
    "utils": (".utils", None),
    "Input": (".layers", "Input"),
    "Model": (".models", "Model"),
    "Sequential": (".models", "Sequential"),
    "load_model": (".models", "load_model"),
    "register_serializable": ("._registry", "register_serializable"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from ._accelerate import accelerate, is_accelerated
    from . import (activations, data, diagnostics, initializers, layers, models, nn,
                   preprocessing, reference, utils)
    from .layers import Input
    from .models import Model, Sequential, load_model
    from .training import callbacks, losses, metrics, optimizers, schedules


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
