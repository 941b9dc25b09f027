"""The benchmark's contention rows: neighbour processes that run while the rows are timed and
stop after, a run held to fewer cores, and the report's ratios. No timing is asserted."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from rnnkit.bench import contention, speed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("kind", contention.KINDS)
def test_neighbours_run_during_the_block_and_stop_after(kind: str) -> None:
    with contention.neighbours(kind, count=2, threads=2) as pids:
        assert len(pids) == 2 and len(set(pids)) == 2
        assert all(_alive(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)


def test_unknown_neighbours_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown contention kind 'io'"):
        with contention.neighbours("io"):
            pass


def test_quota_is_checked_against_the_cpus_at_hand() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    assert contention.restricted(1) == {allowed[0]}
    with pytest.raises(ValueError, match="a quota of 0 cores needs 1 to"):
        contention.restricted(0)
    with pytest.raises(ValueError, match=f"a quota of {len(allowed) + 1} cores"):
        contention.restricted(len(allowed) + 1)
    with pytest.raises(SystemExit, match="--quota: a quota of 0 cores"):
        speed.main(["--quota", "0"])


def test_contention_report(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """--contention busy --quota 1 times each row quiet, then beside two busy loops in a child
    held to one core; every ratio in the report is the quotient of its two times."""
    monkeypatch.setattr(speed, "CONTENTION_ROWS", (("lstm", "tiny", True), ("gru", "tiny", False)))
    path = tmp_path / "contention.json"
    speed.main(["--contention", "busy", "--quota", "1", "--budget", "0.01", "--json", str(path)])
    assert "contention (beside 2 busy neighbours, held to 1 core(s)" in capsys.readouterr().out
    report = json.loads(path.read_text())["contention"]
    assert (report["kind"], report["neighbours"], report["quota_cores"]) == ("busy", 2, 1)
    assert [(r["cell"], r["size"], r["mode"]) for r in report["rows"]] == [
        ("lstm", "tiny", "training"), ("gru", "tiny", "inference")]
    for row in report["rows"]:
        quiet, loaded = row["quiet_ms"], row["contended_ms"]
        for name in ("torch.nn", "rnnkit.nn"):
            assert math.isfinite(quiet[name]) and quiet[name] > 0
            assert math.isfinite(loaded[name]) and loaded[name] > 0
            assert row["slowdown"][name] == pytest.approx(loaded[name] / quiet[name])
        assert row["speedup_vs_torch"]["contended"] == pytest.approx(
            loaded["torch.nn"] / loaded["rnnkit.nn"])

    # the thread policy's decision in each condition: held to one core, one thread
    policy = report["thread_policy"]
    assert policy["quiet"]["torch_threads"] == report["threads"]
    assert (policy["contended"]["affinity_cpus"], policy["contended"]["threads"]) == (1, 1)
