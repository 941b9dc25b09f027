"""The compiled C++ kernels vs the pure-PyTorch fused path and the looped reference, gradcheck
in float64, and the loading rules: automatic fallback, RNNKIT_NO_EXTENSION, backend='compiled'.

Tolerances: float64 to rounding (the three paths sum in different orders); float32 within a
few ulp of the activations (the compiled float32 tanh/sigmoid are polynomials, see common.h).
"""

from __future__ import annotations

import itertools
import re

import pytest
import torch
from torch.autograd import gradcheck

from rnnkit import _kernels as K
from rnnkit._kernels import compiled

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=2e-6)}
CELLS = {
    "tanh": (1, lambda *a, **k: K.rnn(*a, nonlinearity="tanh", **k)),
    "relu": (1, lambda *a, **k: K.rnn(*a, nonlinearity="relu", **k)),
    "gru": (3, K.gru),
    "lstm": (4, K.lstm),
}


@pytest.fixture(scope="module")
def extension() -> None:
    try:
        compiled.load()
    except compiled.ExtensionUnavailable as e:
        pytest.skip(str(e))


def _inputs(cell: str, dtype: torch.dtype, shape: tuple[int, int, int, int] = (6, 4, 3, 5),
            bias: bool = True) -> list[torch.Tensor | None]:
    steps, batch, features, hidden = shape
    gates = CELLS[cell][0]
    g = torch.Generator().manual_seed(1)

    def rnd(*size: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*size, generator=g, dtype=dtype) * scale).requires_grad_()

    states = [rnd(batch, hidden)] + ([rnd(batch, hidden)] if cell == "lstm" else [])
    # w_hh ~ 1/sqrt(H): a contracting recurrence, so rounding differences do not grow with T
    weights = [rnd(gates * hidden, features, scale=0.5),
               rnd(gates * hidden, hidden, scale=min(0.5, 1.5 / hidden**0.5))]
    biases = [rnd(gates * hidden), rnd(gates * hidden)] if bias else [None, None]
    return [rnd(steps, batch, features), *states, *weights, *biases]


def _mask(kind: str, steps: int, batch: int) -> torch.Tensor | None:
    if kind == "none":
        return None
    g = torch.Generator().manual_seed(3)
    if kind == "lengths":
        lengths = torch.randint(1, steps + 1, (batch,), generator=g)
        return torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)
    return torch.rand(steps, batch, generator=g) > 0.3  # holes anywhere


def _run(cell: str, args: list, mask: torch.Tensor | None, reverse: bool, backend: str,
         zero_padding: bool = False):
    results = CELLS[cell][1](*args, mask=mask, reverse=reverse, backend=backend,
                             zero_padding=zero_padding)
    g = torch.Generator().manual_seed(7)
    loss = sum((r * torch.randn(r.shape, generator=g, dtype=r.dtype)).sum() for r in results)
    leaves = [a for a in args if a is not None]
    return results, torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "cell,mask_kind,reverse,bias",
    list(itertools.product(CELLS, ["none", "lengths", "holes"], [False, True], [True, False])),
)
def test_compiled_matches_fused_and_loop(extension: None, cell: str, mask_kind: str,
                                         reverse: bool, bias: bool, dtype: torch.dtype) -> None:
    args = _inputs(cell, dtype, bias=bias)
    mask = _mask(mask_kind, 6, 4)
    values, grads = _run(cell, args, mask, reverse, "compiled")
    for other in ("fused", "loop"):
        other_values, other_grads = _run(cell, args, mask, reverse, other)
        for a, b in zip((*values, *grads), (*other_values, *other_grads)):
            torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cell,mask_kind,reverse",
                         list(itertools.product(CELLS, ["lengths", "holes"], [False, True])))
def test_compiled_zero_padding_matches_fused_and_loop(extension: None, cell: str, mask_kind: str,
                                                      reverse: bool, dtype: torch.dtype) -> None:
    """zero_padding=True: outputs are zero at masked steps (the compiled loop zeroes a held row
    once the next step has read it), final states are still the held ones, and the gradients
    (a step after masked ones started from a held state the outputs no longer show; outputs at
    masked steps are constants) equal the fused and loop paths, which multiply by the mask.
    The initial state is random, so a sequence's first step really starts from h0."""
    args = _inputs(cell, dtype)
    mask = _mask(mask_kind, 6, 4)
    assert mask is not None and not mask.all()
    values, grads = _run(cell, args, mask, reverse, "compiled", zero_padding=True)
    assert (values[0][~mask] == 0).all()
    for other in ("fused", "loop"):
        other_values, other_grads = _run(cell, args, mask, reverse, other, zero_padding=True)
        for a, b in zip((*values, *grads), (*other_values, *other_grads)):
            torch.testing.assert_close(a, b, **TOL[dtype])
    held, _ = _run(cell, args, mask, reverse, "loop")
    torch.testing.assert_close(values[0], held[0] * mask.unsqueeze(-1), **TOL[dtype])
    for a, b in zip(values[1:], held[1:]):  # final states: the held ones
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("cell,reverse", list(itertools.product(CELLS, [False, True])))
def test_compiled_zero_padding_gradcheck(extension: None, cell: str, reverse: bool) -> None:
    args = _inputs(cell, torch.float64, (5, 3, 2, 3))
    mask = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 1]], dtype=torch.bool)
    fn = CELLS[cell][1]
    assert gradcheck(lambda *a: fn(*a, mask=mask, reverse=reverse, zero_padding=True,
                                   backend="compiled"), args)


@pytest.mark.parametrize("cell", list(CELLS))
def test_compiled_zero_padding_threads_and_inference(extension: None, cell: str) -> None:
    """A batch split across threads, and the no-grad path, zero the same rows."""
    args = _inputs(cell, torch.float32, (40, 25, 8, 45))
    mask = _mask("holes", 40, 25)
    values, grads = _run(cell, args, mask, True, "compiled", zero_padding=True)
    fused_values, fused_grads = _run(cell, args, mask, True, "fused", zero_padding=True)
    # relu: a pre-activation within rounding of 0 can take the other slope on a path that sums
    # in another order, which moves a weight gradient by one term (seen: 2e-3 of 7)
    tol = dict(rtol=1e-4, atol=5e-3 if cell == "relu" else 5e-5)
    for a, b in zip((*values, *grads), (*fused_values, *fused_grads)):
        torch.testing.assert_close(a, b, **tol)
    with torch.no_grad():
        without = CELLS[cell][1](*args, mask=mask, reverse=True, zero_padding=True,
                                 backend="compiled")
    for a, b in zip(values, without):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("mask_kind", ["none", "lengths"])
def test_compiled_threads_match_fused(extension: None, cell: str, mask_kind: str,
                                      dtype: torch.dtype) -> None:
    """A batch big enough to be split across threads gives the same numbers. An odd batch
    gives the threads shares of different sizes (each packs the recurrent weights for its own
    share in float32), and a hidden size that is no multiple of 8 leaves a vector remainder."""
    shape = (40, 25, 8, 45)
    args = _inputs(cell, dtype, shape)
    mask = _mask(mask_kind, 40, 25)
    values, grads = _run(cell, args, mask, True, "compiled")
    fused_values, fused_grads = _run(cell, args, mask, True, "fused")
    # float32 weight gradients sum 1000 products in a different order: looser than TOL (and
    # relu's kink, see test_compiled_zero_padding_threads_and_inference)
    tol = TOL[dtype] if dtype == torch.float64 else dict(
        rtol=1e-4, atol=5e-3 if cell == "relu" else 5e-5)
    for a, b in zip((*values, *grads), (*fused_values, *fused_grads)):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("cell,mask_kind,reverse",
                         list(itertools.product(CELLS, ["none", "holes"], [False, True])))
def test_compiled_gradcheck(extension: None, cell: str, mask_kind: str, reverse: bool) -> None:
    args = _inputs(cell, torch.float64, (4, 3, 2, 3))
    mask = _mask(mask_kind, 4, 3)
    fn = CELLS[cell][1]
    assert gradcheck(lambda *a: fn(*a, mask=mask, reverse=reverse, backend="compiled"), args)


@pytest.mark.parametrize("cell", list(CELLS))
def test_compiled_inference_matches_training_forward(extension: None, cell: str) -> None:
    """Under no_grad the compiled kernels skip the saved buffers; the values must not change."""
    args = _inputs(cell, torch.float32)
    mask = _mask("lengths", 6, 4)
    with_grad = CELLS[cell][1](*args, mask=mask, backend="compiled")
    with torch.no_grad():
        without = CELLS[cell][1](*args, mask=mask, backend="compiled")
    for a, b in zip(with_grad, without):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)


@pytest.mark.parametrize("cell", list(CELLS))
def test_compiled_takes_strided_and_single_biases(extension: None, cell: str) -> None:
    """Biases that are strided views, or only one of the two (the Keras layout), give the
    loop's values and gradients."""
    args = _inputs(cell, torch.float64)
    b_ih, b_hh = args[-2:]
    strided = torch.stack([b_ih, b_hh], dim=1)  # (G, 2): each column a strided view
    for biases in ((strided[:, 0], strided[:, 1]), (b_ih, None), (None, b_hh)):
        call = [*args[:-2], *biases]
        values, grads = _run(cell, call, None, False, "compiled")
        loop_values, loop_grads = _run(cell, call, None, False, "loop")
        for a, b in zip((*values, *grads), (*loop_values, *loop_grads)):
            torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("cell,mask_kind,reverse",
                         list(itertools.product(CELLS, ["none", "holes"], [False, True])))
@pytest.mark.parametrize("zero_padding", [False, True])
def test_compiled_output_gradient_buffer(extension: None, cell: str, mask_kind: str,
                                         reverse: bool, zero_padding: bool) -> None:
    """The backward pass writes over the output gradient only when it made that buffer itself:
    the broadcast ones of ``out.sum()`` give the loop's gradients, and a gradient the caller
    passes in (contiguous or strided) comes back unchanged."""
    args = _inputs(cell, torch.float64)
    mask = _mask(mask_kind, 6, 4)
    leaves = [a for a in args if a is not None]

    def outputs(backend: str) -> torch.Tensor:
        return CELLS[cell][1](*args, mask=mask, reverse=reverse, zero_padding=zero_padding,
                              backend=backend)[0]

    got = torch.autograd.grad(outputs("compiled").sum(), leaves)
    want = torch.autograd.grad(outputs("loop").sum(), leaves)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
    g = torch.randn(4, 6, args[1].shape[-1], dtype=torch.float64)
    for given in (g.transpose(0, 1).contiguous(), g.transpose(0, 1)):
        kept = given.clone()
        got = torch.autograd.grad(outputs("compiled"), leaves, given)
        want = torch.autograd.grad(outputs("loop"), leaves, given)
        torch.testing.assert_close(given, kept, rtol=0, atol=0)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_compiled_weight_grads_only(extension: None) -> None:
    """Inputs that need no gradient (data, initial state) get none; weights still do."""
    x, h0, w_ih, w_hh, b_ih, b_hh = _inputs("gru", torch.float64)
    x, h0 = x.detach(), h0.detach()
    out, _ = K.gru(x, h0, w_ih, w_hh, b_ih, b_hh, backend="compiled")
    ref, _ = K.gru(x, h0, w_ih, w_hh, b_ih, b_hh, backend="fused")
    got = torch.autograd.grad(out.sum(), [w_ih, w_hh, b_ih, b_hh])
    want = torch.autograd.grad(ref.sum(), [w_ih, w_hh, b_ih, b_hh])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_compiled_refuses_what_it_cannot_run(extension: None) -> None:
    args = _inputs("tanh", torch.float64)
    ints = [a.detach().long() for a in args]
    with pytest.raises(ValueError, match="backend='compiled' cannot run this call: it runs "
                                         "floating-point tensors"):
        K.rnn(*ints, backend="compiled")
    mixed = [args[0].float(), *args[1:]]
    with pytest.raises(ValueError, match="every tensor must be torch.float32"):
        K.rnn(*mixed, backend="compiled")
    with pytest.raises(RuntimeError, match="every tensor must have the input's dtype"):
        torch.ops.rnnkit.rnn(*mixed, None, False, False, False, False)  # the kernel checks too


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_runs_the_float32_loop(extension: None, cell: str,
                                                 dtype: torch.dtype) -> None:
    """bfloat16/float16 on the CPU: the C++ loop in float32, outputs and gradients in the input's
    dtype. The outputs equal the float32 kernel's on the same (rounded) inputs up to their one
    final rounding; the gradients within the dtype's resolution (the backward pass reads the
    saved states and gates as rounded to the dtype)."""
    args = [a.detach().to(dtype).requires_grad_() for a in _inputs(cell, torch.float32)]
    wide = [a.detach().float().requires_grad_() for a in args]
    mask = _mask("lengths", 6, 4)

    def run(inputs: list) -> tuple:
        results = CELLS[cell][1](*inputs, mask=mask, reverse=True, backend="compiled",
                                 zero_padding=True)
        g = torch.Generator().manual_seed(7)  # the same output gradients, rounded to dtype
        loss = sum((r * torch.randn(r.shape, generator=g).to(dtype)).sum() for r in results)
        return results, torch.autograd.grad(loss, inputs)

    values, grads = run(args)
    want_values, want_grads = run(wide)
    for a, b in zip(values, want_values):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b.to(dtype), rtol=0, atol=0)
    tol = 2e-2 if dtype == torch.bfloat16 else 3e-3
    for a, b in zip(grads, want_grads):
        assert a.dtype == dtype
        torch.testing.assert_close(a.float(), b, rtol=tol, atol=tol)


# -- loading rules ---------------------------------------------------------------------------
@pytest.fixture
def fresh_loader(monkeypatch: pytest.MonkeyPatch):
    """Run a test against a loader that has not tried to load yet; put the real state back."""
    saved = (compiled._module, compiled._error, compiled._warned)
    compiled._reset_for_tests()
    yield monkeypatch
    compiled._module, compiled._error, compiled._warned = saved


def _in_fresh_process(script: str, **env: str) -> None:
    """Run ``script`` in a new interpreter: once loaded, the C++ kernels stay registered in the
    dispatcher for the life of a process, so the loading rules are checked where none are."""
    import os
    import subprocess
    import sys

    environment = {**os.environ, **env}
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


_FRESH_PRELUDE = """
import warnings, torch, pytest
from rnnkit import _kernels as K
from rnnkit._kernels import compiled
g = torch.Generator().manual_seed(1)
args = [torch.randn(6, 4, 3, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g,
        dtype=torch.float64), torch.randn(15, 3, generator=g, dtype=torch.float64),
        torch.randn(15, 5, generator=g, dtype=torch.float64)]
"""


def test_env_var_switches_it_off_silently() -> None:
    _in_fresh_process(_FRESH_PRELUDE + """
def must_not_build():
    raise AssertionError("the extension must not be built when switched off")
compiled._build = must_not_build
auto = K.gru(*args, backend="auto")  # -W error: not a word said
fused = K.gru(*args, backend="fused")
for a, b in zip(auto, fused):
    torch.testing.assert_close(a, b, rtol=0, atol=0)
with pytest.raises(compiled.ExtensionUnavailable, match="switched off by RNNKIT_NO_EXTENSION"):
    K.gru(*args, backend="compiled")
""", RNNKIT_NO_EXTENSION="1")


def test_failed_build_falls_back_with_one_warning() -> None:
    _in_fresh_process(_FRESH_PRELUDE + """
calls = []
def broken():
    calls.append(1)
    raise RuntimeError("Error building extension 'rnnkit_cpu': c++: not found")
compiled._build = broken
with pytest.warns(compiled.ExtensionWarning, match="could not be built .*c[+][+]: not found"):
    first = K.gru(*args, backend="auto")
second = K.gru(*args, backend="auto")  # -W error: no second warning, no second build attempt
assert len(calls) == 1
fused = K.gru(*args, backend="fused")
for a, b, c in zip(first, second, fused):
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    torch.testing.assert_close(b, c, rtol=0, atol=0)
with pytest.raises(compiled.ExtensionUnavailable, match="pip install ninja"):
    K.gru(*args, backend="compiled")
""", RNNKIT_NO_EXTENSION="")


def test_fallback_path_matches_loop() -> None:
    """What CI runs without a compiler: 'auto' on the composite kernels, against the loop."""
    _in_fresh_process(_FRESH_PRELUDE + """
x, h0, w_ih, w_hh = (a.requires_grad_() for a in args)
mask = torch.arange(6).unsqueeze(1) < torch.tensor([6, 2, 4, 1]).unsqueeze(0)
for fn, g in ((K.rnn, 1), (K.gru, 3), (K.lstm, 4)):
    weights = [torch.randn(g * 5, 3, dtype=torch.float64, requires_grad=True),
               torch.randn(g * 5, 5, dtype=torch.float64, requires_grad=True)]
    states = [h0] * (2 if fn is K.lstm else 1)
    leaves = [x, h0, *weights]
    results = []
    for backend in ("auto", "loop"):
        out = fn(x, *states, *weights, mask=mask, reverse=True, zero_padding=True,
                 backend=backend)
        loss = sum((o * o).sum() for o in out)
        results.append((out, torch.autograd.grad(loss, leaves)))
    (a, ga), (b, gb) = results
    for u, v in zip((*a, *ga), (*b, *gb)):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)
assert not compiled.available()
""", RNNKIT_NO_EXTENSION="1")


def _must_not_build() -> None:
    raise AssertionError("the extension must not be built when switched off")


def test_needs_build_tells_whether_the_first_use_compiles(fresh_loader: pytest.MonkeyPatch,
                                                          tmp_path) -> None:
    fresh_loader.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # an empty cache
    assert compiled.needs_build()
    fresh_loader.setenv(compiled.ENV_DISABLE, "1")
    assert not compiled.needs_build()  # switched off: nothing will be built
    fresh_loader.delenv(compiled.ENV_DISABLE)
    compiled._error = "RuntimeError: no compiler"
    assert not compiled.needs_build()  # a build already failed in this process


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_zero_masked_in_place_and_by_multiply(extension: None, dtype: torch.dtype) -> None:
    """torch.nn's padding: in place on the compiled path when no gradient is needed, a multiply
    (zero gradient at the masked steps) when one is; a transposed mask is accepted."""
    g = torch.Generator().manual_seed(5)
    out = torch.randn(7, 4, 3, generator=g, dtype=dtype)
    mask = (torch.rand(4, 7, generator=g) > 0.4).t()  # (T, B), not contiguous
    want = torch.where(mask.unsqueeze(-1), out, torch.zeros((), dtype=dtype))
    inplace = out.clone()
    assert K.zero_masked(inplace, mask) is inplace
    torch.testing.assert_close(inplace, want, rtol=0, atol=0)
    leaf = out.clone().requires_grad_()
    masked = K.zero_masked(leaf, mask)
    torch.testing.assert_close(masked, want, rtol=0, atol=0)
    (grad,) = torch.autograd.grad(masked.sum(), leaf)
    torch.testing.assert_close(grad, mask.unsqueeze(-1).expand_as(out).to(dtype), rtol=0, atol=0)


def test_zero_masked_names_a_wrong_mask(extension: None) -> None:
    with pytest.raises(RuntimeError, match=r"mask must be a \(T, B\) = \[7, 4\] CPU bool tensor"):
        torch.ops.rnnkit.zero_masked_(torch.zeros(7, 4, 3), torch.ones(4, 7, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_prefix_mask_matches_the_tensor_ops(extension: None, dtype: torch.dtype) -> None:
    lengths = torch.tensor([3, 0, 5, 1], dtype=dtype)
    mask, low, high = K.prefix_mask(lengths, 5)
    want = torch.arange(5).unsqueeze(1) < lengths.long().unsqueeze(0)  # (T, B)
    assert mask.dtype == torch.bool and mask.is_contiguous()
    torch.testing.assert_close(mask, want, rtol=0, atol=0)
    assert (low, high) == (0, 5)
    # out-of-range values are reported, not clipped (the caller refuses them)
    assert K.prefix_mask(torch.tensor([-2, 7]), 5)[1:] == (-2, 7)
    empty, low, high = K.prefix_mask(torch.zeros(0, dtype=dtype), 4)
    assert empty.shape == (4, 0) and (low, high) == (0, 0)


def test_prefix_mask_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "available", lambda: False)
    mask, low, high = K.prefix_mask(torch.tensor([2, 0, 3], dtype=torch.int32), 3)
    torch.testing.assert_close(mask, torch.tensor([[True, False, True], [True, False, True],
                                                   [False, False, True]]), rtol=0, atol=0)
    assert (low, high) == (0, 3)
    assert K.prefix_mask(torch.zeros(0, dtype=torch.long), 2)[0].shape == (2, 0)


def test_build_progress_names_each_finished_file_and_the_time(tmp_path) -> None:
    """A first build is not silent: a line as each translation unit finishes, with the time."""
    import io
    import time

    build = tmp_path / "rnnkit_cpu_x.partial-1"
    build.mkdir()
    stream = io.StringIO()
    progress = compiled._Progress(build, stream, list(compiled._SOURCES), tmp_path)
    (build / "lstm.o").write_bytes(b"")
    (build / "gru.o").write_bytes(b"")
    deadline = time.monotonic() + 10
    while "compiled" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.1)
    progress.stop("done")
    lines = stream.getvalue().splitlines()
    assert f"rnnkit: building the C++ kernels ({len(compiled._SOURCES)} files" in lines[0]
    assert lines[0].endswith(f"cached in {tmp_path})")
    assert any(f"compiled gru.cpp, lstm.cpp (2/{len(compiled._SOURCES)})" in line for line in lines)
    assert re.fullmatch(r"\[ *[0-9.]+ s\] done in [0-9]+ s", lines[-1])


@pytest.mark.parametrize("outcome", ["interrupted", "failed"])
def test_build_progress_does_not_say_done_when_the_build_did_not_finish(tmp_path,
                                                                        outcome: str) -> None:
    import io

    stream = io.StringIO()
    compiled._Progress(tmp_path, stream, ["a.cpp"]).stop(outcome)
    assert stream.getvalue().splitlines()[-1].endswith(f"] {outcome}")
    assert "done" not in stream.getvalue()


def test_the_build_compiles_every_source_once_in_two_units(tmp_path) -> None:
    """Each csrc/*.cpp is included by exactly one generated unit, by absolute path: the
    dispatcher's glue (torch's dispatcher and autograd headers) in the first unit, everything
    else in the second; a build of one file has one unit."""
    from pathlib import Path

    sources = [compiled._CSRC / name for name in compiled._SOURCES]
    units = compiled._units(sources, tmp_path)
    assert [u.name for u in units] == ["dispatch.cpp", "kernels.cpp"]
    included = {u.name: re.findall(r'^#include "(.*)"$', u.read_text(), re.MULTILINE)
                for u in units}
    paths = [Path(p) for members in included.values() for p in members]
    assert all(p.is_absolute() and p.is_file() for p in paths)
    assert sorted(p.name for p in paths) == sorted(compiled._SOURCES)  # each exactly once
    assert {Path(p).name for p in included["dispatch.cpp"]} == set(compiled._DISPATCH)
    single = tmp_path / "single"
    single.mkdir()
    (only,) = compiled._units([tmp_path / "standin.cpp"], single)
    assert only.name == "kernels.cpp"
