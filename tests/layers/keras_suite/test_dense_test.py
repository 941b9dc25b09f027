"""Keras 3.15.1's keras/src/layers/core/dense_test.py, ported: the tests of what rnnkit's
Dense has. Not ported (features rnnkit does not have): sparse inputs, LoRA (7 tests),
quantization int8/int4/float8/GPTQ/AWQ (30 tests), legacy quantized variable loading.
``test_dense_errors`` calls Keras' symbolic KerasTensor; here two eager calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import constraints
from rnnkit.layers import Dense

from ._harness import close, run_layer_test

KERNEL = np.array([[1.0, -2.0], [3.0, -4.0]])
INPUTS = np.array([[-1.0, 2.0]])


def test_dense_basics():
    run_layer_test(Dense, init_kwargs={"units": 4, "activation": "relu",
                                       "kernel_initializer": "random_uniform",
                                       "bias_initializer": "ones", "use_bias": False},
                   input_shape=(2, 3), expected_output_shape=(2, 4),
                   expected_num_trainable_weights=1, expected_num_non_trainable_weights=0,
                   expected_num_seed_generators=0, expected_num_losses=0,
                   supports_masking=True)
    run_layer_test(Dense, init_kwargs={"units": 5, "activation": "sigmoid",
                                       "kernel_regularizer": "l2", "bias_regularizer": "l2"},
                   input_shape=(2, 3, 4), expected_output_shape=(2, 3, 5),
                   expected_num_trainable_weights=2, expected_num_non_trainable_weights=0,
                   expected_num_seed_generators=0, expected_num_losses=2,
                   supports_masking=True)


@pytest.mark.parametrize("units", [0, -3, 2.5, None, "64"])
def test_dense_invalid_units_raises(units):
    with pytest.raises(ValueError, match="positive integer"):
        Dense(units)


def test_dense_correctness():
    layer = Dense(units=2, activation="relu")
    layer.build((1, 2))
    layer.set_weights([KERNEL, np.array([5.0, -6.0])])
    close(layer(INPUTS), [[10.0, 0.0]])
    layer = Dense(units=2, use_bias=False)
    layer.build((1, 2))
    layer.set_weights([KERNEL])
    assert layer.bias is None
    close(layer(INPUTS), [[5.0, -6.0]])


def test_dense_errors():
    layer = Dense(units=2, activation="relu")
    layer(torch.ones(1, 2))
    with pytest.raises(ValueError, match="features"):
        layer(torch.ones(1, 3))


def _linear(**kwargs):
    layer = Dense(units=2, use_bias=False, **kwargs)
    layer.build((1, 2))
    layer.set_weights([KERNEL])
    return layer


def test_dense_no_activation():
    layer = _linear(activation=None)
    assert layer.bias is None
    close(layer(INPUTS), [[5.0, -6.0]])


def test_dense_without_activation_set():
    layer = _linear()
    layer.activation = None
    assert layer.bias is None
    close(layer(INPUTS), [[5.0, -6.0]])


def test_dense_with_activation():
    close(_linear(activation="relu")(INPUTS), [[5.0, 0.0]])


def test_dense_constraints():
    layer = Dense(units=2, kernel_constraint="non_neg")
    layer.build((None, 2))
    assert isinstance(layer.kernel.constraint, constraints.NonNeg)
    layer = Dense(units=2, bias_constraint="non_neg")
    layer.build((None, 2))
    assert isinstance(layer.bias.constraint, constraints.NonNeg)
