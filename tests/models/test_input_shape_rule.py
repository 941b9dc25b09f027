"""Keras 3's input-shape rule: the rank and the feature axis must match, time axes are free
(checked against Keras 3.15: Input(shape=(10,)) + Embedding takes (4, 12), LSTM models built
on 5 steps predict on 9, Dense(input 10) refuses 12 features)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import LSTM, Dense, Embedding, Input, SimpleRNN
from rnnkit.models import Sequential


def test_predicting_on_longer_sequences_than_trained_on():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = Sequential([LSTM(4, return_sequences=True), Dense(1)])  # built from data
    model.compile(optimizer="adam", loss="mse")
    model.fit(rng.normal(size=(8, 5, 2)), rng.normal(size=(8, 5, 1)), epochs=1, verbose=0)
    long = rng.normal(size=(3, 20, 2)).astype(np.float32)
    out = model.predict(long, verbose=0)
    assert out.shape == (3, 20, 1)
    # causal: the first 5 steps of the long prediction are the prediction on those 5 steps
    np.testing.assert_allclose(out[:, :5], model.predict(long[:, :5], verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_declared_time_steps_are_free_but_features_are_not():
    model = Sequential([Input(shape=(10, 3)), SimpleRNN(2)])
    assert model.predict(np.zeros((4, 12, 3), np.float32), verbose=0).shape == (4, 2)
    assert model.predict(np.zeros((4, 3, 3), np.float32), verbose=0).shape == (4, 2)
    with pytest.raises(ValueError, match=r"axis 2 \(features\) has size 4, expected 3"):
        model.predict(np.zeros((4, 12, 4), np.float32), verbose=0)
    with pytest.raises(ValueError, match="rank 2"):
        model.predict(np.zeros((4, 12), np.float32), verbose=0)


def test_token_ids_check_only_the_rank():
    model = Sequential([Input(shape=(10,)), Embedding(20, 4), LSTM(3)])
    assert model.predict(np.zeros((4, 12), np.int64), verbose=0).shape == (4, 3)
    with pytest.raises(ValueError, match="rank 3"):
        model.predict(np.zeros((4, 12, 1), np.int64), verbose=0)


def test_dense_on_features_keeps_its_check():
    model = Sequential([Input(shape=(10,)), Dense(3)])
    with pytest.raises(ValueError, match=r"axis 1 \(features\) has size 12, expected 10"):
        model.predict(np.zeros((4, 12), np.float32), verbose=0)
