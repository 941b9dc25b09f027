"""``rnnkit predict``: a trained run's forecasts or classes for new data, as CSV.

Forecast runs read a CSV with the run's columns (and its date column, if it had one); without
``--csv`` they read the run's own series. Each complete window of the last ``window`` rows gives
the next ``horizon`` values; by default only the forecast from the end of the data (the future)
is written, ``--all-windows`` writes one row per window::

    origin,step_1,...,step_H        origin = the date (or row number) of the window's last row

Classify runs read ``--csv`` (the feature columns of training, any label column ignored) or
``--npy`` and write ``row,predicted,probability`` plus one probability column per class.
The scaler / scaling saved with the run is applied, never refitted.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig

__all__ = ["predict_rows"]


def predict_rows(config: RunConfig, model: Any, preprocessing: dict[str, Any],
                 csv_path: Path | None, npy_path: Path | None, all_windows: bool
                 ) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of the prediction table."""
    task = preprocessing.get("task")
    if task == "forecast":
        if npy_path is not None:
            raise ValueError("--npy is for classify runs; a forecast run reads --csv")
        return _forecast(config, model, preprocessing, csv_path, all_windows)
    if task == "classify":
        return _classify(config, model, preprocessing, csv_path, npy_path)
    if task == "text":
        raise ValueError("this is a text run: predict has no view of it (it writes forecasts "
                         "or classes); sample from it with rnnkit generate RUN_DIR")
    raise ValueError(f"this is a {task} run: predict has no view of it (it writes forecasts or "
                     "classes); translate text with rnnkit translate RUN_DIR TEXT...")


def _forecast(config: RunConfig, model: Any, pre: dict[str, Any], csv_path: Path | None,
              all_windows: bool) -> tuple[list[str], list[list[Any]]]:
    from .tasks.forecast import WindowScaling, load_series

    columns = pre["columns"]
    if csv_path is not None:
        # The run's column names and date column, read from the new file.
        source = config.replace(csv=str(csv_path), target=columns[0], features=columns[1:],
                                dataset=None)
    else:
        source = config
    series = load_series(source)
    window, horizon = int(pre["window"]), int(pre["horizon"])
    rows = len(series.values)
    if rows < window:
        raise ValueError(f"the series ({series.source}) has {rows} rows; a forecast needs the "
                         f"last --window = {window} rows")
    ends = np.arange(window - 1, rows) if all_windows else np.array([rows - 1])  # last rows
    x_raw = series.values[ends[:, None] - window + 1 + np.arange(window)]  # (N, W, F)
    scaling = WindowScaling.from_dict(pre["scaling"])
    y = scaling.untargets(model.predict(scaling.inputs(x_raw), batch_size=256, verbose=0), x_raw)
    header = ["origin", *[f"step_{k + 1}" for k in range(horizon)]]
    out = [[str(series.times[e]), *[f"{v:.6g}" for v in y[i]]] for i, e in enumerate(ends)]
    return header, out


def _classify(config: RunConfig, model: Any, pre: dict[str, Any], csv_path: Path | None,
              npy_path: Path | None) -> tuple[list[str], list[list[Any]]]:
    from ..data import StandardScaler
    from .tasks.classify import load_samples

    if (csv_path is None) == (npy_path is None):
        raise ValueError("give the sequences to classify with --csv FILE or --npy FILE "
                         "(one of them)")
    source = config.replace(features=pre.get("csv_features") or [], labels=None,
                            timesteps=int(pre["timesteps"]), csv=None, npy=None)
    if csv_path is not None:
        source = source.replace(csv=str(csv_path))
        if not source.features:  # every column but the training's label column
            from .table import read_csv

            names = read_csv(csv_path).columns
            source = source.replace(features=[c for c in names if c != config.target])
    else:
        source = source.replace(npy=str(npy_path))
    x, _, where = load_samples(source, labels_required=False)
    expected = (int(pre["timesteps"]), int(pre["features"]))
    if tuple(x.shape[1:]) != expected:
        raise ValueError(f"{where}: sequences of shape {tuple(x.shape[1:])} (steps, features), "
                         f"but the model was trained on {expected}")
    x = StandardScaler.from_dict(pre["scaler"]).transform(x).astype(np.float32)
    logits = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    classes = pre["classes"]
    header = ["row", "predicted", "probability", *[f"p_{c}" for c in classes]]
    best = p.argmax(axis=1)
    out = [[i, classes[b], f"{p[i, b]:.4f}", *[f"{v:.4f}" for v in p[i]]]
           for i, b in enumerate(best)]
    return header, out


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
