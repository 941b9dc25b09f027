"""The rnnkit operators (torch.ops.rnnkit.*) as PyTorch's tools see them: double backward,
torch.func transforms, vmap, autocast, fake tensors and torch.library's own consistency checks.

gradcheck/gradgradcheck run in float64 on tiny sizes (T=3, B=2, H=2) with the default
tolerances; torch.func and vmap results against autograd/looping to 1e-12 (float64); autocast
against torch.nn in bfloat16 to 2e-2 (bfloat16's resolution over a few steps).
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import rnnkit.nn as rnn
from rnnkit import _kernels as K
from rnnkit._kernels._cell_spec import CELLS as SPECS

T, B, D, H = 3, 2, 2, 2
CELLS = {
    "tanh": (1, lambda *a, **k: K.rnn(*a, nonlinearity="tanh", **k)),
    "relu": (1, lambda *a, **k: K.rnn(*a, nonlinearity="relu", **k)),
    "gru": (3, K.gru),
    "lstm": (4, K.lstm),
}


def _inputs(cell: str, dtype: torch.dtype = torch.float64, batch: int = B) -> list[torch.Tensor]:
    gates = CELLS[cell][0]
    g = torch.Generator().manual_seed(2)

    def rnd(*shape: int) -> torch.Tensor:
        # relu: keep pre-activations off the kink, where finite differences are meaningless
        offset = 0.6 if cell == "relu" and len(shape) == 1 else 0.0
        return (torch.randn(*shape, generator=g, dtype=dtype) * 0.7 + offset).requires_grad_()

    states = [rnd(batch, H)] + ([rnd(batch, H)] if cell == "lstm" else [])
    return [rnd(T, batch, D), *states, rnd(gates * H, D), rnd(gates * H, H), rnd(gates * H),
            rnd(gates * H)]


MASKS = {
    "none": None,
    "lengths": torch.tensor([[True, True], [True, False], [True, False]]),
    "holes": torch.tensor([[False, True], [True, True], [True, False]]),
}


@pytest.mark.parametrize("backend", ["auto", "fused"])  # the operator (C++ on CPU); composite
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradgradcheck(cell: str, mask_kind: str, reverse: bool, backend: str) -> None:
    fn = CELLS[cell][1]
    mask = MASKS[mask_kind]

    def run(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return fn(*args, mask=mask, reverse=reverse, zero_padding=mask is not None,
                  backend=backend)

    args = tuple(_inputs(cell))
    assert gradcheck(run, args)
    assert gradgradcheck(run, args)


@pytest.mark.parametrize("cell", list(CELLS))
def test_func_grad_vjp_and_jacrev_equal_autograd(cell: str) -> None:
    fn = CELLS[cell][1]
    args = _inputs(cell)
    mask = MASKS["lengths"]

    def loss(*a: torch.Tensor) -> torch.Tensor:
        return sum((o * o).sum() for o in fn(*a, mask=mask, zero_padding=True))

    want = torch.autograd.grad(loss(*args), args)
    got = torch.func.grad(loss, argnums=tuple(range(len(args))))(*args)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    out, pullback = torch.func.vjp(lambda x: fn(x, *args[1:], mask=mask)[0], args[0])
    (dx,) = pullback(torch.ones_like(out))
    (want_dx,) = torch.autograd.grad(fn(*args, mask=mask)[0].sum(), args[0])
    torch.testing.assert_close(dx, want_dx, rtol=1e-12, atol=1e-12)
    jacobian = torch.func.jacrev(lambda x: fn(x, *args[1:])[1])(args[0])  # d h_n / d x
    assert jacobian.shape == (B, H, T, B, D)
    rows = [torch.autograd.grad(fn(*args)[1][i, j], args[0])[0] for i in range(B) for j in range(H)]
    torch.testing.assert_close(jacobian.reshape(B * H, T, B, D), torch.stack(rows),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's
def test_jvp_says_why_it_cannot() -> None:
    args = _inputs("gru")
    with pytest.raises(NotImplementedError, match="no forward-mode derivative"):
        torch.func.jvp(lambda x: K.gru(x, *args[1:])[0], (args[0],), (torch.ones_like(args[0]),))


@pytest.mark.parametrize("cell", list(CELLS))
def test_vmap_equals_a_loop_and_batched_gradcheck(cell: str) -> None:
    fn = CELLS[cell][1]
    args = [a.detach() for a in _inputs(cell)]
    xs = torch.randn(4, T, B, D, dtype=torch.float64)
    got = torch.func.vmap(lambda x: fn(x, *args[1:])[0])(xs)
    want = torch.stack([fn(x, *args[1:])[0] for x in xs])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    leaves = tuple(a.requires_grad_() for a in args)  # gradcheck's vmap over the backward
    assert gradcheck(lambda *a: fn(*a, mask=MASKS["holes"]), leaves, check_batched_grad=True)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_autocast_returns_what_torch_nn_returns(kind: str) -> None:
    """torch.nn on the CPU under bfloat16 autocast: LSTM and RNN return bfloat16 (oneDNN), GRU
    float32 (not on autocast's list); the rnnkit modules return the same dtypes and values."""
    torch.manual_seed(0)
    ours = getattr(rnn, kind)(D, H, batch_first=True)
    theirs = getattr(torch.nn, kind)(D, H, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(B, 5, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = ours(x), theirs(x)
    for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_cuda_autocast_returns_what_torch_nn_returns(kind: str) -> None:
    """torch.nn on CUDA under float16 autocast returns float16 for all three (cuDNN)."""
    torch.manual_seed(0)
    ours = getattr(rnn, kind)(D, H, batch_first=True).cuda()
    theirs = getattr(torch.nn, kind)(D, H, batch_first=True).cuda()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(B, 5, D, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        got, want = ours(x), theirs(x)
    for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)


def test_autocast_kernels_are_registered_where_torch_nn_casts() -> None:
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    assert [has(f"rnnkit::{c}", "AutocastCPU") for c in ("rnn", "gru", "lstm")] == [
        True, False, True]
    assert all(has(f"rnnkit::{c}", "AutocastCUDA") for c in ("rnn", "gru", "lstm"))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_autocast_training_gives_torch_nns_gradients(kind: str) -> None:
    """A training step under bfloat16 autocast: the casts are recorded by autograd, so every
    parameter gets a float32 gradient, equal to torch.nn's within bfloat16's resolution."""
    torch.manual_seed(0)
    ours = getattr(rnn, kind)(D, H, batch_first=True)
    theirs = getattr(torch.nn, kind)(D, H, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(B, 5, D, requires_grad=True)
    grads = []
    for module in (ours, theirs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = module(x)
        grads.append(torch.autograd.grad(out.float().square().sum(), [x, *module.parameters()]))
    for a, b in zip(*grads):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_fake_kernels_give_the_shapes(cell: str) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    args = [a.detach() for a in _inputs(cell, torch.float32)]
    op = getattr(torch.ops.rnnkit, cell)
    own = (None,) * len(SPECS[cell].weights)  # the cell's own optional weights: absent
    real = op(*args, *own, None, False, False, True)
    with FakeTensorMode() as mode:
        fake = op(*(mode.from_tensor(a) for a in args), *own, None, False, False, True)
    assert [f.shape for f in fake] == [r.shape for r in real]
    assert [f.dtype for f in fake] == [r.dtype for r in real]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_torch_library_opcheck(cell: str) -> None:
    """torch.library's consistency checks: schema, fake kernel, autograd registration."""
    inputs = _inputs({"rnn": "tanh"}.get(cell, cell))
    tail = (*(None,) * len(SPECS[cell].weights), MASKS["lengths"], True, True, True) + (
        (False,) if cell == "rnn" else ())
    torch.library.opcheck(getattr(torch.ops.rnnkit, cell), (*inputs, *tail),
                          test_utils=("test_schema", "test_faketensor",
                                      "test_autograd_registration"))


def _without_states(cell: str, args: list[torch.Tensor]) -> list[torch.Tensor | None]:
    """The same call with the initial state(s) absent (None): what rnnkit.nn passes without hx."""
    states = 2 if cell == "lstm" else 1
    return [args[0], *([None] * states), *args[1 + states:]]


@pytest.mark.parametrize("backend", ["auto", "fused", "loop"])
@pytest.mark.parametrize("mask_kind", ["none", "lengths"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_absent_initial_state_is_zeros(cell: str, mask_kind: str, backend: str) -> None:
    """None for h0 (and c0) is zeros: the same values and gradients (float64, to 1e-12) as
    explicit zero states, on every path, in both directions; and the operator's double
    backward stays exact (gradgradcheck) without them."""
    fn, mask = CELLS[cell][1], MASKS[mask_kind]
    args = _inputs(cell)
    states = 2 if cell == "lstm" else 1
    zeros = [torch.zeros(B, H, dtype=torch.float64) for _ in range(states)]
    for reverse in (False, True):
        kw = dict(mask=mask, reverse=reverse, zero_padding=mask is not None, backend=backend)
        given = fn(args[0], *zeros, *args[1 + states:], **kw)
        absent = fn(*_without_states(cell, args), **kw)
        for a, b in zip(absent, given):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        leaves = [args[0], *args[1 + states:]]
        want = torch.autograd.grad(sum(g.sum() for g in given), leaves)
        got = torch.autograd.grad(sum(a.sum() for a in absent), leaves)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    if backend != "loop":
        def run(x: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return fn(x, *([None] * states), *weights, mask=mask, zero_padding=mask is not None,
                      backend=backend)

        leaves = (args[0], *args[1 + states:])
        assert gradcheck(run, leaves)
        assert gradgradcheck(run, leaves)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_torch_library_opcheck_without_initial_states(cell: str) -> None:
    """The operators with h0 (and c0) absent, through torch.library's consistency checks."""
    name = {"rnn": "tanh"}.get(cell, cell)
    inputs = _without_states(name, _inputs(name))
    tail = (*(None,) * len(SPECS[cell].weights), MASKS["lengths"], False, True, True) + (
        (False,) if cell == "rnn" else ())
    torch.library.opcheck(getattr(torch.ops.rnnkit, cell), (*inputs, *tail),
                          test_utils=("test_schema", "test_faketensor",
                                      "test_autograd_registration"))
