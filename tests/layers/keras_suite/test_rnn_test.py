"""Keras 3.15.1's keras/src/layers/rnn/rnn_test.py, ported (every test). Its two custom cells
are written with rnnkit's Layer.add_weight and registered with rnnkit.register_serializable
(Keras serialises a layer's constructor arguments by itself; rnnkit needs get_config)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.layers import RNN, Layer

from ._harness import close, run_layer_test


@rk.register_serializable(package="keras_suite")
class OneStateRNNCell(Layer):
    def __init__(self, units, state_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = state_size if state_size else units

    def build(self, input_shape):
        self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")
        self.add_weight(shape=(self.units, self.units), initializer="ones",
                        name="recurrent_kernel")
        super().build(input_shape)

    def call(self, inputs, states):
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]

    def get_config(self):
        size = self.state_size
        return {**super().get_config(), "units": self.units,
                "state_size": list(size) if isinstance(size, (list, tuple)) else size}


@rk.register_serializable(package="keras_suite")
class TwoStatesRNNCell(Layer):
    def __init__(self, units, state_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = state_size if state_size else [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")
        self.add_weight(shape=(self.units, self.units), initializer="ones",
                        name="recurrent_kernel_1")
        self.add_weight(shape=(self.units, self.units), initializer="ones",
                        name="recurrent_kernel_2")
        super().build(input_shape)

    def call(self, inputs, states):
        h = inputs @ self.kernel
        output_1 = h + states[0] @ self.recurrent_kernel_1
        output_2 = h + states[0] @ self.recurrent_kernel_2  # states[0] twice, as in Keras
        return output_1 + output_2, [output_1, output_2]

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "state_size": list(self.state_size)}


@pytest.mark.parametrize("init_kwargs,output_shape,weights", [
    ({"cell": OneStateRNNCell(5, state_size=5)}, (3, 5), 2),
    ({"cell": OneStateRNNCell(5, state_size=[5])}, (3, 5), 2),
    ({"cell": OneStateRNNCell(5, state_size=(5,))}, (3, 5), 2),
    ({"cell": OneStateRNNCell(5), "return_sequences": True}, (3, 2, 5), 2),
    ({"cell": OneStateRNNCell(5), "go_backwards": True, "unroll": True}, (3, 5), 2),
    ({"cell": TwoStatesRNNCell(5, state_size=[5, 5])}, (3, 5), 3),
    ({"cell": TwoStatesRNNCell(5, state_size=(5, 5))}, (3, 5), 3),
    ({"cell": TwoStatesRNNCell(5), "return_sequences": True}, (3, 2, 5), 3),
])
def test_basics(init_kwargs, output_shape, weights):
    cell = init_kwargs["cell"]
    kwargs = {**init_kwargs, "cell": type(cell).from_config(cell.get_config())}

    def make(**config):  # a fresh cell per layer, as Keras' test builds from init_kwargs
        config["cell"] = type(cell).from_config(cell.get_config())
        return RNN(**config)

    make.from_config = RNN.from_config  # type: ignore[attr-defined]
    run_layer_test(make, init_kwargs=kwargs, input_shape=(3, 2, 4),
                   expected_output_shape=output_shape, expected_num_trainable_weights=weights,
                   expected_num_non_trainable_weights=0, expected_num_seed_generators=0,
                   supports_masking=True)


def test_compute_output_shape_single_state():
    shape = (3, 4, 5)
    assert RNN(OneStateRNNCell(8)).compute_output_shape(shape) == (3, 8)
    assert RNN(OneStateRNNCell(8), return_sequences=True).compute_output_shape(shape) == (3, 4, 8)
    out = RNN(OneStateRNNCell(8), return_state=True).compute_output_shape(shape)
    assert out[0] == (3, 8) and out[1] == (3, 8)
    out = RNN(OneStateRNNCell(8), return_sequences=True, return_state=True
              ).compute_output_shape(shape)
    assert out[0] == (3, 4, 8) and out[1] == (3, 8)


def test_compute_output_shape_two_states():
    shape = (3, 4, 5)
    assert RNN(TwoStatesRNNCell(8)).compute_output_shape(shape) == (3, 8)
    assert RNN(TwoStatesRNNCell(8), return_sequences=True).compute_output_shape(shape) == (
        3, 4, 8)
    out = RNN(TwoStatesRNNCell(8), return_state=True).compute_output_shape(shape)
    assert out == [(3, 8), (3, 8), (3, 8)]
    out = RNN(TwoStatesRNNCell(8), return_sequences=True, return_state=True
              ).compute_output_shape(shape)
    assert out == [(3, 4, 8), (3, 8), (3, 8)]


def test_dynamic_shapes():
    shape = (None, None, 3)
    for cell, states in ((OneStateRNNCell, 1), (TwoStatesRNNCell, 2)):
        assert RNN(cell(8)).compute_output_shape(shape) == (None, 8)
        assert RNN(cell(8), return_sequences=True).compute_output_shape(shape) == (None, None, 8)
        out = RNN(cell(8), return_state=True).compute_output_shape(shape)
        assert out == [(None, 8)] * (1 + states)
        out = RNN(cell(8), return_sequences=True, return_state=True).compute_output_shape(shape)
        assert out == [(None, None, 8)] + [(None, 8)] * states


def test_forward_pass_single_state():
    sequence = np.ones((1, 2, 3))
    close(RNN(OneStateRNNCell(2))(sequence), [[9.0, 9.0]])
    close(RNN(OneStateRNNCell(2), return_sequences=True)(sequence), [[[3.0, 3.0], [9.0, 9.0]]])
    output, state = RNN(OneStateRNNCell(2), return_state=True)(sequence)
    close(output, [[9.0, 9.0]])
    close(state, [[9.0, 9.0]])
    output, state = RNN(OneStateRNNCell(2), return_sequences=True, return_state=True)(sequence)
    close(output, [[[3.0, 3.0], [9.0, 9.0]]])
    close(state, [[9.0, 9.0]])


def test_forward_pass_two_states():
    sequence = np.ones((1, 2, 3))
    close(RNN(TwoStatesRNNCell(2))(sequence), [[18.0, 18.0]])
    close(RNN(TwoStatesRNNCell(2), return_sequences=True)(sequence),
          [[[6.0, 6.0], [18.0, 18.0]]])
    output, state1, state2 = RNN(TwoStatesRNNCell(2), return_state=True)(sequence)
    close(output, [[18.0, 18.0]])
    close(state1, [[9.0, 9.0]])
    close(state2, [[9.0, 9.0]])
    output, state1, state2 = RNN(TwoStatesRNNCell(2), return_sequences=True,
                                 return_state=True)(sequence)
    close(output, [[[6.0, 6.0], [18.0, 18.0]]])
    close(state1, [[9.0, 9.0]])
    close(state2, [[9.0, 9.0]])


def test_passing_initial_state_single_state():
    sequence, state = np.ones((2, 3, 2)), np.ones((2, 2))
    close(RNN(OneStateRNNCell(2))(sequence, initial_state=state), [[22.0, 22.0]] * 2)
    output, final = RNN(OneStateRNNCell(2), return_state=True)(sequence, initial_state=state)
    close(output, [[22.0, 22.0]] * 2)
    close(final, [[22.0, 22.0]] * 2)


def test_passing_initial_state_two_states():
    sequence, state = np.ones((2, 3, 2)), [np.ones((2, 2)), np.ones((2, 2))]
    close(RNN(TwoStatesRNNCell(2))(sequence, initial_state=state), [[44.0, 44.0]] * 2)
    output, s1, s2 = RNN(TwoStatesRNNCell(2), return_state=True)(sequence, initial_state=state)
    close(output, [[44.0, 44.0]] * 2)
    close(s1, [[22.0, 22.0]] * 2)
    close(s2, [[22.0, 22.0]] * 2)


def test_statefulness_single_state():
    sequence = np.ones((1, 2, 3))
    layer = RNN(OneStateRNNCell(2), stateful=True)
    layer(sequence)
    close(layer(sequence), [[45.0, 45.0]])
    layer = RNN(OneStateRNNCell(2), stateful=True, return_state=True)
    layer(sequence)
    output, state = layer(sequence)
    close(output, [[45.0, 45.0]])
    close(state, [[45.0, 45.0]])


def test_statefulness_two_states():
    sequence = np.ones((1, 2, 3))
    layer = RNN(TwoStatesRNNCell(2), stateful=True)
    layer(sequence)
    close(layer(sequence), [[90.0, 90.0]])
    layer = RNN(TwoStatesRNNCell(2), stateful=True, return_state=True)
    layer(sequence)
    output, s1, s2 = layer(sequence)
    close(output, [[90.0, 90.0]])
    close(s1, [[45.0, 45.0]])
    close(s2, [[45.0, 45.0]])


def test_go_backwards():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = RNN(OneStateRNNCell(2), go_backwards=True)
    layer(sequence)
    close(layer(sequence), [[202.0, 202.0], [538.0, 538.0]])
    layer = RNN(OneStateRNNCell(2), stateful=True, return_state=True)
    layer(sequence)
    output, state = layer(sequence)
    close(output, [[954.0, 954.0], [3978.0, 3978.0]])
    close(state, [[954.0, 954.0], [3978.0, 3978.0]])


@pytest.mark.parametrize("cell", [TwoStatesRNNCell, OneStateRNNCell])
def test_serialization(cell):
    layer = RNN(cell(2), return_sequences=False)
    config = layer.get_config()
    assert config["cell"]["registered_name"] == f"keras_suite>{cell.__name__}"
    again = RNN.from_config(config)
    assert again.get_config() == config
    x = np.ones((2, 3, 4), np.float32)
    torch.testing.assert_close(again(x), layer(x))  # both cells start at "ones"


def test_stateful_batch_size_mismatch_raises():
    layer = RNN(TwoStatesRNNCell(2), stateful=True)
    model = rk.Sequential([rk.Input(shape=(5, 3), batch_size=4), layer])
    model(torch.rand(4, 5, 3))
    with pytest.raises(ValueError, match="batch size"):
        model(torch.rand(1, 5, 3))


@pytest.mark.parametrize("unroll", [False, True])
def test_masking(unroll):
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    close(RNN(OneStateRNNCell(2), unroll=unroll)(sequence, mask=mask),
          [[57.0, 57.0], [126.0, 126.0]])
    close(RNN(OneStateRNNCell(2), return_sequences=True, unroll=unroll)(sequence, mask=mask),
          [[[3.0, 3.0], [18.0, 18.0], [57.0, 57.0], [57.0, 57.0]],
           [[39.0, 39.0], [126.0, 126.0], [126.0, 126.0], [126.0, 126.0]]])
