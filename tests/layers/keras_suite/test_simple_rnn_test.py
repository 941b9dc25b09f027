"""Keras 3.15.1's keras/src/layers/rnn/simple_rnn_test.py, ported (every test; golden values as
Keras prints them, float32, rtol/atol 1e-5)."""

from __future__ import annotations

import numpy as np

from rnnkit import initializers
from rnnkit.layers import SimpleRNN

from ._harness import close, run_layer_test

CONSTANTS = dict(kernel_initializer=initializers.Constant(0.01),
                 recurrent_initializer=initializers.Constant(0.02),
                 bias_initializer=initializers.Constant(0.03))


def test_basics():
    run_layer_test(SimpleRNN, init_kwargs={"units": 3, "dropout": 0.5, "recurrent_dropout": 0.5},
                   input_shape=(3, 2, 4), call_kwargs={"training": True},
                   expected_output_shape=(3, 3), expected_num_trainable_weights=3,
                   expected_num_non_trainable_weights=0, expected_num_non_trainable_variables=1,
                   supports_masking=True)
    run_layer_test(SimpleRNN, init_kwargs={"units": 3, "return_sequences": True,
                                           "bias_regularizer": "l1", "kernel_regularizer": "l2",
                                           "recurrent_regularizer": "l2"},
                   input_shape=(3, 2, 4), expected_output_shape=(3, 2, 3),
                   expected_num_losses=3, expected_num_trainable_weights=3,
                   expected_num_non_trainable_weights=0, supports_masking=True)


def test_correctness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    forward = [[0.405432] * 4, [0.73605347] * 4]
    backward = [[0.11144729] * 4, [0.5528889] * 4]
    close(SimpleRNN(4, **CONSTANTS)(sequence), forward)
    close(SimpleRNN(4, **CONSTANTS, unroll=True)(sequence), forward)
    close(SimpleRNN(4, **CONSTANTS, go_backwards=True)(sequence), backward)
    close(SimpleRNN(4, **CONSTANTS, go_backwards=True, unroll=True)(sequence), backward)


def test_statefulness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = SimpleRNN(4, stateful=True, **CONSTANTS)
    layer(sequence)
    close(layer(sequence), [[0.40559256] * 4, [0.7361247] * 4])
    layer.reset_state()
    layer(sequence)
    close(layer(sequence), [[0.40559256] * 4, [0.7361247] * 4])


def test_pass_initial_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = np.arange(8).reshape((2, 4)).astype("float32")
    close(SimpleRNN(4, **CONSTANTS)(sequence, initial_state=initial_state),
          [[0.33621645] * 4, [0.6262637] * 4])
    close(SimpleRNN(4, **CONSTANTS, go_backwards=True)(sequence, initial_state=initial_state),
          [[0.07344437] * 4, [0.43043602] * 4])


def test_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    close(SimpleRNN(4, **CONSTANTS, unroll=True)(sequence, mask=mask),
          [[0.32951632] * 4, [0.61799484] * 4])
    output = SimpleRNN(2, **CONSTANTS, return_sequences=True)(sequence, mask=mask)
    close(output[0], [[0.0599281] * 2, [0.15122814] * 2, [0.15122814] * 2, [0.32394567] * 2])
    close(output[1], [[0.3969304] * 2, [0.3969304] * 2, [0.3969304] * 2, [0.608085] * 2])
    output = SimpleRNN(2, **CONSTANTS, return_sequences=True, zero_output_for_mask=True)(
        sequence, mask=mask)
    close(output[0], [[0.0599281] * 2, [0.15122814] * 2, [0.0] * 2, [0.32394567] * 2])
    close(output[1], [[0.3969304] * 2, [0.0] * 2, [0.0] * 2, [0.608085] * 2])
    close(SimpleRNN(4, **CONSTANTS, go_backwards=True)(sequence, mask=mask),
          [[0.07376196] * 4, [0.43645123] * 4])
