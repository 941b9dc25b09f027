"""rnnkit.preprocessing.sequence.pad_sequences against Keras' own, over its options."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import keras
from rnnkit.preprocessing.sequence import pad_sequences

SEQUENCES = [[1, 2, 3, 4, 5], [6], [], [7, 8, 9]]


@pytest.mark.parametrize("maxlen,padding,truncating,value,dtype", list(itertools.product(
    [None, 2, 4, 7], ["pre", "post"], ["pre", "post"], [0.0, -1.0], ["int32", "float32"])))
def test_pad_sequences_matches_keras(maxlen, padding, truncating, value, dtype):
    kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating, value=value,
                  dtype=dtype)
    got, want = pad_sequences(SEQUENCES, **kwargs), keras.utils.pad_sequences(SEQUENCES, **kwargs)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    want = keras.preprocessing.sequence.pad_sequences(SEQUENCES, **kwargs)
    np.testing.assert_array_equal(got, want)
