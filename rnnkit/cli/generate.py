"""``rnnkit generate``: sample text from a character-level model trained by ``--task text``.

Sampling, one character at a time: feed the last ``window`` characters (the model's training
length) through ``model.predict``, take the logits ``z`` of the last step and draw the next
character from ``softmax(z / temperature)`` over the real characters (the pad id is never
drawn). A temperature below 1 sharpens the distribution (more conservative text), above 1
flattens it; 0 always takes the most likely character. ``--seed`` makes the draws repeatable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["sample_text"]


def sample_text(model: Any, vocabulary: Any, prime: str, length: int, temperature: float,
                window: int, seed: int | None = None) -> str:
    """``prime`` followed by ``length`` sampled characters.

    >>> sample_text(model, vocab, "def ", 20, 0.8, window=64, seed=0)   # doctest: +SKIP
    'def __init__(self, name'
    """
    if not prime:
        raise ValueError("--prime must not be empty: give the text to continue, e.g. --prime 'def '")
    unknown = sorted({c for c in prime if c not in vocabulary or c == vocabulary.pad_token})
    if unknown:
        raise ValueError(f"--prime has characters the model never saw in training: "
                         f"{''.join(unknown)!r}")
    if length < 0:
        raise ValueError(f"--length must be >= 0, got {length}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"--temperature must be a number >= 0, got {temperature}")
    rng = np.random.default_rng(seed)
    ids = list(vocabulary.encode(prime))
    for _ in range(length):
        context = np.asarray([ids[-window:]], dtype=np.int64)  # (1, <= window)
        logits = np.asarray(model.predict(context, verbose=0), dtype=np.float64)[0, -1]
        logits[vocabulary.pad_index] = -np.inf
        if temperature == 0:
            ids.append(int(np.argmax(logits)))
            continue
        z = logits / temperature
        p = np.exp(z - z.max())
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return vocabulary.decode(np.asarray(ids, dtype=np.int64))
