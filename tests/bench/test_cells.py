"""rnnkit.bench.cells: its contenders compute the cell they claim to (rnnkit.nn's numbers, the
plain-PyTorch loops and minGRU-pytorch's formulation), its rows carry a ratio against the named
baseline, and bad names are refused. Nothing here asserts a timing."""

from __future__ import annotations

import pytest
import torch

from rnnkit import reference
from rnnkit.bench import cells
from rnnkit.bench.speed import SIZES, Settings

TINY = SIZES["tiny"]


# torch.compile's tracer reads .grad of the step's non-leaf inputs (gi[t]) and torch warns
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_every_contender_agrees_with_rnnkit() -> None:
    cells.check(list(cells.CELLS), TINY)  # raises on a mismatch


def test_lucidrains_formulation_is_mingru() -> None:
    """The plain-PyTorch minGRU-pytorch form against the NumPy reference (float64): h_0 = 0,
    no bias, its projection (candidate, gate) against the reference's kernel blocks (z, h)."""
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    weight = torch.randn(8, 3, dtype=torch.float64)  # (2H, D): candidate rows, then gate rows
    got = cells.lucidrains_mingru(x, weight)
    kernel = torch.cat([weight[4:], weight[:4]]).t().numpy()  # (D, 2H), blocks z, h
    want = reference.mingru(x.numpy(), kernel)
    torch.testing.assert_close(got, torch.from_numpy(want), rtol=1e-10, atol=1e-12)


def test_rows_name_their_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cells.SIZES, "tiny", TINY)
    rows = cells.run(["mingru"], ["tiny"], Settings(0.01, 1, 2, 64, False))
    assert [(r["mode"], r["baseline"]) for r in rows] == [
        ("training", "minGRU-pytorch (plain PyTorch)"),
        ("inference", "minGRU-pytorch (plain PyTorch)")]
    for r in rows:
        assert r["ratio"] == pytest.approx(r["ms"][r["baseline"]] / r["ms"]["rnnkit.nn"])


def test_unknown_names_are_refused() -> None:
    with pytest.raises(SystemExit, match="unknown 'lstm'"):
        cells.main(["--cells", "lstm"])
    with pytest.raises(SystemExit, match="unknown 'huge'"):
        cells.main(["--sizes", "huge"])
