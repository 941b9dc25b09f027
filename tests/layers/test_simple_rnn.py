"""SimpleRNN and SimpleRNNCell: NumPy reference, fused vs loop, gradcheck, dropout, the seeds' cases.

Tolerances: float64 rtol 1e-10 / atol 1e-12 (the same math in another order); float32 against the
float64 reference 1e-5.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit.layers import SimpleRNN, SimpleRNNCell

F64 = dict(rtol=1e-10, atol=1e-12)
B, T, D, U = 3, 6, 4, 5
MASKS = {
    "none": None,
    "post": np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]], bool),
    "pre": np.array([[1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1]], bool),
    "holes": np.array([[1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 1, 0]], bool),
}


def _weights(rng: np.random.Generator, features: int = D, units: int = U) -> list[np.ndarray]:
    return [
        rng.uniform(-0.6, 0.6, (features, units)),
        rng.uniform(-0.6, 0.6, (units, units)),
        rng.uniform(-0.3, 0.3, (units,)),
    ]


def _layer(weights: list[np.ndarray], dtype=torch.float64, **kwargs) -> SimpleRNN:
    layer = SimpleRNN(weights[1].shape[0], **kwargs)
    layer.maybe_build((None, None, weights[0].shape[0]))
    layer.to(dtype)
    layer.set_weights(weights)
    return layer


def keras_outputs(held: np.ndarray, keep: np.ndarray | None, zero: bool) -> np.ndarray:
    """Keras' backend.rnn output rule, written out: a masked step repeats the previous output
    (zero before the first one), or is zero with zero_output_for_mask. Processing order."""
    if keep is None:
        return held
    out, previous = np.zeros_like(held), np.zeros_like(held[:, 0])
    for k in range(held.shape[1]):
        out[:, k] = np.where(keep[:, k, None], held[:, k], 0.0 if zero else previous)
        previous = out[:, k]
    return out


@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("backend", ["fused", "loop"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_matches_reference(mask_kind, go_backwards, backend, activation):
    rng = np.random.default_rng(1)
    weights = _weights(rng)
    x, h0 = rng.normal(size=(B, T, D)), rng.normal(size=(B, U))
    mask = MASKS[mask_kind]
    layer = _layer(weights, activation=activation, return_sequences=True, return_state=True,
                   go_backwards=go_backwards, backend=backend)
    outputs, state = layer(x, initial_state=[torch.tensor(h0)],
                           mask=None if mask is None else torch.tensor(mask))
    held = reference.simple_rnn(x, *weights, h0=h0, activation=activation, mask=mask,
                                go_backwards=go_backwards)
    keep = None if mask is None else (mask[:, ::-1] if go_backwards else mask)
    np.testing.assert_allclose(outputs.detach().numpy(), keras_outputs(held, keep, False), **F64)
    np.testing.assert_allclose(state.detach().numpy(), held[:, -1], **F64)

    last = _layer(weights, activation=activation, go_backwards=go_backwards, backend=backend)
    out_last = last(x, initial_state=[torch.tensor(h0)],
                    mask=None if mask is None else torch.tensor(mask))
    np.testing.assert_allclose(out_last.detach().numpy(), keras_outputs(held, keep, False)[:, -1],
                               **F64)


def test_masked_outputs_by_hand():
    """One unit, pre-padding and a non-zero initial state: Keras outputs 0 until the first real
    step (not the initial state), then repeats the last real output; the state is held."""
    layer = _layer([np.array([[1.0]]), np.array([[0.5]]), np.array([0.0])], activation="tanh")
    layer.return_sequences, layer.return_state = True, True
    x = torch.tensor([[[0.3], [0.7], [0.2], [-0.4]]], dtype=torch.float64)
    mask = torch.tensor([[False, True, False, True]])
    h0 = 0.9
    outputs, state = layer(x, initial_state=[torch.tensor([[h0]], dtype=torch.float64)], mask=mask)
    h1 = np.tanh(0.7 + 0.5 * h0)
    h3 = np.tanh(-0.4 + 0.5 * h1)
    np.testing.assert_allclose(outputs[0, :, 0].detach().numpy(), [0.0, h1, h1, h3], **F64)
    np.testing.assert_allclose(state.item(), h3, **F64)
    layer.zero_output_for_mask = True
    outputs, _ = layer(x, initial_state=[torch.tensor([[h0]], dtype=torch.float64)], mask=mask)
    np.testing.assert_allclose(outputs[0, :, 0].detach().numpy(), [0.0, h1, 0.0, h3], **F64)


def test_float32_matches_reference():
    rng = np.random.default_rng(2)
    weights = _weights(rng)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    layer = _layer([w.astype(np.float32) for w in weights], dtype=torch.float32,
                   return_sequences=True)
    out = layer(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().numpy(), reference.simple_rnn(x, *weights),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask_kind", ["none", "pre", "holes"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_and_loop_gradients_agree(mask_kind, go_backwards):
    rng = np.random.default_rng(3)
    weights = _weights(rng)
    mask = None if MASKS[mask_kind] is None else torch.tensor(MASKS[mask_kind])
    x_np = rng.normal(size=(B, T, D))
    grads = []
    for backend in ("fused", "loop"):
        layer = _layer(weights, return_sequences=True, return_state=True,
                       go_backwards=go_backwards, backend=backend)
        x = torch.tensor(x_np, requires_grad=True)
        h0 = torch.linspace(-0.5, 0.5, B * U, dtype=torch.float64).view(B, U).requires_grad_()
        outputs, state = layer(x, initial_state=[h0], mask=mask)
        loss = (outputs * torch.arange(1.0, U + 1, dtype=torch.float64)).sum() + state.pow(2).sum()
        loss.backward()
        grads.append([x.grad, h0.grad, *(p.grad for p in layer.keras_weights())])
    for fused, loop in zip(*grads):
        torch.testing.assert_close(fused, loop, **F64)


def test_gradcheck_float64():
    rng = np.random.default_rng(4)
    weights = _weights(rng, features=2, units=3)
    layer = _layer(weights, return_sequences=True, go_backwards=True)
    mask = torch.tensor([[True, False, True], [True, True, True]])
    names = ["cell.kernel", "cell.recurrent_kernel", "cell.bias"]
    params = tuple(p.detach().clone().requires_grad_() for p in layer.keras_weights())
    x = torch.tensor(rng.normal(size=(2, 3, 2)), requires_grad=True)

    def run(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params)), (x,), {"mask": mask})

    assert torch.autograd.gradcheck(run, (x, *params))


def test_seed_hello_shapes():
    """Seed 001: one-hot 'hell' -> outputs (1, 4, 2), state (1, 2); a batch of 3 -> (3, 5, 2)."""
    h, e, l, o = np.eye(4, dtype=np.float32)
    rnn = SimpleRNN(units=2, return_sequences=True, return_state=True)
    outputs, state = rnn(np.array([[h, e, l, o]], dtype=np.float32))
    assert tuple(outputs.shape) == (1, 4, 2) and tuple(state.shape) == (1, 2)
    torch.testing.assert_close(outputs[:, -1], state)
    batch = np.array([[h, e, l, l, o], [e, o, l, l, l], [l, l, e, e, l]], dtype=np.float32)
    outputs, states = SimpleRNN(units=2, return_sequences=True, return_state=True)(batch)
    assert tuple(outputs.shape) == (3, 5, 2) and tuple(states.shape) == (3, 2)
    # the same one-hot rows give the same first output: rows 0 and 1 differ, 'l' twice repeats
    assert not torch.allclose(outputs[0, 0], outputs[1, 0])


def _built(layer: SimpleRNN) -> SimpleRNN:
    layer.maybe_build(layer.batch_input_shape)  # what Sequential does with input_shape=
    return layer


def test_param_counts_and_shapes_of_the_seeds():
    layer = _built(SimpleRNN(3, input_shape=(2, 10)))  # seed 003
    assert layer.batch_input_shape == (None, 2, 10) and layer.count_params() == 42
    assert layer.compute_output_shape((None, 2, 10)) == (None, 3)
    layer = _built(SimpleRNN(3, batch_input_shape=(8, 2, 10), return_sequences=True))
    assert layer.count_params() == 42
    assert layer.compute_output_shape(layer.batch_input_shape) == (8, 2, 3)
    assert _built(SimpleRNN(10, input_shape=[4, 1])).count_params() == 120  # seed 000 (+11 Dense)
    assert [w.shape for w in _built(SimpleRNN(3, input_shape=(2, 10))).get_weights()] == [
        (10, 3), (3, 3), (3,)
    ]
    assert _built(SimpleRNN(3, use_bias=False, input_shape=(2, 10))).count_params() == 39


def test_cell_is_the_equation():
    rng = np.random.default_rng(5)
    kernel, recurrent, bias = _weights(rng)
    cell = SimpleRNNCell(U)
    cell.maybe_build((None, D))
    cell.double()
    cell.set_weights([kernel, recurrent, bias])
    x, h = rng.normal(size=(B, D)), rng.normal(size=(B, U))
    out, (state,) = cell(torch.tensor(x), [torch.tensor(h)])
    np.testing.assert_allclose(out.detach().numpy(), np.tanh(x @ kernel + bias + h @ recurrent),
                               **F64)
    assert out is state


def test_other_activations_run_the_loop_and_fused_request_explains():
    rng = np.random.default_rng(6)
    weights = _weights(rng)
    x = rng.normal(size=(B, T, D))
    layer = _layer(weights, activation="sigmoid", return_sequences=True)
    np.testing.assert_allclose(layer(x).detach().numpy(),
                               reference.simple_rnn(x, *weights, activation="sigmoid"), **F64)
    forced = _layer(weights, activation="sigmoid", backend="fused")
    with pytest.raises(ValueError, match="activation must be one of .*'sigmoid'.*backend='auto'"):
        forced(x)


def test_dropout_mask_is_fixed_across_time_and_only_in_training():
    # identity kernel, no recurrence, linear activation: output_t = x_t * mask
    layer = _layer([np.eye(4), np.zeros((4, 4)), np.zeros(4)], activation="linear",
                   return_sequences=True, dropout=0.5)
    x = torch.ones(64, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x, training=False), x)  # inference: no dropout
    out = layer(x, training=True)
    assert set(out.unique().tolist()) == {0.0, 2.0}  # kept inputs scaled by 1 / (1 - 0.5)
    torch.testing.assert_close(out, out[:, :1].expand_as(out))  # the same mask at every step
    again = layer(x, training=True)
    assert not torch.equal(out, again)  # a new mask per call


def test_fused_path_dropout_matches_fixed_mask_semantics():
    layer = _layer([np.eye(4), np.zeros((4, 4)), np.zeros(4)], return_sequences=True, dropout=0.25,
                   backend="fused")
    x = torch.full((32, 5, 4), 0.5, dtype=torch.float64)
    out = layer(x, training=True)
    kept = torch.tanh(torch.tensor(0.5 / 0.75, dtype=torch.float64))
    assert torch.all((out == 0) | torch.isclose(out, kept))
    torch.testing.assert_close(out, out[:, :1].expand_as(out))


def test_recurrent_dropout_runs_the_loop_in_training_only():
    weights = _weights(np.random.default_rng(7))
    x = torch.randn(2, 4, D, dtype=torch.float64)
    layer = _layer(weights, recurrent_dropout=0.5, backend="fused")
    layer(x, training=False)  # inference: the fused kernel is fine
    with pytest.raises(ValueError, match="recurrent_dropout"):
        layer(x, training=True)
    loop = _layer(weights, recurrent_dropout=0.5, seed=3)
    same_seed = _layer(weights, recurrent_dropout=0.5, seed=3)
    torch.testing.assert_close(loop(x, training=True), same_seed(x, training=True))
    assert not torch.allclose(loop(x, training=True), loop(x, training=False))


def test_config_round_trip():
    layer = SimpleRNN(4, activation="relu", return_sequences=True, go_backwards=True, dropout=0.1,
                      input_shape=(None, 3), name="encoder")
    config = layer.get_config()
    json.dumps(config)
    assert config["units"] == 4 and config["activation"] == "relu" and config["name"] == "encoder"
    clone = SimpleRNN.from_config(config)
    assert clone.get_config() == config
    _built(layer), _built(clone)
    clone.set_weights(layer.get_weights())
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(clone.eval()(x), layer.eval()(x))
    assert layer.units == 4 and layer.dropout == 0.1 and layer.use_bias


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"units": 0}, "units must be a positive integer"),
        ({"units": 2.5}, "units must be a positive integer"),
        ({"units": 2, "dropout": 1.5}, r"dropout must be a number in \[0, 1\)"),
        ({"units": 2, "recurrent_dropout": -0.1}, "recurrent_dropout"),
        ({"units": 2, "kernel_regularizer": "l5"}, "Unknown regularizer 'l5'"),
        ({"units": 2, "bias_constraint": "nonneg"}, "Unknown constraint 'nonneg'"),
        ({"units": 2, "backend": "cuda"}, "backend must be one of"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleRNN(**kwargs)


def test_unknown_argument_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword"):
        SimpleRNN(2, retrun_sequences=True)
