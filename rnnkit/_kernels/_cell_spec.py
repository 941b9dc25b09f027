"""Each recurrent cell described once: the table every per-cell path is derived from.

A :class:`CellSpec` states what the rest of rnnkit needs to know about one cell: its one name,
its gate blocks in torch.nn's, Keras' and ONNX's layouts, its states, the buffers the compiled
backward pass reads, its own flags, which library has it under which name, and its step (the
equation of :mod:`.cells` in torch.nn's layout). From it come the operator schemas, fake
kernels, composite implementation and autograd formula (:mod:`._ops`, :mod:`.composite`), the
ONNX nodes (:mod:`._onnx`, :mod:`rnnkit.export`), the routing to PyTorch's kernels
(:mod:`._route`), the modules' mode strings, the CLI's ``--cell`` choices, the bench and the
diagnostics.

Every cell's operator has the same shape (``S`` its states, ``F`` its flags)::

    <name>(x, S0?..., w_ih, w_hh, b_ih?, b_hh?, W?..., mask?, reverse, zero_padding, train,
           F...) -> (out, S_n..., saved...)
    <name>_backward(grad_out, grad_S_n..., x, S0?..., w_ih, w_hh, b_ih?, b_hh?, W?..., out,
                    saved..., mask?, reverse, zero_padding, F..., output_mask)
        -> (grad x, grad S0..., grad w_ih, grad w_hh, grad b_ih, grad b_hh, grad W...)

``W`` are the cell's own optional weights (:attr:`CellSpec.weights`; absent: None), such as the
LSTM's output projection ``w_hr``. The first state is what ``w_hh`` multiplies: ``(B,
w_hh.shape[1])``, and so is ``out``'s width; every later state is ``(B, H)`` with
``H = w_hh.shape[0] // gates`` (:meth:`CellSpec.state_width`). Without a projection both are H.

``saved`` are the buffers the compiled backward pass reads besides ``out`` (``train=False``:
(0,) placeholders): first the step's extra results (:attr:`CellSpec.step`), then each state
after the first at every step (the LSTM's ``c_all``).

A cell ships composite-only (no C++) with ``compiled=False``: its operator then runs the
composite implementation on every device, and no ``_<name>_eager`` operator is looked up.

Gate letters are torch.nn's (GRU ``r, z, n``; LSTM ``i, f, g, o``); Keras' and ONNX's layouts
are the same gates in another order (Keras' GRU ``z, r, h`` is ``z, r, n`` here, ONNX's LSTM
``i, o, f, c`` is ``i, o, f, g``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .cells import rnn_equation, rnn_step, gru_equation, gru_step, lstm_equation, lstm_step
from .lstm_variants import (LN_EPS, gate_layer_norm, layer_norm_gru_step, layer_norm_lstm_gates,
                            peephole_lstm_gates)

__all__ = ["CELLS", "CellSpec", "by_keras_class", "by_torch_mode", "spec"]

State = tuple[Tensor, ...]
# one step from the input projection gi_t (B, G*H): (gi_t, state, w_hh, b_hh, *weights,
#   *flags) -> (the new state, the step's extra results the backward pass keeps); weights: the
#   cell's own (CellSpec.weights), None where absent
Step = Callable[..., tuple[State, tuple[Tensor, ...]]]


@dataclass(frozen=True)
class CellSpec:
    """One recurrent cell. See the module's docstring for the operator shape it implies."""

    name: str  # rnnkit's one name: operators, kernels, export, CLI --cell, bench
    torch_gates: tuple[str, ...]  # the gate blocks of W_ih / W_hh rows, torch.nn's order
    keras_gates: tuple[str, ...]  # the same gates in Keras' kernel columns
    states: tuple[str, ...]  # ("h",) or ("h", "c"); the output is the first
    saved: tuple[tuple[str, int], ...]  # backward buffers: (name, width in multiples of H)
    flags: tuple[str, ...]  # the cell's own bool arguments, after the common ones
    activations: tuple[str, ...]  # (activation, recurrent_activation) by default
    equation: Callable[..., object]  # the cell's math (rnnkit._kernels.cells)
    step: Step  # one step in torch.nn's layout, for the composite implementation
    nn_class: str  # the class in rnnkit.nn (and torch.nn, where torch has the cell)
    keras_class: str  # the layer in rnnkit.layers (and Keras)
    torch_modes: tuple[str, ...] = ()  # torch.nn's mode strings, by the flags' value; () none
    onnx_op: str | None = None  # the standard ONNX operator, or None (a Scan)
    onnx_gates: tuple[str, ...] = ()  # the gates in ONNX's W / R rows
    # the ONNX node's cell-specific attributes for a call with these flags
    onnx_attributes: Callable[..., dict[str, Any]] = lambda *flags: {}
    compiled: bool = True  # whether csrc/ has its C++ loop
    # the cell's own optional weights after b_hh (differentiable; None: absent), each a
    # keyword of the step (the LSTM's output projection w_hr (P, H): h = W_hr (o * tanh(c)))
    weights: tuple[str, ...] = ()
    # the input side of every step at once: (x (..., D), w_ih, b_ih, *weights) -> (..., G*H);
    # None: x W_ih^T + b_ih (the layer-normalised cells normalise it first)
    project: Callable[..., Tensor] | None = None

    def input_side(self, x: Tensor, w_ih: Tensor, b_ih: Tensor | None,
                   weights: Sequence[Tensor | None]) -> Tensor:
        """What the steps read of x (T, B, D) (or one step's (B, D)): :attr:`project`, or
        x W_ih^T + b_ih."""
        if self.project is None:
            return F.linear(x, w_ih, b_ih)
        return self.project(x, w_ih, b_ih, *weights)

    @property
    def gates(self) -> int:
        """Gate blocks: the rows of W_ih and W_hh are ``gates * H``."""
        return len(self.torch_gates)

    @property
    def differentiable(self) -> int:
        """The operator's differentiable inputs: x, the states, w_ih, w_hh, b_ih, b_hh, the
        cell's own weights."""
        return 5 + len(self.states) + len(self.weights)

    def state_width(self, index: int, w_hh: Tensor) -> int:
        """The width of state ``index``: the first (the output) is what ``w_hh`` multiplies
        (P with a projection), every later one the cell's hidden size H."""
        return int(w_hh.shape[1]) if index == 0 else int(w_hh.shape[0]) // self.gates

    def torch_mode(self, *flags: bool) -> str | None:
        """torch.nn's mode string for a call with these flags (``RNN_RELU`` for the Elman
        cell with ``relu``), or None where PyTorch has no such cell."""
        if not self.torch_modes:
            return None
        return self.torch_modes[int(flags[0]) if flags else 0]

    def torch_function(self, *flags: bool) -> str | None:
        """The ``torch._VF`` function of that mode (``rnn_tanh``, ``gru``, ...), or None."""
        mode = self.torch_mode(*flags)
        return None if mode is None else mode.lower()

    def permutation(self, source: str, target: str) -> list[int]:
        """For each gate block of layout ``target``, its block in layout ``source`` (layouts:
        ``"torch"``, ``"keras"``, ``"onnx"``): ``[blocks[i] for i in permutation]`` reorders."""
        src, dst = self._layout(source), self._layout(target)
        return [src.index(g) for g in dst]

    def rows(self, source: str, target: str, hidden: int) -> list[int]:
        """The row (or column) permutation of a ``(gates * hidden, ...)`` weight from layout
        ``source`` to ``target``."""
        return [block * hidden + j for block in self.permutation(source, target)
                for j in range(hidden)]

    def _layout(self, layout: str) -> tuple[str, ...]:
        order = {"torch": self.torch_gates, "keras": self.keras_gates,
                 "onnx": self.onnx_gates}[layout]
        if not order:
            raise ValueError(f"the {self.name} cell has no {layout} layout")
        return order


def _rnn_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None,
              relu: bool = False) -> tuple[State, tuple[Tensor, ...]]:
    return (rnn_step(gi, state[0], w_hh, b_hh, torch.relu if relu else torch.tanh),), ()


def _gru_step(gi: Tensor, state: State, w_hh: Tensor,
              b_hh: Tensor | None) -> tuple[State, tuple[Tensor, ...]]:
    h, gates, hn = gru_step(gi, state[0], w_hh, b_hh)
    return (h,), (gates, hn)


def _lstm_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None,
               w_hr: Tensor | None = None) -> tuple[State, tuple[Tensor, ...]]:
    h, c, gates = lstm_step(gi, state[0], state[1], w_hh, b_hh)
    if w_hr is not None:  # torch.nn's proj_size: h = W_hr (o * tanh(c)), (B, P)
        h = h @ w_hr.t()
    return (h, c), (gates,)


def _peephole_lstm_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None,
                        w_ci: Tensor | None = None, w_cf: Tensor | None = None,
                        w_co: Tensor | None = None) -> tuple[State, tuple[Tensor, ...]]:
    zero = gi.new_zeros(())  # an absent peephole
    peepholes = (zero if w is None else w for w in (w_ci, w_cf, w_co))
    h, c, *activated = peephole_lstm_gates(gi, state[0], state[1], w_hh, b_hh, *peepholes)
    return (h, c), (torch.cat(activated, dim=-1),)


def _layer_norm_lstm_input(x: Tensor, w_ih: Tensor, b_ih: Tensor | None,
                           ln_ih_weight: Tensor | None, ln_ih_bias: Tensor | None,
                           *rest: Tensor | None) -> Tensor:
    ni = F.layer_norm(F.linear(x, w_ih), (w_ih.shape[0],), ln_ih_weight, ln_ih_bias, eps=LN_EPS)
    return ni if b_ih is None else ni + b_ih


def _layer_norm_lstm_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None,
                          ln_ih_weight: Tensor | None = None, ln_ih_bias: Tensor | None = None,
                          ln_hh_weight: Tensor | None = None, ln_hh_bias: Tensor | None = None,
                          ln_c_weight: Tensor | None = None, ln_c_bias: Tensor | None = None
                          ) -> tuple[State, tuple[Tensor, ...]]:
    h, c, *activated, hw = layer_norm_lstm_gates(
        gi, state[0], state[1], w_hh, b_hh, (ln_hh_weight, ln_hh_bias),  # type: ignore[arg-type]
        (ln_c_weight, ln_c_bias))  # type: ignore[arg-type]
    return (h, c), (torch.cat(activated, dim=-1), hw)


def _gains(weight: Tensor | None, bias: Tensor | None, like: Tensor) -> tuple[Tensor, Tensor]:
    """A grouped norm's gains and shifts, ones and zeros where absent."""
    width = like.shape[0]
    return (like.new_ones(width) if weight is None else weight,
            like.new_zeros(width) if bias is None else bias)


def _layer_norm_gru_input(x: Tensor, w_ih: Tensor, b_ih: Tensor | None,
                          ln_ih_weight: Tensor | None, ln_ih_bias: Tensor | None,
                          *rest: Tensor | None) -> Tensor:
    ni = gate_layer_norm(F.linear(x, w_ih), *_gains(ln_ih_weight, ln_ih_bias, w_ih))
    return ni if b_ih is None else ni + b_ih


def _layer_norm_gru_step(gi: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None,
                         ln_ih_weight: Tensor | None = None, ln_ih_bias: Tensor | None = None,
                         ln_hh_weight: Tensor | None = None, ln_hh_bias: Tensor | None = None
                         ) -> tuple[State, tuple[Tensor, ...]]:
    return (layer_norm_gru_step(gi, state[0], w_hh, b_hh,
                                _gains(ln_hh_weight, ln_hh_bias, w_hh)),), ()


RNN = CellSpec(
    name="rnn", torch_gates=("h",), keras_gates=("h",), states=("h",), saved=(),
    flags=("relu",), activations=("tanh",), equation=rnn_equation, step=_rnn_step,
    nn_class="RNN", keras_class="SimpleRNN", torch_modes=("RNN_TANH", "RNN_RELU"),
    onnx_op="RNN", onnx_gates=("h",),
    onnx_attributes=lambda relu=False: {"activations": ["Relu" if relu else "Tanh"]})
GRU = CellSpec(
    name="gru", torch_gates=("r", "z", "n"), keras_gates=("z", "r", "n"), states=("h",),
    saved=(("gates", 3), ("hn_all", 1)), flags=(), activations=("tanh", "sigmoid"),
    equation=gru_equation, step=_gru_step, nn_class="GRU", keras_class="GRU",
    torch_modes=("GRU",), onnx_op="GRU", onnx_gates=("z", "r", "n"),
    # torch's GRU: the reset gate multiplies after the recurrent product
    onnx_attributes=lambda: {"linear_before_reset": 1})
LSTM = CellSpec(
    name="lstm", torch_gates=("i", "f", "g", "o"), keras_gates=("i", "f", "g", "o"),
    states=("h", "c"), saved=(("gates", 4), ("c_all", 1)), flags=(),
    activations=("tanh", "sigmoid"), equation=lstm_equation, step=_lstm_step,
    nn_class="LSTM", keras_class="LSTM", torch_modes=("LSTM",), onnx_op="LSTM",
    onnx_gates=("i", "o", "f", "g"), weights=("w_hr",))

# Gers & Schmidhuber's peephole LSTM (rnnkit._kernels.lstm_variants): the LSTM's gates and
# buffers, and its diagonal peepholes w_ci, w_cf, w_co (H,) as the cell's own weights (absent:
# zero, the plain LSTM). ONNX's LSTM has peepholes, but rnnkit exports the cell as a Scan.
PEEPHOLE_LSTM = CellSpec(
    name="peephole_lstm", torch_gates=("i", "f", "g", "o"), keras_gates=("i", "f", "g", "o"),
    states=("h", "c"), saved=(("gates", 4), ("c_all", 1)), flags=(),
    activations=("tanh", "sigmoid"), equation=peephole_lstm_gates, step=_peephole_lstm_step,
    nn_class="PeepholeLSTM", keras_class="PeepholeLSTM", weights=("w_ci", "w_cf", "w_co"))

# Ba et al.'s layer-normalised LSTM and GRU (rnnkit._kernels.lstm_variants), their gains and
# shifts the cells' own weights (absent: ones and zeros), the input projection normalised
# before b_ih is added (project). The LSTM has a C++ loop (csrc/layer_norm_lstm.cpp; its
# backward pass reads the activated gates, each step's h W_hh^T and c); the GRU is
# composite-only.
LAYER_NORM_LSTM = CellSpec(
    name="layer_norm_lstm", torch_gates=("i", "f", "g", "o"), keras_gates=("i", "f", "g", "o"),
    states=("h", "c"), saved=(("gates", 4), ("hw_all", 4), ("c_all", 1)), flags=(),
    activations=("tanh", "sigmoid"), equation=layer_norm_lstm_gates,
    step=_layer_norm_lstm_step, nn_class="LayerNormLSTM", keras_class="LayerNormLSTM",
    weights=("ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias", "ln_c_weight",
             "ln_c_bias"), project=_layer_norm_lstm_input)
LAYER_NORM_GRU = CellSpec(
    name="layer_norm_gru", torch_gates=("r", "z", "n"), keras_gates=("z", "r", "n"),
    states=("h",), saved=(), flags=(), activations=("tanh", "sigmoid"),
    equation=layer_norm_gru_step, step=_layer_norm_gru_step, nn_class="LayerNormGRU",
    keras_class="LayerNormGRU", compiled=False,
    weights=("ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias"),
    project=_layer_norm_gru_input)

CELLS: dict[str, CellSpec] = {c.name: c for c in (RNN, GRU, LSTM, PEEPHOLE_LSTM,
                                                  LAYER_NORM_LSTM, LAYER_NORM_GRU)}


def spec(name: str) -> CellSpec:
    """The cell called ``name``; a clear error for an unknown one."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; the cells are {sorted(CELLS)}") from None


def by_torch_mode(mode: str) -> CellSpec:
    """The cell of a torch.nn mode string (``RNN_TANH``, ``GRU``, ...) or ``torch._VF``
    function name (``rnn_relu``, ``lstm``, ...)."""
    for cell in CELLS.values():
        if mode.upper() in cell.torch_modes:
            return cell
    raise ValueError(f"no rnnkit cell has torch.nn's mode {mode!r}")


def by_keras_class(name: str) -> CellSpec:
    """The cell of a Keras layer or cell class name (``SimpleRNN``, ``GRUCell``, ...)."""
    base = name[:-4] if name.endswith("Cell") else name
    for cell in CELLS.values():
        if base == cell.keras_class:
            return cell
    raise ValueError(f"no rnnkit cell is Keras' {name!r}")
