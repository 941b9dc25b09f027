"""bench/speed.py runs end to end on a tiny configuration and writes a well-formed report.

No timing is asserted: only the structure of the JSON and that every number is finite and > 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rnnkit.cli.commands import _bench_module

speed = _bench_module()  # bench.speed, or bench/speed.py by path when bench is not on sys.path


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


def test_unknown_names_are_refused() -> None:
    with pytest.raises(SystemExit, match="unknown sizes: huge"):
        speed.main(["--sizes", "huge"])


def test_cli_reaches_the_benchmark() -> None:
    assert callable(speed.main) and speed.main.__module__ in ("bench.speed", speed.__name__)
