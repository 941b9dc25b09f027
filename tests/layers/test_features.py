"""Keras features checked against Keras 3.15's numbers (tests/keras_fixtures/features.*):
learning-rate schedules and optimizers following them, regularizer penalties (alone, in
``layer.losses`` and in the evaluated and trained loss), constraints (alone and after one SGD
step of fit), and stacked cells (RNN([cell, ...]) outputs and states, masked and backwards).

Tolerances: float32 against Keras/JAX float32, rtol 1e-5 / atol 1e-6 (1e-5 after a step).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit as rk
from keras_fixtures.fixtures import FIXTURES_DIR
from rnnkit import constraints, regularizers
from rnnkit.layers import (GRU, LSTM, RNN, Dense, Embedding, GRUCell, LSTMCell, SimpleRNN,
                           SimpleRNNCell, StackedRNNCells)
from rnnkit.training import optimizers, schedules

META = json.loads((FIXTURES_DIR / "features.json").read_text())
with np.load(FIXTURES_DIR / "features.npz") as _data:
    ARRAYS = {k: _data[k] for k in _data.files}
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.mark.parametrize("name", sorted(META["schedules"]))
def test_schedules_give_keras_values(name):
    case = META["schedules"][name]
    schedule = schedules.deserialize({"class_name": case["class_name"],
                                      "config": case["config"]})
    np.testing.assert_allclose([schedule(s) for s in case["steps"]], case["values"], **TOL)
    again = schedules.deserialize(schedules.serialize(schedule))
    assert again.get_config() == schedule.get_config()


@pytest.mark.parametrize("name", sorted(META["scheduled_optimizers"]))
def test_optimizers_follow_a_schedule_as_keras(name):
    case = META["scheduled_optimizers"][name]
    schedule = schedules.deserialize(case["schedule"])
    cls = {"SGD": optimizers.SGD, "Adam": optimizers.Adam}[case["class_name"]]
    param = torch.nn.Parameter(torch.tensor(ARRAYS["scheduled/start"]))
    optimizer = cls(learning_rate=schedule, **case["extra"])
    optimizer.build([param])
    for g in ARRAYS["scheduled/grads"]:
        param.grad = torch.tensor(g)
        optimizer.step()
    np.testing.assert_allclose(param.detach().numpy(), ARRAYS[f"scheduled/{name}"], **TOL)
    assert optimizer.learning_rate == pytest.approx(schedule(6), rel=1e-6)
    with pytest.raises(TypeError, match="schedule"):
        optimizer.learning_rate = 0.1
    config = optimizers.serialize(optimizer)
    assert optimizers.deserialize(config).get_config() == optimizer.get_config()


@pytest.mark.parametrize("name", sorted(META["regularizer_functions"]))
def test_regularizer_functions(name):
    case = META["regularizer_functions"][name]
    regularizer = regularizers.deserialize(case)
    w = torch.tensor(ARRAYS["regularizer_functions/w"])
    np.testing.assert_allclose(float(regularizer(w)), case["value"], **TOL)
    assert regularizers.serialize(regularizer) == {"class_name": case["class_name"],
                                                   "config": case["config"]}


def _regularized(name):
    R = regularizers
    return {
        "dense": lambda: [Dense(3, kernel_regularizer=R.L2(0.1), bias_regularizer=R.L1(0.2),
                                activity_regularizer=R.L2(0.05))],
        "lstm": lambda: [LSTM(3, kernel_regularizer=R.L1(0.01),
                              recurrent_regularizer=R.L2(0.02),
                              bias_regularizer=R.L1L2(0.01, 0.01),
                              activity_regularizer=R.L1(0.03)), Dense(1)],
        "simple_rnn_sequences": lambda: [
            SimpleRNN(3, return_sequences=True, activity_regularizer=R.L2(0.1),
                      kernel_regularizer=R.L2(0.05)),
            Dense(1, kernel_regularizer=R.L1(0.1))],
        "gru": lambda: [GRU(2, kernel_regularizer=R.L2(0.1), recurrent_regularizer=R.L1(0.05)),
                        Dense(1)],
        "embedding": lambda: [Embedding(6, 3, embeddings_regularizer=R.L2(0.1),
                                        activity_regularizer=R.L1(0.01)), SimpleRNN(2),
                              Dense(1)],
    }[name]()


def _arrays(prefix, count):
    return ([ARRAYS[f"{prefix}/w{i}"] for i in range(count)],
            [ARRAYS[f"{prefix}/after{i}"] for i in range(count)])


@pytest.mark.parametrize("name", sorted(META["regularized_models"]))
def test_regularizer_losses_evaluate_and_one_step_as_keras(name):
    case = META["regularized_models"][name]
    x, y = ARRAYS[f"regularized/{name}/x"], ARRAYS[f"regularized/{name}/y"]
    before, after = _arrays(f"regularized/{name}", case["weights"])
    model = rk.Sequential(_regularized(name))
    model.build((None, *x.shape[1:]))
    model.set_weights(before)
    model.eval()
    model(x)
    expected, extra = list(case["losses_after_call"]), 0.0
    if name == "simple_rnn_sequences":
        # Keras 3.15's SimpleRNN drops activity_regularizer (its GRU and LSTM pass it on);
        # rnnkit applies it as they do: L2(0.1) of the output sequence per sample.
        sequence = model.layers[0](torch.tensor(x)).detach()
        extra = 0.1 * float(torch.sum(sequence ** 2)) / len(x)
        expected = [extra, *expected]
    np.testing.assert_allclose([float(v.detach()) for v in model.losses], expected, **TOL)
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=4, verbose=0),
                               case["evaluate"] + extra, **TOL)
    np.testing.assert_allclose(model.train_on_batch(x, y), case["train_on_batch"] + extra, **TOL)
    if not extra:
        for got, want in zip(model.get_weights(), after):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(META["constraint_functions"]))
def test_constraint_functions(name):
    case = META["constraint_functions"][name]
    constraint = constraints.deserialize(case)
    got = constraint(torch.tensor(ARRAYS["constraint_functions/w"])).numpy()
    np.testing.assert_allclose(got, ARRAYS[f"constraint_functions/{name}"], **TOL)


def _constrained(name):
    C = constraints
    return {
        "dense": lambda: [Dense(3, kernel_constraint=C.MaxNorm(0.5), bias_constraint=C.NonNeg())],
        "lstm": lambda: [LSTM(3, kernel_constraint=C.UnitNorm(),
                              recurrent_constraint=C.MinMaxNorm(0.2, 0.6),
                              bias_constraint=C.NonNeg()), Dense(1)],
        "embedding": lambda: [Embedding(6, 3, embeddings_constraint=C.MaxNorm(0.3, axis=1)),
                              SimpleRNN(2, kernel_constraint="non_neg"), Dense(1)],
    }[name]()


@pytest.mark.parametrize("optimizer", ["rnnkit", "torch"])
@pytest.mark.parametrize("name", sorted(META["constrained_models"]))
def test_constraints_after_one_step_as_keras(name, optimizer):
    case = META["constrained_models"][name]
    x, y = ARRAYS[f"constrained/{name}/x"], ARRAYS[f"constrained/{name}/y"]
    before, after = _arrays(f"constrained/{name}", case["weights"])
    model = rk.Sequential(_constrained(name))
    model.build((None, *x.shape[1:]))
    model.set_weights(before)
    sgd = optimizers.SGD(1.0) if optimizer == "rnnkit" else torch.optim.SGD(
        model.parameters(), lr=1.0)
    model.compile(optimizer=sgd, loss="mse")
    model.train_on_batch(x, y)
    for got, want in zip(model.get_weights(), after):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _stacked(name):
    return {
        "simple_lstm_gru": lambda: RNN([SimpleRNNCell(3), LSTMCell(2), GRUCell(4)],
                                       return_sequences=True, return_state=True),
        "lstm_lstm_last": lambda: RNN(StackedRNNCells([LSTMCell(3), LSTMCell(2)]),
                                      return_state=True),
        "gru_simple_backwards": lambda: RNN([GRUCell(3, reset_after=False), SimpleRNNCell(2)],
                                            go_backwards=True, return_sequences=True),
    }[name]()


@pytest.mark.parametrize("name", sorted(META["stacked"]))
def test_stacked_cells_give_keras_outputs_and_states(name):
    case = META["stacked"][name]
    layer = _stacked(name)
    x = ARRAYS[f"stacked/{name}/x"]
    layer(x)
    assert [list(w.shape) for w in layer.get_weights()] == case["weight_shapes"]
    layer.set_weights([ARRAYS[f"stacked/{name}/w{i}"] for i in range(case["weights"])])
    mask = torch.tensor(ARRAYS[f"stacked/{name}/mask"]) if case["masked"] else None
    outputs = layer(x, mask=mask)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    # Keras returns the states per cell (a list for LSTMCell); the fixture holds them flat
    outputs = [t for o in outputs for t in (o if isinstance(o, list) else [o])]
    assert len(outputs) == case["outputs"]
    for i, got in enumerate(outputs):
        np.testing.assert_allclose(got.detach().numpy(), ARRAYS[f"stacked/{name}/out{i}"],
                                   **TOL)
    clone = RNN.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    again = clone(x, mask=mask)
    again = again if isinstance(again, list) else [again]
    again = [t for o in again for t in (o if isinstance(o, list) else [o])]
    for got, want in zip(again, outputs):
        torch.testing.assert_close(got, want)


def test_stacked_cells_dropout_trains():
    torch.manual_seed(0)
    layer = RNN([LSTMCell(3, dropout=0.5, recurrent_dropout=0.3), GRUCell(2, dropout=0.5)])
    x = torch.randn(4, 6, 2)
    assert not torch.allclose(layer(x, training=True), layer(x, training=True))
    torch.testing.assert_close(layer(x, training=False), layer(x, training=False))
