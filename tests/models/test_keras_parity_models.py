"""Sequential models and short fits against real Keras 3 (tests/keras_fixtures; Keras is not
needed here).

Model cases (the seeds' models, Embedding + mask with post- and pre-padding, Masking, stacked and
bidirectional stacks, TimeDistributed and RepeatVector heads): build the model from the layer
specs, load Keras' weights, and compare ``model(x)``, ``count_params`` (total, trainable,
non-trainable), each layer's output shape and parameter count, and the ``summary()`` text,
character for character (names are Keras' automatic names, so each case starts from fresh name
counters, as Keras' ``clear_session``). Then ``save``/``load_model`` must give the same numbers.

Training cases: SimpleRNN(4) + Dense(1) on the seeds' next-value data, ``fit`` with SGD(0.1) and
with ``"adam"``, mse loss and an mae metric, batch 2, 2 epochs, no shuffling: the weights after
each of the six steps, the per-batch logs, the history and the predictions after the fit.

Tolerance: float32, rtol 1e-5 / atol 2e-6 for outputs and weights; the logged losses and metrics
are running float32 means, compared at rtol 1e-5 / atol 1e-6.

One documented difference. A model without an input shape, built by its first call on data
(``seed_deep_simplernn``), records the batch size of that data in Keras 3 (its summary shows
``(3, 10, 8)``); rnnkit records ``None`` there, so the model stays usable for any batch size
and ``input_shape`` is ``(None, 10, 4)`` however it was built. Only that axis may differ.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

import rnnkit.layers as layers
from keras_fixtures.fixtures import ModelCase, load_model_cases, load_training
from rnnkit.layers import _base
from rnnkit.models import Sequential, load_model
from rnnkit.training import callbacks, optimizers

TOL = dict(rtol=1e-5, atol=2e-6)
LOG_TOL = dict(rtol=1e-5, atol=1e-6)
MODEL_CASES = {case.name: case for case in load_model_cases()}
BUILT_FROM_DATA = {"seed_deep_simplernn"}


@pytest.fixture(autouse=True)
def _fresh_names(monkeypatch):
    """Keras' automatic names restart after clear_session; so do ours, per test."""
    monkeypatch.setattr(_base, "_name_counters", type(_base._name_counters)(
        _base._name_counters.default_factory))
    monkeypatch.setenv("COLUMNS", "80")  # the fixtures' summaries are 76 characters wide


def build_layer(spec: dict[str, Any]) -> Any:
    cls = getattr(layers, spec["class"])
    if "layer" in spec:
        return cls(build_layer(spec["layer"]), **spec["kwargs"])
    return cls(**spec["kwargs"])


def build_model(case: ModelCase) -> Sequential:
    """The seeds' way: ``Sequential()`` then ``.add`` each layer, then Keras' weights."""
    model = Sequential()
    for spec in case.layers:
        model.add(build_layer(spec))
    if case.name in BUILT_FROM_DATA:
        assert not model.built
        model(case.x)
    assert model.built
    model.set_weights(case.weights)
    return model


def summary_text(model: Sequential) -> str:
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert len(lines) == 1  # print_fn receives the whole table
    return lines[0]


def summary_rows(text: str) -> list[list[str]]:
    """The table's body rows as [name (type), output shape, params]; a row that rich wrapped
    over several lines is joined back."""
    rows: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            current = cells if current is None else [
                (a + " " + b).strip() for a, b in zip(current, cells)]
        elif current is not None:
            rows.append(current)
            current = None
    return rows


def summary_totals(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ ((?:Total|Trainable|Non-trainable) params): (.*)$", text, re.M))


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_model_outputs_and_counts(name):
    case = MODEL_CASES[name]
    model = build_model(case)
    assert [tuple(w.shape) for w in model.get_weights()] == [w.shape for w in case.weights]
    y = model(case.x)
    assert isinstance(y, torch.Tensor)
    np.testing.assert_allclose(y.detach().numpy(), case.y, **TOL, err_msg=name)
    np.testing.assert_allclose(model.predict(case.x, verbose=0), case.y, **TOL, err_msg=name)
    assert model.count_params() == case.count_params
    assert sum(w.numel() for w in model.trainable_weights) == case.trainable_params
    assert sum(w.numel() for w in model.non_trainable_weights) == case.non_trainable_params
    assert [layer.name for layer in model.layers] == case.raw["layer_names"]
    assert [type(layer).__name__ for layer in model.layers] == case.raw["layer_classes"]
    assert [layer.count_params() for layer in model.layers] == case.layer_param_counts
    keras_shapes = [tuple(s) for s in case.layer_output_shapes]
    if name in BUILT_FROM_DATA:  # see the module docstring
        assert all(s[0] == len(case.x) for s in keras_shapes)
        keras_shapes = [(None, *s[1:]) for s in keras_shapes]
    assert model.layer_output_shapes() == keras_shapes


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_summary_matches_keras_text(name):
    case = MODEL_CASES[name]
    model = build_model(case)
    ours = summary_text(model)
    if name not in BUILT_FROM_DATA:
        assert ours == case.summary
    keras_rows = summary_rows(case.summary)
    assert len(keras_rows) == len(case.layers)
    if name in BUILT_FROM_DATA:
        keras_rows = [[n, re.sub(r"^\(\d+,", "(None,", s), p] for n, s, p in keras_rows]
    assert summary_rows(ours) == keras_rows
    assert summary_totals(ours) == summary_totals(case.summary)
    assert set(summary_totals(ours)) == {"Total params", "Trainable params",
                                         "Non-trainable params"}


def test_summary_before_build_matches_keras():
    case = MODEL_CASES["seed_deep_simplernn"]
    model = Sequential()
    for spec in case.layers:
        model.add(build_layer(spec))
    assert summary_text(model) == case.raw["summary_before_build"]


def test_frozen_embedding_counts_as_non_trainable():
    """Seed 001: Embedding(trainable=False) with a Constant one-hot matrix."""
    case = MODEL_CASES["seed_char_sentiment"]
    model = build_model(case)
    embedding = model.layers[0]
    assert not embedding.trainable and not embedding.embeddings.requires_grad
    np.testing.assert_array_equal(case.weights[0], np.eye(11, dtype=np.float32))
    fresh = build_layer(case.layers[0])
    fresh.maybe_build((None, 10))
    np.testing.assert_array_equal(fresh.get_weights()[0], np.eye(11))  # from the initializer
    totals = summary_totals(summary_text(model))
    assert totals["Non-trainable params"] == "121 (484.00 B)"


@pytest.mark.parametrize("name", ["embedding_mask_gru_dense", "embedding_mask_gru_dense_prepad"])
def test_moving_the_padding_to_the_other_end_keeps_the_prediction(name):
    """Each Keras case (post- or pre-padded) re-padded at the other end: the masked GRU sees the
    same real steps, so the prediction must not change."""
    case = MODEL_CASES[name]
    assert (case.x == 0).any()
    lengths = (case.x != 0).sum(1)
    other = np.zeros_like(case.x)
    for row, (ids, n) in enumerate(zip(case.x, lengths)):
        real = ids[ids != 0]
        if name.endswith("_prepad"):
            other[row, :n] = real
        else:
            other[row, len(ids) - n:] = real
    model = build_model(case)
    np.testing.assert_allclose(model(other).detach().numpy(), case.y, **TOL)


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_save_and_load_model_round_trip(name, tmp_path):
    case = MODEL_CASES[name]
    model = build_model(case)
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / "model.rnnkit"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded(case.x).detach().numpy(), case.y, **TOL, err_msg=name)
    assert [type(layer).__name__ for layer in loaded.layers] == case.raw["layer_classes"]
    assert [layer.trainable for layer in loaded.layers] == [layer.trainable
                                                            for layer in model.layers]
    assert loaded.count_params() == case.count_params
    assert sum(w.numel() for w in loaded.trainable_weights) == case.trainable_params
    assert loaded.layer_output_shapes() == model.layer_output_shapes()


# ----------------------------------------------------------------------------- training

TRAINING = load_training()
RUNS = {run["name"]: run for run in TRAINING["runs"]}


def _optimizer(spec: Any) -> Any:
    if isinstance(spec, str):
        return spec
    return getattr(optimizers, spec["class"])(**spec["kwargs"])


@pytest.mark.parametrize("name", sorted(RUNS))
def test_fit_reproduces_keras_step_by_step(name):
    run = RUNS[name]
    model = Sequential([build_layer(spec) for spec in TRAINING["layers"]])
    model.set_weights(run["init_weights"])
    model.compile(optimizer=_optimizer(run["optimizer"]), loss=run["loss"],
                  metrics=run["metrics"])
    weights_after: list[list[np.ndarray]] = []
    batch_logs: list[dict[str, float]] = []

    def on_batch_end(batch: int, logs: dict[str, float]) -> None:
        weights_after.append(model.get_weights())
        batch_logs.append(dict(logs))

    history = model.fit(TRAINING["x"], TRAINING["y"], verbose=0,
                        callbacks=[callbacks.LambdaCallback(on_train_batch_end=on_batch_end)],
                        **run["fit_kwargs"])
    steps = run["weights_after_step"]
    assert len(weights_after) == len(steps) == 6
    for step, ours in enumerate(weights_after, start=1):
        for i, (w, keras) in enumerate(zip(ours, steps[str(step)])):
            np.testing.assert_allclose(w, keras, **TOL, err_msg=f"{name} step {step} weight {i}")
    for ours, keras in zip(model.get_weights(), run["final_weights"]):
        np.testing.assert_allclose(ours, keras, **TOL)
    assert len(batch_logs) == len(run["batch_logs"])
    for ours, keras in zip(batch_logs, run["batch_logs"]):
        assert set(ours) == set(keras)
        for key in keras:
            np.testing.assert_allclose(ours[key], keras[key], **LOG_TOL, err_msg=key)
    assert set(history.history) == set(run["history"])
    for key, values in run["history"].items():
        np.testing.assert_allclose(history.history[key], values, **LOG_TOL, err_msg=key)
    np.testing.assert_allclose(model.predict(TRAINING["x"], verbose=0), run["pred_after_fit"],
                               **TOL)


def test_the_fixtures_cover_what_the_models_promise():
    names = set(MODEL_CASES)
    classes = {spec["class"] for case in MODEL_CASES.values() for spec in case.layers}
    assert {"SimpleRNN", "GRU", "LSTM", "Bidirectional", "Dense", "Embedding", "Masking",
            "TimeDistributed", "RepeatVector"} <= classes
    assert {"seed_simplernn10_dense1", "seed_simplernn3_input_shape",
            "seed_char_sentiment", "seed_deep_bidi_simplernn"} <= names
    assert MODEL_CASES["seed_simplernn10_dense1"].count_params == 131
    assert MODEL_CASES["seed_simplernn3_input_shape"].count_params == 42
    assert set(RUNS) == {"sgd", "adam"}


# ----------------------------------------------------------------------------- data checks
# Issue 3: fit/evaluate check their data before any step, on the fixtures' training model.

def _bad(kind: str) -> tuple[np.ndarray, Any]:
    x, y = TRAINING["x"].copy(), TRAINING["y"].copy()
    if kind == "counts":
        return x, y[:5]
    if kind == "features":
        return np.concatenate([x, x], axis=-1), y
    if kind == "nan_x":
        x[2, 1, 0] = np.nan
    elif kind == "inf_y":
        y[0, 0] = np.inf
    elif kind == "empty":
        return x[:0], y[:0]
    return x, y


@pytest.mark.parametrize("method", ["fit", "evaluate"])
@pytest.mark.parametrize("kind,message", [
    ("counts", "x has 6 samples but y has 5"),
    ("features", r"axis 2 \(features\) has size 2, expected 1"),
    ("nan_x", r"x contains 1 non-finite value\(s\) \(NaN\), the first at index \(2, 1, 0\)"),
    ("inf_y", r"y contains 1 non-finite value\(s\) \(inf\)"),
    ("empty", "x is empty: it has 0 samples"),
])
def test_fit_and_evaluate_check_their_data_first(method, kind, message):
    model = Sequential([build_layer(spec) for spec in TRAINING["layers"]])
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    x, y = _bad(kind)
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(x, y, verbose=0)
    for w, w0 in zip(model.get_weights(), before):  # nothing was trained
        np.testing.assert_array_equal(w, w0)
