"""Forecasting: the next ``horizon`` values of a series from the ``window`` values before them.

Data: a built-in series (``co2``: Mauna Loa CO2, monthly, the default; ``sunspots``: yearly)
or a CSV (``--csv FILE --target COL [--features COL ...] [--date-column COL]``).

Split: the rows are cut in time order into 70% train, 15% validation, 15% test. Windows are
cut over the whole series (``make_windows``: sample i reads rows i .. i+window-1 and predicts
rows i+window .. i+window+horizon-1); a window belongs to the part that holds all its target
rows, and windows whose targets straddle two parts are dropped. A test window may read inputs
from the validation rows before it: they are the past at the time of the forecast.

Scaling, fitted on the training rows only (``--relative``, the default): each window is
expressed relative to its last input row, and divided by the standard deviation of the
training rows' one-step changes::

    x = (X - X[-1]) / s_changes          y = (Y - X[-1, target]) / s_changes[target]

so the network models changes rather than levels and still works when the test period lies
outside the training range (a trending series such as CO2). ``--no-relative`` standardises
levels instead: ``x = (X - mean) / std``, ``y = (Y - mean[target]) / std[target]``.

Baselines on the same test windows: naive (every step = the last observed value) and
seasonal naive (step k = the value one season earlier: ``y[t + k - s * ceil((k + 1) / s)]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..config import RunConfig
from ..table import read_csv
from ._base import Prepared, Report, Task, recurrent_stack

__all__ = ["ForecastTask", "Series", "WindowScaling", "load_series"]

FRACTIONS = (0.7, 0.15, 0.15)
# Beyond this, squares (variances, squared errors) overflow float64: refused, never NaN metrics.
_TOO_LARGE = 1e150
_TOO_LARGE_MESSAGE = ("the series' values are too large to scale: beyond about 1e150 their "
                      "squares overflow float64; divide the columns by a constant first")

# Built-in series: loader name, season, default window.
_BUILTIN = {
    "co2": {"season": 12, "window": 24, "target": "co2", "unit": "ppm"},
    "sunspots": {"season": 11, "window": 22, "target": "sunspots", "unit": ""},
}


@dataclass
class Series:
    """A multivariate series: ``values`` (T, F) with the target in column 0."""

    values: NDArray[np.float64]
    columns: list[str]
    times: NDArray[Any]  # (T,) datetime64, or row numbers when there are no dates
    season: int | None
    source: str


def load_series(config: RunConfig) -> Series:
    """The series a forecast run reads: its CSV, or the built-in dataset."""
    if config.csv:
        return _csv_series(config)
    from ... import data

    name = config.dataset or "co2"
    loaded = data.load_co2() if name == "co2" else data.load_sunspots()
    info = _BUILTIN[name]
    season = config.season if config.season is not None else info["season"]
    return Series(loaded.values.reshape(-1, 1), [info["target"]], loaded.dates, season,
                  f"built-in dataset {name}")


def _csv_series(config: RunConfig) -> Series:
    assert config.csv is not None
    table = read_csv(Path(config.csv))
    if not config.target:
        raise ValueError(f"--target is required with --csv: name the column to forecast "
                         f"(the columns of {config.csv} are: {', '.join(table.columns)})")
    names = [config.target, *[f for f in config.features if f != config.target]]
    table.require([config.target], "--target")
    table.require(names[1:], "--features")
    values = table.matrix(names)
    season = config.season
    if config.date_column:
        table.require([config.date_column], "--date-column")
        times = _dates(table.text(config.date_column), config.date_column, config.csv)
        if season is None:
            season = _season_from_spacing(times)
    else:
        times = np.arange(len(values))
    return Series(values, names, times, season, f"{config.csv}")


def _dates(cells: list[str], column: str, path: str) -> NDArray[np.datetime64]:
    out = []
    for i, cell in enumerate(cells):
        try:
            out.append(np.datetime64(cell))
        except ValueError:
            raise ValueError(f"{path}: --date-column {column!r} row {i + 2} holds {cell!r}, "
                             "which is not an ISO date such as 2001-12-31") from None
    times = np.array(out)
    steps = np.diff(times)
    if len(steps) and not (steps > np.timedelta64(0)).all():
        row = int(np.argmax(~(steps > np.timedelta64(0)))) + 3
        raise ValueError(f"{path}: the rows must be in increasing time order, but "
                         f"{column!r} does not increase at row {row}")
    return times


def _season_from_spacing(times: NDArray[np.datetime64]) -> int | None:
    """Hourly -> 24, daily -> 7, weekly -> 52, monthly -> 12, quarterly -> 4, else None."""
    if len(times) < 3:
        return None
    days = float(np.median(np.diff(times).astype("timedelta64[s]").astype(np.float64))) / 86400
    for low, high, season in ((1 / 24 * 0.9, 1 / 24 * 1.1, 24), (0.9, 1.1, 7), (6.5, 7.5, 52),
                              (27.5, 31.5, 12), (88, 93, 4)):
        if low <= days <= high:
            return season
    return None


@dataclass
class WindowScaling:
    """The map between raw windows and the network's inputs/targets (see the module notes)."""

    relative: bool
    mean: NDArray[np.float64]   # (F,), zeros when relative
    scale: NDArray[np.float64]  # (F,)

    @classmethod
    def fit(cls, train_rows: NDArray[np.float64], relative: bool) -> WindowScaling:
        from ...data import StandardScaler

        if np.abs(train_rows).max(initial=0.0) > _TOO_LARGE:
            raise ValueError(_TOO_LARGE_MESSAGE)
        if relative:
            if len(train_rows) < 2:
                raise ValueError("the training split needs at least 2 rows to measure changes")
            scaler = StandardScaler().fit(np.diff(train_rows, axis=0))
            return cls(True, np.zeros(train_rows.shape[1]), np.asarray(scaler.scale_))
        scaler = StandardScaler().fit(train_rows)
        return cls(False, np.asarray(scaler.mean_), np.asarray(scaler.scale_))

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mean).all() and np.isfinite(self.scale).all()):
            raise ValueError(_TOO_LARGE_MESSAGE)

    def _anchor(self, x_raw: NDArray[np.float64]) -> NDArray[np.float64]:
        return x_raw[:, -1:, :] if self.relative else self.mean.reshape(1, 1, -1)  # (N|1, 1, F)

    def inputs(self, x_raw: NDArray[np.float64]) -> NDArray[np.float32]:
        """(N, W, F) raw windows -> network inputs."""
        return ((x_raw - self._anchor(x_raw)) / self.scale).astype(np.float32)

    def targets(self, y_raw: NDArray[np.float64], x_raw: NDArray[np.float64]) -> NDArray[np.float32]:
        """(N, H) raw targets -> network targets."""
        return ((y_raw - self._anchor(x_raw)[:, :, 0]) / self.scale[0]).astype(np.float32)

    def untargets(self, y: NDArray[Any], x_raw: NDArray[np.float64]) -> NDArray[np.float64]:
        """Network outputs (N, H) -> forecasts in the target's units."""
        return np.asarray(y, dtype=np.float64) * self.scale[0] + self._anchor(x_raw)[:, :, 0]

    def to_dict(self) -> dict[str, Any]:
        return {"relative": self.relative, "mean": self.mean.tolist(),
                "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowScaling:
        return cls(bool(data["relative"]), np.asarray(data["mean"], dtype=np.float64),
                   np.asarray(data["scale"], dtype=np.float64))


def raw_windows(series: Series, window: int, horizon: int, source: str
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """All windows of ``series``: X (N, window, F) and the target's next values Y (N, horizon)."""
    from ...data import make_windows

    rows = len(series.values)
    if rows < window + horizon:
        raise ValueError(f"the series ({source}) has {rows} rows, fewer than --window + "
                         f"--horizon = {window} + {horizon} = {window + horizon}")
    return make_windows(series.values, window=window, horizon=horizon, target=0)


class ForecastTask(Task):
    name = "forecast"
    datasets = tuple(_BUILTIN)
    plots = ("forecast.png",)
    defaults = {"units": 32, "epochs": 40, "batch_size": 32, "lr": 3e-3, "window": 24}

    def check(self, config: RunConfig) -> None:
        for option, value in (("--npy", config.npy), ("--labels", config.labels),
                              ("--text", config.text)):
            if value:
                raise ValueError(f"{option} is not used by --task forecast (it reads --csv)")
        if not config.csv and (config.target or config.features or config.date_column):
            raise ValueError("--target/--features/--date-column need --csv FILE")
        if config.dataset and config.dataset not in self.datasets:
            raise ValueError(f"--dataset {config.dataset!r} is not a forecast dataset: choose "
                             f"from {', '.join(self.datasets)}")

    def window_default(self, config: RunConfig) -> int:
        if config.csv:
            return int(self.defaults["window"])
        return int(_BUILTIN[config.dataset or "co2"]["window"])

    def prepare(self, config: RunConfig) -> Prepared:
        assert config.window is not None
        series = load_series(config)
        window, horizon = config.window, config.horizon
        x_raw, y_raw = raw_windows(series, window, horizon, series.source)
        from ...data import chronological_split

        rows = len(series.values)
        train, val, test = chronological_split(rows, fractions=FRACTIONS)
        first = np.arange(len(x_raw)) + window  # (N,) row of each window's first target
        last = first + horizon - 1
        parts = {
            "training": last < train.stop,
            "validation": (first >= val.start) & (last < val.stop),
            "test": first >= test.start,
        }
        for (name, chosen), part in zip(parts.items(), (train, val, test)):
            if not chosen.any():
                raise ValueError(
                    f"the {name} split (rows {part.start + 1}-{part.stop} of {rows}) is too "
                    f"short for one window of --window {window} + --horizon {horizon}: use a "
                    "smaller --window or --horizon, or a longer series")
        scaling = WindowScaling.fit(series.values[train], config.relative)
        x = scaling.inputs(x_raw)
        y = scaling.targets(y_raw, x_raw)
        is_train, is_val, is_test = parts.values()
        preprocessing = {
            "task": "forecast", "columns": series.columns, "target": series.columns[0],
            "window": window, "horizon": horizon, "season": series.season,
            "date_column": config.date_column, "scaling": scaling.to_dict(),
        }
        described = (f"{series.source}: {rows} rows x {len(series.columns)} column(s), "
                     f"windows of {window} -> next {horizon}; "
                     f"{int(is_train.sum())}/{int(is_val.sum())}/{int(is_test.sum())} "
                     "train/val/test windows")
        return Prepared(
            x[is_train], y[is_train], x[is_val], y[is_val], x[is_test], y[is_test],
            preprocessing, described,
            extra={"series": series, "scaling": scaling, "x_test_raw": x_raw[is_test],
                   "y_test_raw": y_raw[is_test], "test_first_row": first[is_test],
                   "test_start": test.start},
        )

    def build_model(self, config: RunConfig, data: Prepared) -> Any:
        from ... import layers
        from ...models import Sequential

        return Sequential([layers.Input(shape=data.input_shape),
                           *recurrent_stack(config, return_sequences=False),
                           layers.Dense(config.horizon)])

    def compile_args(self, config: RunConfig, data: Prepared) -> dict[str, Any]:
        from ...training import optimizers

        return {"optimizer": optimizers.Adam(learning_rate=config.lr), "loss": "mse",
                "metrics": ["mae"]}

    def evaluate(self, model: Any, config: RunConfig, data: Prepared,
                 plot_dir: Path | None) -> Report:
        series: Series = data.extra["series"]
        scaling: WindowScaling = data.extra["scaling"]
        x_raw, actual = data.extra["x_test_raw"], data.extra["y_test_raw"]  # (N, W, F), (N, H)
        first = data.extra["test_first_row"]
        predicted = scaling.untargets(model.predict(data.x_test, batch_size=256, verbose=0),
                                      x_raw)
        naive = np.repeat(x_raw[:, -1, :1], actual.shape[1], axis=1)
        seasonal = seasonal_naive(series.values[:, 0], first, actual.shape[1], series.season)
        from ..._kernels._cell_spec import spec

        cell = spec(config.cell).keras_class
        results = {"model": _errors(predicted, actual), "naive": _errors(naive, actual)}
        rows = [(f"rnnkit {cell}", results["model"]), ("naive (last value)", results["naive"])]
        if seasonal is not None:
            results["seasonal_naive"] = _errors(seasonal, actual)
            rows.append((f"seasonal naive (season {series.season})", results["seasonal_naive"]))
        metrics = {f"{who}_{k}": v for who, errs in results.items() for k, v in errs.items()}
        metrics.update({"test_windows": len(actual), "horizon": int(actual.shape[1]),
                        "target": series.columns[0]})
        best = min((k for k in results if k != "model"), key=lambda k: results[k]["mae"])
        gain = 1 - results["model"]["mae"] / results[best]["mae"] if results[best]["mae"] else 0.0
        name = {"naive": "the naive forecast", "seasonal_naive": "the seasonal-naive forecast"}
        verdict = "beats" if gain > 0 else "does NOT beat"
        headline = (f"Test MAE {results['model']['mae']:.4g} vs {results[best]['mae']:.4g}: the "
                    f"model {verdict} {name[best]} ({abs(gain):.0%} "
                    f"{'lower' if gain > 0 else 'higher'} error)")
        plots = []
        if plot_dir is not None:
            from ..plots import forecast_plot

            path = plot_dir / "forecast.png"
            start = data.extra["test_start"]
            context = slice(max(0, start - 3 * len(first)), start)
            baseline = seasonal if seasonal is not None else naive
            step = "1-step-ahead" if actual.shape[1] == 1 else f"step 1 of {actual.shape[1]}"
            forecast_plot(
                actual[:, 0], predicted[:, 0], path, times=series.times[first],
                history=series.values[context, 0], history_times=series.times[context],
                baseline=baseline[:, 0],
                baseline_label="seasonal naive" if seasonal is not None else "naive",
                target=series.columns[0],
                title=f"{series.columns[0]}: {step} forecasts on the test split "
                      f"(MAE {results['model']['mae']:.3g} vs {best.replace('_', '-')} "
                      f"{results[best]['mae']:.3g})")
            plots.append(path)
        columns = ["MAE", "RMSE"]
        table = [(label, [f"{errs['mae']:.4g}", f"{errs['rmse']:.4g}"]) for label, errs in rows]
        return Report(metrics, columns, table, headline, plots)


def seasonal_naive(target: NDArray[np.float64], first: NDArray[np.int64], horizon: int,
                   season: int | None) -> NDArray[np.float64] | None:
    """Step k of the forecast made before row t = first: ``target[t + k - s*ceil((k+1)/s)]``."""
    if not season:
        return None
    steps = np.arange(horizon)
    lag = season * np.ceil((steps + 1) / season).astype(np.int64)  # (H,)
    rows = first[:, None] + steps[None, :] - lag[None, :]  # (N, H)
    if (rows < 0).any():
        return None
    return target[rows]


def _errors(predicted: NDArray[np.float64], actual: NDArray[np.float64]) -> dict[str, float]:
    """MAE and RMSE; a ValueError where they are not finite numbers (never NaN metrics)."""
    diff = predicted - actual
    if not np.isfinite(diff).all():
        raise ValueError("the forecast errors are not finite numbers: the series' values "
                         "overflow float64 arithmetic; divide the columns by a constant first")
    largest = float(np.max(np.abs(diff), initial=0.0))
    if largest > 1e150:  # diff ** 2 would overflow: measure in units of the largest error
        unit = diff / largest
        return {"mae": largest * float(np.mean(np.abs(unit))),
                "rmse": largest * math.sqrt(float(np.mean(unit ** 2)))}
    return {"mae": float(np.mean(np.abs(diff))), "rmse": math.sqrt(float(np.mean(diff ** 2)))}
