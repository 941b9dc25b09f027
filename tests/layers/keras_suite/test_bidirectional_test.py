"""Keras 3.15.1's keras/src/layers/rnn/bidirectional_test.py, ported. Not ported (Keras
internals): the four fused-LSTM/GRU eligibility and fused-vs-unfused tests (Keras'
_can_attempt_fused_* machinery) and the torch-backend cuDNN dispatch spy."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import initializers
from rnnkit.layers import GRU, LSTM, Bidirectional, SimpleRNN

from ._harness import close, run_layer_test

CONSTANTS = dict(kernel_initializer=initializers.Constant(0.01),
                 recurrent_initializer=initializers.Constant(0.02),
                 bias_initializer=initializers.Constant(0.03))


def test_basics():
    run_layer_test(Bidirectional, init_kwargs={"layer": SimpleRNN(4)}, input_shape=(3, 2, 4),
                   expected_output_shape=(3, 8), expected_num_trainable_weights=6,
                   expected_num_non_trainable_weights=0, supports_masking=True)
    run_layer_test(Bidirectional, init_kwargs={
        "layer": SimpleRNN(4), "backward_layer": SimpleRNN(4, go_backwards=True),
        "merge_mode": "sum"}, input_shape=(3, 2, 4), expected_output_shape=(3, 4),
        expected_num_trainable_weights=6, expected_num_non_trainable_weights=0,
        supports_masking=True)


def test_correctness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    forward = SimpleRNN(2, **CONSTANTS)
    close(Bidirectional(layer=forward)(sequence),
          [[0.39687276, 0.39687276, 0.10004295, 0.10004295],
           [0.7237238, 0.7237238, 0.53391594, 0.53391594]])
    close(Bidirectional(layer=forward, merge_mode="ave")(sequence),
          [[0.24845785] * 2, [0.6288199] * 2])
    output1, output2 = Bidirectional(layer=forward, merge_mode=None)(sequence)
    close(output1, [[0.39687276] * 2, [0.7237238] * 2])
    close(output2, [[0.10004295] * 2, [0.53391594] * 2])
    backward = SimpleRNN(2, kernel_initializer=initializers.Constant(0.03),
                         recurrent_initializer=initializers.Constant(0.02),
                         bias_initializer=initializers.Constant(0.01), go_backwards=True)
    close(Bidirectional(layer=forward, backward_layer=backward, merge_mode="mul")(sequence),
          [[0.08374989] * 2, [0.6740834] * 2])
    gru = GRU(2, **CONSTANTS, return_sequences=True)
    close(Bidirectional(layer=gru, merge_mode="sum")(sequence),
          [[[0.20937867] * 2, [0.34462988] * 2, [0.40290534] * 2],
           [[0.59829646] * 2, [0.6734641] * 2, [0.6479671] * 2]])


def test_statefulness():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    layer = Bidirectional(layer=LSTM(2, **CONSTANTS, stateful=True))
    expected = [[0.26234663, 0.26234663, 0.16959146, 0.16959146],
                [0.6137073, 0.6137073, 0.5381646, 0.5381646]]
    layer(sequence)
    close(layer(sequence), expected)
    layer.reset_state()
    layer(sequence)
    close(layer(sequence), expected)


def test_pass_initial_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    base = np.arange(4).reshape((2, 2)).astype("float32")
    initial_state = [base * 1, base * 2, base * 3, base * 4]
    close(Bidirectional(layer=LSTM(2, **CONSTANTS))(sequence, initial_state=initial_state),
          [[0.20794602, 0.4577124, 0.14046375, 0.48191673],
           [0.6682636, 0.6711909, 0.60943645, 0.60950446]])


def test_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    close(Bidirectional(layer=GRU(2, **CONSTANTS))(sequence, mask=mask),
          [[0.19393763, 0.19393763, 0.11669192, 0.11669192],
           [0.30818558, 0.30818558, 0.28380975, 0.28380975]])


def test_return_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    output, h1, c1, h2, c2 = Bidirectional(layer=LSTM(2, **CONSTANTS, return_state=True))(
        sequence)
    close(output, [[0.1990008, 0.1990008, 0.12659755, 0.12659755],
                   [0.52335435, 0.52335435, 0.44717982, 0.44717982]])
    close(h1, [[0.1990008] * 2, [0.52335435] * 2])
    close(c1, [[0.35567185] * 2, [1.0492687] * 2])
    close(h2, [[0.12659755] * 2, [0.44717982] * 2])
    close(c2, [[0.2501858] * 2, [0.941473] * 2])


def test_output_shape():
    x = np.array([[[101, 202], [303, 404]]], dtype=np.float32)
    for merge_mode in ["ave", "concat", "mul", "sum", None]:
        layer = Bidirectional(LSTM(2, return_state=True), merge_mode=merge_mode)
        for out, shape in zip(layer(x), layer.compute_output_shape(x.shape)):
            assert tuple(out.shape) == tuple(shape)
    for merge_mode in ["concat", "ave", "mul", "sum"]:
        layer = Bidirectional(LSTM(2), merge_mode=merge_mode)
        assert tuple(layer(x).shape) == tuple(layer.compute_output_shape(x.shape))
    layer = Bidirectional(LSTM(2), merge_mode=None)
    for out, shape in zip(layer(x), layer.compute_output_shape(x.shape)):
        assert tuple(out.shape) == tuple(shape)


@pytest.mark.parametrize("rnn_class", [GRU, LSTM])
@pytest.mark.parametrize("use_cudnn", [True, False, "auto"])
def test_keeps_use_cudnn(rnn_class, use_cudnn):
    bidi = Bidirectional(rnn_class(1, use_cudnn=use_cudnn))
    assert bidi.forward_layer.use_cudnn == use_cudnn
    assert bidi.backward_layer.use_cudnn == use_cudnn
