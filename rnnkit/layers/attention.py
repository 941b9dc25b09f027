"""``Attention`` (Luong, dot-product) and ``AdditiveAttention`` (Bahdanau), as Keras 3 computes
them, for encoder-decoder models.

Called on ``[query, value]`` or ``[query, value, key]`` (key defaults to value), with query
(B, Tq, D), value (B, Tv, Dv), key (B, Tv, D)::

    Attention:          scores[b, i, j] = s * <q_i, k_j>                  (use_scale: s learnt, 1 at start)
                        score_mode="concat": c * sum(tanh(s * (q_i + k_j)))
    AdditiveAttention:  scores[b, i, j] = sum_d w_d * tanh(q_id + k_jd)   (use_scale: w learnt, glorot)
    scores[b, i, j] -= 1e9 where value_mask[b, j] is False (and j > i with use_causal_mask)
    weights = softmax(scores, axis=-1)                                  (B, Tq, Tv)
    output  = weights @ value, zeroed where query_mask is False          (B, Tq, Dv)

``mask=[query_mask, value_mask]`` ((B, Tq), (B, Tv) booleans) is filled in a functional model
from the inputs' masks; the output keeps the query's mask. ``return_attention_scores=True``
returns ``(output, weights)``. ``dropout`` drops attention weights in training.

Example::

    >>> import torch
    >>> from rnnkit.layers import Attention
    >>> q, v = torch.ones(2, 3, 4), torch.ones(2, 5, 4)
    >>> out, w = Attention()([q, v], return_attention_scores=True)
    >>> tuple(out.shape), tuple(w.shape)
    ((2, 3, 4), (2, 3, 5))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import initializers
from ._base import Shape
from .merging import ListInputLayer


class Attention(ListInputLayer):
    """Dot-product (Luong) attention; see the module docstring.

    Args:
        use_scale: learn a scalar ``s`` multiplying the scores (created as 1).
        score_mode: ``"dot"`` (default) or ``"concat"``.
        dropout: rate of dropout on the attention weights during training.
        seed: accepted for Keras compatibility (torch's generator draws the dropout).
    """

    supports_masking = True

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"Invalid value for argument score_mode. Expected one of "
                             f"{{'dot', 'concat'}}. Received: score_mode={score_mode}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.seed = seed
        self.scale: torch.nn.Parameter | None = None
        self.concat_score_weight: torch.nn.Parameter | None = None

    def _validate(self, shapes: list[Shape]) -> None:
        if len(shapes) not in (2, 3):
            raise ValueError(f"{type(self).__name__} layer '{self.name}' must be called on a "
                             f"list of 2 or 3 inputs [query, value(, key)]; got {len(shapes)}")
        if any(len(s) != 3 for s in shapes):
            raise ValueError(f"{type(self).__name__} layer '{self.name}' expects 3-D inputs "
                             f"(batch, time, features); got shapes {shapes}")
        query, value = shapes[0], shapes[1]
        key = shapes[2] if len(shapes) == 3 else value
        if query[-1] is not None and key[-1] is not None and query[-1] != key[-1]:
            raise ValueError(f"{type(self).__name__} layer '{self.name}': the query's last "
                             f"dimension ({query[-1]}) must equal the key's ({key[-1]}); got "
                             f"shapes {shapes}")
        if key[1] is not None and value[1] is not None and key[1] != value[1]:
            raise ValueError(f"{type(self).__name__} layer '{self.name}': key and value must "
                             f"have the same number of steps; got shapes {shapes}")

    def build(self, input_shape: Any) -> None:
        self._validate([tuple(s) for s in input_shape])
        dtype = torch.get_default_dtype()
        if self.use_scale:
            self.scale = torch.nn.Parameter(torch.ones((), dtype=dtype))
        if self.score_mode == "concat":
            self.concat_score_weight = torch.nn.Parameter(torch.ones((), dtype=dtype))
        super().build(input_shape)

    def _scores(self, query: Tensor, key: Tensor) -> Tensor:
        if self.score_mode == "dot":
            scores = query @ key.transpose(-2, -1)  # (B, Tq, Tv)
            return scores * self.scale if self.scale is not None else scores
        summed = query.unsqueeze(-2) + key.unsqueeze(-3)  # (B, Tq, Tv, D)
        if self.scale is not None:
            summed = self.scale * summed
        assert self.concat_score_weight is not None
        return self.concat_score_weight * torch.tanh(summed).sum(-1)

    def call(self, inputs: list[Tensor], mask: Any = None, training: bool = False,
             return_attention_scores: bool = False,
             use_causal_mask: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        self._validate([tuple(t.shape) for t in inputs])
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) > 2 else value
        query_mask = mask[0] if mask else None
        value_mask = mask[1] if mask and len(mask) > 1 else None
        scores = self._scores(query, key)
        keep = None if value_mask is None else value_mask.bool().unsqueeze(-2)  # (B, 1, Tv)
        if use_causal_mask:
            steps_q, steps_v = scores.shape[-2], scores.shape[-1]
            causal = torch.ones(steps_q, steps_v, dtype=torch.bool,
                                device=scores.device).tril().unsqueeze(0)
            keep = causal if keep is None else keep & causal
        if keep is not None:
            big = 65504.0 if scores.dtype == torch.float16 else 1.0e9
            scores = torch.where(keep, scores, scores - big)
        weights = torch.softmax(scores, dim=-1)
        if training and self.dropout > 0:
            weights = torch.nn.functional.dropout(weights, self.dropout, training=True)
        output = weights @ value
        if query_mask is not None:
            output = torch.where(query_mask.bool().unsqueeze(-1), output,
                                 torch.zeros((), dtype=output.dtype, device=output.device))
        if return_attention_scores:
            return output, weights
        return output

    def compute_output_shape(self, input_shape: Any) -> Shape:
        query, value = tuple(input_shape[0]), tuple(input_shape[1])
        return (*query[:-1], value[-1])

    def compute_mask(self, inputs: Any, mask: Any = None) -> Tensor | None:
        if mask is None or not isinstance(mask, (list, tuple)) or mask[0] is None:
            return None
        return mask[0]

    def keras_weights(self) -> list[torch.nn.Parameter]:
        return [w for w in (self.scale, self.concat_score_weight) if w is not None]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention; ``use_scale`` (default True) learns one weight per
    feature, created with Glorot's uniform initializer as in Keras."""

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, **kwargs: Any) -> None:
        kwargs.pop("score_mode", None)
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape: Any) -> None:
        shapes = [tuple(s) for s in input_shape]
        self._validate(shapes)
        dim = shapes[0][-1]
        if self.use_scale:
            if dim is None:
                raise ValueError(f"AdditiveAttention '{self.name}' needs a known feature size")
            weight = initializers.get("glorot_uniform")((int(dim),), torch.get_default_dtype())
            self.scale = torch.nn.Parameter(weight)
        super(Attention, self).build(input_shape)

    def _scores(self, query: Tensor, key: Tensor) -> Tensor:
        summed = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))  # (B, Tq, Tv, D)
        if self.scale is not None:
            summed = self.scale * summed
        return summed.sum(-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("score_mode", None)
        return config


__all__ = ["Attention", "AdditiveAttention"]
