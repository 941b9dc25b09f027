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


def test_flop_counts_are_the_products_of_a_call() -> None:
    """Forward: x W_ih^T and h W_hh^T at every step, 2 per multiply-add; training adds the
    weight gradients and the state gradient through W_hh (the bench's input needs no
    gradient). Worked out by hand for the issue's LSTM (B=32, T=100, D=32, H=64)."""
    small = speed.SIZES["small"]
    assert speed.matmul_flops("lstm", small, training=False) == 2 * 100 * 32 * 256 * (32 + 64)
    # + dW_ih (2 T B 4H D) + dW_hh (2 T B 4H H) + dh = dA W_hh (2 T B 4H H)
    assert speed.matmul_flops("lstm", small, training=True) == (
        2 * 100 * 32 * 256 * (32 + 64) + 2 * 100 * 32 * 256 * (32 + 64 + 64))
    tiny = speed.Size("t", batch=2, steps=3, features=5, hidden=7)
    for cell, gates in (("rnn", 1), ("gru", 3), ("lstm", 4)):
        assert speed.matmul_flops(cell, tiny, False) == 2 * 3 * 2 * gates * 7 * (5 + 7)
        assert speed.matmul_flops(cell, tiny, True) == 2 * 3 * 2 * gates * 7 * (2 * 5 + 3 * 7)


def test_fma_limit_of_this_machine() -> None:
    """The compiled FMA loop gives a positive, finite GFLOP/s for every vector width the CPU
    runs, on one thread and on several; a width the CPU lacks is refused by name."""
    from rnnkit._kernels import compiled

    if not compiled.available():
        pytest.skip("the compiled kernels are not available here")
    limits = speed.fma_limits(2)
    widths = torch.ops.rnnkit.fma_vector_bits()
    assert set(limits) == {str(b) for b in widths} and set(widths) <= {512, 256}
    for by_threads in limits.values():
        assert set(by_threads) == {"1", "2"}
        assert all(_positive(v) for v in by_threads.values())
    with pytest.raises(RuntimeError, match="bits must be 512 or 256, got 128"):
        torch.ops.rnnkit.fma_gflops(128, 1)
    with pytest.raises(RuntimeError, match="threads must be 1 to 4096, got 0"):
        torch.ops.rnnkit.fma_gflops(256, 0)
    if 512 not in widths:
        with pytest.raises(RuntimeError, match="no 512-bit FMA"):
            torch.ops.rnnkit.fma_gflops(512, 1)


def test_fma_limit_takes_the_runs_vector_width() -> None:
    limits = {"512": {"1": 100.0, "2": 190.0}, "256": {"1": 60.0, "2": 110.0}}
    assert speed.fma_limit(limits, 512, 2) == 190.0
    assert speed.fma_limit(limits, 256, 1) == 60.0  # an AVX2-held run: the 256-bit loop
    assert speed.fma_limit({"256": limits["256"]}, 512, 2) == 110.0
    assert speed.fma_limit(limits, 128, 2) is None
    assert speed.fma_limit({}, 512, 2) is None


def test_rows_report_their_share_of_the_fma_limit(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Every row carries its FLOP count and, for each contender, GFLOP/s as a share of the FMA
    limit next to its share of torch.mm; both are columns of the printed and markdown tables."""
    path = tmp_path / "speed.json"
    speed.main(["--quick", "--cells", "lstm", "--sizes", "tiny", "--variable", "none",
                "--budget", "0.01", "--json", str(path)])
    printed = capsys.readouterr().out
    assert "% FMA limit" in printed and "% torch.mm" in printed
    report = json.loads(path.read_text())
    machine = report["machine"]
    limit = machine["fma_limit_gflops"]
    if limit is None:
        pytest.skip("the compiled kernels are not available here")
    assert _positive(limit) and f"FMA limit {limit:.0f} GFLOP/s" in speed.machine_line(machine)
    for row in report["rows"]:
        size = speed.SIZES[row["size"]]
        assert row["flops"] == speed.matmul_flops(row["cell"], size, row["mode"] == "training")
        for name, gflops in row["gflops"].items():
            assert row["fma_fraction"][name] == pytest.approx(gflops / limit)
            assert row["peak_fraction"][name] == pytest.approx(
                gflops / machine["matmul_peak_gflops"])
    speed.main(["--markdown", str(path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "training: % of FMA limit / of torch.mm" in lines[2]
    train = next(r for r in report["rows"] if r["mode"] == "training")
    fma = f"{100 * train['fma_fraction']['rnnkit.nn']:.0f}%"
    mm = f"{100 * train['peak_fraction']['rnnkit.nn']:.0f}%"
    assert lines[4].split(" | ")[-1].startswith(f"{fma} / {mm}; ")


def test_reports_from_before_the_fma_limit_still_print() -> None:
    """The saved reports behind the README predate the FMA limit: their tables say "–" there
    and keep their share of torch.mm."""
    report = json.loads((Path(__file__).parents[2] / "bench" / "results-full.json").read_text())
    lines = speed.markdown_table(report).splitlines()
    train = next(r for r in report["rows"] if r["mode"] == "training"
                 and not r["variable_length"] and r["cell"] == "rnn" and r["size"] == "tiny")
    assert "FMA limit not measured" in lines[0]
    assert lines[4].split(" | ")[-1].startswith(
        f"– / {100 * train['peak_fraction']['rnnkit.nn']:.0f}%")
