"""The peephole LSTM's operator ``rnnkit::peephole_lstm`` (csrc/peephole.cpp), Gers &
Schmidhuber 2000 as rnnkit._kernels.lstm_variants states it.

The compiled loop (float64 library path; float32 fused micro-kernel steps and library path)
against the composite implementation, the autograd loop (``backend="loop"``) and the NumPy
reference: values and the gradients of every input (the peepholes included), masks (lengths,
holes, zero padding), both directions, absent states, biases and peepholes. Tolerances: float64
1e-10; float32 against the float64 result 1e-4 relative to the largest value; float32 fused
against float32 library path 2e-5 (1e-4 for gradients through 200 steps). gradcheck and
gradgradcheck on tiny sizes, torch.library's checks and fake shapes, and the routing of the
torch-style and Keras-style modules onto the operator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from rnnkit import _kernels as K
from rnnkit import reference
from rnnkit._kernels import _ops

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis")
st = hypothesis.strategies

TOL = dict(rtol=1e-10, atol=1e-10)


def _run(backend: str, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peepholes, mask=None, reverse=False,
         zero=False):
    return K._recurrence("peephole_lstm", backend, x, (h0, c0), w_ih, w_hh, b_ih, b_hh, mask,
                         reverse, zero, weights=tuple(peepholes))


def _inputs(g: torch.Generator, steps: int, batch: int, features: int, hidden: int, *,
            states: bool = True, bias: bool = True, absent: tuple[bool, ...] = (False,) * 3,
            dtype: torch.dtype = torch.float64) -> list:
    def rnd(*shape: int, scale: float = 0.6) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()

    x = rnd(steps, batch, features, scale=1.0)
    h0, c0 = (rnd(batch, hidden), rnd(batch, hidden)) if states else (None, None)
    b = (rnd(4 * hidden), rnd(4 * hidden)) if bias else (None, None)
    peep = [None if gone else rnd(hidden) for gone in absent]
    return [x, h0, c0, rnd(4 * hidden, features), rnd(4 * hidden, hidden), *b, peep]


def _leaves(inputs: list) -> list[torch.Tensor]:
    flat = [*inputs[:7], *inputs[7]]
    return [t for t in flat if t is not None]


def _values_and_grads(backend: str, inputs: list, mask, reverse: bool, zero: bool,
                      seed: int) -> list[torch.Tensor]:
    outputs = _run(backend, *inputs, mask, reverse, zero)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum()
               for o in outputs)
    return [*outputs, *torch.autograd.grad(loss, _leaves(inputs))]


def _mask(kind: str, g: torch.Generator, steps: int, batch: int) -> torch.Tensor | None:
    if kind == "lengths":
        lengths = torch.randint(0, steps + 1, (batch,), generator=g)
        return torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)
    if kind == "holes":
        return torch.rand(steps, batch, generator=g) > 0.3
    return None


def _reference(inputs: list, mask, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every (h, c) of the NumPy reference (Keras' layout, batch-major, in processing order;
    held at masked steps), time-major in time order as the operator's."""
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep = inputs
    hidden = w_hh.shape[1]
    np_ = lambda t: t.detach().numpy()  # noqa: E731
    bias = sum(np_(b) for b in (b_ih, b_hh) if b is not None) if b_ih is not None else None
    peepholes = np.stack([np.zeros(hidden) if p is None else np_(p) for p in peep])
    hs, cs = reference.peephole_lstm(
        np_(x).transpose(1, 0, 2), np_(w_ih).T, np_(w_hh).T, peepholes, bias=bias,
        h0=None if h0 is None else np_(h0), c0=None if c0 is None else np_(c0),
        mask=None if mask is None else mask.numpy().T, go_backwards=reverse)
    order = slice(None, None, -1 if reverse else 1)
    return hs.transpose(1, 0, 2)[order], cs.transpose(1, 0, 2)[order]


@st.composite
def calls(draw):
    return dict(steps=draw(st.integers(1, 6)), batch=draw(st.integers(1, 5)),
                features=draw(st.integers(1, 4)), hidden=draw(st.integers(1, 6)),
                bias=draw(st.booleans()), states=draw(st.booleans()),
                absent=tuple(draw(st.lists(st.booleans(), min_size=3, max_size=3))),
                mask=draw(st.sampled_from(["none", "lengths", "holes"])),
                reverse=draw(st.booleans()), zero=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 16)))


@hypothesis.settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(calls())
def test_compiled_equals_the_loop_the_composite_and_the_reference(c) -> None:
    g = torch.Generator().manual_seed(c["seed"])
    t, b = c["steps"], c["batch"]
    inputs = _inputs(g, t, b, c["features"], c["hidden"], states=c["states"], bias=c["bias"],
                     absent=c["absent"])
    mask = _mask(c["mask"], g, t, b)
    zero = c["zero"] and mask is not None
    args = (mask, c["reverse"], zero, c["seed"])
    compiled = _values_and_grads("compiled", inputs, *args)
    for backend in ("loop", "composite"):
        torch.testing.assert_close(compiled, _values_and_grads(backend, inputs, *args), **TOL)
    hs, cs = _reference(inputs, mask, c["reverse"])
    out = compiled[0].detach().numpy()
    if zero:  # torch.nn's padding: zero outputs where the reference holds the state
        hs = np.where(mask.numpy()[..., None], hs, 0.0)
    np.testing.assert_allclose(out, hs, **TOL)
    last = 0 if c["reverse"] else -1  # the held final state
    if not zero:
        np.testing.assert_allclose(compiled[1].detach().numpy(), hs[last], **TOL)
    np.testing.assert_allclose(compiled[2].detach().numpy(), cs[last], **TOL)
    # float32: the same compiled loop in single precision (fused steps without a mask)
    single = [[None if p is None else p.detach().float().requires_grad_() for p in v]
              if isinstance(v, list) else None if v is None else v.detach().float().requires_grad_()
              for v in inputs]
    found = _values_and_grads("compiled", single, *args)
    for a, want in zip(found, compiled):
        scale = max(want.abs().max().item(), 1.0)
        torch.testing.assert_close(a.double(), want, rtol=0, atol=1e-4 * scale)


# sizes that leave partial vector tiles and row blocks, and (200 steps) a pass in chunks
FUSED_CASES = [(3, 1, 2, 1), (5, 7, 3, 10), (4, 13, 5, 37), (200, 16, 4, 64)]
FUSED_SCRIPT = r"""
import json, sys
import torch
from rnnkit import _kernels as K
worst = {"values": 0.0, "grads": 0.0}
for steps, batch, features, hidden in json.loads(sys.argv[1]):
    for reverse in (False, True):
        for train in (True, False):
            g = torch.Generator().manual_seed(steps * 100 + hidden)
            def r(*shape, s=1.0):
                return ((torch.rand(*shape, generator=g) * 2 - 1) * s).requires_grad_(train)
            s = hidden ** -0.5
            x = r(steps, batch, features)
            h0, c0 = r(batch, hidden), r(batch, hidden)
            w_ih, w_hh = r(4 * hidden, features, s=s), r(4 * hidden, hidden, s=s)
            b_ih, b_hh = r(4 * hidden), r(4 * hidden)
            peep = tuple(r(hidden) for _ in range(3))
            leaves = [x, h0, c0, w_ih, w_hh, b_ih, b_hh, *peep]
            weight = torch.randn(steps, batch, hidden, generator=g)
            def run(mask):  # no mask: the fused steps; an all-True mask: the library path
                o = K._recurrence("peephole_lstm", "compiled", x, (h0, c0), w_ih, w_hh, b_ih,
                                  b_hh, mask, reverse, False, weights=peep)
                if not train:
                    return o, ()
                loss = (o[0] * weight).sum() + o[1].sum() + (2 * o[2]).sum()
                return o, torch.autograd.grad(loss, leaves)
            fused, library = run(None), run(torch.ones(steps, batch, dtype=torch.bool))
            for a, b in zip(fused[0], library[0]):
                worst["values"] = max(worst["values"], ((a - b).abs() / (b.abs() + 1)).max().item())
            for a, b in zip(fused[1], library[1]):
                worst["grads"] = max(worst["grads"],
                                     ((a - b).abs() / (b.abs().max() + 1)).max().item())
print(json.dumps(worst))
"""


@pytest.mark.parametrize("isa", ["native", "avx2"])
def test_fused_steps_equal_the_library_path_in_float32(isa: str) -> None:
    """Dense float32 on the micro-kernel (the ISA read once per process: a fresh one each)
    against the same call on the library path (an all-True mask), training and inference."""
    from rnnkit._kernels import compiled

    if not compiled.available():
        pytest.skip("the C++ kernels are not built")
    env = dict(os.environ)
    if isa == "avx2":
        env["RNNKIT_ISA"] = "avx2"
    result = subprocess.run([sys.executable, "-c", FUSED_SCRIPT, json.dumps(FUSED_CASES)],
                            env=env, capture_output=True, text=True, timeout=600, check=True)
    worst = json.loads(result.stdout.strip().splitlines()[-1])
    assert worst["values"] < 2e-5, worst
    assert worst["grads"] < 1e-4, worst


@pytest.mark.parametrize("backend", ["compiled", "composite"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mask", [None, torch.tensor([[True, True], [True, False],
                                                      [False, False]])])
def test_gradcheck_and_gradgradcheck(backend: str, reverse: bool, mask) -> None:
    g = torch.Generator().manual_seed(3)
    inputs = _inputs(g, 3, 2, 2, 3)
    flat = (*inputs[:7], *inputs[7])

    def fn(*a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _run(backend, *a[:7], a[7:], mask, reverse, mask is not None)

    assert gradcheck(fn, flat)
    assert gradgradcheck(fn, flat)


def test_without_peepholes_it_is_the_lstm() -> None:
    """Absent peepholes are zeros: the LSTM operator's values and gradients (to 1e-12)."""
    g = torch.Generator().manual_seed(5)
    x, h0, c0, *weights, _ = _inputs(g, 5, 3, 2, 4)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (x, h0, c0, *weights)]
        got = _run("compiled", *leaves, (None, None, None))
        want = K.lstm(*leaves, backend="compiled")
        torch.testing.assert_close(got, want, rtol=0, atol=tol)
        torch.testing.assert_close(torch.autograd.grad(sum(o.sum() for o in got), leaves),
                                   torch.autograd.grad(sum(o.sum() for o in want), leaves),
                                   rtol=0, atol=tol)


def test_torch_library_opcheck_and_fake_shapes() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    g = torch.Generator().manual_seed(7)
    x, h0, c0, *weights, peep = _inputs(g, 3, 2, 2, 3)
    mask = torch.tensor([[True, True], [True, False], [True, False]])
    for states in ([None, None], [h0, c0]):
        args = (x, *states, *weights, *peep, mask, False, True, True)
        torch.library.opcheck(torch.ops.rnnkit.peephole_lstm, args,
                              test_utils=("test_schema", "test_faketensor",
                                          "test_autograd_registration"))
        plain = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        real = torch.ops.rnnkit.peephole_lstm(*plain)
        with FakeTensorMode() as mode:
            fake = torch.ops.rnnkit.peephole_lstm(
                *(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in plain))
        assert [f.shape for f in fake] == [r.shape for r in real]
        assert [r.shape for r in real] == [(3, 2, 3), (2, 3), (2, 3), (3, 2, 12), (3, 2, 3)]


def test_a_peephole_of_the_wrong_shape_is_refused() -> None:
    g = torch.Generator().manual_seed(0)
    x, h0, c0, *weights, peep = (v.detach() if isinstance(v, torch.Tensor) else v
                                 for v in _inputs(g, 3, 2, 2, 3))
    with pytest.raises(RuntimeError, match="w_cf must have shape \\(3,\\)"):
        _run("compiled", x, h0, c0, *weights, (peep[0].detach(), torch.zeros(4, dtype=x.dtype),
                                                None))


def test_the_modules_run_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    """rnnkit.nn.PeepholeLSTM (both directions) and rnnkit.layers.PeepholeLSTM call the
    operator (eagerly, with a gradient: its C++ autograd node), not the composite sequence."""
    from rnnkit import layers, nn

    called: list[str] = []
    eager = _ops.eager

    def spy(name: str, *args, grad: bool):
        called.append(name)
        return eager(name, *args, grad=grad)

    monkeypatch.setattr(_ops, "eager", spy)
    out, _ = nn.PeepholeLSTM(3, 4, bidirectional=True)(torch.randn(5, 2, 3))
    out.sum().backward()
    assert called == ["peephole_lstm", "peephole_lstm"]
    layers.PeepholeLSTM(4)(torch.randn(2, 5, 3))
    assert called == ["peephole_lstm"] * 3
