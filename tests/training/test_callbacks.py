"""Callbacks driven by scripted epoch logs (Keras 3's rules), on a stand-in model.

The end-to-end behaviour inside fit() is covered in test_training.py.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from rnnkit.training import callbacks, metrics, optimizers


class StandInModel:
    """What callbacks use of a model: weights, the stop flag, the optimizer, the metrics."""

    def __init__(self, metric_list=()):
        self.stop_training = False
        self.weights = [np.zeros(2)]
        self.optimizer = optimizers.SGD(learning_rate=0.1)
        self.compiled_metrics = list(metric_list)
        self.saved: list[tuple[str, str]] = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path, overwrite=True):
        self.saved.append(("model", path))

    def save_weights(self, path, overwrite=True):
        self.saved.append(("weights", path))


def drive(callback, values, key="val_loss", model=None):
    """Run epochs with logs {key: value} until the model is stopped; return the epochs run and
    the logs each epoch ended with. The weights are [epoch, epoch] during epoch `epoch`."""
    model = model or StandInModel()
    callback.set_model(model)
    callback.on_train_begin()
    ran, seen = 0, []
    for epoch, value in enumerate(values):
        model.weights = [np.full(2, float(epoch))]
        callback.on_epoch_begin(epoch)
        logs = {key: value}
        callback.on_epoch_end(epoch, logs)
        seen.append(logs)
        ran += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return ran, seen, model


def test_early_stopping_stops_after_patience():
    stop = callbacks.EarlyStopping(patience=2)
    ran, _, model = drive(stop, [1.0, 0.8, 0.9, 0.85, 0.95, 0.7])
    assert ran == 4 and stop.stopped_epoch == 3 and model.stop_training
    assert stop.best == 0.8 and stop.best_epoch == 1
    assert drive(callbacks.EarlyStopping(patience=0), [1.0, 0.9, 0.95, 0.1])[0] == 3


def test_early_stopping_min_delta_and_mode_max():
    # 0.95 is not better than 1.0 by more than 0.1: no improvement after epoch 0.
    assert drive(callbacks.EarlyStopping(patience=1, min_delta=0.1), [1.0, 0.95, 0.93])[0] == 2
    assert drive(callbacks.EarlyStopping(patience=1, min_delta=0.01), [1.0, 0.95, 0.93, 0.93])[0] == 4
    # mode="max": rising is good
    stop = callbacks.EarlyStopping(monitor="val_acc", mode="max", patience=1)
    assert drive(stop, [0.5, 0.6, 0.55, 0.7], key="val_acc")[0] == 3


def test_early_stopping_auto_mode_reads_the_metric_direction():
    model = StandInModel([metrics.BinaryAccuracy(name="accuracy")])
    stop = callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    ran, _, _ = drive(stop, [0.5, 0.7, 0.6], key="val_accuracy", model=model)
    assert ran == 3 and stop.best == 0.7
    with pytest.raises(ValueError, match="maximized or minimized"):
        drive(callbacks.EarlyStopping(monitor="val_custom"), [1.0], key="val_custom")


def test_early_stopping_restores_best_weights():
    stop = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    ran, _, model = drive(stop, [1.0, 0.5, 0.9, 0.8, 0.7])
    assert ran == 4
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])  # epoch 1 was the best
    # Keras 3 restores at the end of training even when it did not stop early.
    stop = callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    _, _, model = drive(stop, [1.0, 0.2, 0.9])
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])


def test_early_stopping_baseline_and_start_from_epoch():
    # Without a baseline the first epoch resets the wait: stop at epoch 2.
    assert drive(callbacks.EarlyStopping(patience=2), [1.0, 1.1, 1.2, 1.3])[0] == 3
    # With a baseline never beaten, the wait is not reset: stop at epoch 1.
    assert drive(callbacks.EarlyStopping(patience=2, baseline=0.5), [1.0, 1.1, 1.2])[0] == 2
    # Epochs before start_from_epoch are not monitored.
    stop = callbacks.EarlyStopping(patience=1, start_from_epoch=2)
    assert drive(stop, [0.1, 5.0, 1.0, 2.0, 3.0])[0] == 4


def test_early_stopping_warns_without_the_monitored_value():
    with pytest.warns(UserWarning, match="val_loss.*not available.*loss"):
        drive(callbacks.EarlyStopping(), [1.0], key="loss")


def test_reduce_lr_on_plateau_schedule():
    reduce = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.01)
    _, seen, model = drive(reduce, [1.0] * 12)
    logged = [logs["learning_rate"] for logs in seen]
    expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.01, 0.01, 0.01]
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_improvement_resets_the_wait():
    reduce = callbacks.ReduceLROnPlateau(factor=0.1, patience=2, min_delta=0.05)
    _, seen, _ = drive(reduce, [1.0, 0.9, 0.88, 0.87, 0.8])
    # 0.88 and 0.87 improve on 0.9 by less than min_delta -> reduced after epoch 3
    assert [round(s["learning_rate"], 6) for s in seen] == [0.1, 0.1, 0.1, 0.1, 0.01]


def test_reduce_lr_works_with_a_torch_optimizer():
    import torch

    model = StandInModel()
    model.optimizer = optimizers.get(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0))
    reduce = callbacks.ReduceLROnPlateau(factor=0.5, patience=1)
    drive(reduce, [1.0, 1.0], model=model)
    assert model.optimizer.torch_optimizer.param_groups[0]["lr"] == 0.5


def test_terminate_on_nan(capsys):
    model = StandInModel()
    stop = callbacks.TerminateOnNaN()
    stop.set_model(model)
    stop.on_train_batch_end(0, {"loss": 0.5})
    assert not model.stop_training
    stop.on_train_batch_end(3, {"loss": math.nan})
    assert model.stop_training
    assert "Batch 3: Invalid loss, terminating training" in capsys.readouterr().out
    inf_model = StandInModel()
    stop.set_model(inf_model)
    stop.on_batch_end(0, {"loss": math.inf})
    assert inf_model.stop_training


def test_model_checkpoint_names_and_best_only():
    checkpoint = callbacks.ModelCheckpoint("ckpt-{epoch:02d}-{val_loss:.2f}.rnnkit",
                                           save_best_only=True)
    _, _, model = drive(checkpoint, [0.5, 0.7, 0.25])
    assert model.saved == [("model", "ckpt-01-0.50.rnnkit"), ("model", "ckpt-03-0.25.rnnkit")]
    weights = callbacks.ModelCheckpoint("w-{epoch}.bin", save_weights_only=True)
    _, _, model = drive(weights, [0.5, 0.7])
    assert model.saved == [("weights", "w-1.bin"), ("weights", "w-2.bin")]
    threshold = callbacks.ModelCheckpoint("best", save_best_only=True, initial_value_threshold=0.3)
    _, _, model = drive(threshold, [0.5, 0.2, 0.4])
    assert model.saved == [("model", "best")]
    with pytest.raises(KeyError, match="Failed to format"):
        drive(callbacks.ModelCheckpoint("{val_acc}.ckpt"), [0.5])
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.ModelCheckpoint("x", save_freq="batch")


def _read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    logger = callbacks.CSVLogger(path)
    model = StandInModel()
    logger.set_model(model)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"val_loss": 0.5, "loss": 1.0})
    logger.on_epoch_end(1, {"val_loss": 0.25, "loss": 0.75})
    logger.on_train_end()
    rows = _read_csv(path)
    assert rows == [["epoch", "loss", "val_loss"], ["0", "1.0", "0.5"], ["1", "0.75", "0.25"]]
    appended = callbacks.CSVLogger(path, append=True)
    appended.on_train_begin()
    appended.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.1})
    appended.on_train_end()
    rows = _read_csv(path)
    assert rows[-1] == ["0", "0.5", "0.1"] and len(rows) == 4  # no second header


def test_csv_logger_replaces_the_whole_file_each_epoch(tmp_path, monkeypatch):
    # Each epoch goes through the one atomic writer with the complete file, so a kill leaves
    # the previous epoch's whole file, never a cut-off row.
    from rnnkit import _io

    path = tmp_path / "log.csv"
    seen = []
    real = _io.atomic_write

    def recording(target, data, **kw):
        seen.append(data.decode())
        real(target, data, **kw)

    monkeypatch.setattr(_io, "atomic_write", recording)
    logger = callbacks.CSVLogger(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 1.0})
    logger.on_epoch_end(1, {"loss": 0.5})
    assert seen == ["epoch,loss\r\n0,1.0\r\n", "epoch,loss\r\n0,1.0\r\n1,0.5\r\n"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_lambda_callback_and_callback_list_order():
    calls = []
    recorder = callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: calls.append(("begin", epoch)),
        on_train_batch_end=lambda batch, logs: calls.append(("batch", batch)),
    )
    reduce = callbacks.ReduceLROnPlateau(patience=5)
    model = StandInModel()
    cb_list = callbacks.CallbackList([recorder, reduce], add_history=True, model=model,
                                     epochs=1, steps=1, verbose=0)
    cb_list.on_train_begin()
    cb_list.on_epoch_begin(0)
    cb_list.on_train_batch_end(0, {"loss": 1.0})
    cb_list.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    assert calls == [("begin", 0), ("batch", 0)]
    # History comes after the user's callbacks, so it records what they add to the logs.
    assert cb_list.history.history == {"loss": [1.0], "val_loss": [2.0],
                                       "learning_rate": [pytest.approx(0.1)]}
    assert model.history is cb_list.history
    with pytest.raises(TypeError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="Callback objects"):
        callbacks.CallbackList([print])
