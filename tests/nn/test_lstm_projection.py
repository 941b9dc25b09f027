"""rnnkit.nn.LSTM with ``proj_size`` against torch.nn.LSTM with copied weights, and the
compiled operator doing the whole sequence (no per-step Python).

Differential over random configurations (hypothesis): layers, directions, ``batch_first``,
dense / packed with unsorted lengths / ``lengths=`` / unbatched input, ``hx`` given or not,
train (with dropout between layers: torch.nn's masks from the same seed) or eval; float64
values and the gradients of the input, ``hx`` and every weight (``weight_hr`` included) to
1e-10.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
import rnnkit.nn as rnn

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis")
st = hypothesis.strategies

TOL = dict(rtol=1e-10, atol=1e-10)


def _pair(features: int, hidden: int, **kwargs) -> tuple[torch.nn.LSTM, rnn.LSTM]:
    theirs = torch.nn.LSTM(features, hidden, dtype=torch.float64, **kwargs)
    ours = rnn.LSTM(features, hidden, dtype=torch.float64, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


@st.composite
def configurations(draw):
    hidden = draw(st.integers(2, 6))
    return dict(hidden=hidden, proj=draw(st.integers(1, hidden - 1)),
                layers=draw(st.integers(1, 3)), bidirectional=draw(st.booleans()),
                batch_first=draw(st.booleans()), bias=draw(st.booleans()),
                kind=draw(st.sampled_from(["dense", "packed", "lengths", "unbatched"])),
                with_hx=draw(st.booleans()), training=draw(st.booleans()),
                dropout=draw(st.sampled_from([0.0, 0.4])), steps=draw(st.integers(1, 6)),
                batch=draw(st.integers(1, 4)), features=draw(st.integers(1, 4)),
                seed=draw(st.integers(0, 2 ** 16)))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.filterwarnings("ignore:dropout option adds dropout after all but last")
@hypothesis.settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(configurations())
def test_equals_torch_nn(c) -> None:
    torch.manual_seed(c["seed"])
    # lengths= (no PackedSequence) draws dropout over the padded batch: other masks than
    # torch.nn's over packed data, by design
    dropout = 0.0 if c["kind"] == "lengths" else c["dropout"]
    theirs, ours = _pair(c["features"], c["hidden"], num_layers=c["layers"], bias=c["bias"],
                         batch_first=c["batch_first"], dropout=dropout,
                         bidirectional=c["bidirectional"], proj_size=c["proj"])
    theirs.train(c["training"]), ours.train(c["training"])
    steps, batch = c["steps"], c["batch"]
    shape = (batch, steps) if c["batch_first"] else (steps, batch)
    if c["kind"] == "unbatched":
        shape = (steps,)
    x = torch.randn(*shape, c["features"], dtype=torch.float64, requires_grad=True)
    groups = c["layers"] * (2 if c["bidirectional"] else 1)
    lead = (groups,) if c["kind"] == "unbatched" else (groups, batch)
    hx = None
    if c["with_hx"]:
        hx = (torch.randn(*lead, c["proj"], dtype=torch.float64, requires_grad=True),
              torch.randn(*lead, c["hidden"], dtype=torch.float64, requires_grad=True))
    lengths = torch.randint(1, steps + 1, (batch,))
    lengths[torch.randint(batch, ())] = steps

    def call(module: torch.nn.Module, use_lengths: bool) -> list[torch.Tensor]:
        torch.manual_seed(c["seed"])  # the dropout masks
        if c["kind"] == "packed":
            packed = pack_padded_sequence(x, lengths, batch_first=c["batch_first"],
                                          enforce_sorted=False)
            out, (h, cell) = module(packed, hx)
            return [out.data, h, cell]
        if c["kind"] == "lengths":  # rnnkit.nn's lengths= against torch.nn's packed batch
            if use_lengths:
                out, (h, cell) = module(x, hx, lengths=lengths)
                return [out, h, cell]
            packed = pack_padded_sequence(x, lengths, batch_first=c["batch_first"],
                                          enforce_sorted=False)
            out, (h, cell) = module(packed, hx)
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=c["batch_first"],
                                                            total_length=steps)
            return [out, h, cell]
        out, (h, cell) = module(x, hx)
        return [out, h, cell]

    leaves = [x, *(hx or ())]
    results = []
    for module, use_lengths in ((theirs, False), (ours, True)):
        outputs = call(module, use_lengths)
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum()
                   for o in outputs)
        results.append((outputs, torch.autograd.grad(loss, [*leaves, *module.parameters()])))
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want, **TOL)
    torch.testing.assert_close(got_grads, want_grads, **TOL)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck_and_gradgradcheck_through_the_module(bidirectional: bool) -> None:
    torch.manual_seed(0)
    lstm = rnn.LSTM(2, 3, 2, proj_size=2, bidirectional=bidirectional, dtype=torch.float64)
    names = [n for n, _ in lstm.named_parameters()]
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 2])

    def fn(x: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, (h, c) = torch.func.functional_call(lstm, dict(zip(names, params)),
                                                 (x,), {"lengths": lengths})
        return out, h, c

    inputs = (x, *(p.detach().requires_grad_() for p in lstm.parameters()))
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


@pytest.mark.parametrize("accelerated", [False, True])
def test_one_operator_call_per_layer_and_direction(accelerated: bool) -> None:
    """The whole sequence runs in the LSTM operator: one ``rnnkit::lstm`` per layer and
    direction, and no per-step gate activations in ATen (a Python step calls aten::sigmoid
    at every step), for rnnkit.nn's module and for torch.nn's under rnnkit.accelerate()."""
    layers, steps = 2, 7
    cls = torch.nn.LSTM if accelerated else rnn.LSTM
    module = cls(3, 5, layers, proj_size=2, bidirectional=True)
    x = torch.randn(steps, 4, 3, requires_grad=True)
    with rnnkit.accelerate(accelerated), torch.profiler.profile() as prof:
        out, (h, c) = module(x)
        (out.sum() + c.sum()).backward()
    names = [e.name for e in prof.events()]
    assert names.count("rnnkit::lstm") == layers * 2
    assert names.count("rnnkit::lstm_backward") == layers * 2
    assert "aten::sigmoid" not in names and "aten::tanh" not in names
