"""Keras 3.15.1's keras/src/layers/rnn/gru_test.py, ported. Not ported: the TensorFlow-only
symbolic-batch test and the torch-backend cuDNN dispatch spy (Keras backend internals)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import initializers
from rnnkit.layers import GRU

from ._harness import close, run_layer_test

CONSTANTS = dict(kernel_initializer=initializers.Constant(0.01),
                 recurrent_initializer=initializers.Constant(0.02),
                 bias_initializer=initializers.Constant(0.03))


def test_basics():
    for kwargs in ({"units": 3, "dropout": 0.5},
                   {"units": 3, "dropout": 0.5, "recurrent_dropout": 0.5}):
        run_layer_test(GRU, init_kwargs=kwargs, input_shape=(3, 2, 4),
                       call_kwargs={"training": True}, expected_output_shape=(3, 3),
                       expected_num_trainable_weights=3, expected_num_non_trainable_weights=0,
                       supports_masking=True)
    run_layer_test(GRU, init_kwargs={"units": 3, "return_sequences": True,
                                     "bias_regularizer": "l1", "kernel_regularizer": "l2",
                                     "recurrent_regularizer": "l2"},
                   input_shape=(3, 2, 4), expected_output_shape=(3, 2, 3),
                   expected_num_losses=3, expected_num_trainable_weights=3,
                   expected_num_non_trainable_weights=0, supports_masking=True)


FORWARD = [[0.5217289] * 3, [0.6371659] * 3, [0.39384964] * 3]


@pytest.mark.parametrize("implementation", [1, 2])
def test_correctness(implementation):
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    close(GRU(3, **CONSTANTS, implementation=implementation)(sequence), FORWARD)
    close(GRU(3, **CONSTANTS, go_backwards=True)(sequence),
          [[0.24406259] * 3, [0.611516] * 3, [0.3928808] * 3])
    close(GRU(3, **CONSTANTS, unroll=True)(sequence), FORWARD)
    close(GRU(3, **CONSTANTS, reset_after=False)(sequence),
          [[0.51447755] * 3, [0.6426879] * 3, [0.40208298] * 3])
    close(GRU(3, **CONSTANTS, use_bias=False)(sequence),
          [[0.49988455] * 3, [0.64701194] * 3, [0.4103359] * 3])


def test_statefulness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = GRU(4, stateful=True, **CONSTANTS)
    layer(sequence)
    close(layer(sequence), [[0.29542392] * 4, [0.5885018] * 4])
    layer.reset_state()
    layer(sequence)
    close(layer(sequence), [[0.29542392] * 4, [0.5885018] * 4])


def test_pass_initial_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = np.arange(4).reshape((2, 2)).astype("float32")
    close(GRU(2, **CONSTANTS)(sequence, initial_state=initial_state),
          [[0.23774096, 0.33508456], [0.83659905, 1.0227708]])
    close(GRU(2, **CONSTANTS, go_backwards=True)(sequence, initial_state=initial_state),
          [[0.13486053, 0.23261218], [0.78257304, 0.9691353]])


def test_pass_return_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = np.arange(4).reshape((2, 2)).astype("float32")
    output, state = GRU(2, **CONSTANTS, return_state=True)(sequence, initial_state=initial_state)
    close(output, [[0.23774096, 0.33508456], [0.83659905, 1.0227708]])
    close(output, state.detach().numpy())
    output, state = GRU(2, **CONSTANTS, return_state=True, go_backwards=True)(
        sequence, initial_state=initial_state)
    close(output, [[0.13486053, 0.23261218], [0.78257304, 0.9691353]])
    close(output, state.detach().numpy())


def test_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    close(GRU(2, **CONSTANTS, unroll=True)(sequence, mask=mask),
          [[0.19393763] * 2, [0.30818558] * 2])
    output = GRU(2, **CONSTANTS, return_sequences=True)(sequence, mask=mask)
    close(output[0], [[0.03606692] * 2, [0.09497581] * 2, [0.09497581] * 2, [0.19393763] * 2])
    close(output[1], [[0.16051409] * 2] * 3 + [[0.30818558] * 2])
    output = GRU(2, **CONSTANTS, return_sequences=True, zero_output_for_mask=True)(
        sequence, mask=mask)
    close(output[0], [[0.03606692] * 2, [0.09497581] * 2, [0.0] * 2, [0.19393763] * 2])
    close(output[1], [[0.16051409] * 2, [0.0] * 2, [0.0] * 2, [0.30818558] * 2])
    close(GRU(2, **CONSTANTS, go_backwards=True)(sequence, mask=mask),
          [[0.11669192] * 2, [0.28380975] * 2])


def test_legacy_implementation_argument():
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    config = GRU(3, **CONSTANTS).get_config()
    config["implementation"] = 0  # a legacy argument in a saved config
    close(GRU.from_config(config)(sequence), FORWARD)
