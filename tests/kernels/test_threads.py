"""The compiled loops' thread policy (csrc/threads.h): the decision from its inputs, the
parsing of /proc/loadavg, of a thread's stat line and of cgroup v1/v2 quotas from fake files,
the live report, that the numbers do not depend on how many threads run the blocks, and the
blocks' runner (in_blocks: each block once, errors, nesting, concurrent callers, fork)."""

from __future__ import annotations

import os
import select
import signal
import threading
import warnings
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
    # torch's count set explicitly (as set_num_threads does): torch then sets each thread's
    # MKL count to it on that thread's first parallel call, which a block must not inherit
    torch.set_num_threads(torch.get_num_threads())
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        model = getattr(rnn, cell)(24, 64, dtype=dtype)
        x = torch.randn(40, 33, 24, dtype=dtype)
        for lengths in (None, torch.randint(1, 41, (33,))):
            assert thread_policy()["threads"] >= 2
            spread = _run(model, x, lengths)
            again = _run(model, x, lengths)  # the workers may take other blocks this time
            try:
                os.sched_setaffinity(0, {min(allowed)})
                assert thread_policy()["threads"] == 1
                serial = _run(model, x, lengths)
            finally:
                os.sched_setaffinity(0, allowed)
            for a, b, c in zip(spread, again, serial, strict=True):
                assert torch.equal(a, c) and torch.equal(b, c), (dtype, lengths is not None)


@pytest.mark.parametrize("blocks", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_in_blocks_runs_every_block_once_on_at_most_the_threads_granted(blocks: int,
                                                                       threads: int) -> None:
    check = torch.ops.rnnkit._in_blocks_check
    for nested in (False, True):
        *runs, distinct, stayed = check(blocks, threads, -1, nested)
        assert runs == [1] * blocks
        assert 1 <= distinct <= min(blocks, threads)
        assert stayed == (blocks if nested else 0)  # a nested call runs on its block's thread


def test_in_blocks_rethrows_a_blocks_error_after_running_the_others() -> None:
    check = torch.ops.rnnkit._in_blocks_check
    for threads in (1, 2, 4):
        with pytest.raises(RuntimeError, match="block 3 failed"):
            check(6, threads, 3, False)
        assert check(6, threads, -1, False)[:6] == [1] * 6  # the workers are still there


hypothesis = pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(rows=st.integers(0, 2500), columns=st.integers(1, 200),
                  dtype=st.sampled_from([torch.float32, torch.float64]),
                  threads=st.integers(1, 4), pad=st.integers(0, 5))
def test_sum_rows_bits_depend_on_the_values_only(rows: int, columns: int, dtype: torch.dtype,
                                                 threads: int, pad: int) -> None:
    """The bias gradients' column sums: close to the exact sum, and bitwise the same whatever
    torch's thread count, the column blocks a column falls in and the row stride."""
    generator = torch.Generator().manual_seed(rows * 1000 + columns)
    wide = torch.randn(rows, columns + pad, dtype=dtype, generator=generator)
    flat = wide[:, pad:]  # a row stride other than the width when pad > 0
    exact = flat.double().sum(0)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        total = torch.ops.rnnkit._sum_rows(flat)
    finally:
        torch.set_num_threads(previous)
    assert total.dtype == dtype and total.shape == (columns,)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(total.double(), exact, rtol=tolerance, atol=tolerance)
    assert torch.equal(total, torch.ops.rnnkit._sum_rows(flat.contiguous()))
    for j in {0, columns // 2, columns - 1}:  # alone, a column is in a block of its own
        assert torch.equal(total[j:j + 1], torch.ops.rnnkit._sum_rows(flat[:, j:j + 1]))


def test_sum_rows_rejects_other_shapes() -> None:
    with pytest.raises(RuntimeError, match="expected a 2-D tensor"):
        torch.ops.rnnkit._sum_rows(torch.zeros(3))


def test_concurrent_calls_from_two_threads_match_one_at_a_time() -> None:
    """One call at a time holds the workers; a call from another thread meanwhile runs its
    blocks on its own thread. Both give the numbers a call alone gives."""
    if torch.get_num_threads() < 2:
        pytest.skip("needs torch on 2 threads or more")
    torch.manual_seed(0)
    model = rnn.LSTM(24, 64)
    inputs = [torch.randn(40, 33, 24) for _ in range(2)]
    alone = [_run(model, x, None) for x in inputs]
    results: list[list[list[torch.Tensor]]] = [[], []]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                replica = rnn.LSTM(24, 64)
                replica.load_state_dict(model.state_dict())
                results[i].append(_run(replica, inputs[i], None))
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    for i in range(2):
        for got in results[i]:
            for a, b in zip(got, alone[i], strict=True):
                assert torch.equal(a, b)


def test_a_forked_child_runs_the_loops() -> None:
    """After a fork (a DataLoader worker, say) the child has none of the parent's worker
    threads: its calls start their own and give the parent's numbers. (The child runs no
    other torch operation that would open an OpenMP region: after the parent's, GNU libgomp
    waits forever in the child for the parent's team.)"""
    if torch.get_num_threads() < 2 or not hasattr(os, "fork"):
        pytest.skip("needs fork and torch on 2 threads or more")
    torch.manual_seed(0)
    model = rnn.LSTM(24, 64)
    x = torch.randn(40, 33, 24)
    with torch.no_grad():
        expected = model(x)[0]  # the parent's workers exist now
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process
        pid = os.fork()
    if pid == 0:  # the child: report whether it matches, then leave without pytest's exit
        code = 1
        try:
            with torch.no_grad():  # compared in numpy: torch.equal is an OpenMP region
                same = model(x)[0].numpy().tobytes() == expected.numpy().tobytes()
            runs = torch.ops.rnnkit._in_blocks_check(16, 2, -1, False)[:16]
            code = 0 if same and runs == [1] * 16 else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    answer = b"timeout"
    try:
        ready, _, _ = select.select([read], [], [], 120)
        answer = os.read(read, 1) if ready else b"timeout"
    finally:
        os.close(read)
        if answer == b"timeout":
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert answer == bytes([0])
