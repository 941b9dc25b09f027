"""rnnkit.nn vs torch.nn: same state_dict, same values and gradients (float64, tight)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit.nn as rnn

IN, HID, B, T = 3, 4, 4, 6
LENGTHS = torch.tensor([6, 2, 5, 3])  # unsorted on purpose
TOL = dict(rtol=1e-10, atol=1e-12)


def _pair(name: str, **kwargs) -> tuple[torch.nn.Module, torch.nn.Module]:
    reference = getattr(torch.nn, name)(IN, HID, dtype=torch.float64, **kwargs)
    ours = getattr(rnn, name)(IN, HID, dtype=torch.float64, **kwargs)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def _hx(name: str, layers: int, directions: int, size: int = HID):
    h = torch.randn(layers * directions, B, size, dtype=torch.float64)
    if name == "LSTM":
        return h, torch.randn(layers * directions, B, HID, dtype=torch.float64)
    return h


CASES = list(itertools.product(["RNN", "GRU", "LSTM"], [1, 2, 3], [False, True], [False, True],
                               [False, True], [False, True]))


@pytest.mark.parametrize("name,layers,bidirectional,batch_first,with_hx,with_lengths", CASES)
def test_matches_torch_nn(name, layers, bidirectional, batch_first, with_hx, with_lengths) -> None:
    reference, ours = _pair(name, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    shape = (B, T, IN) if batch_first else (T, B, IN)
    x = torch.randn(shape, dtype=torch.float64)
    hx = _hx(name, layers, 2 if bidirectional else 1) if with_hx else None
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    if with_lengths:
        packed = pack_padded_sequence(x_ref, LENGTHS, batch_first=batch_first, enforce_sorted=False)
        out_ref, state_ref = reference(packed, hx)
        out_ref, _ = pad_packed_sequence(out_ref, batch_first=batch_first, total_length=T)
        out, state = ours(x_ours, hx, lengths=LENGTHS)
    else:
        out_ref, state_ref = reference(x_ref, hx)
        out, state = ours(x_ours, hx)
    torch.testing.assert_close(out, out_ref, **TOL)
    for a, b in zip(_as_tuple(state), _as_tuple(state_ref)):
        torch.testing.assert_close(a, b, **TOL)
    weight = torch.randn_like(out_ref)
    def loss(o, s):
        return (o * weight).sum() + sum((t * t).sum() for t in _as_tuple(s))
    grads_ref = torch.autograd.grad(loss(out_ref, state_ref), [x_ref, *reference.parameters()])
    grads = torch.autograd.grad(loss(out, state), [x_ours, *ours.parameters()])
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_state_dict_loads_both_ways_and_matches_names(name: str) -> None:
    reference, ours = _pair(name, num_layers=2, bidirectional=True, bias=True)
    assert list(ours.state_dict()) == list(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert ours.state_dict()[key].shape == value.shape
    fresh = getattr(torch.nn, name)(IN, HID, num_layers=2, bidirectional=True, dtype=torch.float64)
    fresh.load_state_dict(ours.state_dict())
    x = torch.randn(T, B, IN, dtype=torch.float64)
    torch.testing.assert_close(fresh(x)[0], ours(x)[0], **TOL)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_no_bias_and_relu(name: str) -> None:
    extra = {"nonlinearity": "relu"} if name == "RNN" else {}
    reference, ours = _pair(name, bias=False, **extra)
    assert "bias_ih_l0" not in dict(ours.named_parameters())
    x = torch.randn(T, B, IN, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], reference(x)[0], **TOL)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_input(name: str, batch_first: bool) -> None:
    reference, ours = _pair(name, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = torch.randn(T, IN, dtype=torch.float64)
    h = torch.randn(4, HID, dtype=torch.float64)
    hx = (h, torch.randn(4, HID, dtype=torch.float64)) if name == "LSTM" else h
    out_ref, state_ref = reference(x, hx)
    out, state = ours(x, hx)
    assert out.shape == (T, 2 * HID)
    torch.testing.assert_close(out, out_ref, **TOL)
    for a, b in zip(_as_tuple(state), _as_tuple(state_ref)):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_packed_sequence_in_packed_sequence_out(name: str, enforce_sorted: bool) -> None:
    reference, ours = _pair(name, num_layers=2, bidirectional=True)
    lengths = torch.tensor([6, 5, 3, 2]) if enforce_sorted else LENGTHS
    x = torch.randn(T, B, IN, dtype=torch.float64)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    out_ref, state_ref = reference(packed)
    out, state = ours(packed)
    assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
    torch.testing.assert_close(out.data, out_ref.data, **TOL)
    torch.testing.assert_close(out.batch_sizes, out_ref.batch_sizes)
    if not enforce_sorted:
        torch.testing.assert_close(out.unsorted_indices, out_ref.unsorted_indices)
    for a, b in zip(_as_tuple(state), _as_tuple(state_ref)):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_mask_equals_lengths_and_zero_pads_output(name: str) -> None:
    _, ours = _pair(name, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(B, T, IN, dtype=torch.float64)
    mask = torch.arange(T).unsqueeze(0) < LENGTHS.unsqueeze(1)
    out_len, state_len = ours(x, lengths=LENGTHS)
    out_mask, state_mask = ours(x, mask=mask)
    torch.testing.assert_close(out_len, out_mask, rtol=0, atol=0)
    for a, b in zip(_as_tuple(state_len), _as_tuple(state_mask)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.count_nonzero(out_len[1, 2:]) == 0  # sequence 1 has 2 real steps
    # the padding's content cannot change anything
    noisy = x.clone()
    noisy[1, 2:] = 1e3
    torch.testing.assert_close(ours(noisy, lengths=LENGTHS)[0], out_len, rtol=0, atol=0)


def test_lstm_proj_size_matches_torch() -> None:
    reference, ours = _pair("LSTM", num_layers=2, bidirectional=True, proj_size=2, batch_first=True)
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = torch.randn(B, T, IN, dtype=torch.float64, requires_grad=True)
    hx = _hx("LSTM", 2, 2, size=2)
    out_ref, (h_ref, c_ref) = reference(x, hx)
    out, (h, c) = ours(x, hx)
    torch.testing.assert_close(out, out_ref, **TOL)
    torch.testing.assert_close(h, h_ref, **TOL)
    torch.testing.assert_close(c, c_ref, **TOL)
    g_ref = torch.autograd.grad(out_ref.sum() + c_ref.sum(), [x, *reference.parameters()])
    g = torch.autograd.grad(out.sum() + c.sum(), [x, *ours.parameters()])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, **TOL)


def test_dropout_between_layers_only_in_training() -> None:
    _, ours = _pair("GRU", num_layers=2, dropout=0.5)
    x = torch.randn(T, B, IN, dtype=torch.float64)
    ours.eval()
    torch.testing.assert_close(ours(x)[0], ours(x)[0], rtol=0, atol=0)
    ours.train()
    torch.manual_seed(1)
    first = ours(x)[0]
    torch.manual_seed(2)
    assert not torch.equal(first, ours(x)[0])
    with torch.no_grad():  # in eval mode, equal to torch.nn (no dropout)
        reference = torch.nn.GRU(IN, HID, num_layers=2, dropout=0.5, dtype=torch.float64)
        reference.load_state_dict(ours.state_dict())
        reference.eval(), ours.eval()
        torch.testing.assert_close(ours(x)[0], reference(x)[0], **TOL)


def test_dropout_with_one_layer_warns_like_torch() -> None:
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        rnn.LSTM(IN, HID, dropout=0.2)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_loop_backend_equals_auto(name: str) -> None:
    _, fast = _pair(name, num_layers=2, bidirectional=True)
    slow = getattr(rnn, name)(IN, HID, num_layers=2, bidirectional=True, dtype=torch.float64,
                              backend="loop")
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(T, B, IN, dtype=torch.float64)
    torch.testing.assert_close(fast(x, lengths=LENGTHS)[0], slow(x, lengths=LENGTHS)[0], **TOL)


def test_float32_matches_torch() -> None:
    reference = torch.nn.LSTM(IN, HID, num_layers=2, bidirectional=True)
    ours = rnn.LSTM(IN, HID, num_layers=2, bidirectional=True)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(T, B, IN)
    torch.testing.assert_close(ours(x)[0], reference(x)[0], rtol=1e-5, atol=1e-6)


def test_repr_matches_torch() -> None:
    assert repr(rnn.GRU(3, 4, num_layers=2, batch_first=True, dropout=0.1)) == repr(
        torch.nn.GRU(3, 4, num_layers=2, batch_first=True, dropout=0.1)
    )
