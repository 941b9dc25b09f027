"""The weight and bias gradients of the compiled float32 backward passes, formed in one pass over
the per-step gate gradients on the micro-kernel (``weight_grads`` in csrc/shared.cpp, AVX-512),
against the float64 compiled pass, whose weight gradients are the library's products
(``matmul``, ``recurrent_weight_grad``, ``sum_rows``): every cell, the LSTM with and without an
output projection, both directions, masks with and without zero padding (zero padding keeps the
library's path), widths that leave partial vectors and column groups (1 to 70), sequences that
span several of the pass's 64-row blocks, and any subset of the weights asked for (the operator
computes only those). Float32 against float64: 1e-4 relative to the largest gradient. On a CPU
without AVX-512 both sides take the library's path and the test still checks float32 against
float64.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit import _kernels as K

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis")
st = hypothesis.strategies

GATES = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4, "lstm_proj": 4}


def _run(cell: str, x, states, w_ih, w_hh, b_ih, b_hh, w_hr, mask, reverse, zero):
    kw = dict(mask=mask, reverse=reverse, zero_padding=zero, backend="compiled")
    if cell.startswith("lstm"):
        return K.lstm(x, *states, w_ih, w_hh, b_ih, b_hh, w_hr=w_hr, **kw)
    if cell == "gru":
        return K.gru(x, *states, w_ih, w_hh, b_ih, b_hh, **kw)
    return K.rnn(x, *states, w_ih, w_hh, b_ih, b_hh, nonlinearity=cell, **kw)


@st.composite
def calls(draw):
    cell = draw(st.sampled_from(sorted(GATES)))
    hidden = draw(st.sampled_from([1, 5, 16, 37, 64, 70]))
    return dict(cell=cell, steps=draw(st.integers(1, 12)), batch=draw(st.integers(1, 40)),
                features=draw(st.sampled_from([1, 3, 16, 33, 70])), hidden=hidden,
                proj=draw(st.integers(1, hidden)) if cell == "lstm_proj" else hidden,
                bias=draw(st.booleans()), mask=draw(st.sampled_from(["none", "lengths"])),
                reverse=draw(st.booleans()), zero=draw(st.booleans()),
                wanted=draw(st.sets(st.sampled_from(["w_ih", "w_hh", "b_ih", "b_hh", "w_hr"]),
                                    min_size=1)),
                seed=draw(st.integers(0, 2 ** 16)))


@hypothesis.settings(max_examples=80, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(calls())
def test_float32_weight_gradients_equal_the_library_products(c) -> None:
    g = torch.Generator().manual_seed(c["seed"])
    cell, t, b, h, p = c["cell"], c["steps"], c["batch"], c["hidden"], c["proj"]
    gates = GATES[cell]

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    x = rnd(t, b, c["features"])
    states = [rnd(b, p)] + ([rnd(b, h)] if cell.startswith("lstm") else [])
    weights = dict(w_ih=rnd(gates * h, c["features"], scale=0.5),
                   w_hh=rnd(gates * h, p, scale=p ** -0.5),
                   b_ih=rnd(gates * h) if c["bias"] else None,
                   b_hh=rnd(gates * h) if c["bias"] else None,
                   w_hr=rnd(p, h, scale=h ** -0.5) if cell == "lstm_proj" else None)
    wanted = [k for k in weights if k in c["wanted"] and weights[k] is not None]
    if not wanted:
        wanted = ["w_hh"]
    mask = None
    if c["mask"] == "lengths":
        lengths = torch.randint(0, t + 1, (b,), generator=g)
        mask = torch.arange(t).unsqueeze(1) < lengths.unsqueeze(0)
    weight_out = rnd(t, b, p)

    def grads(dtype: torch.dtype) -> list[torch.Tensor]:
        w = {k: None if v is None else v.to(dtype).requires_grad_(k in wanted)
             for k, v in weights.items()}
        out = _run(cell, x.to(dtype), [s.to(dtype) for s in states], w["w_ih"], w["w_hh"],
                   w["b_ih"], w["b_hh"], w["w_hr"], mask, c["reverse"], c["zero"])
        loss = (out[0] * weight_out.to(dtype)).sum() + sum(s.sum() for s in out[1:])
        return list(torch.autograd.grad(loss, [w[k] for k in wanted]))

    for name, a, want in zip(wanted, grads(torch.float32), grads(torch.float64)):
        scale = max(want.abs().max().item(), 1.0)
        torch.testing.assert_close(a.double(), want, rtol=0, atol=1e-4 * scale,
                                   msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("reverse", [False, True])
def test_a_long_sequence_crosses_many_row_blocks(reverse: bool) -> None:
    """T * B = 1,200 rows (19 of the pass's 64-row blocks; batch 30, so blocks and steps do not
    line up), both directions (reversed, the initial state's rows come last), H = 64 and
    D = 40: each of the LSTM's weight gradients against float64 (1e-4 relative to the
    largest)."""
    g = torch.Generator().manual_seed(11)
    t, b, d, h = 40, 30, 40, 64
    inputs = [torch.randn(t, b, d, generator=g, dtype=torch.float64),
              torch.randn(b, h, generator=g, dtype=torch.float64),
              torch.randn(b, h, generator=g, dtype=torch.float64),
              torch.randn(4 * h, d, generator=g, dtype=torch.float64) * 0.3,
              torch.randn(4 * h, h, generator=g, dtype=torch.float64) * h ** -0.5,
              torch.randn(4 * h, generator=g, dtype=torch.float64),
              torch.randn(4 * h, generator=g, dtype=torch.float64)]
    found = []
    for dtype in (torch.float32, torch.float64):
        leaves = [v.to(dtype).requires_grad_() for v in inputs]
        out = K.lstm(*leaves, reverse=reverse, backend="compiled")
        found.append(torch.autograd.grad(out[0].sum() + out[2].sum(), leaves[3:]))
    for a, want in zip(*found):
        scale = max(want.abs().max().item(), 1.0)
        torch.testing.assert_close(a.double(), want, rtol=0, atol=1e-4 * scale)
