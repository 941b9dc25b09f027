"""The same kernels and modules on a CUDA device (skipped where there is none): the fused
path on the GPU against the autograd loop there and against the CPU, in float64, values and
gradients, with masks and both directions; rnnkit.nn on the GPU against torch.nn on the GPU."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit import _kernels as K

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

T, B, D, H = 6, 3, 4, 5
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _args(cell: str, device: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    gates = GATES[cell]

    def r(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5).to(device)

    states = [r(B, H) for _ in range(2 if cell == "lstm" else 1)]
    return [r(T, B, D), *states, r(gates * H, D), r(gates * H, H), r(gates * H), r(gates * H)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", list(GATES))
def test_fused_on_cuda_matches_the_loop_and_the_cpu(cell: str, reverse: bool) -> None:
    function = getattr(K, cell)
    mask = torch.ones(T, B, dtype=torch.bool)
    mask[4:, 1] = False
    mask[2:, 2] = False
    results = {}
    for device, backend in (("cuda", "auto"), ("cuda", "loop"), ("cpu", "fused")):
        args = [a.requires_grad_() for a in _args(cell, device)]
        outputs = function(*args, mask=mask.to(device), reverse=reverse, backend=backend)
        grads = torch.autograd.grad(sum(o.sum() for o in outputs), args)
        results[(device, backend)] = [t.detach().cpu() for t in (*outputs, *grads)]
    for other in (("cuda", "loop"), ("cpu", "fused")):
        for a, b in zip(results[("cuda", "auto")], results[other]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_nn_modules_on_cuda_match_torch_nn(name: str) -> None:
    torch.manual_seed(0)
    ours = getattr(rnn, name)(D, H, num_layers=2, bidirectional=True, batch_first=True)
    theirs = getattr(torch.nn, name)(D, H, num_layers=2, bidirectional=True, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    ours, theirs = ours.double().cuda(), theirs.double().cuda()
    x = torch.randn(B, T, D, dtype=torch.float64, device="cuda")
    lengths = torch.tensor([6, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                     enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(theirs(packed)[0], batch_first=True,
                                                         total_length=T)
    got = ours(x, lengths=lengths.cuda())[0]
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
