"""Keras-style layers: batch-first ``torch.nn.Module`` s with Keras 3's arguments and numbers."""

from __future__ import annotations

from ._base import Layer
from ._symbolic import KerasTensor
from .attention import AdditiveAttention, Attention
from .bidirectional import Bidirectional
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .gru import GRU, GRUCell
from .input_layer import Input, InputLayer
from .lstm import LSTM, LSTMCell
from .lstm_variants import (LayerNormGRU, LayerNormGRUCell, LayerNormLSTM, LayerNormLSTMCell,
                            PeepholeLSTM, PeepholeLSTMCell)
from .masking import Masking
from .min_rnn import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell
from .merging import Add, Concatenate, Dot
from .repeat_vector import RepeatVector
from .reshaping import Flatten, Lambda, Reshape
from .rnn import RNN
from .simple_rnn import SimpleRNN, SimpleRNNCell
from .stacked_rnn_cells import StackedRNNCells
from .time_distributed import TimeDistributed

__all__ = [
    "Layer",
    "SimpleRNNCell",
    "SimpleRNN",
    "GRUCell",
    "GRU",
    "LSTMCell",
    "LSTM",
    "MinGRUCell",
    "MinGRU",
    "MinLSTMCell",
    "MinLSTM",
    "PeepholeLSTMCell",
    "PeepholeLSTM",
    "LayerNormLSTMCell",
    "LayerNormLSTM",
    "LayerNormGRUCell",
    "LayerNormGRU",
    "RNN",
    "StackedRNNCells",
    "Bidirectional",
    "Dense",
    "Embedding",
    "Masking",
    "Dropout",
    "TimeDistributed",
    "RepeatVector",
    "InputLayer",
    "Input",
    "Concatenate",
    "Add",
    "Dot",
    "Attention",
    "AdditiveAttention",
    "Lambda",
    "Flatten",
    "Reshape",
]
