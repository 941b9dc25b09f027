"""gradcheck of whole rnnkit.nn modules (float64), with lengths, through every kernel path."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit.nn as rnn


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_module_gradcheck_with_lengths(name: str) -> None:
    module = getattr(rnn, name)(2, 3, num_layers=2, bidirectional=True, batch_first=True,
                                dtype=torch.float64)
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])
    params = list(module.parameters())

    def run(x, h0, *weights):
        hx = (h0, h0 * 0.5) if name == "LSTM" else h0
        names = [n for n, _ in module.named_parameters()]
        out, state = torch.func.functional_call(
            module, dict(zip(names, weights)), (x, hx), {"lengths": lengths}
        )
        state = state if isinstance(state, tuple) else (state,)
        return (out, *state)

    assert gradcheck(run, (x, h0, *[p.detach().requires_grad_() for p in params]))
