"""model.save / load_model / save_weights / load_weights: round trips, atomic writes, and a
clear error for every kind of bad file (missing, empty, truncated, foreign, tampered)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.layers import GRU, Dense, Embedding
from rnnkit.models import Sequential, load_model, saving


def _model(compiled: bool = True) -> Sequential:
    torch.manual_seed(0)
    model = Sequential([Embedding(12, 4, mask_zero=True, input_shape=(6,)), GRU(5),
                        Dense(3, activation="softmax")])
    if compiled:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return model


X = np.array([[3, 5, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
Y = np.array([0, 2])


def test_round_trip_gives_the_same_outputs_and_optimizer_state(tmp_path: Path) -> None:
    model = _model()
    model.fit(X, Y, epochs=2, verbose=0)
    model.save(tmp_path / "m.rnnkit")
    loaded = load_model(tmp_path / "m.rnnkit")
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # training continues identically from the restored optimizer (Adam moments, step count)
    torch.manual_seed(1)
    model.fit(X, Y, epochs=1, verbose=0, shuffle=False)
    torch.manual_seed(1)
    loaded.fit(X, Y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def test_weights_only_files(tmp_path: Path) -> None:
    model = _model(compiled=False)
    model.save_weights(tmp_path / "w.rnnkit")
    other = _model(compiled=False)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    other.load_weights(tmp_path / "w.rnnkit")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="weights only"):
        load_model(tmp_path / "w.rnnkit")
    different = Sequential([Embedding(12, 4, input_shape=(6,)), GRU(6), Dense(3)])
    with pytest.raises(ValueError, match="shape"):
        different.load_weights(tmp_path / "w.rnnkit")


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.rnnkit"
    model = _model()
    model.save(path)
    before = path.read_bytes()

    def crash(handle, data):  # the disk fills up half-way through the write
        handle.write(data[: len(data) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(saving, "_write_all", crash)
    with pytest.raises(OSError, match="No space"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.rnnkit"]  # no temporary file left
    monkeypatch.undo()
    assert load_model(path).count_params() == model.count_params()


def test_save_refuses_to_overwrite_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "m.rnnkit"
    _model().save(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        _model().save(path, overwrite=False)
    with pytest.raises(IsADirectoryError):
        _model().save(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _model().save(tmp_path / "missing" / "m.rnnkit")


def _header(path: Path) -> tuple[int, dict]:
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    return size, json.loads(data[8 : 8 + size])


def _rewrite_header(path: Path, header: dict) -> None:
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + size :])


@pytest.mark.parametrize("damage, message", [
    ("empty", "empty or truncated"),
    ("text", "not an rnnkit file"),
    ("truncated_header", "truncated"),
    ("truncated_data", "corrupt or truncated"),
    ("flipped_byte", "do not match"),
    ("foreign_safetensors", "no rnnkit metadata"),
    ("future_version", "format version 99"),
    ("bad_config_json", "not valid JSON"),
])
def test_bad_files_give_errors_that_name_the_problem(tmp_path: Path, damage: str,
                                                     message: str) -> None:
    path = tmp_path / "m.rnnkit"
    _model().save(path)
    data = path.read_bytes()
    size, header = _header(path)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("model = evil()\n" * 10)
    elif damage == "truncated_header":
        path.write_bytes(data[: 8 + size // 2])
    elif damage == "truncated_data":
        path.write_bytes(data[: len(data) - 16])
    elif damage == "flipped_byte":
        flipped = bytearray(data)
        flipped[-3] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif damage == "foreign_safetensors":
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(path))
    elif damage == "future_version":
        header["__metadata__"]["format_version"] = "99"
        _rewrite_header(path, header)
    elif damage == "bad_config_json":
        header["__metadata__"]["model_config"] = "{not json"
        _rewrite_header(path, header)
    with pytest.raises(ValueError, match=message) as error:
        load_model(path)
    assert str(path) in str(error.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No such file"):
        load_model(tmp_path / "absent.rnnkit")
    with pytest.raises(ValueError, match="is a directory"):
        load_model(tmp_path)


def test_a_config_naming_a_class_outside_rnnkit_layers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.rnnkit"
    _model().save(path)
    _, header = _header(path)
    config = json.loads(header["__metadata__"]["model_config"])
    config["config"]["layers"][1]["class_name"] = "os.system"
    header["__metadata__"]["model_config"] = json.dumps(config)
    _rewrite_header(path, header)
    with pytest.raises(ValueError, match="os.system"):
        load_model(path)


def test_models_nested_in_models_round_trip(tmp_path: Path) -> None:
    # every kind is a Layer: a functional model first in a Sequential, a Sequential inside
    # TimeDistributed in a functional model
    import rnnkit
    from rnnkit.layers import Flatten, SimpleRNN, TimeDistributed

    torch.manual_seed(0)
    inputs = rnnkit.Input((5, 3))
    encoder = rnnkit.Model(inputs, SimpleRNN(4, return_sequences=True)(inputs))
    first = Sequential([encoder, Flatten(), Dense(1)])
    steps = rnnkit.Input((5, 3))
    second = rnnkit.Model(steps, TimeDistributed(Sequential([Dense(2), Dense(1)]))(steps))
    x = np.random.default_rng(0).random((2, 5, 3)).astype(np.float32)
    for index, model in enumerate((first, second)):
        path = tmp_path / f"m{index}.rnnkit"
        model.save(path)
        loaded = load_model(path)
        assert [type(layer).__name__ for layer in loaded.layers] == [
            type(layer).__name__ for layer in model.layers]
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                                   rtol=0, atol=1e-6)  # float32, the same weights


def test_multi_output_compile_settings_round_trip(tmp_path: Path) -> None:
    """A loss and metrics per output and loss_weights are saved as given and restored: the
    loaded model evaluates with the same names and values and trains on identically."""
    import rnnkit as rk
    from rnnkit.training import losses

    torch.manual_seed(0)
    inputs = rk.Input(shape=(4, 3))
    hidden = rk.layers.LSTM(5)(inputs)
    model = rk.Model(inputs, [Dense(2, name="cls")(hidden), Dense(1, name="reg")(hidden)])
    model.compile(optimizer="adam",
                  loss={"cls": "sparse_categorical_crossentropy",
                        "reg": losses.MeanAbsoluteError()},
                  loss_weights={"cls": 1.0, "reg": 0.5},
                  metrics={"cls": ["accuracy"], "reg": ["mse"]})
    rng = np.random.default_rng(0)
    x = rng.random((8, 4, 3)).astype("float32")
    y = {"cls": rng.integers(0, 2, size=8), "reg": rng.random((8, 1)).astype("float32")}
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "multi.rnnkit")
    loaded = load_model(tmp_path / "multi.rnnkit")
    want = model.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(want) == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mse"]
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == want
    # the weighted total: cls_loss + 0.5 * reg_loss
    assert want["loss"] == pytest.approx(want["cls_loss"] + 0.5 * want["reg_loss"], rel=1e-6)
    more = [m.fit(x, y, epochs=1, verbose=0, shuffle=False).history for m in (model, loaded)]
    assert more[0] == more[1]


@pytest.mark.parametrize("name,weights_only,suggested", [
    ("best.keras", False, "best.rnnkit"), ("Best.H5", False, "Best.rnnkit"),
    ("w.keras", True, "w.safetensors"), ("model.weights.h5", True, "model.safetensors")])
def test_keras_file_names_are_refused_with_the_right_one_named(
        tmp_path: Path, name: str, weights_only: bool, suggested: str) -> None:
    """rnnkit's own format under a Keras name would be a file Keras cannot read and load_keras
    refuses: the save (and a ModelCheckpoint, when made) refuses and names rnnkit's extension.
    Nothing is written."""
    from rnnkit.training.callbacks import ModelCheckpoint

    model = _model()
    model.fit(X, Y, epochs=1, verbose=0)
    path = tmp_path / name
    save = model.save_weights if weights_only else model.save
    message = rf"save as '{tmp_path / suggested}'"
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        save(path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="Keras cannot read"):
        ModelCheckpoint(str(path), save_weights_only=weights_only)
    save(tmp_path / suggested)  # the name it suggests works and reads back
    if weights_only:
        model.load_weights(tmp_path / suggested)
    else:
        np.testing.assert_array_equal(load_model(tmp_path / suggested).predict(X, verbose=0),
                                      model.predict(X, verbose=0))
