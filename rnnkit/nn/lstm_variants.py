r"""Peephole and layer-normalised LSTMs in ``torch.nn``'s style: :class:`PeepholeLSTM`,
:class:`LayerNormLSTM` (sequences) and :class:`PeepholeLSTMCell`, :class:`LayerNormLSTMCell`
(one step). The equations and the published formulations they follow are in
:mod:`rnnkit._kernels.lstm_variants`. Composite: the input side runs once for all steps, the
recurrent step in the autograd loop (:func:`rnnkit._kernels.scan`); no C++ loop yet.

Parameters are ``torch.nn.LSTM``'s (``weight_ih_l0`` (4H, H_in), ``weight_hh_l0`` (4H, H),
``bias_ih_l0``, ``bias_hh_l0``, gates ``i, f, g, o``; ``_reverse`` for the backward
direction) plus, for the peephole LSTM, ``weight_ci_l0``, ``weight_cf_l0``, ``weight_co_l0``
(H,) (initialised to zero, so a fresh module is a plain LSTM), and for the layer-normalised
LSTM ``ln_ih_weight_l0``/``ln_ih_bias_l0`` and ``ln_hh_weight_l0``/``ln_hh_bias_l0`` (4H,),
``ln_c_weight_l0``/``ln_c_bias_l0`` (H,) (ones and zeros). The cells hold the same names
without the ``_l0`` suffix.

Shapes as ``torch.nn.LSTM`` (one layer): input (L, N, H_in) (``batch_first``: (N, L, H_in));
``hx = (h_0, c_0)`` each (D, N, H) with D = 2 if ``bidirectional``; returns ``output`` (L, N,
D*H), zero past each sequence's end, and ``(h_n, c_n)``. ``lengths`` (N,) or ``mask`` (N, L).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._kernels import scan
from .._kernels.lstm_variants import LN_EPS, layer_norm_lstm_step, peephole_lstm_step
from ._checks import ShapeError, check_input, step_mask as _step_mask

__all__ = ["LayerNormLSTM", "LayerNormLSTMCell", "PeepholeLSTM", "PeepholeLSTMCell"]


def _extra(kind: str, H: int) -> dict[str, tuple[int, float]]:
    """The variant's own parameters: name -> (size, initial value)."""
    if kind == "peephole":
        return {"weight_ci": (H, 0.0), "weight_cf": (H, 0.0), "weight_co": (H, 0.0)}
    return {"ln_ih_weight": (4 * H, 1.0), "ln_ih_bias": (4 * H, 0.0),
            "ln_hh_weight": (4 * H, 1.0), "ln_hh_bias": (4 * H, 0.0),
            "ln_c_weight": (H, 1.0), "ln_c_bias": (H, 0.0)}


def _input_side(kind: str, x: Tensor, p: dict[str, Tensor | None]) -> Tensor:
    """What reads x only, for all steps at once: (..., 4H)."""
    if kind == "peephole":
        return F.linear(x, p["weight_ih"], p["bias_ih"])
    H4 = p["weight_ih"].shape[0]  # type: ignore[union-attr]
    return F.layer_norm(F.linear(x, p["weight_ih"]), (H4,), p["ln_ih_weight"], p["ln_ih_bias"],
                        eps=LN_EPS)



def _step(kind: str, gi: Tensor, h: Tensor, c: Tensor,
          p: dict[str, Tensor | None]) -> tuple[Tensor, Tensor]:
    if kind == "peephole":
        return peephole_lstm_step(gi, h, c, p["weight_hh"], p["bias_hh"],  # type: ignore[arg-type]
                                  p["weight_ci"], p["weight_cf"], p["weight_co"])  # type: ignore[arg-type]
    bias = None
    if p["bias_ih"] is not None:
        bias = p["bias_ih"] + p["bias_hh"]  # type: ignore[operator]
    return layer_norm_lstm_step(gi, h, c, p["weight_hh"], bias,  # type: ignore[arg-type]
                                (p["ln_hh_weight"], p["ln_hh_bias"]),  # type: ignore[arg-type]
                                (p["ln_c_weight"], p["ln_c_bias"]))  # type: ignore[arg-type]


def _init(module: torch.nn.Module, kind: str, H: int, suffixes: list[str]) -> None:
    bound = 1.0 / math.sqrt(H)
    extra = _extra(kind, H)
    for name, param in module.named_parameters():
        base = name
        for suffix in suffixes:
            if suffix and base.endswith(suffix):
                base = base[: -len(suffix)]
        if base in extra:
            torch.nn.init.constant_(param, extra[base][1])
        else:
            torch.nn.init.uniform_(param, -bound, bound)


class _VariantLSTM(torch.nn.Module):
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
        H = hidden_size
        self._suffixes = ["_l0", "_l0_reverse"][: 2 if bidirectional else 1]
        for suffix in self._suffixes:
            shapes: dict[str, tuple[int, ...] | None] = {
                "weight_ih": (4 * H, input_size), "weight_hh": (4 * H, H),
                "bias_ih": (4 * H,) if bias else None, "bias_hh": (4 * H,) if bias else None}
            shapes.update({n: (size,) for n, (size, _) in _extra(self.kind, H).items()})
            for n, shape in shapes.items():
                self.register_parameter(n + suffix, None if shape is None else
                                        torch.nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init(self, self.kind, self.hidden_size, self._suffixes)

    def _params(self, suffix: str) -> dict[str, Tensor | None]:
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", *_extra(self.kind, 1)]
        return {n: getattr(self, n + suffix) for n in names}

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None, *,
                lengths: Tensor | None = None, mask: Tensor | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.dim() != 3:
            raise ShapeError(f"{name}: expected a 3-D input, got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, D)
        check_input(x, self.input_size, self.weight_ih_l0.dtype, name)
        steps, batch = x.shape[:2]
        directions = len(self._suffixes)
        expected = (directions, batch, self.hidden_size)
        if hx is not None and any(tuple(s.shape) != expected for s in hx):
            raise ShapeError(f"{name}: h_0 and c_0 must have shape {expected}, got "
                             f"{[tuple(s.shape) for s in hx]}")
        step_mask = _step_mask(lengths, mask, batch, steps, x.device, name)  # (T, B)
        outputs, h_n, c_n = [], [], []
        for d, suffix in enumerate(self._suffixes):
            p = self._params(suffix)
            gi = _input_side(self.kind, x, p)  # (T, B, 4H), all steps at once
            zeros = x.new_zeros(batch, self.hidden_size)
            state = (zeros, zeros) if hx is None else (hx[0][d], hx[1][d])
            out, (h, c) = scan(lambda g, s, p=p: _step(self.kind, g, s[0], s[1], p), gi, state,
                               step_mask, reverse=d == 1)
            outputs.append(out)
            h_n.append(h)
            c_n.append(c)
        output = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
        if step_mask is not None:
            output = output * step_mask.unsqueeze(-1).to(output.dtype)
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, (torch.stack(h_n), torch.stack(c_n))

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        for flag, default in (("bias", True), ("batch_first", False), ("bidirectional", False)):
            if getattr(self, flag) != default:
                text += f", {flag}={getattr(self, flag)}"
        return text


class _VariantCell(torch.nn.Module):
    kind: str

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        factory = {"device": device, "dtype": dtype}
        H = hidden_size
        shapes: dict[str, tuple[int, ...] | None] = {
            "weight_ih": (4 * H, input_size), "weight_hh": (4 * H, H),
            "bias_ih": (4 * H,) if bias else None, "bias_hh": (4 * H,) if bias else None}
        shapes.update({n: (size,) for n, (size, _) in _extra(self.kind, H).items()})
        for n, shape in shapes.items():
            self.register_parameter(n, None if shape is None else
                                    torch.nn.Parameter(torch.empty(shape, **factory)))
        _init(self, self.kind, H, [""])

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor]:
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.dim() != 2 or input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input (N, {self.input_size}), got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
        if hx is None:
            zeros = input.new_zeros(input.shape[0], self.hidden_size)
            hx = (zeros, zeros)
        p = {n: getattr(self, n) for n in
             ["weight_ih", "weight_hh", "bias_ih", "bias_hh", *_extra(self.kind, 1)]}
        return _step(self.kind, _input_side(self.kind, input, p), hx[0], hx[1], p)


class PeepholeLSTM(_VariantLSTM):
    """The peephole LSTM over sequences (Gers & Schmidhuber 2000; module docstring).

    Example::

        >>> out, (h, c) = PeepholeLSTM(3, 4)(torch.randn(5, 2, 3), lengths=torch.tensor([5, 2]))
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 2, 4), (1, 2, 4))
    """

    kind = "peephole"


class LayerNormLSTM(_VariantLSTM):
    """The layer-normalised LSTM over sequences (Ba et al. 2016; module docstring).

    Example::

        >>> out, (h, c) = LayerNormLSTM(3, 4, bidirectional=True)(torch.randn(5, 2, 3))
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 2, 8), (2, 2, 4))
    """

    kind = "layernorm"


class PeepholeLSTMCell(_VariantCell):
    """One peephole LSTM step; ``hx = (h, c)`` and so is the result."""

    kind = "peephole"


class LayerNormLSTMCell(_VariantCell):
    """One layer-normalised LSTM step; ``hx = (h, c)`` and so is the result."""

    kind = "layernorm"
