"""rnnkit.nn cells vs torch.nn cells, and the layers vs stepping their cell by hand."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn

TOL = dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["RNNCell", "GRUCell", "LSTMCell"])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(name: str, bias: bool) -> None:
    reference = getattr(torch.nn, name)(3, 5, bias=bias, dtype=torch.float64)
    ours = getattr(rnn, name)(3, 5, bias=bias, dtype=torch.float64)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(4, 5, dtype=torch.float64)
    hx = (h, torch.randn(4, 5, dtype=torch.float64)) if name == "LSTMCell" else h
    out_ref, out = reference(x, hx), ours(x, hx)
    out_ref = out_ref if isinstance(out_ref, tuple) else (out_ref,)
    out = out if isinstance(out, tuple) else (out,)
    for a, b in zip(out, out_ref):
        torch.testing.assert_close(a, b, **TOL)
    g_ref = torch.autograd.grad(sum(o.sum() for o in out_ref), [x, *reference.parameters()])
    g = torch.autograd.grad(sum(o.sum() for o in out), [x, *ours.parameters()])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, **TOL)
    # unbatched and default state
    single = ours(x[0].detach())
    single = single if isinstance(single, tuple) else (single,)
    expected = reference(x[0].detach())
    expected = expected if isinstance(expected, tuple) else (expected,)
    for a, b in zip(single, expected):
        torch.testing.assert_close(a, b, **TOL)


def test_relu_cell() -> None:
    cell = rnn.RNNCell(3, 5, nonlinearity="relu", dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64)
    expected = torch.relu(x @ cell.weight_ih.T + cell.bias_ih + cell.bias_hh)
    torch.testing.assert_close(cell(x), expected, **TOL)


@pytest.mark.parametrize("layer_name,cell_name", [("RNN", "RNNCell"), ("GRU", "GRUCell"), ("LSTM", "LSTMCell")])
def test_layer_equals_stepping_its_cell(layer_name: str, cell_name: str) -> None:
    layer = getattr(rnn, layer_name)(3, 5, dtype=torch.float64)
    cell = getattr(rnn, cell_name)(3, 5, dtype=torch.float64)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    out, _ = layer(x)
    state = None
    for t in range(7):
        state = cell(x[t], state)
        h = state[0] if isinstance(state, tuple) else state
        torch.testing.assert_close(out[t], h, **TOL)


@pytest.mark.parametrize("name", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cell_errors(name: str) -> None:
    """torch.nn's words for each mistake, plus the shapes; ShapeError is a ValueError and a
    RuntimeError, so code written for either catches it."""
    cell = getattr(rnn, name)(3, 5)
    label = "hx\\[0\\]" if name == "LSTMCell" else "hidden"
    for kind in (ValueError, RuntimeError, rnn.ShapeError):
        with pytest.raises(kind, match=r"input has inconsistent input_size: got 4 expected 3 "
                                       r"\(input shape \(2, 4\)\)"):
            cell(torch.randn(2, 4))
    with pytest.raises(rnn.ShapeError, match=rf"{name}: Expected input to be 1D or 2D, got 3D"):
        cell(torch.randn(2, 2, 3))
    bad = torch.randn(2, 6)
    with pytest.raises(rnn.ShapeError, match="hidden0 has inconsistent hidden_size: got 6, expected 5"):
        cell(torch.randn(2, 3), (bad, bad) if name == "LSTMCell" else bad)
    with pytest.raises(rnn.ShapeError, match="Input batch size 2 doesn't match hidden0 batch size 4"):
        good = torch.randn(4, 5)
        cell(torch.randn(2, 3), (good, good) if name == "LSTMCell" else good)
    with pytest.raises(rnn.ShapeError, match=rf"Expected {label} to be 1D or 2D, got 3D"):
        cube = torch.randn(1, 2, 5)
        cell(torch.randn(2, 3), (cube, cube) if name == "LSTMCell" else cube)
    with pytest.raises(rnn.ShapeError, match="for unbatched 1-D input, .* should also be 1-D"):
        flat = torch.randn(1, 5)
        cell(torch.randn(3), (flat, flat) if name == "LSTMCell" else flat)


def test_cells_are_torch_cells() -> None:
    for name in ("RNNCell", "GRUCell", "LSTMCell"):
        cell = getattr(rnn, name)(3, 5)
        assert isinstance(cell, getattr(torch.nn, name))
        assert repr(cell) == repr(getattr(torch.nn, name)(3, 5))


def test_rnn_cell_nonlinearity() -> None:
    cell = rnn.RNNCell(3, 5, True, "relu")  # torch.nn's positional order
    reference = torch.nn.RNNCell(3, 5, True, "relu")
    reference.load_state_dict(cell.state_dict())
    x = torch.randn(4, 3)
    out = cell(x)
    assert (out == 0).any() and (out >= 0).all()  # relu, not tanh
    torch.testing.assert_close(out, reference(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        rnn.RNNCell(3, 5, nonlinearity="gelu")


@pytest.mark.parametrize("layer_name,cell_name", [("RNN", "RNNCell"), ("GRU", "GRUCell"),
                                                  ("LSTM", "LSTMCell")])
@pytest.mark.parametrize("batch", [1, 3])
def test_step_path_equals_sequence_path(layer_name: str, cell_name: str, batch: int) -> None:
    """Streaming (the cell, or the module on T=1 with the state carried) gives the values and
    the gradients (input, initial state, every weight) of the module over the whole sequence."""
    torch.manual_seed(0)
    layer = getattr(rnn, layer_name)(3, 5, dtype=torch.float64)
    cell = getattr(rnn, cell_name)(3, 5, dtype=torch.float64)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    lstm = layer_name == "LSTM"
    x = torch.randn(6, batch, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, batch, 5, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, batch, 5, dtype=torch.float64, requires_grad=True)
    hx = (h0, c0) if lstm else h0
    leaves = [x, h0, *([c0] if lstm else [])]
    weight = torch.randn(6, batch, 5, dtype=torch.float64)  # a loss that weighs every step

    def gradients(outputs: torch.Tensor, module: torch.nn.Module) -> list[torch.Tensor]:
        return list(torch.autograd.grad((outputs * weight).sum(), [*leaves, *module.parameters()]))

    out, _ = layer(x, hx)
    expected = gradients(out, layer)

    state = (h0[0], c0[0]) if lstm else h0[0]
    steps = []
    for t in range(6):
        state = cell(x[t], state)
        steps.append(state[0] if lstm else state)
    by_cell = torch.stack(steps)
    torch.testing.assert_close(by_cell, out, **TOL)
    for a, b in zip(gradients(by_cell, cell), expected):
        torch.testing.assert_close(a, b, **TOL)

    state, steps = hx, []
    for t in range(6):
        y, state = layer(x[t:t + 1], state)
        steps.append(y[0])
    by_module = torch.stack(steps)
    torch.testing.assert_close(by_module, out, **TOL)
    for a, b in zip(gradients(by_module, layer), expected):
        torch.testing.assert_close(a, b, **TOL)
