"""StandardScaler: statistics by hand, fitted on the training split only, saving, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.data import StandardScaler, chronological_split, make_windows, seasonal_series


def test_statistics_by_hand() -> None:
    x = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0]])
    scaler = StandardScaler().fit(x)
    np.testing.assert_array_equal(scaler.mean_, [2.0, 20.0, 5.0])
    np.testing.assert_array_equal(scaler.scale_, [1.0, 10.0, 1.0])  # constant column -> 1
    np.testing.assert_array_equal(scaler.transform(x), [[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(scaler.inverse_transform(scaler.transform(x)), x)


def test_one_dimensional_and_three_dimensional_data() -> None:
    scaler = StandardScaler().fit(np.array([2.0, 4.0, 6.0, 8.0]))
    assert scaler.mean_.shape == () and float(scaler.mean_) == 5.0
    np.testing.assert_allclose(scaler.scale_, np.sqrt(5.0))  # population std (ddof=0)
    # (N, T, F) windows: statistics per feature over N and T
    w = np.stack([np.full((2, 3), 1.0), np.full((2, 3), 3.0)], axis=-1)  # feature 0 ones, 1 threes
    w[0, 0] = [3.0, 5.0]
    scaler = StandardScaler().fit(w)
    np.testing.assert_allclose(scaler.mean_, [8 / 6, 20 / 6])


def test_fitted_on_train_only() -> None:
    series = seasonal_series(300, trend=0.05, noise=0.1, seed=0)  # trending: later parts are higher
    train, val, test = chronological_split(series)
    scaler = StandardScaler().fit(train)
    z_train, z_test = scaler.transform(train), scaler.transform(test)
    np.testing.assert_allclose([z_train.mean(), z_train.std()], [0.0, 1.0], atol=1e-6)
    # The test split keeps its own, different statistics: nothing was fitted on it.
    assert z_test.mean() > 2.0
    assert float(scaler.mean_) == pytest.approx(float(train.mean()), rel=1e-6)
    assert float(scaler.mean_) != pytest.approx(float(series.mean()), rel=1e-3)


def test_columns_select_fitted_features_for_targets() -> None:
    t = np.arange(50.0)
    series = np.stack([t, 3 * t + 7], axis=1)
    train, test = chronological_split(series, fractions=(0.6, 0.4))
    scaler = StandardScaler().fit(train)
    X, y = make_windows(scaler.transform(test), window=5, target=1)  # y (N, 1) of column 1
    np.testing.assert_allclose(
        scaler.inverse_transform(y, columns=1), make_windows(test, 5, target=1)[1]
    )
    np.testing.assert_allclose(
        scaler.inverse_transform(X[..., ::-1], columns=[1, 0]), make_windows(test, 5)[0][..., ::-1]
    )


def test_dtypes() -> None:
    scaler = StandardScaler().fit(np.arange(6).reshape(3, 2))
    assert scaler.transform(np.ones((2, 2), dtype=np.float32)).dtype == np.float32
    assert scaler.transform(np.ones((2, 2), dtype=np.int64)).dtype == np.float64


def test_json_round_trip() -> None:
    scaler = StandardScaler().fit(np.random.default_rng(0).normal(3.0, 2.0, size=(40, 3)))
    again = StandardScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(again.mean_, scaler.mean_)
    np.testing.assert_array_equal(again.scale_, scaler.scale_)
    one_d = StandardScaler().fit([1.0, 2.0])
    assert one_d.to_dict() == {"mean": 1.5, "scale": 0.5}
    assert float(StandardScaler.from_dict(one_d.to_dict()).mean_) == 1.5
    assert (
        repr(again) == "StandardScaler(features=3)"
        and repr(StandardScaler()) == "StandardScaler(not fitted)"
    )


def test_scaler_errors() -> None:
    with pytest.raises(
        RuntimeError, match=r"StandardScaler.transform before fit: call fit\(train\) first"
    ):
        StandardScaler().transform([1.0])
    with pytest.raises(RuntimeError, match="to_dict before fit"):
        StandardScaler().to_dict()
    with pytest.raises(ValueError, match="NaN or infinite"):
        StandardScaler().fit([1.0, np.nan])
    with pytest.raises(ValueError, match="empty array"):
        StandardScaler().fit(np.zeros((0, 3)))
    with pytest.raises(TypeError, match="expects real numbers, got dtype <U1"):
        StandardScaler().fit(["a"])
    scaler = StandardScaler().fit(np.zeros((4, 3)))
    with pytest.raises(
        ValueError,
        match=r"transform expects 3 features on the last axis \(as fitted\), got shape \(4, 2\)",
    ):
        scaler.transform(np.zeros((4, 2)))
    with pytest.raises(
        ValueError, match=r"expects 2 features .*columns=\[0, 1\].*got shape \(4, 3\)"
    ):
        scaler.inverse_transform(np.zeros((4, 3)), columns=[0, 1])
    with pytest.raises(ValueError, match="columns column 5 is out of range for 3 columns"):
        scaler.transform(np.zeros(4), columns=5)
    with pytest.raises(ValueError, match="columns= needs a scaler fitted on"):
        StandardScaler().fit([1.0, 2.0]).transform([1.0], columns=0)
    with pytest.raises(ValueError, match="scale finite and > 0"):
        StandardScaler.from_dict({"mean": [0.0], "scale": [0.0]})
    with pytest.raises(ValueError, match=r"equal-length lists, got shapes \(2,\) and \(1,\)"):
        StandardScaler.from_dict({"mean": [0.0, 1.0], "scale": [1.0]})
    with pytest.raises(ValueError, match="keys 'mean' and 'scale'"):
        StandardScaler.from_dict({"mean": 0.0})
