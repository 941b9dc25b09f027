"""``torch.nn``-compatible recurrent modules on rnnkit's fused kernels.

``rnnkit.nn.RNN`` / ``GRU`` / ``LSTM`` take the same arguments in the same order, hold the same
parameters (``state_dict`` loads both ways with ``torch.nn``) and return the same values as their
``torch.nn`` namesakes, and also accept ``lengths=`` / ``mask=`` for padded variable-length
batches without packing. ``torch.jit.script`` compiles them as their ``torch.nn``
namesakes sharing their parameters, and ``torch.load(weights_only=True)`` takes them (see
:mod:`._torchscript`). They subclass :class:`torch.nn.RNNBase` (the cells subclass
``torch.nn.RNNCell`` / ``GRUCell`` / ``LSTMCell``). A tensor of the wrong shape raises
:class:`ShapeError`, both a ``ValueError`` and a ``RuntimeError``.
"""

from __future__ import annotations

import torch

from ._checks import ShapeError
from .cells import GRUCell, LSTMCell, RNNCell
from .lstm_variants import (LayerNormGRU, LayerNormGRUCell, LayerNormLSTM, LayerNormLSTMCell,
                            PeepholeLSTM, PeepholeLSTMCell)
from .minimal import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell
from .rnn import GRU, LSTM, RNN
from .scan import scan_cell

# torch.load(weights_only=True) of a whole model that holds them (see ._torchscript)
torch.serialization.add_safe_globals([RNN, GRU, LSTM, RNNCell, GRUCell, LSTMCell])

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "LayerNormGRU", "LayerNormGRUCell",
           "LayerNormLSTM", "LayerNormLSTMCell", "MinGRU", "MinGRUCell", "MinLSTM", "MinLSTMCell",
           "PeepholeLSTM", "PeepholeLSTMCell", "RNN", "RNNCell", "ShapeError", "scan_cell"]
