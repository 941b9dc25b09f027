"""An rk.Sequential inside a LightningModule trains like any torch module: training mode (so
Dropout and LSTM(dropout=) are active) in training_step, eval mode in validation, and an
rnnkit optimizer from configure_optimizers, with a torch lr scheduler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import rnnkit as rk
from rnnkit.layers import LSTM, Dense, Dropout
from rnnkit.training import optimizers

lightning = pytest.importorskip("lightning")

# Lightning 2.6 on torch 2.13 trips torch's pytree deprecation; nothing of rnnkit's.
pytestmark = pytest.mark.filterwarnings("ignore:.isinstance.treespec, LeafSpec:FutureWarning")


class Regressor(lightning.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = rk.Sequential([LSTM(8, dropout=0.5, input_shape=(None, 2)), Dropout(0.5),
                                    Dense(1)])
        self.seen_training: list[bool] = []
        self.train_outputs_differ: list[bool] = []
        self.val_outputs_equal: list[bool] = []

    def training_step(self, batch, batch_index):
        x, y = batch
        self.seen_training.append(self.model.training)
        with torch.no_grad():  # dropout active: two calls differ
            self.train_outputs_differ.append(not torch.equal(self.model(x), self.model(x)))
        return torch.nn.functional.mse_loss(self.model(x), y)

    def validation_step(self, batch, batch_index):
        x, _ = batch
        self.val_outputs_equal.append(torch.equal(self.model(x), self.model(x)))

    def configure_optimizers(self):
        optimizer = optimizers.Adam(self.parameters(), lr=0.01)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)]


def test_lightning_trains_an_rnnkit_sequential_with_dropout_active(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(32, 6, 2)), dtype=torch.float32)
    y = x.sum(dim=(1, 2)).unsqueeze(-1) / 4
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    module = Regressor()
    before = [p.detach().clone() for p in module.parameters()]
    trainer = lightning.Trainer(max_epochs=2, accelerator="cpu", logger=False,
                                enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, default_root_dir=tmp_path,
                                num_sanity_val_steps=0)
    trainer.fit(module, loader, loader)
    assert module.seen_training == [True] * 8
    assert all(module.train_outputs_differ) and all(module.val_outputs_equal)
    assert all(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, optimizers.Adam) and optimizer.iterations == 8
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5 ** 2)
