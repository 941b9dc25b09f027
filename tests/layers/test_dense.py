"""Dense: the math in float64, lazy build from the last axis, NumPy/tensor inputs, masks pass
through, config round trip, errors. (Keras parity: test_keras_parity_core.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import activations
from rnnkit.layers import Dense


def test_lazy_build_from_the_last_axis():
    layer = Dense(3, activation="relu")
    assert not layer.built and layer.kernel is None
    with pytest.raises(ValueError, match="isn't built"):
        layer.count_params()
    out = layer(np.ones((2, 5, 4), dtype=np.float32))  # NumPy in, tensor out
    assert layer.built and tuple(out.shape) == (2, 5, 3)
    assert [w.shape for w in layer.get_weights()] == [(4, 3), (3,)]
    assert layer.count_params() == 4 * 3 + 3
    assert Dense(2, use_bias=False, input_shape=(7,)).built is False  # built by the model
    layer = Dense(2, use_bias=False)
    layer.maybe_build((None, 7))
    assert layer.count_params() == 14 and len(layer.get_weights()) == 1


def test_float64_math_on_every_rank():
    layer = Dense(3, activation="tanh")
    layer.maybe_build((None, 4))
    layer.double()
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(4, 3)), rng.normal(size=3)
    layer.set_weights([kernel, bias])
    for shape in [(4,), (5, 4), (2, 5, 4), (2, 3, 5, 4)]:
        x = rng.normal(size=shape)
        out = layer(torch.from_numpy(x))
        assert out.dtype == torch.float64
        np.testing.assert_allclose(out.detach().numpy(), np.tanh(x @ kernel + bias), rtol=1e-12)


def test_numpy_and_tensor_inputs_agree_and_ints_become_floats():
    layer = Dense(2)
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    a = layer(x)
    b = layer(torch.from_numpy(x.astype(np.float32)))
    c = layer(x.astype(np.float64))  # float64 NumPy data runs in the weights' dtype
    assert a.dtype == b.dtype == c.dtype == torch.float32
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_gradients_reach_kernel_and_bias():
    layer = Dense(2, activation="sigmoid")
    layer(torch.ones(1, 3)).sum().backward()
    assert layer.kernel.grad is not None and layer.bias.grad is not None
    frozen = Dense(2, trainable=False)
    frozen.maybe_build((None, 3))
    assert not any(p.requires_grad for p in frozen.parameters())


def test_mask_passes_through():
    layer = Dense(2)
    mask = torch.tensor([[True, False, True]])
    assert layer.compute_mask(torch.ones(1, 3, 4), mask) is mask
    assert layer.compute_mask(torch.ones(1, 3, 4), None) is None


def test_output_shape():
    assert Dense(5).compute_output_shape((None, 7, 3)) == (None, 7, 5)


@pytest.mark.parametrize("activation", [None, "relu", "softmax", "gelu"])
def test_config_round_trip(activation):
    layer = Dense(4, activation=activation, use_bias=False, kernel_initializer="orthogonal",
                  name="head")
    config = layer.get_config()
    again = Dense.from_config(config)
    assert again.get_config() == config
    assert again.activation is activations.get(activation)
    assert again.name == "head" and again.use_bias is False


def test_config_refuses_a_custom_activation():
    with pytest.raises(TypeError, match="custom activation"):
        Dense(2, activation=lambda x: x * 2).get_config()


def test_errors():
    with pytest.raises(ValueError, match="positive integer"):
        Dense(0)
    with pytest.raises(ValueError, match="positive integer"):
        Dense(2.5)
    with pytest.raises(ValueError, match="Unknown activation 'nope'"):
        Dense(2, activation="nope")
    with pytest.raises(ValueError, match="lora_rank"):
        Dense(2, lora_rank=4)
    with pytest.raises(ValueError, match="Unknown regularizer 'l3'"):
        Dense(2, kernel_regularizer="l3")
    with pytest.raises(TypeError, match="unexpected keyword"):
        Dense(2, unitz=3)
    layer = Dense(2)
    layer(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="4 features on the last axis, got shape \\(1, 5\\)"):
        layer(np.ones((1, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="known last dimension"):
        Dense(2)(torch.tensor(1.0))
    with pytest.raises(ValueError, match="expects 2 weights"):
        layer.set_weights([np.ones((4, 2))])
    with pytest.raises(ValueError, match="shape \\(4, 2\\)"):
        layer.set_weights([np.ones((2, 4)), np.ones(2)])
