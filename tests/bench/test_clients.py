"""The measuring parts of ``bench/clients`` (the forecasting-library harness), without the
libraries: the profiler attribution of the recurrence, the test-count reader and the table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import rnnkit

CLIENTS = Path(__file__).resolve().parents[2] / "bench" / "clients"


def load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"clients_{name}", CLIENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


workloads = load("workloads")
harness = load("harness")


class Forecaster(torch.nn.Module):
    """A recurrent model as the libraries hold one: the LSTM inside other layers."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 16, num_layers=2, batch_first=True, dropout=0.1)
        self.head = torch.nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0])


@pytest.mark.parametrize("on", [False, True])
def test_recurrence_is_the_recurrent_modules_forward_and_backward(on: bool) -> None:
    model = Forecaster()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    marker = workloads.RecurrenceMarker()
    try:
        with rnnkit.accelerate(on), torch.profiler.profile() as profile:
            for _ in range(3):
                optimizer.zero_grad()
                model(torch.randn(8, 30, 4)).square().mean().backward()
                optimizer.step()
    finally:
        marker.remove()
    times = workloads.recurrence_seconds(profile.events())
    assert times["recurrent_calls"] == 3
    assert times["rnnkit_calls"] == (3 if on else 0)
    # the backward pass of the LSTM is found through its sequence numbers: without it the
    # recurrence would be its forward alone
    assert times["recurrence_backward_s"] > 0
    assert 0 < times["recurrence_s"] < times["profiled_ops_s"]
    # the marker is gone: a later forward opens no range
    with torch.profiler.profile() as later:
        model(torch.randn(2, 3, 4))
    assert not any(e.name == workloads.RECURRENCE for e in later.events())


def test_junit_counts(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="t.A" name="ok"/>'
        '<testcase classname="t.A" name="bad"><failure message="x"/></testcase>'
        '<testcase classname="t.B" name="broken"><error message="y"/></testcase>'
        '<testcase classname="t.B" name="later"><skipped message="z"/></testcase>'
        '</testsuite></testsuites>')
    counts = harness.junit_counts(tmp_path / "junit.xml")
    assert counts == {"passed": 1, "failed": 2, "skipped": 1,
                      "not_passed": ["t.A::bad", "t.B::broken"]}


def test_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = {"library": "lib", "version": "1.0",
             "tests_off": {"passed": 5, "failed": 1, "skipped": 0},
             "tests_on": {"passed": 5, "failed": 1, "skipped": 0}}
    fit = {"library": "lib", "version": "1.0", "max_abs_prediction_difference": {"1": 2e-7},
           "runs": [{"mode": "off", "requested_threads": 1, "threads": 1, "recurrence_s": 4.0,
                     "fit_s": 10.0},
                    {"mode": "on", "requested_threads": 1, "threads": 1, "recurrence_s": 1.0,
                     "fit_s": 8.0}]}
    for name, report in (("t.json", tests), ("f.json", fit)):
        (tmp_path / name).write_text(json.dumps(report))
    harness.main(["table", str(tmp_path / "t.json"), str(tmp_path / "f.json")])
    row = capsys.readouterr().out.splitlines()[-1]
    assert row == ("| lib | 1.0 | 5p 1f 0s / 5p 1f 0s | 1 (1) | 4.0 / 1.0 (4.00x) "
                   "| 10.0 / 8.0 (1.25x) | 2e-07 |")
