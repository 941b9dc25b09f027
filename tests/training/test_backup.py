"""BackupAndRestore saves the optimizer's full state_dict: a resumed fit ends with the weights
of an uninterrupted one, for rnnkit's optimizers and torch.optim's alike (bitwise, float32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import LSTM, Dense, Dropout
from rnnkit.models import Sequential
from rnnkit.training import optimizers
from rnnkit.training.backup import BackupAndRestore
from rnnkit.training.callbacks import Callback


class _StopAfter(Callback):
    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def _model(optimizer):
    torch.manual_seed(0)
    model = Sequential([LSTM(4, input_shape=(5, 2)), Dropout(0.3), Dense(1)])
    model.compile(optimizer=optimizer(model), loss="mse")
    return model


OPTIMIZERS = {
    "rnnkit_adam": lambda model: optimizers.Adam(0.01),
    "rnnkit_sgd_groups": lambda model: optimizers.SGD(0.05, momentum=0.9),
    "torch_adam": lambda model: torch.optim.Adam(model.parameters(), lr=0.01),
    "torch_class": lambda model: optimizers.TorchOptimizer(torch.optim.RMSprop, lr=0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resumed_fit_equals_uninterrupted_fit(tmp_path, name):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 5, 2)).astype(np.float32), rng.normal(size=(24, 1))
    straight = _model(OPTIMIZERS[name])
    straight.fit(x, y, epochs=4, batch_size=8, verbose=0)

    interrupted = _model(OPTIMIZERS[name])
    backup = BackupAndRestore(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(x, y, epochs=4, batch_size=8, verbose=0,
                        callbacks=[backup, _StopAfter(2)])
    resumed = _model(OPTIMIZERS[name])
    resumed.fit(x, y, epochs=4, batch_size=8, verbose=0,
                callbacks=[BackupAndRestore(tmp_path / "backup")])
    for got, want in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 12


def test_a_backup_of_another_optimizer_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 5, 2)).astype(np.float32), rng.normal(size=(8, 1))
    model = _model(OPTIMIZERS["rnnkit_adam"])
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, verbose=0,
                  callbacks=[BackupAndRestore(tmp_path / "b"), _StopAfter(1)])
    other = _model(OPTIMIZERS["torch_adam"])
    with pytest.raises(ValueError, match="Adam optimizer, but the model is compiled with"):
        other.fit(x, y, epochs=3, verbose=0, callbacks=[BackupAndRestore(tmp_path / "b")])
