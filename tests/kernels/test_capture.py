"""The captured scan (rnnkit._kernels.capture): a step traced once against the same step run
in the plain loop (rnnkit._kernels.scan): values, first and second derivatives (float64), the
split into input projection and recurrent epilogue, and every refusal.

Tolerances: float64 rtol 1e-10 / atol 1e-12 (the projection is one product over all steps,
not one per step, so rounding may differ in the last bits).
"""

from __future__ import annotations

import pytest
import torch

from rnnkit._kernels import scan
from rnnkit._kernels.capture import CaptureError, capture, captured_scan

F64 = dict(rtol=1e-10, atol=1e-12)
D, H, B, T = 3, 4, 2, 5


def _weights():
    w = torch.randn(D, 4 * H, dtype=torch.float64, requires_grad=True)
    u = torch.randn(H, 4 * H, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4 * H, dtype=torch.float64, requires_grad=True)
    return [w, u, b]


def lstm_body(p, xs, carry):
    """A hand-written LSTM step: two states, an output that is one of them."""
    w, u, b = p
    h, c = carry
    i, f, g, o = (xs[0] @ w + b + h @ u).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, [h, c]


def _loop(body, p, x, carry):
    states = scan(lambda x_t, s: tuple(body(p, [x_t], list(s))[1]), x, tuple(carry))
    return states


def test_values_and_gradients_equal_the_loop() -> None:
    p = _weights()
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    carry = [torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    ys, carried = captured_scan(lstm_body, p, [x], carry)
    hs, (h_n, c_n) = _loop(lstm_body, p, x, carry)
    torch.testing.assert_close(ys, hs, **F64)
    torch.testing.assert_close(carried[0][-1], h_n, **F64)
    torch.testing.assert_close(carried[1][-1], c_n, **F64)
    w_out = torch.randn_like(ys)
    inputs = [*p, x, *carry]
    got = torch.autograd.grad((ys * w_out).sum() + carried[1][-1].pow(2).sum(), inputs)
    want = torch.autograd.grad((hs * w_out).sum() + c_n.pow(2).sum(), inputs)
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e, **F64)


def test_gradcheck_and_gradgradcheck() -> None:
    p = _weights()
    x = torch.randn(3, B, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)

    def f(w, u, b, x, h0, c0):  # captured once (owner, key), as the front ends cache it
        ys, carried = captured_scan(lstm_body, [w, u, b], [x], [h0, c0], owner=lstm_body,
                                    key="gradcheck")
        return ys, carried[1][-1]

    args = (*p, x, h0, c0)
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


def test_the_projection_is_hoisted_out_of_the_step() -> None:
    """x @ w + b reads no state: it runs once for all steps; the epilogue keeps h @ u."""
    p = [t.detach() for t in _weights()]
    x, h, c = torch.randn(B, D), torch.randn(B, H), torch.randn(B, H)
    captured = capture(lstm_body, [t.float() for t in p], [x], [h, c])
    assert captured.n_boundary == 1  # the (B, 4H) input projection with its bias
    boundary = captured.projection([t.float() for t in p], [torch.randn(T, B, D)])
    assert boundary[0].shape == (T, B, 4 * H)


def _data_dependent(p, xs, carry):
    w, u, b = p
    h = torch.tanh(xs[0] @ w[:, :H] + carry[0] @ u[:, :H])
    if h.sum() > 0:  # Python control flow on a value: not capturable
        h = -h
    return h, [h]


def _random(p, xs, carry):
    h = torch.tanh(xs[0] @ p[0][:, :H] + carry[0] @ p[1][:, :H])
    h = torch.nn.functional.dropout(h, 0.5, training=True)
    return h, [h]


def _in_place_on_state(p, xs, carry):
    carry[0].mul_(0.5)
    h = torch.tanh(xs[0] @ p[0][:, :H] + carry[0] @ p[1][:, :H])
    return h, [h]


@pytest.mark.parametrize("body, reason", [
    (_data_dependent, "could not be traced"),
    (_random, "random"),
    (_in_place_on_state, "in place"),
])
def test_what_cannot_be_captured_is_refused(body, reason) -> None:
    p = [t.detach() for t in _weights()]
    with pytest.raises(CaptureError, match=reason):
        captured_scan(body, p, [torch.randn(T, B, D, dtype=torch.float64)],
                      [torch.randn(B, H, dtype=torch.float64)])


def test_a_tensor_read_from_outside_is_refused() -> None:
    """A tensor the step closes over would be frozen into the capture."""
    p = [t.detach() for t in _weights()]
    outside = torch.randn(H, H, dtype=torch.float64)

    def body(p, xs, carry):
        h = torch.tanh(xs[0] @ p[0][:, :H] + carry[0] @ outside)
        return h, [h]

    with pytest.raises(CaptureError, match="FakeTensor|neither an input"):
        captured_scan(body, p, [torch.randn(T, B, D, dtype=torch.float64)],
                      [torch.randn(B, H, dtype=torch.float64)])


def test_a_capture_is_cached_per_owner_and_key() -> None:
    calls = []

    def body(p, xs, carry):
        calls.append(1)
        h = xs[0] @ p[0][:, :H] + carry[0] @ p[1][:, :H]
        return h, [h]

    class Owner:
        pass

    owner = Owner()
    p = [t.detach() for t in _weights()]
    for steps in (4, 6):  # another T reuses the step's capture
        captured_scan(body, p, [torch.randn(steps, B, D, dtype=torch.float64)],
                      [torch.zeros(B, H, dtype=torch.float64)], owner=owner, key="k")
    traced = len(calls)
    assert traced > 0
    captured_scan(body, p, [torch.randn(3, B, D, dtype=torch.float64)],
                  [torch.zeros(B, H, dtype=torch.float64)], owner=owner, key="k")
    assert len(calls) == traced
