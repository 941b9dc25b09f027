"""Checking and batching the arrays given to ``fit``/``evaluate``/``predict``.

Every problem is a ``ValueError`` (``TypeError`` for a wrong kind of object) that names the
argument and what is wrong with it, before any training step runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor


def to_data_tensor(value: Any, what: str) -> Tensor:
    """NumPy arrays, nested lists or tensors to a tensor with a batch axis.

    Floating NumPy/list data becomes float32 (Keras' floatx); integers stay integers (token ids
    for an Embedding, class labels); tensors keep their dtype.
    """
    if isinstance(value, Tensor):
        tensor = value.detach()
    else:
        if isinstance(value, (str, bytes, dict)):
            raise TypeError(f"{what} must be a NumPy array, a tensor or a nested list of numbers, "
                            f"got {type(value).__name__}")
        try:
            array = np.asarray(value)
        except ValueError as error:
            raise ValueError(
                f"{what} could not be made into one array ({error}). Sequences of different "
                "lengths must be padded first, e.g. with rnnkit.utils.pad_sequences."
            ) from None
        if array.dtype == object or array.dtype.kind in "USV":
            raise TypeError(
                f"{what} must hold numbers, got an array of dtype {array.dtype}"
                + (" (ragged sequences? pad them first)" if array.dtype == object else "")
            )
        tensor = torch.as_tensor(array)
        if tensor.is_floating_point():
            tensor = tensor.to(torch.get_default_dtype())
    if tensor.dim() == 0:
        raise ValueError(f"{what} must have a batch axis (samples first), got a scalar")
    if tensor.is_complex():
        raise TypeError(f"{what} must be real-valued, got dtype {tensor.dtype}")
    return tensor


def check_not_empty(tensor: Tensor, what: str) -> None:
    if tensor.shape[0] == 0:
        raise ValueError(f"{what} is empty: it has 0 samples (shape {tuple(tensor.shape)})")
    if tensor.numel() == 0:
        raise ValueError(f"{what} has no values: shape {tuple(tensor.shape)}")


def check_finite(tensor: Tensor, what: str) -> None:
    if not tensor.is_floating_point():
        return
    finite = torch.isfinite(tensor)
    if bool(finite.all()):
        return
    bad = (~finite).nonzero()
    first = tuple(int(i) for i in bad[0])
    kinds = []
    if bool(torch.isnan(tensor).any()):
        kinds.append("NaN")
    if bool(torch.isinf(tensor).any()):
        kinds.append("inf")
    raise ValueError(
        f"{what} contains {bad.shape[0]} non-finite value(s) ({' and '.join(kinds)}), the first "
        f"at index {first}; clean or impute the data before training"
    )


def check_same_samples(first: Tensor, second: Tensor, what_first: str, what_second: str) -> None:
    if first.shape[0] != second.shape[0]:
        raise ValueError(
            f"{what_first} has {first.shape[0]} samples but {what_second} has "
            f"{second.shape[0]}; they must have the same number of samples (first axis)"
        )


def check_sample_weight(weight: Tensor, samples: int, what: str) -> Tensor:
    if weight.dim() != 1 or weight.shape[0] != samples:
        raise ValueError(f"{what} must have shape ({samples},) (one weight per sample), got "
                         f"{tuple(weight.shape)}")
    weight = weight.to(torch.get_default_dtype())
    check_finite(weight, what)
    if bool((weight < 0).any()):
        raise ValueError(f"{what} must be non-negative")
    return weight


def check_batch_size(batch_size: Any) -> int:
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
        batch_size <= 0
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_verbose(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool):
        return int(verbose)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def check_validation_split(validation_split: Any) -> float:
    if isinstance(validation_split, bool) or not isinstance(
        validation_split, (int, float, np.floating)
    ) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be a float in [0, 1), got {validation_split!r}")
    return float(validation_split)


def train_validation_split(
    arrays: tuple[Tensor | None, ...], validation_split: float
) -> tuple[tuple[Tensor | None, ...], tuple[Tensor | None, ...]]:
    """Keras' split: the LAST ``validation_split`` fraction (taken before any shuffling) is the
    validation set; ``floor(n * (1 - validation_split))`` samples remain for training."""
    check_validation_split(validation_split)
    samples = next(a for a in arrays if a is not None).shape[0]
    split_at = int(math.floor(samples * (1.0 - validation_split)))
    if split_at == 0 or split_at == samples:
        raise ValueError(
            f"Training data contains {samples} samples, which is not sufficient to split it into "
            f"a validation and training set as specified by validation_split={validation_split}"
        )
    train = tuple(None if a is None else a[:split_at] for a in arrays)
    val = tuple(None if a is None else a[split_at:] for a in arrays)
    return train, val


def batch_indices(samples: int, batch_size: int, shuffle: bool,
                  share: Callable[[Tensor], Tensor] | None = None) -> Iterator[Tensor]:
    """Index tensors of consecutive batches (the last may be smaller); a fresh permutation from
    torch's global generator when ``shuffle``, so ``torch.manual_seed`` fixes the order.

    ``share`` hands the permutation to the other processes of a distributed fit and returns the
    one every process uses (rank 0's), so all ranks cut the same global batches.
    """
    order = torch.randperm(samples) if shuffle else torch.arange(samples)
    if share is not None and shuffle:
        order = share(order)
    for start in range(0, samples, batch_size):
        yield order[start:start + batch_size]


def num_batches(samples: int, batch_size: int) -> int:
    return (samples + batch_size - 1) // batch_size


# -- batch sources: DataLoader, Dataset, generator, Sequence ----------------------------------------
def is_batch_source(value: Any) -> bool:
    """True for data that comes in batches, as Keras 3 takes them: a ``torch.utils.data``
    ``DataLoader`` or ``Dataset``, a generator or other iterator, or a ``Sequence``-like object
    (``__len__`` batches, ``__getitem__(i)`` the i-th batch, as Keras' ``PyDataset``)."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(value, (Tensor, np.ndarray, list, tuple, dict, str, bytes)) or value is None:
        return False
    if isinstance(value, (DataLoader, Dataset, Iterator)):
        return True
    if hasattr(value, "__array__") or hasattr(value, "__array_interface__"):
        return False  # array-likes are arrays
    return hasattr(value, "__getitem__") and hasattr(value, "__len__")


class BatchSource:
    """Batches from a DataLoader, a Dataset (batched here by ``batch_size``, shuffled each
    epoch with torch's global generator when ``shuffle``), an iterator (one stream across all
    epochs: each epoch takes ``steps`` batches, or what is left) or a Sequence (its batches in
    order, or shuffled, then its ``on_epoch_end()``). Each batch is ``x``, ``(x,)``, ``(x, y)``
    or ``(x, y, sample_weight)``."""

    def __init__(self, data: Any, what: str, batch_size: Any, shuffle: bool,
                 steps: int | None) -> None:
        from torch.utils.data import DataLoader, Dataset, IterableDataset

        self.what = what
        self.data = data
        self.shuffle = shuffle
        if steps is not None and (isinstance(steps, bool) or not isinstance(
                steps, (int, np.integer)) or steps <= 0):
            raise ValueError(f"steps must be a positive integer or None, got {steps!r}")
        self.max_steps = None if steps is None else int(steps)
        if isinstance(data, Dataset) and not isinstance(data, DataLoader):
            self.kind = "loader"
            self.data = DataLoader(data, batch_size=check_batch_size(batch_size),
                                   shuffle=shuffle and not isinstance(data, IterableDataset))
        else:
            if batch_size is not None:
                raise ValueError(
                    f"batch_size must not be given when {what} is a {type(data).__name__}: it "
                    "yields whole batches (set the batch size where they are made)")
            self.kind = ("loader" if isinstance(data, DataLoader) else
                         "iterator" if isinstance(data, Iterator) else "sequence")
        self._exhausted = False

    @property
    def steps(self) -> int | None:
        """Batches per epoch, when known."""
        length = None
        if self.kind != "iterator":
            try:
                length = len(self.data)
            except TypeError:  # an IterableDataset without __len__
                length = None
        if self.max_steps is None:
            return length
        return self.max_steps if length is None else min(length, self.max_steps)

    def epoch(self) -> Iterator[Any]:
        """The raw batches of one epoch."""
        if self.kind == "iterator":
            stream: Any = self.data
        elif self.kind == "loader":
            stream = iter(self.data)
        else:
            count = len(self.data)
            order = torch.randperm(count).tolist() if self.shuffle else range(count)
            stream = (self.data[i] for i in order)
        for step, batch in enumerate(stream):
            yield batch
            if self.max_steps is not None and step + 1 >= self.max_steps:
                break
        if self.kind == "sequence" and hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()


def unpack_batch(batch: Any, what: str) -> tuple[Any, Any, Any]:
    """``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` to ``(x, y, sample_weight)``."""
    if isinstance(batch, (tuple, list)):
        if not 1 <= len(batch) <= 3:
            raise ValueError(f"each batch of {what} must be x, (x, y) or (x, y, sample_weight), "
                             f"got a {type(batch).__name__} of length {len(batch)}")
        return (*batch, *[None] * (3 - len(batch)))  # type: ignore[return-value]
    if isinstance(batch, dict):
        raise TypeError(f"the batches of {what} are dicts; give x, (x, y) or "
                        "(x, y, sample_weight) tuples")
    return batch, None, None
