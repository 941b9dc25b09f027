"""rnnkit.nn.scan_cell: a torch-style cell over a sequence, its step captured, against the same
cell called per step and against torch.nn.LSTM (an independent implementation): values and
gradients in float64, lengths (held states, zero output at padding), reverse, batch_first, and
the fall back to the loop.

Tolerances: float64 rtol 1e-10 / atol 1e-12.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit._kernels import capture
from rnnkit.nn import ShapeError, scan_cell

F64 = dict(rtol=1e-10, atol=1e-12)


class HandLSTMCell(torch.nn.Module):
    """An LSTM step written by a user in torch ops, with torch.nn.LSTMCell's weight names."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = torch.nn.Parameter(torch.randn(4 * hidden_size, input_size).double())
        self.weight_hh = torch.nn.Parameter(torch.randn(4 * hidden_size, hidden_size).double())
        self.bias = torch.nn.Parameter(torch.randn(4 * hidden_size).double())

    def forward(self, x, hx):
        h, c = hx
        gates = x @ self.weight_ih.t() + h @ self.weight_hh.t() + self.bias
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def _torch_lstm(cell: HandLSTMCell) -> torch.nn.LSTM:
    lstm = torch.nn.LSTM(cell.weight_ih.shape[1], cell.hidden_size, dtype=torch.float64)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(cell.weight_ih)
        lstm.weight_hh_l0.copy_(cell.weight_hh)
        lstm.bias_ih_l0.copy_(cell.bias)
        lstm.bias_hh_l0.zero_()
    return lstm


@pytest.mark.parametrize("reverse", [False, True])
def test_hand_lstm_equals_torch_nn_lstm_with_lengths(reverse: bool) -> None:
    cell = HandLSTMCell(3, 4)
    x = torch.randn(6, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 4, dtype=torch.float64)
    c0 = torch.randn(3, 4, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    out, (h, c) = scan_cell(cell, x, (h0, c0), lengths=lengths, reverse=reverse)
    lstm = _torch_lstm(cell)
    flip = (lambda t: t) if not reverse else (
        lambda t: torch.stack([torch.cat([t[:n, b].flip(0), t[n:, b]]) for b, n in
                               enumerate(lengths.tolist())], 1))
    packed = torch.nn.utils.rnn.pack_padded_sequence(flip(x), lengths, enforce_sorted=False)
    want, (h_want, c_want) = lstm(packed, (h0[None], c0[None]))
    want, _ = torch.nn.utils.rnn.pad_packed_sequence(want, total_length=6)
    torch.testing.assert_close(out, flip(want), **F64)
    torch.testing.assert_close(h, h_want[0], **F64)
    torch.testing.assert_close(c, c_want[0], **F64)
    assert any(isinstance(v, capture.Captured) for v in capture._cache[cell].values())


@pytest.mark.parametrize("batch_first", [False, True])
def test_values_and_gradients_equal_the_loop(batch_first: bool) -> None:
    cell = HandLSTMCell(3, 4)
    shape = (3, 5, 3) if batch_first else (5, 3, 3)  # B = 3, T = 5
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    hx = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True),
          torch.randn(3, 4, dtype=torch.float64, requires_grad=True))
    mask = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 1, 1]]).bool()
    got = scan_cell(cell, x, hx, batch_first=batch_first, mask=mask)
    want = scan_cell(cell, x, hx, batch_first=batch_first, mask=mask, backend="loop")
    flat_got, flat_want = [got[0], *got[1]], [want[0], *want[1]]
    for g, w in zip(flat_got, flat_want):
        torch.testing.assert_close(g, w, **F64)
    inputs = [x, *hx, *cell.parameters()]
    cot = [torch.randn_like(w) for w in flat_want]
    g1 = torch.autograd.grad(sum((g * c).sum() for g, c in zip(flat_got, cot)), inputs)
    g2 = torch.autograd.grad(sum((w * c).sum() for w, c in zip(flat_want, cot)), inputs)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **F64)


def test_a_torch_gru_cell_and_a_zero_initial_state() -> None:
    cell = torch.nn.GRUCell(3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    out, h = scan_cell(cell, x)
    gru = torch.nn.GRU(3, 4, dtype=torch.float64)
    gru.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    want, h_want = gru(x)
    torch.testing.assert_close(out, want, **F64)
    torch.testing.assert_close(h, h_want[0], **F64)


class ClampingCell(torch.nn.Module):
    hidden_size = 4

    def __init__(self) -> None:
        super().__init__()
        self.cell = torch.nn.RNNCell(3, 4, dtype=torch.float64)

    def forward(self, x, h):
        h = self.cell(x, h)
        return h / h.abs().max() if h.abs().max() > 1 else h  # control flow on a value


def test_a_cell_that_cannot_be_captured_runs_the_loop() -> None:
    cell = ClampingCell()
    x = torch.randn(4, 2, 3, dtype=torch.float64) * 3
    out, h = scan_cell(cell, x)
    want, h_want = scan_cell(cell, x, backend="loop")
    torch.testing.assert_close(out, want, **F64)
    assert all(isinstance(v, capture.CaptureError) for v in capture._cache[cell].values())


def test_bad_arguments() -> None:
    cell = torch.nn.GRUCell(3, 4)
    with pytest.raises(ShapeError, match="3-D input"):
        scan_cell(cell, torch.randn(2, 3))
    with pytest.raises(ValueError, match="backend"):
        scan_cell(cell, torch.randn(2, 2, 3), backend="fast")
    with pytest.raises(ValueError, match="not both"):
        scan_cell(cell, torch.randn(2, 2, 3), lengths=torch.tensor([1, 2]),
                  mask=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="hidden_size"):
        scan_cell(torch.nn.Linear(3, 3), torch.randn(2, 2, 3))
