"""The recurrences as PyTorch operators: ``torch.ops.rnnkit.rnn`` / ``gru`` / ``lstm``.

Each recurrence is one operator with a schema, and its backward pass another
(``*_backward``), both derived from the cell's description (:mod:`._cell_spec`). The
dispatcher picks the kernel:

- CPU: the compiled time loops of ``csrc/`` (each cell's file registers them through
  ``csrc/cell.h``, see :mod:`.compiled`); float32/float64 natively, bfloat16/float16 widened to float32;
- every other device, the CPU when the C++ kernels are not built, and a cell that ships
  composite-only: :mod:`.composite` (registered for ``CompositeExplicitAutograd``, so tracers
  keep the operator whole);
- fake tensors and ``device="meta"``: the shape functions below.

Autograd is registered on the forward operator. Its backward calls the ``*_backward`` operator
(one fused C++ pass on the CPU) when no graph of the gradient is wanted; when one is (double
backward, ``torch.func``), or the forward did not keep its buffers, it differentiates the
composite forward pass instead, so every derivative order is exact. ``torch.func`` transforms
see an ``autograd.Function`` with ``setup_context`` (:func:`traced`), since they cannot enter an
autograd kernel registered in the dispatcher; it shares the formulas below. Eager calls take
the same formula in C++ (:func:`eager`, ``csrc/autograd.cpp``). Forward-mode AD
(``jvp``) raises, saying why. ``vmap`` runs a batching rule that loops over the mapped
dimension. Under ``torch.autocast`` the operators run in the dtype torch.nn's would: on the CPU
the LSTM and Elman ones in the autocast dtype (bfloat16) and the GRU in its inputs' dtype; on
CUDA all three in the autocast dtype (float16), as cuDNN's RNN does.

Schemas (``mask`` is (T, B) bool; ``train`` asks for the buffers the backward pass reads; an
absent initial state is zeros, made by the kernel; see :mod:`._cell_spec` for the shape)::

    rnn(x, h0?, w_ih, w_hh, b_ih?, b_hh?, mask?, reverse, zero_padding, train, relu)
        -> (out, h_n)
    gru(x, h0?, w_ih, w_hh, b_ih?, b_hh?, mask?, reverse, zero_padding, train)
        -> (out, h_n, gates, hn_all)
    lstm(x, h0?, c0?, w_ih, w_hh, b_ih?, b_hh?, w_hr?, mask?, reverse, zero_padding, train)
        -> (out, h_n, c_n, gates, c_all)

(``w_hr`` (P, H): torch.nn's ``proj_size``, h = W_hr (o * tanh(c)); then ``w_hh`` is (4H, P),
``out`` and ``h`` are P wide, ``c`` is H wide.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import composite
from ._cell_spec import CELLS as SPECS
from ._cell_spec import CellSpec

__all__ = ["CELLS", "eager", "traced"]

_LIB = torch.library.Library("rnnkit", "DEF")  # noqa: TOR901 (kept for the process's lifetime)


def _schemas(cell: CellSpec) -> tuple[str, str]:
    """The forward and backward operators' schemas of ``cell`` (see :mod:`._cell_spec`)."""
    states = ", ".join(f"Tensor? {s}0" for s in cell.states)
    flags = "".join(f", bool {f}" for f in cell.flags)
    common = "Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh" + "".join(
        f", Tensor? {w}" for w in cell.weights)
    results = ", ".join(["Tensor"] * (1 + len(cell.states) + len(cell.saved)))
    forward = (f"{cell.name}(Tensor x, {states}, {common}, Tensor? mask, bool reverse, "
               f"bool zero_padding, bool train{flags}) -> ({results})")
    n = cell.differentiable
    grads = ", ".join(f"Tensor grad_{s}_n" for s in cell.states)
    saved = "".join(f", Tensor {name}" for name, _ in cell.saved)
    backward = (f"{cell.name}_backward(Tensor grad_out, {grads}, Tensor x, {states}, {common}, "
                f"Tensor out{saved}, Tensor? mask, bool reverse, bool zero_padding{flags}, "
                f"bool[{n}] output_mask) -> ({', '.join(['Tensor'] * n)})")
    return forward, backward


for _spec in SPECS.values():
    _forward, _backward_schema = _schemas(_spec)
    _LIB.define(_forward)
    _LIB.define(_backward_schema)
    if _spec.compiled:  # the eager fast path's operator: the same schema (csrc/autograd.cpp)
        _LIB.define(f"_{_spec.name}_eager{_forward[len(_spec.name):]}")
# CPU only, C++ only (never traced: the kernels' Python callers use plain ops under tracing)
_LIB.define("prefix_mask(Tensor lengths, int steps) -> (Tensor, int, int)")
_LIB.define("zero_masked_(Tensor(a!) out, Tensor mask) -> ()")


class _Cell:
    """What the registrations need to know about one recurrence: its description and its
    operators."""

    def __init__(self, spec: CellSpec) -> None:
        self.spec, self.name, self.states = spec, spec.name, len(spec.states)
        self.differentiable = spec.differentiable  # x, states, w_ih, w_hh, b_ih, b_hh, W...
        self.op = getattr(torch.ops.rnnkit, spec.name).default
        # the dispatcher's entry without OpOverload's Python frame: for eager calls
        self.call = getattr(self.op, "_op", self.op)
        self.backward_op = getattr(torch.ops.rnnkit, f"{spec.name}_backward").default


CELLS = {name: _Cell(spec) for name, spec in SPECS.items()}


# ---------------------------------------------------------------------------------------------
# Kernels for everything but the CPU with the C++ library loaded, and the fake kernels.

def _register_composite(cell: _Cell) -> None:
    _LIB.impl(cell.name, composite.forward(cell.spec), "CompositeExplicitAutograd")
    states, saved = cell.states, len(cell.spec.saved)
    n = cell.differentiable

    # the saved buffers are the compiled kernels'; this differentiates the forward pass again
    def backward(*args: Any) -> tuple[Tensor, ...]:
        grads, inputs = args[:1 + states], args[1 + states:1 + states + n]
        rest = args[2 + states + n + saved:]  # mask, reverse, zero_padding, flags, output_mask
        mask, flags, output_mask = rest[0], rest[1:-1], rest[-1]
        return _filled(composite.recurrence_backward(
            cell.name, grads, (*inputs, mask), flags, output_mask, create_graph=False),
            inputs[0])

    _LIB.impl(f"{cell.name}_backward", backward, "CompositeExplicitAutograd")


def _filled(grads: Sequence[Tensor | None], like: Tensor) -> tuple[Tensor, ...]:
    return tuple(like.new_empty(0) if g is None else g for g in grads)


def _check_fake(name: str, x: Tensor, w_hh: Tensor, gates: int, w_hr: Tensor | None) -> None:
    torch._check(x.dim() == 3, lambda: f"rnnkit.{name}: x must be (T, B, D), got {x.shape}")
    if w_hr is None:  # w_hr: the LSTM's projection (P, H)
        torch._check(w_hh.dim() == 2 and w_hh.shape[0] == gates * w_hh.shape[1],
                     lambda: f"rnnkit.{name}: w_hh must be ({gates}*H, H), got {w_hh.shape}")
        return
    torch._check(w_hr.dim() == 2 and w_hh.dim() == 2
                 and w_hh.shape == (gates * w_hr.shape[1], w_hr.shape[0]),
                 lambda: f"rnnkit.{name}: with w_hr (P, H) w_hh must be ({gates}*H, P), got "
                         f"w_hr {w_hr.shape} and w_hh {w_hh.shape}")


def _register_fakes(cell: _Cell, on_first_use: Callable[[], None]) -> None:
    spec, states, n = cell.spec, cell.states, cell.differentiable

    def forward(*args: Any) -> tuple[Tensor, ...]:
        on_first_use()
        x, w_hh, train = args[0], args[2 + states], args[n + 3]
        own = dict(zip(spec.weights, args[5 + states:n]))
        _check_fake(spec.name, x, w_hh, spec.gates, own.get("w_hr"))
        t, b, h = x.shape[0], x.shape[1], w_hh.shape[0] // spec.gates
        saved = tuple(x.new_empty(t, b, width * h) if train else x.new_empty(0)
                      for _, width in spec.saved)
        widths = [spec.state_width(i, w_hh) for i in range(states)]
        return (x.new_empty(t, b, widths[0]), *(x.new_empty(b, w) for w in widths), *saved)

    def backward(*args: Any) -> tuple[Tensor, ...]:
        inputs, output_mask = args[1 + states:1 + states + n], args[-1]
        x, w_hh = inputs[0], inputs[2 + states]
        # an absent initial state's gradient: (B, its width)
        initial = [(x.shape[1], spec.state_width(i, w_hh)) if t is None else t.shape
                   for i, t in enumerate(inputs[1:1 + states])]
        bias = (w_hh.shape[0],)
        shapes = ([x.shape, *initial, inputs[1 + states].shape, w_hh.shape, bias, bias]
                  + [(0,) if t is None else t.shape for t in inputs[5 + states:]])
        return tuple(x.new_empty(s) if want else x.new_empty(0)
                     for s, want in zip(shapes, output_mask))

    torch.library.register_fake(f"rnnkit::{spec.name}", forward, lib=_LIB)
    torch.library.register_fake(f"rnnkit::{spec.name}_backward", backward, lib=_LIB)


# ---------------------------------------------------------------------------------------------
# Autograd: one formula per cell, used by the dispatcher's autograd kernel and by traced().

def _setup_context(cell: _Cell) -> Callable[..., None]:
    n = cell.differentiable

    def setup_context(ctx: Any, inputs: Sequence[Any], output: Sequence[Tensor]) -> None:
        # inputs: the differentiable ones, mask, reverse, zero_padding, train, the cell's flags
        mask, train = inputs[n], bool(inputs[n + 3])
        outputs = 1 + cell.states
        ctx.save_for_backward(*inputs[:n], mask, *output[:1], *output[outputs:])
        ctx.flags = (*inputs[n + 1:n + 3], *inputs[n + 4:])  # the backward's: no train
        ctx.finals = [o.shape for o in output[1:outputs]]  # for absent final-state gradients
        # a cell without saved buffers (Elman) reads only its outputs: always trained
        ctx.train = train or not cell.spec.saved
        if output[outputs:]:
            ctx.mark_non_differentiable(*output[outputs:])
        # no zero gradients for the saved buffers (a (T, B, 4H) tensor each); the backward
        # fills in the few it reads
        ctx.set_materialize_grads(False)

    return setup_context


def _backward(cell: _Cell) -> Callable[..., tuple[Tensor | None, ...]]:
    n = cell.differentiable

    outputs = 1 + cell.states  # the differentiable outputs: out and the final state(s)

    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        inputs, mask, out = saved[:n], saved[n], saved[n + 1]
        needs = ctx.needs_input_grad  # a tuple of bools, one per forward argument
        trailing = (None,) * (len(needs) - n)
        needs = needs[:n]
        grads = grads[:outputs]
        if None in grads:  # out (T, B, H), then the final states
            shapes = (out.shape, *ctx.finals)
            grads = tuple(out.new_zeros(shape) if g is None else g
                          for g, shape in zip(grads, shapes))
        create_graph = torch.is_grad_enabled()
        if create_graph or not ctx.train:
            result = composite.recurrence_backward(
                cell.name, grads, (*inputs, mask), ctx.flags, needs, create_graph=create_graph)
            return (*result, *trailing)
        found = cell.backward_op(*grads, *inputs, out, *saved[n + 2:], mask, *ctx.flags, needs)
        return (*(g if want else None for g, want in zip(found, needs)), *trailing)

    return backward


class _FunctorchMixin:
    generate_vmap_rule = True

    @staticmethod
    def jvp(ctx: Any, *tangents: Any) -> Any:
        raise NotImplementedError(
            "rnnkit's recurrences have no forward-mode derivative (torch.func.jvp, jacfwd, "
            "hessian); use reverse mode (torch.func.grad, vjp, jacrev) instead")


def _function(cell: _Cell) -> type:
    def forward(*args: Any) -> Any:
        if torch._C._are_functorch_transforms_active():
            return cell.op(*args)
        with torch._C._AutoDispatchBelowAutograd():  # straight to the kernel: this is autograd
            return cell.op(*args)

    return type(f"_{cell.name.title()}Function", (_FunctorchMixin, torch.autograd.Function), {
        "forward": staticmethod(forward),
        "setup_context": staticmethod(_setup_context(cell)),
        "backward": staticmethod(_backward(cell)),
    })


_FUNCTIONS: dict[str, type] = {}  # for torch.func transforms, and eager without the C++ library
# for plain autograd: the C++ library's ``_<cell>_eager`` operators (csrc/autograd.cpp), the
# same operator and formula with the autograd bookkeeping in C++ (measured: half the fixed cost
# of a tiny training step is the Python Function's). Filled when the library is loaded.
_EAGER: dict[str, Any] = {}


def traced(name: str, *args: Any) -> Any:
    """Call the operator ``name`` under a tracer (compile, export, jit.trace), which records
    the operator itself with the autograd formula registered on it, or inside ``torch.func``
    transforms, which see an ``autograd.Function`` sharing that formula (they cannot enter an
    autograd kernel the dispatcher holds, nor a C++ autograd Function)."""
    if torch.compiler.is_compiling() or torch._C._is_tracing():
        return CELLS[name].op(*args)
    return _FUNCTIONS[name].apply(*args)


def eager(name: str, *args: Any, grad: bool) -> Any:
    """Call the operator ``name`` eagerly; ``grad``: whether a gradient is wanted (grad mode
    on and an input requiring one, asked once by the caller). Under autocast: the operator,
    whose autocast kernel casts above autograd (so the casts are recorded). With something to
    differentiate: the C++ ``_<cell>_eager`` operator, the same formula with the autograd
    bookkeeping in C++, or without the C++ library the ``autograd.Function``. Otherwise
    straight to the kernel."""
    if torch._C._is_any_autocast_enabled():
        return CELLS[name].op(*args)
    if grad:
        return _EAGER.get(name, _FUNCTIONS[name].apply)(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return CELLS[name].call(*args)


def library_loaded() -> None:
    """Called once the C++ library is loaded: its eager operators become the fast path (for
    the cells it has: a composite-only cell keeps the ``autograd.Function``)."""
    for name, cell in CELLS.items():
        if cell.spec.compiled:
            _EAGER[name] = getattr(torch.ops.rnnkit, f"_{name}_eager").default


# ---------------------------------------------------------------------------------------------
# vmap: loop over the mapped dimension (the recurrences already batch over B).

def _loop_vmap(op: Any) -> Callable[..., Any]:
    def rule(info: Any, in_dims: Sequence[int | None], *args: Any) -> Any:
        results = []
        for i in range(info.batch_size):
            args_i = [a.select(d, i) if d is not None else a for a, d in zip(args, in_dims)]
            results.append(op(*args_i))
        if isinstance(results[0], Tensor):
            return torch.stack(results), 0
        return tuple(torch.stack(r) for r in zip(*results)), (0,) * len(results[0])

    return rule


# ---------------------------------------------------------------------------------------------
# Autocast: run in the autocast dtype where torch.nn does.

def _autocast(op: Any, device_type: str) -> Callable[..., Any]:
    key = getattr(torch._C.DispatchKey, "Autocast" + torch._C._dispatch_key_for_device(device_type))

    def kernel(keyset: Any, *args: Any) -> Any:
        dtype = torch.get_autocast_dtype(device_type)

        def cast(a: Any) -> Any:
            if isinstance(a, Tensor) and a.is_floating_point() and a.device.type == device_type:
                return a.to(dtype)
            return a

        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(key)):
            return op(*(cast(a) for a in args))

    return kernel


def register(on_first_use: Callable[[], None]) -> None:
    """Register every kernel but the C++ ones (those come with the library, csrc/cell.h)."""
    for name, cell in CELLS.items():
        _register_composite(cell)
        _register_fakes(cell, on_first_use)
        torch.library.register_autograd(f"rnnkit::{name}", _backward(cell),
                                        setup_context=_setup_context(cell), lib=_LIB)
        _FUNCTIONS[name] = _function(cell)
        torch.library.register_vmap(f"rnnkit::{name}", _loop_vmap(cell.op), lib=_LIB)
        torch.library.register_vmap(f"rnnkit::{name}_backward", _loop_vmap(cell.backward_op),
                                    lib=_LIB)
    # which cells torch.nn runs in the autocast dtype: on the CPU the ones oneDNN has (its GRU
    # keeps its inputs' dtype), on CUDA all three (cuDNN's RNN, ATen/cudnn/AutocastRNN.cpp)
    for device, names in (("cpu", ("rnn", "lstm")), ("cuda", ("rnn", "gru", "lstm"))):
        key = "Autocast" + torch._C._dispatch_key_for_device(device)
        for name in names:
            _LIB.impl(name, _autocast(CELLS[name].op, device), key, with_keyset=True)
