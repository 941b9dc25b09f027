"""Keras' dropout for recurrent cells: one mask per call, the same at every time step."""

from __future__ import annotations

import torch
from torch import Tensor


class DropoutRNNCell:
    """Keras' dropout for cells: one mask per call, the same for every time step.

    The layer asks for the masks before the loop (only when ``training``) and clears them after,
    so a mask is drawn once per call. Values are 0 or 1 / (1 - rate), as Keras' dropout.
    A cell with ``dropout_mask_count = n`` gets n independent masks (one per gate), as Keras'
    GRU/LSTM do when ``recurrent_dropout`` is used.
    """

    dropout: float
    recurrent_dropout: float
    seed: int | None
    dropout_mask_count: int | None = None

    def _draw_masks(self, like: Tensor, rate: float) -> Tensor | list[Tensor]:
        generators = self.__dict__.setdefault("_dropout_generators", {})
        generator = None
        if self.seed is not None:
            if like.device not in generators:
                generators[like.device] = torch.Generator(like.device).manual_seed(self.seed)
            generator = generators[like.device]

        def one() -> Tensor:
            noise = torch.rand(like.shape, generator=generator, device=like.device)
            return (noise >= rate).to(like.dtype) / (1.0 - rate)

        if self.dropout_mask_count is None:
            return one()
        return [one() for _ in range(self.dropout_mask_count)]

    def get_dropout_mask(self, step_input: Tensor) -> Tensor | list[Tensor] | None:
        if self.__dict__.get("_dropout_mask") is None and self.dropout > 0:
            self.__dict__["_dropout_mask"] = self._draw_masks(step_input, self.dropout)
        return self.__dict__.get("_dropout_mask")

    def get_recurrent_dropout_mask(self, state: Tensor) -> Tensor | list[Tensor] | None:
        if self.__dict__.get("_recurrent_dropout_mask") is None and self.recurrent_dropout > 0:
            masks = self._draw_masks(state, self.recurrent_dropout)
            self.__dict__["_recurrent_dropout_mask"] = masks
        return self.__dict__.get("_recurrent_dropout_mask")

    def reset_dropout_mask(self) -> None:
        self.__dict__["_dropout_mask"] = None

    def reset_recurrent_dropout_mask(self) -> None:
        self.__dict__["_recurrent_dropout_mask"] = None
