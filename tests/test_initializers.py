"""rnnkit.initializers: Keras 3's distributions (bounds, moments, orthogonality), fans, Constant
broadcasting, seeds, names and configs. Statistical checks use large draws and bounds of several
standard errors, so they hold for any seed yet fail for a wrong scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit import initializers as init


@pytest.mark.parametrize("shape,fans", [((3, 5), (3, 5)), ((7,), (7, 7)), ((), (1, 1)),
                                        ((2, 3, 4, 5), (24, 30))])
def test_fans_as_keras(shape, fans):
    assert init.compute_fans(shape) == fans


@pytest.mark.parametrize("shape", [(300, 200), (10, 40)])
def test_glorot_uniform_limit_and_variance(shape):
    w = init.GlorotUniform()(shape, dtype=torch.float64)
    limit = math.sqrt(6 / sum(shape))
    assert w.abs().max() <= limit and w.abs().max() > 0.95 * limit
    n = w.numel()
    var = limit**2 / 3
    # the sample variance of U(-l, l): its standard error is var * sqrt(4/5 / n)
    assert abs(w.var().item() - var) < 6 * var * math.sqrt(0.8 / n)
    assert abs(w.mean().item()) < 6 * math.sqrt(var / n)


@pytest.mark.parametrize("name,scale,mode", [("he_uniform", 2.0, "fan_in"),
                                             ("lecun_uniform", 1.0, "fan_in")])
def test_uniform_variance_scaling_limits(name, scale, mode):
    w = init.get(name)((120, 30), dtype=torch.float64)
    limit = math.sqrt(3 * scale / 120)
    assert w.abs().max() <= limit and w.abs().max() > 0.95 * limit


@pytest.mark.parametrize("name,std", [("glorot_normal", math.sqrt(2 / 500)),
                                      ("he_normal", math.sqrt(2 / 300)),
                                      ("lecun_normal", math.sqrt(1 / 300))])
def test_truncated_normal_variance_scaling(name, std):
    """Keras draws a normal truncated at 2 stddevs, scaled so the result has the target std."""
    w = init.get(name)((300, 200), dtype=torch.float64)
    stddev = std / 0.87962566103423978
    assert w.abs().max() <= 2 * stddev + 1e-12
    assert abs(w.std().item() - std) < 0.03 * std


def test_random_normal_and_uniform_moments():
    w = init.RandomNormal(mean=1.0, stddev=0.5)((400, 250), dtype=torch.float64)
    assert abs(w.mean().item() - 1.0) < 6 * 0.5 / math.sqrt(w.numel())
    assert abs(w.std().item() - 0.5) < 0.01
    u = init.RandomUniform(-0.2, 0.6)((400, 250), dtype=torch.float64)
    assert u.min() >= -0.2 and u.max() <= 0.6 and abs(u.mean().item() - 0.2) < 0.005
    t = init.TruncatedNormal(stddev=0.1)((400, 250), dtype=torch.float64)
    assert t.abs().max() <= 0.2
    assert init.get("uniform")((1000,)).abs().max() <= 0.05  # Embedding's default


@pytest.mark.parametrize("shape", [(8, 8), (5, 20), (20, 5), (4, 16), (3, 4, 6)])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal(shape, gain):
    """(U, 4U), a recurrent kernel's shape, has orthonormal rows; (4U, U) orthonormal columns."""
    w = init.Orthogonal(gain=gain)(shape, dtype=torch.float64)
    assert tuple(w.shape) == shape
    flat = w.reshape(-1, shape[-1])
    rows, cols = flat.shape
    gram = flat @ flat.T if rows < cols else flat.T @ flat
    torch.testing.assert_close(gram, gain**2 * torch.eye(min(rows, cols), dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_orthogonal_in_float32_and_rank_errors():
    w = init.get("orthogonal")((6, 24))
    assert w.dtype == torch.float32
    torch.testing.assert_close(w @ w.T, torch.eye(6), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="rank 2"):
        init.Orthogonal()((5,))


def test_constant_scalar_and_broadcasting():
    torch.testing.assert_close(init.Constant(0.5)((2, 3)), torch.full((2, 3), 0.5))
    row = init.Constant([1.0, 2.0, 3.0])((2, 3), dtype=torch.float64)
    np.testing.assert_array_equal(row.numpy(), [[1, 2, 3], [1, 2, 3]])
    eye = init.Constant(np.eye(4))((4, 4))
    np.testing.assert_array_equal(eye.numpy(), np.eye(4))
    with pytest.raises(ValueError, match=r"shape \(3,\) cannot fill a weight of shape \(2, 4\)"):
        init.Constant([1.0, 2.0, 3.0])((2, 4))


def test_zeros_ones_identity():
    assert init.get("zeros")((2, 3)).abs().sum() == 0
    assert (init.get("ones")((2, 3)) == 1).all()
    np.testing.assert_array_equal(init.Identity(gain=2.0)((2, 3)).numpy(), 2 * np.eye(2, 3))
    with pytest.raises(ValueError, match="2-D"):
        init.Identity()((2, 2, 2))


@pytest.mark.parametrize("name", ["random_normal", "random_uniform", "truncated_normal",
                                  "glorot_uniform", "glorot_normal", "he_uniform",
                                  "he_normal", "lecun_uniform", "lecun_normal", "orthogonal",
                                  "variance_scaling"])
def test_seeded_initializers_repeat_and_unseeded_follow_the_global_seed(name):
    cls = type(init.get(name))
    a, b = cls(seed=3), cls(seed=3)
    torch.testing.assert_close(a((6, 4)), b((6, 4)), rtol=0, atol=0)
    torch.testing.assert_close(a((6, 4)), a((6, 4)), rtol=0, atol=0)  # every call, as Keras
    assert not torch.equal(cls(seed=4)((6, 4)), a((6, 4)))
    torch.manual_seed(11)
    first = cls()((6, 4))
    second = cls()((6, 4))
    assert not torch.equal(first, second)  # the global generator moves on
    torch.manual_seed(11)
    torch.testing.assert_close(cls()((6, 4)), first, rtol=0, atol=0)


def test_dtype_follows_the_argument():
    for name in ["glorot_uniform", "orthogonal", "zeros", "random_normal"]:
        assert init.get(name)((3, 3), dtype=torch.float64).dtype == torch.float64
        assert init.get(name)((3, 3)).dtype == torch.float32


@pytest.mark.parametrize("name,cls", [("glorot_uniform", "GlorotUniform"),
                                      ("GlorotUniform", "GlorotUniform"),
                                      ("orthogonal", "Orthogonal"), ("zeros", "Zeros"),
                                      ("zero", "Zeros"), ("constant", "Constant"),
                                      ("random_normal", "RandomNormal"),
                                      ("normal", "RandomNormal"), ("uniform", "RandomUniform")])
def test_string_names(name, cls):
    assert type(init.get(name)).__name__ == cls


@pytest.mark.parametrize("initializer", [
    init.Constant(0.3), init.Constant([[1.0, 0.0], [0.0, 1.0]]), init.Zeros(),
    init.RandomNormal(0.1, 0.2, seed=5), init.GlorotUniform(seed=1), init.Orthogonal(2.0, seed=2),
    init.VarianceScaling(2.0, "fan_out", "uniform", seed=0), init.TruncatedNormal(stddev=0.3),
])
def test_config_round_trip(initializer):
    config = init.serialize(initializer)
    assert set(config) == {"class_name", "config"}
    again = init.deserialize(config)
    assert type(again) is type(initializer) and again.get_config() == initializer.get_config()
    assert init.get(config).get_config() == initializer.get_config()
    if getattr(initializer, "seed", None) is not None or isinstance(initializer, (init.Constant,
                                                                                  init.Zeros)):
        torch.testing.assert_close(again((2, 2)), initializer((2, 2)), rtol=0, atol=0)


def test_keras_config_keys_are_ignored():
    config = {"module": "keras.initializers", "class_name": "Constant",
              "config": {"value": 2.0}, "registered_name": None}
    assert init.deserialize(config)((1,)).item() == 2.0


def test_errors():
    with pytest.raises(ValueError, match="Unknown initializer 'glorot'"):
        init.get("glorot")
    with pytest.raises(TypeError, match="name, a config dict or a callable"):
        init.get(3)
    with pytest.raises(ValueError, match="class_name"):
        init.deserialize({"config": {}})
    with pytest.raises(ValueError, match="Unknown initializer class"):
        init.deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(TypeError, match="custom initializer"):
        init.serialize(lambda shape, dtype=None: torch.zeros(shape))
    with pytest.raises(TypeError, match="seed must be an int"):
        init.RandomNormal(seed=1.5)
    with pytest.raises(ValueError, match="mode"):
        init.VarianceScaling(mode="fan_sideways")
    with pytest.raises(ValueError, match="distribution"):
        init.VarianceScaling(distribution="cauchy")
    with pytest.raises(ValueError, match="scale"):
        init.VarianceScaling(scale=0)
