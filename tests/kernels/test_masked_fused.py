"""Masked (variable-length) float32 calls on the fused micro-kernel steps (csrc/loop.h).

On a CPU with AVX2 or AVX-512 a masked float32 call takes the fused steps: each step runs on
every row, the rows the mask holds get their state back, and backward the kernels' epilogues
pass a held row's d h on in the carry. Differential tests over random configurations: the
float32 compiled call (fused steps) against the float64 compiled call (the library path) and
the float64 autograd loop (``backend="loop"``, the ground truth), values and the gradients of
every input; random lengths including 0 and T, masks with holes, both directions, held and
zero padding, the three cells. Then the chunked pass (large batch x hidden: the inputs
projected a chunk of steps at a time) with masks against the whole-sequence library pass, and
an all-masked call. The same cases on every instruction set this CPU runs are in
test_fused_isa.py.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit import _kernels as K

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis")
st = hypothesis.strategies

GATES = {"tanh": 1, "relu": 1, "gru": 3, "lstm": 4}


def _call(cell: str, backend: str, x, states, weights, mask, reverse: bool, zero: bool):
    fn = {"gru": K.gru, "lstm": K.lstm}.get(cell)
    kwargs = dict(mask=mask, reverse=reverse, zero_padding=zero, backend=backend)
    if fn is None:
        return K.rnn(x, *states, *weights, nonlinearity=cell, **kwargs)
    return fn(x, *states, *weights, **kwargs)


def _values_and_grads(cell: str, backend: str, inputs: dict, dtype: torch.dtype, mask,
                      reverse: bool, zero: bool, weight: torch.Tensor | None) -> list:
    """The call's outputs and the gradients of every input of a loss over all of them, in
    float64; `weight` None: out.sum() (a broadcast output gradient), else (out * weight).sum()."""
    def leaf(t):
        return None if t is None else t.detach().to(dtype).requires_grad_()

    x, states, weights = leaf(inputs["x"]), [leaf(s) for s in inputs["states"]], \
        [leaf(w) for w in inputs["weights"]]
    outputs = _call(cell, backend, x, states, weights, mask, reverse, zero)
    out = outputs[0]
    loss = out.sum() if weight is None else (out * weight.to(dtype)).sum()
    loss = loss + sum((f * (i + 2)).sum() for i, f in enumerate(outputs[1:]))
    leaves = [t for t in (x, *states, *weights) if t is not None]
    grads = torch.autograd.grad(loss, leaves)
    return [t.detach().double() for t in (*outputs, *grads)]


def _mask(kind: str, lengths: list[int], steps: int, g: torch.Generator) -> torch.Tensor:
    if kind == "holes":
        return torch.rand(steps, len(lengths), generator=g) > 0.35
    return torch.arange(steps).unsqueeze(1) < torch.tensor(lengths).unsqueeze(0)


def _inputs(cell: str, steps: int, batch: int, features: int, hidden: int, bias: bool,
            states: bool, g: torch.Generator) -> dict:
    gates = GATES[cell]

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    count = 2 if cell == "lstm" else 1
    return {
        "x": rnd(steps, batch, features),
        "states": [rnd(batch, hidden) if states else None for _ in range(count)],
        "weights": [rnd(gates * hidden, features, scale=0.5),
                    rnd(gates * hidden, hidden, scale=hidden ** -0.5),
                    rnd(gates * hidden, scale=0.2) if bias else None,
                    rnd(gates * hidden, scale=0.2) if bias else None],
    }


def _assert_float32_close(found: list, want: list, tol: float) -> None:
    for a, b in zip(found, want):
        scale = max(b.abs().max().item() if b.numel() else 0.0, 1.0)
        torch.testing.assert_close(a, b, rtol=0, atol=tol * scale)


@st.composite
def calls(draw):
    steps = draw(st.integers(1, 7))
    batch = draw(st.integers(1, 9))
    # lengths anywhere in [0, T], 0 and T among them when the batch has room
    lengths = draw(st.lists(st.integers(0, steps), min_size=batch, max_size=batch))
    if batch >= 3:
        lengths[draw(st.integers(0, batch - 1))] = 0
        lengths[draw(st.integers(0, batch - 1))] = steps
    return dict(cell=draw(st.sampled_from(list(GATES))), steps=steps, batch=batch,
                features=draw(st.integers(1, 3)),
                # partial vector tiles, and (AVX-512) more than one 64-unit backward group
                hidden=draw(st.sampled_from([1, 5, 16, 23, 40, 70])),
                lengths=lengths, mask=draw(st.sampled_from(["lengths", "holes"])),
                reverse=draw(st.booleans()), zero=draw(st.booleans()),
                bias=draw(st.booleans()), states=draw(st.booleans()),
                broadcast=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


@hypothesis.settings(max_examples=80, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(calls())
def test_masked_float32_matches_the_library_path_and_the_loop(c) -> None:
    g = torch.Generator().manual_seed(c["seed"])
    inputs = _inputs(c["cell"], c["steps"], c["batch"], c["features"], c["hidden"], c["bias"],
                     c["states"], g)
    mask = _mask(c["mask"], c["lengths"], c["steps"], g)
    weight = None if c["broadcast"] else torch.randn(c["steps"], c["batch"], c["hidden"],
                                                     generator=g, dtype=torch.float64)
    args = (mask, c["reverse"], c["zero"], weight)
    truth = _values_and_grads(c["cell"], "loop", inputs, torch.float64, *args)
    library = _values_and_grads(c["cell"], "compiled", inputs, torch.float64, *args)
    torch.testing.assert_close(library, truth, rtol=1e-10, atol=1e-10)
    fused = _values_and_grads(c["cell"], "compiled", inputs, torch.float32, *args)
    _assert_float32_close(fused, truth, 1e-4)


@pytest.mark.parametrize("zero", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", ["tanh", "gru", "lstm"])
def test_masked_chunked_pass_matches_the_whole_sequence_library_pass(cell: str, reverse: bool,
                                                                     zero: bool) -> None:
    """At batch 64 and hidden 256 a float32 call projects its inputs a chunk of steps at a time
    (5 GRU steps, 4 LSTM or 16 Elman ones; see test_fused.py's chunked test): with a mask the
    held rows of a chunk's last step must carry their state into the next chunk, and with zero
    padding be zeroed only after it has read them. Values and gradients against the float64
    library pass over the whole sequence (1e-4 of the largest magnitude)."""
    gates = GATES[cell]
    steps, batch = (40 if gates == 1 else 11), 64
    g = torch.Generator().manual_seed(11)
    inputs = _inputs(cell, steps, batch, 8, 256, True, True, g)
    lengths = torch.randint(0, steps + 1, (batch,), generator=g)
    lengths[:3] = torch.tensor([0, steps, 4])  # one ends at the first chunk's boundary
    mask = torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)
    mask[:, 3:6] = torch.rand(steps, 3, generator=g) > 0.5  # holes
    weight = torch.randn(steps, batch, 256, generator=g, dtype=torch.float64)
    args = (mask, reverse, zero, weight)
    want = _values_and_grads(cell, "compiled", inputs, torch.float64, *args)
    found = _values_and_grads(cell, "compiled", inputs, torch.float32, *args)
    _assert_float32_close(found, want, 1e-4)
    if zero:
        assert torch.count_nonzero(found[0][~mask]) == 0


@pytest.mark.parametrize("cell", list(GATES))
def test_all_masked_float32_call_holds_the_initial_state(cell: str) -> None:
    """Every step masked: the outputs are the initial state (held) or zero (zero padding), the
    final states equal the initial ones exactly, and only the final states' gradients reach the
    initial states (weights and inputs get exactly zero)."""
    g = torch.Generator().manual_seed(2)
    inputs = _inputs(cell, 5, 7, 3, 20, True, True, g)
    mask = torch.zeros(5, 7, dtype=torch.bool)
    for zero in (False, True):
        found = _values_and_grads(cell, "compiled", inputs, torch.float32, mask, False, zero,
                                  None)
        count = len(inputs["states"])
        out, finals, grads = found[0], found[1:1 + count], found[1 + count:]
        h0 = inputs["states"][0].float().double()
        want_out = torch.zeros_like(out) if zero else h0.expand_as(out)
        assert torch.equal(out, want_out)
        for f, s in zip(finals, inputs["states"]):
            assert torch.equal(f, s.float().double())
        x_grad, state_grads, weight_grads = grads[0], grads[1:1 + count], grads[1 + count:]
        assert torch.count_nonzero(x_grad) == 0
        assert all(torch.count_nonzero(w) == 0 for w in weight_grads)
        # d h0 = d h_n (2) plus, held, every step's output gradient (1 each)
        torch.testing.assert_close(state_grads[0],
                                   torch.full_like(state_grads[0], 2.0 if zero else 7.0))
        if cell == "lstm":
            torch.testing.assert_close(state_grads[1], torch.full_like(state_grads[1], 3.0))
