"""RUN_DIR rules: atomic writes, what may be created or opened, history files."""

from __future__ import annotations

import csv
import json
from datetime import datetime

import pytest

from rnnkit._io import atomic_write, write_text as atomic_write_text
from rnnkit.cli.run_dir import RunDir, RunDirError, default_run_dir


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new contents")
    assert path.read_text() == "new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary file left


def test_atomic_write_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")

    def half_then_crash(handle, chunk):
        handle.write(chunk[:2])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, b"new contents", write=half_then_crash)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_create_refuses_existing_run_without_overwrite(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.write_json(run.config, {"format": "rnnkit-run"})
    (run.path / "model.rnnkit").write_bytes(b"x")
    with pytest.raises(RunDirError, match="already holds a run: pass --overwrite"):
        RunDir.create(run.path)
    assert (run.path / "model.rnnkit").exists()  # untouched
    RunDir.create(run.path, overwrite=True)
    assert [p.name for p in run.path.iterdir()] == ["manifest.json"]  # a new, empty run


def test_create_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirError, match="not an rnnkit run"):
        RunDir.create(folder, overwrite=True)
    assert (folder / "thesis.tex").read_text() == "precious"


def test_create_accepts_empty_folder_and_refuses_a_file(tmp_path):
    (tmp_path / "empty").mkdir()
    assert RunDir.create(tmp_path / "empty").path.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="not a folder"):
        RunDir.create(tmp_path / "file")


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("x"), "is not a folder"),
    (lambda p: p.mkdir(), "is not an rnnkit run"),
])
def test_open_errors(tmp_path, make, message):
    path = tmp_path / "run"
    make(path)
    with pytest.raises(RunDirError, match=message):
        RunDir.open(path)


def test_default_run_dir_adds_suffix_when_taken(tmp_path):
    now = datetime(2024, 5, 6, 7, 8, 9)
    first = default_run_dir("forecast", tmp_path, now)
    assert first.name == "forecast-20240506-070809"
    first.mkdir()
    assert default_run_dir("forecast", tmp_path, now).name == "forecast-20240506-070809-2"


def test_write_history_csv_and_json(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.write_history({"loss": [1.5, 0.5], "val_loss": [2.0, 1.0]})
    table = json.loads(run.history_json.read_text())
    assert table == {"epoch": [1, 2], "loss": [1.5, 0.5], "val_loss": [2.0, 1.0]}
    rows = list(csv.reader(run.history_csv.read_text().splitlines()))
    assert rows == [["epoch", "loss", "val_loss"], ["1", "1.5", "2.0"], ["2", "0.5", "1.0"]]


def test_read_json_errors(tmp_path):
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(RunDirError, match="has no metrics.json"):
        run.read_json(run.metrics)
    run.metrics.write_text("{broken")
    with pytest.raises(RunDirError, match="not valid JSON"):
        run.read_json(run.metrics)
