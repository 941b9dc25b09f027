"""fit/evaluate/predict on Keras 3's batch sources (DataLoader, Dataset, generator, Sequence),
and outside metrics (torchmetrics, plain functions) under Keras' shape rule.

The same batches in the same order give the same weights as the array path (bitwise, float32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from rnnkit.layers import GRU, Dense
from rnnkit.models import Sequential

torchmetrics = pytest.importorskip("torchmetrics")


def _data(n=24, steps=5, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, features)).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    return x, y


def _model(metrics=None, loss="mse"):
    torch.manual_seed(0)
    model = Sequential([GRU(4), Dense(1)])
    model.build((None, None, 3))  # before fit: a DataLoader's iterator draws a seed from torch
    model.compile(optimizer="adam", loss=loss, metrics=metrics)
    return model


class _Batches:
    """A Keras PyDataset-like Sequence of batches."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def test_fit_on_a_dataloader_equals_fit_on_arrays():
    x, y = _data()
    reference = _model()
    reference.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    loader = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=8)
    model = _model()
    history = model.fit(loader, epochs=2, verbose=0)
    for got, want in zip(_weights(model), _weights(reference)):
        np.testing.assert_array_equal(got, want)
    assert history.history["loss"] == reference.history.history["loss"]
    assert model.evaluate(loader, verbose=0) == reference.evaluate(x, y, batch_size=8, verbose=0)
    np.testing.assert_array_equal(model.predict(loader, verbose=0),
                                  model.predict(x, batch_size=8, verbose=0))


@pytest.mark.parametrize("kind", ["dataset", "sequence", "generator"])
def test_dataset_sequence_and_generator_give_the_array_fit(kind):
    x, y = _data()
    reference = _model()
    reference.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0)
    model = _model()
    if kind == "dataset":
        model.fit(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=6, epochs=2,
                  shuffle=False, verbose=0)
    elif kind == "sequence":
        batches = _Batches(x, y, 6)
        model.fit(batches, epochs=2, shuffle=False, verbose=0)
        assert batches.epochs_ended == 2
    else:
        def stream():
            while True:
                for i in range(0, len(x), 6):
                    yield x[i:i + 6], y[i:i + 6]
        model.fit(stream(), steps_per_epoch=4, epochs=2, verbose=0)
    for got, want in zip(_weights(model), _weights(reference)):
        np.testing.assert_array_equal(got, want)


def test_sample_weights_in_batches_and_validation_loader():
    x, y = _data()
    w = np.linspace(0.5, 1.5, len(x)).astype(np.float32)
    reference = _model()
    reference.fit(x, y, sample_weight=w, batch_size=8, epochs=1, shuffle=False, verbose=0,
                  validation_data=(x[:8], y[:8]))
    loader = DataLoader(TensorDataset(*map(torch.tensor, (x, y, w))), batch_size=8)
    val = DataLoader(TensorDataset(torch.tensor(x[:8]), torch.tensor(y[:8])), batch_size=4)
    model = _model()
    model.fit(loader, epochs=1, verbose=0, validation_data=val)
    for got, want in zip(_weights(model), _weights(reference)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(model.history.history["val_loss"],
                               reference.history.history["val_loss"], rtol=1e-6)


def test_a_generator_that_runs_out_stops_training_with_keras_warning():
    x, y = _data()
    model = _model()
    stream = ((x[i:i + 8], y[i:i + 8]) for i in range(0, len(x), 8))
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(stream, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1


def test_clear_errors_for_arguments_a_batch_source_carries():
    x, y = _data()
    loader = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=8)
    model = _model()
    with pytest.raises(ValueError, match="batch_size must not be given"):
        model.fit(loader, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="`y` must not be given"):
        model.fit(loader, y, verbose=0)
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        model.fit(loader, validation_split=0.2, verbose=0)
    bad = DataLoader(TensorDataset(torch.tensor(x[:, :, :2]), torch.tensor(y)), batch_size=8)
    model.fit(loader, verbose=0)
    with pytest.raises(ValueError, match="features"):
        model.evaluate(bad, verbose=0)


def test_torchmetrics_metric_gets_keras_shape_rule():
    x, y = _data()
    y_flat = y[:, 0]  # (batch,) targets against (batch, 1) outputs
    model = _model(metrics=[torchmetrics.MeanAbsoluteError(), "mae"])
    model.fit(x, y_flat, epochs=1, batch_size=8, verbose=0)
    logs = model.evaluate(x, y_flat, batch_size=len(x), verbose=0, return_dict=True)
    prediction = model.predict(x, verbose=0)
    expected = float(np.mean(np.abs(prediction[:, 0] - y_flat)))
    np.testing.assert_allclose(logs["mean_absolute_error"], expected, rtol=1e-5)
    np.testing.assert_allclose(logs["mae"], expected, rtol=1e-5)


def test_plain_function_metric_is_compared_sample_by_sample():
    x, y = _data()

    def abs_error(y_true, y_pred):
        assert y_true.shape == y_pred.shape
        return torch.abs(y_true - y_pred)

    model = _model(metrics=[abs_error])
    logs = model.evaluate(x, y[:, 0], batch_size=len(x), verbose=0, return_dict=True)
    expected = float(np.mean(np.abs(model.predict(x, verbose=0)[:, 0] - y[:, 0])))
    np.testing.assert_allclose(logs["abs_error"], expected, rtol=1e-5)


def test_accuracy_on_boolean_one_hot_targets():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(12, 5, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=12)
    y = np.eye(3, dtype=bool)[labels]
    torch.manual_seed(0)
    model = Sequential([GRU(4), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = np.mean(model.predict(x, verbose=0).argmax(-1) == labels)
    np.testing.assert_allclose(logs["accuracy"], expected, rtol=1e-6)
