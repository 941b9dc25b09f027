"""``rnnkit.preprocessing.sequence.pad_sequences``: Keras' import path for rnnkit.data's
function (the seeds import it from ``tensorflow.keras.preprocessing.sequence``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import rnnkit
from rnnkit.preprocessing.sequence import pad_sequences


def test_the_facade_is_rnnkit_datas_function():
    assert pad_sequences is rnnkit.data.pad_sequences is rnnkit.preprocessing.sequence.pad_sequences


def test_the_seeds_call():
    # the notebook's many-to-one example: words as character ids, padded and cut at the end
    x = pad_sequences(sequences=[[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12], [1, 2]],
                      maxlen=4, padding="post", truncating="post")
    np.testing.assert_array_equal(x, [[1, 2, 3, 4], [5, 6, 7, 0], [8, 9, 10, 11], [1, 2, 0, 0]])
    assert x.dtype == np.int32
    np.testing.assert_array_equal(pad_sequences([[1, 2, 3], [4]], maxlen=2),
                                  [[2, 3], [0, 4]])  # Keras' defaults: both "pre"


def test_importing_it_imports_no_torch():
    code = "import sys, rnnkit.preprocessing.sequence; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
