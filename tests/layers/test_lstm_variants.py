"""Keras-style PeepholeLSTM / LayerNormLSTM / LayerNormGRU: the layer against the NumPy
reference with the layer's own Keras-layout weights (both directions), the composite sequence
against stepping the cell in the loop (Keras' mask semantics, go_backwards, return_state,
gradients), the layer against rnnkit.nn's module with the weights moved across,
RNN(cell), a mask from Embedding(mask_zero=True), gradcheck, saving and loading in a model, and
errors.

Tolerances: float64 rtol 1e-9 / atol 1e-11.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import reference
from rnnkit._kernels._cell_spec import GRU as GRU_SPEC
from rnnkit.layers import (RNN, Embedding, LayerNormGRU, LayerNormGRUCell, LayerNormLSTM,
                           LayerNormLSTMCell, PeepholeLSTM, PeepholeLSTMCell)

F64 = dict(rtol=1e-9, atol=1e-11)
MASK = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1]]).bool()
LAYERS = [PeepholeLSTM, LayerNormLSTM, LayerNormGRU]


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _randomise(layer) -> None:
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()


def _reference(layer, x, states, mask, go_backwards):
    """The reference function of ``layer``'s cell with its Keras-layout weights."""
    w = dict(layer.cell.named_parameters())
    n = {k: v.detach().numpy() for k, v in w.items()}
    common = dict(mask=mask, go_backwards=go_backwards, h0=states[0].numpy())
    if isinstance(layer, LayerNormGRU):
        return reference.layer_norm_gru(
            x, n["kernel"], n["recurrent_kernel"],
            (n["kernel_norm_gamma"], n["kernel_norm_beta"]),
            (n["recurrent_norm_gamma"], n["recurrent_norm_beta"]), bias=n["bias"], **common)
    common["c0"] = states[1].numpy()
    if isinstance(layer, PeepholeLSTM):
        peep = np.stack([n[f"{g}_gate_peephole_weights"] for g in ("input", "forget", "output")])
        return reference.peephole_lstm(x, n["kernel"], n["recurrent_kernel"], peep,
                                       bias=n["bias"], **common)[0]
    return reference.layer_norm_lstm(
        x, n["kernel"], n["recurrent_kernel"], (n["kernel_norm_gamma"], n["kernel_norm_beta"]),
        (n["recurrent_norm_gamma"], n["recurrent_norm_beta"]),
        (n["state_norm_gamma"], n["state_norm_beta"]), bias=n["bias"], **common)[0]


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_equals_the_reference(layer_class, go_backwards) -> None:
    layer = layer_class(4, return_sequences=True, go_backwards=go_backwards)
    x = torch.randn(3, 6, 5)
    layer(x)
    _randomise(layer)
    states = [torch.randn(3, 4) for _ in layer.cell.get_initial_state(3)]
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:] = False  # a right-padded sequence: Keras' output holds its last state
    out = layer(x, initial_state=states, mask=mask)
    want = _reference(layer, x.numpy(), states, mask.numpy(), go_backwards)
    if go_backwards:  # Keras emits zeros before a sequence's first real step, not h_0
        want[0, :2] = 0.0
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_sequence_equals_the_loop_with_masks(layer_class, go_backwards,
                                             zero_output_for_mask) -> None:
    layer = layer_class(4, return_sequences=True, return_state=True, go_backwards=go_backwards,
                        zero_output_for_mask=zero_output_for_mask)
    x = torch.randn(3, 6, 5, requires_grad=True)
    layer(x)
    _randomise(layer)
    got = layer(x, mask=MASK)
    layer.backend = "loop"
    want = layer(x, mask=MASK)
    assert len(got) == 2 + (layer_class is not LayerNormGRU)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **F64)
    inputs = [x, *layer.parameters()]
    cot = [torch.randn_like(w) for w in want]
    g1 = torch.autograd.grad(sum((g * c).sum() for g, c in zip(got, cot)), inputs)
    g2 = torch.autograd.grad(sum((w * c).sum() for w, c in zip(want, cot)), inputs)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **F64)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_layer_equals_the_torch_style_module(layer_class) -> None:
    """Keras' layout (GRU z, r, h; bias (2, 3U)) moved into rnnkit.nn's names and order."""
    layer = layer_class(4, return_sequences=True, return_state=True)
    x = torch.randn(3, 6, 5)
    layer(x)
    _randomise(layer)
    module = getattr(rnnkit.nn, layer_class.__name__)(5, 4, batch_first=True)
    moved = {k + "_l0": v for k, v in layer.cell.torch_parameters().items() if v is not None}
    if layer_class is not LayerNormGRU:
        moved["bias_hh_l0"] = torch.zeros(16)
    module.load_state_dict(moved)
    out, *states = layer(x)
    want, finals = module(x)
    torch.testing.assert_close(out, want, **F64)
    finals = (finals,) if layer_class is LayerNormGRU else finals
    for s, f in zip(states, finals):
        torch.testing.assert_close(s, f[0], **F64)
    if layer_class is LayerNormGRU:  # the GRU's z, r blocks are torch's r, z rows swapped
        rows = GRU_SPEC.rows("keras", "torch", 4)
        assert rows[:4] == list(range(4, 8))
        torch.testing.assert_close(module.weight_ih_l0[:4], layer.cell.kernel[:, 4:8].t())


@pytest.mark.parametrize("layer_class, cell_class", [(PeepholeLSTM, PeepholeLSTMCell),
                                                     (LayerNormLSTM, LayerNormLSTMCell),
                                                     (LayerNormGRU, LayerNormGRUCell)])
def test_the_cell_in_a_generic_rnn(layer_class, cell_class) -> None:
    layer = layer_class(4, return_sequences=True)
    x = torch.randn(2, 5, 3)
    layer(x)
    _randomise(layer)
    generic = RNN(cell_class(4), return_sequences=True)
    generic(x)
    generic.set_weights(layer.get_weights())
    torch.testing.assert_close(generic(x, mask=MASK[:2, :5]), layer(x, mask=MASK[:2, :5]), **F64)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_mask_from_embedding_mask_zero(layer_class) -> None:
    """Right padding by token 0: the last output is the state after each real last token."""
    tokens = torch.tensor([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]])
    model = rnnkit.Sequential([Embedding(10, 3, mask_zero=True), layer_class(4)])
    full = model(tokens)
    short = model(tokens[:1, :3])
    torch.testing.assert_close(full[:1], short, **F64)


def test_gradcheck() -> None:
    layer = LayerNormGRU(2, return_sequences=True, go_backwards=True)
    x = torch.randn(2, 3, 2, requires_grad=True)
    layer(x)
    _randomise(layer)
    names = [n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().requires_grad_() for p in layer.parameters())

    def f(x, *p):
        return torch.func.functional_call(layer, dict(zip(names, p)), (x,),
                                          {"mask": MASK[:2, :3]})

    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("layer_class", LAYERS)
def test_config_round_trip_and_saved_model(tmp_path, layer_class) -> None:
    layer = layer_class(3, use_bias=False, return_state=True, kernel_initializer="orthogonal",
                        go_backwards=True)
    config = layer.get_config()
    again = layer_class.from_config(config)
    assert again.get_config() == config
    assert again.cell.use_bias is False and again.go_backwards is True
    model = rnnkit.Sequential([rnnkit.layers.Input((5, 2)),
                               layer_class(4, return_sequences=True), layer_class(3)])
    for p in model.parameters():  # the norms and peepholes away from their initial values
        torch.nn.init.normal_(p, std=0.5)
    x = np.random.default_rng(0).normal(size=(2, 5, 2))
    before = model.predict(x, verbose=0)
    path = tmp_path / "variants.rnnkit"
    model.save(path)
    loaded = rnnkit.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-12)
    assert [type(layer).__name__ for layer in loaded.layers] == [layer_class.__name__] * 2


def test_errors() -> None:
    with pytest.raises(ValueError, match="activation is fixed to 'tanh'"):
        LayerNormLSTM(3, activation="relu")
    with pytest.raises(ValueError, match="recurrent_activation is fixed"):
        PeepholeLSTM(3, recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match="reset_after"):
        LayerNormGRU(3, reset_after=False)
    with pytest.raises(ValueError, match="dropout"):
        LayerNormGRU(3, dropout=0.5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        PeepholeLSTM(3, peepholes=True)
