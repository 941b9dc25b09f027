"""Bad input to rnnkit.nn modules: each error names what was expected and what was given."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn


@pytest.fixture(params=["RNN", "GRU", "LSTM"])
def module(request):
    return getattr(rnn, request.param)(3, 4, num_layers=2, batch_first=True)


def _hx(module, shape):
    h = torch.zeros(shape)
    return (h, torch.zeros(shape)) if isinstance(module, rnn.LSTM) else h


def test_wrong_rank(module) -> None:
    with pytest.raises(ValueError, match=r"3-D \(batched\) or 2-D \(unbatched\) input, got a 4-D tensor"):
        module(torch.randn(2, 5, 3, 1))


def test_wrong_feature_size(module) -> None:
    with pytest.raises(ValueError, match="input_size=3, got 7"):
        module(torch.randn(2, 5, 7))


def test_wrong_dtype(module) -> None:
    with pytest.raises(ValueError, match="dtype \\(torch.float64\\) does not match"):
        module(torch.randn(2, 5, 3, dtype=torch.float64))


def test_hx_of_wrong_shape(module) -> None:
    with pytest.raises(ValueError, match=r"Expected h_0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
        module(torch.randn(2, 5, 3), _hx(module, (1, 2, 4)))
    with pytest.raises(ValueError, match="For unbatched 2-D input, h_0 must be 2-D"):
        module(torch.randn(5, 3), _hx(module, (2, 1, 4)))


def test_lstm_hx_must_be_pair() -> None:
    lstm = rnn.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"expects hx as a tuple \(h_0, c_0\), got 1"):
        lstm(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))


@pytest.mark.parametrize(
    "lengths,message",
    [
        (torch.tensor([5, 6]), r"lengths must lie in \[0, 5\].*from 5 to 6"),
        (torch.tensor([5, -1]), r"lengths must lie in \[0, 5\].*from -1 to 5"),
        (torch.tensor([5, 2, 3]), r"one entry per sequence \(batch size 2\), got shape \(3,\)"),
        (torch.tensor([[5, 2]]), r"one entry per sequence"),
        (torch.tensor([5.0, 2.0]), "lengths must be an integer tensor, got dtype torch.float32"),
    ],
)
def test_bad_lengths(module, lengths, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        module(torch.randn(2, 5, 3), lengths=lengths)


def test_lengths_may_be_a_list(module) -> None:
    out, _ = module(torch.randn(2, 5, 3), lengths=[5, 2])
    assert torch.count_nonzero(out[1, 2:]) == 0


def test_bad_masks(module) -> None:
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 5\), got \(5, 2\)"):
        module(x, mask=torch.ones(5, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must have dtype torch.bool, got torch.int64"):
        module(x, mask=torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="either lengths or mask, not both"):
        module(x, lengths=[5, 5], mask=torch.ones(2, 5, dtype=torch.bool))


def test_packed_with_lengths_is_rejected(module) -> None:
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(2, 5, 3), [5, 2], batch_first=True)
    with pytest.raises(ValueError, match="not a PackedSequence"):
        module(packed, lengths=[5, 2])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_size": 0}, "input_size must be a positive integer"),
        ({"num_layers": 0}, "num_layers must be an integer >= 1"),
        ({"dropout": 1.5}, r"dropout must be a number in \[0, 1\]"),
        ({"backend": "gpu"}, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, message) -> None:
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        rnn.GRU(**args)


def test_proj_size_rules() -> None:
    with pytest.raises(ValueError, match="proj_size is only supported by LSTM"):
        rnn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match=r"proj_size must be an integer in \[0, hidden_size=4\)"):
        rnn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="backend='fused' has no LSTM projection"):
        rnn.LSTM(3, 4, proj_size=2, backend="fused")
    with pytest.raises(ValueError, match="backend='compiled' has no LSTM projection"):
        rnn.LSTM(3, 4, proj_size=2, backend="compiled")
