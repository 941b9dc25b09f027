"""Keras 3's ``BackupAndRestore``: resume an interrupted ``fit`` where it stopped, bit for bit.

At the end of every epoch the callback writes one file, ``<backup_dir>/backup.safetensors``,
holding everything the next epoch depends on:

    model/<name>       the model's ``state_dict`` (parameters and buffers)
    optimizer/<name>   the optimizer's state (Adam's moments, ...) and step count
    rng/torch          torch's CPU generator (``shuffle`` and ``Dropout`` draw from it)
    rng/cuda/<i>       each CUDA device's generator, when CUDA is in use
    rng/numpy          NumPy's global generator (with Python's ``random`` in the metadata)
    metadata "state"   JSON: epochs completed, the history so far, the learning rate

The file is written with rnnkit's one atomic writer (:mod:`rnnkit._io`: a temporary name,
fsync, renamed over the previous one), so a crash or Ctrl-C mid-write leaves the previous
epoch's backup intact.

When ``fit`` starts (``on_train_begin``) and a backup exists, the callback loads it back into
the model, the optimizer and the generators and sets ``model._initial_epoch`` to the number of
epochs completed, as Keras does; pass the same number as ``fit(initial_epoch=...)`` (see
:meth:`BackupAndRestore.completed_epochs`) when your ``fit`` does not read ``_initial_epoch``.
Training then continues with the exact state an uninterrupted run had at that point, so with the
same data, model and callbacks it ends with the same weights. At the end of a ``fit`` that
finished, the backup is deleted (``delete_checkpoint=True``, Keras' default).

Differences from Keras 3: ``save_freq`` is ``"epoch"`` only. Keras also accepts a number of
batches, but restores such a mid-epoch backup at the start of its epoch, replaying batches on
already-updated weights; that cannot give the uninterrupted run's weights, so it is refused.
Keras keeps the previous backup as a fallback for a corrupt file; the atomic rename makes that
unnecessary here. Only the backup file is deleted at the end, never other files in the folder.

Example::

    >>> backup = BackupAndRestore("/tmp/backup")                          # doctest: +SKIP
    >>> try:
    ...     model.fit(x, y, epochs=10, callbacks=[backup, interrupt_at_epoch_4])
    ... except KeyboardInterrupt:
    ...     pass
    >>> start = BackupAndRestore.completed_epochs("/tmp/backup")          # 4
    >>> model.fit(x, y, epochs=10, initial_epoch=start, callbacks=[backup])  # epochs 5..10
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _io
from .callbacks import Callback, Logs

__all__ = ["BackupAndRestore"]

FILENAME = "backup.safetensors"
_FORMAT = "rnnkit.BackupAndRestore"
_VERSION = 1


class BackupAndRestore(Callback):
    """Back up the training state after every epoch; restore it when ``fit`` starts again.

    Args:
        backup_dir: folder for the backup file; created when the first epoch ends.
        save_freq: ``"epoch"`` (the only value supported; see the module notes).
        delete_checkpoint: delete the backup when ``fit`` finishes its epochs (Keras' default
            True). Interrupted fits never reach that point, so their backup stays.

    After ``on_train_begin``, ``restored_epoch`` is the number of epochs the backup had
    completed (None when there was no backup), and ``history`` holds every epoch's logs, the
    restored ones first, so it covers the whole run across interruptions.
    """

    def __init__(self, backup_dir: str | os.PathLike[str], save_freq: str = "epoch",
                 delete_checkpoint: bool = True) -> None:
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch":
            raise ValueError(
                f"BackupAndRestore supports save_freq='epoch' only, got {save_freq!r}: a backup "
                "taken mid-epoch cannot resume to the same weights as an uninterrupted run"
            )
        self.backup_dir = Path(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = delete_checkpoint
        self.restored_epoch: int | None = None
        self.history: dict[str, list[Any]] = {}
        self._epochs_done = 0

    @property
    def path(self) -> Path:
        return self.backup_dir / FILENAME

    @property
    def epochs_completed(self) -> int:
        """Epochs completed so far in this run, restored ones included."""
        return self._epochs_done

    def restore_weights(self) -> None:
        """Load the backed-up weights (the end of the last completed epoch) into the model,
        e.g. after an interrupted ``fit`` left it mid-epoch."""
        from safetensors.torch import load_file

        _read_state(self.path)
        tensors = load_file(str(self.path))
        self.model.load_state_dict(
            {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})

    @staticmethod
    def completed_epochs(backup_dir: str | os.PathLike[str]) -> int:
        """Epochs completed by the backup in ``backup_dir`` (0 when there is none)."""
        path = Path(backup_dir) / FILENAME
        return int(_read_state(path)["epoch"]) if path.is_file() else 0

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.restored_epoch = None
        self.history = {}
        self._epochs_done = 0
        if self.path.is_file():
            self._restore()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(_plain(value))
        self._epochs_done = epoch + 1
        self._save()

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.delete_checkpoint and self.path.is_file():
            self.path.unlink()
            if self.backup_dir.is_dir() and not any(self.backup_dir.iterdir()):
                self.backup_dir.rmdir()

    # -- saving --------------------------------------------------------------------------------
    def _save(self) -> None:
        model = self.model
        tensors: dict[str, Tensor] = {}
        for name, value in model.state_dict().items():
            tensors[f"model/{name}"] = value
        optimizer = getattr(model, "optimizer", None)
        optimizer_meta: dict[str, Any] = {}
        if optimizer is not None:
            opt_tensors, optimizer_meta = _optimizer_state(optimizer)
            tensors.update({f"optimizer/{k}": v for k, v in opt_tensors.items()})
        tensors["rng/torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng/cuda/{i}"] = state
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        tensors["rng/numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
        version, internal, gauss_next = random.getstate()
        state = {
            "format": _FORMAT,
            "version": _VERSION,
            "epoch": self._epochs_done,
            "history": self.history,
            "optimizer": optimizer_meta,
            "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached)},
            "python_random": [version, list(internal), gauss_next],
        }
        # Clones: safetensors refuses tensors that share memory (tied weights, views).
        tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        data = _io.safetensors_bytes(tensors, {"state": json.dumps(state)})
        _io.atomic_write(self.path, data)

    # -- restoring -----------------------------------------------------------------------------
    def _restore(self) -> None:
        from safetensors.torch import load_file

        model = self.model
        state = _read_state(self.path)
        if not getattr(model, "built", True) or _has_lazy_parameters(model):
            raise ValueError(
                "To use the BackupAndRestore callback, your model must be built before you call "
                f"fit(). Model {type(model).__name__} is unbuilt. You can build it beforehand by "
                "calling it on a batch of data."
            )
        tensors = load_file(str(self.path))
        weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as e:
            raise ValueError(f"the backup in {self.backup_dir} does not match this model: "
                             f"{e}") from None
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            opt = {k[len("optimizer/"):]: v for k, v in tensors.items()
                   if k.startswith("optimizer/")}
            _load_optimizer_state(optimizer, model, opt, state["optimizer"], self.backup_dir)
        torch.set_rng_state(tensors["rng/torch"])
        cuda = [tensors[f"rng/cuda/{i}"] for i in range(len(tensors))
                if f"rng/cuda/{i}" in tensors]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
        numpy = state["numpy"]
        np.random.set_state((numpy["kind"], tensors["rng/numpy"].numpy().astype(np.uint32),
                             numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"]))
        version, internal, gauss_next = state["python_random"]
        random.setstate((version, tuple(internal), gauss_next))
        self.history = {k: list(v) for k, v in state["history"].items()}
        self._epochs_done = self.restored_epoch = int(state["epoch"])
        model._initial_epoch = self.restored_epoch


def _read_state(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable backup ({e})") from None
    try:
        state = json.loads(metadata["state"])
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{path} is not an rnnkit BackupAndRestore file") from None
    if state.get("format") != _FORMAT or state.get("version") != _VERSION:
        raise ValueError(f"{path} is not an rnnkit BackupAndRestore file (version "
                         f"{_VERSION})")
    return state


def _has_lazy_parameters(model: Any) -> bool:
    from torch.nn.parameter import is_lazy

    return any(is_lazy(p) for p in model.parameters())


def _trainable(model: Any) -> list[Tensor]:
    # The same list fit() builds the optimizer with, so that fit's own build() is a no-op.
    return [p for p in model.parameters() if p.requires_grad]


def _optimizer_state(optimizer: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's full ``state_dict()`` (rnnkit's optimizers and wrapped torch.optim alike:
    per-parameter state, parameter groups with their learning rates, iterations) as tensors
    plus JSON."""
    if not getattr(optimizer, "built", False):
        return {}, {"kind": "state_dict", "built": False}
    saved = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in saved["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"kind": "state_dict", "built": True, "class": _class_name(optimizer),
                     "param_groups": saved["param_groups"], "scalars": scalars,
                     "iterations": int(saved.get("iterations", 0))}


def _class_name(optimizer: Any) -> str:
    inner = getattr(optimizer, "_cls", None)  # a wrapped torch.optim class
    return f"torch.optim.{inner.__name__}" if inner is not None else type(optimizer).__name__


def _load_optimizer_state(optimizer: Any, model: Any, tensors: dict[str, Tensor],
                          meta: dict[str, Any], where: Path) -> None:
    if meta.get("kind") != "state_dict":
        raise ValueError(f"the optimizer state in {where} was written by an older rnnkit; "
                         "start the run again")
    if not meta.get("built"):
        return  # the backup was taken before the first step: nothing to restore
    if meta["class"] != _class_name(optimizer):
        raise ValueError(f"the backup in {where} holds the state of a {meta['class']} "
                         f"optimizer, but the model is compiled with {optimizer!r}")
    if not optimizer.built:
        optimizer.build(_trainable(model))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"],
                                   "iterations": meta["iterations"]})
    except (ValueError, KeyError) as error:
        raise ValueError(f"the optimizer state in {where} does not fit the model's optimizer "
                         f"{optimizer!r}: {error}") from None


def _plain(value: Any) -> Any:
    """Log values as JSON numbers (tensors and NumPy scalars to Python floats)."""
    if isinstance(value, Tensor):
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value
