"""Keras 3.15.1's keras/src/layers/rnn/lstm_test.py, ported (every test)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import initializers
from rnnkit.layers import LSTM

from ._harness import close, run_layer_test

CONSTANTS = dict(kernel_initializer=initializers.Constant(0.01),
                 recurrent_initializer=initializers.Constant(0.02),
                 bias_initializer=initializers.Constant(0.03))


def test_basics():
    for kwargs in ({"units": 3, "dropout": 0.5},
                   {"units": 3, "dropout": 0.5, "recurrent_dropout": 0.5}):
        run_layer_test(LSTM, init_kwargs=kwargs, input_shape=(3, 2, 4),
                       call_kwargs={"training": True}, expected_output_shape=(3, 3),
                       expected_num_trainable_weights=3, expected_num_non_trainable_weights=0,
                       supports_masking=True)
    run_layer_test(LSTM, init_kwargs={"units": 3, "return_sequences": True,
                                      "bias_regularizer": "l1", "kernel_regularizer": "l2",
                                      "recurrent_regularizer": "l2"},
                   input_shape=(3, 2, 4), expected_output_shape=(3, 2, 3),
                   expected_num_losses=3, expected_num_trainable_weights=3,
                   expected_num_non_trainable_weights=0, supports_masking=True)


FORWARD = [[0.6288687] * 3, [0.86899155] * 3, [0.9460773] * 3]


@pytest.mark.parametrize("implementation", [1, 2])
def test_correctness(implementation):
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    kw = dict(CONSTANTS, implementation=implementation)
    close(LSTM(3, **kw)(sequence), FORWARD)
    close(LSTM(3, **kw, go_backwards=True)(sequence),
          [[0.35622165] * 3, [0.74789524] * 3, [0.8872726] * 3])
    close(LSTM(3, **kw, unroll=True)(sequence), FORWARD)
    close(LSTM(3, **kw, unit_forget_bias=False)(sequence),
          [[0.57019705] * 3, [0.8661914] * 3, [0.9459622] * 3])
    close(LSTM(3, **kw, use_bias=False)(sequence),
          [[0.54986924] * 3, [0.86226785] * 3, [0.9443936] * 3])


def test_statefulness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = LSTM(4, stateful=True, **CONSTANTS)
    layer(sequence)
    close(layer(sequence), [[0.3124785] * 4, [0.6863672] * 4])
    layer.reset_state()
    layer(sequence)
    close(layer(sequence), [[0.3124785] * 4, [0.6863672] * 4])


def test_pass_initial_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = [np.arange(4).reshape((2, 2)).astype("float32")] * 2
    close(LSTM(2, **CONSTANTS)(sequence, initial_state=initial_state),
          [[0.20574439, 0.3558822], [0.64930826, 0.66276]])
    close(LSTM(2, **CONSTANTS, go_backwards=True)(sequence, initial_state=initial_state),
          [[0.13281618, 0.2790356], [0.5839337, 0.5992567]])


def test_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    close(LSTM(2, **CONSTANTS, unroll=True)(sequence, mask=mask),
          [[0.11755939] * 2, [0.28556206] * 2])
    output = LSTM(2, **CONSTANTS, return_sequences=True)(sequence, mask=mask)
    close(output[0], [[0.01588910] * 2, [0.05552048] * 2, [0.11755939] * 2, [0.11755939] * 2])
    close(output[1], [[0.14185596] * 2] + [[0.28556206] * 2] * 3)
    output = LSTM(2, **CONSTANTS, return_sequences=True, zero_output_for_mask=True)(
        sequence, mask=mask)
    close(output[0], [[0.01588910] * 2, [0.05552048] * 2, [0.11755939] * 2, [0.0] * 2])
    close(output[1], [[0.14185596] * 2, [0.28556206] * 2, [0.0] * 2, [0.0] * 2])
    backwards_mask = np.array([[False, True, True, True], [False, False, True, True]])
    close(LSTM(2, **CONSTANTS, go_backwards=True)(sequence, mask=backwards_mask),
          [[0.15341201] * 2, [0.3844719] * 2])
