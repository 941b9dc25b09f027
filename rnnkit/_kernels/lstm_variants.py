"""Two LSTM variants and the layer-normalised GRU as PyTorch steps, in torch.nn's layout: LSTM
``w_ih`` (4H, D), ``w_hh`` (4H, H), gate blocks ``i, f, g, o``; GRU ``w_ih`` (3H, D), ``w_hh``
(3H, H), gate blocks ``r, z, n``; ``gi = x W_ih^T`` is formed for all steps at once by the
caller. The peephole and layer-normalised LSTMs also have operators with a C++ loop
(``rnnkit::peephole_lstm``, ``rnnkit::layer_norm_lstm``, their cells in :mod:`._cell_spec`,
``csrc/peephole.cpp``, ``csrc/layer_norm_lstm.cpp``), which :func:`variant_sequence` runs; the
layer-normalised GRU runs the composite sequence (its operator is composite-only).

Peephole LSTM (Gers & Schmidhuber 2000, "Recurrent nets that time and count"; placed as
TensorFlow's ``LSTMCell(use_peepholes=True)``, diagonal peephole weights ``p_i, p_f, p_o``
(H,), without TensorFlow's ``forget_bias``)::

    i = sigmoid(gi_i + h U_i + p_i * c + b_i)
    f = sigmoid(gi_f + h U_f + p_f * c + b_f)
    c' = f * c + i * tanh(gi_g + h U_g + b_g)
    o = sigmoid(gi_o + h U_o + p_o * c' + b_o)
    h' = o * tanh(c')

Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization", arXiv:1607.06450: the
LN-LSTM equations of its supplementary material, as used for "Teaching machines to read and
comprehend"): the input and recurrent projections normalised separately over all 4H
pre-activations, and the cell state before the output's tanh::

    [i, f, g, o] = LN(x W_ih^T; a_x, b_x) + LN(h W_hh^T; a_h, b_h) + b
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h' = sigmoid(o) * tanh(LN(c'; a_c, b_c))

with ``LN(v; a, b) = a * (v - mean(v)) / sqrt(var(v) + eps) + b`` over the last axis (biased
variance, eps = 1e-5, as ``torch.nn.LayerNorm``).

Layer-normalised GRU, the same family (Ba, Kiros & Hinton 2016, the LN-GRU of their
skip-thought and order-embedding experiments, as the authors' code ``lngru_layer`` in
github.com/ryankiros/layer-norm writes it): the input and recurrent projections normalised
separately, each in two groups, the gates ``r, z`` together (2H) and the candidate ``n`` alone
(H); the recurrent candidate is normalised before the reset gate multiplies it; the state itself
is not normalised. In torch.nn.GRU's placement of its two biases::

    [r, z] = sigmoid(LN(x W_ir,iz^T; a_x, b_x)  + b_ir,iz + LN(h W_hr,hz^T; a_h, b_h) + b_hr,hz)
    n  = tanh(LN(x W_in^T; a_xn, b_xn) + b_in + r * (LN(h W_hn^T; a_hn, b_hn) + b_hn))
    h' = (1 - z) * n + z * h

The gains and shifts of each side are one 3H vector (``[r, z]`` then ``n``). torch's two biases
come after the norm, where they add to its shifts. The authors' code also adds a bias to the
input projection before its norm (initialised to zero); that one is left out, so this is their
cell with it at zero. Without the norms, it is ``torch.nn.GRU``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .loop import scan

__all__ = ["LN_EPS", "VARIANTS", "Variant", "gate_layer_norm", "layer_norm_gru_step",
           "layer_norm_lstm_gates", "layer_norm_lstm_step", "parameter_shapes",
           "peephole_lstm_gates", "peephole_lstm_step", "variant_sequence"]

LN_EPS = 1e-5


def peephole_lstm_gates(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b: Tensor | None,
                        p_i: Tensor, p_f: Tensor, p_o: Tensor
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One peephole step from gi = x W_ih^T (B, 4H); returns (h', c', and the activated gates
    i, f, g, o (B, H) each, which the compiled backward pass keeps)."""
    gates = gi + F.linear(h, w_hh, b)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    i = torch.sigmoid(i + p_i * c)
    f = torch.sigmoid(f + p_f * c)
    g = torch.tanh(g)
    c_new = f * c + i * g
    o = torch.sigmoid(o + p_o * c_new)
    return o * torch.tanh(c_new), c_new, i, f, g, o


def peephole_lstm_step(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b: Tensor | None,
                       p_i: Tensor, p_f: Tensor, p_o: Tensor) -> tuple[Tensor, Tensor]:
    """One peephole step from gi = x W_ih^T (B, 4H); returns (h', c')."""
    h_new, c_new, _, _, _, _ = peephole_lstm_gates(gi, h, c, w_hh, b, p_i, p_f, p_o)
    return h_new, c_new


def layer_norm_lstm_gates(ni: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b: Tensor | None,
                          ln_h: tuple[Tensor, Tensor], ln_c: tuple[Tensor, Tensor],
                          eps: float = LN_EPS
                          ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One layer-normalised step from ni = LN(x W_ih^T; a_x, b_x) (B, 4H); returns (h', c',
    the activated gates i, f, g, o (B, H) each and h W_hh^T (B, 4H), which the compiled
    backward pass keeps). (``eps`` an argument: TorchScript, which the bench scripts this
    with, reads no globals.)"""
    H = c.shape[-1]
    hw = F.linear(h, w_hh)
    gates = ni + F.layer_norm(hw, (4 * H,), ln_h[0], ln_h[1], eps=eps)
    if b is not None:
        gates = gates + b
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    h_new = o * torch.tanh(F.layer_norm(c_new, (H,), ln_c[0], ln_c[1], eps=eps))
    return h_new, c_new, i, f, g, o, hw


def layer_norm_lstm_step(ni: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b: Tensor | None,
                         ln_h: tuple[Tensor, Tensor], ln_c: tuple[Tensor, Tensor],
                         eps: float = LN_EPS) -> tuple[Tensor, Tensor]:
    """One layer-normalised step from ni = LN(x W_ih^T; a_x, b_x) (B, 4H); returns (h', c')."""
    h_new, c_new, _, _, _, _, _ = layer_norm_lstm_gates(ni, h, c, w_hh, b, ln_h, ln_c, eps)
    return h_new, c_new


def gate_layer_norm(v: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """The GRU's grouped norm of a (..., 3H) projection: ``[r, z]`` (2H) and ``n`` (H) each
    normalised on its own, ``weight``/``bias`` (3H,) the gains and shifts of both."""
    H = v.shape[-1] // 3
    rz = F.layer_norm(v[..., :2 * H], (2 * H,), weight[:2 * H], bias[:2 * H], eps=LN_EPS)
    n = F.layer_norm(v[..., 2 * H:], (H,), weight[2 * H:], bias[2 * H:], eps=LN_EPS)
    return torch.cat([rz, n], dim=-1)


def layer_norm_gru_step(ni: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None,
                        ln_h: tuple[Tensor, Tensor]) -> Tensor:
    """One layer-normalised GRU step from ni = gate_layer_norm(x W_ih^T) + b_ih (B, 3H);
    returns h'."""
    gh = gate_layer_norm(F.linear(h, w_hh), *ln_h)  # (B, 3H)
    if b_hh is not None:
        gh = gh + b_hh
    ni_r, ni_z, ni_n = ni.chunk(3, dim=-1)
    gh_r, gh_z, gh_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(ni_r + gh_r)
    z = torch.sigmoid(ni_z + gh_z)
    n = torch.tanh(ni_n + r * gh_n)
    return (1 - z) * n + z * h


@dataclass(frozen=True)
class Variant:
    """What differs between the variants: gate blocks, states, own parameters, the input side
    (what reads x only, for all steps at once) and the recurrent step. Both read the
    parameters by their torch-style names (``weight_ih``, ``weight_hh``, ``bias_ih``,
    ``bias_hh`` (either bias may be None) and the :attr:`extra` names) in torch's layout."""

    gates: int  # the rows of W_ih / W_hh are gates * H
    states: int  # 2: (h, c); 1: h
    extra: Callable[[int], dict[str, tuple[int, float]]]  # H -> name: (size, initial value)
    input_side: Callable[[Tensor, dict[str, Any]], Tensor]  # (..., D) -> (..., gates * H)
    step: Callable[[Tensor, tuple[Tensor, ...], dict[str, Any]], tuple[Tensor, ...]]
    # a variant whose operator has a C++ loop (its cell in rnnkit._kernels._cell_spec): the
    # parameters passed as the operator's own weights; None: the composite sequence (a
    # composite-only operator would run the forward pass again in its backward)
    operator_weights: tuple[str, ...] | None = None


def _peephole_step(gi: Tensor, s: tuple[Tensor, ...], p: dict[str, Any]) -> tuple[Tensor, ...]:
    return peephole_lstm_step(gi, s[0], s[1], p["weight_hh"], p["bias_hh"], p["weight_ci"],
                              p["weight_cf"], p["weight_co"])


def _layer_norm_lstm_input(x: Tensor, p: dict[str, Any]) -> Tensor:
    H4 = p["weight_ih"].shape[0]
    return F.layer_norm(F.linear(x, p["weight_ih"]), (H4,), p["ln_ih_weight"], p["ln_ih_bias"],
                        eps=LN_EPS)


def _layer_norm_lstm_step(gi: Tensor, s: tuple[Tensor, ...],
                          p: dict[str, Any]) -> tuple[Tensor, ...]:
    given = [b for b in (p["bias_ih"], p["bias_hh"]) if b is not None]
    bias = sum(given[1:], given[0]) if given else None
    return layer_norm_lstm_step(gi, s[0], s[1], p["weight_hh"], bias,
                                (p["ln_hh_weight"], p["ln_hh_bias"]),
                                (p["ln_c_weight"], p["ln_c_bias"]))


def _layer_norm_gru_input(x: Tensor, p: dict[str, Any]) -> Tensor:
    ni = gate_layer_norm(F.linear(x, p["weight_ih"]), p["ln_ih_weight"], p["ln_ih_bias"])
    return ni if p["bias_ih"] is None else ni + p["bias_ih"]


def _layer_norm_gru_step(gi: Tensor, s: tuple[Tensor, ...],
                         p: dict[str, Any]) -> tuple[Tensor, ...]:
    return (layer_norm_gru_step(gi, s[0], p["weight_hh"], p["bias_hh"],
                                (p["ln_hh_weight"], p["ln_hh_bias"])),)


VARIANTS = {
    "peephole_lstm": Variant(
        4, 2, lambda H: {"weight_ci": (H, 0.0), "weight_cf": (H, 0.0), "weight_co": (H, 0.0)},
        lambda x, p: F.linear(x, p["weight_ih"], p["bias_ih"]), _peephole_step,
        operator_weights=("weight_ci", "weight_cf", "weight_co")),
    "layer_norm_lstm": Variant(
        4, 2, lambda H: {"ln_ih_weight": (4 * H, 1.0), "ln_ih_bias": (4 * H, 0.0),
                         "ln_hh_weight": (4 * H, 1.0), "ln_hh_bias": (4 * H, 0.0),
                         "ln_c_weight": (H, 1.0), "ln_c_bias": (H, 0.0)},
        _layer_norm_lstm_input, _layer_norm_lstm_step,
        operator_weights=("ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
                          "ln_c_weight", "ln_c_bias")),
    "layer_norm_gru": Variant(
        3, 1, lambda H: {"ln_ih_weight": (3 * H, 1.0), "ln_ih_bias": (3 * H, 0.0),
                         "ln_hh_weight": (3 * H, 1.0), "ln_hh_bias": (3 * H, 0.0)},
        _layer_norm_gru_input, _layer_norm_gru_step),
}


def parameter_shapes(kind: Variant, D: int, H: int,
                     bias: bool) -> dict[str, tuple[int, ...] | None]:
    """Every parameter's shape (None: absent) for input size D and hidden size H."""
    G = kind.gates * H
    shapes: dict[str, tuple[int, ...] | None] = {
        "weight_ih": (G, D), "weight_hh": (G, H),
        "bias_ih": (G,) if bias else None, "bias_hh": (G,) if bias else None}
    shapes.update({n: (size,) for n, (size, _) in kind.extra(H).items()})
    return shapes


def variant_sequence(kind: str, x: Tensor, p: dict[str, Any], state: tuple[Tensor, ...],
                     mask: Tensor | None = None, reverse: bool = False
                     ) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The variant ``kind`` (a key of :data:`VARIANTS`) over x (T, B, D) time-major: its
    operator where it has a C++ loop (:attr:`Variant.operator_weights`), else the input side
    once for all steps, then the step in the autograd loop. mask (T, B): held state where False. Returns
    (the first state after every step in time order (T, B, H), final states)."""
    variant = VARIANTS[kind]
    if variant.operator_weights is not None:  # the operator rnnkit::<kind>
        # imported here: the package imports this module first (through _cell_spec)
        from . import _recurrence

        out, *final = _recurrence(kind, "auto", x, state, p["weight_ih"], p["weight_hh"],
                                  p["bias_ih"], p["bias_hh"], mask, reverse, False,
                                  weights=tuple(p[n] for n in variant.operator_weights))
        return out, tuple(final)
    gi = variant.input_side(x, p)  # (T, B, G*H)
    return scan(lambda g, s: variant.step(g, s, p), gi, state, mask, reverse=reverse)
