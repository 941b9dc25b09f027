"""Keras 3's ``LSTM`` and ``GRU`` on rnnkit's kernels (the torch backend, on CPU).

Keras' recurrent layers first offer their whole sequence to the backend's ``lstm`` / ``gru``
function (``keras/src/layers/rnn/lstm.py``: ``backend.lstm(...)``, the cuDNN-style fast path)
and run their own per-step loop when it raises ``NotImplementedError``. :func:`install` puts a
function in front of the torch backend's two: on CPU, float32/float64, tanh/sigmoid, and (GRU)
``reset_after=True`` it runs rnnkit's fused kernel with Keras' weights (the same conversion as
:mod:`rnnkit.layers`: :func:`rnnkit.layers.lstm.fused_states`, :func:`rnnkit.layers.gru.fused_states`)
and returns Keras' numbers, masks and ``go_backwards`` included (:func:`rnnkit.layers.rnn.keras_outputs`);
for anything else it calls Keras' own function, which runs cuDNN or raises so that Keras loops.
Keras has no such hook for ``SimpleRNN``, which keeps its loop.

Keras applies input dropout before the call and never offers a call with ``recurrent_dropout``;
gradients reach Keras' variables because its torch variables are the tensors the kernel
differentiates. With a mask the outputs depend on the layer's ``zero_output_for_mask``
(``Bidirectional`` sets it), which the backend function is not given: the layers' ``inner_loop``
is wrapped to make the calling layer known for the length of the call; a masked call from
anywhere else goes to Keras' own function.

``install()`` patches a Keras already imported, or, when Keras is importable but not imported
yet, as soon as ``import keras`` finishes (an import hook); nothing changes for a Keras on
another backend. ``uninstall()`` restores Keras' functions. Importing this module imports no
Keras. ``rnnkit.accelerate()`` is the public switch (``accelerate(False)`` and leaving its
``with`` block call :func:`uninstall`; ``RNNKIT_ACCELERATE=1`` turns both on at ``import torch``).
"""

from __future__ import annotations

import contextvars
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

import torch

# the Keras layer whose inner_loop is running (for zero_output_for_mask)
_LAYER: contextvars.ContextVar[Any] = contextvars.ContextVar("rnnkit_keras_layer", default=None)
# (owner, attribute) -> Keras' original, while installed
_ORIGINALS: dict[tuple[Any, str], Any] = {}

__all__ = ["install", "installed", "uninstall"]


def install() -> bool:
    """Route Keras' LSTM/GRU through rnnkit's kernels. Returns True when Keras (torch backend)
    is patched now, False when it is not imported yet (it is patched on import) or uses
    another backend. Idempotent."""
    keras = sys.modules.get("keras")
    if keras is None or "keras.src.layers" not in sys.modules:  # not imported, or importing
        if importlib.util.find_spec("keras") is not None and _HOOK not in sys.meta_path:
            sys.meta_path.insert(0, _HOOK)
        return False
    return _patch()


def uninstall() -> None:
    """Give Keras its own functions back and drop the import hook."""
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)
    for (owner, name), original in _ORIGINALS.items():
        setattr(owner, name, original)
    _ORIGINALS.clear()


def installed() -> bool:
    """Whether Keras' functions are rnnkit's now."""
    return bool(_ORIGINALS)


def _patch() -> bool:
    from keras.src import backend

    if backend.backend() != "torch" or _ORIGINALS:
        return bool(_ORIGINALS)
    from keras.src.layers.rnn.gru import GRU
    from keras.src.layers.rnn.lstm import LSTM

    wrappers = {(backend, "lstm"): _make_lstm(backend.lstm), (backend, "gru"): _make_gru(backend.gru),
                (LSTM, "inner_loop"): _known_layer(LSTM.inner_loop),
                (GRU, "inner_loop"): _known_layer(GRU.inner_loop)}
    for (owner, name), wrapper in wrappers.items():
        _ORIGINALS[(owner, name)] = getattr(owner, name)
        setattr(owner, name, wrapper)
    return True


def _known_layer(inner_loop: Any) -> Any:
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _LAYER.set(self)
        try:
            return inner_loop(self, *args, **kwargs)
        finally:
            _LAYER.reset(token)

    wrapped.__wrapped__ = inner_loop  # type: ignore[attr-defined]
    return wrapped


def _is(function: Any, name: str) -> bool:
    """Whether a Keras activation is ``name`` (tanh or sigmoid), as Keras' ``cudnn_ok`` asks."""
    from keras.src import activations, ops

    return function in (getattr(activations, name), getattr(torch, name), getattr(ops, name))


def _runs_here(inputs: Any, kernel: Any, mask: Any, activation: Any,
               recurrent_activation: Any) -> bool:
    """Whether the kernel takes the call; if not, Keras' own function does."""
    from keras.src.backend.torch.core import convert_to_tensor

    if not (_is(activation, "tanh") and _is(recurrent_activation, "sigmoid")):
        return False
    if mask is not None and getattr(_LAYER.get(), "zero_output_for_mask", None) is None:
        return False
    kernel, inputs = convert_to_tensor(kernel), convert_to_tensor(inputs)
    return kernel.dtype in (torch.float32, torch.float64) and kernel.is_cpu and inputs.is_cpu


def _prepare(inputs: Any, states: list[Any], kernel: Any, recurrent_kernel: Any, bias: Any,
             mask: Any) -> tuple[Any, ...]:
    """Keras' arguments as the kernel takes them: time-major x (T, B, D) in the kernel's dtype
    (Keras casts integer inputs too), the states, the weights, a (T, B) bool mask or None."""
    from keras.src.backend.torch.core import convert_to_tensor as convert

    kernel = convert(kernel)
    dtype = kernel.dtype
    x = convert(inputs).to(dtype).transpose(0, 1)
    # copies: a stateful layer assigns its new states into the variables in place, which
    # must not change what the kernel keeps for its backward pass
    states = [convert(s).to(dtype).clone() for s in states]
    bias = None if bias is None else convert(bias)
    mask_tm = None if mask is None else convert(mask).to(torch.bool).t().contiguous()
    return x, states, kernel, convert(recurrent_kernel), bias, mask_tm


def _keras_result(held: torch.Tensor, final: list[torch.Tensor], mask: torch.Tensor | None,
                  go_backwards: bool, return_sequences: bool) -> Any:
    """Keras' backend return: ``(last_output, outputs, states)``, outputs (B, 1, U) for the
    last step only, as Keras' own functions give them."""
    from .layers.rnn import keras_outputs

    zero = bool(getattr(_LAYER.get(), "zero_output_for_mask", False))
    last, sequence = keras_outputs(held, final[0], mask, go_backwards=go_backwards,
                                   zero_output_for_mask=zero, return_sequences=return_sequences)
    return last, last.unsqueeze(1) if sequence is None else sequence, final


def _make_lstm(keras_lstm: Any) -> Any:
    def lstm(inputs: Any, initial_state_h: Any, initial_state_c: Any, mask: Any, kernel: Any,
             recurrent_kernel: Any, bias: Any, activation: Any, recurrent_activation: Any,
             return_sequences: bool = False, go_backwards: bool = False, unroll: bool = False,
             batch_first: bool = True) -> Any:
        if not batch_first or not _runs_here(inputs, kernel, mask, activation,
                                             recurrent_activation):
            return keras_lstm(inputs, initial_state_h, initial_state_c, mask, kernel,
                              recurrent_kernel, bias, activation, recurrent_activation,
                              return_sequences=return_sequences, go_backwards=go_backwards,
                              unroll=unroll, batch_first=batch_first)
        from .layers.lstm import fused_states

        x, states, kernel, recurrent_kernel, bias, mask_tm = _prepare(
            inputs, [initial_state_h, initial_state_c], kernel, recurrent_kernel,
            bias, mask)
        held, final = fused_states(x, states, kernel, recurrent_kernel, bias, mask_tm,
                                   reverse=go_backwards)
        return _keras_result(held, final, mask_tm, go_backwards, return_sequences)

    lstm.__wrapped__ = keras_lstm  # type: ignore[attr-defined]
    return lstm


def _make_gru(keras_gru: Any) -> Any:
    def gru(inputs: Any, initial_state: Any, mask: Any, kernel: Any, recurrent_kernel: Any,
            bias: Any, activation: Any, recurrent_activation: Any, return_sequences: bool = False,
            go_backwards: bool = False, unroll: bool = False, reset_after: bool = True) -> Any:
        if not reset_after or not _runs_here(inputs, kernel, mask, activation,
                                             recurrent_activation):  # reset-after kernel
            return keras_gru(inputs, initial_state, mask, kernel, recurrent_kernel, bias,
                             activation, recurrent_activation, return_sequences=return_sequences,
                             go_backwards=go_backwards, unroll=unroll, reset_after=reset_after)
        from .layers.gru import fused_states

        x, states, kernel, recurrent_kernel, bias, mask_tm = _prepare(
            inputs, [initial_state], kernel, recurrent_kernel, bias, mask)
        held, final = fused_states(x, states, kernel, recurrent_kernel, bias, mask_tm,
                                   reverse=go_backwards)
        return _keras_result(held, final, mask_tm, go_backwards, return_sequences)

    gru.__wrapped__ = keras_gru  # type: ignore[attr-defined]
    return gru


class _Loader(importlib.abc.Loader):
    """Keras' own loader for the ``keras`` package, then :func:`_patch` once it is imported."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _patch()


class _ImportHook(importlib.abc.MetaPathFinder):
    """Patches Keras when ``import keras`` (which imports all of ``keras.src``) finishes."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once; and the other finders find the real spec
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


_HOOK = _ImportHook()
