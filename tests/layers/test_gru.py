"""GRU and GRUCell: NumPy reference (both reset_after conventions), fused vs loop values and
gradients, the z,r,h -> r,z,n permutation, shapes, counts and errors.

Tolerances: float64 rtol 1e-10 / atol 1e-12.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit.layers import GRU, GRUCell

F64 = dict(rtol=1e-10, atol=1e-12)
B, T, D, U = 3, 5, 4, 3
MASKS = {
    "none": None,
    "post": np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], bool),
    "holes": np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]], bool),
}


def _weights(rng: np.random.Generator, reset_after: bool = True, use_bias: bool = True):
    weights = [rng.uniform(-0.7, 0.7, (D, 3 * U)), rng.uniform(-0.7, 0.7, (U, 3 * U))]
    if use_bias:
        weights.append(rng.uniform(-0.4, 0.4, (2, 3 * U) if reset_after else (3 * U,)))
    return weights


def _layer(weights, **kwargs) -> GRU:
    layer = GRU(U, use_bias=len(weights) == 3, **kwargs)
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
@pytest.mark.parametrize("reset_after,backend", [(True, "fused"), (True, "loop"), (False, "auto")])
@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_reference(mask_kind, go_backwards, reset_after, backend, use_bias):
    rng = np.random.default_rng(11)
    weights = _weights(rng, reset_after, use_bias)
    x, h0 = rng.normal(size=(B, T, D)), rng.normal(size=(B, U))
    mask = MASKS[mask_kind]
    layer = _layer(weights, reset_after=reset_after, return_sequences=True, return_state=True,
                   go_backwards=go_backwards, backend=backend)
    outputs, state = layer(x, initial_state=[h0], mask=mask)
    held = reference.gru(x, *weights[:2], weights[2] if use_bias else None, h0=h0,
                         reset_after=reset_after, mask=mask, go_backwards=go_backwards)
    keep = None if mask is None else (mask[:, ::-1] if go_backwards else mask)
    np.testing.assert_allclose(outputs.detach().numpy(), keras_outputs(held, keep), **F64)
    np.testing.assert_allclose(state.detach().numpy(), held[:, -1], **F64)


@pytest.mark.parametrize("mask_kind", ["none", "holes"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_and_loop_gradients_agree(mask_kind, go_backwards):
    """The fused kernel sees the weights through a differentiable gate permutation: gradients
    reach kernel, recurrent_kernel and the (2, 3U) bias in Keras' layout, equal to the loop's."""
    rng = np.random.default_rng(12)
    weights = _weights(rng)
    x_np = rng.normal(size=(B, T, D))
    mask = None if MASKS[mask_kind] is None else torch.tensor(MASKS[mask_kind])
    grads = []
    for backend in ("fused", "loop"):
        layer = _layer(weights, return_sequences=True, return_state=True,
                       go_backwards=go_backwards, backend=backend)
        x = torch.tensor(x_np, requires_grad=True)
        h0 = torch.linspace(-0.5, 0.5, B * U, dtype=torch.float64).view(B, U).requires_grad_()
        outputs, state = layer(x, initial_state=[h0], mask=mask)
        (outputs.sin().sum() + (state * state).sum()).backward()
        grads.append([x.grad, h0.grad, *(p.grad for p in layer.keras_weights())])
    for fused, loop in zip(*grads):
        assert fused is not None and loop is not None
        torch.testing.assert_close(fused, loop, **F64)


def test_gradcheck_reset_before_on_the_loop():
    rng = np.random.default_rng(13)
    weights = _weights(rng, reset_after=False)
    layer = _layer(weights, reset_after=False)
    names = ["cell.kernel", "cell.recurrent_kernel", "cell.bias"]
    params = tuple(p.detach().clone().requires_grad_() for p in layer.keras_weights())
    x = torch.tensor(rng.normal(size=(2, 3, D)), requires_grad=True)

    def run(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params)), (x,))

    assert torch.autograd.gradcheck(run, (x, *params))


def test_cell_is_the_equation_both_conventions():
    rng = np.random.default_rng(14)
    x, h = rng.normal(size=(B, D)), rng.normal(size=(B, U))
    for reset_after in (True, False):
        weights = _weights(rng, reset_after)
        cell = GRUCell(U, reset_after=reset_after)
        cell.maybe_build((None, D))
        cell.double()
        cell.set_weights(weights)
        out, (state,) = cell(x, [torch.tensor(h)])
        expected = reference.gru(x[:, None], *weights, h0=h, reset_after=reset_after)[:, 0]
        np.testing.assert_allclose(out.detach().numpy(), expected, **F64)
        assert out is state


def _hard_sigmoid(a: np.ndarray) -> np.ndarray:
    return np.clip((a + 3.0) / 6.0, 0.0, 1.0)  # Keras 3: relu6(x + 3) / 6


@pytest.mark.parametrize("reset_after", [True, False])
def test_other_activations_follow_keras_equations(reset_after):
    """relu candidate, hard_sigmoid gates (the loop path): Keras' equations written out here,
    in the gate order z, r, h, with Keras' update h' = z * h + (1 - z) * hh."""
    rng = np.random.default_rng(17)
    k, rk, b = _weights(rng, reset_after)
    x, h = 3.0 * rng.normal(size=(B, T, D)), rng.normal(size=(B, U))  # wide enough to clip
    layer = _layer([k, rk, b], reset_after=reset_after, activation="relu",
                   recurrent_activation="hard_sigmoid", return_sequences=True)
    assert layer._fast_path_blocker(False) is not None
    outputs = layer(x, initial_state=[h]).detach().numpy()
    b_x, b_h = (b[0], b[1]) if reset_after else (b, np.zeros(3 * U))
    expected, gate_inputs, candidates = [], [], []
    for t in range(T):
        x_z, x_r, x_h = np.split(x[:, t] @ k + b_x, 3, axis=-1)
        h_z, h_r, h_h = np.split(h @ rk + b_h, 3, axis=-1)
        z, r = _hard_sigmoid(x_z + h_z), _hard_sigmoid(x_r + h_r)
        recurrent = r * h_h if reset_after else (r * h) @ rk[:, 2 * U:]
        h = z * h + (1 - z) * np.maximum(x_h + recurrent, 0.0)
        expected.append(h)
        gate_inputs += [x_z + h_z, x_r + h_r]
        candidates.append(x_h + recurrent)
    # so the test can fail: hard_sigmoid clips somewhere, relu cuts somewhere
    assert (np.abs(np.concatenate(gate_inputs)) > 3).any()
    assert (np.concatenate(candidates) < 0).any()
    np.testing.assert_allclose(outputs, np.stack(expected, axis=1), **F64)


def test_shapes_counts_and_weight_layout():
    layer = GRU(4, return_sequences=True, return_state=True)
    outputs, state = layer(torch.randn(2, 5, 3))
    assert tuple(outputs.shape) == (2, 5, 4) and tuple(state.shape) == (2, 4)
    assert [w.shape for w in layer.get_weights()] == [(3, 12), (4, 12), (2, 12)]
    assert layer.count_params() == 3 * 12 + 4 * 12 + 2 * 12  # 108, as Keras
    before = GRU(4, reset_after=False)
    before(torch.randn(2, 5, 3))
    assert before.get_weights()[2].shape == (12,) and before.count_params() == 96
    assert layer.compute_output_shape((None, 5, 3)) == [(None, 5, 4), (None, 4)]
    assert np.all(layer.get_weights()[2] == 0)  # bias_initializer="zeros"


def test_reset_before_cannot_be_forced_onto_the_kernel():
    with pytest.raises(ValueError, match="reset_after=False"):
        _layer(_weights(np.random.default_rng(15), False), reset_after=False, backend="fused")(
            torch.randn(1, 2, D, dtype=torch.float64)
        )
    layer = _layer(_weights(np.random.default_rng(15)), recurrent_activation=torch.nn.functional.hardsigmoid)
    assert layer._fast_path_blocker(False) is not None  # a non-sigmoid gate runs the loop


def test_use_cudnn_maps_to_backend():
    assert GRU(2, use_cudnn=False).backend == "loop"
    assert GRU(2, use_cudnn=True).backend == "fused"
    assert GRU(2).backend == "auto"
    with pytest.raises(ValueError, match="use_cudnn must be"):
        GRU(2, use_cudnn="yes")
    with pytest.raises(ValueError, match="contradicts"):
        GRU(2, use_cudnn=True, backend="loop")


def test_recurrent_dropout_gives_each_gate_its_own_mask():
    cell = GRUCell(4, dropout=0.5, recurrent_dropout=0.5)
    masks = cell.get_dropout_mask(torch.ones(64, 3))
    assert isinstance(masks, list) and len(masks) == 3
    assert not torch.equal(masks[0], masks[1])
    assert GRUCell(4, dropout=0.5).get_dropout_mask(torch.ones(2, 3)).shape == (2, 3)


def test_dropout_in_training_only():
    layer = _layer(_weights(np.random.default_rng(16)), dropout=0.5, recurrent_dropout=0.3)
    x = torch.randn(8, 4, D, dtype=torch.float64)
    assert layer.training  # a new layer is in training mode, as torch modules are
    torch.testing.assert_close(layer(x), layer(x))  # but a bare call is inference (Keras)
    assert not torch.allclose(layer(x, training=True), layer(x, training=True))
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    assert not torch.allclose(layer(x, training=True), layer(x))


def test_config_round_trip():
    layer = GRU(3, reset_after=False, recurrent_activation="sigmoid", go_backwards=True,
                return_state=True, name="g")
    config = layer.get_config()
    json.dumps(config)
    assert config["reset_after"] is False and config["recurrent_activation"] == "sigmoid"
    clone = GRU.from_config(config)
    assert clone.get_config() == config
    x = torch.randn(2, 4, 5)
    layer(x), clone(x)
    clone.set_weights(layer.get_weights())
    for a, b in zip(clone(x), layer(x)):
        torch.testing.assert_close(a, b)
