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

from ._cell_spec import CELLS, CellSpec

__all__ = ["emit", "register_legacy_symbolics"]

OPSET = 17


def _rows(cell: str, hidden: int) -> list[int]:
    """The row permutation from torch's gate blocks to ONNX's."""
    return CELLS[cell].rows("torch", "onnx", hidden)


def _operator(cell: str) -> str:
    op = CELLS[cell].onnx_op
    if op is None:
        raise NotImplementedError(
            f"torch.onnx.export: the {cell} cell has no standard ONNX operator; export the "
            "model with rnnkit.export.onnx(model, path), which writes it as an ONNX Scan")
    return op


def _refuse_held_mask(mask: Any, zero_padding: bool) -> None:
    if mask is not None and not zero_padding:
        raise NotImplementedError(
            "torch.onnx.export: a recurrence whose masked outputs hold the state (a Keras-style "
            "layer with a mask) has no standard ONNX operator; export the model with "
            "rnnkit.export.onnx(model, path), which writes it as an ONNX Scan")


def _refuse_projection(projected: bool) -> None:
    if projected:
        raise NotImplementedError(
            "torch.onnx.export: an LSTM with an output projection (proj_size > 0, w_hr) has no "
            "standard ONNX operator (ONNX's LSTM has no projection, and torch.onnx exports none "
            "either); export the LSTM without proj_size")


def emit(cell: str, x: Tensor, states: tuple[Tensor | None, ...], w_ih: Tensor, w_hh: Tensor,
         b_ih: Tensor | None, b_hh: Tensor | None, weights: tuple[Tensor | None, ...],
         mask: Tensor | None, reverse: bool, zero_padding: bool,
         *flags: bool) -> tuple[Tensor, ...]:
    """The ONNX node of one direction for the dynamo exporter: (states (T, B, H), *finals).
    ``weights``: the cell's own optional ones (an LSTM projection raises)."""
    op = _operator(cell)  # raises for a cell without one
    _refuse_projection(any(w is not None for w in weights))
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
    attrs.update(CELLS[cell].onnx_attributes(*flags))
    # an absent initial state is an omitted input: zeros, in ONNX as in the operator
    inputs = [x, *weights, bias, lengths, *(None if s is None else s.unsqueeze(0) for s in states)]
    shapes = [[steps, 1, batch, hidden]] + [[1, batch, hidden]] * len(states)
    results = torch.onnx.ops.symbolic_multi_out(
        f"::{op}", inputs, attrs, dtypes=[x.dtype] * len(shapes), shapes=shapes,
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
             b_hh: Any, weights: tuple[Any, ...], mask: Any, reverse: Any, zero_padding: Any,
             flags: tuple[bool, ...]) -> tuple[Any, ...]:
        op = _operator(cell)  # raises for a cell without one
        _refuse_projection(not all(symbolic_helper._is_none(w) for w in weights))
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
        for key, value in CELLS[cell].onnx_attributes(*flags).items():  # the types' suffixes
            attrs[key + ("_s" if isinstance(value, list) else "_i")] = value
        outputs = g.op(op, *inputs, outputs=1 + len(states), **attrs)
        axis = g.op("Constant", value_t=torch.tensor([1]))
        first = g.op("Constant", value_t=torch.tensor([0]))
        out = g.op("Squeeze", outputs[0], axis)
        finals = [g.op("Squeeze", o, first) for o in outputs[1:]]
        # the saved buffers of the backward pass: never read by an exported (inference) graph
        unused = [g.op("Constant", value_t=torch.zeros(0)) for _ in CELLS[cell].saved]
        return (out, *finals, *unused)

    def symbolic(cell: CellSpec) -> Any:
        count, own = len(cell.states), len(cell.weights)

        # the operator's arguments (see _cell_spec): x, states, w_ih, w_hh, b_ih, b_hh, the
        # cell's own weights, mask, reverse, zero_padding, train, the cell's flags
        def fn(g: Any, x: Any, *args: Any) -> tuple[Any, ...]:
            states, rest = list(args[:count]), args[count:]
            weights, rest = tuple(rest[4:4 + own]), (*rest[:4], *rest[4 + own:])
            flags = tuple(bool(symbolic_helper._maybe_get_const(f, "b")) for f in rest[8:])
            return node(g, cell.name, x, states, *rest[:4], weights, *rest[4:7], flags)

        return fn

    for cell in CELLS.values():
        register_custom_op_symbolic(f"rnnkit::{cell.name}", symbolic(cell), 14)
