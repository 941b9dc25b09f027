"""Recurrences over whole sequences: one layer, one direction, time-major.

Every function takes ``x`` of shape (T, B, D), initial state(s) of shape (B, H) (or None:
zeros, made by the kernel) and weights in ``torch.nn``'s layout, and returns the state after
every step, (T, B, H), and the final state.

``mask`` is an optional (T, B) bool tensor. Where it is False the state is *held*: the step is
skipped for that sequence. With a prefix mask (per-sequence lengths) this means a sequence's
state stops changing after its last real step, and with ``reverse=True`` the pass starts at each
sequence's own last real step, the same as ``torch.nn`` on a ``PackedSequence``. Returned states
at masked steps are the held state, or zero with ``zero_padding=True`` (``torch.nn``'s padding;
the final state is still the held one).

Each recurrence is a PyTorch operator (``torch.ops.rnnkit.rnn`` / ``gru`` / ``lstm``, see
:mod:`._ops`), so compile, export, ``jit.trace``, ``torch.func``, autocast and ``vmap`` see one
node. What runs (``backend="auto"``, the default)::

    call                                   implementation            why
    -------------------------------------  ------------------------  --------------------------
    CPU float32/float64                    C++ time loop (csrc/)     fastest on every bench row
    CPU bfloat16/float16 (e.g. autocast)   C++ loop, widened to f32  float32 accumulation
    dense float32 LSTM inference on CPU    torch._VF.lstm (oneDNN)   measured faster there;
      from B x H = 16384, AVX2 only                                    _route.py decides (a
                                                                       rule per vector unit, or
                                                                       a measurement, opt-in)
    CUDA, other devices, no C++ compiler,  composite (composite.py)  plain PyTorch ops: runs
      RNNKIT_NO_EXTENSION=1                                            anywhere
    fake tensors, device="meta"            shape functions (_ops)    tracing
    backward, no graph of it wanted        *_backward operator       the same kernel choice
    backward with create_graph, torch.func composite, differentiated exact at every order

The dispatcher makes every choice but the ``torch._VF`` one. ``backend`` stays for tests and
benchmarks: ``"compiled"`` demands the C++ kernel (an error says why it cannot run);
``"fused"`` (or ``"composite"``) runs the composite implementation under plain autograd;
``"loop"`` steps :mod:`.cells` with autograd, the ground truth.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _onnx, _ops, _route
from . import compiled as _compiled
from ._route import prefers_torch as _prefers_torch
from ._route import torch_recurrence as _torch_recurrence
from . import composite as _composite
from ._cell_spec import CELLS as _SPECS
from ._cell_spec import CellSpec
from .cells import gru_cell, lstm_cell, rnn_cell
from .loop import scan

BACKENDS = ("auto", "compiled", "composite", "fused", "loop")

__all__ = ["BACKENDS", "gru", "gru_cell", "lstm", "lstm_cell", "prefix_mask", "rnn", "rnn_cell",
           "scan", "zero_masked"]


def _ensure_library() -> None:
    """Load (building on first use) the C++ kernels before an operator first runs, so the
    dispatcher has them; quietly absent when they cannot be had."""
    if _compiled._module is None and _compiled._error is None:
        _compiled.available()


_ops.register(_ensure_library)
_compiled.on_load(_ops.library_loaded)
_onnx.register_legacy_symbolics()


def _onnx_exporting() -> bool:
    """Inside ``torch.onnx.export(dynamo=True)``: emit the ONNX operator (see :mod:`._onnx`)."""
    return torch.compiler.is_exporting() and torch.onnx.is_in_onnx_export()


def _path(backend: str, x: Tensor, *tensors: Tensor | None) -> str:
    """The path a call takes: "op" (the dispatcher chooses), "composite" or "loop"."""
    if backend == "auto":
        return "op"  # _operator loads the library
    if backend == "compiled":
        reason = _compiled_refuses(x, tensors)
        if reason is not None:
            raise ValueError(f"backend='compiled' cannot run this call: {reason}; "
                             "use backend='auto'")
        _compiled.load()  # raises ExtensionUnavailable saying why
        return "op"
    if backend in ("fused", "composite"):
        return "composite"
    if backend == "loop":
        return "loop"
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _compiled_refuses(x: Tensor, tensors: tuple[Tensor | None, ...]) -> str | None:
    """Why the C++ kernels cannot take these tensors, or None when they can."""
    if not x.is_cpu:
        return f"it runs on CPU tensors, got {x.device}"
    if not x.is_floating_point():
        return f"it runs floating-point tensors, got {x.dtype}"
    for t in tensors:
        if t is not None and (t.dtype != x.dtype or not t.is_cpu):
            return f"every tensor must be {x.dtype} on the CPU like x, got {t.dtype} on {t.device}"
    return None


def _train(*tensors: Tensor | None) -> bool:
    """Whether the operator should keep the buffers of its backward pass. Always under
    ``jit.trace``: the flag is a constant of the traced graph, which may later be trained."""
    if torch.jit.is_tracing():
        return True
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _recurrence(name: str, backend: str, x: Tensor, states: tuple[Tensor | None, ...],
                w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
                mask: Tensor | None, reverse: bool, zero_padding: bool,
                *flags: bool, weights: tuple[Tensor | None, ...] = ()) -> tuple[Tensor, ...]:
    """The cell ``name`` over a sequence on the path ``backend`` asks for: (states, *finals).
    ``flags`` are the cell's own (Elman: ``relu``), ``weights`` its own optional weights (the
    LSTM's ``w_hr``; absent ones may be left out); see :mod:`._cell_spec`."""
    cell = _SPECS[name]
    own = (*weights, *(None,) * (len(cell.weights) - len(weights)))
    path = _path(backend, x, *states, w_ih, w_hh, b_ih, b_hh, *own)
    if path == "op":
        return _operator(cell, backend, x, states, w_ih, w_hh, b_ih, b_hh, mask, reverse,
                         zero_padding, *flags, weights=own)
    if path == "composite":
        outputs = _composite.forward(cell)(x, *states, w_ih, w_hh, b_ih, b_hh, *own, mask,
                                           reverse, zero_padding, False, *flags)
        return outputs[:1 + len(states)]

    def step(x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        gi = cell.input_side(x_t, w_ih, b_ih, own)
        return cell.step(gi, state, w_hh, b_hh, *own, *flags)[0]

    out, finals = scan(step, x, _composite.initial_states(cell, states, x, w_hh), mask, reverse)
    return (_padded(out, mask, zero_padding), *finals)


def _operator(cell: CellSpec, backend: str, x: Tensor, states: tuple[Tensor | None, ...],
              w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
              mask: Tensor | None, reverse: bool, zero_padding: bool,
              *flags: bool, weights: tuple[Tensor | None, ...]) -> tuple[Tensor, ...]:
    """The operator path of :func:`_recurrence`: (states, *finals); ``weights`` are the cell's
    own, one per :attr:`~._cell_spec.CellSpec.weights` (None: absent).

    Under a tracer: the ONNX node when exporting to ONNX; inside ``torch.compile`` PyTorch's
    own kernel for inference where :mod:`._route`'s rule prefers it at static sizes; else the
    operator.
    Eagerly: PyTorch's own kernel where :mod:`._route` prefers it (``backend="auto"``), else
    the operator."""
    finals = len(states)
    # None: PyTorch has no such cell; a projected LSTM always stays on the operator
    torch_cell = None if any(w is not None for w in weights) else cell.torch_function(*flags)
    compiling = torch.compiler.is_compiling()
    if not compiling and _compiled._module is None:  # the fake kernels load it when compiling
        _ensure_library()
    # Under a tracer or transform the call stays the operator (the torch._VF route is an
    # eager-time, size-dependent choice a traced graph would bake in), but for the two below.
    if compiling or torch._C._is_tracing() or torch._C._are_functorch_transforms_active():
        if _onnx_exporting():
            return _onnx.emit(cell.name, x, states, w_ih, w_hh, b_ih, b_hh, weights, mask,
                              reverse, zero_padding, *flags)
        if (backend == "auto" and compiling and torch_cell is not None
                and _route.prefers_torch_compiled(torch_cell, x, w_hh, mask, *states, w_ih,
                                                  w_hh, b_ih, b_hh)):
            initial = _composite.initial_states(cell, states, x, w_hh)
            return _torch_recurrence(getattr(torch._VF, torch_cell), x, initial, w_ih, w_hh,
                                     b_ih, b_hh, reverse)
        traced, train = True, _train(x, *states, w_ih, w_hh, b_ih, b_hh, *weights)
    else:
        # whether a gradient is wanted, asked once per call
        train = torch.is_grad_enabled() and torch._C._any_requires_grad(x, *states, w_ih, w_hh,
                                                                          b_ih, b_hh, *weights)
        if (backend == "auto" and torch_cell is not None
                and _prefers_torch(torch_cell, x, w_hh, mask, training=train)):
            initial = _composite.initial_states(cell, states, x, w_hh)
            return _torch_recurrence(getattr(torch._VF, torch_cell), x, initial, w_ih, w_hh,
                                     b_ih, b_hh, reverse)
        traced = False
    # the kernels make x contiguous
    args = (x, *states, w_ih, w_hh, b_ih, b_hh, *weights, mask, reverse, zero_padding, train,
            *flags)
    name = cell.name
    outputs = _ops.traced(name, *args) if traced else _ops.eager(name, *args, grad=train)
    return outputs[:1 + finals]


def rnn(
    x: Tensor,
    h0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    nonlinearity: str = "tanh",
    mask: Tensor | None = None,
    reverse: bool = False,
    zero_padding: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh). Returns (states, h_n)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    out, h_n = _recurrence("rnn", backend, x, (h0,), w_ih, w_hh, b_ih, b_hh, mask, reverse,
                           zero_padding, nonlinearity == "relu")
    return out, h_n


def gru(
    x: Tensor,
    h0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    reverse: bool = False,
    zero_padding: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """GRU in PyTorch's formulation (gates r, z, n). Returns (states, h_n)."""
    out, h_n = _recurrence("gru", backend, x, (h0,), w_ih, w_hh, b_ih, b_hh, mask, reverse,
                           zero_padding)
    return out, h_n


def lstm(
    x: Tensor,
    h0: Tensor | None,
    c0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    w_hr: Tensor | None = None,
    mask: Tensor | None = None,
    reverse: bool = False,
    zero_padding: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM (gates i, f, g, o). Returns (states h, h_n, c_n).

    ``w_hr`` (P, H) projects the output as ``torch.nn.LSTM``'s ``proj_size`` does:
    h_t = W_hr (o_t * tanh(c_t)), so h (and ``h0``, ``out``) are P wide, ``w_hh`` is (4H, P),
    and c stays H wide."""
    out, h_n, c_n = _recurrence("lstm", backend, x, (h0, c0), w_ih, w_hh, b_ih, b_hh, mask,
                                reverse, zero_padding, weights=(w_hr,))
    return out, h_n, c_n


def prefix_mask(lengths: Tensor, steps: int) -> tuple[Tensor, int, int]:
    """The (T, B) bool mask of each sequence's first ``lengths[b]`` real steps, and the smallest
    and largest length (0, 0 for an empty batch). ``lengths`` is a 1-D integer tensor; values
    out of [0, T] are the caller's to refuse. One compiled pass for CPU lengths (five small
    tensor ops otherwise, a tenth of a small RNN's forward pass)."""
    if (lengths.is_cpu and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing() and _compiled.available()):
        mask, low, high = torch.ops.rnnkit.prefix_mask(lengths, steps)
        return mask, low, high
    low, high = (int(v) for v in torch.aminmax(lengths)) if lengths.numel() else (0, 0)
    mask = torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)
    return mask, low, high


def zero_masked(out: Tensor, mask: Tensor) -> Tensor:
    """``out`` (T, B, F) with the steps where ``mask`` (T, B) is False set to zero (torch.nn's
    padding past each sequence's end). In place on the compiled path when ``out`` needs no
    gradient (inference: nothing saved it for a backward pass); otherwise a ``where``, which
    passes zero gradient to the masked steps."""
    if (not out.requires_grad and out.is_cpu and out.is_contiguous()
            and out.dtype in (torch.float32, torch.float64)
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and _compiled.available()):
        torch.ops.rnnkit.zero_masked_(out, mask)
        return out
    return torch.where(mask.unsqueeze(-1), out, out.new_zeros(()))


def _padded(out: Tensor, mask: Tensor | None, zero_padding: bool) -> Tensor:
    """The held states of the loop path, zeroed at masked steps when asked to be."""
    return zero_masked(out, mask) if zero_padding and mask is not None else out
