"""Keras-style MinGRU / MinLSTM: the layer's parallel scan against the NumPy reference with the
layer's own weights, against stepping its cell in the loop (Keras' mask semantics, go_backwards,
return_state, gradients), RNN(MinGRUCell) and saving and loading in a model.

Tolerances: float64 rtol 1e-9 / atol 1e-11.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import reference
from rnnkit.layers import RNN, MinGRU, MinGRUCell, MinLSTM

F64 = dict(rtol=1e-9, atol=1e-11)
MASK = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1]]).bool()


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("layer_class, name", [(MinGRU, "mingru"), (MinLSTM, "minlstm")])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_equals_the_reference(layer_class, name, go_backwards) -> None:
    layer = layer_class(4, return_sequences=True, go_backwards=go_backwards,
                        bias_initializer="uniform")
    x = torch.randn(3, 6, 5)
    h0 = torch.randn(3, 4)
    out = layer(x, initial_state=[h0])
    kernel, bias = layer.get_weights()
    want = getattr(reference, name)(x.numpy(), kernel, bias, h0.numpy(), None, go_backwards)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("layer_class", [MinGRU, MinLSTM])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_scan_equals_the_loop_with_masks(layer_class, go_backwards, zero_output_for_mask) -> None:
    layer = layer_class(4, return_sequences=True, return_state=True, go_backwards=go_backwards,
                        zero_output_for_mask=zero_output_for_mask)
    x = torch.randn(3, 6, 5, requires_grad=True)
    got = layer(x, mask=MASK)
    layer.backend = "loop"
    want = layer(x, mask=MASK)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **F64)
    inputs = [x, *layer.parameters()]
    cot = [torch.randn_like(w) for w in want]
    g1 = torch.autograd.grad(sum((g * c).sum() for g, c in zip(got, cot)), inputs)
    g2 = torch.autograd.grad(sum((w * c).sum() for w, c in zip(want, cot)), inputs)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **F64)


def test_the_cell_in_a_generic_rnn() -> None:
    layer = MinGRU(4, return_sequences=True)
    x = torch.randn(2, 5, 3)
    out = layer(x)
    generic = RNN(MinGRUCell(4), return_sequences=True)
    generic(x)
    generic.set_weights(layer.get_weights())
    torch.testing.assert_close(generic(x), out, **F64)


def test_config_round_trip_and_saved_model(tmp_path) -> None:
    layer = MinLSTM(3, use_bias=False, return_state=True, kernel_initializer="orthogonal")
    config = layer.get_config()
    again = MinLSTM.from_config(config)
    assert again.get_config() == config
    assert again.cell.use_bias is False
    model = rnnkit.Sequential([rnnkit.layers.Input((5, 2)), MinGRU(4, return_sequences=True),
                               MinLSTM(3)])
    x = np.random.default_rng(0).normal(size=(2, 5, 2))
    before = model.predict(x, verbose=0)
    path = tmp_path / "min.rnnkit"
    model.save(path)
    loaded = rnnkit.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-12)
    assert [type(layer).__name__ for layer in loaded.layers] == ["MinGRU", "MinLSTM"]
