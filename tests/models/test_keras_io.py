"""rnnkit.models.load_keras: Keras 3 .keras / .weights.h5 and legacy .h5 files in.

The golden files (tests/keras_fixtures/files, written by Keras 3 with the JAX backend) come with
y = model(x) computed by Keras; float32 tolerance rtol=1e-5, atol=1e-6. Broken and unsupported
files are made here with zipfile/json/h5py (Keras is not needed).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.models import Sequential, load_keras
from keras_fixtures.fixtures import load_file_cases

CASES = {case["name"]: case for case in load_file_cases()}
FULL_FORMATS = ("keras", "legacy_h5")


def _predict(model: Sequential, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


def _fresh_copy(model: Sequential) -> Sequential:
    """Same architecture and layer names, new random weights."""
    return Sequential.from_config(model.get_config())


@pytest.mark.parametrize("fmt", FULL_FORMATS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_full_model_files_give_keras_outputs(name: str, fmt: str) -> None:
    case = CASES[name]
    model = load_keras(case["paths"][fmt])
    assert isinstance(model, Sequential)
    assert model.training  # a new model is in training mode, as any torch module
    np.testing.assert_allclose(_predict(model, case["x"]), case["y"], rtol=1e-5, atol=1e-6)
    for got, want in zip(model.get_weights(), case["weights"]):
        np.testing.assert_array_equal(got, want)
    assert [list(w.shape) for w in model.get_weights()] == case["weight_shapes"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_weights_file_into_model_of_same_architecture(name: str) -> None:
    case = CASES[name]
    model = _fresh_copy(load_keras(case["paths"]["keras"]))
    assert not np.allclose(_predict(model, case["x"]), case["y"], atol=1e-3)  # really fresh
    same = load_keras(case["paths"]["weights_h5"], model=model)
    assert same is model
    np.testing.assert_allclose(_predict(model, case["x"]), case["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", FULL_FORMATS)
def test_full_model_file_weights_into_given_model(fmt: str) -> None:
    case = CASES["stacked_lstm"]
    model = _fresh_copy(load_keras(case["paths"]["keras"]))
    load_keras(case["paths"][fmt], model=model)
    np.testing.assert_allclose(_predict(model, case["x"]), case["y"], rtol=1e-5, atol=1e-6)


def test_loaded_configs_match_keras() -> None:
    model = load_keras(CASES["embedding_bigru_dense"]["paths"]["keras"])
    embedding, bidirectional, dense = model.layers
    assert (embedding.input_dim, embedding.output_dim, embedding.mask_zero) == (10, 4, True)
    assert bidirectional.merge_mode == "concat"
    assert bidirectional.backward_layer.go_backwards
    assert bidirectional.forward_layer.units == 5 and bidirectional.forward_layer.reset_after
    assert dense.units == 3 and dense.activation is rnnkit.activations.softmax
    assert model.input_shape == (None, 6)
    assert [layer.name for layer in model.layers] == ["embedding", "bidirectional", "dense"]


def test_top_level_export() -> None:
    assert rnnkit.models.load_keras is load_keras


# -- Keras 2 style files, written here as Keras 2 writes them --------------------------------
def _keras2_lstm_config(**lstm_options: Any) -> dict[str, Any]:
    lstm = {"name": "lstm", "trainable": True, "batch_input_shape": [None, 5, 3],
            "dtype": "float32", "return_sequences": True, "return_state": False,
            "go_backwards": False, "stateful": False, "unroll": False, "time_major": False,
            "units": 6, "activation": "tanh", "recurrent_activation": "sigmoid",
            "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "recurrent_initializer": {"class_name": "Orthogonal",
                                      "config": {"gain": 1.0, "seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "unit_forget_bias": True, "kernel_regularizer": None, "recurrent_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0,
            "recurrent_dropout": 0.0, "implementation": 2, **lstm_options}
    lstm_1 = {**lstm, "name": "lstm_1", "units": 4, "return_sequences": False}
    del lstm_1["batch_input_shape"]
    dense = {"name": "dense", "trainable": True, "dtype": "float32", "units": 1,
             "activation": "linear", "use_bias": True,
             "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
             "bias_initializer": {"class_name": "Zeros", "config": {}},
             "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
             "kernel_constraint": None, "bias_constraint": None}
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "LSTM", "config": lstm}, {"class_name": "LSTM", "config": lstm_1},
        {"class_name": "Dense", "config": dense}]}}


def _write_keras2_weights(group: Any, weights: list[np.ndarray]) -> None:
    """Keras 2's HDF5 layout: layer_names, then per layer weight_names 'layer/cell/kernel:0'."""
    layout = [("lstm", ["lstm/lstm_cell/kernel:0", "lstm/lstm_cell/recurrent_kernel:0",
                        "lstm/lstm_cell/bias:0"]),
              ("lstm_1", ["lstm_1/lstm_cell_1/kernel:0", "lstm_1/lstm_cell_1/recurrent_kernel:0",
                          "lstm_1/lstm_cell_1/bias:0"]),
              ("dense", ["dense/kernel:0", "dense/bias:0"])]
    group.attrs["layer_names"] = np.array([name.encode() for name, _ in layout])
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.15.0"
    values = iter(weights)
    for name, names in layout:
        layer = group.create_group(name)
        layer.attrs["weight_names"] = np.array([n.encode() for n in names])
        for weight_name in names:
            layer.create_dataset(weight_name, data=next(values))


def _write_keras2_model(path: Path, config: dict[str, Any], weights: list[np.ndarray]) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        _write_keras2_weights(f.create_group("model_weights"), weights)


def test_keras2_legacy_model_file(tmp_path: Path) -> None:
    case = CASES["stacked_lstm"]
    path = tmp_path / "keras2.h5"
    _write_keras2_model(path, _keras2_lstm_config(), case["weights"])
    model = load_keras(path)
    assert [layer.name for layer in model.layers] == ["lstm", "lstm_1", "dense"]
    np.testing.assert_allclose(_predict(model, case["x"]), case["y"], rtol=1e-5, atol=1e-6)


def test_keras2_weights_only_file(tmp_path: Path) -> None:
    case = CASES["stacked_lstm"]
    path = tmp_path / "keras2.weights.h5"
    with h5py.File(path, "w") as f:
        _write_keras2_weights(f, case["weights"])
    model = _fresh_copy(load_keras(case["paths"]["keras"]))
    load_keras(path, model=model)
    np.testing.assert_allclose(_predict(model, case["x"]), case["y"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="weights only .*pass model="):
        load_keras(path)


def test_keras2_hard_sigmoid_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "old.h5"
    config = _keras2_lstm_config(recurrent_activation="hard_sigmoid")
    _write_keras2_model(path, config, CASES["stacked_lstm"]["weights"])
    with pytest.raises(ValueError, match="hard_sigmoid.*Keras 2"):
        load_keras(path)


def test_keras2_time_major_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "tm.h5"
    _write_keras2_model(path, _keras2_lstm_config(time_major=True), CASES["stacked_lstm"]["weights"])
    with pytest.raises(ValueError, match="time_major"):
        load_keras(path)


# -- bad and unsupported files ---------------------------------------------------------------
def _rewrite_archive(source: Path, target: Path, edit: Any) -> None:
    """Copy a .keras archive with its config.json changed by ``edit(config)``."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["config"]["layers"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: _layers(c)[1].update(class_name="Conv1D"), "'Conv1D' is not supported"),
        (lambda c: _layers(c)[1]["config"].update(
            kernel_regularizer={"class_name": "L2", "config": {"l2": 0.01}}),
         "kernel_regularizer is not supported"),
        (lambda c: _layers(c)[1]["config"].update(activation="swishy"),
         "activation 'swishy' is not supported"),
        (lambda c: _layers(c)[1]["config"].update(recurrent_dropout="x"), "recurrent_dropout"),
        (lambda c: _layers(c)[1]["config"].update(new_keras_switch=True),
         "option new_keras_switch=True is not supported"),
        (lambda c: _layers(c)[1].update(module="my_package.layers", registered_name="MyLSTM"),
         "'MyLSTM' is a custom layer"),
        (lambda c: _layers(c)[1]["config"]["dtype"]["config"].update(name="mixed_float16"),
         "dtype policy 'mixed_float16'"),
        # functional models load now; a Sequential config relabelled lacks the graph
        (lambda c: c.update(class_name="Functional"), "needs 'layers', 'input_layers'"),
        (lambda c: _layers(c)[2].update(class_name="Lambda"), "'Lambda' is not supported"),
    ],
    ids=["layer", "regularizer", "activation", "bad-value", "unknown-option", "custom", "dtype",
         "functional", "lambda"],
)
def test_unsupported_configs_name_the_problem(tmp_path: Path, edit: Any, message: str) -> None:
    target = tmp_path / "edited.keras"
    _rewrite_archive(CASES["stacked_lstm"]["paths"]["keras"], target, edit)
    with pytest.raises(ValueError, match=message):
        load_keras(target)


def test_unknown_option_left_off_is_accepted(tmp_path: Path) -> None:
    target = tmp_path / "edited.keras"
    _rewrite_archive(CASES["stacked_lstm"]["paths"]["keras"], target,
                     lambda c: _layers(c)[1]["config"].update(new_keras_switch=None))
    case = CASES["stacked_lstm"]
    np.testing.assert_allclose(_predict(load_keras(target), case["x"]), case["y"], rtol=1e-5,
                               atol=1e-6)


def test_corrupt_zip(tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    data = CASES["simplernn_dense"]["paths"]["keras"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid .keras archive"):
        load_keras(path)


def test_archive_without_weights(tmp_path: Path) -> None:
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="no model.weights.h5"):
        load_keras(path)


def test_archive_with_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{not json")
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        load_keras(path)


def test_not_a_keras_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    with pytest.raises(ValueError, match="neither a Keras .keras archive"):
        load_keras(text)
    other = tmp_path / "data.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match="not a Keras model or weights file"):
        load_keras(other, model=load_keras(CASES["simplernn_dense"]["paths"]["keras"]))
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load_keras(fake)
    with pytest.raises(FileNotFoundError):
        load_keras(tmp_path / "missing.keras")


def test_weights_file_needs_a_model_with_the_same_names() -> None:
    case = CASES["simplernn_dense"]
    with pytest.raises(ValueError, match="weights only"):
        load_keras(case["paths"]["weights_h5"])
    other = Sequential([rnnkit.layers.SimpleRNN(8, input_shape=(5, 3), name="rnn_x"),
                        rnnkit.layers.Dense(2, name="dense")])
    with pytest.raises(ValueError, match="no weights for layer 'rnn_x'.*simple_rnn"):
        load_keras(case["paths"]["weights_h5"], model=other)


def test_weights_file_with_other_shapes() -> None:
    case = CASES["simplernn_dense"]
    other = Sequential([rnnkit.layers.SimpleRNN(7, input_shape=(5, 3), name="simple_rnn"),
                        rnnkit.layers.Dense(2, name="dense")])
    with pytest.raises(ValueError, match="simple_rnn.*shape"):
        load_keras(case["paths"]["weights_h5"], model=other)


def test_legacy_layer_count_mismatch() -> None:
    case = CASES["stacked_lstm"]
    small = Sequential([rnnkit.layers.LSTM(6, input_shape=(5, 3)), rnnkit.layers.Dense(1)])
    with pytest.raises(ValueError, match="weights for 3 layers"):
        load_keras(case["paths"]["legacy_h5"], model=small)


def test_model_must_be_an_rnnkit_model() -> None:
    with pytest.raises(TypeError, match="must be an rnnkit model"):
        load_keras(CASES["stacked_lstm"]["paths"]["keras"], model=torch.nn.Linear(2, 2))


def test_reader_never_imports_from_the_file(tmp_path: Path) -> None:
    """A config naming a module is refused, not imported."""
    target = tmp_path / "evil.keras"

    def edit(config: dict[str, Any]) -> None:
        _layers(config)[1].update(module="os", class_name="system", registered_name="system")

    _rewrite_archive(CASES["stacked_lstm"]["paths"]["keras"], target, edit)
    with pytest.raises(ValueError, match="custom layer"):
        load_keras(target)

