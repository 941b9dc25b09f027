"""The README's Python blocks run as written (in order, in one namespace), so the tour stays
true. The Keras-file block reads a Keras 3 fixture copied to ``model.keras``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"),
                    flags=re.S)


def test_the_readme_has_its_two_commands_first() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    assert first is not None
    install, tests = first.group(1).strip().splitlines()
    assert install.startswith("pip install torch==2.13.0") and install.endswith("rnnkit train")
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.split("&& ")[-1] in ci  # CI calls the README's test command


def test_the_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("h5py")
    pytest.importorskip("onnx")
    assert len(BLOCKS) >= 4
    keras_file = ROOT / "tests" / "keras_fixtures" / "files" / "simplernn_dense.keras"
    shutil.copy(keras_file, tmp_path / "model.keras")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict[str, Any] = {}
    for index, block in enumerate(BLOCKS):
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
        if index == 0:  # the regression learned the ramp: predictions rise with the inputs
            predictions = namespace["model"].predict(namespace["X"], verbose=0)[:, 0]
            assert np.all(np.diff(predictions) > 0), predictions
    assert namespace["states"].shape == (1, 10, 8)
    assert namespace["out"].shape == (3, 10, 16)
    assert (tmp_path / "model.onnx").is_file()
