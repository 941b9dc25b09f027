"""Built-in datasets: shapes, dtypes, no NaN, values checked against the raw sources, determinism.

statsmodels and scikit-learn are dev dependencies; importorskip only guards a bare install.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data import load_co2, load_digits_sequences, load_sunspots, load_text_corpus


def test_co2_monthly() -> None:
    pytest.importorskip("statsmodels")
    values, dates = load_co2()
    assert values.shape == dates.shape == (526,)
    assert values.dtype == np.float64 and dates.dtype == np.dtype("datetime64[M]")
    assert not np.isnan(values).any()
    assert dates[0] == np.datetime64("1958-03") and dates[-1] == np.datetime64("2001-12")
    assert (np.diff(dates) == np.timedelta64(1, "M")).all()
    # 1958-03 has one week (316.1); April's four weeks are 317.3, 317.6, 317.5, 316.4.
    assert values[0] == pytest.approx(316.1)
    assert values[1] == pytest.approx((317.3 + 317.6 + 317.5 + 316.4) / 4)
    # June 1958 has no observed week: halfway between May and July.
    june = int(np.flatnonzero(dates == np.datetime64("1958-06"))[0])
    assert values[june] == pytest.approx((values[june - 1] + values[june + 1]) / 2)
    assert 310 < values.min() and values.max() < 375


def test_co2_weekly_interpolates_missing_weeks() -> None:
    co2 = pytest.importorskip("statsmodels.datasets.co2")
    raw = co2.load().data["co2"].to_numpy()
    values, dates = load_co2(freq="weekly")
    assert values.shape == dates.shape == (2284,) and dates.dtype == np.dtype("datetime64[D]")
    assert (np.diff(dates) == np.timedelta64(7, "D")).all()
    assert not np.isnan(values).any()
    seen = ~np.isnan(raw)
    np.testing.assert_array_equal(values[seen], raw[seen])
    # Week 6 is missing between observed weeks 5 and 7; weeks 9-13 form a gap of five.
    assert np.isnan(raw[6]) and values[6] == pytest.approx((raw[5] + raw[7]) / 2)
    assert np.isnan(raw[9:14]).all()
    np.testing.assert_allclose(values[8:15], np.linspace(raw[8], raw[14], 7))


def test_co2_is_deterministic_and_checks_freq() -> None:
    pytest.importorskip("statsmodels")
    a, b = load_co2(), load_co2()
    np.testing.assert_array_equal(a.values, b.values)
    with pytest.raises(ValueError, match='freq must be "monthly" or "weekly", got \'daily\''):
        load_co2("daily")


def test_sunspots() -> None:
    pytest.importorskip("statsmodels")
    values, dates = load_sunspots()
    assert values.shape == dates.shape == (309,)
    assert values.dtype == np.float64 and dates.dtype == np.dtype("datetime64[Y]")
    assert dates[0] == np.datetime64("1700") and dates[-1] == np.datetime64("2008")
    assert (np.diff(dates) == np.timedelta64(1, "Y")).all()
    np.testing.assert_array_equal(values[:3], [5.0, 11.0, 16.0])
    assert not np.isnan(values).any() and values.min() >= 0


def test_digits_sequences_read_row_by_row() -> None:
    sk_datasets = pytest.importorskip("sklearn.datasets")
    x, y = load_digits_sequences()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0 and not np.isnan(x).any()
    assert set(np.unique(y)) == set(range(10))
    images = sk_datasets.load_digits().images
    np.testing.assert_array_equal(x[5, 3], images[5][3] / 16)  # step 3 = pixel row 3
    raw, _ = load_digits_sequences(scale=False)
    assert raw.max() == 16.0
    np.testing.assert_array_equal(raw, images)


def test_missing_optional_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "statsmodels.datasets.co2", None)
    monkeypatch.setitem(sys.modules, "statsmodels.datasets.sunspots", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(
        ImportError,
        match=r"load_co2\(\) .* pip install statsmodels \(or pip install 'rnnkit\[cli\]'\)",
    ):
        load_co2()
    with pytest.raises(ImportError, match="load_sunspots.*pip install statsmodels"):
        load_sunspots()
    with pytest.raises(ImportError, match="load_digits_sequences.*pip install scikit-learn"):
        load_digits_sequences()


def test_text_corpus_is_stdlib_source_in_fixed_order() -> None:
    text = load_text_corpus(max_chars=5000)
    assert len(text) == 5000
    abc = (Path(sysconfig.get_paths()["stdlib"]) / "abc.py").read_text(encoding="utf-8")
    assert text == abc[:5000]  # abc.py comes first in the sorted list
    full = load_text_corpus(max_chars=None)
    assert load_text_corpus(max_chars=None) == full  # deterministic
    assert len(full) > 500_000 and "def " in full and "\r" not in full
    assert load_text_corpus() == full[:1_000_000]
    assert full.startswith(load_text_corpus(max_chars=300_000))


def test_text_corpus_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_chars must be >= 1, got 0"):
        load_text_corpus(max_chars=0)
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="no standard-library sources found under"):
        load_text_corpus()
