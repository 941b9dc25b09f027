"""``rnnkit train --nproc N`` (PyTorch's elastic launch on this machine) and its refusals.

The numbers of a distributed fit are tested in tests/models/test_distributed.py; here: the
command starts 2 processes, rank 0 alone writes one complete RUN_DIR, errors in a process come
back as one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app


def _env() -> dict[str, str]:
    drop = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(OMP_NUM_THREADS="1", RNNKIT_NO_EXTENSION="1")
    return env


def _data(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 5, 2)).astype("float32")
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", (x.sum(axis=(1, 2)) > 0).astype("int64"))
    return folder / "x.npy", folder / "y.npy"


def _rnnkit(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rnnkit", *args], cwd=folder, env=_env(),
                          capture_output=True, text=True, timeout=300)


def test_nproc_trains_in_two_processes_and_rank_zero_writes_the_run(tmp_path: Path) -> None:
    x, y = _data(tmp_path)
    done = _rnnkit(tmp_path, "train", "--npy", str(x), "--labels", str(y), "--epochs", "2",
                   "--units", "4", "--batch-size", "8", "--out", "run", "--quiet",
                   "--nproc", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Distributed: 2 processes" in done.stderr
    assert done.stdout.count("Test accuracy") == 1  # one report: rank 0's
    # Nothing but the data and the one RUN_DIR (no default runs/ folder from another rank).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "x.npy", "y.npy"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    for name in ("model.rnnkit", "metrics.json", "run.json", "checkpoint"):
        assert (tmp_path / "run" / name).exists(), name


def test_a_failing_process_is_reported_in_one_line(tmp_path: Path) -> None:
    _, y = _data(tmp_path)
    done = _rnnkit(tmp_path, "train", "--npy", "missing.npy", "--labels", str(y), "--out",
                   "run", "--nproc", "2")
    assert done.returncode == 1
    assert "error: training failed in process" in done.stderr
    assert "missing.npy does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_nproc_under_torchrun_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["train", "--npy", str(x), "--labels", str(y), "--out",
                                      str(tmp_path / "run"), "--nproc", "2"])
    assert result.exit_code == 1
    assert "already runs under torchrun" in result.output
    assert not (tmp_path / "run").exists()


def test_nproc_checks_the_options_before_starting_processes(tmp_path: Path) -> None:
    x, y = _data(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["train", "--npy", str(x), "--labels", str(y), "--out",
                                      str(tmp_path / "taken"), "--nproc", "2"])
    assert result.exit_code == 1
    assert "is not an rnnkit run" in result.output
