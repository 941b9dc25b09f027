"""Keras' ``pad_sequences`` and ``to_categorical``, with Keras 3's semantics and clearer errors.

Both follow ``keras.utils`` argument for argument and give the same arrays on every input Keras
accepts. Where Keras fails with an unrelated NumPy error or silently does something odd, these
raise an error that says what is wrong; the few such places are listed in each docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._checks import check_int

__all__ = ["pad_sequences", "to_categorical"]

_SIDES = ("pre", "post")


def pad_sequences(
    sequences: Sequence[Any],
    maxlen: int | None = None,
    dtype: DTypeLike = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> NDArray[Any]:
    """Pad (and truncate) a list of sequences into one array of shape (N, maxlen, ...).

    ``sequences`` holds N sequences of different lengths. Each sequence's elements are scalars
    or arrays of one common shape S (feature vectors, say), so the output is (N, maxlen) + S.
    ``maxlen`` defaults to the longest sequence. Shorter sequences are filled with ``value``
    before (``padding="pre"``, the default) or after (``"post"``) their elements; longer ones
    lose their first (``truncating="pre"``, the default) or last (``"post"``) elements.

    The output array has ``dtype`` (default int32, as in Keras: pass ``"float32"`` for real
    values). For strings use ``dtype=object`` (any length) or a NumPy string dtype such as
    ``"<U8"`` (which cuts strings to 8 characters, as NumPy does); a string ``value`` with a
    numeric dtype is an error. Empty sequences come out as all ``value``.

    >>> pad_sequences([[1], [2, 3], [4, 5, 6]])
    array([[0, 0, 1],
           [0, 2, 3],
           [4, 5, 6]], dtype=int32)
    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2, padding="post", truncating="post")
    array([[1, 0],
           [2, 3],
           [4, 5]], dtype=int32)

    Same results as ``keras.utils.pad_sequences``. Beyond Keras: bad ``padding``/``truncating``
    values are refused even when nothing needs padding; ``maxlen=0`` gives an (N, 0) array and
    an empty ``sequences`` with ``maxlen=None`` a (0, 0) one (Keras fails on both); ``dtype``
    may also be the string ``"object"``; a sequence whose own elements differ in shape gets an
    error naming its position.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError(
            f"`sequences` must be a sized iterable such as a list, got {type(sequences).__name__}"
        )
    if padding not in _SIDES:
        raise ValueError(f'Padding type "{padding}" not understood: use "pre" or "post"')
    if truncating not in _SIDES:
        raise ValueError(f'Truncating type "{truncating}" not understood: use "pre" or "post"')
    dtype = np.dtype(dtype)
    if isinstance(value, str) and dtype.kind not in "OUS":
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
            "You should set `dtype=object` for variable length strings."
        )

    lengths = []
    sample_shape: tuple[int, ...] = ()
    found_sample = False
    for idx, seq in enumerate(sequences):
        try:
            lengths.append(len(seq))
        except TypeError as e:
            raise ValueError(
                f"`sequences` must be a list of iterables. Found non-iterable: {seq!s}"
            ) from e
        if not found_sample and len(seq):
            # The element shape comes from the first non-empty sequence, as in Keras.
            sample_shape = _as_array(seq, None, idx).shape[1:]
            found_sample = True

    if maxlen is None:
        maxlen = max(lengths, default=0)
    maxlen = check_int("maxlen", maxlen, 0)

    out = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    for idx, seq in enumerate(sequences):
        # s[len(s) - maxlen:] rather than Keras' s[-maxlen:], which keeps everything at maxlen=0.
        kept = seq[max(len(seq) - maxlen, 0) :] if truncating == "pre" else seq[:maxlen]
        if not len(kept):
            continue
        kept = _as_array(kept, dtype, idx)
        if kept.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {kept.shape[1:]} of sequence at position {idx} "
                f"is different from expected shape {sample_shape}"
            )
        if padding == "post":
            out[idx, : len(kept)] = kept
        else:
            out[idx, maxlen - len(kept) :] = kept
    return out


def _as_array(seq: Any, dtype: np.dtype[Any] | None, idx: int) -> NDArray[Any]:
    try:
        return np.asarray(seq, dtype=dtype)
    except ValueError as e:
        if "inhomogeneous" not in str(e):
            raise
        raise ValueError(
            f"The elements of the sequence at position {idx} differ in shape: every element of a "
            "sequence must be a scalar or an array of one common shape"
        ) from e


def to_categorical(
    y: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = "float32"
) -> NDArray[Any]:
    """One-hot encode integer class labels: shape (...) -> (..., num_classes).

    ``out[..., k]`` is 1 where ``y == k`` and 0 elsewhere. A trailing axis of size 1 is dropped
    first when ``y`` has two or more axes, so labels of shape (N, 1) give (N, num_classes), as
    do labels of shape (N,). ``num_classes`` defaults to ``max(y) + 1``.

    >>> to_categorical([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)

    Same arrays as ``keras.utils.to_categorical`` (Keras 3 returns float64 and has no ``dtype``
    argument; Keras 2 had ``dtype="float32"``, kept here). Beyond Keras, these are errors rather
    than silent results: negative labels (NumPy's negative indexing would set the last class),
    labels >= ``num_classes``, non-integer labels such as 0.5 (Keras truncates them),
    ``num_classes`` < 1 (Keras treats 0 as "infer") and inferring from an empty ``y``.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"to_categorical expects integer class labels, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ValueError(
                f"to_categorical expects integer class labels, got {y[bad].flat[0].item()!r}"
            )
    labels = y.astype(np.int64)

    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = labels.reshape(-1)

    if labels.size and labels.min() < 0:
        raise ValueError(f"class labels must be >= 0, got {labels.min()}")
    if num_classes is None:
        if not labels.size:
            raise ValueError("cannot infer num_classes from an empty y: pass num_classes")
        num_classes = int(labels.max()) + 1
    num_classes = check_int("num_classes", num_classes, 1)
    if labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"class label {labels.max()} is out of range for num_classes={num_classes} "
            f"(labels must lie in [0, {num_classes - 1}])"
        )

    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out.reshape(shape + (num_classes,))
