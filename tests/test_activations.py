"""rnnkit.activations against Keras 3's formulas written out in NumPy (float64), against torch
where torch has the same function, and the name/config/serialise rules.
(Keras parity through Dense: tests/layers/test_keras_parity_core.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit import activations

_erf = np.vectorize(math.erf)


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _hard_sigmoid(x):
    return np.clip(x + 3, 0, 6) / 6


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805

# Keras 3's definitions (keras.activations / keras.ops), in NumPy
FORMULAS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "hard_sigmoid": _hard_sigmoid,
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
    "exponential": np.exp,
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "hard_silu": lambda x: x * _hard_sigmoid(x),
    "hard_swish": lambda x: x * _hard_sigmoid(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
}

X = np.concatenate([np.linspace(-7, 7, 57), [-3.0, 0.0, 3.0, 6.0, -1e-3]]).reshape(2, 31)


def test_every_name_has_a_formula():
    assert sorted(FORMULAS) == activations.names()


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_matches_keras_formula_in_float64(name):
    out = activations.get(name)(torch.from_numpy(X))
    assert out.dtype == torch.float64 and out.shape == X.shape
    np.testing.assert_allclose(out.numpy(), FORMULAS[name](X), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_float32_close_to_float64(name):
    out = activations.get(name)(torch.from_numpy(X.astype(np.float32)))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), FORMULAS[name](X), rtol=1e-5, atol=2e-6)


TORCH = {
    "relu": torch.relu, "relu6": torch.nn.functional.relu6, "sigmoid": torch.sigmoid,
    "hard_sigmoid": torch.nn.functional.hardsigmoid, "elu": torch.nn.functional.elu,
    "selu": torch.selu, "softplus": torch.nn.functional.softplus,
    "softsign": torch.nn.functional.softsign, "silu": torch.nn.functional.silu,
    "gelu": torch.nn.functional.gelu, "hard_silu": torch.nn.functional.hardswish,
    "mish": torch.nn.functional.mish,
    "leaky_relu": lambda x: torch.nn.functional.leaky_relu(x, 0.2),
    "softmax": lambda x: torch.softmax(x, -1),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_matches_torch(name):
    x = torch.from_numpy(X)
    torch.testing.assert_close(activations.get(name)(x), TORCH[name](x), rtol=1e-12, atol=1e-14)


def test_keras3_choices_that_differ_from_older_keras():
    x = torch.tensor([-3.0, -2.5, 0.0, 2.5, 3.0], dtype=torch.float64)
    # Keras 2's hard_sigmoid was clip(0.2 x + 0.5); Keras 3 uses relu6(x + 3) / 6
    np.testing.assert_allclose(activations.hard_sigmoid(x).numpy(),
                               [0.0, 1 / 12, 0.5, 11 / 12, 1.0])
    assert activations.leaky_relu(torch.tensor([-1.0])).item() == pytest.approx(-0.2)
    gelu_tanh = torch.nn.functional.gelu(x, approximate="tanh")
    assert not torch.allclose(activations.gelu(x), gelu_tanh, rtol=0, atol=1e-6)  # exact erf


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_is_over_the_last_axis(name):
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    out = activations.get(name)(x)
    probs = out.exp() if name == "log_softmax" else out
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "gelu", "mish", "selu", "softsign",
                                  "hard_silu", "log_softmax"])
def test_gradcheck(name):
    x = torch.tensor([[-2.3, -0.7, 0.4, 1.9]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(activations.get(name), (x,))


def test_get_returns_one_object_per_name():
    assert activations.get("tanh") is activations.get("tanh") is activations.tanh
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.get("silu")
    assert activations.get({"class_name": "function", "config": "relu"}) is activations.relu
    assert activations.get({"config": {"name": "sigmoid"}}) is activations.sigmoid

    def custom(x):
        return x * 3

    assert activations.get(custom) is custom
    assert activations.get(torch.tanh) is torch.tanh


def test_serialize():
    assert activations.serialize(None) == "linear"
    assert activations.serialize("swish") == "silu"
    assert activations.serialize(activations.hard_swish) == "hard_silu"
    for name in activations.names():
        assert activations.get(activations.serialize(name)) is activations.get(name)
        assert activations.deserialize(name) is activations.get(name)
    with pytest.raises(TypeError, match="custom activation"):
        activations.serialize(lambda x: x)


def test_errors():
    with pytest.raises(ValueError, match="Unknown activation 'tanhh'"):
        activations.get("tanhh")
    with pytest.raises(TypeError, match="name, None or a callable"):
        activations.get(3)


def test_a_registered_function_is_found_by_name_and_a_registered_layer_is_not():
    import rnnkit

    @rnnkit.register_serializable(package="test_activations")
    def scaled_tanh_for_registry_test(x):
        return 2 * torch.tanh(x)

    @rnnkit.register_serializable(package="test_activations")
    class NotAnActivationForRegistryTest(rnnkit.layers.Layer):
        pass

    assert activations.get("scaled_tanh_for_registry_test") is scaled_tanh_for_registry_test
    with pytest.raises(ValueError, match="Unknown activation"):
        activations.get("NotAnActivationForRegistryTest")
