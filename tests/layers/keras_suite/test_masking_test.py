"""Keras 3.15.1's keras/src/layers/core/masking_test.py, ported (every test; the model file is
rnnkit's own format)."""

from __future__ import annotations

import numpy as np
import torch

import rnnkit as rk
from rnnkit.layers import LSTM, Layer, Masking

from ._harness import close, run_layer_test


def test_masking_basics():
    run_layer_test(Masking, init_kwargs={"mask_value": 0.0}, input_shape=(2, 3, 2),
                   expected_output_shape=(2, 3, 2), expected_num_trainable_weights=0,
                   expected_num_non_trainable_weights=0, expected_num_seed_generators=0,
                   expected_num_losses=0, supports_masking=True,
                   assert_built_after_instantiation=True)


def test_masking_correctness():
    x = np.array([[[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]], [[2.0, 2.0], [0.0, 0.0], [2.0, 1.0]]])
    expected_mask = [[False, True, False], [True, False, True]]
    close(Masking(mask_value=0.0).compute_mask(torch.tensor(x)), expected_mask)
    seen = []

    class TestLayer(Layer):
        supports_masking = True

        def call(self, inputs, mask=None):
            seen.append(mask)
            return inputs

    rk.Sequential([Masking(mask_value=0.0), TestLayer()])(x)
    assert seen[0] is not None
    close(seen[0], expected_mask)


def test_masking_with_tensor(tmp_path):
    model = rk.Sequential([Masking(mask_value=0.0), LSTM(1)])
    x = np.array([[[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 1.0], [0.0, 0.0]]])
    out = model.eval()(x)
    model.save(tmp_path / "model.rnnkit")
    reloaded = rk.load_model(tmp_path / "model.rnnkit")
    torch.testing.assert_close(reloaded.eval()(x), out)
