"""``python -m rnnkit.bench.cells``: the cells beyond torch.nn's against the best plain-PyTorch
implementation of the same cell, in one process, interleaved (ratios; above 1: rnnkit faster).

- ``PeepholeLSTM`` and ``LayerNormLSTM`` (``rnnkit.nn``: their operators' C++ loops,
  csrc/peephole.cpp and csrc/layer_norm_lstm.cpp) against the same step (the functions of
  :mod:`rnnkit._kernels.lstm_variants`, so the cell is the same to the last operation) run by
  plain PyTorch two ways, its input side also hoisted out of the loop: the whole loop in
  ``torch.jit.script``, and the step under ``torch.compile`` in a Python loop (compiling is
  the untimed warm-up call; a compiled loop over 1,000 steps would unroll). The ratio is
  against the faster of the two, named in the row.
- ``MinGRU`` (``rnnkit.nn``, the log-space parallel scan of :mod:`rnnkit._kernels.minimal`)
  against lucidrains' ``minGRU-pytorch`` formulation (github.com/lucidrains/minGRU-pytorch,
  ``minGRU.forward``: gates from one bias-free projection, the log-space Heinsen scan
  ``exp(a* + logcumsumexp(log v - a*))`` over ``a* = cumsum(log(1 - z))``) written here in plain
  PyTorch.

Training is forward + backward of the sum of the outputs; inference is the forward pass under
``no_grad``. Sizes are the bench's (``rnnkit.bench.speed.SIZES``), small and long by default.
A separate command (not part of ``python -m rnnkit.bench --quick``): each ``torch.compile``
costs tens of seconds. ``--check`` only verifies that every contender computes the same
numbers (the test suite runs it), and times nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import nn as _nn
from .._kernels.lstm_variants import LN_EPS, layer_norm_lstm_step, peephole_lstm_step
from .speed import FULL, QUICK, SIZES, Settings, Size, import_inductor, time_interleaved

__all__ = ["contenders", "main", "run"]

Call = Callable[[], Tensor]
CELLS = ("peephole_lstm", "layer_norm_lstm", "mingru")


# -- plain PyTorch: the variants' step, scripted loop and compiled step -----------------------
def _peephole_loop(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b: Optional[Tensor],
                   p_i: Tensor, p_f: Tensor, p_o: Tensor) -> Tensor:
    outs = []
    for t in range(gi.shape[0]):
        h, c = peephole_lstm_step(gi[t], h, c, w_hh, b, p_i, p_f, p_o)
        outs.append(h)
    return torch.stack(outs)


def _layer_norm_loop(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b: Optional[Tensor],
                     ln_h: tuple[Tensor, Tensor], ln_c: tuple[Tensor, Tensor]) -> Tensor:
    outs = []
    for t in range(gi.shape[0]):
        h, c = layer_norm_lstm_step(gi[t], h, c, w_hh, b, ln_h, ln_c)
        outs.append(h)
    return torch.stack(outs)


_LOOPS = {"peephole_lstm": _peephole_loop, "layer_norm_lstm": _layer_norm_loop}
_STEPS = {"peephole_lstm": peephole_lstm_step, "layer_norm_lstm": layer_norm_lstm_step}
_SCRIPTED: dict[str, Any] = {}


def _plain_inputs(cell: str, module: torch.nn.Module, x: Tensor) -> tuple[Tensor, list[Any]]:
    """The input side for all steps (T, B, 4H) and the step's other arguments, from the
    module's parameters (read at each call, so training sees the same leaves)."""
    p = {n[:-3]: v for n, v in module.named_parameters()}  # names without "_l0"
    if cell == "peephole_lstm":
        return (F.linear(x, p["weight_ih"], p["bias_ih"]),
                [p["weight_hh"], p["bias_hh"], p["weight_ci"], p["weight_cf"], p["weight_co"]])
    gi = F.layer_norm(F.linear(x, p["weight_ih"]), (p["weight_ih"].shape[0],),
                      p["ln_ih_weight"], p["ln_ih_bias"], eps=LN_EPS)
    return gi, [p["weight_hh"], p["bias_ih"] + p["bias_hh"], (p["ln_hh_weight"], p["ln_hh_bias"]),
                (p["ln_c_weight"], p["ln_c_bias"])]


def _scripted(cell: str, module: torch.nn.Module, x: Tensor, h0: Tensor) -> Call:
    if cell not in _SCRIPTED:
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; it still runs
            warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated",
                                    DeprecationWarning)
            _SCRIPTED[cell] = torch.jit.script(_LOOPS[cell])
    loop = _SCRIPTED[cell]

    def call() -> Tensor:
        gi, rest = _plain_inputs(cell, module, x)
        return loop(gi, h0, h0, *rest)
    return call


def _compiled_step(cell: str, module: torch.nn.Module, x: Tensor, h0: Tensor) -> Call:
    import_inductor()
    step = torch.compile(_STEPS[cell], fullgraph=True, dynamic=False)

    def call() -> Tensor:
        gi, rest = _plain_inputs(cell, module, x)
        h = c = h0
        outs = []
        for t in range(gi.shape[0]):
            h, c = step(gi[t], h, c, *rest)
            outs.append(h)
        return torch.stack(outs)
    return call


# -- lucidrains' minGRU formulation in plain PyTorch -------------------------------------------
def _log_g(a: Tensor) -> Tensor:
    """log of minGRU's positive candidate g(a) = a + 1/2 (a >= 0), sigmoid(a) below."""
    return torch.where(a >= 0, torch.log(F.relu(a) + 0.5), -F.softplus(-a))


def lucidrains_mingru(x: Tensor, weight: Tensor) -> Tensor:
    """minGRU-pytorch's parallel forward pass, batch first (B, T, D) -> (B, T, H), with its
    bias-free projection ``weight`` (2H, D) split as (candidate, gate) and no initial state:
    h_t = (1 - z_t) h_{t-1} + z_t g(k_t) in log space, one cumsum and one logcumsumexp."""
    candidate, gate = F.linear(x, weight).chunk(2, dim=-1)
    log_coeffs = -F.softplus(gate)  # log(1 - z)
    log_values = -F.softplus(-gate) + _log_g(candidate)  # log(z g(k))
    a_star = log_coeffs.cumsum(dim=1)
    return torch.exp(a_star + torch.logcumsumexp(log_values - a_star, dim=1))


# -- the rows -----------------------------------------------------------------------------------
def contenders(cell: str, size: Size, seed: int = 0) -> tuple[torch.nn.Module,
                                                                 dict[str, Call]]:
    """The rnnkit module and every contender's call returning its outputs (time-major for the
    LSTM variants, batch-first for minGRU), all on the module's parameters and one input."""
    torch.manual_seed(seed)
    if cell == "mingru":
        module = _nn.MinGRU(size.features, size.hidden, bias=False, batch_first=True)
        x = torch.randn(size.batch, size.steps, size.features)
        # rnnkit's blocks are (z, h); minGRU-pytorch's projection is (candidate, gate)
        H = size.hidden

        def lucidrains() -> Tensor:
            w = module.weight_ih_l0
            return lucidrains_mingru(x, torch.cat([w[H:], w[:H]]))
        return module, {"rnnkit.nn": lambda: module(x)[0],
                        "minGRU-pytorch (plain PyTorch)": lucidrains}
    module_class = _nn.PeepholeLSTM if cell == "peephole_lstm" else _nn.LayerNormLSTM
    module = module_class(size.features, size.hidden)
    with torch.no_grad():  # peepholes and norms away from their initial values
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(size.steps, size.batch, size.features)
    h0 = torch.zeros(size.batch, size.hidden)
    return module, {"rnnkit.nn": lambda: module(x)[0],
                    "torch.jit.script loop": _scripted(cell, module, x, h0),
                    "torch.compile step": _compiled_step(cell, module, x, h0)}


def _timed(module: torch.nn.Module, call: Call, training: bool) -> Callable[[], None]:
    params = list(module.parameters())
    if training:
        def train() -> None:
            for p in params:
                p.grad = None
            call().sum().backward()
        return train

    def infer() -> None:
        with torch.no_grad():
            call()
    return infer


def run(cells: list[str], sizes: list[str], settings: Settings,
        progress: Callable[[str], None] = lambda text: None) -> list[dict[str, Any]]:
    rows = []
    for cell in cells:
        for size_name in sizes:
            module, calls = contenders(cell, SIZES[size_name])
            for training in (True, False):
                times = time_interleaved({name: _timed(module, call, training)
                                          for name, call in calls.items()}, settings)
                baseline = min((n for n in times if n != "rnnkit.nn"), key=times.__getitem__)
                row = {"cell": cell, "size": size_name,
                       "mode": "training" if training else "inference",
                       "ms": {n: 1e3 * t for n, t in times.items()}, "baseline": baseline,
                       "ratio": times[baseline] / times["rnnkit.nn"]}
                rows.append(row)
                progress(f"{cell:16s} {size_name:6s} {row['mode']:9s} "
                         f"{baseline} / rnnkit.nn = {row['ratio']:.2f}x  " + "  ".join(
                             f"{n} {ms:.1f} ms" for n, ms in row["ms"].items()))
    return rows


def check(cells: list[str], size: Size) -> None:
    """Every contender's outputs equal rnnkit's (float32 tolerance); raises if not."""
    for cell in cells:
        _, calls = contenders(cell, size)
        want = calls.pop("rnnkit.nn")().detach()
        for name, call in calls.items():
            torch.testing.assert_close(call().detach(), want, rtol=1e-4, atol=1e-5,
                                       msg=lambda m, n=name, c=cell: f"{c}, {n}: {m}")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m rnnkit.bench.cells",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated: "
                        + ", ".join(CELLS))
    parser.add_argument("--sizes", default="small,long", help="comma-separated bench sizes")
    parser.add_argument("--quick", action="store_true", help="short timings")
    parser.add_argument("--check", action="store_true",
                        help="only check that the contenders agree, at the tiny size")
    parser.add_argument("--json", type=Path, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    cells, sizes = args.cells.split(","), args.sizes.split(",")
    for names, known in ((cells, CELLS), (sizes, tuple(SIZES))):
        for name in names:
            if name not in known:
                raise SystemExit(f"unknown {name!r}; choose from {', '.join(known)}")
    if args.check:
        check(cells, SIZES["tiny"])
        print("every contender agrees with rnnkit.nn")
        return []
    rows = run(cells, sizes, QUICK if args.quick else FULL,
               progress=lambda text: print(text, file=sys.stderr, flush=True))
    if args.json is not None:
        from .._io import atomic_write

        atomic_write(args.json, json.dumps({"rows": rows}, indent=2).encode())
    return rows


if __name__ == "__main__":
    main()
