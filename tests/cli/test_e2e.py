"""The ``rnnkit`` command end to end, on small generated data and the built-in datasets.

Each test runs the real command (typer's runner, in-process; a subprocess where a signal or the
console script itself is the point) for a few epochs and checks what a user would: the files in
RUN_DIR, the printed and saved metrics, that ``predict``/``evaluate``/``summary``/``generate``
work on the run, that ``--resume`` ends with the same weights as an uninterrupted run, that
Ctrl-C keeps the last completed epoch, and that bad input gives one ``error:`` line and exit 1.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.models import load_model

RUN_FILES = {"run.json", "preprocessing.json", "model.rnnkit", "history.csv", "history.json",
             "metrics.json", "learning_curves.png", "checkpoint"}


def rnnkit(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def train(*args: object) -> tuple[int, str, str]:
    return rnnkit("train", "--quiet", *args)


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Monthly series: trend + a 12-month season + noise, a distractor column and a text one."""
    rng = np.random.default_rng(0)
    t = np.arange(300)
    value = 10 + 3 * np.sin(2 * np.pi * t / 12) + 0.05 * t + rng.normal(0, 0.2, t.size)
    path = tmp_path_factory.mktemp("data") / "series.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "value", "other", "label"])
        for i, v in enumerate(value):
            writer.writerow([f"{2000 + i // 12}-{i % 12 + 1:02d}", f"{v:.4f}", i % 7, "x"])
    return path


FORECAST = ("--task", "forecast", "--target", "value", "--date-column", "date", "--window", 24,
            "--horizon", 3, "--units", 16, "--epochs", 5)


@pytest.fixture(scope="module")
def forecast_run(series_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "forecast"
    code, stdout, stderr = train(*FORECAST, "--csv", series_csv, "--out", out)
    assert code == 0, stderr
    return out


def _weights(run: Path) -> dict[str, np.ndarray]:
    model = load_model(run / "model.rnnkit")
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


# -- forecast ----------------------------------------------------------------------------------
def test_forecast_writes_the_run_and_beats_the_naive_forecast(forecast_run: Path) -> None:
    files = {p.name for p in forecast_run.iterdir()}
    assert RUN_FILES | {"forecast.png"} <= files
    metrics = json.loads((forecast_run / "metrics.json").read_text())
    assert metrics["epochs"] == 5 and metrics["horizon"] == 3
    # the series is learnable: the model beats "tomorrow equals today" after a few epochs
    assert metrics["model_mae"] < metrics["naive_mae"]
    history = json.loads((forecast_run / "history.json").read_text())
    assert len(history["loss"]) == 5 and history["loss"][-1] < history["loss"][0]
    rows = list(csv.DictReader(io.StringIO((forecast_run / "history.csv").read_text())))
    assert len(rows) == 5 and {"loss", "val_loss"} <= set(rows[0])
    for png in ("forecast.png", "learning_curves.png"):
        assert (forecast_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_evaluate_and_summary_on_a_forecast_run(forecast_run: Path,
                                                        series_csv: Path) -> None:
    code, stdout, stderr = rnnkit("predict", forecast_run, "--csv", series_csv)
    assert code == 0, stderr
    rows = list(csv.reader(io.StringIO(stdout)))
    assert rows[0] == ["origin", "step_1", "step_2", "step_3"]
    assert len(rows) == 2 and all(np.isfinite(float(v)) for v in rows[1][1:])
    # the next values of the series are near its recent level (about 24 to 28)
    assert all(15 < float(v) < 35 for v in rows[1][1:])

    code, stdout, stderr = rnnkit("predict", forecast_run, "--csv", series_csv, "--all-windows")
    assert code == 0, stderr
    assert len(list(csv.reader(io.StringIO(stdout)))) == 1 + 300 - 24 + 1  # every window, the last ones too

    code, stdout, stderr = rnnkit("evaluate", forecast_run)
    assert code == 0, stderr
    saved = json.loads((forecast_run / "metrics.json").read_text())
    assert f"{saved['model_mae']:.4g}" in stdout and "naive" in stdout

    code, stdout, stderr = rnnkit("summary", forecast_run)
    assert code == 0, stderr
    # layer names count up within a process (Keras' rule), and this one may have built others
    assert re.search(r"lstm(_\d+)? \(LSTM\)", stdout), stdout
    assert "Total params" in stdout and "1,203" in stdout


def test_same_seed_same_run(series_csv: Path, tmp_path: Path) -> None:
    args = (*FORECAST[:-1], 1, "--csv", series_csv)
    for name in ("a", "b"):
        assert train(*args, "--out", tmp_path / name)[0] == 0
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert train(*args, "--seed", 1, "--out", tmp_path / "c")[0] == 0
    c = _weights(tmp_path / "c")
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(series_csv: Path,
                                                              tmp_path: Path) -> None:
    args = (*FORECAST[:-2], "--csv", series_csv, "--dropout", 0.2)
    assert train(*args, "--epochs", 4, "--out", tmp_path / "whole")[0] == 0
    assert train(*args, "--epochs", 2, "--out", tmp_path / "split")[0] == 0
    code, _, stderr = train("--resume", tmp_path / "split", "--epochs", 4)
    assert code == 0, stderr
    whole, split = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    for key in whole:
        np.testing.assert_allclose(split[key], whole[key], rtol=0, atol=1e-6, err_msg=key)
    history = json.loads((tmp_path / "split" / "history.json").read_text())
    assert len(history["loss"]) == 4
    # the run is complete now: asking for the same number of epochs again is refused
    code, _, stderr = train("--resume", tmp_path / "split", "--epochs", 4)
    assert code == 1 and "already completed 4 epochs" in stderr


def test_ctrl_c_keeps_the_last_completed_epoch(series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "rnnkit", "train", "--quiet", *map(str, FORECAST[:-2]),
               "--epochs", "500", "--csv", str(series_csv), "--out", str(out)]
    # SIGINT back to its default in the child: a test run in the background (`pytest &`)
    # ignores SIGINT, and a child would inherit that and never see the Ctrl-C
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    checkpoint = out / "checkpoint" / "backup.safetensors"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert checkpoint.is_file(), "no epoch finished in time"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Interrupted: kept the" in stderr and "Traceback" not in stderr
    assert (out / "model.rnnkit").exists()
    history = json.loads((out / "history.json").read_text())
    assert 1 <= len(history["loss"]) < 500
    # the run continues from there
    code, _, stderr = train("--resume", out, "--epochs", len(history["loss"]) + 1)
    assert code == 0, stderr


# -- classify and text -------------------------------------------------------------------------
def test_classify_from_npy_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(240, 10, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)  # the sign of a running sum
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "run"
    code, stdout, stderr = train("--task", "classify", "--npy", tmp_path / "x.npy", "--labels",
                                 tmp_path / "y.npy", "--cell", "gru", "--units", 16,
                                 "--epochs", 8, "--out", out)
    assert code == 0, stderr
    assert (out / "confusion_matrix.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    accuracy = next(v for k, v in metrics.items() if "accuracy" in k and "majority" not in k)
    assert accuracy > 0.75  # chance is about 0.5
    assert "accuracy" in stdout.lower()

    np.save(tmp_path / "new.npy", x[:5])
    code, stdout, stderr = rnnkit("predict", out, "--npy", tmp_path / "new.npy")
    assert code == 0, stderr
    rows = list(csv.reader(io.StringIO(stdout)))
    assert len(rows) == 6


@pytest.mark.parametrize("cell", ["peephole_lstm", "layer_norm_lstm", "layer_norm_gru"])
def test_the_new_cells_train_save_and_predict(tmp_path: Path, cell: str) -> None:
    """--cell takes every cell of rnnkit._kernels._cell_spec: the model holds that cell's
    Keras-style layer, is saved and loaded, and predicts."""
    from rnnkit._kernels._cell_spec import spec

    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 6, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", (x[:, :, 0].sum(axis=1) > 0).astype(np.int64))
    out = tmp_path / "run"
    code, _, stderr = train("--task", "classify", "--npy", tmp_path / "x.npy", "--labels",
                            tmp_path / "y.npy", "--cell", cell, "--units", 4, "--epochs", 1,
                            "--bidirectional", "--out", out)
    assert code == 0, stderr
    assert json.loads((out / "run.json").read_text())["cell"] == cell
    model = load_model(out / "model.rnnkit")
    kinds = {type(layer).__name__ for layer in model.layers}
    kinds |= {type(getattr(layer, "forward_layer", None)).__name__ for layer in model.layers}
    assert spec(cell).keras_class in kinds
    np.save(tmp_path / "new.npy", x[:3])
    code, stdout, stderr = rnnkit("predict", out, "--npy", tmp_path / "new.npy")
    assert code == 0, stderr
    assert len(list(csv.reader(io.StringIO(stdout)))) == 4


def test_classify_built_in_digits(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "digits"
    code, stdout, stderr = train("--task", "classify", "--epochs", 3, "--units", 32,
                                 "--out", out)
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    accuracy = next(v for k, v in metrics.items() if "accuracy" in k and "majority" not in k)
    assert accuracy > 0.5  # 10 classes: chance is 0.1


def test_text_model_and_generate(tmp_path: Path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text("def add(a, b):\n    return a + b\n\n" * 60, encoding="utf-8")
    out = tmp_path / "text"
    code, stdout, stderr = train("--task", "text", "--text", text, "--window", 16, "--units", 32,
                                 "--epochs", 4, "--out", out)
    assert code == 0, stderr
    first = rnnkit("generate", out, "--prime", "def ", "--length", 40, "--seed", 3)
    again = rnnkit("generate", out, "--prime", "def ", "--length", 40, "--seed", 3)
    assert first[0] == 0, first[2]
    assert first[1] == again[1]  # seeded sampling repeats
    generated = first[1]
    assert generated.startswith("def ") and len(generated.rstrip("\n")) >= 44
    assert set(generated) <= set(text.read_text()) | {"\n"}
    greedy = rnnkit("generate", out, "--prime", "def ", "--length", 40, "--temperature", 0)
    assert greedy[0] == 0 and greedy[1].startswith("def ")


def test_default_run_is_the_co2_forecast(tmp_path: Path) -> None:
    pytest.importorskip("statsmodels")
    out = tmp_path / "co2"
    code, stdout, stderr = train("--epochs", 1, "--out", out)
    assert code == 0, stderr
    config = json.loads((out / "run.json").read_text())
    assert config["task"] == "forecast" and config["cell"] == "lstm"
    assert "naive (last value)" in stdout and "seasonal naive" in stdout
    assert (out / "forecast.png").is_file()


# -- bad input ---------------------------------------------------------------------------------
def _fails(args: tuple[object, ...], message: str) -> None:
    code, stdout, stderr = rnnkit(*args)
    assert code == 1, (code, stdout, stderr)
    assert stderr.startswith("error: ") and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_bad_input_gives_one_line_errors(series_csv: Path, forecast_run: Path,
                                         tmp_path: Path) -> None:
    base = ("train", "--quiet", "--task", "forecast", "--epochs", 1, "--out", tmp_path / "x")
    _fails((*base, "--csv", tmp_path / "missing.csv", "--target", "value"), "missing.csv")
    _fails((*base, "--csv", series_csv, "--target", "nope"), "nope")
    _fails((*base, "--csv", series_csv, "--target", "label"), "label")
    _fails((*base, "--csv", series_csv, "--target", "value", "--window", 290, "--horizon", 20),
           "window")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    _fails(("train", "--quiet", "--task", "text", "--text", empty, "--out", tmp_path / "t"),
           "empty")
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    for command in ("predict", "evaluate", "summary", "generate"):
        _fails((command, not_a_run), "not_a_run")
        _fails((command, tmp_path / "absent"), "absent")
    _fails(("train", "--resume", not_a_run), "not_a_run")


def test_an_existing_run_is_never_overwritten_unless_asked(forecast_run: Path,
                                                           series_csv: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in forecast_run.iterdir()}
    model_bytes = (forecast_run / "metrics.json").read_bytes()
    _fails(("train", "--quiet", *FORECAST, "--csv", series_csv, "--out", forecast_run),
           "--overwrite")
    assert {p.name: p.stat().st_mtime_ns for p in forecast_run.iterdir()} == before
    assert (forecast_run / "metrics.json").read_bytes() == model_bytes


def test_the_console_script_is_installed() -> None:
    result = subprocess.run([sys.executable, "-m", "rnnkit", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for command in ("train", "predict", "evaluate", "summary", "generate", "bench"):
        assert command in result.stdout
