"""The compiled loops' thread policy (csrc/threads.h): the decision from its inputs, the
parsing of /proc/loadavg, of a thread's stat line and of cgroup v1/v2 quotas from fake files,
the live report, and that the numbers do not depend on how many threads run the blocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rnnkit import nn as rnn
from rnnkit._kernels import compiled
from rnnkit._kernels.threads import FIELDS, thread_policy


@pytest.fixture(scope="module", autouse=True)
def extension() -> None:
    try:
        compiled.load()
    except compiled.ExtensionUnavailable as e:
        pytest.skip(str(e))


def plan(torch_threads: int = 2, online: int = 2, affinity: int = 2, quota: float = 0.0,
         running: int = 1, ours: int = 1, load_aware: bool = True) -> int:
    return torch.ops.rnnkit._thread_plan(torch_threads, online, affinity, quota, running, ours,
                                         load_aware)


def test_plan_quiet_machine_uses_torchs_threads() -> None:
    assert plan(running=1, ours=1) == 2
    assert plan(running=2, ours=2) == 2  # our own spinning team thread is not a neighbour
    assert plan(torch_threads=1) == 1
    assert plan(torch_threads=16, online=16, affinity=16, running=3, ours=3) == 16


def test_plan_busy_machine_leaves_the_neighbours_their_cores() -> None:
    assert plan(running=3, ours=1) == 1  # two busy loops on 2 cores
    assert plan(running=6, ours=2) == 1  # two 2-thread torch processes
    assert plan(running=2, ours=1) == 1  # one busy loop
    assert plan(torch_threads=16, online=16, affinity=16, running=9, ours=1) == 8
    assert plan(torch_threads=16, online=16, affinity=16, running=40, ours=1) == 1


def test_plan_affinity_and_quota() -> None:
    assert plan(affinity=1) == 1
    assert plan(torch_threads=8, online=8, affinity=3) == 3
    assert plan(torch_threads=8, online=8, affinity=8, quota=1.0) == 1
    assert plan(torch_threads=8, online=8, affinity=8, quota=2.5) == 3
    assert plan(torch_threads=8, online=8, affinity=8, quota=0.2) == 1
    assert plan(torch_threads=8, online=8, affinity=8, quota=0.0) == 8  # no quota


def test_plan_without_load_sampling() -> None:
    assert plan(running=6, ours=1, load_aware=False) == 2
    assert plan(running=-1, ours=-1) == 2  # unknown load: torch's, within the limits
    assert plan(running=6, ours=1, affinity=1, load_aware=False) == 1


def test_loadavg_running() -> None:
    parse = torch.ops.rnnkit._loadavg_running
    assert parse("0.52 0.61 0.70 3/412 9876\n") == 3
    assert parse("15.61 12.87 8.18 12/175 11603") == 12
    assert parse("") == -1
    assert parse("0.5 0.6 0.7 x/12 1") == -1
    assert parse("0.5 0.6 0.7 /12 1") == -1
    assert parse("0.5 0.6 0.7") == -1


def test_stat_running() -> None:
    parse = torch.ops.rnnkit._stat_running
    assert parse("1234 (python) R 1 2 3")
    assert not parse("1234 (python) S 1 2 3")
    assert parse("1234 (a) b) S) R 1")  # the command may hold ") S"
    assert not parse("1234 (python)")


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    quota = torch.ops.rnnkit._cgroup_quota
    _write(tmp_path, "cpu.max", "max 100000\n")
    assert quota("0::/\n", str(tmp_path)) == 0.0
    _write(tmp_path, "job/cpu.max", "150000 100000\n")
    _write(tmp_path, "job/step/cpu.max", "max 100000\n")
    assert quota("0::/job/step\n", str(tmp_path)) == 1.5  # a parent's quota holds the child
    _write(tmp_path, "job/step/cpu.max", "50000 100000\n")
    assert quota("0::/job/step\n", str(tmp_path)) == 0.5
    assert quota("0::/elsewhere\n", str(tmp_path)) == 0.0


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    quota = torch.ops.rnnkit._cgroup_quota
    proc = "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n"
    assert quota(proc, str(tmp_path)) == 0.0
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert quota(proc, str(tmp_path)) == 0.0
    # a container sees its own cgroup at the mount's root
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "200000\n")
    assert quota(proc, str(tmp_path)) == 2.0
    _write(tmp_path, "cpu/docker/abc/cpu.cfs_quota_us", "50000\n")
    _write(tmp_path, "cpu/docker/abc/cpu.cfs_period_us", "100000\n")
    assert quota(proc, str(tmp_path)) == 0.5
    assert quota("3:cpuacct:/docker/abc\n", str(tmp_path)) == 0.0  # not the cpu controller


def test_live_report_follows_torch_and_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_LOAD_AWARE", "1")  # the load term on, so the sample is read
    report = thread_policy()
    assert tuple(report) == FIELDS
    assert report["torch_threads"] == torch.get_num_threads()
    assert report["affinity_cpus"] == len(os.sched_getaffinity(0))
    assert 1 <= report["threads"] <= min(report["torch_threads"], report["affinity_cpus"])
    assert report["running_ours"] >= 1  # this thread, reading
    assert report["running"] >= report["running_ours"]
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert thread_policy()["threads"] == 1
    finally:
        torch.set_num_threads(previous)


def test_load_sampling_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNNKIT_LOAD_AWARE", raising=False)
    report = thread_policy()  # off unless asked for
    assert not report["load_aware"] and report["running"] == -1
    assert report["threads"] == min(report["torch_threads"], report["affinity_cpus"])
    monkeypatch.setenv("RNNKIT_LOAD_AWARE", "0")
    assert not thread_policy()["load_aware"]
    monkeypatch.setenv("RNNKIT_LOAD_AWARE", "1")
    assert thread_policy()["load_aware"]


def _run(model: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None
         ) -> list[torch.Tensor]:
    model.zero_grad()
    x = x.detach().requires_grad_()
    out = model(x, lengths=lengths)[0] if lengths is not None else model(x)[0]
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    (out * weights).sum().backward()
    assert x.grad is not None
    return [out.detach(), x.grad] + [p.grad for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_numbers_do_not_depend_on_the_threads_granted(cell: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocks are the same whatever the policy grants: torch's threads (a quiet machine)
    and one thread running the blocks in turn (here: this thread held to one CPU, as a busy
    machine or a quota would) give bitwise the same values and gradients, in float32 (the fused
    loops) and float64 (the library products), dense and with lengths (the masked loops)."""
    if torch.get_num_threads() < 2 or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs torch on 2 threads or more")
    monkeypatch.setenv("RNNKIT_LOAD_AWARE", "0")
    allowed = os.sched_getaffinity(0)
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        model = getattr(rnn, cell)(24, 64, dtype=dtype)
        x = torch.randn(40, 33, 24, dtype=dtype)
        for lengths in (None, torch.randint(1, 41, (33,))):
            assert thread_policy()["threads"] >= 2
            spread = _run(model, x, lengths)
            try:
                os.sched_setaffinity(0, {min(allowed)})
                assert thread_policy()["threads"] == 1
                serial = _run(model, x, lengths)
            finally:
                os.sched_setaffinity(0, allowed)
            for a, b in zip(spread, serial, strict=True):
                assert torch.equal(a, b), (dtype, lengths is not None)
