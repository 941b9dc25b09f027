"""The forecast task's data path: windows, splits, scaling fitted on train, baselines."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.cli.config import RunConfig
from rnnkit.cli.tasks.forecast import (
    ForecastTask,
    WindowScaling,
    _season_from_spacing,
    seasonal_naive,
)


def write_series(tmp_path, values, extra=None, dates=None, name="s.csv"):
    path = tmp_path / name
    header = (["date"] if dates is not None else []) + ["y"] + (["x"] if extra is not None else [])
    lines = [",".join(header)]
    for i, v in enumerate(values):
        row = ([str(dates[i])] if dates is not None else []) + [repr(float(v))]
        if extra is not None:
            row.append(repr(float(extra[i])))
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def prepare(path, **kw):
    config = RunConfig(task="forecast", csv=str(path), target="y", **kw)
    return ForecastTask().prepare(config)


@pytest.mark.parametrize("relative", [True, False])
def test_windows_targets_and_inverse(tmp_path, relative):
    values = np.arange(100.0) ** 1.5
    data = prepare(write_series(tmp_path, values), window=5, horizon=2, relative=relative)
    scaling = data.extra["scaling"]
    x_raw, y_raw = data.extra["x_test_raw"], data.extra["y_test_raw"]
    first = data.extra["test_first_row"]
    # Raw windows read the rows right before their targets (make_windows' alignment).
    np.testing.assert_array_equal(x_raw[:, :, 0], values[first[:, None] - 5 + np.arange(5)])
    np.testing.assert_array_equal(y_raw, values[first[:, None] + np.arange(2)])
    # Network targets map back to the raw targets exactly (float64 round trip, float32 stored).
    back = scaling.untargets(data.y_test, x_raw)
    np.testing.assert_allclose(back, y_raw, rtol=1e-6)


def test_split_is_chronological_and_windows_do_not_cross(tmp_path):
    data = prepare(write_series(tmp_path, np.arange(100.0)), window=5, horizon=3)
    # rows 0..69 train, 70..84 validation, 85..99 test (chronological_split of 100 rows)
    assert data.extra["test_start"] == 85
    first = data.extra["test_first_row"]
    assert first.min() == 85 and first.max() == 97  # all 13 windows whose targets are test rows
    assert len(data.x_train) == 70 - 5 - 3 + 1      # targets end by row 69
    assert len(data.x_val) == 15 - 3 + 1            # targets inside rows 70..84
    assert len(data.x_test) == 13


def test_scaling_is_fitted_on_training_rows_only(tmp_path):
    values = np.concatenate([np.zeros(70) + np.arange(70) % 2, 1000 + np.arange(30.0)])
    data = prepare(write_series(tmp_path, values), window=4, relative=False)
    train = values[:70]
    np.testing.assert_allclose(data.extra["scaling"].mean, [train.mean()])
    np.testing.assert_allclose(data.extra["scaling"].scale, [train.std()])
    rel = prepare(write_series(tmp_path, values, name="r.csv"), window=4, relative=True)
    np.testing.assert_allclose(rel.extra["scaling"].scale, [np.diff(train).std()])


def test_relative_inputs_end_at_zero(tmp_path):
    data = prepare(write_series(tmp_path, np.linspace(5, 50, 60), extra=np.arange(60.0) ** 2),
                   window=6, features=["x"])
    assert data.x_train.shape[1:] == (6, 2)
    np.testing.assert_array_equal(data.x_train[:, -1, :], 0.0)
    assert data.preprocessing["columns"] == ["y", "x"]


def test_scaling_round_trips_through_dict():
    scaling = WindowScaling(True, np.zeros(2), np.array([0.5, 3.0]))
    again = WindowScaling.from_dict(scaling.to_dict())
    x = np.random.default_rng(0).normal(size=(4, 3, 2))
    np.testing.assert_array_equal(again.inputs(x), scaling.inputs(x))


def test_seasonal_naive_uses_last_season_and_wraps_long_horizons():
    target = np.arange(50.0)
    first = np.array([20, 30])
    got = seasonal_naive(target, first, horizon=5, season=3)
    # steps k = 0..4 with season 3 take rows t+k-3, t+k-3, t+k-3, t+k-6, t+k-6
    np.testing.assert_array_equal(got[0], [17, 18, 19, 17, 18])
    np.testing.assert_array_equal(got[1], [27, 28, 29, 27, 28])
    assert seasonal_naive(target, np.array([1]), horizon=1, season=3) is None  # before row 0
    assert seasonal_naive(target, first, horizon=1, season=None) is None


@pytest.mark.parametrize("step, season", [
    ("h", 24), ("D", 7), ("W", 52), ("M", 12), (None, None)])
def test_season_from_date_spacing(step, season):
    if step is None:
        times = np.arange("2000", "2010", dtype="datetime64[Y]")
    elif step == "M":
        times = np.arange("2000-01", "2003-01", dtype="datetime64[M]").astype("datetime64[D]")
    else:
        times = np.datetime64("2000-01-01T00", "h") + np.arange(40) * np.timedelta64(
            {"h": 1, "D": 24, "W": 168}[step], "h")
    assert _season_from_spacing(times) == season


def test_dates_are_read_and_season_inferred(tmp_path):
    dates = np.arange("2000-01", "2010-01", dtype="datetime64[M]")
    data = prepare(write_series(tmp_path, np.arange(120.0), dates=dates), window=12,
                   date_column="date")
    assert data.preprocessing["season"] == 12
    series = data.extra["series"]
    assert series.times[0] == np.datetime64("2000-01-01")


@pytest.mark.parametrize("kw, rows, message", [
    ({"window": 30}, 20, r"has 20 rows, fewer than --window \+ --horizon = 30 \+ 1 = 31"),
    ({"window": 10, "horizon": 7}, 40, r"the validation split \(rows 29-34 of 40\) is too short"),
])
def test_short_series(tmp_path, kw, rows, message):
    with pytest.raises(ValueError, match=message):
        prepare(write_series(tmp_path, np.arange(float(rows))), **kw)


def test_dates_out_of_order(tmp_path):
    dates = np.array(["2000-01-01", "2000-01-03", "2000-01-02"] + [
        str(np.datetime64("2000-02-01") + i) for i in range(30)])
    with pytest.raises(ValueError, match="increasing time order.*row 4"):
        prepare(write_series(tmp_path, np.arange(33.0), dates=dates), window=3,
                date_column="date")


def test_the_forecast_plot_labels_its_axis_with_the_unit(monkeypatch, tmp_path):
    """The CO2 series is in ppm: the plot's y axis says so; a CSV's unknown unit is left out."""
    from rnnkit.cli import plots
    from rnnkit.cli.tasks.forecast import load_series

    figures = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure))
    series = load_series(RunConfig(task="forecast"))
    assert series.unit == "ppm"
    for unit, label in ((series.unit, "co2 (ppm)"), ("", "co2")):
        plots.forecast_plot([1.0, 2.0], [1.5, 2.5], tmp_path / "f.png", target="co2", unit=unit)
        assert figures[-1].axes[0].get_ylabel() == label
