"""``keras.preprocessing.sequence``: :func:`rnnkit.data.pad_sequences` under Keras' path."""

from __future__ import annotations

from ..data import pad_sequences

__all__ = ["pad_sequences"]
