"""Keras 3's ``training`` rule on rnnkit's layers and models (rnnkit/layers/_base.py): explicit
``training=`` wins, else the enclosing call's, else a bare call is inference, except for a
layer or model held by a plain torch module, which follows its torch mode (Lightning).

The first two tests are Keras 3.15.1's ``test_training_arg_value_resolution``
(keras/src/layers/layer_test.py) and ``test_training_arg`` (keras/src/models/functional_test.py),
ported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.layers import Dense, Dropout, Input, Layer


def test_training_arg_value_resolution():
    class TrainingLayer(Layer):
        def __init__(self):
            super().__init__()
            self.dp = Dropout(0.9)

        def call(self, x, training=False):
            return self.dp(x)

    x = np.ones((4, 4), dtype="float32")
    layer = TrainingLayer()
    assert layer(x).min() == 1  # a bare call: inference
    assert layer(x, training=True).min() == 0  # reaches the inner Dropout, not passed on

    class WrappedTrainingLayer(Layer):
        def __init__(self):
            super().__init__()
            self.dp = TrainingLayer()

        def call(self, x, training=False):
            return self.dp(x)

    layer = WrappedTrainingLayer()
    assert layer(x).min() == 1
    assert layer(x, training=True).min() == 0  # one level deeper

    class TrainingLayerExplicit(Layer):
        def __init__(self):
            super().__init__()
            self.dp = Dropout(0.9)

        def call(self, x, training=False):
            return self.dp(x, training=True)

    assert TrainingLayerExplicit()(x, training=False).min() == 0  # the inner explicit value

    class BadLayer(Layer):
        def call(self, x, training=False):
            raise RuntimeError("oops!")

    with pytest.raises(RuntimeError):
        BadLayer()(x, training=True)
    assert Dropout(0.9)(x).min() == 1  # the failed call's training=True did not linger


def test_functional_model_passes_training_to_its_layers():
    seen = []

    class Canary(Layer):
        def call(self, x, training=False):
            seen.append(training)
            return x

    inputs = Input(shape=(3,), batch_size=2)
    model = rk.Model(inputs, Canary()(inputs))
    x = np.random.random((2, 3)).astype("float32")
    model(x, training=True)
    model(x)
    assert seen[-2:] == [True, False]


def _dropout_model() -> rk.Sequential:
    return rk.Sequential([Dense(16, input_shape=(3,)), Dropout(0.5)])


def test_bare_call_of_a_model_is_inference_and_training_true_drops():
    model = _dropout_model()
    x = torch.ones(8, 3)
    assert model.training  # torch's mode at construction, untouched
    torch.testing.assert_close(model(x), model(x))
    assert not torch.equal(model(x, training=True), model(x, training=True))


def test_fit_trains_with_dropout_and_leaves_bare_calls_inference():
    model = _dropout_model()
    model.add(Dense(1))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((16, 3), "float32"), np.zeros((16, 1), "float32")
    seen = []

    class Spy(Layer):
        def call(self, inputs, training=None):
            seen.append(training)
            return inputs

    model.add(Spy())
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert seen and all(seen)
    seen.clear()
    torch.testing.assert_close(model(x), model(x))
    assert seen == [False, False]


def test_a_model_held_by_a_torch_module_follows_train_and_eval():
    class Holder(torch.nn.Module):  # as a LightningModule holds one
        def __init__(self):
            super().__init__()
            self.model = _dropout_model()

    holder, x = Holder(), torch.ones(8, 3)
    assert not torch.equal(holder.model(x), holder.model(x))  # torch's mode: training
    holder.eval()
    torch.testing.assert_close(holder.model(x), holder.model(x))
    holder.train()
    assert not torch.equal(holder.model(x), holder.model(x))
    torch.testing.assert_close(holder.model(x, training=False), holder.model(x, training=False))


def test_a_torch_container_is_not_a_torch_model():
    layers = torch.nn.ModuleList([Dropout(0.5)])  # as rnnkit's own models keep their layers
    x = torch.ones(8, 3)
    torch.testing.assert_close(layers[0](x), x)
