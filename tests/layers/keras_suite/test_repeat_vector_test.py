"""Keras 3.15.1's keras/src/layers/reshaping/repeat_vector_test.py, ported (every test; the
symbolic Input calls become compute_output_shape, which is what they check)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.layers import RepeatVector

from ._harness import run_layer_test


def test_repeat_vector():
    inputs = np.random.default_rng(0).random((2, 5)).astype("float32")
    expected = np.repeat(np.reshape(inputs, (2, 1, 5)), 3, axis=1)
    run_layer_test(RepeatVector, init_kwargs={"n": 3}, input_data=inputs,
                   expected_output=expected)


def test_repeat_vector_with_dynamic_batch_size():
    assert RepeatVector(n=3).compute_output_shape((None, 5)) == (None, 3, 5)


def test_repeat_vector_with_dynamic_dimension():
    assert RepeatVector(n=3).compute_output_shape((2, None)) == (2, 3, None)


@pytest.mark.parametrize("n", ["3", 3.5, [3]])
def test_repeat_vector_with_invalid_n(n):
    with pytest.raises(TypeError, match="Expected an integer value for `n`"):
        RepeatVector(n=n)


@pytest.mark.parametrize("n", [0, -3])
def test_repeat_vector_with_non_positive_n(n):
    with pytest.raises(ValueError, match="should be a positive integer"):
        RepeatVector(n=n)
