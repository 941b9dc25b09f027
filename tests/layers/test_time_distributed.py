"""TimeDistributed: the inner layer on every step with one weight set, masks, shapes, weights,
config round trip, errors. (Keras parity: test_keras_parity_core.py and the model cases.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import LSTM, Dense, Dropout, Embedding, Layer, RepeatVector, TimeDistributed
from rnnkit.models import Sequential


def test_same_as_the_inner_layer_on_each_step_float64():
    inner = Dense(3, activation="tanh")
    layer = TimeDistributed(inner)
    assert not layer.built
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    layer.maybe_build(tuple(x.shape))
    layer.double()
    out = layer(x)
    assert tuple(out.shape) == (2, 5, 3)
    for t in range(5):
        torch.testing.assert_close(out[:, t], inner(x[:, t]), rtol=1e-12, atol=0)
    assert layer.get_weights()[0].shape == (4, 3)  # the inner layer's weights, Keras' order
    assert layer.count_params() == inner.count_params() == 15
    assert layer.compute_output_shape((None, 5, 4)) == (None, 5, 3)


def test_numpy_input_and_rank_four():
    layer = TimeDistributed(Dense(2))
    out = layer(np.ones((2, 3, 4, 5), dtype=np.float32))
    assert tuple(out.shape) == (2, 3, 4, 2)


def test_mask_passes_through_and_masked_steps_are_computed():
    layer = TimeDistributed(Dense(2))
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    assert torch.equal(layer.compute_mask(x, mask), mask)
    # Keras: the mask does not change what the wrapped Dense computes
    torch.testing.assert_close(layer(x, mask=mask), layer(x))


def test_mask_flows_from_embedding_through_lstm_to_the_head():
    model = Sequential([Embedding(10, 4, mask_zero=True, input_shape=(6,)),
                        LSTM(5, return_sequences=True), TimeDistributed(Dense(2))])
    ids = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]])
    out, mask = model._call_with_mask(ids)
    np.testing.assert_array_equal(mask.numpy(), ids != 0)
    # a shorter padding changes nothing at the real steps
    out_short = model(ids[:1, :4])
    torch.testing.assert_close(out_short[:, :3], out[:1, :3])


def test_training_flag_reaches_the_inner_layer():
    layer = TimeDistributed(Dropout(0.5, seed=0)).eval()
    x = torch.ones(3, 4, 10)
    assert torch.equal(layer(x), x)
    dropped = layer(x, training=True)
    assert (dropped == 0).any() and set(dropped.unique().tolist()) <= {0.0, 2.0}


def test_one_to_many_head_after_repeat_vector():
    model = Sequential([Dense(4, input_shape=(3,)), RepeatVector(5), TimeDistributed(Dense(2))])
    out = model(np.ones((2, 3), np.float32))
    assert tuple(out.shape) == (2, 5, 2)
    assert torch.equal(out, out[:, :1].expand(-1, 5, -1))  # every step sees the same vector


def test_config_round_trip():
    layer = TimeDistributed(Dense(3, activation="relu", name="inner"), name="td")
    config = layer.get_config()
    again = TimeDistributed.from_config(config)
    assert again.get_config() == config
    assert isinstance(again.layer, Dense) and again.layer.units == 3
    assert again.layer is not layer.layer


def test_errors():
    with pytest.raises(TypeError, match="wraps an rnnkit layer"):
        TimeDistributed(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="batch, time"):
        TimeDistributed(Dense(2))(np.ones((2, 3), np.float32))
    layer = TimeDistributed(Dense(2))
    layer(torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="The `mask` passed to the `TimeDistributed` layer has a shape"):
        layer(torch.ones(2, 3, 4), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch, time"):
        layer(torch.ones(2, 4))
    assert isinstance(layer, Layer)
