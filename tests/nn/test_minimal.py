"""rnnkit.nn.MinGRU / MinLSTM against stepping their cells by hand (the same weights): lengths
(zero output past the end, held final state), both directions, two layers, batch_first,
unbatched input, and errors.

Tolerances: float64 rtol 1e-9 / atol 1e-11.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.nn import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell, ShapeError

F64 = dict(rtol=1e-9, atol=1e-11)
PAIRS = [(MinGRU, MinGRUCell), (MinLSTM, MinLSTMCell)]


def stepped(module, cell_class, x, lengths):
    """The layers by hand: each direction's cell stepped over each sequence's real steps."""
    directions = 2 if module.bidirectional else 1
    T, B = x.shape[:2]
    finals = []
    for layer in range(module.num_layers):
        outs = []
        for d, suffix in enumerate(("", "_reverse")[:directions]):
            cell = cell_class(x.shape[-1], module.hidden_size, dtype=torch.float64)
            cell.weight_ih = getattr(module, f"weight_ih_l{layer}{suffix}")
            cell.bias_ih = getattr(module, f"bias_ih_l{layer}{suffix}")
            out = torch.zeros(T, B, module.hidden_size, dtype=torch.float64)
            final = []
            for n in range(B):
                h = torch.zeros(module.hidden_size, dtype=torch.float64)
                steps = range(lengths[n] - 1, -1, -1) if d else range(lengths[n])
                for t in steps:
                    h = cell(x[t, n], h)
                    out[t, n] = h
                final.append(h)
            outs.append(out)
            finals.append(torch.stack(final))
        x = torch.cat(outs, -1)
    return x, torch.stack(finals)


@pytest.mark.parametrize("module_class, cell_class", PAIRS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_module_equals_its_cell_stepped(module_class, cell_class, bidirectional) -> None:
    module = module_class(3, 4, num_layers=2, bidirectional=bidirectional, dtype=torch.float64)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    out, h_n = module(x, lengths=lengths)
    want, want_n = stepped(module, cell_class, x, lengths.tolist())
    torch.testing.assert_close(out, want, **F64)
    torch.testing.assert_close(h_n, want_n, **F64)


@pytest.mark.parametrize("module_class, cell_class", PAIRS)
def test_batch_first_unbatched_and_initial_state(module_class, cell_class) -> None:
    module = module_class(3, 4, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64)
    out, h_n = module(x, h0)
    cell = cell_class(3, 4, dtype=torch.float64)
    cell.load_state_dict({"weight_ih": module.weight_ih_l0, "bias_ih": module.bias_ih_l0})
    h = h0[0]
    for t in range(5):
        h = cell(x[:, t], h)
        torch.testing.assert_close(out[:, t], h, **F64)
    torch.testing.assert_close(h_n[0], h, **F64)
    single, single_n = module(x[1], h0[:, 1])  # unbatched (L, H_in), hx (layers, H)
    torch.testing.assert_close(single, out[1], **F64)
    torch.testing.assert_close(single_n, h_n[:, 1], **F64)


def test_parameters_and_errors() -> None:
    module = MinLSTM(3, 4, bias=False)
    assert [n for n, _ in module.named_parameters()] == ["weight_ih_l0"]
    assert module.weight_ih_l0.shape == (12, 3)
    with pytest.raises(ShapeError, match="input_size"):
        module(torch.randn(5, 2, 7))
    with pytest.raises(ShapeError, match="hx must have shape"):
        module(torch.randn(5, 2, 3), torch.randn(2, 2, 4))
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        MinGRU(3, 0)
    with pytest.raises(ShapeError, match="inconsistent input_size"):
        MinGRUCell(3, 4)(torch.randn(2, 5))
