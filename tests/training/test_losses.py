"""Losses against NumPy formulas, Keras' documented values, its clipping and reductions.

Tolerances: float32 results vs float64 NumPy references, rtol 1e-6 / atol 1e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.training import losses

EPS = 1e-7
TOL = {"rtol": 1e-6, "atol": 1e-7}


def _np_bce(y, p, axis=-1):
    # Clipped in float32 as Keras does: 1 - eps rounds to 1 - 2**-23 there.
    p = np.clip(p.astype(np.float32), np.float32(EPS), np.float32(1 - EPS)).astype(np.float64)
    return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)), axis=axis)


def _np_cce(y, p):
    p = p / p.sum(-1, keepdims=True)
    return -np.sum(y * np.log(np.clip(p, EPS, 1 - EPS)), axis=-1)


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_keras_documented_values():
    # The examples of Keras' loss docstrings.
    mse = losses.MeanSquaredError()([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]])
    assert float(mse) == pytest.approx(0.5)
    bce = losses.BinaryCrossentropy(from_logits=True)(
        [0.0, 1.0, 0.0, 0.0], [-18.6, 0.51, 2.94, -12.8])
    assert float(bce) == pytest.approx(0.865458, abs=1e-5)
    y_pred = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
    cce = losses.CategoricalCrossentropy()([[0, 1, 0], [0, 0, 1]], y_pred)
    assert float(cce) == pytest.approx(1.176939, abs=1e-5)
    scce = losses.SparseCategoricalCrossentropy()([1, 2], y_pred)
    assert float(scce) == pytest.approx(1.176939, abs=1e-5)


def test_regression_losses_match_numpy(rng):
    y = rng.normal(size=(5, 3))
    p = rng.normal(size=(5, 3))
    np.testing.assert_allclose(
        losses.mean_squared_error(y, p).numpy(), np.mean((y - p) ** 2, -1), **TOL)
    np.testing.assert_allclose(
        losses.mean_absolute_error(y, p).numpy(), np.mean(np.abs(y - p), -1), **TOL)
    assert float(losses.get("mse")(y, p)) == pytest.approx(np.mean((y - p) ** 2), rel=1e-6)
    assert float(losses.get("mae")(y, p)) == pytest.approx(np.mean(np.abs(y - p)), rel=1e-6)


def test_rank_one_targets_meet_column_outputs():
    # Keras' squeeze_or_expand_to_same_rank: y (6,) against y_pred (6, 1) is elementwise.
    y = np.arange(6, dtype=np.float32) / 10
    p = y[:, None] + 0.5
    assert float(losses.MeanSquaredError()(y, p)) == pytest.approx(0.25, rel=1e-6)
    # ... and y (6, 1) against y_pred (6,) too.
    assert float(losses.MeanSquaredError()(y[:, None], p[:, 0])) == pytest.approx(0.25, rel=1e-6)


def test_binary_crossentropy_probabilities_and_logits(rng):
    y = rng.integers(0, 2, size=(4, 3)).astype(np.float64)
    p = rng.uniform(0.01, 0.99, size=(4, 3))
    p[0, 0], p[1, 1] = 0.0, 1.0  # clipped to [eps, 1 - eps], never log(0)
    np.testing.assert_allclose(losses.binary_crossentropy(y, p).numpy(), _np_bce(y, p), **TOL)
    z = rng.normal(size=(4, 3)) * 5
    expected = _np_bce(y, 1 / (1 + np.exp(-z)))
    got = losses.binary_crossentropy(y, z, from_logits=True).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


def test_binary_crossentropy_label_smoothing():
    y, p = np.array([[1.0, 0.0]]), np.array([[0.9, 0.2]])
    smooth = y * 0.8 + 0.1
    got = losses.BinaryCrossentropy(label_smoothing=0.2)(y, p)
    assert float(got) == pytest.approx(float(_np_bce(smooth, p)[0]), rel=1e-6)


def test_categorical_crossentropy(rng):
    y = np.eye(4)[rng.integers(0, 4, size=6)]
    p = rng.uniform(0.0, 1.0, size=(6, 4))  # not normalised: Keras divides by the sum
    p[2, 1] = 0.0
    np.testing.assert_allclose(losses.categorical_crossentropy(y, p).numpy(), _np_cce(y, p), **TOL)
    z = rng.normal(size=(6, 4))
    np.testing.assert_allclose(
        losses.categorical_crossentropy(y, z, from_logits=True).numpy(),
        -np.sum(y * _np_log_softmax(z), -1), rtol=1e-5, atol=1e-6)
    smooth = losses.CategoricalCrossentropy(label_smoothing=0.1)(y, p)
    assert float(smooth) == pytest.approx(float(np.mean(_np_cce(y * 0.9 + 0.025, p))), rel=1e-5)


def test_sparse_matches_categorical_on_one_hot(rng):
    labels = rng.integers(0, 5, size=7)
    z = rng.normal(size=(7, 5))
    for from_logits in (False, True):
        p = z if from_logits else np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        sparse = losses.sparse_categorical_crossentropy(labels, p, from_logits=from_logits)
        column = losses.sparse_categorical_crossentropy(labels[:, None], p, from_logits=from_logits)
        dense = losses.categorical_crossentropy(np.eye(5)[labels], p, from_logits=from_logits)
        np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(column.numpy(), dense.numpy(), rtol=1e-6, atol=1e-7)


def test_sparse_ignore_class_is_masked_out():
    p = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1)([0, -1, 1], p)
    # Mean over the two real samples only.
    assert float(loss) == pytest.approx((-np.log(0.7) - np.log(0.5)) / 2, rel=1e-6)


def test_sequence_losses_with_mask():
    # (batch, time, 1) outputs with a (batch, time) mask: mean over the real steps only.
    y = torch.zeros(2, 3, 1)
    p = torch.tensor([[[1.0], [2.0], [9.0]], [[3.0], [9.0], [9.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    got = losses.MeanSquaredError()(y, p, mask=mask)
    assert float(got) == pytest.approx((1 + 4 + 9) / 3, rel=1e-6)


def test_reductions_and_sample_weight():
    y = np.zeros((4, 1))
    p = np.array([[1.0], [2.0], [3.0], [4.0]])
    w = np.array([1.0, 0.0, 2.0, 1.0])
    per_sample = np.array([1.0, 4.0, 9.0, 16.0])
    assert float(losses.MeanSquaredError()(y, p, w)) == pytest.approx(
        np.sum(per_sample * w) / 4, rel=1e-6)
    assert float(losses.MeanSquaredError(reduction="sum")(y, p)) == pytest.approx(30.0)
    none = losses.MeanSquaredError(reduction=None)(y, p)
    np.testing.assert_allclose(none.numpy(), per_sample)
    weighted = losses.MeanSquaredError(reduction="mean_with_sample_weight")(y, p, w)
    assert float(weighted) == pytest.approx(np.sum(per_sample * w) / w.sum(), rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="avg")


def test_gradients_flow():
    p = torch.tensor([[0.3], [0.6]], requires_grad=True)
    losses.BinaryCrossentropy()(torch.tensor([[1.0], [0.0]]), p).backward()
    # d/dp of mean(-(y log p + (1-y) log(1-p))) = (p - y) / (p (1 - p)) / 2
    expected = np.array([[(0.3 - 1) / (0.3 * 0.7)], [0.6 / (0.6 * 0.4)]]) / 2
    np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-5)


def test_lookup_by_name_class_and_function():
    assert isinstance(losses.get("mean_squared_error"), losses.MeanSquaredError)
    assert isinstance(losses.get("MeanAbsoluteError"), losses.MeanAbsoluteError)
    assert isinstance(losses.get(losses.BinaryCrossentropy), losses.BinaryCrossentropy)
    assert losses.get("sparse_categorical_crossentropy").name == "sparse_categorical_crossentropy"
    custom = losses.get(lambda y, p: (p - y).abs().sum(-1))
    assert float(custom(np.zeros((2, 2)), np.ones((2, 2)))) == pytest.approx(2.0)
    assert losses.get(None) is None
    with pytest.raises(ValueError, match="Unknown loss 'msee'"):
        losses.get("msee")
    with pytest.raises(TypeError, match="Could not interpret loss"):
        losses.get(3)


def test_config_round_trip():
    loss = losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)
    again = losses.deserialize(losses.serialize(loss))
    assert isinstance(again, losses.BinaryCrossentropy)
    assert again.get_config() == loss.get_config()
    with pytest.raises(TypeError, match="built-in losses"):
        losses.serialize(losses.get(lambda y, p: p))
    with pytest.raises(ValueError, match="Unknown loss class"):
        losses.deserialize({"class_name": "os.system", "config": {}})


def test_shape_and_label_errors():
    with pytest.raises(ValueError, match="same shape"):
        losses.categorical_crossentropy(np.zeros((2, 3)), np.ones((2, 4)) / 4)
    with pytest.raises(ValueError, match="same shape"):
        losses.binary_crossentropy(np.zeros((2, 3)), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        losses.sparse_categorical_crossentropy([0, 3], np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="whole class indices"):
        losses.sparse_categorical_crossentropy([0.5, 1.0], np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="one class index per sample"):
        losses.sparse_categorical_crossentropy(np.zeros((2, 3)), np.full((2, 3), 1 / 3))


def test_single_class_categorical_warns():
    with pytest.warns(UserWarning, match="binary_crossentropy"):
        losses.categorical_crossentropy(np.ones((2, 1)), np.full((2, 1), 0.5))
