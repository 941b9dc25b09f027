"""rnnkit.nn.PeepholeLSTM / LayerNormLSTM (composite) against the NumPy reference with the
modules' own weights (float64, lengths, both directions), the module against its cell stepped
by hand, torch.nn.LSTM when the peepholes are zero, gradcheck/gradgradcheck, and errors.

Tolerances: float64 rtol 1e-10 / atol 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit.nn import (LayerNormLSTM, LayerNormLSTMCell, PeepholeLSTM, PeepholeLSTMCell,
                       ShapeError)

F64 = dict(rtol=1e-10, atol=1e-12)


def _randomise(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()


def _numpy(module, x, h0, c0, mask, suffix, go_backwards):
    p = {n: getattr(module, n + suffix).detach().numpy() for n in
         ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    common = dict(bias=p["bias_ih"] + p["bias_hh"], h0=h0, c0=c0, mask=mask,
                  go_backwards=go_backwards)
    if isinstance(module, PeepholeLSTM):
        peep = np.stack([getattr(module, f"weight_c{g}{suffix}").detach().numpy()
                         for g in "ifo"])
        return reference.peephole_lstm(x, p["weight_ih"].T, p["weight_hh"].T, peep, **common)
    ln = {k: tuple(getattr(module, f"ln_{k}_{w}{suffix}").detach().numpy()
                   for w in ("weight", "bias")) for k in ("ih", "hh", "c")}
    return reference.layer_norm_lstm(x, p["weight_ih"].T, p["weight_hh"].T, ln["ih"], ln["hh"],
                                     ln["c"], **common)


@pytest.mark.parametrize("module_class", [PeepholeLSTM, LayerNormLSTM])
def test_against_the_numpy_reference(module_class) -> None:
    module = module_class(3, 4, bidirectional=True, dtype=torch.float64)
    _randomise(module)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    h0, c0 = (torch.randn(2, 3, 4, dtype=torch.float64) for _ in range(2))
    lengths = torch.tensor([6, 2, 4])
    out, (h_n, c_n) = module(x, (h0, c0), lengths=lengths)
    mask = (torch.arange(6)[None] < lengths[:, None]).numpy()  # (B, T)
    xb = x.transpose(0, 1).numpy()
    for d, suffix in enumerate(("_l0", "_l0_reverse")):
        hs, cs = _numpy(module, xb, h0[d].numpy(), c0[d].numpy(), mask, suffix, d == 1)
        if d == 1:  # processing order -> time order
            hs, cs = hs[:, ::-1], cs[:, ::-1]
        got = out[..., 4 * d:4 * (d + 1)].transpose(0, 1).detach().numpy()
        np.testing.assert_allclose(got, hs * mask[..., None], rtol=1e-10, atol=1e-12)
        last = [n - 1 for n in lengths.tolist()]
        want_h = np.stack([hs[b, 0 if d == 1 else last[b]] for b in range(3)])
        want_c = np.stack([cs[b, 0 if d == 1 else last[b]] for b in range(3)])
        np.testing.assert_allclose(h_n[d].detach().numpy(), want_h, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(c_n[d].detach().numpy(), want_c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("module_class, cell_class", [(PeepholeLSTM, PeepholeLSTMCell),
                                                      (LayerNormLSTM, LayerNormLSTMCell)])
def test_module_equals_its_cell_stepped(module_class, cell_class) -> None:
    module = module_class(3, 4, batch_first=True, dtype=torch.float64)
    _randomise(module)
    cell = cell_class(3, 4, dtype=torch.float64)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in module.state_dict().items()})
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    out, (h_n, c_n) = module(x)
    h = c = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(5):
        h, c = cell(x[:, t], (h, c))
        torch.testing.assert_close(out[:, t], h, **F64)
    torch.testing.assert_close(h_n[0], h, **F64)
    torch.testing.assert_close(c_n[0], c, **F64)


def test_zero_peepholes_are_torch_nn_lstm() -> None:
    module = PeepholeLSTM(3, 4, dtype=torch.float64)  # peepholes start at zero
    lstm = torch.nn.LSTM(3, 4, dtype=torch.float64)
    lstm.load_state_dict({k: v for k, v in module.state_dict().items() if "weight_c" not in k})
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(module(x)[0], lstm(x)[0], **F64)


@pytest.mark.parametrize("cell_class", [PeepholeLSTMCell, LayerNormLSTMCell])
def test_gradcheck_and_gradgradcheck(cell_class) -> None:
    module = {PeepholeLSTMCell: PeepholeLSTM, LayerNormLSTMCell: LayerNormLSTM}[cell_class](
        2, 2, dtype=torch.float64)
    _randomise(module)
    x = torch.randn(2, 2, 2, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().requires_grad_() for p in module.parameters())

    def f(x, *p):
        out, (h, c) = torch.func.functional_call(module, dict(zip(names, p)), (x,),
                                                 {"lengths": torch.tensor([2, 1])})
        return out, c

    assert torch.autograd.gradcheck(f, (x, *params))
    # second order on x, W_hh and the variant's own weights (all of them: minutes)
    chosen = [i for i, n in enumerate(names) if n in (
        "weight_hh_l0", "weight_ci_l0", "weight_co_l0", "ln_c_weight_l0")]

    def g(x, *some):
        p = list(params)
        for i, value in zip(chosen, some):
            p[i] = value
        return f(x, *p)

    assert torch.autograd.gradgradcheck(g, (x, *[params[i] for i in chosen]))


def test_errors() -> None:
    with pytest.raises(ShapeError, match="input_size"):
        LayerNormLSTM(3, 4)(torch.randn(5, 2, 6))
    with pytest.raises(ShapeError, match="h_0 and c_0"):
        PeepholeLSTM(3, 4)(torch.randn(5, 2, 3), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5)))
    with pytest.raises(ValueError, match="positive int"):
        PeepholeLSTM(3, -1)
    with pytest.raises(ShapeError, match="expected input"):
        LayerNormLSTMCell(3, 4)(torch.randn(2, 5))
