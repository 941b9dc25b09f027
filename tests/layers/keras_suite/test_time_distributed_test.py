"""Keras 3.15.1's keras/src/layers/rnn/time_distributed_test.py, ported. Not ported:
``test_build`` (it wraps Conv2D, which rnnkit does not have)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import initializers
from rnnkit.layers import Dense, Embedding, Input, Layer, TimeDistributed

from ._harness import close, run_layer_test


def test_basics():
    run_layer_test(TimeDistributed, init_kwargs={"layer": Dense(1, use_bias=False)},
                   input_shape=(3, 2, 4), expected_output_shape=(3, 2, 1),
                   expected_num_trainable_weights=1, expected_num_non_trainable_weights=0,
                   supports_masking=True)


def test_correctness():
    sequence = np.arange(24).reshape((3, 2, 4)).astype("float32")
    layer = TimeDistributed(Dense(1, kernel_initializer=initializers.Constant(0.01),
                                  use_bias=False))
    close(layer(sequence), [[[0.06], [0.22]], [[0.38], [0.53999996]], [[0.7], [0.86]]])


class MaskedDense(Layer):
    supports_masking = True

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.layer = Dense(units, kernel_initializer=initializers.Constant(0.01), use_bias=False)

    def build(self, input_shape):
        self.layer.maybe_build(input_shape)
        super().build(input_shape)

    def call(self, inputs, training=False, mask=None):
        unmasked = self.layer.call(inputs)
        if mask is None:
            return unmasked
        return (unmasked.T * mask.to(inputs.dtype)).T

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def test_masking():
    sequence = np.arange(24).reshape((3, 2, 4)).astype("float32")
    mask = np.array([[False, True], [True, False], [True, True]])
    close(TimeDistributed(MaskedDense(1))(sequence, mask=mask),
          [[[0], [0.22]], [[0.38], [0]], [[0.7], [0.86]]])


def test_with_mask_zero():
    model = rk.Sequential([Input(shape=(20,)), Embedding(input_dim=10, output_dim=5,
                                                         mask_zero=True),
                           TimeDistributed(Dense(units=5, activation="softmax"))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 10, size=(22, 20)).astype(np.int64)  # Keras casts; ids must be whole
    y = rng.integers(1, 2, size=(22, 20))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)


INPUTS = np.zeros((4, 5, 3))


@pytest.mark.parametrize("mask_shape", [(4, 6), (5, 5), (4, 6, 2), (5, 6)])
def test_mask_validation_with_mismatched_shapes(mask_shape):
    td = TimeDistributed(Dense(units=5, activation="softmax"))
    assert tuple(td(INPUTS, mask=np.ones((4, 5), bool)).shape) == (4, 5, 5)
    with pytest.raises(ValueError, match=r"The `mask` passed to the `TimeDistributed` layer "
                                         r"has a shape"):
        td(INPUTS, mask=np.ones(mask_shape, bool))


@pytest.mark.parametrize("mask", [np.ones((4, 5, 1), bool), np.ones((4, 5, 2), bool), None])
def test_mask_validation_with_correct_3d_and_none_masks(mask):
    td = TimeDistributed(Dense(units=5, activation="softmax"))
    assert tuple(td(INPUTS, mask=None if mask is None else torch.tensor(mask)).shape) == (
        4, 5, 5)
