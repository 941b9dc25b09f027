"""Embedding: lookup vs indexing in float64, mask_zero, token-id checks, input_length, frozen
weights, config round trip. (Keras parity: test_keras_parity_core.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import initializers
from rnnkit.layers import Embedding


def test_lookup_is_row_indexing_for_any_rank():
    layer = Embedding(6, 3)
    assert not layer.built
    ids = np.array([[[0, 5], [2, 2]]], dtype=np.int32)  # (1, 2, 2)
    out = layer(ids)
    assert layer.built and tuple(out.shape) == (1, 2, 2, 3)
    table = layer.get_weights()[0]
    np.testing.assert_array_equal(out.detach().numpy(), table[ids])
    assert layer.compute_output_shape((None, 2, 2)) == (None, 2, 2, 3)
    assert layer.count_params() == 18


def test_float64_table_and_gradient_only_on_used_rows():
    layer = Embedding(5, 2)
    layer.maybe_build((None, 3))
    layer.double()
    out = layer(torch.tensor([[1, 3, 1]]))
    assert out.dtype == torch.float64
    out.sum().backward()
    np.testing.assert_array_equal(layer.embeddings.grad.numpy(),
                                  [[0, 0], [2, 2], [0, 0], [1, 1], [0, 0]])


def test_numpy_tensor_and_whole_float_ids_agree():
    layer = Embedding(4, 2)
    a = layer(np.array([[1, 2, 3]]))
    b = layer(torch.tensor([[1, 2, 3]], dtype=torch.int32))
    c = layer(np.array([[1.0, 2.0, 3.0]]))  # pad_sequences(dtype="float32") output
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_mask_zero():
    ids = [[3, 5, 0, 0], [0, 1, 0, 2]]
    masked = Embedding(6, 2, mask_zero=True)
    assert masked.supports_masking
    np.testing.assert_array_equal(masked.compute_mask(ids).numpy(), np.array(ids) != 0)
    plain = Embedding(6, 2)
    assert plain.compute_mask(ids) is None
    assert plain.compute_mask(ids, torch.ones(2, 4, dtype=torch.bool)) is None


def test_input_length_sets_the_input_shape():
    assert Embedding(5, 2, input_length=7).batch_input_shape == (None, 7)
    assert Embedding(5, 2, input_shape=(3,)).batch_input_shape == (None, 3)


def test_constant_one_hot_table_frozen():
    """Seed 001: a fixed one-hot table, trainable=False."""
    one_hot = np.eye(4)
    layer = Embedding(4, 4, trainable=False, embeddings_initializer=initializers.Constant(one_hot))
    out = layer([[2, 0, 3]])
    np.testing.assert_array_equal(out.numpy()[0], one_hot[[2, 0, 3]])
    assert not layer.embeddings.requires_grad
    assert not out.requires_grad


def test_config_round_trip():
    layer = Embedding(9, 3, mask_zero=True, input_length=5,
                      embeddings_initializer={"class_name": "RandomNormal",
                                              "config": {"stddev": 0.5, "seed": 3}})
    config = layer.get_config()
    again = Embedding.from_config(config)
    assert again.get_config() == config
    assert again.mask_zero and again.batch_input_shape == (None, 5)
    again.maybe_build((None, 5))
    layer.maybe_build((None, 5))
    np.testing.assert_array_equal(again.get_weights()[0], layer.get_weights()[0])  # seeded


@pytest.mark.parametrize("bad", [[[0, 6]], [[-1, 2]]])
def test_out_of_range_ids(bad):
    with pytest.raises(ValueError, match=r"outside \[0, 6\).*input_dim=6"):
        Embedding(6, 2)(bad)


def test_bad_ids_and_arguments():
    with pytest.raises(ValueError, match="non-integer"):
        Embedding(6, 2)(np.array([[1.5, 2.0]]))
    with pytest.raises(ValueError, match="non-integer"):
        Embedding(6, 2)(np.array([[np.nan]]))
    with pytest.raises(TypeError, match="integer token ids"):
        Embedding(6, 2)(np.array([[True]]))
    with pytest.raises(ValueError, match="input_dim"):
        Embedding(0, 2)
    with pytest.raises(ValueError, match="output_dim"):
        Embedding(3, -1)
    with pytest.raises(ValueError, match="Unknown constraint 'positive'"):
        Embedding(3, 2, embeddings_constraint="positive")
