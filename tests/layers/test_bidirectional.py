"""Bidirectional: merge modes against the two directions run by hand, masks (the backward half
starts at each sequence's last real step and is zero at padding), states, weights, config, errors.

Tolerances: float64 rtol 1e-10 / atol 1e-12.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit.layers import GRU, LSTM, RNN, Bidirectional, SimpleRNN, SimpleRNNCell

F64 = dict(rtol=1e-10, atol=1e-12)
B, T, D, U = 3, 5, 4, 3
POST = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)


def _random_weights(layer: Bidirectional, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.6, 0.6, w.shape) for w in layer.get_weights()]


def _built(layer: Bidirectional, seed: int = 0) -> Bidirectional:
    layer.maybe_build((None, None, D))
    layer.double()
    layer.set_weights(_random_weights(layer, seed))
    return layer


def _by_hand(layer: Bidirectional, x: torch.Tensor, mask: torch.Tensor | None = None):
    """The forward layer's output and the backward layer's, flipped into time order."""
    y = layer.forward_layer(x, mask=mask)
    y_rev = layer.backward_layer(x, mask=mask)
    return y, y_rev.flip(1) if layer.return_sequences else y_rev


@pytest.mark.parametrize(
    "merge_mode,merge",
    [
        ("concat", lambda a, b: torch.cat([a, b], -1)),
        ("sum", lambda a, b: a + b),
        ("mul", lambda a, b: a * b),
        ("ave", lambda a, b: (a + b) / 2),
    ],
)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_merge_modes(merge_mode, merge, return_sequences):
    layer = _built(Bidirectional(GRU(U, return_sequences=return_sequences), merge_mode=merge_mode))
    x = torch.randn(B, T, D, dtype=torch.float64)
    torch.testing.assert_close(layer(x), merge(*_by_hand(layer, x)), **F64)


def test_merge_mode_none_returns_both():
    layer = _built(Bidirectional(SimpleRNN(U, return_sequences=True), merge_mode=None))
    x = torch.randn(B, T, D, dtype=torch.float64)
    y, y_rev = layer(x)
    expected = _by_hand(layer, x)
    torch.testing.assert_close(y, expected[0], **F64)
    torch.testing.assert_close(y_rev, expected[1], **F64)


def test_backward_half_against_the_reference_with_post_padding():
    """The backward direction reads each sequence from its last real step; Bidirectional forces
    zero outputs at masked steps so both halves are zero on padding."""
    layer = _built(Bidirectional(SimpleRNN(U, return_sequences=True)), seed=3)
    x = torch.randn(B, T, D, dtype=torch.float64)
    out = layer(x, mask=POST).detach().numpy()
    weights = layer.get_weights()
    mask = POST.numpy()
    forward = reference.simple_rnn(x.numpy(), *weights[:3], mask=mask)
    backward = reference.simple_rnn(x.numpy(), *weights[3:], mask=mask, go_backwards=True)
    backward = backward[:, ::-1]  # processing order -> time order
    expected = np.concatenate([forward, backward], -1) * mask[..., None]
    np.testing.assert_allclose(out, expected, **F64)
    # the backward state at time 0 of row 1 saw steps 2, 1, 0 only: padding did not leak in
    only_real = reference.simple_rnn(x.numpy()[1:2, :3], *weights[3:], go_backwards=True)
    np.testing.assert_allclose(out[1, 0, U:], only_real[0, -1], **F64)


def test_last_outputs_with_mask():
    layer = _built(Bidirectional(LSTM(U)), seed=4)
    x = torch.randn(B, T, D, dtype=torch.float64)
    out = layer(x, mask=POST)
    y, y_rev = _by_hand(layer, x, POST)
    torch.testing.assert_close(out, torch.cat([y, y_rev], -1), **F64)
    # row 2 has one real step: forward and backward both saw only x[2, 0]
    single = layer(x[2:, :1])
    torch.testing.assert_close(out[2], single[0], **F64)


def test_return_state_and_initial_state():
    layer = _built(Bidirectional(LSTM(U, return_sequences=True, return_state=True)), seed=5)
    x = torch.randn(B, T, D, dtype=torch.float64)
    states = [torch.randn(B, U, dtype=torch.float64) for _ in range(4)]
    output, fh, fc, bh, bc = layer(x, initial_state=states)
    f_out, f_h, f_c = layer.forward_layer(x, initial_state=states[:2])
    b_out, b_h, b_c = layer.backward_layer(x, initial_state=states[2:])
    torch.testing.assert_close(output, torch.cat([f_out, b_out.flip(1)], -1), **F64)
    for got, want in zip((fh, fc, bh, bc), (f_h, f_c, b_h, b_c)):
        torch.testing.assert_close(got, want, **F64)
    with pytest.raises(ValueError, match="needs 4 initial states"):
        layer(x, initial_state=states[:2])
    none_mode = _built(Bidirectional(GRU(U, return_state=True), merge_mode=None))
    y, y_rev, h_f, h_b = none_mode(x)
    torch.testing.assert_close(y, h_f, **F64)
    torch.testing.assert_close(y_rev, h_b, **F64)


def test_weights_order_counts_and_fresh_weights():
    inner = SimpleRNN(8, return_sequences=True)
    inner(torch.randn(1, 2, 4))
    layer = Bidirectional(inner)
    layer(torch.randn(2, 10, 4))
    weights = layer.get_weights()
    assert [w.shape for w in weights] == [(4, 8), (8, 8), (8,)] * 2
    assert layer.count_params() == 2 * (4 * 8 + 8 * 8 + 8)  # 208, as Keras
    forward = layer.forward_layer.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(weights[:3], forward))
    assert not np.array_equal(weights[0], inner.get_weights()[0])  # Keras: fresh weights
    assert layer.forward_layer.name == "forward_" + inner.name
    assert layer.backward_layer.name == "backward_" + inner.name
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    layer.set_weights([w + 1 for w in weights])
    np.testing.assert_allclose(layer.backward_layer.get_weights()[2], weights[5] + 1)


def test_gradients_reach_both_directions():
    layer = Bidirectional(GRU(U, return_sequences=True))
    layer(torch.randn(2, T, D)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.keras_weights())


def test_custom_backward_layer_is_used_as_given():
    backward = SimpleRNN(U, activation="relu", return_sequences=True, go_backwards=True)
    layer = Bidirectional(SimpleRNN(U, return_sequences=True), backward_layer=backward)
    assert layer.backward_layer is backward
    x = torch.randn(2, T, D)
    out = layer(x)
    torch.testing.assert_close(out[..., U:], backward(x).flip(1))


def test_users_cell_is_copied_with_new_weights():
    layer = Bidirectional(RNN(SimpleRNNCell(U), return_sequences=True))
    layer(torch.randn(2, T, D))
    assert layer.count_params() == 2 * (D * U + U * U + U)


def test_shapes_and_masks():
    layer = Bidirectional(SimpleRNN(8, return_sequences=True))  # seed 003's deep stack
    assert layer.compute_output_shape((None, 10, 4)) == (None, 10, 16)
    assert Bidirectional(SimpleRNN(8), merge_mode="sum").compute_output_shape((None, 10, 4)) == (
        None, 8
    )
    none_mode = Bidirectional(LSTM(8, return_sequences=True, return_state=True), merge_mode=None)
    assert none_mode.compute_output_shape((None, 10, 4)) == [
        (None, 10, 8), (None, 10, 8), (None, 8), (None, 8), (None, 8), (None, 8)
    ]
    with_state = Bidirectional(GRU(8, return_state=True))
    assert with_state.compute_output_shape((2, 10, 4)) == [(2, 16), (2, 8), (2, 8)]
    mask = torch.ones(2, 10, dtype=torch.bool)
    assert layer.compute_mask(None, mask) is mask
    assert Bidirectional(SimpleRNN(8)).compute_mask(None, mask) is None
    assert none_mode.compute_mask(None, mask)[:2] == [mask, mask]
    stack = [Bidirectional(SimpleRNN(8, return_sequences=True)) for _ in range(4)]
    x = torch.randn(2, 10, 4)
    for bidirectional in stack:
        x = bidirectional(x)
    assert tuple(x.shape) == (2, 10, 16)


def test_stateful_reset():
    layer = Bidirectional(SimpleRNN(U, stateful=True))
    x = torch.randn(2, T, D)
    first = layer(x)
    assert not torch.allclose(layer(x), first)
    assert len(layer.states) == 2
    layer.reset_states()
    torch.testing.assert_close(layer(x), first)
    with pytest.raises(AttributeError, match="needs stateful layers"):
        Bidirectional(SimpleRNN(U)).reset_states()


def test_config_round_trip():
    layer = Bidirectional(LSTM(U, return_sequences=True), merge_mode="ave", name="bi")
    config = layer.get_config()
    json.dumps(config)
    assert config["layer"]["class_name"] == "LSTM" and config["merge_mode"] == "ave"
    assert config["backward_layer"]["config"]["go_backwards"] is True
    clone = Bidirectional.from_config(config)
    assert clone.get_config() == config
    x = torch.randn(2, T, D)
    layer(x), clone(x)
    clone.set_weights(layer.get_weights())
    torch.testing.assert_close(clone(x), layer(x))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Bidirectional(SimpleRNN(2), merge_mode="max"), "merge_mode must be one of"),
        (lambda: Bidirectional(torch.nn.Linear(2, 2)), "wraps a recurrent rnnkit layer"),
        (lambda: Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(2)),
         "different go_backwards"),
        (lambda: Bidirectional(SimpleRNN(2, go_backwards=True)), "different go_backwards"),
        (lambda: Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(
            2, go_backwards=True, return_sequences=True)), "same return_sequences"),
        (lambda: Bidirectional(SimpleRNN(2), backward_layer="lstm"), "backward_layer must be"),
    ],
)
def test_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_rank_error():
    with pytest.raises(ValueError, match="3-D input"):
        Bidirectional(SimpleRNN(2))(torch.randn(2, 3))
