"""``rnnkit.nn`` (and ``torch.nn``) RNN/GRU/LSTM modules as ONNX graphs on the standard ops.

Each layer is one ONNX RNN/GRU/LSTM node holding both directions; layers are stacked by
reshaping Y (T, D, B, H) into the next layer's input (T, B, D*H). ``lengths`` becomes the ops'
``sequence_lens``, which is exactly ``torch.nn``'s packed-sequence semantics (and rnnkit.nn's
``lengths=``): zeros past each sequence's end, ``h_n`` at its last real step, the reverse
direction over the real steps only. Inference only (no dropout between layers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._kernels._cell_spec import CELLS, by_torch_mode
from ._graph import Graph
from ._recurrent import Direction, standard_op


def module_kind(module: Any) -> str | None:
    """The cell's one name ("rnn" | "gru" | "lstm") for rnnkit.nn / torch.nn recurrent
    modules, else None."""
    if isinstance(module, torch.nn.RNNBase):  # rnnkit.nn's modules are RNNBases too
        return by_torch_mode(module.mode).name
    return None


def _keras_layout(weight: torch.Tensor, kind: str) -> np.ndarray:
    """torch's (G*H, ...) rows in torch's gate order -> Keras' (..., G*H) columns."""
    array = weight.detach().cpu().numpy().astype(np.float32)
    cell = CELLS[kind]
    parts = np.split(array, cell.gates, axis=0)
    return np.concatenate([parts[i] for i in cell.permutation("torch", "keras")], axis=0).T


def torch_direction(module: Any, kind: str, layer: int, reverse: bool) -> Direction:
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    hidden = module.hidden_size
    width = CELLS[kind].gates * hidden
    bias = np.zeros(width, np.float32)
    recurrent_bias = np.zeros(width, np.float32)
    if module.bias:
        bias = _keras_layout(getattr(module, "bias_ih" + suffix)[:, None], kind)[0]
        recurrent_bias = _keras_layout(getattr(module, "bias_hh" + suffix)[:, None], kind)[0]
    activation = getattr(module, "nonlinearity", "tanh") if kind == "rnn" else "tanh"
    return Direction(
        kind=kind,
        kernel=_keras_layout(getattr(module, "weight_ih" + suffix), kind),
        recurrent=_keras_layout(getattr(module, "weight_hh" + suffix), kind),
        bias=bias,
        recurrent_bias=recurrent_bias,
        activation=activation,
        recurrent_activation="sigmoid",
        reset_after=True,
        reverse=reverse,
    )


def module_graph(g: Graph, module: Any, kind: str, x: str,
                 lengths: str | None) -> tuple[str, list[str]]:
    """Emit the module over x in its own layout; returns (output, [h_n] or [h_n, c_n])."""
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM with proj_size > 0 has no ONNX LSTM equivalent; it cannot be "
                         "exported")
    x_tm = g.transpose(x, [1, 0, 2]) if module.batch_first else x
    seq_lens = None if lengths is None else g.op("Cast", [lengths], to=6)  # int32
    directions = 2 if module.bidirectional else 1
    finals: list[list[str]] = [[], []]
    layer_input = x_tm
    for layer in range(module.num_layers):
        dirs = [torch_direction(module, kind, layer, bool(d)) for d in range(directions)]
        y, *states = standard_op(g, layer_input, dirs, seq_lens)
        for i, state in enumerate(states):
            finals[i].append(state)
        # (T, D, B, H) -> (T, B, D*H)
        layer_input = g.op("Reshape", [g.transpose(y, [0, 2, 1, 3]),
                                       g.const([0, 0, directions * module.hidden_size],
                                               "shape", np.int64)])
    output = g.transpose(layer_input, [1, 0, 2]) if module.batch_first else layer_input
    state_outputs = [g.op("Concat", names, axis=0) if len(names) > 1 else names[0]
                     for names in finals if names]
    return output, state_outputs
