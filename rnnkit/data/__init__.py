"""Data helpers for recurrent models: padding, vocabularies, windows, scaling, datasets.

NumPy in, NumPy out, and no torch: everything here feeds ``rnnkit`` models or plain PyTorch.

- ``pad_sequences``, ``to_categorical``: Keras' functions, same semantics.
- ``Vocabulary``: character- or word-level token ids with a pad (and optional OOV) token.
- ``make_windows``, ``chronological_split``, ``StandardScaler``: forecasting inputs, with the
  window/target alignment spelled out and the scaler fitted on the training split only.
- ``load_co2``, ``load_sunspots``, ``load_digits_sequences``, ``load_text_corpus``: datasets
  read from installed packages (statsmodels, scikit-learn, the standard library), offline.
- ``adding_problem``, ``copy_task``, ``sine_wave``, ``seasonal_series``: seeded synthetic tasks.
- ``date_pairs``: a generated parallel corpus (dates in many formats and languages -> ISO).
"""

from __future__ import annotations

from ._datasets import (
    TimeSeries,
    load_co2,
    load_digits_sequences,
    load_sunspots,
    load_text_corpus,
)
from ._dates import date_pairs
from ._scaling import StandardScaler
from ._sequence import pad_sequences, to_categorical
from ._synthetic import adding_problem, copy_task, seasonal_series, sine_wave
from ._vocab import Vocabulary
from ._windows import chronological_split, make_windows

__all__ = [
    "StandardScaler",
    "TimeSeries",
    "Vocabulary",
    "adding_problem",
    "chronological_split",
    "copy_task",
    "date_pairs",
    "load_co2",
    "load_digits_sequences",
    "load_sunspots",
    "load_text_corpus",
    "make_windows",
    "pad_sequences",
    "seasonal_series",
    "sine_wave",
    "to_categorical",
]
