"""Fused kernels vs the looped autograd path, and gradcheck of the hand-written backward passes."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.autograd import gradcheck

from rnnkit import _kernels as K

T, B, D, H = 6, 4, 3, 5
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}
CELLS = {
    "tanh": (1, lambda *a, **k: K.elman(*a, nonlinearity="tanh", **k)),
    "relu": (1, lambda *a, **k: K.elman(*a, nonlinearity="relu", **k)),
    "gru": (3, K.gru),
    "lstm": (4, K.lstm),
}


def _inputs(cell: str, dtype: torch.dtype, bias: bool = True) -> list[torch.Tensor]:
    gates = CELLS[cell][0]
    g = torch.Generator().manual_seed(1)
    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()
    states = [rnd(B, H)] + ([rnd(B, H)] if cell == "lstm" else [])
    weights = [rnd(gates * H, D, scale=0.5), rnd(gates * H, H, scale=0.5)]
    biases = [rnd(gates * H), rnd(gates * H)] if bias else [None, None]
    return [rnd(T, B, D), *states, *weights, *biases]


def _mask(kind: str) -> torch.Tensor | None:
    if kind == "none":
        return None
    if kind == "lengths":
        return torch.arange(T).unsqueeze(1) < torch.tensor([6, 2, 5, 1]).unsqueeze(0)
    holes = torch.ones(T, B, dtype=torch.bool)
    holes[2, 0] = holes[0, 1] = holes[5, 2] = holes[3, 3] = False
    return holes


def _loss(results: tuple[torch.Tensor, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return sum((r * torch.randn(r.shape, generator=g, dtype=r.dtype)).sum() for r in results)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "cell,mask_kind,reverse,bias",
    list(itertools.product(CELLS, ["none", "lengths", "holes"], [False, True], [True, False])),
)
def test_fused_matches_loop(cell: str, mask_kind: str, reverse: bool, bias: bool, dtype: torch.dtype) -> None:
    fn = CELLS[cell][1]
    args = _inputs(cell, dtype, bias)
    mask = _mask(mask_kind)
    fused = fn(*args, mask=mask, reverse=reverse, backend="fused")
    loop = fn(*args, mask=mask, reverse=reverse, backend="loop")
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, **TOL[dtype])
    wrt = [a for a in args if a is not None]
    grads_fused = torch.autograd.grad(_loss(fused), wrt)
    grads_loop = torch.autograd.grad(_loss(loop), wrt)
    for a, b in zip(grads_fused, grads_loop):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("mask_kind,reverse", [("none", False), ("lengths", True), ("holes", False)])
def test_gradcheck_fused(cell: str, mask_kind: str, reverse: bool) -> None:
    fn = CELLS[cell][1]
    args = _inputs(cell, torch.float64)
    mask = _mask(mask_kind)
    assert gradcheck(lambda *a: fn(*a, mask=mask, reverse=reverse, backend="fused"), tuple(args))


def test_masked_state_is_held_and_reverse_starts_at_last_real_step() -> None:
    args = _inputs("tanh", torch.float64)
    mask = _mask("lengths")
    out, h_n = K.elman(*args, mask=mask)
    # sequence 1 has 2 real steps: its state after step 1 is held to the end
    torch.testing.assert_close(out[5, 1], out[1, 1])
    torch.testing.assert_close(h_n[1], out[1, 1])
    # reversed, sequence 1 runs over steps 1, 0 only: equal to running that sub-sequence alone
    x, h0 = args[0], args[1]
    out_r, h_r = K.elman(*args, mask=mask, reverse=True)
    solo, solo_h = K.elman(x[:2, 1:2], h0[1:2], *args[2:], reverse=True)
    torch.testing.assert_close(h_r[1:2], solo_h)
    torch.testing.assert_close(out_r[:2, 1:2], solo)
    torch.testing.assert_close(out_r[2:, 1], h0[1].expand(4, H))  # held at h0 before its last step


def test_weight_gradients_flow_only_through_real_steps() -> None:
    args = _inputs("gru", torch.float64)
    mask = torch.zeros(T, B, dtype=torch.bool)
    out, h_n = K.gru(*args, mask=mask)
    torch.testing.assert_close(h_n, args[1])
    grads = torch.autograd.grad(_loss((out, h_n)), [args[0], args[2]])
    assert torch.count_nonzero(grads[0]) == 0 and torch.count_nonzero(grads[1]) == 0


def test_unknown_backend_and_nonlinearity_are_rejected() -> None:
    args = _inputs("tanh", torch.float64)
    with pytest.raises(ValueError, match="backend must be one of"):
        K.elman(*args, backend="cuda-magic")
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        K.elman(*args, nonlinearity="sigmoid")
