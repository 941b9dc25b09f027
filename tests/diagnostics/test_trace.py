"""trace()/gradient_flow(): the recorded states and dL/dh_t against independent autograd
computations (float64, rtol 1e-10): a hand-written SimpleRNN, restarting the fused kernel from
each step's state, and the cells stepped by hand for a stacked Bidirectional model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.diagnostics import gradient_flow, trace

TOL = {"rtol": 1e-10, "atol": 1e-12}


@pytest.fixture(autouse=True)
def _float64() -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _data(batch: int = 3, steps: int = 7, features: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, steps, features)), rng.normal(size=(batch, 1))


def test_simple_rnn_gradients_match_hand_written_bptt() -> None:
    x, y = _data()
    model = rk.Sequential([rk.layers.SimpleRNN(4, input_shape=(7, 2), name="rnn"),
                           rk.layers.Dense(1)])
    model.build()
    rng = np.random.default_rng(1)
    weights = [rng.normal(scale=0.7, size=w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    kernel, recurrent, bias, dense_w, dense_b = (torch.tensor(w, requires_grad=True)
                                                 for w in weights)

    xs = torch.tensor(x)
    h = torch.zeros(3, 4)
    states = []
    for t in range(7):  # h_t = tanh(x_t K + b + h_{t-1} R), the textbook recurrence
        h = torch.tanh(xs[:, t] @ kernel + bias + h @ recurrent)
        h.retain_grad()
        states.append(h)
    loss = ((h @ dense_w + dense_b - torch.tensor(y)) ** 2).mean()
    loss.backward()

    result = trace(model, x, y, loss="mse")
    layer = result["rnn"]
    assert result.loss == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(layer.h, torch.stack(states, 1).detach().numpy(), **TOL)
    expected = torch.stack([s.grad for s in states], 1).numpy()
    np.testing.assert_allclose(layer.grad_h, expected, **TOL)
    np.testing.assert_allclose(layer.grad_norm(), np.sqrt((expected ** 2).sum(axis=(0, 2))),
                               **TOL)
    flow = gradient_flow(model, x, y, loss="mse")
    np.testing.assert_allclose(flow["rnn"], layer.grad_norm(), **TOL)


def test_lstm_gradients_match_restarting_the_fused_layer_from_each_state() -> None:
    """dL/dh_t is the gradient of the loss of the fused layer run on x[:, t+1:] from the
    initial state (h_t, c_t); the traced dL/dc_t is the total derivative, which adds the path
    through h_t = o_t tanh(c_t): dL/dh_t * o_t * (1 - tanh(c_t)^2)."""
    x, y = _data(steps=6)
    lstm = rk.layers.LSTM(5, input_shape=(6, 2), name="lstm")
    dense = rk.layers.Dense(1)
    model = rk.Sequential([lstm, dense])
    model.compile(loss="mse")
    result = trace(model, x, y)
    layer = result["lstm"]
    assert list(layer.gates) == ["i", "f", "o"]
    xs, ys = torch.tensor(x), torch.tensor(y)
    assert lstm.backend == "auto"  # the oracle runs the fused kernel
    for t in range(6):
        h = torch.tensor(layer.h[:, t]).requires_grad_()
        c = torch.tensor(layer.c[:, t]).requires_grad_()
        if t == 5:
            last = h
        else:
            last = lstm(xs[:, t + 1:], initial_state=[h, c])
        loss = ((dense(last) - ys) ** 2).mean()
        grad_h, grad_c = torch.autograd.grad(loss, [h, c], allow_unused=True)
        np.testing.assert_allclose(layer.grad_h[:, t], grad_h.numpy(), **TOL)
        partial_c = np.zeros_like(layer.grad_c[:, t]) if grad_c is None else grad_c.numpy()
        through_h = grad_h.numpy() * layer.gates["o"][:, t] * (1 - np.tanh(layer.c[:, t]) ** 2)
        expected_c = partial_c + through_h
        np.testing.assert_allclose(layer.grad_c[:, t], expected_c, **TOL)


def _step_by_hand(cell, xs: torch.Tensor, reverse: bool) -> tuple[list, list]:
    batch, steps = xs.shape[:2]
    states = [torch.zeros(batch, cell.units) for _ in range(2 if isinstance(
        cell, rk.layers.LSTMCell) else 1)]
    outputs, kept = [None] * steps, [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        output, states = cell.call(xs[:, t], states)
        states[0].retain_grad()
        outputs[t], kept[t] = output, states[0]
    return outputs, kept


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU", "LSTM"])
def test_stacked_bidirectional_gradients_match_the_cells_stepped_by_hand(kind: str) -> None:
    x, y = _data(batch=2, steps=5, features=3)
    layer = getattr(rk.layers, kind)
    model = rk.Sequential([rk.layers.Bidirectional(layer(4, return_sequences=True),
                                                   input_shape=(5, 3)),
                           layer(3), rk.layers.Dense(1)])
    model.compile(loss="mse")
    result = trace(model, x, y)
    bi, top, dense = model.layers
    np.testing.assert_allclose(result.output.numpy(), model(x).detach().numpy(), **TOL)

    xs = torch.tensor(x)
    forward_out, forward_h = _step_by_hand(bi.forward_layer.cell, xs, reverse=False)
    backward_out, backward_h = _step_by_hand(bi.backward_layer.cell, xs, reverse=True)
    merged = torch.cat([torch.stack(forward_out, 1), torch.stack(backward_out, 1)], -1)
    top_out, top_h = _step_by_hand(top.cell, merged, reverse=False)
    loss = ((dense(top_out[-1]) - torch.tensor(y)) ** 2).mean()
    loss.backward()

    labels = [t.label for t in result.layers]
    assert len(labels) == 3 and labels[1].endswith("(backward)"), labels
    for traced, states in zip(result.layers, (forward_h, backward_h, top_h)):
        np.testing.assert_allclose(traced.h, torch.stack(states, 1).detach().numpy(), **TOL)
        np.testing.assert_allclose(traced.grad_h, torch.stack([s.grad for s in states], 1),
                                   **TOL)
    assert [t.direction for t in result.layers] == ["forward", "backward", "forward"]


def test_masked_steps_get_no_gradient_and_real_steps_match_the_unpadded_sequence() -> None:
    x, y = _data(batch=1, steps=8)
    padded = x.copy()
    padded[:, 5:] = 0.0
    model = rk.Sequential([rk.layers.Masking(0.0, input_shape=(8, 2)),
                           rk.layers.GRU(4, name="gru"), rk.layers.Dense(1)])
    short = rk.Sequential([rk.layers.GRU(4, input_shape=(5, 2), name="gru"),
                           rk.layers.Dense(1)])
    short.set_weights(model.get_weights())
    masked = trace(model, padded, y, loss="mse")["gru"]
    plain = trace(short, x[:, :5], y, loss="mse")["gru"]
    assert masked.mask.tolist() == [[True] * 5 + [False] * 3]
    np.testing.assert_allclose(masked.grad_h[:, :5], plain.grad_h, **TOL)
    np.testing.assert_array_equal(masked.grad_norm()[5:], 0.0)
    np.testing.assert_allclose(masked.mean_abs()[:5], plain.mean_abs(), **TOL)
    assert np.isnan(masked.mean_abs()[5:]).all()  # no real entry at those steps


def test_gru_gates_are_the_cells_gates() -> None:
    """At t=0 (h = 0): z = sigmoid(x K_z + b_z + rb_z), r likewise."""
    x, y = _data(batch=2, steps=3)
    model = rk.Sequential([rk.layers.GRU(3, input_shape=(3, 2), bias_initializer="ones",
                                         name="gru"), rk.layers.Dense(1)])
    layer = trace(model, x, y, loss="mse")["gru"]
    cell = model.layers[0].cell
    pre = torch.tensor(x[:, 0]) @ cell.kernel + cell.bias[0] + cell.bias[1]
    z, r, _ = torch.sigmoid(pre).split(3, dim=-1)
    np.testing.assert_allclose(layer.gates["z"][:, 0], z.detach().numpy(), **TOL)
    np.testing.assert_allclose(layer.gates["r"][:, 0], r.detach().numpy(), **TOL)


def test_trace_leaves_the_model_as_it_was() -> None:
    x, y = _data(batch=2, steps=4)
    layer = rk.layers.LSTM(3, stateful=True, backend="fused")
    model = rk.Sequential([rk.layers.Input(batch_shape=(2, 4, 2)), layer, rk.layers.Dense(1)])
    model.compile(loss="mse")
    model.predict(x, verbose=0)
    states_before = [s.clone() for s in layer.states]
    trace(model, x, y)
    assert layer.backend == "fused"
    assert "_cell_step" not in layer.__dict__
    assert layer.cell.recurrent_activation is rk.activations.get("sigmoid")
    assert all(p.grad is None for p in model.parameters())
    for before, after in zip(states_before, layer.states):
        torch.testing.assert_close(before, after)


def test_without_targets_only_the_forward_pass_is_recorded() -> None:
    x, _ = _data()
    model = rk.Sequential([rk.layers.SimpleRNN(4, input_shape=(7, 2))])
    result = trace(model, x)
    assert result.loss is None and result.layers[0].grad_h is None
    with pytest.raises(ValueError, match="targets y"):
        result.layers[0].grad_norm()
    with pytest.raises(KeyError, match="no recurrent layer 'lstm'"):
        result["lstm"]


def test_frozen_weights_still_give_state_gradients() -> None:
    x, y = _data()
    model = rk.Sequential([rk.layers.SimpleRNN(4, input_shape=(7, 2)), rk.layers.Dense(1)])
    model.build()
    for p in model.parameters():
        p.requires_grad_(False)
    layer = trace(model, x, y, loss="mse").layers[0]
    assert (layer.grad_norm() > 0).all()


def test_clear_errors() -> None:
    x, y = _data()
    dense_only = rk.Sequential([rk.layers.Dense(1, input_shape=(7, 2))])
    with pytest.raises(ValueError, match="no recurrent layer"):
        trace(dense_only, x, y, loss="mse")
    model = rk.Sequential([rk.layers.SimpleRNN(4, input_shape=(7, 2)), rk.layers.Dense(1)])
    with pytest.raises(ValueError, match="need a loss"):
        trace(model, x, y)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        trace("model", x, y)  # type: ignore[arg-type]
