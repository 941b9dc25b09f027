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
    cell = getattr(rnn, name)(3, 5)
    with pytest.raises(ValueError, match="input_size=3, got 4"):
        cell(torch.randn(2, 4))
    with pytest.raises(ValueError, match="2-D \\(batched\\) or 1-D"):
        cell(torch.randn(2, 2, 3))
    bad = torch.randn(2, 6)
    with pytest.raises(ValueError, match=r"expected hx of shape \(2, 5\), got \(2, 6\)"):
        cell(torch.randn(2, 3), (bad, bad) if name == "LSTMCell" else bad)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        getattr(rnn, name)(3, 0)
