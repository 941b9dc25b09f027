"""The recurrences as the standard ONNX ``RNN`` / ``GRU`` / ``LSTM`` operators.

``torch.onnx.export`` cannot translate the ``rnnkit`` operators itself, so during an export the
kernels emit the ONNX operator instead, the same graphs :func:`rnnkit.export.onnx` writes:

- ``dynamo=True`` (the default exporter): :func:`emit` records the node with
  ``torch.onnx.ops.symbolic_multi_out``; the batch size and length stay dynamic;
- ``dynamo=False`` (the TorchScript exporter): symbolic functions registered for the
  ``rnnkit`` operators (:func:`register_legacy_symbolics`) build the same node.

The gates are reordered to ONNX's (GRU z, r, h with ``linear_before_reset=1``; LSTM i, o, f, c)
by a row permutation of the weights. A mask becomes ``sequence_lens`` (its count of real steps
per sequence), which is exact for ``torch.nn``'s semantics: a prefix mask with zero padding
(``rnnkit.nn`` with ``lengths``). A mask whose outputs are held (Keras layers) has no standard
operator: that raises, naming :func:`rnnkit.export.onnx`, which writes it as a ``Scan``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["emit", "register_legacy_symbolics"]

OPSET = 17
_ONNX_OP = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}
_GATE_ORDER = {"elman": [0], "gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}  # torch blocks -> ONNX


def _rows(cell: str, hidden: int) -> list[int]:
    """The row permutation from torch's gate blocks to ONNX's."""
    return [block * hidden + j for block in _GATE_ORDER[cell] for j in range(hidden)]


def _refuse_held_mask(mask: Any, zero_padding: bool) -> None:
    if mask is not None and not zero_padding:
        raise NotImplementedError(
            "torch.onnx.export: a recurrence whose masked outputs hold the state (a Keras-style "
            "layer with a mask) has no standard ONNX operator; export the model with "
            "rnnkit.export.onnx(model, path), which writes it as an ONNX Scan")


def emit(cell: str, x: Tensor, states: tuple[Tensor | None, ...], w_ih: Tensor, w_hh: Tensor,
         b_ih: Tensor | None, b_hh: Tensor | None, mask: Tensor | None, reverse: bool,
         zero_padding: bool, relu: bool = False) -> tuple[Tensor, ...]:
    """The ONNX node of one direction for the dynamo exporter: (states (T, B, H), *finals)."""
    _refuse_held_mask(mask, zero_padding)
    steps, batch, hidden = x.shape[0], x.shape[1], w_hh.shape[1]
    rows = torch.tensor(_rows(cell, hidden), device=x.device)
    weights = [w.index_select(0, rows).unsqueeze(0) for w in (w_ih, w_hh)]
    bias = None
    if b_ih is not None or b_hh is not None:
        parts = [b if b is not None else torch.zeros_like(w_hh[:, 0]) for b in (b_ih, b_hh)]
        bias = torch.cat([p.index_select(0, rows) for p in parts]).unsqueeze(0)
    lengths = None if mask is None else mask.sum(0, dtype=torch.int32)
    attrs: dict[str, Any] = {"hidden_size": int(hidden),
                             "direction": "reverse" if reverse else "forward"}
    if cell == "elman":
        attrs["activations"] = ["Relu" if relu else "Tanh"]
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    # an absent initial state is an omitted input: zeros, in ONNX as in the operator
    inputs = [x, *weights, bias, lengths, *(None if s is None else s.unsqueeze(0) for s in states)]
    shapes = [[steps, 1, batch, hidden]] + [[1, batch, hidden]] * len(states)
    results = torch.onnx.ops.symbolic_multi_out(
        f"::{_ONNX_OP[cell]}", inputs, attrs, dtypes=[x.dtype] * len(shapes), shapes=shapes,
        version=OPSET)
    return (results[0].squeeze(1), *(r.squeeze(0) for r in results[1:]))


def register_legacy_symbolics() -> None:
    """Symbolic functions for ``torch.onnx.export(..., dynamo=False)``."""
    from torch.onnx import register_custom_op_symbolic, symbolic_helper

    def omitted(g: Any) -> Any:  # an absent optional input, as torch's own RNN symbolics write it
        value = g.op("prim::Constant")
        value.setType(torch._C.OptionalType.ofTensor())
        return value

    def node(g: Any, cell: str, x: Any, states: list[Any], w_ih: Any, w_hh: Any, b_ih: Any,
             b_hh: Any, mask: Any, reverse: Any, zero_padding: Any, relu: bool,
             extra_outputs: int) -> tuple[Any, ...]:
        reverse = symbolic_helper._maybe_get_const(reverse, "b")
        zero_padding = symbolic_helper._maybe_get_const(zero_padding, "b")
        absent = symbolic_helper._is_none(mask)
        _refuse_held_mask(None if absent else mask, bool(zero_padding))
        sizes = symbolic_helper._get_tensor_sizes(w_hh)
        if sizes is None or sizes[1] is None:
            raise NotImplementedError("torch.onnx.export: the recurrent weights' shape must be "
                                      "known to export an rnnkit recurrence")
        hidden = int(sizes[1])
        rows = g.op("Constant", value_t=torch.tensor(_rows(cell, hidden)))

        def gate_rows(w: Any) -> Any:
            return g.op("Gather", w, rows, axis_i=0)

        def unsqueeze0(v: Any) -> Any:
            return g.op("Unsqueeze", v, g.op("Constant", value_t=torch.tensor([0])))

        weights = [unsqueeze0(gate_rows(w)) for w in (w_ih, w_hh)]
        biases = [b for b in (b_ih, b_hh) if not symbolic_helper._is_none(b)]
        inputs = [x, *weights]
        if biases:
            if len(biases) == 1:  # ONNX takes both halves: the other one is zero
                zeros = g.op("Mul", biases[0], g.op("Constant", value_t=torch.tensor(0.0)))
                biases = [biases[0], zeros] if not symbolic_helper._is_none(b_ih) \
                    else [zeros, biases[0]]
            inputs.append(unsqueeze0(g.op("Concat", *(gate_rows(b) for b in biases), axis_i=0)))
        else:
            inputs.append(omitted(g))
        if absent:
            inputs.append(omitted(g))
        else:
            counts = g.op("ReduceSum", g.op("Cast", mask, to_i=6),  # int32
                          g.op("Constant", value_t=torch.tensor([0])), keepdims_i=0)
            inputs.append(counts)
        inputs += [omitted(g) if symbolic_helper._is_none(s) else unsqueeze0(s) for s in states]
        attrs: dict[str, Any] = {"hidden_size_i": hidden,
                                 "direction_s": "reverse" if reverse else "forward"}
        if cell == "elman":
            attrs["activations_s"] = ["Relu" if relu else "Tanh"]
        if cell == "gru":
            attrs["linear_before_reset_i"] = 1
        outputs = g.op(_ONNX_OP[cell], *inputs, outputs=1 + len(states), **attrs)
        axis = g.op("Constant", value_t=torch.tensor([1]))
        first = g.op("Constant", value_t=torch.tensor([0]))
        out = g.op("Squeeze", outputs[0], axis)
        finals = [g.op("Squeeze", o, first) for o in outputs[1:]]
        # the saved buffers of the backward pass: never read by an exported (inference) graph
        unused = [g.op("Constant", value_t=torch.zeros(0)) for _ in range(extra_outputs)]
        return (out, *finals, *unused)

    def elman(g, x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, relu, zero_padding):
        relu = bool(symbolic_helper._maybe_get_const(relu, "b"))
        return node(g, "elman", x, [h0], w_ih, w_hh, b_ih, b_hh, mask, reverse, zero_padding,
                    relu, 0)

    def gru(g, x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero_padding, train):
        return node(g, "gru", x, [h0], w_ih, w_hh, b_ih, b_hh, mask, reverse, zero_padding,
                    False, 2)

    def lstm(g, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero_padding, train):
        return node(g, "lstm", x, [h0, c0], w_ih, w_hh, b_ih, b_hh, mask, reverse,
                    zero_padding, False, 2)

    for name, fn in (("elman", elman), ("gru", gru), ("lstm", lstm)):
        register_custom_op_symbolic(f"rnnkit::{name}", fn, 14)
