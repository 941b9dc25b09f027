"""Input / InputLayer: shapes with and without the batch, dtypes, building a Sequential up
front, config round trip, errors."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.layers import Dense, Embedding, Input, InputLayer, SimpleRNN
from rnnkit.models import Sequential


def test_shapes():
    assert Input(shape=(10, 4)).shape == (None, 10, 4)
    assert Input(shape=5).shape == (None, 5)
    assert Input(shape=(None, 4), batch_size=8).shape == (8, None, 4)
    assert Input(batch_shape=(8, 2, 10)).shape == (8, 2, 10)
    assert rnnkit.Input is Input
    tensor = Input(shape=(3,))  # Keras 3: a symbolic tensor made by an InputLayer
    assert isinstance(tensor._keras_history[0], InputLayer) and tensor.dtype == "float32"


def test_a_sequential_with_input_is_built_at_once():
    model = Sequential([Input(shape=(10, 4)), SimpleRNN(8, return_sequences=True), Dense(1)])
    assert model.built and model.input_shape == (None, 10, 4)
    assert len(model.layers) == 2  # the Input is not a layer of the model
    assert model.layer_output_shapes() == [(None, 10, 8), (None, 10, 1)]
    assert model.count_params() == (4 * 8 + 8 * 8 + 8) + 9
    out = model(np.zeros((3, 10, 4), np.float32))
    assert tuple(out.shape) == (3, 10, 1)


def test_integer_input_for_an_embedding():
    model = Sequential([Input(shape=(6,), dtype="int32"), Embedding(10, 3)])
    assert model.layer_output_shapes() == [(None, 6, 3)]


def test_declared_input_shape_is_checked():
    model = Sequential([Input(shape=(4, 1)), SimpleRNN(2)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="expects inputs of shape \\(None, 4, 1\\)"):
        model.fit(np.zeros((2, 4, 3), np.float32), np.zeros((2, 2), np.float32), verbose=0)


def test_config_round_trip():
    layer = InputLayer(shape=(None, 4), dtype="float64", name="x")
    config = layer.get_config()
    assert config == {"name": "x", "batch_shape": [None, None, 4], "dtype": "float64"}
    again = InputLayer.from_config(config)
    assert again.shape == (None, None, 4) and again.dtype == "float64"


@pytest.mark.parametrize("shape", [(0, 3), (-1, 3), (2.5, 3), (True, 3), ("4",)])
def test_bad_shapes(shape):
    with pytest.raises(ValueError, match="positive ints or None"):
        Input(shape=shape)


@pytest.mark.parametrize("dtype", ["float128", "string", "int"])
def test_bad_dtypes(dtype):
    with pytest.raises(ValueError, match="dtype must be one of"):
        Input(shape=(3,), dtype=dtype)


def test_shape_and_batch_shape_are_exclusive():
    with pytest.raises(ValueError, match="exactly one of shape"):
        Input(shape=(3,), batch_shape=(None, 3))
    with pytest.raises(ValueError, match="exactly one of shape"):
        Input()


def test_input_only_first():
    with pytest.raises(ValueError, match="first element"):
        Sequential([Dense(2, input_shape=(3,)), Input(shape=(2,))])


def test_save_and_load_a_model_declared_with_input(tmp_path):
    from rnnkit.models import load_model

    model = Sequential([Input(shape=(None, 3)), SimpleRNN(4), Dense(2)])
    model.save(tmp_path / "m.rnnkit")
    loaded = load_model(tmp_path / "m.rnnkit")
    assert loaded.input_shape == (None, None, 3)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
