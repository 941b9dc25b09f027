"""Keras-style rnnkit models (``Sequential``, or one layer) as ONNX graphs.

The graph follows :meth:`rnnkit.models.Sequential.forward` layer by layer, threading the mask as
``compute_mask`` does (Embedding(mask_zero) and Masking make one, recurrent layers keep it only
with ``return_sequences``, RepeatVector drops it). Recurrent layers without a mask run on the
standard ONNX operators; with a mask, on a ``Scan`` with Keras' masking (see ``_recurrent``).
Inference only: Dropout is the identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import (
    GRU,
    LSTM,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    LayerNormGRU,
    LayerNormLSTM,
    Masking,
    PeepholeLSTM,
    RepeatVector,
    SimpleRNN,
    TimeDistributed,
)
from ..layers._base import Layer
from . import _activations
from ._graph import FLOAT, Graph
from ._recurrent import Direction, compatible, scan, standard_op


def _numpy(param: Any) -> np.ndarray:
    return param.detach().cpu().numpy().astype(np.float32)


_VARIANTS = (PeepholeLSTM, LayerNormLSTM, LayerNormGRU)


def keras_direction(layer: Layer) -> Direction:
    """A SimpleRNN/GRU/LSTM layer's (or an LSTM/GRU variant's) weights and options (Keras
    layout)."""
    owner = f"{type(layer).__name__} '{layer.name}'"
    if not isinstance(layer, (SimpleRNN, GRU, LSTM, *_VARIANTS)):
        raise ValueError(
            f"{owner}: only SimpleRNN, GRU, LSTM, PeepholeLSTM, LayerNormLSTM and LayerNormGRU "
            "(and Bidirectional over them) can be exported to ONNX; a generic RNN over a custom "
            "cell cannot"
        )
    if layer.stateful:
        raise ValueError(f"{owner}: stateful layers carry state between calls, which an ONNX "
                         "graph does not; export a copy built with stateful=False")
    if layer.return_state:
        raise ValueError(f"{owner}: return_state=True is not supported by the ONNX export")
    cell = layer.cell
    variant = isinstance(layer, _VARIANTS)
    kind = cell.kind if variant else {SimpleRNN: "rnn", GRU: "gru", LSTM: "lstm"}[type(layer)]
    width = cell.kernel.shape[1]
    bias = np.zeros(width, np.float32)
    recurrent_bias = None
    if cell.bias is not None:
        values = _numpy(cell.bias)
        if kind == "layer_norm_gru" or (kind == "gru" and cell.reset_after):
            bias, recurrent_bias = values[0], values[1]
        else:
            bias = values
    return Direction(
        kind=kind,
        kernel=_numpy(cell.kernel),
        recurrent=_numpy(cell.recurrent_kernel),
        bias=bias,
        recurrent_bias=recurrent_bias,
        activation=_activations.name_of(cell.activation, owner),
        recurrent_activation=_activations.name_of(
            getattr(cell, "recurrent_activation", cell.activation), owner),
        reset_after=bool(getattr(cell, "reset_after", True)),
        reverse=bool(layer.go_backwards),
        zero_output_for_mask=bool(layer.zero_output_for_mask),
        extra={name: _numpy(p) for name, p in cell.named_parameters()
               if name not in ("kernel", "recurrent_kernel", "bias")} if variant else {},
    )


class _Flow:
    """The value flowing through the model: a tensor name, the mask name (or None) and, when
    the mask is the prefix ``t < lengths[b]``, the int32 lengths (``sequence_lens``)."""

    def __init__(self, x: str, mask: str | None, lengths: str | None = None) -> None:
        self.x, self.mask = x, mask
        self.lengths = lengths if mask is not None else None

    def with_x(self, x: str) -> _Flow:
        return _Flow(x, self.mask, self.lengths)


def _run_directions(g: Graph, x: str, directions: list[Direction], mask: str | None,
                    lengths: str | None = None) -> list[tuple[str, str]]:
    """Each direction's (sequence (B, T, U) in its processing order, last output (B, U)).

    A prefix mask (``lengths``) runs on the standard ops with ``sequence_lens``, which give
    zeros past each end and the state at the last real step; Keras' rule differs only for a
    forward direction, whose outputs past the end repeat that state (unless
    ``zero_output_for_mask``). A reverse direction meets the padding first, holding zeros,
    which is what ``sequence_lens`` gives."""
    results: list[tuple[str, str] | None] = [None] * len(directions)
    prefix = mask is not None and lengths is not None
    use_op = (mask is None or prefix) and all(d.standard_op_ok() for d in directions)
    if use_op:
        groups = [[0, 1]] if len(directions) == 2 and compatible(*directions) and (
            not directions[0].reverse and directions[1].reverse) else [
            [i] for i in range(len(directions))]
        x_tm = g.transpose(x, [1, 0, 2])
        for group in groups:
            y, y_h, *_ = standard_op(g, x_tm, [directions[i] for i in group],
                                     lengths if prefix else None)
            parts = g.op("Split", [y, g.const([1] * len(group), "split", np.int64)],
                         len(group), axis=1) if len(group) == 2 else [y]
            for j, i in enumerate(group):
                seq = g.transpose(g.squeeze(parts[j], 1), [1, 0, 2])  # (B, T, U), time order
                if directions[i].reverse:
                    seq = g.flip(seq, 1)  # processing order, as Keras returns it
                last = g.op("Gather", [y_h, g.const(j, "index", np.int64)], axis=0)
                d = directions[i]
                if prefix and not d.reverse:
                    assert mask is not None
                    if d.zero_output_for_mask:
                        steps_kept = g.op("Gather", [mask, g.const(-1, "last", np.int64)], axis=1)
                        last = g.op("Where", [g.unsqueeze(steps_kept, 1), last,
                                              g.const(0.0, "zero")])
                    else:  # repeat the last real output past the end
                        seq = g.op("Where", [g.unsqueeze(mask, 2), seq, g.unsqueeze(last, 1)])
                results[i] = (seq, last)
    else:
        for i, d in enumerate(directions):
            y, last = scan(g, x, d, mask)
            results[i] = (g.transpose(y, [1, 0, 2]), last)
    return [r for r in results if r is not None]


def _recurrent(g: Graph, flow: _Flow, layer: Any) -> _Flow:
    (seq, last), = _run_directions(g, flow.x, [keras_direction(layer)], flow.mask,
                                   flow.lengths)
    if layer.return_sequences:
        return flow.with_x(seq)
    return _Flow(last, None)


def _bidirectional(g: Graph, flow: _Flow, layer: Bidirectional) -> _Flow:
    owner = f"Bidirectional '{layer.name}'"
    if layer.merge_mode is None:
        raise ValueError(f"{owner}: merge_mode=None returns two tensors; pick a merge mode to "
                         "export it")
    if layer.return_state:
        raise ValueError(f"{owner}: return_state=True is not supported by the ONNX export")
    fw, bw = layer.forward_layer, layer.backward_layer
    (y, y_last), (z, z_last) = _run_directions(
        g, flow.x, [keras_direction(fw), keras_direction(bw)], flow.mask, flow.lengths)
    if layer.return_sequences:
        a, b = y, g.flip(z, 1)  # the backward sequence back in time order, as rnnkit does
    else:
        a, b = y_last, z_last
    if layer.merge_mode == "concat":
        out = g.op("Concat", [a, b], axis=-1)
    elif layer.merge_mode == "sum":
        out = g.op("Add", [a, b])
    elif layer.merge_mode == "mul":
        out = g.op("Mul", [a, b])
    else:  # ave
        out = g.op("Mul", [g.op("Add", [a, b]), g.const(0.5, "half")])
    return flow.with_x(out) if layer.return_sequences else _Flow(out, None)


def _dense(g: Graph, x: str, layer: Dense) -> str:
    y = g.op("MatMul", [x, g.const(_numpy(layer.kernel), "kernel")])
    if layer.bias is not None:
        y = g.op("Add", [y, g.const(_numpy(layer.bias), "bias")])
    return _activations.emit(g, _activations.name_of(layer.activation, f"Dense '{layer.name}'"), y)


def _layer(g: Graph, flow: _Flow, layer: Layer) -> _Flow:
    if isinstance(layer, (SimpleRNN, GRU, LSTM)) or hasattr(layer, "cell"):
        return _recurrent(g, flow, layer)  # a generic RNN: keras_direction says why not
    if isinstance(layer, Bidirectional):
        return _bidirectional(g, flow, layer)
    if isinstance(layer, Dense):
        return flow.with_x(_dense(g, flow.x, layer))
    if isinstance(layer, Dropout):
        return flow
    if isinstance(layer, TimeDistributed):
        inner = layer.layer
        if isinstance(inner, Dense):
            return flow.with_x(_dense(g, flow.x, inner))
        if isinstance(inner, Dropout):
            return flow
        raise ValueError(f"TimeDistributed '{layer.name}': only Dense or Dropout inside can be "
                         f"exported, got {type(inner).__name__}")
    if isinstance(layer, Embedding):
        out = g.op("Gather", [g.const(_numpy(layer.embeddings), "embeddings"), flow.x], axis=0)
        mask = None
        if layer.mask_zero:
            mask = g.op("Not", [g.op("Equal", [flow.x, g.const(0, "zero_id", np.int64)])])
        return _Flow(out, mask)
    if isinstance(layer, Masking):
        differs = g.op("Not", [g.op("Equal", [flow.x, g.const(layer.mask_value, "mask_value")])])
        keep = g.op("Cast", [differs], to=FLOAT)  # (B, T, D)
        any_kept = g.op("ReduceMax", [keep], axes=[-1], keepdims=0)  # (B, T)
        mask = g.op("Greater", [any_kept, g.const(0.0, "zero")])
        return _Flow(g.op("Mul", [flow.x, g.unsqueeze(any_kept, -1)]), mask)
    if isinstance(layer, RepeatVector):
        expanded = g.op("Expand", [g.unsqueeze(flow.x, 1),
                                   g.const([1, layer.n, 1], "repeat", np.int64)])
        return _Flow(expanded, None)
    raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) cannot be exported to ONNX")


def layers_graph(g: Graph, layers: list[Layer], x: str, mask: str | None,
                 lengths: str | None = None) -> str:
    """Emit every layer in order; returns the output's name. ``lengths`` (int32, (B,)) says
    that ``mask`` is the prefix ``t < lengths[b]``."""
    flow = _Flow(x, mask, lengths)
    for layer in layers:
        flow = _layer(g, flow, layer)
    return flow.x
