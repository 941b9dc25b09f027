"""The Keras-style front end (rnnkit.layers in a Sequential) under torch.compile and torch.export.

Tolerances: compiled models run the kernels behind a graph break, so values and gradients equal
eager's exactly (asserted with 0 tolerance); exported graphs take the scan path, whose float32
arithmetic may be ordered differently (1e-5).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.export import Dim

from rnnkit._kernels import traceable
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


def test_compile_equals_eager_values_and_grads() -> None:
    torch._dynamo.reset()
    model = _model()
    compiled = torch.compile(model, backend="aot_eager")
    for steps in (7, 4):  # a second length must not change the results
        x = _tokens(3, steps, seed=steps)
        results = []
        for fn in (model, compiled):
            model.zero_grad()
            y = fn(x)
            (y * torch.arange(1.0, 3.0)).sum().backward()
            results.append([y.detach(), *(p.grad.clone() for p in model.parameters())])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_export_with_dynamic_length_equals_eager() -> None:
    model = _model()
    batch, steps = Dim("batch", min=2, max=1024), Dim("steps", min=2, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the one-time fallback notice
        program = torch.export.export(model, (_tokens(3, 7),), dynamic_shapes=({0: batch, 1: steps},))
    exported = program.module()
    for n, t in [(2, 2), (5, 13), (4, 40)]:
        x = _tokens(n, t, seed=t)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-5)
    # One scan loop per recurrent layer and direction: 2 (Bidirectional) + 1 + 1.
    scans = [n for n in program.graph.nodes if n.op == "call_function" and "scan" in str(n.target)]
    assert len(scans) == 4


def test_exported_model_still_checks_token_ids() -> None:
    """Value checks that eager mode makes in Python run inside the exported graph."""
    model = Sequential([Embedding(VOCAB, 3), GRU(2)])
    model(_tokens(2, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        program = torch.export.export(
            model, (_tokens(2, 4),), dynamic_shapes=({1: Dim("steps", min=2, max=64)},)
        )
    bad = _tokens(2, 5)
    bad[1, 2] = VOCAB
    with pytest.raises(RuntimeError, match="outside"):
        program.module()(bad)


def test_export_warns_once_with_the_fallback_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traceable, "_warned", False)
    model = Sequential([Embedding(VOCAB, 3), Bidirectional(GRU(2))])
    model(_tokens(2, 4))
    with pytest.warns(UserWarning) as record:
        torch.export.export(model, (_tokens(2, 4),), dynamic_shapes=({1: Dim("steps", min=2, max=64)},))
    assert sum(traceable.FALLBACK_MESSAGE == str(w.message) for w in record) == 1

