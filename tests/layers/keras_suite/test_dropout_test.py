"""Keras 3.15.1's keras/src/layers/regularization/dropout_test.py, ported (every test). The
error tests check the error type and that the message names the argument (rnnkit's wording
is its own)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.layers import Dropout

from ._harness import close, run_layer_test


def test_dropout_basics():
    run_layer_test(Dropout, init_kwargs={"rate": 0.2}, input_shape=(2, 3),
                   call_kwargs={"training": True}, expected_output_shape=(2, 3),
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
                   expected_num_seed_generators=1, expected_num_losses=0,
                   supports_masking=True, assert_built_after_instantiation=True)


def test_dropout_rescaling():
    outputs = Dropout(0.5, seed=1337)(np.ones((20, 500)), training=True).numpy()
    close(np.mean(outputs), 1.0, atol=0.02)
    close(np.max(outputs), 2.0)


@pytest.mark.parametrize("noise_shape", [(None, 1, None), (20, 1, 10)])
def test_dropout_partial_noise_shape(noise_shape):
    outputs = Dropout(0.5, noise_shape=noise_shape)(np.ones((20, 5, 10)), training=True)
    close(outputs[:, 0, :], outputs[:, 1, :].numpy())


@pytest.mark.parametrize("rate", [-0.5, 1.5])
def test_dropout_rate_out_of_range(rate):
    with pytest.raises(ValueError, match="rate"):
        Dropout(rate=rate)


def test_validate_noise_shape():
    assert Dropout(0.5, noise_shape=None).noise_shape is None
    assert Dropout(0.5, noise_shape=(20, 1, 10)).noise_shape == (20, 1, 10)
    assert Dropout(0.5, noise_shape=(None, 1, None)).noise_shape == (None, 1, None)
    cast = Dropout(0.5, noise_shape=[20, 1, 10]).noise_shape
    assert cast == (20, 1, 10) and isinstance(cast, tuple)


@pytest.mark.parametrize("noise_shape", ["Invalid", (20, 1.5, 10), (20, -1, 10), (20, 0, 10)])
def test_validate_noise_shape_errors(noise_shape):
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, noise_shape=noise_shape)
