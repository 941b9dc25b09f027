"""Seeded synthetic tasks with known structure: long-memory benchmarks and periodic series.

``seed`` follows ``numpy.random.default_rng``: an int gives the same data on every run, a
``Generator`` is drawn from, ``None`` draws fresh entropy.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._checks import check_int, rng_from

__all__ = ["adding_problem", "copy_task", "seasonal_series", "sine_wave"]

Seed = int | np.random.Generator | None


def adding_problem(
    n: int, length: int, seed: Seed = None
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015): X (n, length, 2), y (n,).

    Channel 0 of each sequence holds uniform random numbers in [0, 1); channel 1 is 0 except
    for two 1s, one in the first half (steps ``0 .. length//2 - 1``) and one in the second.
    The target is the sum of the two marked numbers, so it needs memory across the sequence.
    Predicting the mean, 1.0, gives a mean squared error of about 1/6: a model must beat that.
    """
    n = check_int("n", n, 1)
    length = check_int("length", length, 2)
    rng = rng_from(seed)
    half = length // 2
    values = rng.random((n, length))
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n)
    rows = np.arange(n)
    markers = np.zeros((n, length))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)  # (n, length, 2)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)  # (n,)
    return x, y


def copy_task(
    n: int, delay: int, length: int = 10, n_symbols: int = 8, seed: Seed = None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The copy memory task (Arjovsky et al. 2016): X, y of shape (n, 2*length + delay), int64.

    Each input starts with ``length`` random symbols from 1..n_symbols, then ``delay - 1``
    blanks (0), one delimiter (``n_symbols + 1``) and ``length`` more blanks. The target is
    blank everywhere except the last ``length`` steps, which repeat the symbols: each symbol
    must be recalled exactly ``length + delay`` steps after it was seen. With length=3,
    delay=2 and symbols 5 1 7 (delimiter 9):

        X: 5 1 7 0 9 0 0 0
        y: 0 0 0 0 0 5 1 7

    There are ``n_symbols + 2`` classes (blank, the symbols, the delimiter). Always predicting
    blank, then a random symbol, gives a cross-entropy of
    ``length * log(n_symbols) / (2*length + delay)`` per step: the baseline to beat.
    """
    n = check_int("n", n, 1)
    delay = check_int("delay", delay, 1)
    length = check_int("length", length, 1)
    n_symbols = check_int("n_symbols", n_symbols, 1)
    rng = rng_from(seed)
    steps = 2 * length + delay
    symbols = rng.integers(1, n_symbols + 1, (n, length))
    x = np.zeros((n, steps), dtype=np.int64)
    x[:, :length] = symbols
    x[:, length + delay - 1] = n_symbols + 1
    y = np.zeros((n, steps), dtype=np.int64)
    y[:, length + delay :] = symbols
    return x, y


def sine_wave(
    length: int,
    period: float = 20.0,
    amplitude: float = 1.0,
    phase: float = 0.0,
    noise: float = 0.0,
    seed: Seed = None,
) -> NDArray[np.float32]:
    """``amplitude * sin(2*pi*t / period + phase) + noise * N(0, 1)`` for t = 0 .. length-1."""
    length = check_int("length", length, 1)
    period, noise = _positive("period", period), _non_negative("noise", noise)
    wave = _sine(length, period, amplitude, phase)
    if noise:
        wave = wave + noise * rng_from(seed).standard_normal(length)
    return wave.astype(np.float32)


def seasonal_series(
    length: int,
    period: float = 12.0,
    amplitude: float = 1.0,
    trend: float = 0.01,
    noise: float = 0.1,
    seed: Seed = None,
) -> NDArray[np.float32]:
    """A noisy seasonal series with a trend, like monthly data: a forecaster's test bed.

    ``trend * t + amplitude * (sin(2*pi*t/period) + 0.5 * sin(4*pi*t/period)) + noise * N(0, 1)``
    for t = 0 .. length-1: a linear trend, a season with its first harmonic, and white noise.
    The best possible one-step forecast has a mean squared error of ``noise**2``.
    """
    length = check_int("length", length, 1)
    period, noise = _positive("period", period), _non_negative("noise", noise)
    season = _sine(length, period, amplitude) + _sine(length, period / 2, amplitude / 2)
    series = trend * np.arange(length) + season
    if noise:
        series = series + noise * rng_from(seed).standard_normal(length)
    return series.astype(np.float32)


def _sine(length: int, period: float, amplitude: float, phase: float = 0.0) -> NDArray[np.float64]:
    t = np.arange(length, dtype=np.float64)
    return amplitude * np.sin(2 * math.pi * t / period + phase)


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value
