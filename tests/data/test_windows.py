"""make_windows alignment on ramps (the target is exactly the next value), chronological_split."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data import chronological_split, make_windows


@pytest.mark.parametrize(
    ("window", "horizon", "stride"), [(1, 1, 1), (3, 1, 1), (4, 3, 1), (3, 2, 2), (5, 1, 4)]
)
def test_ramp_targets_are_exactly_the_next_values(window: int, horizon: int, stride: int) -> None:
    series = np.arange(20)
    X, y = make_windows(series, window, horizon=horizon, stride=stride)
    n = (20 - window - horizon) // stride + 1
    assert X.shape == (n, window, 1) and y.shape == (n, horizon)
    for i in range(n):
        s = i * stride
        np.testing.assert_array_equal(X[i, :, 0], np.arange(s, s + window))
        np.testing.assert_array_equal(y[i], np.arange(s + window, s + window + horizon))
    # On a ramp, the first target is the last input plus one: no off-by-one anywhere.
    np.testing.assert_array_equal(y[:, 0], X[:, -1, 0] + 1)


def test_hand_worked_example() -> None:
    X, y = make_windows(np.arange(10), window=3, horizon=2, stride=2)
    np.testing.assert_array_equal(X[..., 0], [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_array_equal(y, [[3, 4], [5, 6], [7, 8]])


def test_the_last_sample_uses_the_last_row() -> None:
    X, y = make_windows(np.arange(7.0), window=4, horizon=3)
    assert X.shape == (1, 4, 1)
    np.testing.assert_array_equal(y, [[4.0, 5.0, 6.0]])
    # One row fewer than window + horizon: an error (below); one more: two samples.
    assert make_windows(np.arange(8.0), window=4, horizon=3)[0].shape[0] == 2


def test_two_dimensional_series_and_target_columns() -> None:
    t = np.arange(12)
    series = np.stack([t, 100 + t, 200 + t], axis=1)  # (12, 3)
    X, y = make_windows(series, window=4, horizon=2)
    assert X.shape == (7, 4, 3) and y.shape == (7, 2, 3)
    np.testing.assert_array_equal(X[2], series[2:6])
    np.testing.assert_array_equal(y[2], series[6:8])

    _, y1 = make_windows(series, window=4, horizon=2, target=1)
    assert y1.shape == (7, 2)
    np.testing.assert_array_equal(y1[0], [104, 105])
    _, ylast = make_windows(series, window=4, horizon=2, target=-1)
    np.testing.assert_array_equal(ylast[0], [204, 205])
    _, y02 = make_windows(series, window=4, horizon=2, target=[2, 0])
    assert y02.shape == (7, 2, 2)
    np.testing.assert_array_equal(y02[0], [[204, 4], [205, 5]])
    _, y0 = make_windows(np.arange(10.0), window=3, target=[0])
    assert y0.shape == (7, 1, 1)


def test_outputs_are_copies_in_the_series_dtype() -> None:
    series = np.arange(10, dtype=np.float32)
    X, y = make_windows(series, window=3)
    assert X.dtype == np.float32 and y.dtype == np.float32
    X[0, 0, 0] = -1.0
    assert series[0] == 0.0


def test_make_windows_errors() -> None:
    with pytest.raises(
        ValueError, match=r"series has 6 time steps, fewer than window \+ horizon = 5 \+ 2 = 7"
    ):
        make_windows(np.arange(6), window=5, horizon=2)
    with pytest.raises(ValueError, match="window must be >= 1, got 0"):
        make_windows(np.arange(6), window=0)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        make_windows(np.arange(6), window=2, horizon=0)
    with pytest.raises(ValueError, match="stride must be >= 1, got -1"):
        make_windows(np.arange(6), window=2, stride=-1)
    with pytest.raises(TypeError, match="window must be an integer, got 2.5"):
        make_windows(np.arange(6), window=2.5)
    with pytest.raises(TypeError, match="window must be an integer, got True"):
        make_windows(np.arange(6), window=True)
    with pytest.raises(
        ValueError, match=r"series must be 1-D \(T,\) or 2-D \(T, F\), got shape \(2, 3, 4\)"
    ):
        make_windows(np.zeros((2, 3, 4)), window=1)
    with pytest.raises(TypeError, match="series must hold real numbers, got dtype <U1"):
        make_windows(np.array(list("abcdef")), window=2)
    with pytest.raises(ValueError, match="NaN or infinite value at row 3"):
        make_windows(np.array([0.0, 1.0, 2.0, np.nan, 4.0]), window=2)
    with pytest.raises(
        ValueError, match=r"target column 3 is out of range for 3 columns \(0 to 2\)"
    ):
        make_windows(np.zeros((10, 3)), window=2, target=3)
    with pytest.raises(ValueError, match="target column 1 is out of range for 1 columns"):
        make_windows(np.zeros(10), window=2, target=1)
    with pytest.raises(TypeError, match="target must be an int or a list of ints, got 'a'"):
        make_windows(np.zeros((10, 3)), window=2, target="a")
    with pytest.raises(ValueError, match="target must name at least one column"):
        make_windows(np.zeros((10, 3)), window=2, target=[])


# chronological_split ------------------------------------------------------------------------


def test_split_of_n_gives_slices_by_floored_cumulative_fractions() -> None:
    assert chronological_split(10) == (slice(0, 7), slice(7, 8), slice(8, 10))
    assert chronological_split(100) == (slice(0, 70), slice(70, 85), slice(85, 100))
    assert chronological_split(20, fractions=(0.8, 0.2)) == (slice(0, 16), slice(16, 20))
    # 0.7 + 0.15 is 0.85 minus an ulp: still 85 rows, not 84.
    assert chronological_split(100, fractions=[0.7, 0.15, 0.15])[1] == slice(70, 85)


def test_split_arrays_in_order() -> None:
    a = np.arange(10)
    train, val, test = chronological_split(a)
    np.testing.assert_array_equal(np.concatenate([train, val, test]), a)
    np.testing.assert_array_equal(val, [7])
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = chronological_split(a[:, None] * 2, a)
    np.testing.assert_array_equal(x_te[:, 0], [16, 18])
    np.testing.assert_array_equal(y_te, [8, 9])
    assert len(x_tr) == len(y_tr) == 7 and len(x_va) == len(y_va) == 1


def test_split_errors() -> None:
    with pytest.raises(
        ValueError, match=r"splitting 3 rows .* leaves part 1 empty \(sizes \[2, 0, 1\]\)"
    ):
        chronological_split(3)
    with pytest.raises(ValueError, match="fractions must sum to 1"):
        chronological_split(10, fractions=(0.5, 0.2))
    with pytest.raises(ValueError, match="fractions must all be > 0"):
        chronological_split(10, fractions=(1.0, 0.0))
    with pytest.raises(ValueError, match="at least two entries"):
        chronological_split(10, fractions=(1.0,))
    with pytest.raises(TypeError, match="fractions must be a sequence of numbers"):
        chronological_split(10, fractions="ab")
    with pytest.raises(ValueError, match=r"same length along axis 0, got \[10, 9\]"):
        chronological_split(np.zeros(10), np.zeros(9))
    with pytest.raises(TypeError, match="one int n or arrays, got argument 1 = 10"):
        chronological_split(np.zeros(10), 10)
    with pytest.raises(TypeError, match="one int n or arrays, got argument 0 = 3.5"):
        chronological_split(3.5)
    with pytest.raises(ValueError, match="argument 0 is a 0-D array"):
        chronological_split(np.array(3.0))
    with pytest.raises(TypeError, match="needs an int or at least one array"):
        chronological_split()
    with pytest.raises(ValueError, match="n must be >= 0, got -3"):
        chronological_split(-3)
