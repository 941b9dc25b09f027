"""minGRU / minLSTM kernels (rnnkit._kernels.minimal): the parallel log-space scan against an
independent sequential PyTorch loop written here from the paper's plain equations, and against
the NumPy reference: values and gradients in float64 (gradcheck, gradgradcheck), masks with
holes, both directions, a given or zero initial state, and long sequences.

Tolerances: float64 rtol 1e-9 / atol 1e-11 (the scan sums in log space, the loop does not).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit._kernels.minimal import min_scan, min_sequence, min_step

F64 = dict(rtol=1e-9, atol=1e-11)
CELLS = ("mingru", "minlstm")
GATES = {"mingru": 2, "minlstm": 3}


def plain_loop(cell, x, w, b, h0, mask, reverse):
    """The paper's equations, one step at a time, with held states at masked steps."""
    T, B = x.shape[:2]
    H = w.shape[0] // GATES[cell]
    h = torch.zeros(B, H, dtype=x.dtype) if h0 is None else h0
    g = lambda a: torch.where(a >= 0, a + 0.5, torch.sigmoid(a))  # noqa: E731
    out = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        k = x[t] @ w.t() + (0 if b is None else b)
        if cell == "mingru":
            z = torch.sigmoid(k[:, :H])
            new = (1 - z) * h + z * g(k[:, H:])
        else:
            f, i = torch.sigmoid(k[:, :H]), torch.sigmoid(k[:, H:2 * H])
            new = f / (f + i) * h + i / (f + i) * g(k[:, 2 * H:])
        h = new if mask is None else torch.where(mask[t].unsqueeze(-1), new, h)
        out[t] = h
    return torch.stack(out), h


def _case(cell, T=6, B=3, D=4, H=5, bias=True):
    w = torch.randn(GATES[cell] * H, D, dtype=torch.float64, requires_grad=True)
    b = torch.randn(GATES[cell] * H, dtype=torch.float64, requires_grad=True) if bias else None
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    return x, w, b, h0


MASK = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 0]]).bool()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("given_h0", [False, True])
def test_scan_equals_the_sequential_loop(cell, reverse, masked, given_h0) -> None:
    x, w, b, h0 = _case(cell)
    h0 = h0 if given_h0 else None
    mask = MASK if masked else None
    got, got_n = min_sequence(cell, x, w, b, h0, mask, reverse)
    want, want_n = plain_loop(cell, x, w, b, h0, mask, reverse)
    torch.testing.assert_close(got, want, **F64)
    torch.testing.assert_close(got_n, want_n, **F64)
    inputs = [t for t in (x, w, b, h0) if t is not None]
    cot = torch.randn_like(want)
    g1 = torch.autograd.grad((got * cot).sum() + got_n.sum(), inputs)
    g2 = torch.autograd.grad((want * cot).sum() + want_n.sum(), inputs)
    for a, e in zip(g1, g2):
        torch.testing.assert_close(a, e, **F64)


@pytest.mark.parametrize("cell", CELLS)
def test_leading_masked_steps_give_finite_gradients(cell) -> None:
    """No real step seen yet and no h0: b = 0 there must not turn into NaN gradients."""
    x, w, b, _ = _case(cell)
    mask = torch.zeros(6, 3, dtype=torch.bool)
    mask[3:] = True
    h, _ = min_sequence(cell, x, w, b, None, mask)
    grads = torch.autograd.grad(h.sum(), [x, w, b])
    assert all(torch.isfinite(g).all() for g in grads)
    assert (h[:3] == 0).all()


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_and_gradgradcheck(cell) -> None:
    x, w, b, h0 = _case(cell, T=4, B=2, D=3, H=2)
    mask = torch.tensor([[1, 1], [0, 1], [1, 0], [1, 1]]).bool()
    for reverse in (False, True):
        f = lambda x, w, b, h0: min_sequence(cell, x, w, b, h0, mask, reverse)  # noqa: E731
        assert torch.autograd.gradcheck(f, (x, w, b, h0))
        assert torch.autograd.gradgradcheck(f, (x, w, b, h0))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_numpy_reference(cell, go_backwards) -> None:
    """Keras' layout (kernel = w^T), batch first, states in processing order."""
    x, w, b, h0 = _case(cell)
    mask = MASK
    want = getattr(reference, cell)(x.detach().transpose(0, 1).numpy(), w.detach().t().numpy(),
                                    b.detach().numpy(), h0.detach().numpy(),
                                    mask.t().numpy(), go_backwards)
    got, _ = min_sequence(cell, x, w, b, h0, mask, go_backwards)
    got = got.detach().transpose(0, 1).numpy()
    if go_backwards:
        got = got[:, ::-1]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("cell", CELLS)
def test_the_step_is_one_step_of_the_scan(cell) -> None:
    x, w, b, h0 = _case(cell)
    h, _ = min_sequence(cell, x[:1], w, b, h0)
    torch.testing.assert_close(min_step(cell, x[0], h0, w, b), h[0], **F64)


def test_a_long_sequence_stays_finite_in_float32() -> None:
    T = 3000
    x, w, b, h0 = _case("mingru", T=T, B=2, D=3, H=4)
    got, _ = min_sequence("mingru", x.float(), w.float(), b.float(), h0.float())
    want, _ = plain_loop("mingru", x, w, b, h0, None, False)
    assert torch.isfinite(got).all()
    # The log-space scan subtracts and adds cumulative log coefficients of size ~T (here
    # ~2000), so float32 keeps about 2000 * 6e-8 = 1e-4 of relative accuracy by the end.
    torch.testing.assert_close(got.double(), want, rtol=2e-3, atol=1e-4)


def test_min_scan_holds_the_state() -> None:
    log_a = torch.log(torch.full((3, 1, 1), 0.5, dtype=torch.float64))
    log_b = torch.log(torch.full((3, 1, 1), 2.0, dtype=torch.float64))
    h0 = torch.ones(1, 1, dtype=torch.float64)
    mask = torch.tensor([[True], [False], [True]])
    h = min_scan(log_a, log_b, h0, mask)
    # 0.5 * 1 + 2 = 2.5, held, then 0.5 * 2.5 + 2 = 3.25
    torch.testing.assert_close(h.flatten(), torch.tensor([2.5, 2.5, 3.25], dtype=torch.float64))


def test_unknown_cell() -> None:
    with pytest.raises(ValueError, match="cell must be one of"):
        min_step("mingruu", torch.randn(1, 2), torch.randn(1, 2), torch.randn(4, 2), None)
