"""``python -m rnnkit.bench --step``: the batch-1 step table runs and its contenders compute the
same step. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.bench import speed, step


def test_step_report_structure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "step.json"
    report = speed.main(["--step", "--quick", "--cells", "gru,lstm", "--hidden", "8",
                         "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    rows = report["step"]["rows"]
    assert [(r["cell"], r["hidden"], r["batch"]) for r in rows] == [("gru", 8, 1), ("lstm", 8, 1)]
    expected = {"torch.nn cell", "rnnkit.nn cell", "rnnkit.nn T=1"}
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        expected.add("onnxruntime")
    for row in rows:
        assert set(row["us_per_step"]) == expected
        assert all(math.isfinite(v) and v > 0 for v in row["us_per_step"].values())
        assert row["speedup"]["torch.nn cell"] == 1.0
    assert "batch-1 step latency" in capsys.readouterr().out


def test_step_rejects_bad_hidden() -> None:
    with pytest.raises(SystemExit, match="--hidden"):
        speed.main(["--step", "--hidden", "64,x"])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_contenders_carry_the_same_state(cell: str) -> None:
    """Every contender steps the same weights from the same state: after three steps the states
    they carry agree (each call leaves its new state in its closure)."""
    calls = step.step_contenders(cell, 6)
    with torch.no_grad():
        for _ in range(3):
            for call in calls.values():
                call()
    states = {}
    for name, call in calls.items():
        held = call.__closure__[0].cell_contents[0]  # _carried's holder
        flat = held if isinstance(held, (tuple, list)) else (held,)
        states[name] = [np.asarray(s).reshape(-1) for s in flat]
    reference = states.pop("torch.nn cell")
    assert len(reference) == (2 if cell == "lstm" else 1)
    assert not np.allclose(reference[0], 0)
    for name, found in states.items():
        for a, b in zip(found, reference):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
