"""Metrics: the accuracies, Keras' resolution of "accuracy", running means weighted by batch
size in float32, masks, lookup and configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.training import metrics


def test_binary_accuracy_threshold():
    m = metrics.BinaryAccuracy()
    m.update_state([[1.0], [0.0], [1.0], [0.0]], [[0.7], [0.6], [0.4], [0.1]])
    assert m.result() == pytest.approx(0.5)
    strict = metrics.BinaryAccuracy(threshold=0.65)
    strict.update_state([[1.0], [0.0]], [[0.7], [0.6]])
    assert strict.result() == pytest.approx(1.0)
    # (batch,) targets against (batch, 1) outputs
    flat = metrics.BinaryAccuracy()
    flat.update_state([1, 0, 0], [[0.9], [0.2], [0.8]])
    assert flat.result() == pytest.approx(2 / 3)


def test_categorical_and_sparse_accuracy():
    p = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    labels = np.array([1, 1, 2, 0])
    cat = metrics.CategoricalAccuracy()
    cat.update_state(np.eye(3)[labels], p)
    sparse = metrics.SparseCategoricalAccuracy()
    sparse.update_state(labels, p)
    column = metrics.SparseCategoricalAccuracy()
    column.update_state(labels[:, None].astype(np.float32), p)
    assert cat.result() == sparse.result() == column.result() == pytest.approx(0.75)


def test_accuracy_resolution_follows_keras():
    # Keras: binary if y_pred's last axis is 1; sparse if y_true has a lower rank (or a trailing
    # 1 against several classes); categorical otherwise.
    cases = [
        (torch.zeros(4, 1), torch.zeros(4, 1), metrics.BinaryAccuracy),
        (torch.zeros(4), torch.zeros(4, 1), metrics.BinaryAccuracy),
        (torch.zeros(4), torch.zeros(4, 3), metrics.SparseCategoricalAccuracy),
        (torch.zeros(4, 1), torch.zeros(4, 3), metrics.SparseCategoricalAccuracy),
        (torch.zeros(4, 5), torch.zeros(4, 5, 3), metrics.SparseCategoricalAccuracy),
        (torch.zeros(4, 3), torch.zeros(4, 3), metrics.CategoricalAccuracy),
    ]
    for y_true, y_pred, expected in cases:
        for name in ("accuracy", "acc"):
            metric = metrics.get(name, y_true, y_pred)
            assert type(metric) is expected, (y_true.shape, y_pred.shape)
            assert metric.name == name
    with pytest.raises(ValueError, match="resolved from the data"):
        metrics.get("accuracy")


def test_running_mean_weights_batches_by_size():
    # Two batches of 3 and 1 samples: the epoch value is the mean over the 4 samples,
    # not the mean of the two batch means (Keras' Mean with sample counts).
    m = metrics.get("mae")
    m.update_state(np.zeros((3, 1)), np.ones((3, 1)))
    m.update_state(np.zeros((1, 1)), np.full((1, 1), 5.0))
    assert m.result() == pytest.approx((3 * 1 + 5) / 4)
    assert m.name == "mae" and m.direction == "down"
    m.reset_state()
    assert m.result() == 0.0


def test_loss_tracker_mean_is_float32():
    tracker = metrics.Mean(name="loss")
    tracker.update_state(torch.tensor(0.1), sample_weight=3)
    tracker.update_state(torch.tensor(0.7), sample_weight=1)
    expected = (np.float32(0.1) * np.float32(3) + np.float32(0.7)) / np.float32(4)
    assert tracker.result() == pytest.approx(float(np.float32(expected)), rel=1e-7)
    assert tracker.total.dtype == torch.float32


def test_sequence_metric_with_mask():
    y = torch.zeros(2, 3, 1)
    p = torch.tensor([[[1.0], [2.0], [7.0]], [[3.0], [7.0], [7.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    m = metrics.MeanAbsoluteError()
    m.update_state(y, p, mask=mask)
    assert m.result() == pytest.approx((1 + 2 + 3) / 3)
    unmasked = metrics.MeanAbsoluteError()
    unmasked.update_state(y, p)
    assert unmasked.result() == pytest.approx(27 / 6)


def test_lookup_names_and_directions():
    assert metrics.get("mse").name == "mse"
    assert isinstance(metrics.get("BinaryAccuracy"), metrics.BinaryAccuracy)
    assert metrics.get(metrics.SparseCategoricalAccuracy).direction == "up"
    assert metrics.get(metrics.binary_accuracy).direction == "up"
    assert metrics.get(lambda y, p: (y - p).abs()).direction is None
    with pytest.raises(ValueError, match="Unknown metric 'accuracyy'"):
        metrics.get("accuracyy")
    with pytest.raises(TypeError, match="Could not interpret metric"):
        metrics.get(1.5)


def test_config_round_trip():
    m = metrics.BinaryAccuracy(name="bin", threshold=0.3)
    again = metrics.deserialize(metrics.serialize(m))
    assert isinstance(again, metrics.BinaryAccuracy)
    assert again.get_config() == {"name": "bin", "threshold": 0.3}
    assert metrics.serialize("mae") == "mae"
    with pytest.raises(TypeError, match="built-in metrics"):
        metrics.serialize(metrics.get(lambda y, p: p))
