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


@pytest.mark.parametrize("kind", [ValueError, RuntimeError, rnn.ShapeError])
def test_shape_errors_are_value_and_runtime_errors(module, kind) -> None:
    """torch.nn raises RuntimeError for these, rnnkit ValueError: ShapeError is both."""
    with pytest.raises(kind, match="input.size\\(-1\\) must be equal to input_size"):
        module(torch.randn(2, 5, 7))


def test_wrong_rank(module) -> None:
    with pytest.raises(rnn.ShapeError, match=r"Expected input to be 2D or 3D, got 4D instead.*"
                                             r"got shape \(2, 5, 3, 1\)"):
        module(torch.randn(2, 5, 3, 1))


def test_wrong_feature_size(module) -> None:
    with pytest.raises(rnn.ShapeError, match=r"Expected 3, got 7 \(input shape \(2, 5, 7\)\)"):
        module(torch.randn(2, 5, 7))


def test_wrong_dtype(module) -> None:
    with pytest.raises(ValueError, match=r"RNN input dtype \(torch.float64\) does not match weight "
                                         r"dtype \(torch.float32\)"):
        module(torch.randn(2, 5, 3, dtype=torch.float64))


def test_empty_sequence(module) -> None:
    with pytest.raises(rnn.ShapeError, match="Expected sequence length to be larger than 0"):
        module(torch.randn(2, 0, 3))


def test_hx_of_wrong_shape(module) -> None:
    with pytest.raises(rnn.ShapeError, match=r"Expected hidden size \(2, 2, 4\), got \[1, 2, 4\] for h_0"):
        module(torch.randn(2, 5, 3), _hx(module, (1, 2, 4)))
    with pytest.raises(rnn.ShapeError, match="For unbatched 2-D input, hx should also be 2-D but got 3-D"):
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
    with pytest.raises(rnn.ShapeError, match=r"mask must have shape \(batch, time\) = \(2, 5\), got \(5, 2\)"):
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
        ({"input_size": 0}, "input_size must be greater than zero"),
        ({"num_layers": 0}, "num_layers must be greater than zero"),
        ({"dropout": 1.5}, r"dropout should be a number in range \[0, 1\]"),
        ({"backend": "gpu"}, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, message) -> None:
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        rnn.GRU(**args)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"batch_first": "False"}, "batch_first should be of type bool, got: str"),
        ({"bias": 1}, "bias should be of type bool, got: int"),
        ({"bidirectional": "yes"}, "bidirectional should be of type bool, got: str"),
        ({"input_size": 3.0}, "input_size should be of type int, got: float"),
        ({"hidden_size": "4"}, "hidden_size should be of type int, got: str"),
        ({"num_layers": 2.0}, "num_layers should be of type int, got: float"),
    ],
)
def test_wrong_argument_types(kwargs, message) -> None:
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    for cls in (rnn.RNN, rnn.GRU, rnn.LSTM):
        with pytest.raises(TypeError, match=message):
            cls(**args)


def test_positional_order_is_torch_nn() -> None:
    """RNN(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout,
    bidirectional): the 4th argument is the nonlinearity, as in torch.nn."""
    relu = rnn.RNN(2, 3, 1, "relu")
    assert relu.nonlinearity == "relu" and relu.bias is True
    reference = torch.nn.RNN(2, 3, 1, "relu")
    reference.load_state_dict(relu.state_dict())
    x = torch.randn(4, 5, 2)
    torch.testing.assert_close(relu(x)[0], reference(x)[0], rtol=1e-6, atol=1e-6)
    assert (relu(x)[0] >= 0).all()
    full = rnn.RNN(2, 3, 2, "tanh", False, True, 0.5, True)
    assert (full.bias, full.batch_first, full.dropout, full.bidirectional) == (False, True, 0.5, True)
    lstm = rnn.LSTM(2, 3, 1, False, True, 0.0, True, 2)
    assert (lstm.bias, lstm.batch_first, lstm.bidirectional, lstm.proj_size) == (False, True, True, 2)
    gru = rnn.GRU(2, 3, 2, False, True)
    assert (gru.bias, gru.batch_first) == (False, True)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        rnn.RNN(2, 3, 1, "sigmoid")


def test_proj_size_rules() -> None:
    for cls in (rnn.GRU, rnn.RNN):
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
            cls(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        rnn.LSTM(3, 4, proj_size=4)
