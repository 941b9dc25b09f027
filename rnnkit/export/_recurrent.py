"""Recurrent layers as ONNX: the standard RNN/GRU/LSTM operators, or a ``Scan`` over the cell.

Every direction of every layer is first described in Keras' layout (:class:`Direction`: kernel
(D, G*U), recurrent kernel (U, G*U), Keras' gate order), whichever front end it came from.

The standard operators (``RNN``, ``GRU``, ``LSTM``, ONNX opset 14+) express a direction exactly
when its activations are among theirs and the batch has no mask, or only a ``sequence_lens``
prefix (``torch.nn`` semantics: outputs past a sequence's end are zero, the final state is the
one at its last real step, the reverse direction reads the real steps only). Gate orders:
ONNX GRU is z, r, h (as Keras; torch is r, z, n) and ``linear_before_reset=1`` is Keras'
``reset_after=True``; ONNX LSTM is i, o, f, c (Keras and torch: i, f, c/g, o).

A Keras mask in general (holes, leading padding) is not a prefix, so masked Keras layers run as
a ``Scan`` whose body is the cell step followed by Keras' masking (rnnkit/layers/rnn.py)::

    s_t = where(mask_t, cell(x_t, s_{t-1}), s_{t-1})
    y_t = s_t  (the held output),  or where(mask_t, h_t, 0) with zero_output_for_mask

with the input projection x K + b computed for all steps before the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._kernels._cell_spec import CELLS
from .._kernels.lstm_variants import LN_EPS, VARIANTS
from . import _activations
from ._graph import FLOAT, BOOL, Graph, value_info


@dataclass
class Direction:
    """One direction of one recurrent layer, in Keras' layout and gate order."""

    # the cell's one name: "rnn" | "gru" | "lstm" (rnnkit._kernels._cell_spec), or a variant of
    # rnnkit._kernels.lstm_variants ("peephole_lstm" | "layer_norm_lstm" | "layer_norm_gru")
    kind: str
    kernel: np.ndarray  # (D, G*U)
    recurrent: np.ndarray  # (U, G*U)
    bias: np.ndarray  # (G*U,) input bias
    recurrent_bias: np.ndarray | None  # (G*U,): torch's b_hh, Keras GRU reset_after's 2nd row
    activation: str
    recurrent_activation: str  # unused by "rnn"
    reset_after: bool = True  # GRU only
    reverse: bool = False
    zero_output_for_mask: bool = False
    # a variant's own weights by their Keras-style names (rnnkit.layers.lstm_variants)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def units(self) -> int:
        return int(self.recurrent.shape[0])

    def activations(self) -> list[str]:
        if self.kind == "rnn":
            return [self.activation]
        if self.kind == "gru":
            return [self.recurrent_activation, self.activation]
        return [self.recurrent_activation, self.activation, self.activation]

    def standard_op_ok(self) -> bool:
        """Whether the ONNX RNN/GRU/LSTM operator computes this direction exactly."""
        return (self.kind in CELLS and CELLS[self.kind].onnx_op is not None
                and all(a in _activations.RNN_OP_ACTIVATIONS for a in self.activations()))


def _blocks(array: np.ndarray, kind: str, axis: int) -> np.ndarray:
    """Keras' gate blocks along ``axis`` in ONNX's order."""
    cell = CELLS[kind]
    parts = np.split(array, cell.gates, axis=axis)
    return np.concatenate([parts[i] for i in cell.permutation("keras", "onnx")], axis=axis)


def compatible(a: Direction, b: Direction) -> bool:
    """Two directions one bidirectional ONNX op can hold."""
    return (a.kind == b.kind and a.units == b.units and a.kernel.shape == b.kernel.shape
            and (a.kind != "gru" or a.reset_after == b.reset_after))


def standard_op(g: Graph, x_tm: str, directions: list[Direction],
                seq_lens: str | None) -> list[str]:
    """The ONNX RNN/GRU/LSTM node over time-major x (T, B, D) for one direction, or two
    (forward then reverse). Returns [Y (T, nd, B, U), Y_h (nd, B, U)] (+ Y_c for LSTM)."""
    kind = directions[0].kind
    w, r, b, acts, alphas, betas = [], [], [], [], [], []
    for d in directions:
        w.append(_blocks(d.kernel.T, kind, 0))
        r.append(_blocks(d.recurrent.T, kind, 0))
        rec = d.recurrent_bias if d.recurrent_bias is not None else np.zeros_like(d.bias)
        b.append(np.concatenate([_blocks(d.bias, kind, 0), _blocks(rec, kind, 0)]))
        for name in d.activations():
            op, alpha, beta = _activations.RNN_OP_ACTIVATIONS[name]
            acts.append(op)
            alphas.append(0.0 if alpha is None else alpha)
            betas.append(0.0 if beta is None else beta)
    if len(directions) == 2:
        direction = "bidirectional"
    else:
        direction = "reverse" if directions[0].reverse else "forward"
    attrs = {"hidden_size": directions[0].units, "direction": direction, "activations": acts}
    if any(a in ("Affine", "HardSigmoid") for a in acts):
        attrs["activation_alpha"] = alphas
        attrs["activation_beta"] = betas
    if kind == "gru":
        attrs["linear_before_reset"] = int(directions[0].reset_after)
    inputs = [x_tm, g.const(np.stack(w), "W"), g.const(np.stack(r), "R"),
              g.const(np.stack(b), "B"), seq_lens or ""]
    cell = CELLS[kind]
    return g.op(cell.onnx_op, inputs, 1 + len(cell.states), **attrs)


def scan(g: Graph, x: str, d: Direction, mask: str | None) -> tuple[str, str]:
    """A Keras direction with Keras' masking as a Scan over batch-first x (B, T, D) and an
    optional (B, T) bool mask. Returns (Y (T, B, U) in processing order, last output (B, U))."""
    units = d.units
    in_bias = d.bias.copy()
    rec_bias = d.recurrent_bias
    inside_reset = d.kind == "layer_norm_gru" or (d.kind == "gru" and d.reset_after)
    if rec_bias is not None and not inside_reset:
        in_bias, rec_bias = in_bias + rec_bias, None  # a plain sum outside the reset gate
    projected = _input_side(g, g.op("MatMul", [x, g.const(d.kernel, "kernel")]), d)
    projected = g.op("Add", [projected, g.const(in_bias, "bias")])  # (B, T, G*U)
    scan_inputs = [g.transpose(projected, [1, 0, 2])]  # (T, B, G*U)
    if mask is not None:
        scan_inputs.append(g.unsqueeze(g.transpose(mask, [1, 0]), 2))  # (T, B, 1)
    if d.kind in CELLS:
        n_states, gates = len(CELLS[d.kind].states), CELLS[d.kind].gates
    else:
        n_states, gates = VARIANTS[d.kind].states, VARIANTS[d.kind].gates
    initial = [g.zeros_like_rows(x, units) for _ in range(n_states)]

    body = Graph(parent=g)
    h_prev, c_prev = body.name("h_prev"), body.name("c_prev")
    xk, keep = body.name("xk"), body.name("keep")
    body_inputs = [value_info(h_prev, FLOAT, [None, units])]
    if n_states == 2:
        body_inputs.append(value_info(c_prev, FLOAT, [None, units]))
    body_inputs.append(value_info(xk, FLOAT, [None, gates * units]))
    if mask is not None:
        body_inputs.append(value_info(keep, BOOL, [None, 1]))

    act = lambda v: _activations.emit(body, d.activation, v)  # noqa: E731
    ract = lambda v: _activations.emit(body, d.recurrent_activation, v)  # noqa: E731
    split = lambda v, n: body.op("Split", [v, body.const([units] * n, "split", np.int64)],  # noqa: E731
                                 n, axis=1)
    c_new = None
    if d.kind in VARIANTS:
        h_new, c_new = _variant_step(body, d, xk, h_prev, c_prev, rec_bias)
    elif d.kind == "rnn":
        rec = body.op("MatMul", [h_prev, body.const(d.recurrent, "recurrent")])
        h_new = act(body.op("Add", [xk, rec]))
    elif d.kind == "gru":
        xz, xr, xh = split(xk, 3)
        if d.reset_after:
            rec = body.op("MatMul", [h_prev, body.const(d.recurrent, "recurrent")])
            if rec_bias is not None:
                rec = body.op("Add", [rec, body.const(rec_bias, "recurrent_bias")])
            rz, rr, rh = split(rec, 3)
        else:
            rz, rr = split(body.op("MatMul", [h_prev, body.const(d.recurrent[:, :2 * units],
                                                                 "recurrent_zr")]), 2)
        z = ract(body.op("Add", [xz, rz]))
        r = ract(body.op("Add", [xr, rr]))
        if d.reset_after:
            candidate = act(body.op("Add", [xh, body.op("Mul", [r, rh])]))
        else:
            reset_h = body.op("Mul", [r, h_prev])
            candidate = act(body.op("Add", [xh, body.op(
                "MatMul", [reset_h, body.const(d.recurrent[:, 2 * units:], "recurrent_h")])]))
        # h' = z * h + (1 - z) * candidate
        one_minus_z = body.op("Sub", [body.const(1.0, "one"), z])
        h_new = body.op("Add", [body.op("Mul", [z, h_prev]),
                                body.op("Mul", [one_minus_z, candidate])])
    else:
        gates = body.op("Add", [xk, body.op("MatMul", [h_prev, body.const(d.recurrent,
                                                                          "recurrent")])])
        zi, zf, zc, zo = split(gates, 4)
        c_new = body.op("Add", [body.op("Mul", [ract(zf), c_prev]),
                                body.op("Mul", [ract(zi), act(zc)])])
        h_new = body.op("Mul", [ract(zo), act(c_new)])

    new_states = [h_new] + ([c_new] if c_new is not None else [])
    previous = [h_prev] + ([c_prev] if c_new is not None else [])
    outputs = [body.name("h_out"), body.name("c_out")][:n_states]
    y_out = body.name("y_out")
    for new, old, out in zip(new_states, previous, outputs):
        if mask is None:
            body.op("Identity", [new], [out])
        else:
            body.op("Where", [keep, new, old], [out])
    if mask is not None and d.zero_output_for_mask:
        body.op("Where", [keep, h_new, body.const(0.0, "zero")], [y_out])
    else:
        body.op("Identity", [outputs[0]], [y_out])
    body_outputs = [value_info(o, FLOAT, [None, units]) for o in [*outputs, y_out]]
    graph = body.make_graph(g.name("cell_step"), body_inputs, body_outputs)
    results = g.op("Scan", [*initial, *scan_inputs], n_states + 1, body=graph,
                   num_scan_inputs=len(scan_inputs),
                   scan_input_directions=[int(d.reverse)] * len(scan_inputs))
    y = results[-1]  # (T, B, U), processing order
    if mask is not None and d.zero_output_for_mask:
        last = g.op("Gather", [y, g.const(-1, "last", np.int64)], axis=0)
    else:
        last = results[0]
    return y, last


def _layer_norm(g: Graph, v: str, gamma: np.ndarray, beta: np.ndarray, groups: list[int]
                ) -> str:
    """``LN(v)`` over the last axis of (..., sum(groups)), each group of columns normalised on
    its own (rnnkit._kernels.lstm_variants: the GRU's [z, r] and h, an LSTM's one group)."""
    if len(groups) == 1:
        return g.op("LayerNormalization", [v, g.const(gamma, "ln_gamma"),
                                           g.const(beta, "ln_beta")], axis=-1, epsilon=LN_EPS)
    parts = g.op("Split", [v, g.const(groups, "split", np.int64)], len(groups), axis=-1)
    edges = np.cumsum([0, *groups])
    return g.op("Concat", [_layer_norm(g, part, gamma[a:b], beta[a:b], [b - a])
                           for part, a, b in zip(parts, edges[:-1], edges[1:])], axis=-1)


def _norm_groups(d: Direction) -> list[int]:
    U = d.units
    return [2 * U, U] if d.kind == "layer_norm_gru" else [4 * U]


def _input_side(g: Graph, xk: str, d: Direction) -> str:
    """What a variant does to x K before the bias: the layer-normalised cells' input norm."""
    if d.kind not in ("layer_norm_lstm", "layer_norm_gru"):
        return xk
    return _layer_norm(g, xk, d.extra["kernel_norm_gamma"], d.extra["kernel_norm_beta"],
                       _norm_groups(d))


def _variant_step(body: Graph, d: Direction, xk: str, h: str, c: str,
                  rec_bias: np.ndarray | None) -> tuple[str, str | None]:
    """One step of a variant of rnnkit._kernels.lstm_variants in Keras' layout, from the input
    side ``xk`` (B, G*U) with the bias in; returns (h', c' or None)."""
    U = d.units
    op = body.op
    sigmoid = lambda v: op("Sigmoid", [v])  # noqa: E731
    tanh = lambda v: op("Tanh", [v])  # noqa: E731
    rec = op("MatMul", [h, body.const(d.recurrent, "recurrent")])  # (B, G*U)
    if d.kind != "peephole_lstm":
        rec = _layer_norm(body, rec, d.extra["recurrent_norm_gamma"],
                          d.extra["recurrent_norm_beta"], _norm_groups(d))
    if rec_bias is not None:
        rec = op("Add", [rec, body.const(rec_bias, "recurrent_bias")])
    blocks = lambda v, n: op("Split", [v, body.const([U] * n, "split", np.int64)],  # noqa: E731
                             n, axis=1)
    if d.kind == "layer_norm_gru":  # Keras' z, r, h
        xz, xr, xh = blocks(xk, 3)
        rz, rr, rh = blocks(rec, 3)
        z, r = sigmoid(op("Add", [xz, rz])), sigmoid(op("Add", [xr, rr]))
        candidate = tanh(op("Add", [xh, op("Mul", [r, rh])]))
        one_minus_z = op("Sub", [body.const(1.0, "one"), z])
        return op("Add", [op("Mul", [z, h]), op("Mul", [one_minus_z, candidate])]), None
    zi, zf, zc, zo = blocks(op("Add", [xk, rec]), 4)
    if d.kind == "layer_norm_lstm":
        c_new = op("Add", [op("Mul", [sigmoid(zf), c]), op("Mul", [sigmoid(zi), tanh(zc)])])
        c_normed = _layer_norm(body, c_new, d.extra["state_norm_gamma"],
                               d.extra["state_norm_beta"], [U])
        return op("Mul", [sigmoid(zo), tanh(c_normed)]), c_new
    peep = {g: body.const(d.extra[f"{g}_gate_peephole_weights"], f"peephole_{g}")
            for g in ("input", "forget", "output")}
    i = sigmoid(op("Add", [zi, op("Mul", [peep["input"], c])]))
    f = sigmoid(op("Add", [zf, op("Mul", [peep["forget"], c])]))
    c_new = op("Add", [op("Mul", [f, c]), op("Mul", [i, tanh(zc)])])
    o = sigmoid(op("Add", [zo, op("Mul", [peep["output"], c_new])]))
    return op("Mul", [o, tanh(c_new)]), c_new
