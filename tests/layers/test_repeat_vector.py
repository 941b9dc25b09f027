"""RepeatVector: (B, D) -> (B, n, D), gradients sum over the copies, config, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import RepeatVector


def test_repeats_the_vector_n_times():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = RepeatVector(4)(x)
    assert tuple(out.shape) == (2, 4, 3)
    np.testing.assert_array_equal(out.numpy(), np.repeat(x[:, None], 4, axis=1))
    assert RepeatVector(4).compute_output_shape((None, 3)) == (None, 4, 3)


def test_gradient_sums_over_the_copies():
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    RepeatVector(5)(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 5.0))


def test_config_round_trip():
    layer = RepeatVector(7, name="rep")
    again = RepeatVector.from_config(layer.get_config())
    assert again.n == 7 and again.get_config() == layer.get_config()


@pytest.mark.parametrize("n", [0, -2])
def test_bad_n(n):
    with pytest.raises(ValueError, match="positive integer"):
        RepeatVector(n)


@pytest.mark.parametrize("n", [1.5, True, "3"])
def test_n_must_be_an_integer(n):  # a TypeError, as Keras 3.15
    with pytest.raises(TypeError, match="integer value for `n`"):
        RepeatVector(n)


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"\(batch, features\), got shape \(2, 3, 4\)"):
        RepeatVector(2)(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="batch, features"):
        RepeatVector(2).compute_output_shape((None, 3, 4))
