"""Data-parallel training over several processes: ``fit(..., distributed=...)`` and ``torchrun``.

Every process (rank r of W) holds a full copy of the model. For each global batch of ``b``
sample indices, drawn in the same order on every rank (rank 0's shuffle, broadcast), rank r
takes its contiguous share of ``b_r`` samples (``b_r`` = b/W, the first ranks one more when W
does not divide b) and computes its local loss ``L_r``, the mean over its samples. The loss it
differentiates is scaled by its share of the batch, ``W * b_r / b * L_r``, so that the gradients
``torch.nn.parallel.DistributedDataParallel`` averages over ranks are::

    (1 / W) sum_r grad(W * b_r / b * L_r) = sum_r (b_r / b) grad L_r = grad L

with ``L`` the loss of the whole global batch in one process: every rank takes the same
optimizer step as a single process with ``batch_size=b`` would. (Exact for losses that average
over samples, which is every built-in loss with its default reduction; with a time mask the
built-in losses average over each rank's real steps, which weighs ranks by samples, not steps.)

Metrics (the loss tracker included) keep ``(total, count)`` per rank; the logs every rank hands
to callbacks are the sums over ranks, so ``EarlyStopping`` and friends take the same decision
everywhere. Callbacks that write files or print (progress bar, ``ModelCheckpoint``,
``CSVLogger``, ``BackupAndRestore``'s saves, any callback with ``rank_zero_only = True``) run on
rank 0 only.

The process group comes from the environment that ``torchrun`` sets (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), with the ``gloo`` backend for a model on the
CPU and ``nccl`` for one on a GPU (moved to ``cuda:LOCAL_RANK``). A group the script created
itself is used as is.

Example (``train.py``, run as ``torchrun --nproc_per_node 2 train.py``)::

    model = Sequential([LSTM(32, input_shape=(20, 3)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=64, epochs=5)          # distributed="auto" sees torchrun
    if is_main_process():
        model.save("model.rnnkit")
"""

from __future__ import annotations

import atexit
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from . import metrics as metrics_module
from .backup import BackupAndRestore
from .callbacks import Callback, CSVLogger, ModelCheckpoint, ProgbarLogger

__all__ = ["DistributedContext", "get_context", "is_main_process", "rank", "world_size"]

ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Callbacks that write files or print: rank 0 runs them, the other ranks skip them.
_WRITERS: tuple[type, ...] = (ProgbarLogger, CSVLogger, ModelCheckpoint)


def launched_by_torchrun() -> bool:
    """Whether this process runs under ``torchrun`` (or another launcher with its environment)
    in a group of more than one process."""
    if not all(name in os.environ for name in ENV_VARS[:2]):
        return False
    return _env_int("WORLD_SIZE") > 1


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ValueError(f"distributed training needs the environment variable {name} "
                             f"(set by torchrun); it is not set")
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def rank() -> int:
    """This process's rank: the process group's, else ``$RANK``, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0)


def world_size() -> int:
    """The number of processes: the process group's, else ``$WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1)


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the one process that should write files."""
    return rank() == 0


@dataclass
class DistributedContext:
    """One fit's view of the process group: who this process is and where its model runs."""

    rank: int
    world_size: int
    device: torch.device
    _warned_metrics: set[str] = field(default_factory=set)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- data ----------------------------------------------------------------------------
    def broadcast_order(self, order: Tensor) -> Tensor:
        """Rank 0's sample order, on every rank (so each epoch's shuffle is rank 0's)."""
        buffer = order.to(self._comm_device(), torch.int64)
        dist.broadcast(buffer, src=0)
        return buffer.cpu()

    def shard(self, index: Tensor) -> tuple[Tensor, int, float]:
        """This rank's share of a global batch: ``(indices, samples, loss_scale)``.

        ``samples`` counts the real samples (0 when the batch is smaller than the world: the
        rank then runs the first sample with ``loss_scale`` 0, so every rank still joins the
        gradient all-reduce), and ``loss_scale`` is ``W * b_r / b``.
        """
        total = int(index.numel())
        mine = torch.tensor_split(index, self.world_size)[self.rank]
        samples = int(mine.numel())
        if samples == 0:
            return index[:1], 0, 0.0
        return mine, samples, self.world_size * samples / total

    def eval_shard(self, index: Tensor) -> Tensor:
        """This rank's share of an evaluation batch (may be empty: nothing to reduce there)."""
        return torch.tensor_split(index, self.world_size)[self.rank]

    # -- metrics -------------------------------------------------------------------------
    def reduced_results(self, metrics: Sequence[metrics_module.Metric]) -> list[float | None]:
        """Each metric's result over all ranks (None for a metric that cannot be reduced: its
        local result stands, with a one-time warning)."""
        means = [m for m in metrics if isinstance(m, metrics_module.Mean)]
        for metric in metrics:
            if not isinstance(metric, metrics_module.Mean) and metric.name not in self._warned_metrics:
                self._warned_metrics.add(metric.name)
                warnings.warn(
                    f"metric {metric.name!r} ({type(metric).__name__}) keeps no (total, count) "
                    "state, so it cannot be summed over ranks; its logged value is rank-local",
                    UserWarning, stacklevel=3)
        if not means:
            return [None] * len(metrics)
        state = torch.stack([torch.stack([m.total, m.count]) for m in means]).to(torch.float64)
        state = state.to(self._comm_device())
        dist.all_reduce(state)
        state = state.cpu()
        results: dict[int, float] = {}
        for i, metric in enumerate(means):
            saved = metric.total, metric.count
            metric.total, metric.count = state[i, 0].to(torch.float32), state[i, 1].to(torch.float32)
            try:
                results[id(metric)] = metric.result()
            finally:
                metric.total, metric.count = saved
        return [results.get(id(m)) for m in metrics]

    # -- model and callbacks -------------------------------------------------------------
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model's training forward behind ``DistributedDataParallel``."""
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(_TrainingForward(model), device_ids=device_ids)

    def callbacks(self, callbacks: Iterable[Callback] | None) -> list[Callback]:
        """The user's callbacks as this rank runs them (writers only on rank 0)."""
        kept: list[Callback] = []
        for callback in callbacks or []:
            if self.is_main or not _writes(callback):
                kept.append(callback)
            elif isinstance(callback, BackupAndRestore):
                kept.append(_RestoreOnly(callback))  # every rank resumes; rank 0 saves
        return kept

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


class _TrainingForward(torch.nn.Module):
    """``model._call_with_mask(x, training=True)`` as a forward, for DDP to wrap."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Any, Any]:
        return self.model._call_with_mask(x, training=True)  # type: ignore[operator]


class _RestoreOnly(Callback):
    """A ``BackupAndRestore`` on ranks other than 0: it restores the backup when training
    begins (so every rank resumes at the same epoch with the same weights), never saves."""

    def __init__(self, backup: BackupAndRestore) -> None:
        super().__init__()
        self.backup = backup

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self.backup.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self.backup.set_params(params)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.backup._restore()


def _writes(callback: Callback) -> bool:
    flag = getattr(callback, "rank_zero_only", None)
    if flag is not None:
        return bool(flag)
    return isinstance(callback, (*_WRITERS, BackupAndRestore))


def get_context(distributed: Any, model_device: torch.device) -> DistributedContext | None:
    """The distributed setup ``fit(distributed=...)`` asks for, initialising the process group
    from torchrun's environment when needed; None for a single-process fit.

    ``distributed``: ``"auto"`` (distributed when launched by torchrun with more than one
    process, or when the script initialised a process group), ``True`` (required: an error
    says what is missing), ``False``/``None`` (single process).
    """
    if distributed is None or distributed is False:
        return None
    if distributed not in ("auto", True):
        raise ValueError(f"distributed must be 'auto', True or False, got {distributed!r}")
    initialized = dist.is_available() and dist.is_initialized()
    if not initialized:
        if not launched_by_torchrun():
            if distributed == "auto":
                return None
            raise ValueError(
                "fit(distributed=True) needs a process group: launch the script with "
                "`torchrun --nproc_per_node N script.py` (which sets "
                f"{', '.join(ENV_VARS)}) or call torch.distributed.init_process_group first"
            )
        if not dist.is_available():
            raise RuntimeError("this PyTorch build has no torch.distributed")
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise ValueError(f"distributed training needs {' and '.join(missing)} in the "
                             "environment (torchrun sets them)")
        _init_group(model_device)
    if dist.get_world_size() == 1 and distributed == "auto":
        return None
    device = model_device
    if device.type == "cuda":
        device = torch.device("cuda", _env_int("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count()))
        torch.cuda.set_device(device)
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def _init_group(model_device: torch.device) -> None:
    backend = "nccl" if model_device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    dist.init_process_group(backend=backend)
    atexit.register(_destroy_group)


def _destroy_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
