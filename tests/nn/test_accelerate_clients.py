"""``rnnkit.accelerate()`` under the recurrent modules as forecasting libraries build them.

The shapes ``bench/clients`` measures in darts, neuralforecast and pytorch-forecasting, written
here without those libraries: a subclass of ``torch.nn.LSTM``/``GRU`` through a mixin that packs
every padded batch (unsorted lengths, some padded to one step), as pytorch-forecasting's models
do; ``getattr(torch.nn, name)(..., batch_first=True, dropout=...)`` stepped one time step at a
time with its state carried between calls, as darts' RNNModel predicts; an ``nn.LSTM`` with
``proj_size``, as neuralforecast builds one. Each runs with acceleration off (PyTorch's kernels)
and on, from the same seed with dropout between layers in training: the profiler must show
rnnkit's path taken, and outputs, states and gradients must agree. Tolerances: float64 rtol
1e-7, atol 1e-9; float32 rtol 1e-5, atol 1e-5 (values) and 1e-4 (gradients, summed in another
order).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit

TOL = {torch.float64: dict(rtol=1e-7, atol=1e-9), torch.float32: dict(rtol=1e-5, atol=1e-5)}
GRAD_TOL = {torch.float64: dict(rtol=1e-7, atol=1e-9), torch.float32: dict(rtol=1e-4, atol=1e-4)}


class PackingRNN(torch.nn.RNNBase):
    """Packs each padded batch around torch.nn's own forward (mixed in before nn.LSTM/GRU)."""

    def forward(self, x, lengths, hx=None):  # type: ignore[no-untyped-def, override]
        # a sequence without steps still runs one, as a forecaster with no history does
        packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=self.batch_first,
                                      enforce_sorted=False)
        out, state = super().forward(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=x.size(1))
        return out, state


class PackingLSTM(PackingRNN, torch.nn.LSTM):
    pass


class PackingGRU(PackingRNN, torch.nn.GRU):
    pass


@pytest.fixture(autouse=True)
def _off_around() -> None:
    rnnkit.accelerate(False)
    yield
    rnnkit.accelerate(False)


def run_both(module: torch.nn.Module, x: torch.Tensor, step: Callable[[], list[torch.Tensor]],
             op: str, calls: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """step()'s tensors with PyTorch's kernels and with rnnkit's, each from the same seed, and
    the gradients of their sum with respect to the module's parameters and the input x;
    rnnkit's path must have been taken `calls` times when on, never when off."""
    results = []
    for on in (False, True):
        module.zero_grad()
        x.grad = None
        torch.manual_seed(7)
        with rnnkit.accelerate(on), torch.profiler.profile() as profile:
            tensors = step()
            sum(t.sum() for t in tensors).backward()
        taken = sum(e.name == f"rnnkit.accelerate.{op}" for e in profile.events())
        assert taken == (calls if on else 0)
        results.append((tensors, [x.grad, *(p.grad.clone() for p in module.parameters())]))
    (off, off_grads), (on_, on_grads) = results
    return [*off, *off_grads], [*on_, *on_grads]


def assert_same(off: list[torch.Tensor], on: list[torch.Tensor], values: int,
                dtype: torch.dtype) -> None:
    assert len(off) == len(on)
    for index, (theirs, ours) in enumerate(zip(off, on, strict=True)):
        tolerance = TOL[dtype] if index < values else GRAD_TOL[dtype]
        torch.testing.assert_close(ours, theirs, **tolerance)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cls", [PackingLSTM, PackingGRU])
def test_packing_subclass_with_dropout(cls: type[PackingRNN], dtype: torch.dtype) -> None:
    module = cls(5, 7, num_layers=2, dropout=0.3, batch_first=True).to(dtype).train()
    x = torch.randn(6, 9, 5, dtype=dtype, requires_grad=True)
    lengths = torch.tensor([9, 3, 0, 7, 9, 1])

    def step() -> list[torch.Tensor]:
        out, state = module(x, lengths)
        return [out, *(state if isinstance(state, tuple) else (state,))]

    op = "lstm" if cls is PackingLSTM else "gru"
    off, on = run_both(module, x, step, op, calls=1)
    assert_same(off, on, values=3 if op == "lstm" else 2, dtype=dtype)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_darts_style_module_stepped_with_carried_state(name: str) -> None:
    module = getattr(torch.nn, name)(3, 8, 2, batch_first=True, dropout=0.2).train()
    x = torch.randn(4, 6, 3, requires_grad=True)

    def step() -> list[torch.Tensor]:
        out, state = module(x)  # the input window, then one step at a time from its state
        outs = [out]
        for _ in range(3):
            out, state = module(out[:, -1:, :3], state)
            outs.append(out)
        return [*outs, *(state if isinstance(state, tuple) else (state,))]

    op = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn_tanh"}[name]
    off, on = run_both(module, x, step, op, calls=4)
    assert_same(off, on, values=6 if name == "LSTM" else 5, dtype=torch.float32)


def test_neuralforecast_style_projected_lstm() -> None:
    module = torch.nn.LSTM(4, 16, num_layers=2, batch_first=True, dropout=0.1,
                           proj_size=6).double().train()
    x = torch.randn(3, 12, 4, dtype=torch.float64, requires_grad=True)

    def step() -> list[torch.Tensor]:
        out, (h, c) = module(x)
        return [out, h, c]

    off, on = run_both(module, x, step, "lstm", calls=1)
    assert_same(off, on, values=3, dtype=torch.float64)
