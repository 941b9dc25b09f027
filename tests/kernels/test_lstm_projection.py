"""The LSTM operator's output projection ``w_hr`` (torch.nn's ``proj_size``): h = W_hr (o * tanh c).

The compiled loop (float32/float64, masks, both directions) against the autograd loop of
:mod:`rnnkit._kernels.cells` (``backend="loop"``, the ground truth) and the composite
implementation: values and the gradients of every input, float64 to 1e-10; float32 against the
float64 result to 1e-4 (relative to the largest gradient). gradcheck/gradgradcheck on tiny
sizes, torch.library's checks, fake shapes, absent initial states, the shape errors and the
ONNX refusal.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from rnnkit import _kernels as K

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis")
st = hypothesis.strategies

TOL = dict(rtol=1e-10, atol=1e-10)


def _weights(g: torch.Generator, features: int, hidden: int, proj: int, bias: bool,
             dtype: torch.dtype = torch.float64) -> list[torch.Tensor | None]:
    def rnd(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=dtype) * 0.6).requires_grad_()

    b = (rnd(4 * hidden), rnd(4 * hidden)) if bias else (None, None)
    return [rnd(4 * hidden, features), rnd(4 * hidden, proj), *b, rnd(proj, hidden)]


def _run(backend: str, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mask, reverse, zero):
    return K.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr=w_hr, mask=mask, reverse=reverse,
                  zero_padding=zero, backend=backend)


def _values_and_grads(backend: str, inputs: list, mask, reverse: bool, zero: bool,
                      seed: int) -> list[torch.Tensor]:
    outputs = _run(backend, *inputs, mask, reverse, zero)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum()
               for o in outputs)
    leaves = [t for t in inputs if t is not None]
    return [*outputs, *torch.autograd.grad(loss, leaves)]


@st.composite
def calls(draw):
    hidden = draw(st.integers(2, 6))
    return dict(steps=draw(st.integers(1, 6)), batch=draw(st.integers(1, 5)),
                features=draw(st.integers(1, 4)), hidden=hidden,
                proj=draw(st.integers(1, hidden)), bias=draw(st.booleans()),
                states=draw(st.booleans()), mask=draw(st.sampled_from(["none", "lengths",
                                                                       "holes"])),
                reverse=draw(st.booleans()), zero=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 16)))


@hypothesis.settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(calls())
def test_compiled_equals_the_loop_and_composite(c) -> None:
    g = torch.Generator().manual_seed(c["seed"])
    t, b, h, p = c["steps"], c["batch"], c["hidden"], c["proj"]
    x = torch.randn(t, b, c["features"], generator=g, dtype=torch.float64).requires_grad_()
    states = [None, None]
    if c["states"]:
        states = [torch.randn(b, w, generator=g, dtype=torch.float64).requires_grad_()
                  for w in (p, h)]
    inputs = [x, *states, *_weights(g, c["features"], h, p, c["bias"])]
    mask = None
    if c["mask"] == "lengths":
        lengths = torch.randint(0, t + 1, (b,), generator=g)
        mask = torch.arange(t).unsqueeze(1) < lengths.unsqueeze(0)
    elif c["mask"] == "holes":
        mask = torch.rand(t, b, generator=g) > 0.3
    args = (mask, c["reverse"], c["zero"], c["seed"])
    compiled = _values_and_grads("compiled", inputs, *args)
    for backend in ("loop", "composite"):
        torch.testing.assert_close(compiled, _values_and_grads(backend, inputs, *args), **TOL)
    # float32: the same compiled loop in single precision
    single = [None if v is None else v.detach().float().requires_grad_() for v in inputs]
    found = _values_and_grads("compiled", single, *args)
    for a, want in zip(found, compiled):
        scale = max(want.abs().max().item(), 1.0)
        torch.testing.assert_close(a.double(), want, rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("backend", ["compiled", "composite"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mask", [None, torch.tensor([[True, True], [True, False],
                                                      [False, False]])])
def test_gradcheck_and_gradgradcheck(backend: str, reverse: bool, mask) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2, 2, generator=g, dtype=torch.float64).requires_grad_()
    h0 = torch.randn(2, 2, generator=g, dtype=torch.float64).requires_grad_()
    c0 = torch.randn(2, 3, generator=g, dtype=torch.float64).requires_grad_()
    inputs = (x, h0, c0, *_weights(g, 2, 3, 2, True))

    def fn(*a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _run(backend, *a, mask, reverse, mask is not None)

    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_absent_initial_states_are_zeros_of_their_widths() -> None:
    """No h0/c0: zeros (B, P) and (B, H), made by the kernel; gradients (to 1e-12) as with
    explicit zeros, and only h_n's gradient asked for (c_n's absent) still works."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, 2, generator=g, dtype=torch.float64).requires_grad_()
    weights = _weights(g, 2, 5, 2, True)
    zeros = [torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 5, dtype=torch.float64)]
    for backend in ("compiled", "composite", "loop"):
        given = _run(backend, x, *zeros, *weights, None, False, False)
        absent = _run(backend, x, None, None, *weights, None, False, False)
        assert [a.shape for a in absent] == [(4, 3, 2), (3, 2), (3, 5)]
        torch.testing.assert_close(absent, given, rtol=0, atol=1e-12)
        want = torch.autograd.grad(given[1].sum(), [x, *weights])
        got = torch.autograd.grad(absent[1].sum(), [x, *weights])
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_torch_library_opcheck_and_fake_shapes() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 2, 2, generator=g, dtype=torch.float64).requires_grad_()
    weights = _weights(g, 2, 3, 2, True)
    mask = torch.tensor([[True, True], [True, False], [True, False]])
    for states in ([None, None], [torch.randn(2, 2, dtype=torch.float64, requires_grad=True),
                                  torch.randn(2, 3, dtype=torch.float64, requires_grad=True)]):
        args = (x, *states, *weights, mask, False, True, True)
        torch.library.opcheck(torch.ops.rnnkit.lstm, args,
                              test_utils=("test_schema", "test_faketensor",
                                          "test_autograd_registration"))
        plain = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        real = torch.ops.rnnkit.lstm(*plain)
        with FakeTensorMode() as mode:
            fake = torch.ops.rnnkit.lstm(*(mode.from_tensor(a) if isinstance(a, torch.Tensor)
                                           else a for a in plain))
        assert [f.shape for f in fake] == [r.shape for r in real]
        assert real[0].shape == (3, 2, 2) and real[2].shape == (2, 3)


def test_shape_errors_name_the_tensor() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 2, dtype=torch.float64)
    w_ih, w_hh, w_hr = (w.detach() for w in _weights(g, 2, 3, 2, True) if w.dim() == 2)
    with pytest.raises(RuntimeError, match="w_hr must have shape"):
        K.lstm(x, None, None, w_ih, w_hh, w_hr=w_hr[:, :2], backend="compiled")
    with pytest.raises(RuntimeError, match="w_hh must have shape"):
        K.lstm(x, None, None, w_ih, w_hh[:, :1], w_hr=w_hr, backend="compiled")
    with pytest.raises(RuntimeError, match="the initial state must have shape"):
        K.lstm(x, torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64),
               w_ih, w_hh, w_hr=w_hr, backend="compiled")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter says it is
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch's pytree inside the exporter
def test_onnx_export_refuses_the_projection() -> None:
    """ONNX's LSTM has no projection (and torch.onnx exports none for torch.nn's either): an
    error that says so, never a graph without it, from both exporters."""
    pytest.importorskip("onnx")
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(2, 3, proj_size=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            w = [getattr(self.lstm, n) for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                                 "bias_hh_l0", "weight_hr_l0")]
            return K.lstm(x, None, None, *w[:4], w_hr=w[4])[0]

    with pytest.raises(Exception, match="proj_size > 0, w_hr\\) has no standard ONNX"):
        torch.onnx.export(Model().eval(), (torch.randn(4, 1, 2),), io.BytesIO(), dynamo=False)
    pytest.importorskip("onnxscript")
    with pytest.raises(Exception, match="rnnkit"):
        torch.onnx.export(Model().eval(), (torch.randn(4, 1, 2),), dynamo=True, verbose=False)
