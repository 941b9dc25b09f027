"""Keras 3.15.1's keras/src/layers/core/embedding_test.py, ported: the tests of what rnnkit's
Embedding has. Not ported (features rnnkit does not have): sparse and ragged inputs, LoRA
(5 tests), quantization int8/int4/GPTQ (18 tests), legacy quantized variable loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import constraints
from rnnkit.layers import Embedding

from ._harness import close, run_layer_test


def test_embedding_basics():
    run_layer_test(Embedding, {"input_dim": 4, "output_dim": 3}, input_shape=(2,),
                   input_dtype="int32", expected_output_shape=(2, 3),
                   expected_num_trainable_weights=1, expected_num_non_trainable_weights=0,
                   expected_num_seed_generators=0, expected_num_losses=0,
                   supports_masking=False)
    run_layer_test(Embedding, {"input_dim": 5, "output_dim": 4, "mask_zero": True},
                   input_shape=(2, 3), input_dtype="int64", expected_output_shape=(2, 3, 4),
                   expected_num_trainable_weights=1, expected_num_non_trainable_weights=0,
                   expected_num_seed_generators=0, expected_num_losses=0,
                   supports_masking=True)


def test_correctness():
    layer = Embedding(input_dim=3, output_dim=2)
    layer.build()
    with torch.no_grad():
        layer.embeddings.copy_(torch.tensor([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
    close(layer(np.array([2, 1, 0])), [[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]])


def test_masking():
    layer = Embedding(input_dim=3, output_dim=2, mask_zero=True)
    layer.build()
    close(layer.compute_mask(np.array([2, 1, 0])), [True, True, False])


def test_compute_mask_no_masking():
    assert Embedding(input_dim=3, output_dim=2, mask_zero=False).compute_mask(
        np.array([2, 1, 0])) is None


def test_embedding_constraints():
    layer = Embedding(3, 2, embeddings_constraint="non_neg")
    layer.build((None, 2))
    assert isinstance(layer.embeddings.constraint, constraints.NonNeg)


@pytest.mark.parametrize("argument", ["input_dim", "output_dim"])
def test_invalid_dims(argument):
    for bad in (3.7, 4.0, "3", None, True, False, -1, 0):
        with pytest.raises(ValueError, match=f"{argument}.*positive integer"):
            Embedding(**{"input_dim": 10, "output_dim": 8, argument: bad})
    # Keras raises a TypeError from from_config here; rnnkit the same ValueError as above
    with pytest.raises(ValueError, match=f"{argument}.*positive integer"):
        Embedding.from_config({"input_dim": 10, "output_dim": 8, argument: 3.7})


def test_weights_constructor_arg():
    close(Embedding(3, 4, weights=np.ones((3, 4))).embeddings, np.ones((3, 4)))
    close(Embedding(3, 4, weights=[np.ones((3, 4))]).embeddings, np.ones((3, 4)))
