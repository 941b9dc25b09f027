"""The layer-normalised LSTM and GRU as operators ``rnnkit::layer_norm_lstm`` (its C++ loop,
csrc/layer_norm_lstm.cpp, on the library path) and ``rnnkit::layer_norm_gru`` (composite-only),
derived from their cell descriptions: the operator (``backend="auto"``: the C++ loop for the
LSTM) against its composite implementation, the autograd loop (``backend="loop"``), the
variants' own step run by lstm_variants' scan (what the modules ran before the operator) and
the NumPy reference, in float64 to 1e-10: values and gradients of every input, masks (holes,
zero padding), both directions, absent initial states. Float32 (the LSTM's loop in single
precision) against the float64 result to 1e-4 relative to the largest value. gradcheck and
gradgradcheck; fake shapes and torch.library's checks; absent gains and shifts are ones and
zeros; the torch-style and Keras-style layer-normalised LSTMs call the operator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from rnnkit import _kernels as K
from rnnkit import reference
from rnnkit._kernels._cell_spec import CELLS
from rnnkit._kernels import _ops
from rnnkit._kernels.lstm_variants import VARIANTS
from rnnkit._kernels.loop import scan

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis")
st = hypothesis.strategies

TOL = dict(rtol=1e-10, atol=1e-10)


def _params(g: torch.Generator, kind: str, features: int, hidden: int) -> dict:
    cell = CELLS[kind]
    rows = cell.gates * hidden

    def rnd(*shape: int, mean: float = 0.0) -> torch.Tensor:
        return (mean + 0.6 * torch.randn(*shape, generator=g, dtype=torch.float64)
                ).requires_grad_()

    p = {"weight_ih": rnd(rows, features), "weight_hh": rnd(rows, hidden),
         "bias_ih": rnd(rows), "bias_hh": rnd(rows)}
    for name in cell.weights:  # gains near one, shifts near zero
        width = hidden if name.startswith("ln_c") else rows
        p[name] = rnd(width, mean=1.0 if name.endswith("weight") else 0.0)
    return p


def _operator(kind: str, x, state, p, mask, reverse, zero=False, backend="auto"):
    return K._recurrence(kind, backend, x, state, p["weight_ih"], p["weight_hh"], p["bias_ih"],
                         p["bias_hh"], mask, reverse, zero,
                         weights=tuple(p[n] for n in CELLS[kind].weights))


def _variant(kind: str, x, state, p, mask, reverse):
    """The variant's own input side and step (lstm_variants.VARIANTS) in the autograd loop."""
    variant = VARIANTS[kind]
    out, final = scan(lambda g, s: variant.step(g, s, p), variant.input_side(x, p), state, mask,
                      reverse=reverse)
    return (out, *final)


@st.composite
def calls(draw):
    return dict(kind=draw(st.sampled_from(["layer_norm_lstm", "layer_norm_gru"])),
                steps=draw(st.integers(1, 5)), batch=draw(st.integers(1, 4)),
                features=draw(st.integers(1, 3)), hidden=draw(st.integers(1, 5)),
                mask=draw(st.sampled_from(["none", "holes", "zero"])),
                states=draw(st.booleans()), reverse=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 16)))


def _values_and_grads(outputs, leaves, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum()
               for o in outputs)
    return [*outputs, *torch.autograd.grad(loss, leaves)]


@hypothesis.settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(calls())
def test_operator_equals_the_composite_the_loop_the_variant_and_the_reference(c) -> None:
    g = torch.Generator().manual_seed(c["seed"])
    kind, t, b, h = c["kind"], c["steps"], c["batch"], c["hidden"]
    p = _params(g, kind, c["features"], h)
    x = torch.randn(t, b, c["features"], generator=g, dtype=torch.float64).requires_grad_()
    state = tuple(torch.randn(b, h, generator=g, dtype=torch.float64).requires_grad_()
                  for _ in CELLS[kind].states)
    mask = torch.rand(t, b, generator=g) > 0.3 if c["mask"] != "none" else None
    zero = c["mask"] == "zero"
    given = state if c["states"] else (None,) * len(state)
    leaves = [x, *(s for s in given if s is not None), *p.values()]
    args = (mask, c["reverse"], zero)
    got = _values_and_grads(_operator(kind, x, given, p, *args), leaves, c["seed"])
    for backend in ("composite", "loop"):
        want = _operator(kind, x, given, p, *args, backend=backend)
        torch.testing.assert_close(got, _values_and_grads(want, leaves, c["seed"]), **TOL)
    if c["states"] and not zero:
        want = _variant(kind, x, state, p, mask, c["reverse"])
        torch.testing.assert_close(got, _values_and_grads(want, leaves, c["seed"]), **TOL)
    if kind == "layer_norm_lstm":  # float32: the C++ loop in single precision
        single = {k: v.detach().float().requires_grad_() for k, v in p.items()}
        xs = x.detach().float().requires_grad_()
        ss = tuple(None if s is None else s.detach().float().requires_grad_() for s in given)
        found = _values_and_grads(
            _operator(kind, xs, ss, single, *args),
            [xs, *(s for s in ss if s is not None), *single.values()], c["seed"])
        for a, want in zip(found, got):
            scale = max(want.abs().max().item(), 1.0)
            torch.testing.assert_close(a.double(), want, rtol=0, atol=1e-4 * scale)
    if not c["states"] or zero:
        return
    # the NumPy reference (Keras' layout and gate order, batch-major, processing order)
    keras = CELLS[kind].rows("torch", "keras", h)
    n = {k: v.detach().numpy() for k, v in p.items()}
    common = dict(h0=state[0].detach().numpy(),
                  mask=None if mask is None else mask.numpy().T, go_backwards=c["reverse"])
    xs = x.detach().numpy().transpose(1, 0, 2)
    if kind == "layer_norm_lstm":
        ln = [(n[f"ln_{k}_weight"], n[f"ln_{k}_bias"]) for k in ("ih", "hh", "c")]
        hs, _ = reference.layer_norm_lstm(xs, n["weight_ih"].T, n["weight_hh"].T, *ln,
                                          bias=n["bias_ih"] + n["bias_hh"],
                                          c0=state[1].detach().numpy(), **common)
    else:
        ln = [(n[f"ln_{k}_weight"][keras], n[f"ln_{k}_bias"][keras]) for k in ("ih", "hh")]
        hs = reference.layer_norm_gru(xs, n["weight_ih"][keras].T, n["weight_hh"][keras].T, *ln,
                                      bias=np.stack([n["bias_ih"][keras], n["bias_hh"][keras]]),
                                      **common)
    order = slice(None, None, -1 if c["reverse"] else 1)
    np.testing.assert_allclose(got[0].detach().numpy(), hs.transpose(1, 0, 2)[order], **TOL)


@pytest.mark.parametrize("kind", ["layer_norm_lstm", "layer_norm_gru"])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_and_gradgradcheck(kind: str, reverse: bool) -> None:
    g = torch.Generator().manual_seed(1)
    p = _params(g, kind, 2, 3)
    x = torch.randn(3, 2, 2, generator=g, dtype=torch.float64).requires_grad_()
    state = tuple(torch.randn(2, 3, generator=g, dtype=torch.float64).requires_grad_()
                  for _ in CELLS[kind].states)
    mask = torch.tensor([[True, True], [True, False], [False, True]])
    names, count = list(p), len(state)

    def fn(x, *rest):
        return _operator(kind, x, rest[:count], dict(zip(names, rest[count:])), mask, reverse)

    inputs = (x, *state, *p.values())
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


@pytest.mark.parametrize("kind", ["layer_norm_lstm", "layer_norm_gru"])
def test_fake_shapes_and_absent_norm_weights(kind: str) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    g = torch.Generator().manual_seed(2)
    cell = CELLS[kind]
    p = {k: v.detach() for k, v in _params(g, kind, 2, 3).items()}
    x = torch.randn(4, 2, 2, dtype=torch.float64)
    args = (x, *(None,) * len(cell.states), p["weight_ih"], p["weight_hh"], p["bias_ih"],
            p["bias_hh"], *(p[n] for n in cell.weights), None, False, False, True)
    op = getattr(torch.ops.rnnkit, kind)
    real = op(*args)
    with FakeTensorMode() as mode:
        fake = op(*(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args))
    assert [f.shape for f in fake] == [r.shape for r in real]
    # absent gains and shifts: ones and zeros
    for name in cell.weights:
        p[name] = torch.ones_like(p[name]) if name.endswith("weight") else torch.zeros_like(
            p[name])
    given = _operator(kind, x, (None,) * len(cell.states), p, None, False)
    absent = K._recurrence(kind, "auto", x, (None,) * len(cell.states), p["weight_ih"],
                           p["weight_hh"], p["bias_ih"], p["bias_hh"], None, False, False)
    torch.testing.assert_close(absent, given, rtol=0, atol=1e-12)


def test_the_modules_run_the_lstms_operator_and_the_grus_composite_sequence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """rnnkit.nn.LayerNormLSTM (both directions) and rnnkit.layers.LayerNormLSTM call the
    operator (its C++ loop); the layer-normalised GRU, composite-only, keeps the variant's own
    sequence (its composite operator would run the forward pass again in its backward)."""
    from rnnkit import layers, nn

    called: list[str] = []
    eager = _ops.eager

    def spy(name: str, *args, grad: bool):
        called.append(name)
        return eager(name, *args, grad=grad)

    monkeypatch.setattr(_ops, "eager", spy)
    out, _ = nn.LayerNormLSTM(3, 4, bidirectional=True)(torch.randn(5, 2, 3))
    out.sum().backward()
    layers.LayerNormLSTM(4)(torch.randn(2, 5, 3))
    nn.LayerNormGRU(3, 4)(torch.randn(5, 2, 3))[0].sum().backward()
    assert called == ["layer_norm_lstm"] * 3
