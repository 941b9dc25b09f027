"""``rnnkit.accelerate()``: torch.nn's own RNN/GRU/LSTM on rnnkit's kernels, with torch.nn's
numbers.

Every comparison is torch.nn with acceleration off (PyTorch's kernels) against the same module
with it on, and every accelerated call is checked to have taken rnnkit's path: the profiler
shows the ``rnnkit.accelerate.<op>`` range (entered only when rnnkit runs the call) and
rnnkit's operator (``proj_size`` included). Tolerances: float64 rtol 1e-7,
atol 1e-9; float32 rtol 1e-5, atol 1e-5 (values) and 1e-4 (gradients: sums over the
sequence, summed in another order).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit import _accelerate

ROOT = Path(__file__).resolve().parents[2]
TOL = {torch.float64: dict(rtol=1e-7, atol=1e-9), torch.float32: dict(rtol=1e-5, atol=1e-5)}
GRAD_TOL = {torch.float64: dict(rtol=1e-7, atol=1e-9), torch.float32: dict(rtol=1e-4, atol=1e-4)}
CELLS = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "GRU": "gru", "LSTM": "lstm"}
KERNEL_OPS = {"rnn_tanh": "rnnkit::rnn", "rnn_relu": "rnnkit::rnn", "gru": "rnnkit::gru",
              "lstm": "rnnkit::lstm"}


@pytest.fixture(autouse=True)
def _off_around() -> None:
    """Each test starts and ends with PyTorch's kernels."""
    rnnkit.accelerate(False)
    yield
    rnnkit.accelerate(False)


def make(cell: str, *args, **kwargs) -> torch.nn.RNNBase:
    if cell == "LSTM":
        return torch.nn.LSTM(*args, **kwargs)
    kwargs.pop("proj_size", None)
    if cell == "GRU":
        return torch.nn.GRU(*args, **kwargs)
    return torch.nn.RNN(*args, nonlinearity="relu" if cell == "RNN_RELU" else "tanh", **kwargs)


def op_of(module: torch.nn.RNNBase) -> str:
    return {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "GRU": "gru",
            "LSTM": "lstm"}[module.mode]


def profiled(fn):
    """fn()'s result and the names of the profiler's events while it ran."""
    with torch.profiler.profile() as prof:
        result = fn()
    return result, {event.name for event in prof.events()}


def assert_rnnkit_ran(names: set[str], module: torch.nn.RNNBase) -> None:
    op = op_of(module)
    assert f"rnnkit.accelerate.{op}" in names, sorted(n for n in names if "rnn" in n)
    assert KERNEL_OPS[op] in names, sorted(n for n in names if "rnn" in n)


def run(module, x, hx=None, *, lengths=None, seed=0, accelerated=False, batch_first=False):
    """Output, final states and the gradients of a weighted sum of them with respect to the
    input, the given states and the parameters; and the profiler's event names."""
    torch.manual_seed(seed)  # the dropout masks
    leaves = [x, *([] if hx is None else (hx if isinstance(hx, tuple) else (hx,)))]
    leaves += list(module.parameters())

    def forward():
        inputs = x if lengths is None else pack_padded_sequence(
            x, lengths, batch_first=batch_first, enforce_sorted=False)
        with rnnkit.accelerate(accelerated):
            return module(inputs, hx)

    (out, h), names = profiled(forward)
    out = out.data if lengths is not None else out
    states = h if isinstance(h, tuple) else (h,)
    g = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum()
               for t in (out, *states))
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return (out, *states), grads, names


def compare(module, x, hx=None, **kwargs):
    """torch.nn off vs on: values and gradients equal at the dtype's tolerance; returns the
    accelerated run's event names."""
    (ref, ref_grads, _), (ours, grads, names) = (run(module, x, hx, **kwargs),
                                                  run(module, x, hx, accelerated=True, **kwargs))
    torch.testing.assert_close(ours, ref, **TOL[x.dtype])
    torch.testing.assert_close(grads, ref_grads, **GRAD_TOL[x.dtype])
    return names


# -- the differential test over random configurations ------------------------------------------

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra installs hypothesis")
st = hypothesis.strategies


@st.composite
def configurations(draw):
    cell = draw(st.sampled_from(sorted(CELLS)))
    hidden = draw(st.integers(2, 5))
    return dict(
        cell=cell,
        layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        hidden=hidden,
        proj=draw(st.integers(1, hidden - 1)) if cell == "LSTM" and draw(st.booleans()) else 0,
        bias=draw(st.booleans()),
        kind=draw(st.sampled_from(["dense", "packed", "unbatched"])),
        batch_first=draw(st.booleans()),
        contiguous=draw(st.booleans()),
        dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        training=draw(st.booleans()),
        dropout=draw(st.sampled_from([0.0, 0.3])),
        with_hx=draw(st.booleans()),
        steps=draw(st.integers(1, 5)),
        batch=draw(st.integers(1, 4)),
        features=draw(st.integers(1, 4)),
        seed=draw(st.integers(0, 2 ** 16)),
    )


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@hypothesis.settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(configurations())
def test_torch_nn_accelerated_equals_torch_nn(c) -> None:
    torch.manual_seed(c["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.nn: dropout with one layer
        module = make(c["cell"], c["features"], c["hidden"], c["layers"], bias=c["bias"],
                      batch_first=c["batch_first"], dropout=c["dropout"],
                      bidirectional=c["bidirectional"], proj_size=c["proj"])
    module = module.to(c["dtype"]).train(c["training"])
    steps, batch = c["steps"], c["batch"]
    shape = ((batch, steps) if c["batch_first"] else (steps, batch)) + (c["features"],)
    if c["kind"] == "unbatched":
        shape = (steps, c["features"])
    if c["contiguous"]:
        x = torch.randn(shape, dtype=c["dtype"])
    else:  # every other element of a wider tensor: strided in its last dimension
        x = torch.randn(*shape[:-1], 2 * shape[-1], dtype=c["dtype"])[..., ::2]
    x.requires_grad_()
    lengths = None
    if c["kind"] == "packed":
        lengths = torch.randint(1, steps + 1, (batch,))
        lengths[torch.randint(batch, ())] = steps  # pad_packed_sequence's length is the longest
    hx = None
    if c["with_hx"]:
        groups = c["layers"] * (2 if c["bidirectional"] else 1)
        lead = (groups,) if c["kind"] == "unbatched" else (groups, batch)
        h = torch.randn(*lead, c["proj"] or c["hidden"], dtype=c["dtype"], requires_grad=True)
        hx = h if c["cell"] != "LSTM" else (
            h, torch.randn(*lead, c["hidden"], dtype=c["dtype"], requires_grad=True))
    names = compare(module, x, hx, lengths=lengths, seed=c["seed"],
                    batch_first=c["batch_first"])
    assert_rnnkit_ran(names, module)


# -- dropout between layers: the same seed, the same masks ---------------------------------------

@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_dropout_between_layers_is_torch_nn_draw(cell, layers, packed, batch_first) -> None:
    module = make(cell, 3, 5, layers, dropout=0.3, bidirectional=True, batch_first=batch_first)
    x = torch.randn((4, 6, 3) if batch_first else (6, 4, 3), requires_grad=True)
    lengths = torch.tensor([6, 2, 4, 3]) if packed else None
    names = compare(module, x, lengths=lengths, seed=7, batch_first=batch_first)
    assert_rnnkit_ran(names, module)
    # the masks did something: another seed gives other outputs
    (a, *_), _, _ = run(module, x, lengths=lengths, seed=7, accelerated=True,
                        batch_first=batch_first)
    (b, *_), _, _ = run(module, x, lengths=lengths, seed=8, accelerated=True,
                        batch_first=batch_first)
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_rnnkit_nn_packed_dropout_is_torch_nn_draw(cls) -> None:
    """rnnkit.nn's own modules on a PackedSequence draw torch.nn's masks too (in packed order,
    not the padded batch's)."""
    ours = getattr(rnnkit.nn, cls)(3, 5, 3, dropout=0.3, bidirectional=True, batch_first=True)
    theirs = getattr(torch.nn, cls)(3, 5, 3, dropout=0.3, bidirectional=True, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 6, 3, requires_grad=True)
    lengths = torch.tensor([2, 6, 3, 4])  # unsorted: packed order differs from batch order
    results = []
    for module in (ours, theirs):
        torch.manual_seed(3)
        out, h = module(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        states = h if isinstance(h, tuple) else (h,)
        loss = out.data.pow(2).sum() + sum(s.pow(2).sum() for s in states)
        results.append((out.data, *states, *torch.autograd.grad(loss, [x, *module.parameters()])))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-5)


# -- second order, modes, autocast ---------------------------------------------------------------

@pytest.mark.parametrize("packed", [False, True])
def test_gradgradcheck_through_torch_nn_lstm(packed) -> None:
    lstm = torch.nn.LSTM(2, 3, 2, bidirectional=True).double()
    x = torch.randn(3, 2, 2, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(4, 2, 3, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(4, 2, 3, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([2, 3])

    def fn(x, h0, c0, *params):  # params: the module's own, perturbed in place by the check
        inputs = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
        out, (h, c) = lstm(inputs, (h0, c0))
        return (out.data if packed else out), h, c

    inputs = (x, h0, c0, *lstm.parameters())
    with rnnkit.accelerate():
        _, names = profiled(lambda: fn(*inputs))
        assert_rnnkit_ran(names, lstm)
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)


def test_inference_mode_runs_rnnkit_below_autograd() -> None:
    gru = torch.nn.GRU(3, 4, 2)
    x = torch.randn(5, 2, 3)
    expected = gru(x)
    with torch.inference_mode(), rnnkit.accelerate():
        result, names = profiled(lambda: gru(x))
    assert_rnnkit_ran(names, gru)
    torch.testing.assert_close(result, expected, **TOL[torch.float32])


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
def test_autocast_runs_rnnkit_in_torch_nn_dtype(cell) -> None:
    module = make(cell, 3, 8, 2)
    x = torch.randn(5, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = module(x)
        with rnnkit.accelerate():
            result, names = profiled(lambda: module(x))
    assert_rnnkit_ran(names, module)
    for ours, theirs in zip(torch.utils._pytree.tree_leaves(result),
                            torch.utils._pytree.tree_leaves(expected)):
        assert ours.dtype == theirs.dtype
        torch.testing.assert_close(ours.float(), theirs.float(), rtol=2e-2, atol=2e-2)


def test_subclass_is_accelerated() -> None:
    class Forecaster(torch.nn.LSTM):  # as pytorch-forecasting subclasses nn.LSTM
        def forward(self, x, hx=None):
            out, state = super().forward(x, hx)
            return out * 2, state

    module = Forecaster(3, 4, batch_first=True)
    names = compare(module, torch.randn(2, 5, 3, requires_grad=True), batch_first=True)
    assert_rnnkit_ran(names, module)


# -- switching on and off -------------------------------------------------------------------------

def _registered() -> bool:
    dump = torch._C._dispatch_dump("aten::lstm.input")
    return "AutogradCPU" in dump


def test_undo_restores_torch_kernels() -> None:
    lstm = torch.nn.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    assert not _registered()
    rnnkit.accelerate()
    assert rnnkit.is_accelerated() and _registered()
    _, names = profiled(lambda: lstm(x))
    assert_rnnkit_ran(names, lstm)
    rnnkit.accelerate(False)
    assert not rnnkit.is_accelerated() and not _registered()
    _, names = profiled(lambda: lstm(x))
    assert not any("rnnkit" in name for name in names)
    rnnkit.accelerate()  # and on again: registering twice in a process is allowed
    rnnkit.accelerate()  # idempotent
    _, names = profiled(lambda: lstm(x))
    assert_rnnkit_ran(names, lstm)


def test_context_manager_nests_and_restores() -> None:
    with rnnkit.accelerate() as outer:
        assert rnnkit.is_accelerated()
        with rnnkit.accelerate(False):
            assert not rnnkit.is_accelerated() and not _registered()
            with rnnkit.accelerate():
                assert rnnkit.is_accelerated()
            assert not rnnkit.is_accelerated()
        assert rnnkit.is_accelerated() and "enabled=True" in repr(outer)
    assert not rnnkit.is_accelerated()
    rnnkit.accelerate()
    with rnnkit.accelerate():  # already on: leaving keeps it on
        pass
    assert rnnkit.is_accelerated()
    with pytest.raises(RuntimeError), rnnkit.accelerate(False):  # restored on an error too
        raise RuntimeError("inside")
    assert rnnkit.is_accelerated()


def test_accelerate_takes_a_bool() -> None:
    with pytest.raises(TypeError, match="bool"):
        rnnkit.accelerate("yes")


# -- what stays PyTorch's ---------------------------------------------------------------------

def test_rnnkit_router_choosing_torch_does_not_recurse(monkeypatch) -> None:
    """rnnkit's router sends some LSTM calls to torch._VF.lstm; under accelerate() that call
    is PyTorch's kernel, not the override again."""
    monkeypatch.setattr(rnnkit._kernels, "_prefers_torch", lambda *args, **kwargs: True)
    lstm = torch.nn.LSTM(3, 4, 2)
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        expected = lstm(x)
        with rnnkit.accelerate():
            result, names = profiled(lambda: lstm(x))
    assert "rnnkit.accelerate.lstm" in names and "rnnkit::lstm" not in names
    torch.testing.assert_close(result, expected, **TOL[torch.float32])
    ours = rnnkit.nn.LSTM(3, 4, 2)  # rnnkit.nn's own modules, routed to torch._VF.lstm too
    ours.load_state_dict(lstm.state_dict())
    with torch.no_grad(), rnnkit.accelerate():
        torch.testing.assert_close(ours(x), expected, **TOL[torch.float32])


def test_unsupported_calls_run_torch_kernels() -> None:
    lstm = torch.nn.LSTM(3, 4).to(torch.bfloat16)
    x = torch.randn(5, 2, 3, dtype=torch.bfloat16)
    expected = lstm(x)
    with rnnkit.accelerate():
        result, names = profiled(lambda: lstm(x))
        assert not any(name.startswith("rnnkit") for name in names)
        torch.testing.assert_close(result, expected, rtol=0, atol=0)
        meta = torch.nn.LSTM(3, 4, device="meta")
        assert meta(torch.empty(5, 2, 3, device="meta"))[0].shape == (5, 2, 4)
        # a direct call with states of the wrong batch: PyTorch's kernel, PyTorch's error
        states = [torch.zeros(1, 3, 4, dtype=torch.double)] * 2
        with pytest.raises(RuntimeError, match="size of tensor"):
            torch.lstm(torch.randn(5, 2, 3, dtype=torch.double), states,
                       lstm.double()._flat_weights, True, 1, 0.0, False, False, False)
        # torch.func transforms: PyTorch's kernel (rnnkit's path would not see through them)
        gru = torch.nn.GRU(3, 4).double()
        x64 = torch.randn(5, 2, 3, dtype=torch.double)
        grads = torch.func.grad(lambda p: torch.func.functional_call(gru, p, (x64,))[0].sum())(
            dict(gru.named_parameters()))
    gru.zero_grad()
    gru(x64)[0].sum().backward()
    torch.testing.assert_close(grads, {n: p.grad for n, p in gru.named_parameters()})


# -- import alone, and the environment variable -------------------------------------------------

PROBE = """
import sys, torch
names = set()
with torch.profiler.profile() as prof:
    torch.nn.LSTM(3, 4)(torch.randn(5, 2, 3))
print("accelerated" if any(e.name == "rnnkit.accelerate.lstm" for e in prof.events())
      else "plain", "AutogradCPU" in torch._C._dispatch_dump("aten::lstm.input"))
"""


def _python(code: str, tmp_path: Path, accelerate: str | None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter where rnnkit is installed with pyproject's entry points
    (a dist-info written to ``tmp_path``), with ``RNNKIT_ACCELERATE`` as given."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    groups = project["project"]["entry-points"]
    info = tmp_path / "rnnkit_probe-0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rnnkit-probe\nVersion: 0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
        for group, points in groups.items()))
    env = dict(os.environ)
    env.pop("RNNKIT_ACCELERATE", None)
    if accelerate is not None:
        env["RNNKIT_ACCELERATE"] = accelerate
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)


def test_import_rnnkit_alone_changes_nothing(tmp_path) -> None:
    code = "import rnnkit, rnnkit.nn, rnnkit.layers\n" + PROBE
    result = _python(code, tmp_path, None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["plain", "False"]


def test_environment_variable_turns_it_on_at_import_torch(tmp_path) -> None:
    result = _python(PROBE + "print('rnnkit.nn' in sys.modules)", tmp_path, "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["accelerated", "True", "True"]


def test_environment_variable_off_imports_nothing(tmp_path) -> None:
    code = ("import sys, torch\nprint(any(m in sys.modules for m in ('rnnkit.nn', "
            "'rnnkit._kernels')), "
            "'AutogradCPU' in torch._C._dispatch_dump('aten::lstm.input'))")
    for value in (None, "0"):
        result = _python(code, tmp_path, value)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["False", "False"]


def test_environment_variable_rejects_other_values(tmp_path) -> None:
    result = _python("import torch", tmp_path, "yes")
    assert result.returncode != 0
    assert "RNNKIT_ACCELERATE must be 1 (on) or 0 (off), got 'yes'" in result.stderr
