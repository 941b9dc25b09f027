"""Seeded synthetic tasks: their defining structure, exact values where there are any, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnkit.data import adding_problem, copy_task, seasonal_series, sine_wave


def test_adding_problem_structure() -> None:
    x, y = adding_problem(200, 30, seed=1)
    assert x.shape == (200, 30, 2) and y.shape == (200,)
    assert x.dtype == np.float32 and y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers[:, :15].sum(1) == 1).all() and (markers[:, 15:].sum(1) == 1).all()
    np.testing.assert_allclose(y, (values * markers).sum(1), rtol=1e-6)
    # Predicting the mean (1.0) scores an MSE near 1/6: the baseline a model has to beat.
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.04)


def test_adding_problem_shortest_and_seeds() -> None:
    x, _ = adding_problem(3, 2, seed=0)
    np.testing.assert_array_equal(x[..., 1], np.ones((3, 2)))
    a, b, c = (
        adding_problem(4, 10, seed=7),
        adding_problem(4, 10, seed=7),
        adding_problem(4, 10, seed=8),
    )
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    g = np.random.default_rng(7)
    np.testing.assert_array_equal(adding_problem(4, 10, seed=g)[0], a[0])


def test_copy_task_worked_example_layout() -> None:
    x, y = copy_task(50, delay=2, length=3, n_symbols=8, seed=0)
    assert x.shape == y.shape == (50, 8) and x.dtype == y.dtype == np.int64
    symbols = x[:, :3]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    np.testing.assert_array_equal(x[:, 3], 0)  # delay - 1 = 1 blank
    np.testing.assert_array_equal(x[:, 4], 9)  # the delimiter
    np.testing.assert_array_equal(x[:, 5:], 0)
    np.testing.assert_array_equal(y[:, :5], 0)
    np.testing.assert_array_equal(y[:, 5:], symbols)  # recalled length + delay = 5 steps later


def test_copy_task_long_delay_and_seed() -> None:
    x, y = copy_task(5, delay=100, seed=3)
    assert x.shape == (5, 120)
    np.testing.assert_array_equal(y[:, -10:], x[:, :10])
    assert (x[:, 10:109] == 0).all() and (x[:, 109] == 9).all()
    np.testing.assert_array_equal(copy_task(5, delay=100, seed=3)[0], x)


def test_sine_wave_values() -> None:
    np.testing.assert_allclose(sine_wave(5, period=4.0), [0, 1, 0, -1, 0], atol=1e-7)
    np.testing.assert_allclose(
        sine_wave(3, period=4.0, amplitude=2.0, phase=math.pi / 2), [2, 0, -2], atol=1e-6
    )
    noisy = sine_wave(2000, period=50.0, noise=0.2, seed=0)
    assert noisy.dtype == np.float32
    assert np.std(noisy - sine_wave(2000, period=50.0)) == pytest.approx(0.2, rel=0.05)
    np.testing.assert_array_equal(noisy, sine_wave(2000, period=50.0, noise=0.2, seed=0))


def test_seasonal_series_formula_and_learnable_structure() -> None:
    t = np.arange(48)
    expected = 0.1 * t + np.sin(2 * np.pi * t / 12) + 0.5 * np.sin(4 * np.pi * t / 12)
    np.testing.assert_allclose(seasonal_series(48, trend=0.1, noise=0.0), expected, atol=1e-5)
    s = seasonal_series(3000, period=12, trend=0.01, noise=0.1, seed=0).astype(np.float64)
    # The seasonal-naive forecast s[t-12] + 12*trend leaves only noise: residual std sqrt(2)*0.1,
    # far below the series' own spread.
    residual = s[12:] - s[:-12] - 0.12
    assert residual.std() == pytest.approx(math.sqrt(2) * 0.1, rel=0.05)
    assert s.std() > 5


def test_synthetic_errors() -> None:
    with pytest.raises(ValueError, match="length must be >= 2, got 1"):
        adding_problem(3, 1)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        adding_problem(0, 5)
    with pytest.raises(ValueError, match="delay must be >= 1, got 0"):
        copy_task(3, delay=0)
    with pytest.raises(ValueError, match="n_symbols must be >= 1, got 0"):
        copy_task(3, delay=2, n_symbols=0)
    with pytest.raises(ValueError, match="period must be a finite number > 0, got 0.0"):
        sine_wave(10, period=0)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0, got -1.0"):
        seasonal_series(10, noise=-1)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        sine_wave(10, noise=0.1, seed=-1)
    with pytest.raises(TypeError, match="seed must be an integer, got 'a'"):
        adding_problem(2, 4, seed="a")
