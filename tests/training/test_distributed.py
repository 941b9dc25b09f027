"""Data-parallel fit: two processes on gloo equal one process with the same global batch.

The two ranks are plain subprocesses given torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), so ``fit``'s default ``distributed="auto"`` must find it, create the
process group and shard every batch. float64 throughout: the ranks' gradients are averaged in a
different order than one process sums them, so weights agree to rounding (1e-12), not bits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.training import distributed

WORKER = Path(__file__).with_name("_distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    # Two ranks on a shared 2-core machine: one thread each; no C++ build in the subprocesses.
    env.update(OMP_NUM_THREADS="1", RNNKIT_NO_EXTENSION="1", **extra)
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    single, multi = tmp_path_factory.mktemp("single"), tmp_path_factory.mktemp("multi")
    port = str(_free_port())
    ranks = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(multi)],
            env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                     MASTER_PORT=port),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for r in range(2)
    ]
    reference = subprocess.run([sys.executable, str(WORKER), str(single)], env=_env(),
                               capture_output=True, text=True, timeout=120)
    outputs = [p.communicate(timeout=120)[0] for p in ranks]
    assert reference.returncode == 0, reference.stdout + reference.stderr
    for p, output in zip(ranks, outputs):
        assert p.returncode == 0, output
    return single, multi


def _result(folder: Path, rank: int = 0) -> dict:
    return torch.load(folder / f"result-{rank}.pt", weights_only=True)


def test_two_ranks_train_the_same_weights_as_one_process(runs: tuple[Path, Path]) -> None:
    single, multi = runs
    expected = _result(single)["weights"]
    for rank in (0, 1):
        got = _result(multi, rank)["weights"]
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert a.dtype == torch.float64
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_logged_metrics_are_reduced_over_ranks(runs: tuple[Path, Path]) -> None:
    single, multi = runs
    expected = _result(single)["history"]
    assert sorted(expected) == ["loss", "mae", "val_loss", "val_mae"]
    for rank in (0, 1):  # every rank sees the same logs (callbacks decide alike)
        got = _result(multi, rank)["history"]
        assert sorted(got) == sorted(expected)
        for key in expected:  # metric states are float32 (Keras' Mean)
            torch.testing.assert_close(torch.tensor(got[key]), torch.tensor(expected[key]),
                                       rtol=1e-6, atol=1e-7)


def test_only_rank_zero_writes_files_and_progress(runs: tuple[Path, Path]) -> None:
    _, multi = runs
    assert sorted(p.name for p in (multi / "rank-0").iterdir()) == [
        "log.csv", "model.weights.safetensors", "stdout.txt"]
    assert "Epoch 3/3" in (multi / "rank-0" / "stdout.txt").read_text()
    assert [p.name for p in (multi / "rank-1").iterdir()] == ["stdout.txt"]
    assert (multi / "rank-1" / "stdout.txt").read_text() == ""


def test_shards_cut_each_global_batch_in_rank_order() -> None:
    index = torch.arange(10, 17)  # a global batch of 7
    shards = [distributed.DistributedContext(r, 2, torch.device("cpu")).shard(index)
              for r in range(2)]
    assert [s[0].tolist() for s in shards] == [[10, 11, 12, 13], [14, 15, 16]]
    assert [(s[1], s[2]) for s in shards] == [(4, 2 * 4 / 7), (3, 2 * 3 / 7)]
    # A batch smaller than the world: rank 2 joins the all-reduce with a zero-weighted sample.
    tail = distributed.DistributedContext(2, 3, torch.device("cpu")).shard(torch.tensor([5, 6]))
    assert (tail[0].tolist(), tail[1], tail[2]) == ([5], 0, 0.0)


def test_auto_stays_single_process_without_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert distributed.get_context("auto", torch.device("cpu")) is None
    assert distributed.get_context(False, torch.device("cpu")) is None
    assert distributed.is_main_process() and distributed.world_size() == 1


def test_required_distribution_without_a_launcher_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        distributed.get_context(True, torch.device("cpu"))
    with pytest.raises(ValueError, match="distributed must be 'auto', True or False"):
        distributed.get_context("yes", torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="MASTER_ADDR and MASTER_PORT"):
        distributed.get_context("auto", torch.device("cpu"))
