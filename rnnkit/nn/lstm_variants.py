r"""Peephole and layer-normalised LSTMs and the layer-normalised GRU in ``torch.nn``'s style:
:class:`PeepholeLSTM`, :class:`LayerNormLSTM`, :class:`LayerNormGRU` (sequences) and
:class:`PeepholeLSTMCell`, :class:`LayerNormLSTMCell`, :class:`LayerNormGRUCell` (one step).
The equations and the published formulations they follow are in
:mod:`rnnkit._kernels.lstm_variants`. The sequences run
:func:`rnnkit._kernels.lstm_variants.variant_sequence`: the peephole and layer-normalised
LSTMs their operators' C++ loops, the layer-normalised GRU the composite sequence (the input
side once for all steps, the recurrent step in the autograd loop; no C++ loop yet).

Parameters are ``torch.nn.LSTM``'s (``weight_ih_l0`` (4H, H_in), ``weight_hh_l0`` (4H, H),
``bias_ih_l0``, ``bias_hh_l0``, gates ``i, f, g, o``; ``_reverse`` for the backward
direction) plus, for the peephole LSTM, ``weight_ci_l0``, ``weight_cf_l0``, ``weight_co_l0``
(H,) (initialised to zero, so a fresh module is a plain LSTM), and for the layer-normalised
LSTM ``ln_ih_weight_l0``/``ln_ih_bias_l0`` and ``ln_hh_weight_l0``/``ln_hh_bias_l0`` (4H,),
``ln_c_weight_l0``/``ln_c_bias_l0`` (H,) (ones and zeros). The layer-normalised GRU holds
``torch.nn.GRU``'s (3H rows, gates ``r, z, n``) and ``ln_ih_weight_l0``/``ln_ih_bias_l0``,
``ln_hh_weight_l0``/``ln_hh_bias_l0`` (3H,: the gains and shifts of the ``[r, z]`` and ``n``
groups). The cells hold the same names without the ``_l0`` suffix.

Shapes as ``torch.nn.LSTM`` / ``torch.nn.GRU`` (one layer): input (L, N, H_in)
(``batch_first``: (N, L, H_in)); ``hx = (h_0, c_0)`` (the GRU: ``h_0``) each (D, N, H) with
D = 2 if ``bidirectional``; returns ``output`` (L, N, D*H), zero past each sequence's end, and
``(h_n, c_n)`` (the GRU: ``h_n``). ``lengths`` (N,) or ``mask`` (N, L).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._kernels.lstm_variants import VARIANTS, Variant, parameter_shapes, variant_sequence
from ._checks import ShapeError, check_input, step_mask as _step_mask

__all__ = ["LayerNormGRU", "LayerNormGRUCell", "LayerNormLSTM", "LayerNormLSTMCell",
           "PeepholeLSTM", "PeepholeLSTMCell"]


def _init(module: torch.nn.Module, kind: Variant, H: int, suffixes: list[str]) -> None:
    bound = 1.0 / math.sqrt(H)
    extra = kind.extra(H)
    for name, param in module.named_parameters():
        base = name
        for suffix in suffixes:
            if suffix and base.endswith(suffix):
                base = base[: -len(suffix)]
        if base in extra:
            torch.nn.init.constant_(param, extra[base][1])
        else:
            torch.nn.init.uniform_(param, -bound, bound)


class _Variant(torch.nn.Module):
    """The sequence module of one variant (``kind``, a key of ``VARIANTS``), one layer."""

    kind: str

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        for what, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        factory = {"device": device, "dtype": dtype}
        self._suffixes = ["_l0", "_l0_reverse"][: 2 if bidirectional else 1]
        for suffix in self._suffixes:
            shapes = parameter_shapes(VARIANTS[self.kind], input_size, hidden_size, bias)
            for n, shape in shapes.items():
                self.register_parameter(n + suffix, None if shape is None else
                                        torch.nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init(self, VARIANTS[self.kind], self.hidden_size, self._suffixes)

    def _params(self, suffix: str) -> dict[str, Tensor | None]:
        names = parameter_shapes(VARIANTS[self.kind], 1, 1, True)
        return {n: getattr(self, n + suffix) for n in names}

    def _run(self, input: Tensor, hx: tuple[Tensor, ...] | None, lengths: Tensor | None,
             mask: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The output and each final state, (D, N, H), for ``hx`` the initial states or None."""
        name = type(self).__name__
        kind = VARIANTS[self.kind]
        if not isinstance(input, Tensor) or input.dim() != 3:
            raise ShapeError(f"{name}: expected a 3-D input, got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, D)
        check_input(x, self.input_size, self.weight_ih_l0.dtype, name)
        steps, batch = x.shape[:2]
        directions = len(self._suffixes)
        expected = (directions, batch, self.hidden_size)
        if hx is not None and any(tuple(s.shape) != expected for s in hx):
            what = "h_0 and c_0" if kind.states == 2 else "h_0"
            raise ShapeError(f"{name}: {what} must have shape {expected}, got "
                             f"{[tuple(s.shape) for s in hx]}")
        step_mask = _step_mask(lengths, mask, batch, steps, x.device, name)  # (T, B)
        outputs, finals = [], []
        for d, suffix in enumerate(self._suffixes):
            p = self._params(suffix)
            zeros = x.new_zeros(batch, self.hidden_size)
            state = (zeros,) * kind.states if hx is None else tuple(s[d] for s in hx)
            out, final = variant_sequence(self.kind, x, p, state, step_mask, reverse=d == 1)
            outputs.append(out)
            finals.append(final)
        output = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
        if step_mask is not None:
            output = output * step_mask.unsqueeze(-1).to(output.dtype)
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, tuple(torch.stack(s) for s in zip(*finals))

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        for flag, default in (("bias", True), ("batch_first", False), ("bidirectional", False)):
            if getattr(self, flag) != default:
                text += f", {flag}={getattr(self, flag)}"
        return text


class _VariantLSTM(_Variant):
    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None, *,
                lengths: Tensor | None = None, mask: Tensor | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        output, (h_n, c_n) = self._run(input, hx, lengths, mask)
        return output, (h_n, c_n)


class _VariantCell(torch.nn.Module):
    kind: str

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        factory = {"device": device, "dtype": dtype}
        shapes = parameter_shapes(VARIANTS[self.kind], input_size, hidden_size, bias)
        for n, shape in shapes.items():
            self.register_parameter(n, None if shape is None else
                                    torch.nn.Parameter(torch.empty(shape, **factory)))
        _init(self, VARIANTS[self.kind], hidden_size, [""])

    def _step(self, input: Tensor, hx: tuple[Tensor, ...] | None) -> tuple[Tensor, ...]:
        name = type(self).__name__
        kind = VARIANTS[self.kind]
        if not isinstance(input, Tensor) or input.dim() != 2 or input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input (N, {self.input_size}), got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
        if hx is None:
            hx = (input.new_zeros(input.shape[0], self.hidden_size),) * kind.states
        p = {n: getattr(self, n) for n in parameter_shapes(kind, 1, 1, True)}
        return kind.step(kind.input_side(input, p), hx, p)


class _VariantLSTMCell(_VariantCell):
    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor]:
        h, c = self._step(input, hx)
        return h, c


class PeepholeLSTM(_VariantLSTM):
    """The peephole LSTM over sequences (Gers & Schmidhuber 2000; module docstring).

    Example::

        >>> out, (h, c) = PeepholeLSTM(3, 4)(torch.randn(5, 2, 3), lengths=torch.tensor([5, 2]))
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 2, 4), (1, 2, 4))
    """

    kind = "peephole_lstm"


class LayerNormLSTM(_VariantLSTM):
    """The layer-normalised LSTM over sequences (Ba et al. 2016; module docstring).

    Example::

        >>> out, (h, c) = LayerNormLSTM(3, 4, bidirectional=True)(torch.randn(5, 2, 3))
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 2, 8), (2, 2, 4))
    """

    kind = "layer_norm_lstm"


class LayerNormGRU(_Variant):
    """The layer-normalised GRU over sequences (Ba et al. 2016; module docstring); ``hx`` is
    ``h_0`` (D, N, H) and the result ``(output, h_n)``, as ``torch.nn.GRU``.

    Example::

        >>> out, h = LayerNormGRU(3, 4, bidirectional=True)(torch.randn(5, 2, 3))
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 2, 8), (2, 2, 4))
    """

    kind = "layer_norm_gru"

    def forward(self, input: Tensor, hx: Tensor | None = None, *,
                lengths: Tensor | None = None, mask: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._run(input, None if hx is None else (hx,), lengths, mask)
        return output, h_n


class PeepholeLSTMCell(_VariantLSTMCell):
    """One peephole LSTM step; ``hx = (h, c)`` and so is the result."""

    kind = "peephole_lstm"


class LayerNormLSTMCell(_VariantLSTMCell):
    """One layer-normalised LSTM step; ``hx = (h, c)`` and so is the result."""

    kind = "layer_norm_lstm"


class LayerNormGRUCell(_VariantCell):
    """One layer-normalised GRU step; ``hx`` is h (N, H) and the result h'."""

    kind = "layer_norm_gru"

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        (h,) = self._step(input, None if hx is None else (hx,))
        return h
