"""Sliding windows over a time series for forecasting, and chronological train/val/test splits."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import check_columns, check_int

__all__ = ["chronological_split", "make_windows"]


def make_windows(
    series: ArrayLike,
    window: int,
    horizon: int = 1,
    stride: int = 1,
    target: int | Sequence[int] | None = None,
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Cut a series into (window, the values after it) pairs: X (N, window, F), y (N, horizon, ...).

    ``series`` is (T,) or (T, F): T time steps, F features (a 1-D series has F = 1). Sample ``i``
    starts at row ``s = i * stride`` and its target starts right after its window ends:

        X[i] = series[s : s + window]                      # rows s .. s+window-1
        y[i] = series[s + window : s + window + horizon]   # the next `horizon` rows

    so ``y[i, 0]`` is the step immediately after ``X[i, -1]``; no offset is left for you to add
    (as ``keras.utils.timeseries_dataset_from_array`` leaves it). There are
    ``N = (T - window - horizon) // stride + 1`` samples, which needs ``T >= window + horizon``.

    Worked example, the ramp 0..9 (T = 10) with window=3, horizon=2, stride=2:

    >>> X, y = make_windows(np.arange(10), window=3, horizon=2, stride=2)
    >>> X[..., 0]        # (N, window, 1) -> shown without the feature axis
    array([[0, 1, 2],
           [2, 3, 4],
           [4, 5, 6]])
    >>> y                # the two values after each window
    array([[3, 4],
           [5, 6],
           [7, 8]])

    ``target`` picks the target columns of a (T, F) series, indexing like NumPy: ``None`` (all
    columns) gives y of shape (N, horizon, F), an int ``c`` gives (N, horizon) from column c,
    a list of ints (N, horizon, len(list)). A 1-D series gives y (N, horizon). X always holds
    every column. Both arrays are fresh copies in the series' dtype. A series with NaN or inf
    is refused: fill gaps first (``load_co2`` interpolates them).
    """
    data = np.asarray(series)
    if data.ndim not in (1, 2):
        raise ValueError(f"series must be 1-D (T,) or 2-D (T, F), got shape {data.shape}")
    if data.dtype.kind not in "iuf":
        raise TypeError(f"series must hold real numbers, got dtype {data.dtype}")
    window = check_int("window", window, 1)
    horizon = check_int("horizon", horizon, 1)
    stride = check_int("stride", stride, 1)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        row = int(np.argwhere(~np.isfinite(data))[0][0])
        raise ValueError(
            f"series has a NaN or infinite value at row {row}: fill missing values first"
        )

    table = data.reshape(len(data), -1)  # (T, F)
    steps, features = table.shape
    if steps < window + horizon:
        raise ValueError(
            f"series has {steps} time steps, fewer than window + horizon = {window} + {horizon} "
            f"= {window + horizon} needed for one sample"
        )
    if data.ndim == 1 and target is None:
        target = 0  # y (N, horizon) for a 1-D series
    columns = slice(None) if target is None else check_columns("target", target, features)
    targets = table[:, columns]  # (T,) for an int target, else (T, k)

    starts = np.arange((steps - window - horizon) // stride + 1) * stride  # (N,)
    x_rows = starts[:, None] + np.arange(window)  # (N, window)
    y_rows = starts[:, None] + window + np.arange(horizon)  # (N, horizon)
    return table[x_rows], targets[y_rows]


def chronological_split(
    *data: int | ArrayLike, fractions: Sequence[float] = (0.7, 0.15, 0.15)
) -> tuple[Any, ...]:
    """Split along the first (time) axis into consecutive parts, in order: no shuffling.

    With ``fractions`` (f_1, ..., f_k) summing to 1, part j holds rows
    ``[floor(n * (f_1 + ... + f_{j-1})), floor(n * (f_1 + ... + f_j)))``; the last part ends at n.

    - ``chronological_split(n)`` for an int n gives the parts as ``slice`` objects;
    - ``chronological_split(a)`` gives the parts of array ``a``: ``train, val, test``;
    - ``chronological_split(a, b, ...)`` (same length) gives one tuple per part:
      ``(X_train, y_train), (X_val, y_val), (X_test, y_test)``.

    >>> chronological_split(10)
    (slice(0, 7, None), slice(7, 8, None), slice(8, 10, None))

    For forecasting, split the raw series first, fit a ``StandardScaler`` on the training part
    only, then ``make_windows`` each part, so that no window reaches across a boundary.
    """
    if not data:
        raise TypeError("chronological_split needs an int or at least one array")
    parts = _fractions(fractions)
    if len(data) == 1 and isinstance(data[0], numbers.Integral) and not isinstance(data[0], bool):
        n = check_int("n", data[0], 0)
        return _slices(n, parts)
    arrays = []
    for i, a in enumerate(data):
        if isinstance(a, numbers.Number):
            raise TypeError(
                f"chronological_split takes one int n or arrays, got argument {i} = {a!r}"
            )
        a = np.asarray(a)
        if a.ndim == 0:
            raise ValueError(f"argument {i} is a 0-D array: there is no time axis to split")
        arrays.append(a)
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise ValueError(
            f"arrays must have the same length along axis 0, got {[len(a) for a in arrays]}"
        )
    slices = _slices(len(arrays[0]), parts)
    if len(arrays) == 1:
        return tuple(arrays[0][s] for s in slices)
    return tuple(tuple(a[s] for a in arrays) for s in slices)


def _fractions(fractions: Sequence[float]) -> list[float]:
    try:
        parts = [float(f) for f in fractions]
    except (TypeError, ValueError) as e:
        raise TypeError(f"fractions must be a sequence of numbers, got {fractions!r}") from e
    if len(parts) < 2:
        raise ValueError(f"fractions must have at least two entries, got {fractions!r}")
    if not all(math.isfinite(f) and f > 0 for f in parts):
        raise ValueError(f"fractions must all be > 0, got {fractions!r}")
    if abs(sum(parts) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(parts):g})")
    return parts


def _slices(n: int, parts: list[float]) -> tuple[slice, ...]:
    # round() first so that n * 0.85 = 84.99999999999999 counts as 85.
    ends = [math.floor(round(n * c, 9)) for c in np.cumsum(parts[:-1])] + [n]
    starts = [0] + ends[:-1]
    sizes = [e - s for s, e in zip(starts, ends, strict=True)]
    if min(sizes) == 0:
        raise ValueError(
            f"splitting {n} rows by fractions {tuple(parts)} leaves part {sizes.index(0)} empty "
            f"(sizes {sizes}): use more data or larger fractions"
        )
    return tuple(slice(s, e) for s, e in zip(starts, ends, strict=True))
