"""The cell descriptions (rnnkit._kernels._cell_spec): their layouts, steps and names agree with
torch.nn's cells, Keras' gate orders, ONNX's, and the operators derived from them."""

from __future__ import annotations

import itertools

import pytest
import torch

from rnnkit._kernels import _cell_spec as S
from rnnkit.cli.config import CELLS as CLI_CELLS


def test_gate_orders_are_torch_keras_and_onnx_layouts() -> None:
    # torch GRU r, z, n -> Keras z, r, h and ONNX z, r, h; torch LSTM i, f, g, o -> ONNX i, o, f, c
    assert S.CELLS["gru"].permutation("torch", "keras") == [1, 0, 2]
    assert S.CELLS["gru"].permutation("torch", "onnx") == [1, 0, 2]
    assert S.CELLS["gru"].permutation("keras", "onnx") == [0, 1, 2]
    assert S.CELLS["lstm"].permutation("torch", "keras") == [0, 1, 2, 3]
    assert S.CELLS["lstm"].permutation("torch", "onnx") == [0, 3, 1, 2]
    assert S.CELLS["rnn"].permutation("keras", "onnx") == [0]


@pytest.mark.parametrize("name", list(S.CELLS))
def test_rows_round_trip_between_layouts(name: str) -> None:
    cell, hidden = S.CELLS[name], 3
    w = torch.arange(cell.gates * hidden * 2.0).view(cell.gates * hidden, 2)
    layouts = ("torch", "keras", "onnx") if cell.onnx_gates else ("torch", "keras")
    for a, b in itertools.combinations(layouts, 2):
        there = w[cell.rows(a, b, hidden)]
        assert torch.equal(there[cell.rows(b, a, hidden)], w)


@pytest.mark.parametrize("name", [n for n, c in S.CELLS.items() if c.torch_modes])
def test_step_is_torch_nns_cell(name: str) -> None:
    """The description's step (what the composite implementation runs) gives torch.nn's cell's
    values in float64 (for the cells torch.nn has; the peephole LSTM's against the NumPy
    reference: tests/kernels/test_peephole.py)."""
    cell = S.CELLS[name]
    torch.manual_seed(0)
    module = getattr(torch.nn, cell.nn_class + "Cell")(4, 5, dtype=torch.float64)
    x = torch.randn(3, 4, dtype=torch.float64)
    state = tuple(torch.randn(3, 5, dtype=torch.float64) for _ in cell.states)
    gi = torch.nn.functional.linear(x, module.weight_ih, module.bias_ih)
    new, _ = cell.step(gi, state, module.weight_hh, module.bias_hh)
    want = module(x, state if len(state) > 1 else state[0])
    want = want if isinstance(want, tuple) else (want,)
    for a, b in zip(new, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_operators_have_the_described_shape() -> None:
    for cell in S.CELLS.values():
        schema = getattr(torch.ops.rnnkit, cell.name).default._schema
        names = [a.name for a in schema.arguments]
        assert names == ["x", *(f"{s}0" for s in cell.states), "w_ih", "w_hh", "b_ih", "b_hh",
                         *cell.weights, "mask", "reverse", "zero_padding", "train", *cell.flags]
        assert len(schema.returns) == 1 + len(cell.states) + len(cell.saved)


def test_names_and_lookups() -> None:
    assert CLI_CELLS == tuple(S.CELLS)  # the CLI's --cell choices are the cells' names
    assert S.by_torch_mode("RNN_RELU") is S.CELLS["rnn"]
    assert S.by_torch_mode("rnn_tanh") is S.CELLS["rnn"]
    assert S.by_keras_class("SimpleRNNCell") is S.CELLS["rnn"]
    assert S.CELLS["rnn"].torch_function(True) == "rnn_relu"
    with pytest.raises(ValueError, match="unknown cell 'elman'"):
        S.spec("elman")
    with pytest.raises(ValueError, match="no rnnkit cell"):
        S.by_keras_class("ConvLSTM2D")
    assert S.by_keras_class("PeepholeLSTMCell") is S.CELLS["peephole_lstm"]
    assert S.CELLS["peephole_lstm"].torch_mode() is None  # torch.nn has no peephole LSTM
    with pytest.raises(ValueError, match="no onnx layout"):
        S.CELLS["peephole_lstm"].permutation("torch", "onnx")


def test_library_loading_skips_composite_only_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell without C++ (compiled=False) gets no eager operator looked up when the library
    loads; the compiled cells get theirs."""
    import dataclasses
    import types

    from rnnkit._kernels import _ops

    plain = dataclasses.replace(S.CELLS["gru"], name="composite_only", compiled=False)
    monkeypatch.setitem(_ops.CELLS, plain.name, types.SimpleNamespace(spec=plain))
    monkeypatch.setattr(_ops, "_EAGER", {})
    _ops.library_loaded()  # raised AttributeError (no _composite_only_eager) before
    assert sorted(_ops._EAGER) == sorted(n for n, c in S.CELLS.items() if c.compiled)
