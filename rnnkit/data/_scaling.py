"""Standardisation fitted on training data only, saved as plain data (NumPy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import check_columns

__all__ = ["StandardScaler"]


class StandardScaler:
    """``(x - mean) / scale`` per feature, with mean and scale taken from the data given to fit.

    ``fit`` on a 1-D array learns one mean and one scale; on an array of shape (..., F) it learns
    F of each, reducing over every axis but the last (so (T, F) series and (N, T, F) windows both
    work). ``scale`` is the population standard deviation (ddof=0, as scikit-learn); a constant
    feature gets scale 1 so that it maps to 0 instead of dividing by zero.

    Fit on the training split only, so that nothing about the validation or test data leaks
    into the model's inputs:

    >>> train, val, test = chronological_split(np.arange(100.0))
    >>> scaler = StandardScaler().fit(train)
    >>> float(scaler.mean_)
    34.5

    ``transform``/``inverse_transform`` take ``columns=`` to use a subset of the fitted features,
    indexing like NumPy: an int applies that feature's statistics to every element (e.g. the
    (N, horizon) targets that ``make_windows(..., target=c)`` gives), a list applies them along
    the last axis. Output keeps a floating input's dtype and is float64 otherwise.
    """

    def __init__(self) -> None:
        self.mean_: NDArray[np.float64] | None = None
        self.scale_: NDArray[np.float64] | None = None

    def fit(self, x: ArrayLike) -> StandardScaler:
        data = _real(x, "fit")
        if data.size == 0:
            raise ValueError(f"cannot fit a StandardScaler on an empty array (shape {data.shape})")
        if not np.isfinite(data).all():
            raise ValueError("cannot fit a StandardScaler on data with NaN or infinite values")
        axes = tuple(range(data.ndim - 1)) if data.ndim > 1 else None
        data = data.astype(np.float64)
        mean = data.mean(axis=axes)
        std = data.std(axis=axes)
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.scale_ = np.where(std > 0, std, 1.0).astype(np.float64)
        return self

    def transform(self, x: ArrayLike, columns: int | Sequence[int] | None = None) -> NDArray[Any]:
        data, mean, scale = self._prepare(x, columns, "transform")
        return ((data - mean) / scale).astype(_out_dtype(data), copy=False)

    def fit_transform(self, x: ArrayLike) -> NDArray[Any]:
        return self.fit(x).transform(x)

    def inverse_transform(
        self, x: ArrayLike, columns: int | Sequence[int] | None = None
    ) -> NDArray[Any]:
        data, mean, scale = self._prepare(x, columns, "inverse_transform")
        return (data * scale + mean).astype(_out_dtype(data), copy=False)

    def _prepare(
        self, x: ArrayLike, columns: int | Sequence[int] | None, what: str
    ) -> tuple[NDArray[Any], NDArray[np.float64], NDArray[np.float64]]:
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError(f"StandardScaler.{what} before fit: call fit(train) first")
        data = _real(x, what)
        mean, scale = self.mean_, self.scale_
        if mean.ndim == 0:
            if columns is not None:
                raise ValueError("columns= needs a scaler fitted on (..., F) data, not 1-D data")
            return data, mean, scale
        features = mean.shape[0]
        if columns is not None:
            index = check_columns("columns", columns, features)
            mean, scale = mean[index], scale[index]
        if mean.ndim == 1 and (data.ndim == 0 or data.shape[-1] != mean.shape[0]):
            fitted = "as fitted" if columns is None else f"as fitted, with columns={columns!r}"
            raise ValueError(
                f"{what} expects {mean.shape[0]} features on the last axis ({fitted}), "
                f"got shape {data.shape}"
            )
        return data, mean, scale

    def to_dict(self) -> dict[str, Any]:
        """``{"mean": ..., "scale": ...}`` as floats or lists of floats, ready for JSON."""
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("StandardScaler.to_dict before fit: call fit(train) first")
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StandardScaler:
        if not isinstance(data, dict) or "mean" not in data or "scale" not in data:
            raise ValueError("StandardScaler.from_dict expects a dict with keys 'mean' and 'scale'")
        mean = np.asarray(data["mean"], dtype=np.float64)
        scale = np.asarray(data["scale"], dtype=np.float64)
        if mean.shape != scale.shape or mean.ndim > 1:
            raise ValueError(
                f"mean and scale must be numbers or equal-length lists, got shapes "
                f"{mean.shape} and {scale.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("mean must be finite and scale finite and > 0")
        scaler = cls()
        scaler.mean_, scaler.scale_ = mean, scale
        return scaler

    def __repr__(self) -> str:
        if self.mean_ is None:
            return "StandardScaler(not fitted)"
        return f"StandardScaler(features={self.mean_.size if self.mean_.ndim else 'scalar'})"


def _real(x: ArrayLike, what: str) -> NDArray[Any]:
    data = np.asarray(x)
    if data.dtype.kind not in "iuf":
        raise TypeError(f"StandardScaler.{what} expects real numbers, got dtype {data.dtype}")
    return data


def _out_dtype(data: NDArray[Any]) -> np.dtype[Any]:
    return data.dtype if data.dtype.kind == "f" else np.dtype(np.float64)
