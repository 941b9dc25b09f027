"""Keras 3.15.1's keras/src/layers/rnn/dropout_rnn_cell_test.py, ported. ``test_seed_tracking``
counts Keras' SeedGenerator variables (a Keras internal: rnnkit's cells keep a
torch.Generator, not a variable) and is replaced by the seed's effect: the same seed, the same
masks. The mixed-precision half needs CUDA in Keras too and is not ported."""

from __future__ import annotations

import torch

import rnnkit as rk
from rnnkit.layers import RNN, Layer
from rnnkit.layers.rnn import DropoutRNNCell

from ._harness import run_layer_test


@rk.register_serializable(package="keras_suite")
class RNNCellWithDropout(Layer, DropoutRNNCell):
    def __init__(self, units, dropout=0.5, recurrent_dropout=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.units = units
        self.state_size = units
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout

    def build(self, input_shape):
        self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", name="kernel")
        self.add_weight(shape=(self.units, self.units), initializer="ones",
                        name="recurrent_kernel")
        super().build(input_shape)

    def call(self, inputs, states, training=False):
        if training:
            inputs = inputs * self.get_dropout_mask(inputs)
        prev_output = states[0]
        h = inputs @ self.kernel
        if training:
            prev_output = prev_output * self.get_recurrent_dropout_mask(prev_output)
        output = h + prev_output @ self.recurrent_kernel
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "seed": self.seed}


def test_seed_tracking():
    x = torch.ones(3, 2, 4)
    first = RNN(RNNCellWithDropout(3, seed=1337))(x, training=True)
    again = RNN(RNNCellWithDropout(3, seed=1337))(x, training=True)
    other = RNN(RNNCellWithDropout(3, seed=7))(x, training=True)
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)


def test_basics():
    run_layer_test(RNN, init_kwargs={"cell": RNNCellWithDropout(5, seed=1337)},
                   input_shape=(3, 2, 4), call_kwargs={"training": True},
                   expected_output_shape=(3, 5), expected_num_trainable_weights=2,
                   expected_num_non_trainable_weights=0, supports_masking=True)
