"""The compiled kernels' threads (csrc/workers.cpp): how many a call uses, and that the split
of the batch and of the products' rows across them changes no number."""

from __future__ import annotations

import os
import threading

import pytest
import torch

import rnnkit
from rnnkit._kernels import compiled

pytestmark = pytest.mark.skipif(not compiled.available(),
                                reason="the compiled kernels are not available here")


def test_usable_threads_follow_torch_and_the_affinity() -> None:
    """A call's regions use at most torch.get_num_threads() threads and at most the CPUs the
    calling thread may run on."""
    usable = torch.ops.rnnkit._usable_threads
    threads, allowed = torch.get_num_threads(), os.sched_getaffinity(0)
    assert 1 <= usable() <= min(threads, len(allowed))
    try:
        torch.set_num_threads(1)
        assert usable() == 1
    finally:
        torch.set_num_threads(threads)
    if len(allowed) < 2:
        pytest.skip("one CPU: nothing to restrict")
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert usable() == 1
    finally:
        os.sched_setaffinity(0, allowed)


def _lstm_step(threads: int) -> list[torch.Tensor]:
    """Outputs and gradients of an LSTM training step big enough to be split (B=32, T=40)."""
    torch.manual_seed(0)
    model = rnnkit.nn.LSTM(24, 48, backend="compiled")
    x = torch.randn(40, 32, 24, requires_grad=True)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        out, (h, c) = model(x)
        (out.square().sum() + h.sum() + c.sum()).backward()
    finally:
        torch.set_num_threads(previous)
    return [out, h, c, x.grad, *(p.grad for p in model.parameters())]


def test_the_split_changes_no_number() -> None:
    """Each batch row and each output row of a product is computed by one thread in the same
    order whatever the split, so one thread and two give the same bits."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: no split")
    for one, two in zip(_lstm_step(1), _lstm_step(2)):
        torch.testing.assert_close(one, two, rtol=0, atol=0)


def test_calls_from_two_threads_at_once() -> None:
    """Two Python threads calling the kernels at the same time (one of them then runs its
    regions alone) get what each gets when called by itself."""
    torch.manual_seed(1)
    models = [rnnkit.nn.GRU(24, 48, backend="compiled") for _ in range(2)]
    inputs = [torch.randn(60, 32, 24) for _ in range(2)]
    with torch.no_grad():
        expected = [m(x)[0] for m, x in zip(models, inputs)]
    results: list[list[torch.Tensor]] = [[], []]

    def work(i: int) -> None:
        with torch.no_grad():
            for _ in range(20):
                results[i].append(models[i](inputs[i])[0])

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for i in range(2):
        assert len(results[i]) == 20
        for got in results[i]:
            torch.testing.assert_close(got, expected[i], rtol=0, atol=0)
