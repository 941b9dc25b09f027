"""rnnkit.nn.PeepholeLSTM / LayerNormLSTM / LayerNormGRU (composite) against the NumPy
reference with the modules' own weights (float64, lengths and masks, both directions), the
module against its cell stepped by hand, torch.nn.LSTM when the peepholes are zero,
gradcheck/gradgradcheck, saving and loading, and errors.

Tolerances: float64 rtol 1e-10 / atol 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit._kernels._cell_spec import GRU as GRU_SPEC
from rnnkit.nn import (LayerNormGRU, LayerNormGRUCell, LayerNormLSTM, LayerNormLSTMCell,
                       PeepholeLSTM, PeepholeLSTMCell, ShapeError)

F64 = dict(rtol=1e-10, atol=1e-12)


def _randomise(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()


def _numpy(module, x, h0, c0, mask, suffix, go_backwards):
    p = {n: getattr(module, n + suffix).detach().numpy() for n in
         ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    if isinstance(module, LayerNormGRU):  # torch's r, z, n rows -> Keras' z, r, h columns
        rows = GRU_SPEC.rows("torch", "keras", module.hidden_size)
        ln = [tuple(getattr(module, f"ln_{k}_{w}{suffix}").detach().numpy()[rows]
                    for w in ("weight", "bias")) for k in ("ih", "hh")]
        hs = reference.layer_norm_gru(
            x, p["weight_ih"][rows].T, p["weight_hh"][rows].T, *ln,
            bias=np.stack([p["bias_ih"][rows], p["bias_hh"][rows]]), h0=h0, mask=mask,
            go_backwards=go_backwards)
        return hs, None
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


@pytest.mark.parametrize("module_class", [PeepholeLSTM, LayerNormLSTM, LayerNormGRU])
@pytest.mark.parametrize("by", ["lengths", "mask"])
def test_against_the_numpy_reference(module_class, by) -> None:
    module = module_class(3, 4, bidirectional=True, dtype=torch.float64)
    _randomise(module)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    h0, c0 = (torch.randn(2, 3, 4, dtype=torch.float64) for _ in range(2))
    lengths = torch.tensor([6, 2, 4])
    mask = (torch.arange(6)[None] < lengths[:, None]).numpy()  # (B, T)
    given = {"lengths": lengths} if by == "lengths" else {"mask": torch.from_numpy(mask)}
    if module_class is LayerNormGRU:
        out, h_n = module(x, h0, **given)
        c_n = None
    else:
        out, (h_n, c_n) = module(x, (h0, c0), **given)
    xb = x.transpose(0, 1).numpy()
    for d, suffix in enumerate(("_l0", "_l0_reverse")):
        hs, cs = _numpy(module, xb, h0[d].numpy(), c0[d].numpy(), mask, suffix, d == 1)
        if d == 1:  # processing order -> time order
            hs = hs[:, ::-1]
            cs = None if cs is None else cs[:, ::-1]
        got = out[..., 4 * d:4 * (d + 1)].transpose(0, 1).detach().numpy()
        np.testing.assert_allclose(got, hs * mask[..., None], rtol=1e-10, atol=1e-12)
        last = [n - 1 for n in lengths.tolist()]
        for final, states in ((h_n, hs), (c_n, cs)):
            if final is not None:
                want = np.stack([states[b, 0 if d == 1 else last[b]] for b in range(3)])
                np.testing.assert_allclose(final[d].detach().numpy(), want, **F64)


@pytest.mark.parametrize("module_class, cell_class", [(PeepholeLSTM, PeepholeLSTMCell),
                                                      (LayerNormLSTM, LayerNormLSTMCell),
                                                      (LayerNormGRU, LayerNormGRUCell)])
def test_module_equals_its_cell_stepped(module_class, cell_class) -> None:
    module = module_class(3, 4, batch_first=True, dtype=torch.float64)
    _randomise(module)
    cell = cell_class(3, 4, dtype=torch.float64)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in module.state_dict().items()})
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    if module_class is LayerNormGRU:
        out, h_n = module(x)
        h = torch.zeros(2, 4, dtype=torch.float64)
        for t in range(5):
            h = cell(x[:, t], h)
            torch.testing.assert_close(out[:, t], h, **F64)
        torch.testing.assert_close(h_n[0], h, **F64)
        return
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


@pytest.mark.parametrize("module_class", [PeepholeLSTM, LayerNormLSTM, LayerNormGRU])
def test_gradcheck_and_gradgradcheck(module_class) -> None:
    module = module_class(2, 2, dtype=torch.float64)
    _randomise(module)
    x = torch.randn(2, 2, 2, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().requires_grad_() for p in module.parameters())

    def f(x, *p):
        out, final = torch.func.functional_call(module, dict(zip(names, p)), (x,),
                                                {"lengths": torch.tensor([2, 1])})
        return out, final if module_class is LayerNormGRU else final[1]

    assert torch.autograd.gradcheck(f, (x, *params))
    # second order on x, W_hh and the variant's own weights (all of them: minutes)
    chosen = [i for i, n in enumerate(names) if n in (
        "weight_hh_l0", "weight_ci_l0", "weight_co_l0", "ln_c_weight_l0", "ln_hh_weight_l0")]

    def g(x, *some):
        p = list(params)
        for i, value in zip(chosen, some):
            p[i] = value
        return f(x, *p)

    assert torch.autograd.gradgradcheck(g, (x, *[params[i] for i in chosen]))


def test_layer_norm_gru_gradcheck_both_directions_and_a_mask() -> None:
    """Bidirectional, a mask with a gap: every parameter to first order; second order on x,
    h_0 and the reverse direction's recurrent weights and norm (all of them: minutes)."""
    module = LayerNormGRU(2, 2, bidirectional=True, dtype=torch.float64)
    _randomise(module)
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().requires_grad_() for p in module.parameters())
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 2, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, False, True]])

    def f(x, h0, *p):
        return torch.func.functional_call(module, dict(zip(names, p)), (x, h0), {"mask": mask})

    # fast_mode: random projections of the Jacobians, not every entry (the full check of this
    # bidirectional case ran seven minutes on a loaded machine)
    assert torch.autograd.gradcheck(f, (x, h0, *params), fast_mode=True)
    chosen = [names.index(n) for n in ("weight_hh_l0_reverse", "ln_hh_weight_l0_reverse")]

    def g(x, h0, *some):
        p = list(params)
        for i, value in zip(chosen, some):
            p[i] = value
        return f(x, h0, *p)

    assert torch.autograd.gradgradcheck(g, (x, h0, *[params[i] for i in chosen]),
                                        fast_mode=True)


def test_layer_norm_gru_matches_a_torch_loop_of_the_authors_form() -> None:
    """Against an independent loop written as the authors' lngru_layer (their pre-norm input
    biases at zero, their initial value; the norm shifts carry torch's two biases)."""
    module = LayerNormGRU(3, 4, dtype=torch.float64)
    _randomise(module)
    P = {n: p.detach() for n, p in module.named_parameters()}
    H = 4

    def ln(v, gain, shift):
        mean = v.mean(-1, keepdim=True)
        var = ((v - mean) ** 2).mean(-1, keepdim=True)
        return gain * (v - mean) / torch.sqrt(var + 1e-5) + shift

    W, U = P["weight_ih_l0"], P["weight_hh_l0"]
    gx, sx = P["ln_ih_weight_l0"], P["ln_ih_bias_l0"] + P["bias_ih_l0"]
    gh, sh = P["ln_hh_weight_l0"], P["ln_hh_bias_l0"] + P["bias_hh_l0"]
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    h = torch.zeros(2, H, dtype=torch.float64)
    for t in range(5):
        xw = x[t] @ W.T
        x_rz = ln(xw[:, :2 * H], gx[:2 * H], sx[:2 * H])
        x_n = ln(xw[:, 2 * H:], gx[2 * H:], sx[2 * H:])
        hu = h @ U.T
        preact = ln(hu[:, :2 * H], gh[:2 * H], sh[:2 * H]) + x_rz
        r, u = torch.sigmoid(preact[:, :H]), torch.sigmoid(preact[:, H:])
        h = u * h + (1 - u) * torch.tanh(ln(hu[:, 2 * H:], gh[2 * H:], sh[2 * H:]) * r + x_n)
    torch.testing.assert_close(module(x)[1][0], h, **F64)


def test_save_and_load(tmp_path) -> None:
    """state_dict through torch.save / torch.load(weights_only=True) into a fresh module, and
    into the cell (the names without ``_l0``)."""
    module = LayerNormGRU(3, 4, bidirectional=True, batch_first=True)
    _randomise(module)
    path = tmp_path / "lngru.pt"
    torch.save(module.state_dict(), path)
    fresh = LayerNormGRU(3, 4, bidirectional=True, batch_first=True)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(fresh(x), module(x), rtol=0, atol=0)
    cell = LayerNormGRUCell(3, 4)
    cell.load_state_dict({k[:-3]: v for k, v in module.state_dict().items()
                          if k.endswith("_l0")})
    torch.testing.assert_close(cell(x[:, 0]), module(x[:, :1])[0][:, 0, :4], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="ln_hh_weight_l0"):
        LayerNormGRU(3, 4).load_state_dict({k: v for k, v in module.state_dict().items()
                                            if "ln_hh_weight" not in k})


def test_errors() -> None:
    with pytest.raises(ShapeError, match="input_size"):
        LayerNormLSTM(3, 4)(torch.randn(5, 2, 6))
    with pytest.raises(ShapeError, match="h_0 and c_0"):
        PeepholeLSTM(3, 4)(torch.randn(5, 2, 3), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5)))
    with pytest.raises(ValueError, match="positive int"):
        PeepholeLSTM(3, -1)
    with pytest.raises(ShapeError, match="expected input"):
        LayerNormLSTMCell(3, 4)(torch.randn(2, 5))
    with pytest.raises(ShapeError, match="h_0 must have shape"):
        LayerNormGRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 5))
    with pytest.raises(ShapeError, match="expected input"):
        LayerNormGRUCell(3, 4)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="lengths"):
        LayerNormGRU(3, 4)(torch.randn(5, 2, 3), lengths=torch.tensor([6, 1]))
