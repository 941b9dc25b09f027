"""The generic RNN layer: users' cells, Keras' mask semantics on a cell whose output is not its
state, the layer vs stepping its cell by hand, statefulness, shapes, config and every error.

Tolerances: float64 rtol 1e-10 / atol 1e-12; hand-computed small numbers exactly (1e-12).
"""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.layers import GRU, LSTM, RNN, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell

F64 = dict(rtol=1e-10, atol=1e-12)


class BasicRNNCell(torch.nn.Module):
    """The seeds' TensorFlow BasicRNNCell, written by a user in PyTorch: h = tanh([x, h] W + b)."""

    def __init__(self, num_units: int, input_size: int) -> None:
        super().__init__()
        self.state_size = num_units
        self.linear = torch.nn.Linear(input_size + num_units, num_units, dtype=torch.float64)

    def forward(self, inputs, states):
        h = torch.tanh(self.linear(torch.cat([inputs, states[0]], dim=-1)))
        return h, h  # one state, returned as a bare tensor


class Accumulator:
    """A cell that is not a torch module: s += sum(x); output [s, 2s] (output != state)."""

    state_size = [1]
    output_size = 2

    def __init__(self) -> None:
        self.seen_training: list[bool] = []

    def call(self, inputs, states, training=False):
        self.seen_training.append(training)
        s = states[0] + inputs.sum(-1, keepdim=True)
        return torch.cat([s, 2 * s], dim=-1), [s]


def test_users_pytorch_cell_is_the_seeds_dynamic_rnn():
    """Seed 002: BasicRNNCell over 2 steps of 4 samples = the two hand-written steps."""
    x = torch.tensor([[[0, 1, 2], [9, 8, 7]], [[3, 4, 5], [3, 4, 5]],
                      [[6, 7, 8], [6, 5, 4]], [[9, 0, 1], [3, 2, 1]]], dtype=torch.float64) / 10
    cell = BasicRNNCell(5, 3)
    layer = RNN(cell, return_sequences=True, return_state=True)
    outputs, state = layer(x)
    assert tuple(outputs.shape) == (4, 2, 5) and tuple(state.shape) == (4, 5)
    y0 = torch.tanh(cell.linear(torch.cat([x[:, 0], torch.zeros(4, 5, dtype=torch.float64)], -1)))
    y1 = torch.tanh(cell.linear(torch.cat([x[:, 1], y0], -1)))
    torch.testing.assert_close(outputs, torch.stack([y0, y1], 1), **F64)
    torch.testing.assert_close(state, y1, **F64)
    assert layer.count_params() == 8 * 5 + 5
    assert [w.shape for w in layer.get_weights()] == [(5, 8), (5,)]
    outputs.sum().backward()
    assert cell.linear.weight.grad is not None and cell.linear.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="fused kernels cannot run it"):
        RNN(BasicRNNCell(5, 3), backend="fused")(x)


X_STEPS = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]], dtype=torch.float64)


@pytest.mark.parametrize(
    "mask,go_backwards,zero_output,outputs,state",
    [
        ([1, 0, 1, 0], False, False, [1, 1, 4, 4], 4),
        ([0, 1, 0, 1], False, False, [0, 2, 2, 6], 6),  # zero before the first real step
        ([0, 1, 0, 1], False, True, [0, 2, 0, 6], 6),
        ([0, 1, 0, 1], True, False, [4, 4, 6, 6], 6),  # inputs 4,3,2,1 with mask T,F,T,F
        ([0, 0, 0, 0], False, False, [0, 0, 0, 0], 0),
    ],
)
def test_keras_mask_semantics_on_a_cell_whose_output_is_not_its_state(
    mask, go_backwards, zero_output, outputs, state
):
    layer = RNN(Accumulator(), return_sequences=True, return_state=True,
                go_backwards=go_backwards, zero_output_for_mask=zero_output)
    got, final = layer(X_STEPS, mask=torch.tensor([mask], dtype=torch.bool))
    expected = torch.tensor(outputs, dtype=torch.float64)
    torch.testing.assert_close(got[0], torch.stack([expected, 2 * expected], -1), **F64)
    torch.testing.assert_close(final, torch.tensor([[float(state)]], dtype=torch.float64))
    last = RNN(Accumulator(), go_backwards=go_backwards, zero_output_for_mask=zero_output)
    got_last = last(X_STEPS, mask=torch.tensor([mask], dtype=torch.bool))
    torch.testing.assert_close(got_last[0], torch.tensor([outputs[-1], 2.0 * outputs[-1]],
                                                         dtype=torch.float64))


def test_training_flag_reaches_the_cell():
    cell = Accumulator()
    layer = RNN(cell).eval()
    layer(X_STEPS)
    layer(X_STEPS, training=True)
    assert cell.seen_training == [False] * 4 + [True] * 4


@pytest.mark.parametrize("layer_class", [SimpleRNN, GRU, LSTM])
def test_layer_equals_stepping_its_cell_by_hand(layer_class):
    """Flax style: the (fused) layer against a Python loop over its own cell."""
    torch.manual_seed(1)
    layer = layer_class(4, return_sequences=True, return_state=True)
    layer.maybe_build((None, None, 3))
    layer.double()
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(-0.5, 0.5)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    outputs, *final = layer(x)
    states = layer.cell.get_initial_state(batch_size=2)
    steps = []
    for t in range(6):
        y, states = layer.cell(x[:, t], states)
        steps.append(y)
    torch.testing.assert_close(outputs, torch.stack(steps, 1), **F64)
    for got, expected in zip(final, states):
        torch.testing.assert_close(got, expected, **F64)


@pytest.mark.parametrize(
    "cell_class,layer_class", [(SimpleRNNCell, SimpleRNN), (GRUCell, GRU), (LSTMCell, LSTM)]
)
def test_rnn_over_a_builtin_cell_equals_the_layer(cell_class, layer_class):
    layer = layer_class(3, return_sequences=True)
    generic = RNN(cell_class(3), return_sequences=True)
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    layer(x), generic(x)
    generic.set_weights(layer.get_weights())
    torch.testing.assert_close(generic(x, mask=mask), layer(x, mask=mask), rtol=1e-5, atol=1e-6)


def test_unroll_is_accepted_and_changes_nothing():
    layer = SimpleRNN(3, return_sequences=True)
    unrolled = SimpleRNN(3, return_sequences=True, unroll=True)
    x = torch.randn(2, 4, 2)
    layer(x), unrolled(x)
    unrolled.set_weights(layer.get_weights())
    torch.testing.assert_close(unrolled(x), layer(x))


def test_lists_of_ints_are_accepted():
    layer = SimpleRNN(2, return_sequences=True)
    out = layer([[[1, 0, 0, 0], [0, 1, 0, 0]]])
    assert out.dtype == torch.float32 and tuple(out.shape) == (1, 2, 2)


def test_not_trainable_layer_has_no_gradients():
    layer = SimpleRNN(3, trainable=False)
    layer(torch.randn(2, 4, 5))
    assert all(not p.requires_grad for p in layer.parameters())
    assert layer.count_params() == 5 * 3 + 9 + 3


# -- statefulness -----------------------------------------------------------------------------
@pytest.mark.parametrize("layer_class", [SimpleRNN, LSTM])
def test_stateful_continues_across_calls_until_reset(layer_class):
    torch.manual_seed(2)
    x = torch.randn(3, 8, 2)
    whole = layer_class(4, return_sequences=True, return_state=True)
    stateful = layer_class(4, return_sequences=True, return_state=True, stateful=True)
    whole(x), stateful(x[:, :1])
    stateful.set_weights(whole.get_weights())
    stateful.reset_states()
    expected, *expected_states = whole(x)
    first, *_ = stateful(x[:, :5])
    second, *states = stateful(x[:, 5:])
    torch.testing.assert_close(torch.cat([first, second], 1), expected)
    for got, want in zip(states, expected_states):
        torch.testing.assert_close(got, want)
    assert all(not s.requires_grad for s in stateful.states)
    stateful.reset_states()
    torch.testing.assert_close(stateful(x[:, :5])[0], expected[:, :5])
    stateful.reset_state()  # Keras 3's name
    assert all(torch.count_nonzero(s) == 0 for s in stateful.states)


def test_stateful_reset_to_given_values_and_batch_size_is_fixed():
    layer = SimpleRNN(2, stateful=True)
    x = torch.randn(3, 4, 2)
    layer(x)
    h = torch.full((3, 2), 0.5)
    layer.reset_states([h])
    reference = SimpleRNN(2)
    reference(x)
    reference.set_weights(layer.get_weights())
    torch.testing.assert_close(layer(x), reference(x, initial_state=[h]))
    with pytest.raises(ValueError, match="batch of 3 sequences, got a batch of 2"):
        layer(x[:2])
    with pytest.raises(ValueError, match=r"states\[0\] must have shape"):
        layer.reset_states([torch.zeros(2, 2)])
    fixed = SimpleRNN(2, stateful=True, batch_input_shape=(5, None, 2))
    with pytest.raises(ValueError, match="batch of 5 sequences, got a batch of 3"):
        fixed(x)


def test_reset_states_on_a_stateless_layer_is_a_no_op():
    layer = SimpleRNN(2)
    layer.reset_states()
    assert layer.states is None


# -- shapes, masks, config --------------------------------------------------------------------
def test_compute_output_shape_and_mask():
    layer = RNN(Accumulator(), return_sequences=True, return_state=True)
    assert layer.compute_output_shape((None, 7, 3)) == [(None, 7, 2), (None, 1)]
    mask = torch.ones(2, 7, dtype=torch.bool)
    assert layer.compute_mask(None, mask)[0] is mask
    assert layer.compute_mask(None, mask)[1:] == [None]
    assert LSTM(3).compute_mask(None, mask) is None
    assert LSTM(3, return_sequences=True).compute_mask(None, mask) is mask


def test_config_round_trip_with_a_builtin_cell():
    layer = RNN(GRUCell(3, reset_after=False), return_sequences=True, go_backwards=True)
    config = layer.get_config()
    json.dumps(config)
    assert config["cell"]["class_name"] == "GRUCell"
    clone = RNN.from_config(config)
    assert isinstance(clone.cell, GRUCell) and clone.cell.reset_after is False
    assert clone.get_config() == config


def test_a_users_cell_is_written_as_config_and_needs_custom_objects_to_load():
    # as Keras: get_config() writes an unregistered cell; rebuilding it is what needs the class
    config = RNN(BasicRNNCell(2, 2), return_sequences=True).get_config()
    json.dumps(config)
    assert config["cell"] == {"class_name": "BasicRNNCell", "config": {},
                              "module": BasicRNNCell.__module__}
    assert config["return_sequences"] is True
    with pytest.raises(ValueError, match=r"custom_objects=\{'BasicRNNCell': BasicRNNCell\}"):
        RNN.from_config(config)


def test_a_registered_or_builtin_cell_carries_no_module():
    assert "module" not in RNN(GRUCell(3)).get_config()["cell"]


# -- errors -----------------------------------------------------------------------------------
class NoState:
    def call(self, inputs, states):
        return inputs, states


class NoCall:
    state_size = 2


class TwoStatesBack:
    state_size = 2

    def call(self, inputs, states):
        return states[0], [states[0], states[0]]


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: RNN(NoState()), ValueError, "needs a state_size attribute"),
        (lambda: RNN(NoCall()), TypeError, r"must have a call\(inputs, states\)"),
        (lambda: RNN([SimpleRNNCell(2), NoState()]), ValueError, "has no state_size"),
        (lambda: RNN(SimpleRNNCell(2), backend="gpu"), ValueError, "backend must be one of"),
    ],
)
def test_construction_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_call_errors():
    layer = SimpleRNN(2)
    with pytest.raises(ValueError, match=r"3-D input \(batch, time, features\), got shape \(4, 3\)"):
        layer(torch.randn(4, 3))
    layer(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="built for 3 input features, got an input of shape"):
        layer(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="at least one time step"):
        layer(torch.randn(2, 0, 3))
    with pytest.raises(ValueError, match=r"mask shape \(2, 3\) does not match .* \(2, 4\)"):
        layer(torch.randn(2, 4, 3), mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a boolean"):
        layer(torch.randn(2, 4, 3), mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"initial_state\[0\] must have shape \(batch, 2\)"):
        layer(torch.randn(2, 4, 3), initial_state=[torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="returned 2 state"):
        RNN(TwoStatesBack())(torch.randn(1, 2, 2))


@pytest.mark.parametrize("backend", ["compiled", "fused"])
def test_explicit_kernel_backends_match_the_loop(backend):
    """backend="compiled"/"fused" reach that kernel (and use_cudnn=True agrees with both)."""
    from rnnkit._kernels import compiled

    if backend == "compiled" and not compiled.available():
        pytest.skip("the compiled kernels cannot be built here")
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]], dtype=torch.bool)
    for cls in (SimpleRNN, GRU, LSTM):
        torch.manual_seed(0)
        extra = {} if cls is SimpleRNN else {"use_cudnn": True}
        fast = cls(5, return_sequences=True, backend=backend, **extra)
        loop = cls(5, return_sequences=True, backend="loop")
        fast.maybe_build((3, 6, 4))
        loop.maybe_build((3, 6, 4))
        fast.double(), loop.double()
        loop.set_weights(fast.get_weights())
        assert fast.kernel_backend == backend
        torch.testing.assert_close(fast(x, mask=mask), loop(x, mask=mask), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="backend='compiled'.*activation"):
        SimpleRNN(5, activation="sigmoid", backend="compiled")(x.float())


@pytest.mark.parametrize("layer_class", [SimpleRNN, GRU, LSTM])
def test_new_weights_and_dtypes_are_seen_on_the_next_call(layer_class):
    """Layers remember where their first weight lives (a per-call lookup); a parameter that is
    replaced, changed in place or converted to float64 is what the next call uses."""
    torch.manual_seed(0)
    layer = layer_class(3)
    x = torch.randn(2, 4, 5)
    with torch.no_grad():
        before = layer(x)
        layer.cell.kernel = torch.nn.Parameter(torch.zeros_like(layer.cell.kernel))
        replaced = layer(x)
        layer.cell.recurrent_kernel.zero_()
        changed = layer(x)
    assert not torch.allclose(before, replaced)
    assert torch.allclose(changed, layer(torch.zeros_like(x)))  # no input, no recurrence
    layer.double()
    assert layer(x).dtype == torch.float64  # float32 inputs follow the weights' dtype
