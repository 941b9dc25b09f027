"""Dropout: identity at inference, inverted scaling and the drop rate in training, noise_shape,
seeds, rate 0 and 1, fit vs predict, config, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import Dense, Dropout
from rnnkit.models import Sequential


def test_identity_at_inference():
    layer = Dropout(0.5)
    x = torch.randn(4, 5)
    assert layer.training  # layers start in training mode, as torch modules do
    assert layer(x, training=False) is x
    assert layer.eval()(x) is x


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_training_drops_about_rate_and_scales_the_rest(rate):
    x = torch.ones(200, 500, dtype=torch.float64)
    out = Dropout(rate, seed=0)(x, training=True)
    kept = out != 0
    np.testing.assert_allclose(out[kept].numpy(), 1.0 / (1.0 - rate), rtol=1e-12)
    # 100,000 Bernoulli draws: the kept fraction is within 5 standard deviations of 1 - rate
    std = np.sqrt(rate * (1 - rate) / x.numel())
    assert abs(kept.double().mean().item() - (1 - rate)) < 5 * std
    assert abs(out.mean().item() - 1.0) < 5 * std / (1 - rate)  # expectation preserved


def test_train_mode_follows_the_module_in_a_torch_model():
    holder = torch.nn.Module()
    holder.layer = Dropout(0.5)  # held by a plain torch module: its torch mode decides
    assert (holder.layer(torch.ones(10, 10)) == 0).any()
    holder.eval()
    assert (holder.layer(torch.ones(10, 10)) == 1).all()
    # alone, a bare call is inference whatever the mode (Keras)
    assert (Dropout(0.5).train()(torch.ones(10, 10)) == 1).all()


def test_rate_zero_and_one():
    x = torch.randn(3, 4)
    assert torch.equal(Dropout(0.0)(x, training=True), x)
    assert torch.equal(Dropout(1.0)(x, training=True), torch.zeros_like(x))  # Keras allows 1
    assert torch.equal(Dropout(1.0)(x, training=False), x)


def test_noise_shape_shares_one_draw_across_time():
    out = Dropout(0.5, noise_shape=(None, 1, 6), seed=1)(torch.ones(4, 7, 6), training=True)
    assert (out == out[:, :1, :]).all()  # the same features dropped at every step
    assert (out == 0).any() and (out == 2).any()


def test_seed_reproduces_the_same_sequence_of_masks():
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    x = torch.ones(5, 8)
    first = [a(x, training=True) for _ in range(2)]
    second = [b(x, training=True) for _ in range(2)]
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], first[1])  # a new mask each call


def test_unseeded_follows_torch_manual_seed():
    x = torch.ones(6, 6)
    torch.manual_seed(3)
    a = Dropout(0.5)(x, training=True)
    torch.manual_seed(3)
    b = Dropout(0.5)(x, training=True)
    assert torch.equal(a, b)


def test_fit_drops_and_predict_does_not():
    seen: list[bool] = []

    class Spy(Dropout):
        def call(self, inputs, training=False):
            seen.append(bool(training))
            return super().call(inputs, training=training)

    model = Sequential([Dense(3, input_shape=(2,)), Spy(0.5), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 2), np.float32), np.ones((4, 1), np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert seen == [True]
    p1, p2 = model.predict(x, verbose=0), model.predict(x, verbose=0)
    assert seen[1:] and not any(seen[1:])
    np.testing.assert_array_equal(p1, p2)


def test_mask_passes_and_no_weights():
    layer = Dropout(0.3)
    mask = torch.tensor([[True, False]])
    assert layer.compute_mask(torch.ones(1, 2, 3), mask) is mask
    layer(torch.ones(1, 2, 3))
    assert layer.count_params() == 0 and layer.get_weights() == []


def test_config_round_trip():
    layer = Dropout(0.25, noise_shape=(None, 1, 3), seed=5)
    config = layer.get_config()
    assert config["rate"] == 0.25 and config["noise_shape"] == [None, 1, 3]
    again = Dropout.from_config(config)
    assert again.get_config() == config
    x = torch.ones(2, 4, 3)
    assert torch.equal(again(x, training=True), Dropout.from_config(config)(x, training=True))


@pytest.mark.parametrize("rate", [-0.1, 1.5, "0.5", True, None])
def test_bad_rates(rate):
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\]"):
        Dropout(rate)


def test_bad_noise_shape_and_seed():
    with pytest.raises(ValueError, match="rank"):
        Dropout(0.5, noise_shape=(None, 1))(torch.ones(2, 3, 4), training=True)
    with pytest.raises(ValueError, match="does not broadcast"):
        Dropout(0.5, noise_shape=(None, 2, 4))(torch.ones(2, 3, 4), training=True)
    with pytest.raises(TypeError, match="seed"):
        Dropout(0.5, seed=1.5)


def test_save_and_load_model_keeps_the_dropout(tmp_path):
    from rnnkit.models import load_model

    model = Sequential([Dense(3, input_shape=(2,)), Dropout(0.4, noise_shape=(None, 1), seed=2),
                        Dense(1)])
    model.save(tmp_path / "m.rnnkit")
    loaded = load_model(tmp_path / "m.rnnkit")
    dropout = loaded.layers[1]
    assert isinstance(dropout, Dropout)
    assert (dropout.rate, dropout.noise_shape, dropout.seed) == (0.4, (None, 1), 2)
    x = np.ones((5, 2), np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
