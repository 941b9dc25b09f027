"""rnnkit.nn modules under PyTorch's tracers: torch.compile(fullgraph=True), torch.export,
torch.jit.trace and both torch.onnx exporters, each at shapes it was not traced with.

The recurrences are rnnkit operators, so every tracer records one node per layer and direction
and runs the same kernels as eager. Tolerances: compiled float32 values equal eager's exactly
(the same C++ kernel runs: its float32 tanh/sigmoid differ from torch's in the last bits, so
equality shows it ran), gradients 1e-5 (the compiled graph may sum per-layer gradients in
another order); exported and traced graphs 1e-6; ONNX Runtime 1e-5 (its own kernels).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch._dynamo.testing
from torch.export import Dim

import rnnkit.nn as rnn
from rnnkit._kernels import compiled as _compiled

# a module inductor imports lazily uses the deprecated torch.jit.script_method
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

D, H = 3, 5
KINDS = [("RNN", dict(nonlinearity="relu")), ("GRU", {}), ("LSTM", {})]


@pytest.fixture(scope="module", autouse=True)
def extension() -> None:
    try:
        _compiled.load()
    except _compiled.ExtensionUnavailable as e:
        pytest.skip(str(e))


def _module(kind: str, extra: dict, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return getattr(rnn, kind)(D, H, num_layers=2, bidirectional=True, batch_first=True,
                              **extra, **kw)


def _flat(result: object) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(result) if isinstance(t, torch.Tensor)]


def _loss(tensors: list[torch.Tensor]) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return sum((t * torch.randn(t.shape, generator=g)).sum() for t in tensors)


class _WithLengths(torch.nn.Module):
    """(x, lengths) -> (output, final states) as a plain forward for the tracers."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.module(x, lengths=lengths)


def _operators(graph: torch.fx.Graph) -> list[str]:
    return [str(n.target) for n in graph.nodes
            if n.op == "call_function" and str(n.target).startswith("rnnkit.")]


@pytest.mark.parametrize("kind,extra", KINDS)
def test_compile_fullgraph_three_lengths_one_compile(kind: str, extra: dict) -> None:
    torch._dynamo.reset()
    module = _module(kind, extra)
    explanation = torch._dynamo.explain(module)(torch.randn(2, 4, D), lengths=torch.tensor([4, 2]))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()  # count the compiles below only
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    # T marked dynamic, everything else static. dynamic=True would also make the module's
    # float attributes (dropout) symbolic floats, which the forward's `if dropout` specializes:
    # dynamo then restarts the trace once (TensorifyScalarRestartAnalysis, torch.nn.Dropout
    # does the same) and the counter sees two backend calls for one compile, but only when
    # the on-disk AOTAutograd cache misses, i.e. on the first run after a change.
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    for steps in (7, 4, 11):
        x = torch.randn(3, steps, D, requires_grad=True)
        torch._dynamo.mark_dynamic(x, 1)
        lengths = torch.tensor([steps, 2, steps - 1])
        results = []
        for fn in (module, compiled):
            module.zero_grad()
            x.grad = None
            out = _flat(fn(x, lengths=lengths))
            _loss(out).backward()
            results.append((out, [x.grad.clone(), *(p.grad.clone() for p in module.parameters())]))
        (eager, eager_grads), (got, got_grads) = results
        for a, b in zip(got, eager):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        for a, b in zip(got_grads, eager_grads):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # A symbolic length: one compile serves every T
    failures = [str(r) for v in torch._dynamo.utils.guard_failures.values() for r in v]
    assert counter.frame_count == 1, f"guard failures: {failures}"


def test_compile_dynamic_true_of_an_eval_module_traces_once() -> None:
    """With dynamic=True every float attribute dynamo reads becomes a symbolic float, and one
    that the forward branches on makes dynamo restart its trace: two backend calls for one
    compile (on a cold AOTAutograd cache; off here, so the check is deterministic). In eval
    mode the modules read no float (the dropout rate only matters in training)."""
    module = _module("LSTM", {}, dropout=0.5).eval()
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    compiled = torch.compile(module, backend=counter, fullgraph=True, dynamic=True)
    with torch._functorch.config.patch(enable_autograd_cache=False), \
            torch._inductor.config.patch(fx_graph_cache=False), torch.no_grad():
        for steps in (7, 4):
            x = torch.randn(3, steps, D)
            for a, b in zip(_flat(compiled(x)), _flat(module(x))):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
    failures = [str(r) for v in torch._dynamo.utils.guard_failures.values() for r in v]
    assert counter.frame_count == 1, f"guard failures: {failures}"


@pytest.mark.parametrize("kind,extra", KINDS)
def test_export_keeps_the_operator_with_dynamic_batch_and_length(kind: str, extra: dict) -> None:
    module = _module(kind, extra).eval()
    model = _WithLengths(module)
    x, lengths = torch.randn(3, 7, D), torch.tensor([7, 2, 5])
    batch, steps = Dim("batch"), Dim("steps", min=2, max=4096)
    program = torch.export.export(model, (x, lengths),
                                  dynamic_shapes=({0: batch, 1: steps}, {0: batch}))
    name = {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm"}[kind]
    assert _operators(program.graph) == [f"rnnkit.{name}.default"] * 4  # 2 layers x 2 directions
    exported = program.module()
    for n, t in [(2, 2), (5, 13), (1, 31)]:
        x_new = torch.randn(n, t, D)
        lengths_new = torch.randint(1, t + 1, (n,))
        lengths_new[0] = t
        with torch.no_grad():
            expected, got = model(x_new, lengths_new), exported(x_new, lengths_new)
        for a, b in zip(_flat(got), _flat(expected)):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the module's input_size check
@pytest.mark.filterwarnings("ignore:`torch.jit.trace.* is deprecated:DeprecationWarning")
@pytest.mark.parametrize("kind,extra", KINDS)
def test_jit_trace_records_the_operator_and_generalises(kind: str, extra: dict) -> None:
    module = _module(kind, extra)
    traced = torch.jit.trace(module, (torch.randn(3, 5, D),))
    name = {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm"}[kind]
    kinds = [n.kind() for n in traced.inlined_graph.nodes()]
    assert kinds.count(f"rnnkit::{name}") == 4
    for shape in [(2, 9, D), (6, 1, D)]:  # shapes it was not traced with
        x = torch.randn(*shape, requires_grad=True)
        got, want = _flat(traced(x)), _flat(module(x))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        (g_got,) = torch.autograd.grad(_loss(got), x)
        (g_want,) = torch.autograd.grad(_loss(want), x)
        torch.testing.assert_close(g_got, g_want, rtol=1e-6, atol=1e-6)


def test_meta_device_gives_shapes() -> None:
    for kind, extra in KINDS:
        module = _module(kind, extra, device="meta")
        out = _flat(module(torch.empty(3, 7, D, device="meta")))
        assert out[0].shape == (3, 7, 2 * H) and out[0].device.type == "meta"
        assert all(t.shape == (4, 3, H) for t in out[1:])


class _Outputs(torch.nn.Module):
    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        return tuple(_flat(self.module(x)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter says it is
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # it traces: see jit.trace above
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch's pytree inside the exporter
@pytest.mark.parametrize("dynamo", [True, False])
@pytest.mark.parametrize("kind,extra", KINDS + [("LSTM", dict(bias=False))])
def test_onnx_export_runs_standard_operators_at_new_shapes(kind: str, extra: dict,
                                                           dynamo: bool) -> None:
    ort = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    model = _Outputs(_module(kind, extra)).eval()
    x = torch.randn(3, 5, D)
    if dynamo:
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False,
                                    dynamic_shapes=({0: "batch", 1: "steps"},))
        data = program.model_proto.SerializeToString()
    else:
        buffer = io.BytesIO()
        torch.onnx.export(model, (x,), f=buffer, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch", 1: "steps"}})
        data = buffer.getvalue()
    session = ort.InferenceSession(data)
    import onnx

    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert {"RNN": "RNN", "GRU": "GRU", "LSTM": "LSTM"}[kind] in ops
    x_new = torch.randn(2, 9, D)
    got = session.run(None, {session.get_inputs()[0].name: x_new.numpy()})
    with torch.no_grad():
        want = model(x_new)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch's pytree inside the exporter
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter says it is
def test_onnx_export_of_a_held_mask_raises() -> None:
    """Held outputs at masked steps (Keras layers) have no standard ONNX operator: an error,
    never a wrong graph. The legacy exporter's message names rnnkit.export.onnx; the dynamo
    exporter, after trying its other strategies, names the operator it could not translate."""
    from rnnkit import _kernels as K

    class Held(torch.nn.Module):
        def forward(self, x: torch.Tensor, mask: torch.Tensor):  # type: ignore[no-untyped-def]
            w = torch.ones(5, 3)
            return K.rnn(x, torch.zeros(2, 5), w, torch.eye(5), mask=mask)[0]

    args = (torch.randn(4, 2, 3), torch.ones(4, 2, dtype=torch.bool))
    with pytest.raises(Exception, match="rnnkit.export.onnx"):
        torch.onnx.export(Held().eval(), args, f=io.BytesIO(), dynamo=False)
    pytest.importorskip("onnxscript")
    with pytest.raises(Exception, match="rnnkit"):
        torch.onnx.export(Held().eval(), args, dynamo=True, verbose=False)


def _compiled_targets(module: torch.nn.Module, x: torch.Tensor, **mark: int) -> tuple[
        list[str], list[torch.Tensor]]:
    """The call targets of ``module``'s compiled (fullgraph) graph and its outputs."""
    targets: list[str] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: object):  # type: ignore[no-untyped-def]
        targets.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    for dim in mark.values():
        torch._dynamo.mark_dynamic(x, dim)
    out = torch.compile(module, backend=backend, fullgraph=True)(x)
    return targets, _flat(out)


def test_compiled_lstm_inference_takes_torchs_kernel_where_eager_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the rule sends dense float32 LSTM inference to torch's kernel (B x H = 16384: both
    vector units' rule), the compiled graph takes it too, with eager's values exactly, also
    with a symbolic batch (the rule becomes a shape guard); training keeps the operator."""
    from rnnkit._kernels import _route

    monkeypatch.setattr(_route, "capability", lambda: "AVX2")
    torch.manual_seed(0)
    module = rnn.LSTM(D, 256, batch_first=True).eval()
    x = torch.randn(64, 6, D)
    with torch.no_grad():
        targets, got = _compiled_targets(module, x)
        want = _flat(module(x))
        assert any("lstm" in t and not t.startswith("rnnkit") for t in targets), targets
        assert not any(t.startswith("rnnkit.") for t in targets), targets
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        targets, got = _compiled_targets(module, x.clone(), batch=0)
        assert not any(t.startswith("rnnkit.") for t in targets), targets
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    targets, _ = _compiled_targets(module.train(), x.clone().requires_grad_())
    assert any(t.startswith("rnnkit.lstm") for t in targets), targets
