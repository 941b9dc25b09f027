"""LSTM and LSTMCell: NumPy reference, fused vs loop values and gradients, [output, h, c],
unit_forget_bias, counts and errors.

Tolerances: float64 rtol 1e-10 / atol 1e-12.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit.layers import LSTM, LSTMCell

F64 = dict(rtol=1e-10, atol=1e-12)
B, T, D, U = 3, 5, 4, 3
MASKS = {
    "none": None,
    "pre": np.array([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 1, 1, 1]], bool),
    "holes": np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]], bool),
}


def _weights(rng: np.random.Generator, use_bias: bool = True) -> list[np.ndarray]:
    weights = [rng.uniform(-0.7, 0.7, (D, 4 * U)), rng.uniform(-0.7, 0.7, (U, 4 * U))]
    return weights + [rng.uniform(-0.4, 0.4, (4 * U,))] if use_bias else weights


def _layer(weights, **kwargs) -> LSTM:
    layer = LSTM(U, use_bias=len(weights) == 3, **kwargs)
    layer.maybe_build((None, None, D))
    layer.double()
    layer.set_weights(weights)
    return layer


def keras_outputs(held: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """Keras' rule: a masked step repeats the previous output (zero before the first one)."""
    if keep is None:
        return held
    out, previous = np.zeros_like(held), np.zeros_like(held[:, 0])
    for k in range(held.shape[1]):
        out[:, k] = np.where(keep[:, k, None], held[:, k], previous)
        previous = out[:, k]
    return out


@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("backend", ["fused", "loop"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_reference(mask_kind, go_backwards, backend, use_bias):
    rng = np.random.default_rng(21)
    weights = _weights(rng, use_bias)
    x, h0, c0 = rng.normal(size=(B, T, D)), rng.normal(size=(B, U)), rng.normal(size=(B, U))
    mask = MASKS[mask_kind]
    layer = _layer(weights, return_sequences=True, return_state=True, go_backwards=go_backwards,
                   backend=backend)
    outputs, h, c = layer(x, initial_state=[h0, c0], mask=mask)
    hs, cs = reference.lstm(x, *weights[:2], weights[2] if use_bias else None, h0=h0, c0=c0,
                            mask=mask, go_backwards=go_backwards)
    keep = None if mask is None else (mask[:, ::-1] if go_backwards else mask)
    np.testing.assert_allclose(outputs.detach().numpy(), keras_outputs(hs, keep), **F64)
    np.testing.assert_allclose(h.detach().numpy(), hs[:, -1], **F64)
    np.testing.assert_allclose(c.detach().numpy(), cs[:, -1], **F64)


@pytest.mark.parametrize("mask_kind", ["none", "holes"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_and_loop_gradients_agree(mask_kind, go_backwards):
    rng = np.random.default_rng(22)
    weights = _weights(rng)
    x_np = rng.normal(size=(B, T, D))
    mask = None if MASKS[mask_kind] is None else torch.tensor(MASKS[mask_kind])
    grads = []
    for backend in ("fused", "loop"):
        layer = _layer(weights, return_sequences=True, return_state=True,
                       go_backwards=go_backwards, backend=backend)
        x = torch.tensor(x_np, requires_grad=True)
        h0 = torch.linspace(-0.5, 0.5, B * U, dtype=torch.float64).view(B, U).requires_grad_()
        c0 = torch.linspace(0.4, -0.6, B * U, dtype=torch.float64).view(B, U).requires_grad_()
        outputs, h, c = layer(x, initial_state=[h0, c0], mask=mask)
        (outputs.sin().sum() + (h * c).sum() + c.pow(2).sum()).backward()
        grads.append([x.grad, h0.grad, c0.grad, *(p.grad for p in layer.keras_weights())])
    for fused, loop in zip(*grads):
        assert fused is not None and loop is not None
        torch.testing.assert_close(fused, loop, **F64)


def test_gradcheck_float64():
    rng = np.random.default_rng(23)
    layer = _layer(_weights(rng), return_state=True)
    names = ["cell.kernel", "cell.recurrent_kernel", "cell.bias"]
    params = tuple(p.detach().clone().requires_grad_() for p in layer.keras_weights())
    x = torch.tensor(rng.normal(size=(2, 3, D)), requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, True, True]])

    def run(x, *params):
        out = torch.func.functional_call(layer, dict(zip(names, params)), (x,), {"mask": mask})
        return tuple(out)

    assert torch.autograd.gradcheck(run, (x, *params))


def test_cell_is_the_equation():
    rng = np.random.default_rng(24)
    weights = _weights(rng)
    cell = LSTMCell(U)
    cell.maybe_build((None, D))
    cell.double()
    cell.set_weights(weights)
    x, h, c = rng.normal(size=(B, D)), rng.normal(size=(B, U)), rng.normal(size=(B, U))
    out, (h_new, c_new) = cell(x, [torch.tensor(h), torch.tensor(c)])
    hs, cs = reference.lstm(x[:, None], *weights, h0=h, c0=c)
    np.testing.assert_allclose(out.detach().numpy(), hs[:, 0], **F64)
    np.testing.assert_allclose(c_new.detach().numpy(), cs[:, 0], **F64)
    assert out is h_new


def test_unit_forget_bias_and_counts():
    layer = LSTM(4)
    layer(torch.randn(2, 3, 5))
    bias = layer.get_weights()[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    assert [w.shape for w in layer.get_weights()] == [(5, 16), (4, 16), (16,)]
    assert layer.count_params() == 5 * 16 + 4 * 16 + 16  # 160, as Keras
    plain = LSTM(4, unit_forget_bias=False)
    plain(torch.randn(2, 3, 5))
    assert np.all(plain.get_weights()[2] == 0)
    assert layer.compute_output_shape((None, 3, 5)) == (None, 4)
    full = LSTM(4, return_sequences=True, return_state=True)
    assert full.compute_output_shape((None, 3, 5)) == [(None, 3, 4), (None, 4), (None, 4)]


def test_return_state_is_output_h_c():
    layer = LSTM(3, return_state=True)
    output, h, c = layer(torch.randn(2, 4, 5))
    torch.testing.assert_close(output, h)
    assert not torch.allclose(h, c)


GATES = {"sigmoid": torch.sigmoid,
         "hard_sigmoid": lambda a: ((a + 3.0) / 6.0).clamp(0.0, 1.0)}  # Keras 3: relu6(a + 3) / 6


@pytest.mark.parametrize("recurrent_activation", list(GATES))
def test_non_default_activation_runs_the_loop(recurrent_activation):
    rng = np.random.default_rng(25)
    weights = _weights(rng)
    layer = _layer(weights, activation="relu", recurrent_activation=recurrent_activation,
                   return_sequences=True)
    assert layer._fast_path_blocker(False) is not None
    with pytest.raises(ValueError, match="activation must be one of"):
        _layer(weights, activation="relu", backend="fused")(torch.randn(1, 2, D))
    torch.manual_seed(25)
    x = 3.0 * torch.randn(2, 4, D, dtype=torch.float64)  # wide enough for hard_sigmoid to clip
    k, r, b = (torch.tensor(w) for w in weights)
    gate = GATES[recurrent_activation]
    h = c = torch.zeros(2, U, dtype=torch.float64)
    clipped = False
    for t in range(4):  # the same equations with relu in place of tanh
        i, f, g, o = (x[:, t] @ k + h @ r + b).split(U, dim=-1)
        c = gate(f) * c + gate(i) * torch.relu(g)
        h = gate(o) * torch.relu(c)
        clipped |= bool((torch.cat([i, f, o]).abs() > 3).any())
    assert clipped  # so hard_sigmoid's flat parts count
    torch.testing.assert_close(layer(x)[:, -1], h, **F64)


def test_recurrent_dropout_gives_each_gate_its_own_mask_and_only_in_training():
    cell = LSTMCell(3, dropout=0.4, recurrent_dropout=0.4)
    masks = cell.get_recurrent_dropout_mask(torch.ones(32, 3))
    assert isinstance(masks, list) and len(masks) == 4
    layer = _layer(_weights(np.random.default_rng(26)), dropout=0.4, recurrent_dropout=0.4)
    x = torch.randn(16, 4, D, dtype=torch.float64)
    torch.testing.assert_close(layer(x), layer(x))  # a bare call is inference (Keras)
    assert not torch.allclose(layer(x, training=True), layer(x, training=True))
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    assert not torch.allclose(layer(x, training=True), layer(x))


def test_config_round_trip():
    layer = LSTM(3, unit_forget_bias=False, return_sequences=True, stateful=True, name="l")
    config = layer.get_config()
    json.dumps(config)
    assert config["unit_forget_bias"] is False and config["stateful"] is True
    assert LSTM.from_config(config).get_config() == config


def test_initial_state_errors():
    layer = LSTM(3)
    x = torch.randn(2, 4, 5)
    with pytest.raises(ValueError, match=r"2 state\(s\).*initial_state has 1"):
        layer(x, initial_state=[torch.zeros(2, 3)])
    with pytest.raises(ValueError, match=r"initial_state\[1\] must have shape \(batch, 3\)"):
        layer(x, initial_state=[torch.zeros(2, 3), torch.zeros(2, 4)])
