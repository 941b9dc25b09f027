"""rnnkit.reference: the NumPy oracle, checked against the seed's loop, hand-worked numbers,
finite differences and (the other way round) the PyTorch kernels. Everything is float64, so
the tolerances are float64's: 1e-12 between implementations, 1e-6 against finite differences.
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnkit import _kernels, reference
from rnnkit.reference import gru, lstm, simple_rnn, simple_rnn_backward

LN3 = np.log(3.0)  # sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4, sigmoid(0) = 1/2
CELLS = ("simple_rnn", "gru", "lstm")
GATES = {"simple_rnn": 1, "gru": 3, "lstm": 4}


def _weights(cell: str, features: int, units: int, rng: np.random.Generator) -> dict:
    gates = GATES[cell]
    bias_shape = (2, 3 * units) if cell == "gru" else (gates * units,)
    return {
        "kernel": rng.normal(0, 0.6, (features, gates * units)),
        "recurrent_kernel": rng.normal(0, 0.6, (units, gates * units)),
        "bias": rng.normal(0, 0.3, bias_shape),
    }


def _hidden(cell: str, x, weights: dict, h0=None, **kwargs) -> np.ndarray:
    """The hidden states of any of the three recurrences."""
    if cell == "simple_rnn":
        return simple_rnn(x, **weights, h0=h0, **kwargs)
    if cell == "gru":
        return gru(x, **weights, h0=h0, **kwargs)
    return lstm(x, **weights, h0=h0, **kwargs)[0]


# --- the seed's "Python RNN" -----------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.2])  # 1.0 is the seed; 0.2 keeps tanh off saturation
def test_reproduces_the_seeds_python_rnn(scale: float) -> None:
    rng = np.random.default_rng(3)
    timesteps, input_dim, hidden_size = 10, 4, 8
    inputs = rng.random((timesteps, input_dim))
    hidden_state_t = np.zeros((hidden_size,))
    Wx = scale * rng.random((hidden_size, input_dim))
    Wh = scale * rng.random((hidden_size, hidden_size))
    b = scale * rng.random((hidden_size,))

    total_hidden_states = []
    for input_t in inputs:
        output_t = np.tanh(np.dot(Wx, input_t) + np.dot(Wh, hidden_state_t) + b)
        total_hidden_states.append(list(output_t))
        hidden_state_t = output_t
    total_hidden_states = np.stack(total_hidden_states, axis=0)

    ours = simple_rnn(inputs, Wx.T, Wh.T, b)  # column-vector W x  ==  row-vector x W^T
    assert ours.shape == (timesteps, hidden_size)
    np.testing.assert_allclose(ours, total_hidden_states, rtol=1e-13, atol=0)


# --- hand-worked cases: 1 unit, 2 steps -------------------------------------------------------


def test_simple_rnn_by_hand() -> None:
    # linear, kernel 0.5, recurrent 2, bias 0.25, x = 1, 2:
    #   h1 = 0.5*1 + 2*0 + 0.25 = 0.75;  h2 = 0.5*2 + 2*0.75 + 0.25 = 2.75
    x = np.array([[1.0], [2.0]])
    out = simple_rnn(x, [[0.5]], [[2.0]], [0.25], activation="linear")
    np.testing.assert_array_equal(out[:, 0], [0.75, 2.75])
    # tanh, kernel 0.5, recurrent -1, no bias:
    #   h1 = tanh(0.5) = 0.46211715726;  h2 = tanh(1 - h1) = tanh(0.53788284274) = 0.49138368521
    out = simple_rnn(x, [[0.5]], [[-1.0]])
    np.testing.assert_allclose(out[:, 0], [0.46211715726000974, 0.4913836852061289], rtol=1e-14)
    # relu and sigmoid of the same linear pre-activations (0.75, then 1 + 2*h1 + 0.25)
    np.testing.assert_allclose(
        simple_rnn(x, [[0.5]], [[2.0]], [0.25], activation="relu")[:, 0], [0.75, 2.75]
    )
    s1 = 1 / (1 + np.exp(-0.75))
    s2 = 1 / (1 + np.exp(-(1.25 + 2 * s1)))
    np.testing.assert_allclose(
        simple_rnn(x, [[0.5]], [[2.0]], [0.25], activation="sigmoid")[:, 0], [s1, s2], rtol=1e-14
    )


def test_gru_by_hand() -> None:
    # Gate blocks z, r, h. Input bias b_z = ln 3 makes z = 3/4, r = sigmoid(0) = 1/2; K_h = 1,
    # R_h = 2, recurrent bias rb_h = 1; x = 1, 0.5; h0 = 0. reset_after=True:
    #   hh1 = tanh(1 + r*(2*0 + 1)) = tanh(1.5);     h1 = z*0 + (1-z)*hh1 = 0.25*tanh(1.5)
    #   hh2 = tanh(0.5 + r*(2*h1 + 1)) = tanh(1 + h1);  h2 = 0.75*h1 + 0.25*tanh(1 + h1)
    # = 0.22628706341, 0.38009004159. Swapping z and r would give 0.5*tanh(1.5) for h1.
    kernel = [[0.0, 0.0, 1.0]]
    recurrent = [[0.0, 0.0, 2.0]]
    bias = [[LN3, 0.0, 0.0], [0.0, 0.0, 1.0]]
    out = gru(np.array([[1.0], [0.5]]), kernel, recurrent, bias)
    np.testing.assert_allclose(out[:, 0], [0.22628706341121663, 0.3800900415901609], rtol=1e-14)


def test_gru_reset_after_by_hand() -> None:
    # 2 units, 1 step, x = 0, h0 = (1, 0); z = 1/2 for both units, R_r's first row (0, ln 3) makes
    # r = (1/2, 3/4); R_h's first row is (1, 1):
    #   reset_after=True:  hh = tanh(r * (h0 R_h)) = tanh((0.5, 0.75))
    #   reset_after=False: hh = tanh((r * h0) R_h) = tanh((0.5, 0.5))
    #   h1 = 0.5*h0 + 0.5*hh
    recurrent = np.zeros((2, 6))
    recurrent[0, 3] = LN3  # R_r[0, 1]
    recurrent[0, 4:6] = 1.0  # R_h[0, :]
    x, h0 = np.zeros((1, 1)), np.array([1.0, 0.0])
    after = gru(x, np.zeros((1, 6)), recurrent, h0=h0, reset_after=True)[0]
    before = gru(x, np.zeros((1, 6)), recurrent, np.zeros(6), h0=h0, reset_after=False)[0]
    np.testing.assert_allclose(after, [0.5 + 0.5 * np.tanh(0.5), 0.5 * np.tanh(0.75)], rtol=1e-14)
    np.testing.assert_allclose(before, [0.5 + 0.5 * np.tanh(0.5), 0.5 * np.tanh(0.5)], rtol=1e-14)


def test_lstm_by_hand() -> None:
    # Gate blocks i, f, c, o; biases (0, ln 3, 0, -ln 3) make i = 1/2, f = 3/4, o = 1/4;
    # K_c = R_c = 1; x = 1, 2; h0 = 0, c0 = 1:
    #   c1 = 0.75*1 + 0.5*tanh(1) = 1.13079707798    h1 = 0.25*tanh(c1) = 0.20282297099
    #   c2 = 0.75*c1 + 0.5*tanh(2 + h1) = 1.33603683343    h2 = 0.25*tanh(c2) = 0.21767926233
    h, c = lstm(
        np.array([[1.0], [2.0]]),
        [[0.0, 0.0, 1.0, 0.0]],
        [[0.0, 0.0, 1.0, 0.0]],
        [0.0, LN3, 0.0, -LN3],
        h0=[0.0],
        c0=[1.0],
    )
    np.testing.assert_allclose(c[:, 0], [1.1307970779778824, 1.3360368334300807], rtol=1e-14)
    np.testing.assert_allclose(h[:, 0], [0.20282297098910915, 0.21767926233409224], rtol=1e-14)


# --- masks, direction, shapes -----------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_masks_hold_the_state_and_go_backwards_reverses(cell: str) -> None:
    rng = np.random.default_rng(1)
    batch, steps, features, units = 3, 6, 2, 4
    x = rng.normal(size=(batch, steps, features))
    h0 = rng.normal(size=(batch, units))
    w = _weights(cell, features, units, rng)
    # go_backwards is the forward pass over reversed time, states in processing order
    np.testing.assert_array_equal(
        _hidden(cell, x, w, h0, go_backwards=True), _hidden(cell, x[:, ::-1], w, h0)
    )
    # a prefix mask is the unpadded sequence, then its last state held (forward); the held
    # initial state, then the unpadded sequence run backwards (go_backwards)
    lengths = [6, 2, 0]
    mask = np.arange(steps) < np.array(lengths)[:, None]
    fwd = _hidden(cell, x, w, h0, mask=mask)
    bwd = _hidden(cell, x, w, h0, mask=mask, go_backwards=True)
    for b, n in enumerate(lengths):
        alone = _hidden(cell, x[b, :n], w, h0[b])
        alone_bwd = _hidden(cell, x[b, :n], w, h0[b], go_backwards=True)
        last = alone[-1] if n else h0[b]
        np.testing.assert_allclose(fwd[b], np.vstack([alone, np.tile(last, (steps - n, 1))]))
        np.testing.assert_allclose(bwd[b], np.vstack([np.tile(h0[b], (steps - n, 1)), alone_bwd]))
    # a hole repeats the previous state
    holes = np.ones((batch, steps), bool)
    holes[0, [0, 3]] = False
    out = _hidden(cell, x, w, h0, mask=holes)
    np.testing.assert_array_equal(out[0, 0], h0[0])
    np.testing.assert_array_equal(out[0, 3], out[0, 2])
    assert not np.allclose(out[0, 4], out[0, 3])


@pytest.mark.parametrize("cell", CELLS)
def test_single_sequence_and_dtype(cell: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 3))
    h0 = rng.normal(size=(2, 4))
    w = _weights(cell, 3, 4, rng)
    mask = rng.random((2, 5)) > 0.3
    batched = _hidden(cell, x, w, h0, mask=mask, go_backwards=True)
    single = _hidden(cell, x[1], w, h0[1], mask=mask[1], go_backwards=True)
    assert single.shape == (5, 4)
    np.testing.assert_allclose(single, batched[1], rtol=1e-13, atol=1e-15)
    out32 = _hidden(cell, x.astype(np.float32), w)
    assert out32.dtype == np.float64


def test_docstring_examples_run() -> None:
    result = doctest.testmod(reference)
    assert result.attempted >= 1 and result.failed == 0


def test_imports_no_torch() -> None:
    code = "import sys, rnnkit.reference; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- simple_rnn_backward vs central differences -----------------------------------------------


def _numeric_gradients(loss, params: dict, eps: float = 1e-6) -> dict:
    grads = {}
    for name, value in params.items():
        grads[name] = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            old = value[index]
            value[index] = old + eps
            up = loss()
            value[index] = old - eps
            down = loss()
            value[index] = old
            grads[name][index] = (up - down) / (2 * eps)
    return grads


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("masked_backwards", [False, True])
def test_simple_rnn_backward_matches_finite_differences(
    activation: str, with_h0: bool, masked_backwards: bool
) -> None:
    rng = np.random.default_rng(4)
    batch, steps, features, units = 2, 4, 3, 3
    params = {"x": rng.normal(size=(batch, steps, features)), **_weights("simple_rnn", 3, 3, rng)}
    params["h0"] = rng.normal(size=(batch, units)) if with_h0 else np.zeros((batch, units))
    options = {"activation": activation}
    if masked_backwards:
        options.update(mask=np.array([[1, 0, 1, 1], [1, 1, 0, 0]], bool), go_backwards=True)
    d_states = rng.normal(size=(batch, steps, units))

    def loss() -> float:
        return float(np.sum(d_states * simple_rnn(**params, **options)))

    h0 = params["h0"] if with_h0 else None
    states = simple_rnn(**{**params, "h0": h0}, **options)
    args = (params["x"], params["kernel"], params["recurrent_kernel"], params["bias"], h0)
    grads = simple_rnn_backward(*args, states, d_states, **options)
    numeric = _numeric_gradients(loss, params)
    assert set(grads) == set(numeric)
    for name in grads:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-6, atol=1e-9, err_msg=name)


def test_simple_rnn_backward_without_bias_and_single_sequence() -> None:
    rng = np.random.default_rng(5)
    x, h0, d = rng.normal(size=(4, 2)), rng.normal(size=3), rng.normal(size=(4, 3))
    w = _weights("simple_rnn", 2, 3, rng)
    one = simple_rnn_backward(x, w["kernel"], w["recurrent_kernel"], None, h0,
                              simple_rnn(x, w["kernel"], w["recurrent_kernel"], h0=h0), d)
    many = simple_rnn_backward(x[None], w["kernel"], w["recurrent_kernel"], None, h0[None],
                               simple_rnn(x[None], w["kernel"], w["recurrent_kernel"], h0=h0[None]),
                               d[None])  # fmt: skip
    assert one["bias"] is None and one["x"].shape == (4, 2) and one["h0"].shape == (3,)
    for name in ("x", "h0"):
        np.testing.assert_allclose(one[name], many[name][0], rtol=1e-13, atol=1e-15)
    for name in ("kernel", "recurrent_kernel"):
        np.testing.assert_allclose(one[name], many[name], rtol=1e-13, atol=1e-15)


# --- agreement with the PyTorch kernels -------------------------------------------------------


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _torch_weights(cell: str, w: dict) -> tuple[torch.Tensor, ...]:
    """Keras layout to torch.nn's: transposed; GRU blocks z, r, h -> r, z, n; biases b_ih, b_hh."""
    kernel, recurrent, bias = w["kernel"], w["recurrent_kernel"], w["bias"]
    if cell != "gru":  # SimpleRNN's one block and LSTM's i, f, c, o are torch's order already
        return _t(kernel.T), _t(recurrent.T), _t(bias), _t(np.zeros_like(bias))
    units = recurrent.shape[0]

    def rzn(m: np.ndarray) -> np.ndarray:
        return np.concatenate([m[..., units : 2 * units], m[..., :units], m[..., 2 * units :]], -1)

    return _t(rzn(kernel).T), _t(rzn(recurrent).T), _t(rzn(bias[0])), _t(rzn(bias[1]))


def _masks(kind: str, batch: int, steps: int, rng: np.random.Generator) -> np.ndarray | None:
    if kind == "prefix":
        return np.arange(steps) < np.array([steps, 3, 1, 0])[:, None]
    if kind == "holes":
        mask = rng.random((batch, steps)) > 0.4
        mask[0, 0] = mask[1, -1] = False
        return mask
    return None


@pytest.mark.parametrize("backend", ["fused", "loop"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "prefix", "holes"])
@pytest.mark.parametrize("cell", CELLS)
def test_agrees_with_the_torch_kernels(
    cell: str, mask_kind: str, go_backwards: bool, backend: str
) -> None:
    rng = np.random.default_rng(6)
    batch, steps, features, units = 4, 5, 3, 4
    x = rng.normal(size=(batch, steps, features))
    h0, c0 = rng.normal(size=(2, batch, units))
    w = _weights(cell, features, units, rng)
    mask = _masks(mask_kind, batch, steps, rng)
    common = {"mask": mask, "go_backwards": go_backwards}
    expected_c = None
    if cell == "simple_rnn":
        expected = simple_rnn(x, **w, h0=h0, **common)
    elif cell == "gru":
        expected = gru(x, **w, h0=h0, **common)
    else:
        expected, expected_c = lstm(x, **w, h0=h0, c0=c0, **common)

    x_t = _t(x.transpose(1, 0, 2))  # the kernels are time major
    mask_t = None if mask is None else _t(mask.T)
    options = {"mask": mask_t, "reverse": go_backwards, "backend": backend}
    if cell == "lstm":
        out, h_n, c_n = _kernels.lstm(x_t, _t(h0), _t(c0), *_torch_weights(cell, w), **options)
        np.testing.assert_allclose(c_n.numpy(), expected_c[:, -1], rtol=1e-12, atol=1e-12)
    else:
        kernel = _kernels.rnn if cell == "simple_rnn" else _kernels.gru
        out, h_n = kernel(x_t, _t(h0), *_torch_weights(cell, w), **options)
    out = out.numpy().transpose(1, 0, 2)  # (B, T, U) in time order
    if go_backwards:
        out = out[:, ::-1]  # to processing order, as Keras and the reference return it
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy(), expected[:, -1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_backward_agrees_with_the_elman_kernel(nonlinearity: str, go_backwards: bool) -> None:
    rng = np.random.default_rng(7)
    batch, steps, features, units = 4, 5, 3, 4
    x, h0 = rng.normal(size=(batch, steps, features)), rng.normal(size=(batch, units))
    w = _weights("simple_rnn", features, units, rng)
    mask = _masks("holes", batch, steps, rng)
    options = {"activation": nonlinearity, "mask": mask, "go_backwards": go_backwards}
    states = simple_rnn(x, **w, h0=h0, **options)
    d_states = rng.normal(size=states.shape)
    expected = simple_rnn_backward(x, *w.values(), h0, states, d_states, **options)

    leaves = [_t(a).requires_grad_() for a in (x.transpose(1, 0, 2), h0)]
    leaves += [_t(a).requires_grad_() for a in (w["kernel"].T, w["recurrent_kernel"].T, w["bias"])]
    out, _ = _kernels.rnn(
        *leaves, nonlinearity=nonlinearity, mask=_t(mask.T), reverse=go_backwards
    )
    d_out = d_states[:, ::-1] if go_backwards else d_states
    out.backward(_t(d_out.transpose(1, 0, 2)))
    d_x, d_h0, d_w_ih, d_w_hh, d_b = (leaf.grad.numpy() for leaf in leaves)
    got = {"x": d_x.transpose(1, 0, 2), "h0": d_h0, "kernel": d_w_ih.T,
           "recurrent_kernel": d_w_hh.T, "bias": d_b}  # fmt: skip
    for name, value in got.items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-12, atol=1e-12, err_msg=name)


# --- validation -------------------------------------------------------------------------------

X, S = np.zeros((2, 5, 3)), np.zeros((2, 5, 4))  # 2 sequences, 5 steps, 3 features; 4 units
K1, R1 = np.zeros((3, 4)), np.zeros((4, 4))  # simple_rnn, 4 units
K3, R3 = np.zeros((3, 6)), np.zeros((2, 6))  # gru, 2 units
K4, R4 = np.zeros((3, 8)), np.zeros((2, 8))  # lstm, 2 units

BAD_ARGUMENTS = [  # (call, what the error must say: the expected shape or values, and the given)
    (lambda: simple_rnn(np.zeros(3), K1, R1),
     "simple_rnn: x must have shape (batch, time, features) or (time, features), got shape (3,)"),
    (lambda: gru(np.zeros((1, 2, 3, 4)), K3, R3), "got shape (1, 2, 3, 4)"),
    (lambda: simple_rnn(X, np.zeros((2, 4)), R1),
     "kernel must have shape (features, 1 * units) with features=3 (the input's last axis), "
     "got shape (2, 4)"),
    (lambda: simple_rnn(X, np.zeros(4), R1), "got shape (4,)"),
    (lambda: gru(X, K1, R1), "gru: kernel must have shape (features, 3 * units)"),
    (lambda: lstm(X, np.zeros((3, 0)), R4), "lstm: kernel must have shape"),
    (lambda: simple_rnn(X, K1, np.zeros((4, 3))),
     "recurrent_kernel must have shape (4, 4), got shape (4, 3)"),
    (lambda: lstm(X, K4, np.zeros((2, 4))),
     "lstm: recurrent_kernel must have shape (2, 8), got shape (2, 4)"),
    (lambda: simple_rnn(X, K1, R1, np.zeros(3)), "bias must have shape (4,), got shape (3,)"),
    (lambda: gru(X, K3, R3, np.zeros(6)),
     "bias (reset_after=True) must have shape (2, 6), got shape (6,)"),
    (lambda: gru(X, K3, R3, np.zeros((2, 6)), reset_after=False),
     "bias (reset_after=False) must have shape (6,), got shape (2, 6)"),
    (lambda: lstm(X, K4, R4, np.zeros(4)), "lstm: bias must have shape (8,), got shape (4,)"),
    (lambda: simple_rnn(X, K1, R1, h0=np.zeros(4)), "h0 must have shape (2, 4), got shape (4,)"),
    (lambda: simple_rnn(X[0], K1, R1, h0=np.zeros((2, 4))),
     "h0 must have shape (4,), got shape (2, 4)"),
    (lambda: lstm(X, K4, R4, c0=np.zeros((3, 2))), "c0 must have shape (2, 2), got shape (3, 2)"),
    (lambda: gru(X, K3, R3, mask=np.ones((5, 2), bool)),
     "mask must have shape (2, 5), got shape (5, 2)"),
    (lambda: simple_rnn(X[0], K1, R1, mask=np.ones((1, 5), bool)),
     "mask must have shape (5,), got shape (1, 5)"),
    (lambda: simple_rnn(X, K1, R1, activation="softmax"),
     "activation must be one of ['linear', 'relu', 'sigmoid', 'tanh'] or a function, "
     "got 'softmax'"),
    (lambda: simple_rnn(X, K1, R1, activation=3), "or a function, got 3"),
    (lambda: simple_rnn_backward(X, K1, R1, None, None, S, S, activation=np.tanh),
     "simple_rnn_backward: activation must be one of ['linear', 'relu', 'sigmoid', 'tanh'], "
     "got a callable"),
    (lambda: simple_rnn_backward(X, K1, R1, None, None, S[:, 1:], S),
     "states must have shape (2, 5, 4), got shape (2, 4, 4)"),
    (lambda: simple_rnn_backward(X[0], K1, R1, None, None, S[0], S),
     "d_states must have shape (5, 4), got shape (2, 5, 4)"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), BAD_ARGUMENTS)
def test_bad_arguments_name_expected_and_given(call, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_callable_activation() -> None:
    x = np.random.default_rng(8).normal(size=(2, 3, 3))
    w = np.full((3, 4), 0.1), np.full((4, 4), 0.2)
    first = np.sin(0.1 * x[:, 0].sum(-1))  # h1 = sin(x_1 @ kernel), the same for every unit
    np.testing.assert_allclose(simple_rnn(x, *w, activation=np.sin)[:, 0], np.tile(first, (4, 1)).T)
    np.testing.assert_array_equal(
        simple_rnn(x, *w, activation=np.sin), simple_rnn(x, *w, activation=lambda a: np.sin(a))
    )
