"""One rank of the distributed-fit test (run by tests/models/test_distributed.py, twice, with
torchrun's environment), or the single-process reference run when WORLD_SIZE is unset.

Usage: python _distributed_worker.py OUT_DIR
Writes OUT_DIR/result-<rank>.pt (final weights and history) for the test to compare, and hands
its callbacks OUT_DIR/rank-<rank>/ so the test can check which ranks wrote files.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import torch

from rnnkit.layers import LSTM, Dense
from rnnkit.models import Sequential
from rnnkit.training.callbacks import CSVLogger, ModelCheckpoint


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(27, 5, 2, generator=g, dtype=torch.float64)
    y = x.sum(dim=(1, 2)).unsqueeze(-1).tanh()
    return x, y


def run(out: Path) -> None:
    torch.set_default_dtype(torch.float64)
    rank = int(os.environ.get("RANK", "0"))
    own = out / f"rank-{rank}"
    own.mkdir(parents=True)
    torch.manual_seed(0)
    model = Sequential([LSTM(4, input_shape=(5, 2)), Dense(1)])
    model.build((None, 5, 2))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x, y = data()
    callbacks = [ModelCheckpoint(str(own / "model.weights.safetensors"), save_weights_only=True),
                 CSVLogger(str(own / "log.csv"))]
    # 27 samples, 20% held out: 21 to train in global batches of 7, 7, 7; a batch of 5 for the
    # validation data, so one rank of two gets 3 samples and the other 2.
    with open(own / "stdout.txt", "w") as stdout, contextlib.redirect_stdout(stdout):
        history = model.fit(x, y, batch_size=7, epochs=3, validation_split=0.2,
                            validation_batch_size=5, verbose=2, callbacks=callbacks)
    torch.save({"weights": [p.detach() for p in model.parameters()],
                "history": history.history}, out / f"result-{rank}.pt")


if __name__ == "__main__":
    run(Path(sys.argv[1]))
