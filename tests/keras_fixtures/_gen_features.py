"""Fixtures for Keras features beyond the layers' forward pass (needs Keras, JAX backend):
learning-rate schedules and optimizers driven by them, regularizer losses (functions, layer
and model losses, the evaluated loss), constraints (functions, and the weights after one
SGD step), and stacked cells (``RNN([cell, cell, ...])``). Written to ``features.json``
(configs, scalars) and ``features.npz`` (arrays), keyed by case name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from _gen_common import rng_for, write_json, write_npz


def _schedules(meta: dict[str, Any]) -> None:
    from keras.optimizers import schedules

    steps = [0, 1, 2, 3, 5, 8, 10, 13, 20, 33, 100]
    cases = {
        "exponential": schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5),
        "exponential_staircase": schedules.ExponentialDecay(0.1, 4, 0.5, staircase=True),
        "inverse_time": schedules.InverseTimeDecay(0.1, 3, 0.7),
        "inverse_time_staircase": schedules.InverseTimeDecay(0.1, 3, 0.7, staircase=True),
        "piecewise": schedules.PiecewiseConstantDecay([2, 10], [0.1, 0.05, 0.01]),
        "polynomial": schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0),
        "polynomial_cycle": schedules.PolynomialDecay(0.1, 10, 0.01, power=0.5, cycle=True),
        "cosine": schedules.CosineDecay(0.1, 20, alpha=0.1),
        "cosine_warmup": schedules.CosineDecay(0.0, 20, alpha=0.0, warmup_target=0.1,
                                               warmup_steps=5),
    }
    meta["schedules"] = {
        name: {"class_name": type(s).__name__, "config": s.get_config(), "steps": steps,
               "values": [float(s(step)) for step in steps]}
        for name, s in cases.items()}


def _scheduled_optimizers(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    import keras
    from keras.optimizers import schedules

    rng = rng_for("scheduled_optimizers")
    start = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(6)]
    arrays["scheduled/start"] = start
    arrays["scheduled/grads"] = np.stack(grads)
    cases = {
        "sgd_exponential": (keras.optimizers.SGD,
                            schedules.ExponentialDecay(0.1, 2, 0.5), {"momentum": 0.9}),
        "adam_piecewise": (keras.optimizers.Adam,
                           schedules.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01]), {}),
    }
    meta["scheduled_optimizers"] = {}
    for name, (cls, schedule, extra) in cases.items():
        variable = keras.Variable(start)
        optimizer = cls(learning_rate=schedule, **extra)
        optimizer.build([variable])
        for g in grads:
            optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
        arrays[f"scheduled/{name}"] = np.asarray(variable)
        meta["scheduled_optimizers"][name] = {
            "class_name": cls.__name__, "extra": extra,
            "schedule": {"class_name": type(schedule).__name__, "config": schedule.get_config()}}


def _set_random_weights(model: Any, rng: np.random.Generator) -> list[np.ndarray]:
    weights = [rng.normal(scale=0.5, size=w.shape).astype(np.float32)
               for w in model.get_weights()]
    model.set_weights(weights)
    return weights


def _regularizers(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    import keras
    from keras import layers, regularizers

    rng = rng_for("regularizer_functions")
    w = rng.normal(size=(4, 3)).astype(np.float32)
    arrays["regularizer_functions/w"] = w
    functions = {"l1": regularizers.L1(0.01), "l2": regularizers.L2(0.02),
                 "l1l2": regularizers.L1L2(l1=0.01, l2=0.02), "l2_default": regularizers.L2()}
    meta["regularizer_functions"] = {
        name: {"class_name": type(r).__name__, "config": r.get_config(), "value": float(r(w))}
        for name, r in functions.items()}

    models = {
        "dense": lambda: [layers.Dense(3, kernel_regularizer=regularizers.L2(0.1),
                                       bias_regularizer=regularizers.L1(0.2),
                                       activity_regularizer=regularizers.L2(0.05))],
        "lstm": lambda: [layers.LSTM(3, kernel_regularizer=regularizers.L1(0.01),
                                     recurrent_regularizer=regularizers.L2(0.02),
                                     bias_regularizer=regularizers.L1L2(0.01, 0.01),
                                     activity_regularizer=regularizers.L1(0.03)),
                         layers.Dense(1)],
        "simple_rnn_sequences": lambda: [
            layers.SimpleRNN(3, return_sequences=True, activity_regularizer=regularizers.L2(0.1),
                             kernel_regularizer=regularizers.L2(0.05)),
            layers.Dense(1, kernel_regularizer=regularizers.L1(0.1))],
        "gru": lambda: [layers.GRU(2, kernel_regularizer=regularizers.L2(0.1),
                                   recurrent_regularizer=regularizers.L1(0.05)), layers.Dense(1)],
        "embedding": lambda: [layers.Embedding(6, 3, embeddings_regularizer=regularizers.L2(0.1),
                                               activity_regularizer=regularizers.L1(0.01)),
                              layers.SimpleRNN(2), layers.Dense(1)],
    }
    meta["regularized_models"] = {}
    for name, make in models.items():
        rng = rng_for(f"regularized/{name}")
        if name == "embedding":
            x = rng.integers(0, 6, size=(4, 5)).astype(np.int32)
            inputs = keras.Input(shape=(5,), dtype="int32")
        elif name == "dense":
            x = rng.normal(size=(4, 4)).astype(np.float32)
            inputs = keras.Input(shape=(4,))
        else:
            x = rng.normal(size=(4, 5, 2)).astype(np.float32)
            inputs = keras.Input(shape=(5, 2))
        model = keras.Sequential([inputs, *make()])
        weights = _set_random_weights(model, rng)
        y = rng.normal(size=model.output_shape[1:]).astype(np.float32)
        y = np.broadcast_to(y, (4, *model.output_shape[1:])).copy()
        model(x)
        call_losses = [float(v) for v in model.losses]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        plain = float(np.mean((np.asarray(model.predict(x, verbose=0)) - y) ** 2))
        evaluated = float(model.evaluate(x, y, batch_size=4, verbose=0))
        trained = float(model.train_on_batch(x, y))
        for i, value in enumerate(weights):
            arrays[f"regularized/{name}/w{i}"] = value
        for i, value in enumerate(model.get_weights()):
            arrays[f"regularized/{name}/after{i}"] = value
        arrays[f"regularized/{name}/x"] = x
        arrays[f"regularized/{name}/y"] = y
        meta["regularized_models"][name] = {
            "losses_after_call": call_losses, "mse": plain, "evaluate": evaluated,
            "train_on_batch": trained, "weights": len(weights)}


def _constraints(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    import keras
    from keras import constraints, layers

    rng = rng_for("constraint_functions")
    w = rng.normal(size=(4, 3)).astype(np.float32) * 2
    arrays["constraint_functions/w"] = w
    functions = {
        "max_norm": constraints.MaxNorm(2.0), "max_norm_axis1": constraints.MaxNorm(1.0, axis=1),
        "non_neg": constraints.NonNeg(), "unit_norm": constraints.UnitNorm(),
        "unit_norm_axis1": constraints.UnitNorm(axis=1),
        "min_max_norm": constraints.MinMaxNorm(0.5, 1.5, rate=0.7),
    }
    meta["constraint_functions"] = {}
    for name, c in functions.items():
        arrays[f"constraint_functions/{name}"] = np.asarray(c(keras.ops.convert_to_tensor(w)))
        meta["constraint_functions"][name] = {"class_name": type(c).__name__,
                                              "config": c.get_config()}

    models = {
        "dense": lambda: [layers.Dense(3, kernel_constraint=constraints.MaxNorm(0.5),
                                       bias_constraint=constraints.NonNeg())],
        "lstm": lambda: [layers.LSTM(3, kernel_constraint=constraints.UnitNorm(),
                                     recurrent_constraint=constraints.MinMaxNorm(0.2, 0.6),
                                     bias_constraint=constraints.NonNeg()), layers.Dense(1)],
        "embedding": lambda: [layers.Embedding(6, 3, embeddings_constraint=constraints.MaxNorm(
            0.3, axis=1)), layers.SimpleRNN(2, kernel_constraint=constraints.NonNeg()),
            layers.Dense(1)],
    }
    meta["constrained_models"] = {}
    for name, make in models.items():
        rng = rng_for(f"constrained/{name}")
        if name == "embedding":
            x = rng.integers(0, 6, size=(4, 5)).astype(np.int32)
            inputs = keras.Input(shape=(5,), dtype="int32")
        elif name == "dense":
            x = rng.normal(size=(4, 4)).astype(np.float32)
            inputs = keras.Input(shape=(4,))
        else:
            x = rng.normal(size=(4, 5, 2)).astype(np.float32)
            inputs = keras.Input(shape=(5, 2))
        model = keras.Sequential([inputs, *make()])
        weights = _set_random_weights(model, rng)
        y = rng.normal(size=(4, *model.output_shape[1:])).astype(np.float32)
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        model.train_on_batch(x, y)
        for i, value in enumerate(weights):
            arrays[f"constrained/{name}/w{i}"] = value
        for i, value in enumerate(model.get_weights()):
            arrays[f"constrained/{name}/after{i}"] = value
        arrays[f"constrained/{name}/x"] = x
        arrays[f"constrained/{name}/y"] = y
        meta["constrained_models"][name] = {"weights": len(weights)}


def _stacked(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    from keras import layers

    cases = {
        "simple_lstm_gru": (lambda: layers.RNN([layers.SimpleRNNCell(3), layers.LSTMCell(2),
                                                layers.GRUCell(4)], return_sequences=True,
                                               return_state=True), True),
        "lstm_lstm_last": (lambda: layers.RNN(layers.StackedRNNCells(
            [layers.LSTMCell(3), layers.LSTMCell(2)]), return_state=True), False),
        "gru_simple_backwards": (lambda: layers.RNN([layers.GRUCell(3, reset_after=False),
                                                     layers.SimpleRNNCell(2)],
                                                    go_backwards=True, return_sequences=True),
                                 True),
    }
    meta["stacked"] = {}
    for name, (make, masked) in cases.items():
        rng = rng_for(f"stacked/{name}")
        layer = make()
        x = rng.normal(size=(3, 5, 2)).astype(np.float32)
        mask = np.ones((3, 5), bool)
        if masked:
            mask[1, 3:] = False
            mask[2, 4:] = False
        layer(x)
        weights = [rng.normal(scale=0.5, size=w.shape).astype(np.float32)
                   for w in layer.get_weights()]
        layer.set_weights(weights)
        outputs = layer(x, mask=mask) if masked else layer(x)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        flat = []
        for out in outputs:
            flat.extend(out if isinstance(out, (list, tuple)) else [out])
        for i, value in enumerate(weights):
            arrays[f"stacked/{name}/w{i}"] = value
        for i, value in enumerate(flat):
            arrays[f"stacked/{name}/out{i}"] = np.asarray(value)
        arrays[f"stacked/{name}/x"] = x
        arrays[f"stacked/{name}/mask"] = mask
        meta["stacked"][name] = {"weights": len(weights), "outputs": len(flat),
                                 "masked": masked,
                                 "weight_shapes": [list(w.shape) for w in weights],
                                 "output_shapes": [list(np.shape(o)) for o in flat]}


def generate_features(here: Path) -> dict[str, int]:
    meta: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    _schedules(meta)
    _scheduled_optimizers(meta, arrays)
    _regularizers(meta, arrays)
    _constraints(meta, arrays)
    _stacked(meta, arrays)
    write_json(here / "features.json", meta)
    write_npz(here / "features.npz", arrays)
    return {key: len(value) for key, value in meta.items()}
