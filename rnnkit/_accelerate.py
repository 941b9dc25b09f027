"""``rnnkit.accelerate()``: ``torch.nn``'s own RNN, GRU and LSTM modules on rnnkit's kernels.

``torch.nn.RNN`` / ``GRU`` / ``LSTM`` (and every subclass) do their work in one PyTorch
operator: ``aten::rnn_tanh``, ``rnn_relu``, ``gru`` or ``lstm``, in its ``.input`` overload for a
dense batch and its ``.data`` overload for a ``PackedSequence``. PyTorch defines all eight as
``CompositeImplicitAutograd``: one C++ function for every device that autograd differentiates
step by step. :func:`accelerate` registers kernels for them with PyTorch's dispatcher
(``torch.library``) under two keys, ``AutogradCPU`` (calls that may need a gradient) and ``CPU``
(``torch.inference_mode``, below autograd); a kernel runs the layer stack of
:mod:`rnnkit.nn` (:func:`rnnkit.nn.rnn.run_layers`: the same code as ``rnnkit.nn``'s modules)
on rnnkit's operators, whose own autograd (the fused C++ backward pass, exact double backward)
then differentiates it. So nothing about the modules changes: their ``state_dict``, hooks,
parametrizations, ``torch.nn.utils.rnn`` packing and the values they return are PyTorch's.

What runs where::

    call                                            kernel
    ----------------------------------------------  ----------------------------------------
    CPU, float32/float64 (also under autocast),     rnnkit (see rnnkit._kernels for which of
      dense or packed, every torch.nn argument        its kernels; proj_size included)
    any other device (CUDA, meta, ...)              PyTorch's own (no kernel registered there)
    other dtypes, tensors of mixed dtype or device, PyTorch's own (its errors too)
      empty sizes, fake tensors, torch.func
      transforms, torch.compile, or a call made
      from inside rnnkit (its router may pick
      torch._VF.lstm for a size it runs faster)

Dropout between layers draws its masks as PyTorch does (one ``dropout`` of each layer's
outputs, the packed data for a ``PackedSequence``), so a seed gives the same model either way.
Under the profiler each call rnnkit takes shows as a ``rnnkit.accelerate.<op>`` range.

Turning it on:

- ``rnnkit.accelerate()`` from then on, ``rnnkit.accelerate(False)`` to undo (PyTorch's kernels
  again), ``rnnkit.is_accelerated()`` to ask;
- ``with rnnkit.accelerate(): ...`` (or ``accelerate(False)``) for a block; blocks nest, and
  leaving one restores what was on before it (as ``torch.set_grad_enabled`` does);
- ``RNNKIT_ACCELERATE=1`` in the environment: with rnnkit installed, ``import torch`` turns it
  on (PyTorch loads the ``torch.backends`` entry points of installed packages at import,
  unless ``TORCH_DEVICE_BACKEND_AUTOLOAD=0``), so a library that never imports rnnkit runs on
  its kernels unchanged.

The same switch puts Keras 3's ``LSTM`` and ``GRU`` (torch backend) on rnnkit's kernels
(:mod:`rnnkit._keras_adapter`): at once if Keras is imported, else when it is (an import hook);
Keras is never imported by rnnkit.

``import rnnkit`` alone changes nothing.
"""

from __future__ import annotations

import threading
from functools import partial
from types import TracebackType
from typing import Any

import torch
from torch import Tensor

from ._autoload import ENV_ACCELERATE, wanted

from . import _keras_adapter

__all__ = ["ENV_ACCELERATE", "accelerate", "is_accelerated"]


# aten operator -> (number of state tensors, the cell's layer in rnnkit.nn.rnn, its options)
_CELLS = {
    "rnn_tanh": (1, "rnn_layer", {"relu": False}),
    "rnn_relu": (1, "rnn_layer", {"relu": True}),
    "gru": (1, "gru_layer", {}),
    "lstm": (2, "lstm_layer", {}),
}
_DTYPES = (torch.float32, torch.float64)
_PLAIN = (Tensor, torch.nn.Parameter)  # not subclasses: fake, functional or wrapped tensors

_lock = threading.Lock()
_library: torch.library.Library | None = None
_inside = threading.local()  # .depth: calls of ours running on this thread


def is_accelerated() -> bool:
    """Whether ``torch.nn``'s recurrent modules run on rnnkit's kernels now."""
    return _library is not None


class accelerate:
    """Run ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` (and their subclasses) on rnnkit's kernels on
    the CPU (``enable=True``), or on PyTorch's own again (``enable=False``). Takes effect at
    once, for every module, existing or not, in every thread; see :mod:`rnnkit._accelerate`
    for what runs where.

    Also a context manager: leaving the block restores the state from before the call.

    Example::

        >>> import rnnkit, torch
        >>> lstm = torch.nn.LSTM(4, 8, num_layers=2)
        >>> with rnnkit.accelerate():
        ...     out, (h, c) = lstm(torch.randn(5, 3, 4))  # rnnkit's kernels
        >>> rnnkit.is_accelerated()
        False
    """

    def __init__(self, enable: bool = True) -> None:
        if not isinstance(enable, bool):
            raise TypeError(f"accelerate(enable) takes a bool, got {type(enable).__name__}")
        with _lock:
            self.previous = _library is not None
            _switch(enable)

    def __enter__(self) -> accelerate:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        with _lock:
            _switch(self.previous)

    def __repr__(self) -> str:
        return f"rnnkit.accelerate(enabled={is_accelerated()})"


def _switch(enable: bool) -> None:
    """Register the kernels (or remove them, which gives PyTorch's back). Under ``_lock``."""
    global _library
    if enable and _library is None:
        library = torch.library.Library("aten", "IMPL")  # noqa: TOR901 (destroyed by undo)
        for name in _CELLS:
            for key in ("CPU", "AutogradCPU"):
                library.impl(f"{name}.input", partial(_dense, name), key)
                library.impl(f"{name}.data", partial(_packed, name), key)
        _library = library
        _keras_adapter.install()
    elif not enable and _library is not None:
        _library._destroy()
        _library = None
        _keras_adapter.uninstall()


# -- the kernels ---------------------------------------------------------------------------------

def _dense(name: str, input: Tensor, hx: Any, params: list[Tensor], has_biases: bool,
           num_layers: int, dropout: float, train: bool, bidirectional: bool,
           batch_first: bool) -> tuple[Tensor, ...]:
    """``aten::<name>.input``: input (T, B, H_in), or (B, T, H_in) with ``batch_first``."""
    args = (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
    states = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    if input.dim() != 3 or not _takes(name, input, states, params, has_biases, num_layers,
                                       bidirectional, input.shape[0 if batch_first else 1]):
        return _theirs(name, "input", args)
    x = input.transpose(0, 1) if batch_first else input  # (T, B, H_in)
    out, finals = _run(name, x, None, states, params, has_biases, num_layers, dropout, train,
                       bidirectional)
    return (out.transpose(0, 1) if batch_first else out, *finals)


def _packed(name: str, data: Tensor, batch_sizes: Tensor, hx: Any, params: list[Tensor],
            has_biases: bool, num_layers: int, dropout: float, train: bool,
            bidirectional: bool) -> tuple[Tensor, ...]:
    """``aten::<name>.data``: a ``PackedSequence``'s data (sum of batch_sizes, H_in), its
    sequences sorted longest first (``torch.nn`` sorts the states to match)."""
    args = (data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional)
    states = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    if (data.dim() != 2 or batch_sizes.dim() != 1 or batch_sizes.numel() == 0
            or batch_sizes.dtype != torch.int64 or not batch_sizes.is_cpu
            or type(batch_sizes) not in _PLAIN
            or not _takes(name, data, states, params, has_biases, num_layers, bidirectional,
                          int(batch_sizes[0]))):
        return _theirs(name, "data", args)
    from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

    from .nn._checks import lengths_to_mask

    x, lengths = pad_packed_sequence(PackedSequence(data, batch_sizes))  # (T, B, H_in)
    mask = lengths_to_mask(lengths, x.shape[1], x.shape[0], x.device)  # (T, B)
    out, finals = _run(name, x, mask, states, params, has_biases, num_layers, dropout, train,
                       bidirectional)
    return (out[mask], *finals)  # the real steps in row-major (step, then slot) order: packed


def _takes(name: str, x: Tensor, states: list[Tensor], params: list[Tensor], has_biases: bool,
           num_layers: int, bidirectional: bool, batch: int) -> bool:
    """Whether rnnkit runs this call (else PyTorch's kernel does, errors included)."""
    if getattr(_inside, "depth", 0) or torch._C._are_functorch_transforms_active():
        return False
    if torch.compiler.is_compiling() or x.dtype not in _DTYPES or x.numel() == 0:
        return False
    cell_states = _CELLS[name][0]
    groups = num_layers * (2 if bidirectional else 1)
    if len(states) != cell_states or num_layers < 1 or len(params) % groups:
        return False
    per_group = len(params) // groups
    expected = 4 if has_biases else 2
    if per_group not in (expected, expected + (name == "lstm")):
        return False
    for t in (x, *states, *params):
        if (type(t) not in _PLAIN or t.dtype != x.dtype or not t.is_cpu
                or t.layout != torch.strided):
            return False
    return all(s.dim() == 3 and s.shape[0] == groups and s.shape[1] == batch and s.numel()
               for s in states)


def _run(name: str, x: Tensor, mask: Tensor | None, states: list[Tensor],
         params: list[Tensor], has_biases: bool, num_layers: int, dropout: float, train: bool,
         bidirectional: bool) -> tuple[Tensor, list[Tensor]]:
    """rnnkit.nn's layer stack on time-major ``x`` (T, B, H_in), the packed batch's ``mask``
    (T, B) or None."""
    from .nn import rnn

    _, layer_name, options = _CELLS[name]
    layer = partial(getattr(rnn, layer_name), **options)
    directions = 2 if bidirectional else 1
    per_group = len(params) // (num_layers * directions)
    weights = [_weights(params[i:i + per_group], has_biases)
               for i in range(0, len(params), per_group)]
    drop = None
    if dropout and train and num_layers > 1:
        drop = (partial(torch.nn.functional.dropout, p=dropout, training=True) if mask is None
                else rnn.packed_dropout(dropout, mask, None))
    _inside.depth = getattr(_inside, "depth", 0) + 1  # aten calls from here on are PyTorch's
    try:
        if torch.autograd._profiler_enabled():
            with torch.profiler.record_function(f"rnnkit.accelerate.{name}"):
                return rnn.run_layers(layer, x, states, weights, num_layers, directions, mask,
                                      drop)
        return rnn.run_layers(layer, x, states, weights, num_layers, directions, mask, drop)
    finally:
        _inside.depth -= 1


def _weights(group: list[Tensor], has_biases: bool) -> tuple[Tensor | None, ...]:
    """One layer and direction's weights as torch.nn passes them (w_ih, w_hh[, b_ih, b_hh]
    [, w_hr]) -> rnnkit.nn's (w_ih, w_hh, b_ih, b_hh, w_hr) with None for the absent."""
    w_ih, w_hh = group[0], group[1]
    b_ih, b_hh = (group[2], group[3]) if has_biases else (None, None)
    w_hr = group[4 if has_biases else 2] if len(group) > (4 if has_biases else 2) else None
    return (w_ih, w_hh, b_ih, b_hh, w_hr)


def _theirs(name: str, form: str, args: tuple[Any, ...]) -> tuple[Tensor, ...]:
    """PyTorch's own kernel for the call: its C++ CompositeImplicitAutograd one, which the
    kernels registered here stand in front of on the CPU. (Not ``OpOverload.decompose``: that
    prefers the Python decompositions ``torch._decomp`` registers once it is imported.)"""
    overload = getattr(getattr(torch.ops.aten, name), form)
    return overload._op_dk(_COMPOSITE, *args)


_COMPOSITE = torch._C.DispatchKey.CompositeImplicitAutograd


# RNNKIT_ACCELERATE=1: torch's entry point (._autoload) switches acceleration on at `import
# torch`, except when this module's own `import torch` ran it; then this line does.
if wanted():
    accelerate()
