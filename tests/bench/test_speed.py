"""rnnkit.bench.speed runs end to end on a tiny configuration and writes a well-formed report.

No timing is asserted: only the structure of the JSON and that every number is finite and > 0.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from rnnkit.bench import speed


def _tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    path = tmp_path / "speed.json"
    speed.main(["--quick", "--cells", "gru,lstm", "--sizes", "tiny", "--variable", "tiny",
                "--budget", "0.01", "--json", str(path), *extra])
    printed = capsys.readouterr().out
    assert "rnnkit vs torch.nn" in printed
    return json.loads(path.read_text())


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_quick_report_structure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _tiny_run(tmp_path, capsys)
    assert _positive(report["machine"]["matmul_peak_gflops"])
    rows = report["rows"]
    # 2 cells x (1 dense + 1 variable size) x 2 modes
    assert len(rows) == 8
    assert {(r["cell"], r["mode"], r["variable_length"]) for r in rows} == {
        (c, m, v) for c in ("gru", "lstm") for m in ("inference", "training") for v in (False, True)
    }
    for row in rows:
        base = "torch.nn (packed)" if row["variable_length"] else "torch.nn"
        assert row["speedup_vs_torch"][base] == pytest.approx(1.0)
        assert set(row["ms"]) == set(row["speedup_vs_torch"]) == set(row["gflops"])
        for table in ("ms", "speedup_vs_torch", "gflops", "peak_fraction"):
            assert all(_positive(v) for v in row[table].values()), (table, row)
        if row["variable_length"]:
            assert {"rnnkit.nn (lengths)", "rnnkit.nn (dense)", "rnnkit.layers (mask)"} <= set(row["ms"])
            assert math.isfinite(row["masking_overhead"])
        else:
            assert {"torch.nn", "rnnkit.nn", "rnnkit.layers", "rnnkit.nn[fused]"} <= set(row["ms"])
        if row["mode"] == "training":
            assert len(row["peak_memory_mb"]) == 2
            assert all(_positive(v) for v in row["peak_memory_mb"].values())
        else:
            assert "peak_memory_mb" not in row


def test_markdown_table_of_a_saved_report(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--markdown prints the README table of a saved report: a line per cell and case, the
    variable-length line after its dense one, each with the report's own numbers."""
    report = _tiny_run(tmp_path, capsys)
    speed.main(["--markdown", str(tmp_path / "speed.json")])
    machine, blank, *lines = capsys.readouterr().out.strip().splitlines()
    cpu = speed.cpu_description()
    assert machine.startswith(f"Machine: {cpu['cpu_model']}, {cpu['vector_isa']} "
                              f"({cpu['vector_bits']}-bit vectors)") and blank == ""
    assert lines[0].startswith("| cell | size (B, T, D, H) |") and lines[1].startswith("|---")
    body = [line.split(" | ") for line in lines[2:]]
    assert [(cells[0], "random lengths" in cells[1]) for cells in body] == [
        ("| gru", False), ("| gru", True), ("| lstm", False), ("| lstm", True)]
    train = next(r for r in report["rows"]
                 if r["cell"] == "lstm" and r["mode"] == "training" and r["variable_length"])
    overhead = f"{100 * train['masking_overhead']:+.0f}%"
    assert body[3][1] == "tiny (6, 4, 1, 10), random lengths vs packed"
    assert f"{train['speedup_vs_torch']['rnnkit.nn (lengths)']:.2f}" in body[3][3]
    assert body[3][-1].endswith(f"/ {overhead} |")


def test_markdown_refuses_what_is_not_a_report(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="missing.json: it is not a report.*FileNotFoundError"):
        speed.main(["--markdown", str(tmp_path / "missing.json")])
    broken = tmp_path / "broken.json"
    broken.write_text('{"rows": [{"cell": "rnn"')  # cut short
    with pytest.raises(SystemExit, match="broken.json: it is not a report.*JSONDecodeError"):
        speed.main(["--markdown", str(broken)])
    other = tmp_path / "other.json"
    other.write_text('{"rows": [{"cell": "rnn"}]}')
    with pytest.raises(SystemExit, match="other.json: it is not a report.*KeyError"):
        speed.main(["--markdown", str(other)])


def test_unknown_names_are_refused() -> None:
    with pytest.raises(SystemExit, match="unknown sizes: huge"):
        speed.main(["--sizes", "huge"])


def test_cli_reaches_the_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    """``rnnkit bench ARGS`` calls the packaged benchmark's main with ARGS (no file outside the
    package is needed, so an installed wheel has it)."""
    from typer.testing import CliRunner

    from rnnkit.cli import app

    calls = []
    monkeypatch.setattr(speed, "main", lambda argv: calls.append(argv) or 0)
    result = CliRunner().invoke(app, ["bench", "--quick", "--sizes", "tiny"])
    assert result.exit_code == 0, result.output
    assert calls == [["--quick", "--sizes", "tiny"]]
    assert speed.__name__ == "rnnkit.bench.speed"


@pytest.mark.parametrize("cell", ["RNN", "GRU", "LSTM"])
def test_training_step_needs_no_more_memory_than_torch(cell: str) -> None:
    """Peak tensor memory of one forward + backward of ``out.sum()`` (the benchmark's training
    step) on a dense batch: rnnkit.nn's compiled kernels need at most torch.nn's. Bytes, not
    time: deterministic."""
    import rnnkit
    from rnnkit._kernels import compiled

    if not compiled.available():
        pytest.skip("the compiled kernels are not available here")

    torch.manual_seed(0)
    reference = getattr(torch.nn, cell)(16, 32)
    ours = getattr(rnnkit.nn, cell)(16, 32, backend="compiled")
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(50, 8, 16, requires_grad=True)

    def step(model: torch.nn.Module) -> None:
        model(x)[0].sum().backward()

    peaks = {}
    for name, model in (("torch", reference), ("rnnkit", ours)):
        step(model)  # first-call allocations (the compiled kernels' build, caches) stay outside
        peaks[name] = speed.peak_memory_bytes(lambda model=model: step(model))
    assert peaks["rnnkit"] <= peaks["torch"], peaks


def test_machine_is_named_next_to_the_peak(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The report records the CPU's model name, its vector unit and width (what torch, oneDNN
    and rnnkit's kernels dispatch on) next to the matmul peak; the caption says so, and a report
    from before these fields were recorded says that instead of failing."""
    report = _tiny_run(tmp_path, capsys)
    machine = report["machine"]
    assert machine["cpu_model"] and machine["cpu_count"] >= 1
    assert machine["vector_isa"] == torch.backends.cpu.get_cpu_capability()
    assert machine["vector_bits"] == {"AVX512": 512, "AVX2": 256}.get(machine["vector_isa"], 128)
    line = speed.machine_line(machine)
    assert f"{machine['vector_bits']}-bit vectors" in line
    assert f"matmul peak {machine['matmul_peak_gflops']:.0f} GFLOP/s" in line
    old = {k: v for k, v in machine.items() if k not in ("cpu_model", "vector_isa", "vector_bits")}
    assert speed.machine_line(old).startswith("CPU not recorded in this report; ")


def test_output_carries_no_profiler_noise(capfd: pytest.CaptureFixture[str]) -> None:
    """The memory measurement runs torch.profiler, whose C++ side prints trace-point lines to
    the process's stderr at every start and stop: they are dropped, anything else printed by
    native code meanwhile still reaches stderr."""
    x = torch.randn(64)

    def step() -> None:
        (x * 2).sum()
        os.write(2, b"a message from native code\n")

    assert speed.peak_memory_bytes(step) >= 0
    out, err = capfd.readouterr()
    assert "USDT" not in err and "profiler_st" not in err and "unknown size" not in err, err
    assert err.strip().splitlines() == ["a message from native code"]
