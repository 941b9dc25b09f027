"""Keras' ``keras.preprocessing`` names: ``from rnnkit.preprocessing.sequence import
pad_sequences``, as code written for ``tensorflow.keras.preprocessing.sequence`` imports it.

The functions are :mod:`rnnkit.data`'s (NumPy only); this package only gives them Keras' path.
"""

from __future__ import annotations

from . import sequence

__all__ = ["sequence"]
