"""Built-in datasets read from what installed packages carry: nothing is downloaded.

``load_co2``/``load_sunspots`` read the copies shipped inside statsmodels,
``load_digits_sequences`` scikit-learn's digits, ``load_text_corpus`` the Python standard
library's own source files. statsmodels and scikit-learn are imported only when called.
"""

from __future__ import annotations

import importlib
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._checks import check_int

__all__ = [
    "TimeSeries",
    "load_co2",
    "load_digits_sequences",
    "load_sunspots",
    "load_text_corpus",
]


class TimeSeries(NamedTuple):
    """A univariate series: ``values`` (T,) float64 and their ``dates`` (T,) datetime64."""

    values: NDArray[np.float64]
    dates: NDArray[np.datetime64]


def _require(module: str, package: str, caller: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{caller}() reads its data from {package}, which is not installed: "
            f"pip install {package} (or pip install 'rnnkit[cli]')"
        ) from e


def load_co2(freq: str = "monthly") -> TimeSeries:
    """Atmospheric CO2 at Mauna Loa in ppm, March 1958 to December 2001, without gaps.

    The source is the weekly series shipped with statsmodels (``statsmodels.datasets.co2``;
    2284 weeks ending on Saturdays, 59 of them missing).

    - ``freq="monthly"`` (default): 526 values, 1958-03 to 2001-12, ``dates`` as
      ``datetime64[M]``. Each is the mean of that month's observed weeks; the five months with
      no observed week (1958-06, 1958-10, 1964-02 to 1964-04) are filled by linear
      interpolation between the neighbouring months.
    - ``freq="weekly"``: 2284 values, ``dates`` as ``datetime64[D]``; missing weeks are filled
      by linear interpolation in time between the neighbouring observed weeks.
    """
    if freq not in ("monthly", "weekly"):
        raise ValueError(f'freq must be "monthly" or "weekly", got {freq!r}')
    co2 = _require("statsmodels.datasets.co2", "statsmodels", "load_co2")
    frame = co2.load().data
    dates = frame.index.to_numpy().astype("datetime64[D]")
    values = frame["co2"].to_numpy(dtype=np.float64)
    if freq == "weekly":
        return TimeSeries(_interpolate(values, dates.astype(np.int64)), dates)

    months = dates.astype("datetime64[M]")
    seen = ~np.isnan(values)
    slot = (months - months[0]).astype(np.int64)  # month number from the first month
    count = np.bincount(slot[seen], minlength=slot[-1] + 1)
    total = np.bincount(slot[seen], weights=values[seen], minlength=slot[-1] + 1)
    monthly = np.full(len(count), np.nan)
    np.divide(total, count, out=monthly, where=count > 0)
    all_months = months[0] + np.arange(len(count))
    return TimeSeries(_interpolate(monthly, np.arange(len(count))), all_months)


def _interpolate(values: NDArray[np.float64], at: NDArray[np.int64]) -> NDArray[np.float64]:
    """Fill NaNs linearly between the nearest observed neighbours (positions ``at``)."""
    gaps = np.isnan(values)
    filled = values.copy()
    filled[gaps] = np.interp(at[gaps], at[~gaps], values[~gaps])
    return filled


def load_sunspots() -> TimeSeries:
    """Yearly mean sunspot numbers 1700-2008 (309 values, none missing), from statsmodels
    (``statsmodels.datasets.sunspots``); ``dates`` are ``datetime64[Y]``."""
    sunspots = _require("statsmodels.datasets.sunspots", "statsmodels", "load_sunspots")
    frame = sunspots.load().data
    years = frame["YEAR"].to_numpy().astype(np.int64)
    values = frame["SUNACTIVITY"].to_numpy(dtype=np.float64)
    return TimeSeries(values, (years - 1970).astype("datetime64[Y]"))


def load_digits_sequences(scale: bool = True) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """scikit-learn's 8x8 handwritten digits read row by row: X (1797, 8, 8), y (1797,).

    ``X[n, t]`` is pixel row ``t`` of image ``n`` (8 time steps of 8 features), float32, in
    [0, 1] (the 0..16 grey levels divided by 16) or, with ``scale=False``, in 0..16.
    ``y`` holds the digits 0..9 as int64.
    """
    datasets = _require("sklearn.datasets", "scikit-learn", "load_digits_sequences")
    digits = datasets.load_digits()
    x = np.asarray(digits.images, dtype=np.float32)  # (N, 8 rows, 8 columns)
    if scale:
        x /= 16.0
    return x, np.asarray(digits.target, dtype=np.int64)


# Standard-library modules concatenated by load_text_corpus, in this (sorted) order. Each is a
# single file or a package's __init__.py; any a Python version lacks is skipped.
_CORPUS_MODULES = (
    "abc",
    "argparse",
    "bisect",
    "calendar",
    "collections",
    "contextlib",
    "copy",
    "dataclasses",
    "difflib",
    "enum",
    "fractions",
    "functools",
    "heapq",
    "inspect",
    "json.decoder",
    "json.encoder",
    "operator",
    "random",
    "shlex",
    "statistics",
    "string",
    "textwrap",
    "typing",
)


def load_text_corpus(max_chars: int | None = 1_000_000) -> str:
    """Python source text, for character-level language models: offline and deterministic.

    The source files of a fixed, sorted list of standard-library modules (``abc``,
    ``argparse``, ... ``typing``), read from the directory that
    ``sysconfig.get_paths()["stdlib"]`` names, joined in that order and cut to the first
    ``max_chars`` characters (``None``: everything). On CPython 3.11 that is 941,506
    characters, all within the default cap. The same Python gives the same text on every run;
    another Python version gives its own version of these files.
    """
    if max_chars is not None:
        max_chars = check_int("max_chars", max_chars, 1)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    size = 0
    for name in _CORPUS_MODULES:
        path = _module_file(stdlib, name)
        if path is None:
            continue
        text = path.read_text(encoding="utf-8")
        parts.append(text)
        size += len(text)
        if max_chars is not None and size >= max_chars:
            break
    if not parts:
        raise FileNotFoundError(
            f"no standard-library sources found under {stdlib}: this Python ships without its "
            ".py files, so load_text_corpus has nothing to read"
        )
    corpus = "".join(parts)
    return corpus if max_chars is None else corpus[:max_chars]


def _module_file(stdlib: Path, name: str) -> Path | None:
    base = stdlib.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None
