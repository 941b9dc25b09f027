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
    "tanh": (1, lambda *a, **k: K.rnn(*a, nonlinearity="tanh", **k)),
    "relu": (1, lambda *a, **k: K.rnn(*a, nonlinearity="relu", **k)),
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
    out, h_n = K.rnn(*args, mask=mask)
    # sequence 1 has 2 real steps: its state after step 1 is held to the end
    torch.testing.assert_close(out[5, 1], out[1, 1])
    torch.testing.assert_close(h_n[1], out[1, 1])
    # reversed, sequence 1 runs over steps 1, 0 only: equal to running that sub-sequence alone
    x, h0 = args[0], args[1]
    out_r, h_r = K.rnn(*args, mask=mask, reverse=True)
    solo, solo_h = K.rnn(x[:2, 1:2], h0[1:2], *args[2:], reverse=True)
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
        K.rnn(*args, backend="cuda-magic")
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        K.rnn(*args, nonlinearity="sigmoid")


def _dense_case(cell: str, shape: tuple[int, int, int, int], seed: int, ih_scale: float,
                bias_scale: float):
    """Random float32 inputs of one dense call (x, states, weights), the kernel function, and a
    torch.nn module of the same cell holding the same weights."""
    gates = CELLS[cell][0]
    steps, batch, features, hidden = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch, features, generator=g)
    w_ih = torch.randn(gates * hidden, features, generator=g) * ih_scale
    w_hh = torch.randn(gates * hidden, hidden, generator=g) * hidden ** -0.5
    b_ih, b_hh = (torch.randn(gates * hidden, generator=g) * bias_scale for _ in range(2))
    states = [torch.randn(batch, hidden, generator=g) for _ in range(2 if cell == "lstm" else 1)]
    kind = {"tanh": "RNN", "relu": "RNN"}.get(cell, cell.upper())
    extra = {"nonlinearity": cell} if kind == "RNN" else {}
    reference = getattr(torch.nn, kind)(features, hidden, **extra)
    weights = (w_ih, w_hh, b_ih, b_hh)
    with torch.no_grad():
        for name, value in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
                               weights):
            getattr(reference, name).copy_(value)
    return x, states, weights, CELLS[cell][1], reference


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", list(CELLS))
def test_chunked_passes_equal_the_whole_sequence_pass(cell: str, reverse: bool) -> None:
    """Dense float32 calls on the C++ kernel project the inputs a chunk of steps at a time
    (about 1 MiB of projections) right before stepping through them (at batch 64 and hidden
    256: 5 GRU steps, 4 LSTM or 16 Elman ones; 10 steps are two GRU chunks, three LSTM ones of
    4, 4, 2, and 40 Elman steps three of 16, 16, 8), each continuing from the state the
    previous one ended at; inference into one reused buffer, training into the buffers its
    backward pass reads. Values must equal the composite pass over the whole sequence and
    torch.nn's, with given and with absent (zero) initial states; gradients the composite's."""
    shape = ((40 if CELLS[cell][0] == 1 else 10), 64, 8, 256)
    x, states, weights, fn, reference = _dense_case(cell, shape, 3, 0.3, 0.1)
    for given in (states, [None] * len(states)):
        with torch.no_grad():
            chunked = fn(x, *given, *weights, reverse=reverse, backend="compiled")
            whole = fn(x, *given, *weights, reverse=reverse, backend="fused")
            hx = tuple((torch.zeros_like(states[0]) if s is None else s).unsqueeze(0)
                       for s in given)
            out, finals = reference(x.flip(0) if reverse else x,
                                    hx if cell == "lstm" else hx[0])
        finals = finals if cell == "lstm" else (finals,)
        expected = [out.flip(0) if reverse else out, *(f[0] for f in finals)]
        for a, b, c in zip(chunked, whole, expected):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)
    leaves = [w.clone().requires_grad_() for w in (x, *states, *weights)]
    found = [torch.autograd.grad(_loss(fn(*leaves, reverse=reverse, backend=backend)), leaves)
             for backend in ("compiled", "fused")]
    for a, b in zip(*found):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shape", [(12, 32, 32, 64), (6, 13, 1, 128), (5, 7, 40, 37)])
@pytest.mark.parametrize("cell", list(CELLS))
def test_stacked_steps_match_torch_nn(cell: str, shape: tuple[int, int, int, int],
                                      reverse: bool) -> None:
    """With AVX-512, dense float32 passes whose inputs are no wider than the state, and whose
    stacked panel ((D + H) x G H floats) is at most 512 KiB, form each step's input projection
    inside its micro-kernel product (loop.h's fused::stacked): here the bench's small size
    (D=32, H=64) and a one-feature input (neuralforecast's first layer: D=1, H=128); D=40 > H=37
    is projected apart, beside them (and every shape, on other CPUs). Values in inference and in training (which also keeps the activated
    gates, and the GRU's gh_n, for the backward pass) must equal torch.nn's; gradients the
    composite pass's."""
    x, states, weights, fn, reference = _dense_case(cell, shape, 11, shape[2] ** -0.5, 0.3)
    with torch.no_grad():
        hx = tuple(s.unsqueeze(0) for s in states)
        out, finals = reference(x.flip(0) if reverse else x, hx if cell == "lstm" else hx[0])
    finals = finals if cell == "lstm" else (finals,)
    expected = [out.flip(0) if reverse else out, *(f[0] for f in finals)]
    with torch.no_grad():
        inference = fn(x, *states, *weights, reverse=reverse, backend="compiled")
    leaves = [w.clone().requires_grad_() for w in (x, *states, *weights)]
    training = fn(*leaves, reverse=reverse, backend="compiled")
    for a, b, c in zip(inference, training, expected):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b.detach(), c, rtol=1e-5, atol=1e-5)
    found = torch.autograd.grad(_loss(training), leaves)
    composite = [w.clone().requires_grad_() for w in (x, *states, *weights)]
    wanted = torch.autograd.grad(_loss(fn(*composite, reverse=reverse, backend="fused")),
                                 composite)
    for a, b in zip(found, wanted):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cell", ["tanh", "gru", "lstm"])
def test_large_backward_products_match_the_composite_with_masks_and_no_biases(cell: str) -> None:
    """At batch 64 and hidden 128 the backward pass's products (d gates @ W_ih and the weight
    gradients, sums over T * B rows) are large enough for the AVX-512 micro-kernel, when the
    CPU has it: their gradients, with a lengths mask, in reverse and without biases, must equal
    the composite pass's (float32: 1e-4)."""
    gates = CELLS[cell][0]
    steps, batch, features, hidden = 20, 64, 40, 128
    g = torch.Generator().manual_seed(5)
    x = torch.randn(steps, batch, features, generator=g)
    states = [torch.randn(batch, hidden, generator=g) for _ in range(2 if cell == "lstm" else 1)]
    w_ih = torch.randn(gates * hidden, features, generator=g) * 0.2
    w_hh = torch.randn(gates * hidden, hidden, generator=g) * hidden ** -0.5
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    mask = torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)
    fn = CELLS[cell][1]
    found = []
    for backend in ("compiled", "fused"):
        leaves = [t.clone().requires_grad_() for t in (x, *states, w_ih, w_hh)]
        out = fn(*leaves, None, None, mask=mask, reverse=True, zero_padding=True,
                 backend=backend)
        found.append(torch.autograd.grad(_loss(out), leaves))
    for a, b in zip(*found):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
