"""Masking: which steps are masked, what the output holds there, the mask reaching a recurrent
layer, config, errors. (Keras parity: test_keras_parity_core.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import GRU, LSTM, Masking, SimpleRNN
from rnnkit.models import Sequential


def test_a_step_is_masked_only_when_every_feature_equals_mask_value():
    x = np.array([[[1.0, 2.0], [0.0, 0.0], [0.0, 3.0], [-1.0, -1.0]]], dtype=np.float32)
    np.testing.assert_array_equal(Masking(0.0).compute_mask(x).numpy(), [[1, 0, 1, 1]])
    np.testing.assert_array_equal(Masking(-1.0).compute_mask(x).numpy(), [[1, 1, 1, 0]])
    out = Masking(-1.0)(torch.from_numpy(x))
    np.testing.assert_array_equal(out.numpy(), x * np.array([1, 1, 1, 0])[None, :, None])


def test_the_incoming_mask_is_replaced():
    x = torch.ones(1, 3, 2)
    given = torch.tensor([[False, False, False]])
    assert Masking().compute_mask(x, given).all()


def test_float64_inputs_keep_their_dtype():
    x = torch.zeros(2, 3, 2, dtype=torch.float64)
    assert Masking()(x).dtype == torch.float64


def test_masked_lstm_ignores_trailing_padding():
    """Masking + LSTM: a padded sequence gives the unpadded sequence's final state."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(1, 3, 2)).astype(np.float32)
    padded = np.concatenate([real, np.zeros((1, 4, 2), np.float32)], axis=1)
    model = Sequential([Masking(0.0, input_shape=(None, 2)), LSTM(4)])
    short = model(real).detach().numpy()
    np.testing.assert_allclose(model(padded).detach().numpy(), short, rtol=1e-6, atol=1e-7)


def test_config_round_trip():
    layer = Masking(mask_value=-1.0, name="pad")
    again = Masking.from_config(layer.get_config())
    assert again.mask_value == -1.0 and again.name == "pad"
    assert again.get_config() == layer.get_config()
    layer(np.zeros((1, 2, 3), np.float32))
    assert layer.count_params() == 0 and layer.get_weights() == []


def test_errors():
    with pytest.raises(ValueError, match="batch, time"):
        Masking()(np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError):
        Masking(mask_value="zero")


@pytest.mark.parametrize("layer_class", [SimpleRNN, GRU, LSTM])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_fused_masked_outputs_from_zero_states_match_the_loop(layer_class, go_backwards,
                                                              zero_output_for_mask):
    """Without an initial state the fused path takes the kernel's held states as Keras'
    outputs (zero before a sequence's first real step): the loop's values and gradients, with
    leading padding, holes and a sequence without a real step."""
    torch.manual_seed(3)
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0],
                         [1, 0, 0, 1, 1, 0]], dtype=torch.bool)
    results, weights = [], None
    for backend in ("fused", "loop"):
        layer = layer_class(5, return_sequences=True, return_state=True, backend=backend,
                            go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask)
        layer.maybe_build((None, None, 3))
        layer.double()
        weights = layer.get_weights() if weights is None else weights
        layer.set_weights(weights)
        inputs = x.clone().requires_grad_()
        outputs = layer(inputs, mask=mask)
        scale = torch.linspace(-1, 1, outputs[0].numel(), dtype=torch.float64)
        loss = (outputs[0] * scale.view_as(outputs[0])).sum() + sum(
            s.pow(2).sum() for s in outputs[1:])
        grads = torch.autograd.grad(loss, [inputs, *layer.keras_weights()])
        results.append((outputs, grads))
    (fused, fused_grads), (loop, loop_grads) = results
    assert fused[0][2].abs().sum() == 0 and fused[0][1].abs().sum() > 0
    for a, b in zip([*fused, *fused_grads], [*loop, *loop_grads]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
