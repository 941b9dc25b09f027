"""``rnnkit diagnose``: plots and a reading for a trained run; clean errors for a missing or
invalid RUN_DIR and for contradictory arguments."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.cli.diagnosis import HISTORY_FILE

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _no_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_NO_EXTENSION", "1")  # no wait for the compiled kernels' build


def rnnkit(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "series.csv"
    values = np.sin(np.arange(160) / 3.0) + rng.normal(0, 0.1, 160)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["value"])
        writer.writerows([[f"{v:.4f}"] for v in values])
    out = tmp_path_factory.mktemp("runs") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNKIT_NO_EXTENSION", "1")
        code, _, stderr = rnnkit("train", "--quiet", "--task", "forecast", "--csv", path,
                                 "--target", "value", "--window", 12, "--units", 4,
                                 "--cell", "rnn", "--epochs", 1, "--out", out)
    assert code == 0, stderr
    return out


def test_diagnose_writes_plots_and_prints_a_reading(run: Path) -> None:
    code, stdout, stderr = rnnkit("diagnose", run, "--samples", 8)
    assert code == 0, stderr
    assert "the gradient at t=0 is" in stdout and "of the gradient at t=11" in stdout
    for name in ("gradient_flow.png", "hidden_states.png"):
        assert (run / name).read_bytes()[:8] == PNG
    summary = json.loads((run / "diagnostics.json").read_text())
    (layer,) = summary["layers"].values()
    assert layer["cell"] == "SimpleRNN" and len(layer["grad_norm"]) == 12
    assert not (run / "saturation_history.png").exists()


def test_diagnose_plots_saturation_over_training_when_a_history_exists(run: Path) -> None:
    record = {"epoch": 0, "loss": 1.0, "layers": {"simple_rnn": {
        "saturation": 0.1, "gate_saturation": {}, "gradient_ratio": 0.01}}}
    (run / HISTORY_FILE).write_text(json.dumps([record, {**record, "epoch": 1}]))
    code, _, stderr = rnnkit("diagnose", run, "--samples", 4)
    assert code == 0, stderr
    assert (run / "saturation_history.png").read_bytes()[:8] == PNG
    (run / HISTORY_FILE).write_text("[]")
    code, _, stderr = rnnkit("diagnose", run)
    assert code == 1 and "holds no diagnostics records" in stderr
    (run / HISTORY_FILE).unlink()
    (run / "saturation_history.png").unlink()


@pytest.mark.parametrize(("args", "message"), [
    (("{missing}",), "does not exist"),
    (("{empty}",), "is not an rnnkit run"),
    ((), "missing RUN_DIR"),
    (("{empty}", "--demo"), "either RUN_DIR or --demo"),
])
def test_clean_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    paths = {"missing": tmp_path / "nope", "empty": tmp_path}
    code, stdout, stderr = rnnkit("diagnose", *(a.format(**paths) for a in args))
    assert code == 1 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_demo_option_delegates_to_the_demo(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import rnnkit.diagnostics.demo as demo

    calls = []
    real = demo.run_demo

    def small(**kwargs):
        calls.append(kwargs)
        return real(**{**kwargs, "units": 2, "samples": 32})

    monkeypatch.setattr(demo, "run_demo", small)
    code, stdout, stderr = rnnkit("diagnose", "--demo", "--length", 4, "--epochs", 1,
                                  "--out", tmp_path)
    assert code == 0, stderr
    assert calls[0]["length"] == 4 and calls[0]["epochs"] == 1
    assert "| LSTM |" in stdout and (tmp_path / "demo.png").is_file()
    assert (tmp_path / "reading.txt").is_file()


@pytest.mark.parametrize(("edit", "field"), [
    ({"epoch": "1"}, "'epoch' must be an integer"),
    ({"epoch": -1}, "'epoch' must be >= 0"),
    ({"layers": []}, "'layers' must be an object"),
    ({"layers": {"simple_rnn": {"saturation": "high"}}}, "'layers.simple_rnn.saturation'"),
    ({"layers": {"simple_rnn": {"gate_saturation": {"z": "x"}}}},
     "'layers.simple_rnn.gate_saturation.z'"),
    ({"loss": None, "layers": None}, "'layers' must be an object"),
])
def test_an_edited_diagnostics_history_is_one_error(run: Path, edit: dict, field: str) -> None:
    record = {"epoch": 0, "loss": 1.0, "layers": {"simple_rnn": {
        "saturation": 0.1, "gate_saturation": {}, "gradient_ratio": 0.01}}}
    path = run / HISTORY_FILE
    path.write_text(json.dumps([record, {**record, **edit}]))
    try:
        code, _, stderr = rnnkit("diagnose", run, "--samples", 4)
    finally:
        path.unlink()
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert f"{path} record 2" in lines[0] and field in lines[0], lines[0]
