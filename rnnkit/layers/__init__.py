"""Keras-style layers: batch-first ``torch.nn.Module`` s with Keras 3's arguments and numbers."""

from __future__ import annotations

import importlib
from typing import Any

from ._base import Layer

# Public name -> module that defines it. Resolved on first access while the layers are being
# written; becomes explicit imports once every module is in place.
_EXPORTS = {
    "SimpleRNNCell": "simple_rnn",
    "SimpleRNN": "simple_rnn",
    "GRUCell": "gru",
    "GRU": "gru",
    "LSTMCell": "lstm",
    "LSTM": "lstm",
    "RNN": "rnn",
    "Bidirectional": "bidirectional",
    "Dense": "dense",
    "Embedding": "embedding",
    "Masking": "masking",
    "Dropout": "dropout",
    "TimeDistributed": "time_distributed",
    "RepeatVector": "repeat_vector",
    "InputLayer": "input_layer",
    "Input": "input_layer",
}

__all__ = ["Layer", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
