"""``--tensorboard``: each epoch's logs as TensorBoard scalars, through PyTorch's own writer.

``torch.utils.tensorboard`` needs the ``tensorboard`` package, an optional dependency; without
it ``--tensorboard`` stops before training with an error that says how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..training.callbacks import Callback

__all__ = ["TensorBoardLogger"]

_MISSING = ("--tensorboard needs the tensorboard package, which is not installed: "
            "pip install tensorboard")


class TensorBoardLogger(Callback):
    """Writes ``epoch_<key>`` scalars (``epoch_loss``, ``epoch_val_loss``, ...) at each epoch's
    end, numbered from 1, to ``log_dir``; view them with ``tensorboard --logdir log_dir``."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    @staticmethod
    def check_available() -> None:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ImportError(_MISSING)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(_MISSING) from None
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._writer is None:
            return
        for key, value in (logs or {}).items():
            self._writer.add_scalar(f"epoch_{key}", float(value), epoch + 1)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.close()
