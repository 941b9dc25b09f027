"""``rnnkit train --tensorboard``: one scalar per logged metric and epoch, read back with
TensorBoard's own reader; without the package, a one-line error before any training."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app


def _train(tmp_path: Path, *extra: str) -> tuple[int, str]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", (x[:, :, 0].sum(axis=1) > 0).astype(np.int64))
    result = CliRunner().invoke(app, ["train", "--quiet", "--task", "classify", "--npy",
                                      str(tmp_path / "x.npy"), "--labels",
                                      str(tmp_path / "y.npy"), "--units", "4", "--epochs", "3",
                                      "--out", str(tmp_path / "run"), *extra])
    return result.exit_code, result.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TensorBoard's protobuf/pkg_resources
def test_scalars_per_epoch(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, stderr = _train(tmp_path, "--tensorboard")
    assert code == 0, stderr
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"epoch_loss", "epoch_val_loss"} <= tags
    losses = events.Scalars("epoch_loss")
    assert [e.step for e in losses] == [1, 2, 3]
    assert all(np.isfinite(e.value) for e in losses)


def test_missing_package_is_a_one_line_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    code, stderr = _train(tmp_path, "--tensorboard")
    assert code == 1 and stderr.startswith("error: --tensorboard needs the tensorboard package")
    assert not (tmp_path / "run").exists()  # stopped before writing anything
