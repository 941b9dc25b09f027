"""A run folder's states (rnnkit.cli.run_state) and the commands in each; the manifest and
--overwrite; run.json checked on every read; option errors; --version.

Each test makes the state it needs the way a crash or a user would (a file deleted, run.json
edited), on tiny runs, and checks what every command then says and does.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.cli.run_dir import RunDir
from rnnkit.cli.run_state import State, inspect, load_config
from rnnkit.models import load_model


@pytest.fixture(autouse=True)
def _no_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_NO_EXTENSION", "1")  # no wait for the compiled kernels' build


def rnnkit(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def one_error(args: tuple[object, ...], *messages: str) -> str:
    code, stdout, stderr = rnnkit(*args)
    assert code == 1, (code, stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for message in messages:
        assert message in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "series.csv"
    values = np.sin(np.arange(100) / 3.0) + rng.normal(0, 0.1, 100)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["value"])
        writer.writerows([[f"{v:.4f}"] for v in values])
    return path


def train(series: Path, out: Path, *extra: object) -> tuple[int, str, str]:
    return rnnkit("train", "--quiet", "--csv", series, "--target", "value", "--window", 6,
                  "--units", 3, "--cell", "rnn", "--epochs", 2, "--out", out, *extra)


@pytest.fixture
def finished(series: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    code, _, stderr = train(series, out)
    assert code == 0, stderr
    return out


def state(run: Path) -> State:
    opened = RunDir.open(run)
    return inspect(opened, load_config(opened)).state


def weights(path: Path) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in load_model(path).state_dict().items()}


# -- item 1: the stuck run -----------------------------------------------------------------------
def test_a_trained_run_without_its_model_is_finished_by_resume_without_training(
        finished: Path) -> None:
    """Killed after the last checkpoint, before model.rnnkit: every command names --resume,
    which writes the model and results from the checkpoint and trains nothing."""
    model = weights(finished / "model.rnnkit")
    checkpoint = (finished / "checkpoint" / "backup.safetensors").read_bytes()
    history = (finished / "history.json").read_text()
    for name in ("model.rnnkit", "metrics.json", "history.json", "history.csv",
                 "learning_curves.png", "forecast.png"):
        (finished / name).unlink()
    assert state(finished) is State.TRAINED
    for command in ("predict", "evaluate", "summary", "diagnose"):
        one_error((command, finished), "its model was not written",
                  f"with: rnnkit train --resume {finished}")
    code, _, stderr = rnnkit("train", "--quiet", "--resume", finished)
    assert code == 0, stderr
    assert "no training" in stderr
    assert (finished / "checkpoint" / "backup.safetensors").read_bytes() == checkpoint
    assert (finished / "history.json").read_text() == history  # still 2 epochs
    for key, value in weights(finished / "model.rnnkit").items():
        np.testing.assert_array_equal(value, model[key])
    assert state(finished) is State.FINISHED
    for command in ("predict", "evaluate", "summary"):
        code, _, stderr = rnnkit(command, finished)
        assert code == 0 and "note:" not in stderr, stderr
    one_error(("train", "--resume", finished), "already completed 2 epochs")


def test_an_unfinished_run_with_a_model_works_and_says_how_to_continue(finished: Path) -> None:
    """Ctrl-C mid-training leaves the model of the last completed epoch: the commands use it
    and print a note naming the command that continues the run."""
    config = json.loads((finished / "run.json").read_text())
    (finished / "run.json").write_text(json.dumps({**config, "epochs": 4}))  # as --epochs 4 does
    (finished / "metrics.json").unlink()
    assert state(finished) is State.TRAINING
    code, stdout, stderr = rnnkit("predict", finished)
    assert code == 0, stderr
    assert "not finished (2 of 4 epochs" in stderr and f"--resume {finished}" in stderr
    code, _, stderr = rnnkit("train", "--quiet", "--resume", finished)
    assert code == 0, stderr
    assert state(finished) is State.FINISHED
    assert len(json.loads((finished / "history.json").read_text())["loss"]) == 4


def test_a_run_stopped_before_its_first_epoch_starts_over_on_resume(finished: Path) -> None:
    for name in ("checkpoint", "model.rnnkit", "metrics.json"):
        path = finished / name
        os.system(f"rm -r '{path}'")
    (finished / "preprocessing.json").unlink()  # killed between run.json and this file
    assert state(finished) is State.STARTED
    one_error(("predict", finished), "no trained model", "0 of 2 epochs",
              f"with: rnnkit train --resume {finished}")
    code, _, stderr = rnnkit("train", "--quiet", "--resume", finished)
    assert code == 0, stderr
    assert (finished / "preprocessing.json").is_file() and state(finished) is State.FINISHED


# -- item 2: a finished run is never overwritten by a resume -------------------------------------
def test_a_finished_run_without_its_checkpoint_is_never_restarted(finished: Path) -> None:
    model = (finished / "model.rnnkit").read_bytes()
    os.system(f"rm -r '{finished / 'checkpoint'}'")
    assert state(finished) is State.FINISHED
    one_error(("train", "--resume", finished), "already completed 2 epochs")
    one_error(("train", "--resume", finished, "--epochs", 5), "checkpoint/ is missing",
              "cannot be trained further")
    assert (finished / "model.rnnkit").read_bytes() == model
    code, _, stderr = rnnkit("predict", finished)
    assert code == 0, stderr


def test_a_stranded_run_keeps_its_model(finished: Path) -> None:
    """Not finished and the checkpoint gone: nothing can continue it, nothing is deleted."""
    (finished / "metrics.json").unlink()
    os.system(f"rm -r '{finished / 'checkpoint'}'")
    assert state(finished) is State.STRANDED
    model = (finished / "model.rnnkit").read_bytes()
    one_error(("train", "--resume", finished), "cannot be continued", "checkpoint/ is missing",
              "its model still works")
    assert (finished / "model.rnnkit").read_bytes() == model
    code, _, stderr = rnnkit("predict", finished)
    assert code == 0 and "checkpoint/ is gone" in stderr, stderr


# -- item 2: the manifest and --overwrite --------------------------------------------------------
def test_overwrite_removes_only_what_rnnkit_wrote(finished: Path, series: Path) -> None:
    manifest = json.loads((finished / "manifest.json").read_text())
    assert {"run.json", "model.rnnkit", "checkpoint", "forecast.png"} <= set(manifest["files"])
    assert "rnnkit train" in manifest["command"] and manifest["trained_with"]["cell"] == "rnn"
    (finished / "notes.txt").write_text("mine")
    (finished / "plots").mkdir()
    (finished / "plots" / "figure.png").write_bytes(b"mine too")
    (finished / "tensorboard").mkdir()  # a name rnnkit writes with --tensorboard, not here
    (finished / "confusion_matrix.png").write_bytes(b"mine")  # another task's plot name
    one_error(("train", "--quiet", "--csv", series, "--target", "value", "--out", finished),
              "already holds a run", "--overwrite")
    code, _, stderr = train(series, finished, "--overwrite", "--epochs", 1)
    assert code == 0, stderr
    assert (finished / "notes.txt").read_text() == "mine"
    assert (finished / "plots" / "figure.png").read_bytes() == b"mine too"
    assert (finished / "tensorboard").is_dir()
    assert (finished / "confusion_matrix.png").read_bytes() == b"mine"
    assert json.loads((finished / "metrics.json").read_text())["epochs"] == 1
    assert "notes.txt" not in json.loads((finished / "manifest.json").read_text())["files"]


def test_overwrite_refuses_a_folder_that_holds_the_input_data(finished: Path,
                                                               series: Path) -> None:
    data = finished / "my-series.csv"
    data.write_bytes(series.read_bytes())
    before = sorted(p.name for p in finished.iterdir())
    one_error(("train", "--quiet", "--csv", data, "--target", "value", "--out", finished,
               "--overwrite"), "holds this run's input data", "my-series.csv")
    assert sorted(p.name for p in finished.iterdir()) == before
    assert data.read_bytes() == series.read_bytes()


def test_overwrite_of_a_run_made_before_manifests(finished: Path, series: Path) -> None:
    """A run without manifest.json: --overwrite removes the files rnnkit writes by name."""
    (finished / "manifest.json").unlink()
    (finished / "mine.txt").write_text("kept")
    code, _, stderr = train(series, finished, "--overwrite")
    assert code == 0, stderr
    assert (finished / "mine.txt").read_text() == "kept" and (finished / "manifest.json").is_file()


def test_a_folder_left_before_run_json_is_reused_and_names_its_command(
        series: Path, tmp_path: Path) -> None:
    """Killed after the manifest, before run.json: the commands name the train command (from
    the manifest), and that command works without --overwrite."""
    out = tmp_path / "run"
    RunDir.create(out, command=f"rnnkit train --csv {series} --out {out}")
    message = one_error(("predict", out), "not a run yet", "start it again with: rnnkit train")
    assert message.endswith(f"rnnkit train --csv {series} --out {out}")
    one_error(("train", "--resume", out), "not a run yet")
    code, _, stderr = train(series, out)
    assert code == 0, stderr


# -- item 4: run.json checked on every read ------------------------------------------------------
@pytest.mark.parametrize(("edit", "messages"), [
    ({"horizon": 3}, ("field 'horizon' is 3", "trained with 1")),
    ({"window": 8}, ("field 'window' is 8",)),
    ({"device": 5}, ("field 'device' must be a string, got 5",)),
    ({"csv": 5}, ("field 'csv' must be a string or null, got 5",)),
    ({"units": "4"}, ("field 'units' must be an integer",)),
    ({"dataset": "nope"}, ("run.json", "'nope' is not a forecast dataset")),
    ({"features": "value"}, ("field 'features' must be a list of strings",)),
    ({"epochs": 0}, ("field 'epochs' must be >= 1",)),
])
def test_an_edited_run_json_is_one_error_naming_the_field(finished: Path, edit: dict,
                                                          messages: tuple[str, ...]) -> None:
    config = json.loads((finished / "run.json").read_text())
    (finished / "run.json").write_text(json.dumps({**config, **edit}))
    for command in (("evaluate", finished), ("predict", finished), ("summary", finished),
                    ("train", "--resume", finished, "--epochs", 5)):
        one_error(command, *messages)


# -- item 5: metrics are numbers, JSON is JSON ---------------------------------------------------
def test_a_series_near_1e300_is_refused_not_nan(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    values = 1e300 * (1 + np.sin(np.arange(80) / 3.0))
    path.write_text("value\n" + "".join(f"{float(v)!r}\n" for v in values))
    one_error(("train", "--quiet", "--csv", path, "--target", "value", "--window", 6, "--units",
               2, "--epochs", 1, "--out", tmp_path / "run"), "too large")
    one_error(("train", "--quiet", "--csv", path, "--target", "value", "--window", 6, "--units",
               2, "--epochs", 1, "--no-relative", "--out", tmp_path / "run2"), "too large")


def test_diagnose_demo_never_overwrites_files(finished: Path, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    one_error(("diagnose", "--demo", "--epochs", 1, "--length", 4, "--out", finished),
              "not a previous demo's output")
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "demo.png").write_bytes(b"my own picture")  # a demo name, but no demo's results
    one_error(("diagnose", "--demo", "--epochs", 1, "--length", 4, "--out", mine),
              "already holds files")
    assert (mine / "demo.png").read_bytes() == b"my own picture"


def test_the_overwrite_manifest_lists_diagnose_outputs(finished: Path) -> None:
    code, _, stderr = rnnkit("diagnose", finished, "--samples", 4)
    assert code == 0, stderr
    files = json.loads((finished / "manifest.json").read_text())["files"]
    assert {"gradient_flow.png", "hidden_states.png", "diagnostics.json"} <= set(files)


# -- option errors, --version --------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (("train", "--window", 0), "Invalid value for '--window'"),
    (("train", "--epochs", "many"), "'--epochs'"),
    (("train", "--no-such-option"), "No such option: --no-such-option"),
    (("predict",), "Missing argument 'RUN_DIR'"),
    (("nonsense",), "No such command 'nonsense'"),
])
def test_option_errors_are_one_line_and_exit_1(args: tuple[object, ...], message: str) -> None:
    one_error(args, message)


def test_version() -> None:
    from rnnkit import __version__

    code, stdout, _ = rnnkit("--version")
    assert code == 0 and stdout.strip() == f"rnnkit {__version__}"
