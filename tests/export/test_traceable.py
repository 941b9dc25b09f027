"""The traceable (scan) recurrences, and rnnkit.nn under torch.export and torch.compile.

Tolerances: float64 kernel comparisons 1e-12 (same equations, different loop); float32 module
comparisons 1e-5 (exported or compiled graphs may fuse or reorder float32 arithmetic).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.export import Dim

import rnnkit.nn as rnn
from rnnkit import _kernels as K
from rnnkit._kernels import traceable

# torch's own noise while Dynamo traces scan: it reads .grad of non-leaf inputs, and a module it
# imports lazily uses the deprecated torch.jit.script_method.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

T, B, D, H = 6, 4, 3, 5
CELLS = {
    "tanh": (1, lambda *a, **k: K.elman(*a, nonlinearity="tanh", **k),
             lambda *a, **k: traceable.elman(*a, nonlinearity="tanh", **k)),
    "relu": (1, lambda *a, **k: K.elman(*a, nonlinearity="relu", **k),
             lambda *a, **k: traceable.elman(*a, nonlinearity="relu", **k)),
    "gru": (3, K.gru, traceable.gru),
    "lstm": (4, K.lstm, traceable.lstm),
}


def _inputs(cell: str, bias: bool) -> list[torch.Tensor | None]:
    gates = CELLS[cell][0]
    g = torch.Generator().manual_seed(1)

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()

    states = [rnd(B, H)] + ([rnd(B, H)] if cell == "lstm" else [])
    weights = [rnd(gates * H, D, scale=0.5), rnd(gates * H, H, scale=0.5)]
    biases = [rnd(gates * H), rnd(gates * H)] if bias else [None, None]
    return [rnd(T, B, D), *states, *weights, *biases]


def _holes() -> torch.Tensor:
    mask = torch.ones(T, B, dtype=torch.bool)
    mask[2, 0] = mask[0, 1] = mask[5, 2] = mask[3, 3] = False
    mask[4:, 1] = False  # a short sequence as well as holes
    return mask


def _loss(results: tuple[torch.Tensor, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return sum((r * torch.randn(r.shape, generator=g, dtype=r.dtype)).sum() for r in results)


@pytest.mark.parametrize(
    "cell,masked,reverse,bias",
    [("tanh", True, True, True), ("relu", False, False, False), ("gru", True, True, True),
     ("gru", False, False, False), ("lstm", True, True, True), ("lstm", True, False, False)],
)
def test_scan_path_matches_loop(cell: str, masked: bool, reverse: bool, bias: bool) -> None:
    _, kernel, scanned = CELLS[cell]
    args = _inputs(cell, bias)
    mask = _holes() if masked else None
    expected = kernel(*args, mask=mask, reverse=reverse, backend="loop")
    got = scanned(*args, mask=mask, reverse=reverse)
    leaves = [a for a in args if a is not None]
    grads_expected = torch.autograd.grad(_loss(expected), leaves)
    grads_got = torch.autograd.grad(_loss(got), leaves)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_got, grads_expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_select_leaves_eager_calls_alone() -> None:
    for backend in K.BACKENDS:
        assert traceable.select(backend) == backend


def test_select_under_export_routes_auto_and_refuses_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    monkeypatch.setattr(traceable, "_warned", False)
    with pytest.warns(UserWarning, match="fused kernel is not traceable") as record:
        assert traceable.select("auto") == "traceable"
        assert traceable.select("auto") == "traceable"
    assert len(record) == 1  # once per process, not once per call
    assert traceable.select("loop") == "loop"
    with pytest.raises(ValueError, match="backend='fused' cannot be traced by torch.export"):
        traceable.select("fused")


class _WithLengths(torch.nn.Module):
    """Exposes (x, lengths) -> (output, final states) as a plain forward for torch.export."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.module(x, lengths=lengths)


def _flat(result: object) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(result) if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize(
    "kind,layers,bidirectional", [("RNN", 2, True), ("GRU", 1, True), ("LSTM", 2, False)]
)
def test_export_with_dynamic_length_equals_eager(kind: str, layers: int, bidirectional: bool) -> None:
    module = getattr(rnn, kind)(
        D, H, num_layers=layers, bidirectional=bidirectional, batch_first=True
    ).eval()
    model = _WithLengths(module)
    x, lengths = torch.randn(3, 7, D), torch.tensor([7, 2, 5])
    batch, steps = Dim("batch"), Dim("steps", min=2, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the one-time fallback notice
        program = torch.export.export(
            model, (x, lengths), dynamic_shapes=({0: batch, 1: steps}, {0: batch})
        )
    exported = program.module()
    # Sequence lengths and batch sizes never seen at export time, ragged lengths included.
    for n, t in [(2, 2), (5, 13), (1, 31)]:
        x_new = torch.randn(n, t, D)
        lengths_new = torch.randint(1, t + 1, (n,))
        lengths_new[0] = t
        with torch.no_grad():
            expected, got = model(x_new, lengths_new), exported(x_new, lengths_new)
        for a, b in zip(_flat(got), _flat(expected)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # The graph holds one scan loop per layer and direction, never a step per time step.
    scans = [n for n in program.graph.nodes if n.op == "call_function" and "scan" in str(n.target)]
    assert len(scans) == layers * (2 if bidirectional else 1)


def test_export_warns_once_and_fused_is_refused() -> None:
    gru = rnn.GRU(D, H)
    x = torch.randn(T, 2, D)
    steps = Dim("steps", min=2, max=4096)
    traceable._warned = False
    with pytest.warns(UserWarning, match="using the scan path under torch.export") as record:
        torch.export.export(gru, (x,), dynamic_shapes=({0: steps},))
    assert sum("fused kernel is not traceable" in str(w.message) for w in record) == 1
    fused = rnn.GRU(D, H, backend="fused")
    with pytest.raises(Exception, match="backend='fused' cannot be traced"):
        torch.export.export(fused, (x,), dynamic_shapes=({0: steps},))


def test_compile_equals_eager_values_and_grads() -> None:
    torch._dynamo.reset()
    module = rnn.LSTM(D, H, num_layers=2, bidirectional=True, batch_first=True)
    compiled = torch.compile(module, backend="aot_eager")
    for t in (7, 4):  # a second length must not change the results
        x = torch.randn(3, t, D, requires_grad=True)
        lengths = torch.tensor([t, 2, t - 1])
        results = []
        for fn in (module, compiled):
            module.zero_grad()
            x.grad = None
            out = fn(x, lengths=lengths)
            _loss(tuple(_flat(out))).backward()
            results.append([*_flat(out), x.grad.clone(), *(p.grad.clone() for p in module.parameters())])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
