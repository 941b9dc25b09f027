"""What Keras users reach for in ``keras.utils``: ``from rnnkit.utils import pad_sequences``.

These are the same objects as in ``rnnkit.data``, which holds the rest of the data helpers.
"""

from __future__ import annotations

from .data import Vocabulary, make_windows, pad_sequences, to_categorical

__all__ = ["Vocabulary", "make_windows", "pad_sequences", "to_categorical"]
