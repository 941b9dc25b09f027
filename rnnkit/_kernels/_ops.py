"""The recurrences as PyTorch operators: ``torch.ops.rnnkit.elman`` / ``gru`` / ``lstm``.

Each recurrence is one operator with a schema, and its backward pass another
(``*_backward``). The dispatcher picks the kernel:

- CPU: the compiled time loops of ``csrc/`` (``ops.cpp`` registers them, see
  :mod:`.compiled`); float32/float64 natively, bfloat16/float16 widened to float32;
- every other device, and the CPU when the C++ kernels are not built: :mod:`.composite`
  (registered for ``CompositeExplicitAutograd``, so tracers keep the operator whole);
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
absent initial state is zeros, made by the kernel)::

    elman(x, h0?, w_ih, w_hh, b_ih?, b_hh?, mask?, reverse, relu, zero_padding) -> (out, h_n)
    gru(x, h0?, w_ih, w_hh, b_ih?, b_hh?, mask?, reverse, zero_padding, train)
        -> (out, h_n, gates, hn_all)
    lstm(x, h0?, c0?, w_ih, w_hh, b_ih?, b_hh?, mask?, reverse, zero_padding, train)
        -> (out, h_n, c_n, gates, c_all)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import composite

__all__ = ["CELLS", "eager", "traced"]

_LIB = torch.library.Library("rnnkit", "DEF")  # noqa: TOR901 (kept for the process's lifetime)

_OPTIONAL = "Tensor? b_ih, Tensor? b_hh, Tensor? mask, bool reverse"
_LIB.define(f"elman(Tensor x, Tensor? h0, Tensor w_ih, Tensor w_hh, {_OPTIONAL}, bool relu, "
            "bool zero_padding) -> (Tensor, Tensor)")
_LIB.define("elman_backward(Tensor grad_out, Tensor grad_h_n, Tensor x, Tensor? h0, Tensor w_ih, "
            "Tensor w_hh, Tensor? b_ih, Tensor? b_hh, Tensor out, Tensor? mask, bool reverse, "
            "bool relu, bool zero_padding, "
            "bool[6] output_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")
_LIB.define(f"gru(Tensor x, Tensor? h0, Tensor w_ih, Tensor w_hh, {_OPTIONAL}, "
            "bool zero_padding, bool train) -> (Tensor, Tensor, Tensor, Tensor)")
_LIB.define("gru_backward(Tensor grad_out, Tensor grad_h_n, Tensor x, Tensor? h0, Tensor w_ih, "
            "Tensor w_hh, Tensor? b_ih, Tensor? b_hh, Tensor out, Tensor gates, Tensor hn_all, "
            "Tensor? mask, bool reverse, bool zero_padding, bool[6] output_mask) "
            "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")
_LIB.define(f"lstm(Tensor x, Tensor? h0, Tensor? c0, Tensor w_ih, Tensor w_hh, {_OPTIONAL}, "
            "bool zero_padding, bool train) -> (Tensor, Tensor, Tensor, Tensor, Tensor)")
_LIB.define("lstm_backward(Tensor grad_out, Tensor grad_h_n, Tensor grad_c_n, Tensor x, "
            "Tensor? h0, Tensor? c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
            "Tensor out, Tensor gates, "
            "Tensor c_all, Tensor? mask, bool reverse, bool zero_padding, bool[7] output_mask) "
            "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")
# CPU only, C++ only (never traced: the kernels' Python callers use plain ops under tracing)
_LIB.define("prefix_mask(Tensor lengths, int steps) -> (Tensor, int, int)")
_LIB.define("zero_masked_(Tensor(a!) out, Tensor mask) -> ()")


class _Cell:
    """What the registrations need to know about one recurrence."""

    def __init__(self, name: str, states: int) -> None:
        self.name, self.states = name, states
        self.differentiable = 5 + states  # x, the states, w_ih, w_hh, b_ih, b_hh
        self.op = getattr(torch.ops.rnnkit, name).default
        # the dispatcher's entry without OpOverload's Python frame: for eager calls
        self.call = getattr(self.op, "_op", self.op)
        self.backward_op = getattr(torch.ops.rnnkit, f"{name}_backward").default


CELLS = {"elman": _Cell("elman", 1), "gru": _Cell("gru", 1), "lstm": _Cell("lstm", 2)}


# ---------------------------------------------------------------------------------------------
# Kernels for everything but the CPU with the C++ library loaded, and the fake kernels.

def _register_composite() -> None:
    _LIB.impl("elman", composite.elman, "CompositeExplicitAutograd")
    _LIB.impl("gru", composite.gru, "CompositeExplicitAutograd")
    _LIB.impl("lstm", composite.lstm, "CompositeExplicitAutograd")

    # the saved buffers are the compiled kernels'; this differentiates the forward pass again
    def elman_backward(grad_out, grad_h_n, x, h0, w_ih, w_hh, b_ih, b_hh, out, mask, reverse,
                       relu, zero_padding, output_mask):
        return _filled(composite.recurrence_backward(
            "elman", (grad_out, grad_h_n), (x, h0, w_ih, w_hh, b_ih, b_hh, mask),
            (reverse, relu, zero_padding), output_mask, create_graph=False), x)

    def gru_backward(grad_out, grad_h_n, x, h0, w_ih, w_hh, b_ih, b_hh, out, gates, hn_all,
                     mask, reverse, zero_padding, output_mask):
        return _filled(composite.recurrence_backward(
            "gru", (grad_out, grad_h_n), (x, h0, w_ih, w_hh, b_ih, b_hh, mask),
            (reverse, zero_padding), output_mask, create_graph=False), x)

    def lstm_backward(grad_out, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, out,
                      gates, c_all, mask, reverse, zero_padding, output_mask):
        return _filled(composite.recurrence_backward(
            "lstm", (grad_out, grad_h_n, grad_c_n), (x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask),
            (reverse, zero_padding), output_mask, create_graph=False), x)

    _LIB.impl("elman_backward", elman_backward, "CompositeExplicitAutograd")
    _LIB.impl("gru_backward", gru_backward, "CompositeExplicitAutograd")
    _LIB.impl("lstm_backward", lstm_backward, "CompositeExplicitAutograd")


def _filled(grads: Sequence[Tensor | None], like: Tensor) -> tuple[Tensor, ...]:
    return tuple(like.new_empty(0) if g is None else g for g in grads)


def _check_fake(name: str, x: Tensor, w_hh: Tensor, gates: int) -> None:
    torch._check(x.dim() == 3, lambda: f"rnnkit.{name}: x must be (T, B, D), got {x.shape}")
    torch._check(w_hh.dim() == 2 and w_hh.shape[0] == gates * w_hh.shape[1],
                 lambda: f"rnnkit.{name}: w_hh must be ({gates}*H, H), got {w_hh.shape}")


def _register_fakes(on_first_use: Callable[[], None]) -> None:
    def steps_batch_hidden(x: Tensor, w_hh: Tensor) -> tuple[Any, Any, Any]:
        return x.shape[0], x.shape[1], w_hh.shape[1]

    @torch.library.register_fake("rnnkit::elman", lib=_LIB)
    def _elman(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, relu, zero_padding):
        on_first_use()
        _check_fake("elman", x, w_hh, 1)
        t, b, h = steps_batch_hidden(x, w_hh)
        return x.new_empty(t, b, h), x.new_empty(b, h)

    @torch.library.register_fake("rnnkit::gru", lib=_LIB)
    def _gru(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero_padding, train):
        on_first_use()
        _check_fake("gru", x, w_hh, 3)
        t, b, h = steps_batch_hidden(x, w_hh)
        if not train:
            return x.new_empty(t, b, h), x.new_empty(b, h), x.new_empty(0), x.new_empty(0)
        return x.new_empty(t, b, h), x.new_empty(b, h), x.new_empty(t, b, 3 * h), \
            x.new_empty(t, b, h)

    @torch.library.register_fake("rnnkit::lstm", lib=_LIB)
    def _lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero_padding, train):
        on_first_use()
        _check_fake("lstm", x, w_hh, 4)
        t, b, h = steps_batch_hidden(x, w_hh)
        if not train:
            return (x.new_empty(t, b, h), x.new_empty(b, h), x.new_empty(b, h), x.new_empty(0),
                    x.new_empty(0))
        return (x.new_empty(t, b, h), x.new_empty(b, h), x.new_empty(b, h),
                x.new_empty(t, b, 4 * h), x.new_empty(t, b, h))

    def gradients(like: Sequence[Tensor | None], output_mask: Sequence[bool], w_hh: Tensor,
                  x: Tensor) -> tuple[Tensor, ...]:
        state = (x.shape[1], w_hh.shape[1])  # an absent initial state's gradient: (B, H)
        bias = (w_hh.shape[0],)
        shapes = [state if t is None else t.shape for t in like] + [bias, bias]
        return tuple(x.new_empty(s) if want else x.new_empty(0)
                     for s, want in zip(shapes, output_mask))

    @torch.library.register_fake("rnnkit::elman_backward", lib=_LIB)
    def _elman_backward(grad_out, grad_h_n, x, h0, w_ih, w_hh, b_ih, b_hh, out, mask, reverse, relu,
                        zero_padding, output_mask):
        return gradients((x, h0, w_ih, w_hh), output_mask, w_hh, x)

    @torch.library.register_fake("rnnkit::gru_backward", lib=_LIB)
    def _gru_backward(grad_out, grad_h_n, x, h0, w_ih, w_hh, b_ih, b_hh, out, gates, hn_all, mask,
                      reverse, zero_padding, output_mask):
        return gradients((x, h0, w_ih, w_hh), output_mask, w_hh, x)

    @torch.library.register_fake("rnnkit::lstm_backward", lib=_LIB)
    def _lstm_backward(grad_out, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, out,
                       gates, c_all, mask, reverse, zero_padding, output_mask):
        return gradients((x, h0, c0, w_ih, w_hh), output_mask, w_hh, x)


# ---------------------------------------------------------------------------------------------
# Autograd: one formula per cell, used by the dispatcher's autograd kernel and by traced().

def _setup_context(cell: _Cell) -> Callable[..., None]:
    n = cell.differentiable

    def setup_context(ctx: Any, inputs: Sequence[Any], output: Sequence[Tensor]) -> None:
        mask = inputs[n]
        train = cell.name == "elman" or bool(inputs[-1])
        outputs = 1 + cell.states
        ctx.save_for_backward(*inputs[:n], mask, *output[:1], *output[outputs:])
        ctx.flags = tuple(inputs[n + 1:len(inputs) - (cell.name != "elman")])
        ctx.train = train
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
        if None in grads:  # out (T, B, H), then the final states, (B, H) each
            grads = tuple(torch.zeros_like(out if i == 0 else out[0]) if g is None else g
                          for i, g in enumerate(grads))
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
    """Called once the C++ library is loaded: its eager operators become the fast path."""
    for name in CELLS:
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
    """Register every kernel but the C++ ones (those come with the library, see ops.cpp)."""
    _register_composite()
    _register_fakes(on_first_use)
    for name, cell in CELLS.items():
        torch.library.register_autograd(f"rnnkit::{name}", _backward(cell),
                                        setup_context=_setup_context(cell), lib=_LIB)
        _FUNCTIONS[name] = _function(cell)
        torch.library.register_vmap(f"rnnkit::{name}", _loop_vmap(cell.op), lib=_LIB)
        torch.library.register_vmap(f"rnnkit::{name}_backward", _loop_vmap(cell.backward_op),
                                    lib=_LIB)
    # which cells torch.nn runs in the autocast dtype: on the CPU the ones oneDNN has (its GRU
    # keeps its inputs' dtype), on CUDA all three (cuDNN's RNN, ATen/cudnn/AutocastRNN.cpp)
    for device, names in (("cpu", ("elman", "lstm")), ("cuda", ("elman", "gru", "lstm"))):
        key = "Autocast" + torch._C._dispatch_key_for_device(device)
        for name in names:
            _LIB.impl(name, _autocast(CELLS[name].op, device), key, with_keyset=True)
