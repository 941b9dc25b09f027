"""The Keras-style front end (rnnkit.layers in a Sequential) under torch.compile and torch.export.

The recurrences are rnnkit operators, so a compiled model runs the same C++ kernels as eager
inside its graph (values equal to eager's exactly; gradients to 1e-6 in float32, since the
compiled graph may sum the layers' parameter gradients in another order), and an exported
graph keeps one operator per layer and direction with the length dynamic (1e-5).
"""

from __future__ import annotations


import pytest
import torch._dynamo.testing
import torch
from torch.export import Dim

from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Embedding, SimpleRNN
from rnnkit.models import Sequential

pytestmark = [
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

VOCAB = 20


def _model() -> Sequential:
    torch.manual_seed(0)
    model = Sequential([
        Embedding(VOCAB, 4, mask_zero=True),
        Bidirectional(LSTM(5, return_sequences=True)),
        SimpleRNN(4, return_sequences=True, go_backwards=True),
        GRU(3),
        Dense(2),
    ])
    model(_tokens(3, 7))  # build
    return model


def _tokens(batch: int, steps: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, VOCAB, (batch, steps), generator=g)
    x[0, max(1, steps // 2):] = 0  # a padded (masked) sequence
    return x


def _operators(program: torch.export.ExportedProgram) -> list[str]:
    return [str(n.target) for n in program.graph.nodes
            if n.op == "call_function" and str(n.target).startswith("rnnkit.")]


def test_compile_fullgraph_equals_eager_at_three_lengths_with_one_compile() -> None:
    torch._dynamo.reset()
    model = _model()
    explanation = torch._dynamo.explain(model)(_tokens(3, 7))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()  # count the compiles below only
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    # T marked dynamic, everything else static: with dynamic=True the layers' dropout rates
    # would be symbolic floats that `if rate > 0` specializes, making dynamo restart the trace
    # once (two backend calls for one compile) whenever the on-disk AOTAutograd cache misses
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    for steps in (7, 4, 11):  # new lengths must neither change results nor recompile
        x = _tokens(3, steps, seed=steps)
        torch._dynamo.mark_dynamic(x, 1)
        results = []
        for fn in (model, compiled):
            model.zero_grad()
            y = fn(x)
            (y * torch.arange(1.0, 3.0)).sum().backward()
            results.append([y.detach(), *(p.grad.clone() for p in model.parameters())])
        torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-6, atol=1e-6)
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # A symbolic length: one compile serves every T
    failures = [str(r) for v in torch._dynamo.utils.guard_failures.values() for r in v]
    assert counter.frame_count == 1, f"guard failures: {failures}"


def test_export_with_dynamic_length_equals_eager() -> None:
    model = _model()
    batch, steps = Dim("batch", min=2, max=1024), Dim("steps", min=2, max=4096)
    program = torch.export.export(model, (_tokens(3, 7),), dynamic_shapes=({0: batch, 1: steps},))
    exported = program.module()
    for n, t in [(2, 2), (5, 13), (4, 40)]:
        x = _tokens(n, t, seed=t)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-5)
    # One operator per recurrent layer and direction: 2 (Bidirectional) + 1 + 1.
    assert _operators(program) == ["rnnkit.lstm.default"] * 2 + ["rnnkit.rnn.default",
                                                                 "rnnkit.gru.default"]


def test_exported_model_still_checks_token_ids() -> None:
    """Value checks that eager mode makes in Python run inside the exported graph."""
    model = Sequential([Embedding(VOCAB, 3), GRU(2)])
    model(_tokens(2, 4))
    program = torch.export.export(
        model, (_tokens(2, 4),), dynamic_shapes=({1: Dim("steps", min=2, max=64)},)
    )
    bad = _tokens(2, 5)
    bad[1, 2] = VOCAB
    with pytest.raises(RuntimeError, match="outside"):
        program.module()(bad)
