"""The compiled kernels' fused micro-kernel steps (csrc/microkernel.h) on every instruction set
this CPU runs: in a fresh process per ISA (RNNKIT_ISA is read once), float32 values and
gradients of the three cells against the autograd loop, at sizes that leave partial vector
tiles and row blocks (H = 1, 10, 37, 100; B = 1, 7, 13), both directions, with and without
biases, with a broadcast output gradient (out.sum()) and a dense one; and masked (lengths from
0 to T, and holes), held and zero-padded. Float32: rtol/atol 2e-5
(1e-4 on gradients of the 12-step sequences, which accumulate through time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit import _kernels as K

SCRIPT = r"""
import json, sys
import torch
from rnnkit import _kernels as K
torch.manual_seed(0)
worst = {"values": 0.0, "grads": 0.0}
cases = [(3, 1, 2, 1), (5, 7, 3, 10), (4, 13, 5, 37), (12, 7, 4, 100)]
def check(cell, gates, steps, batch, features, hidden, reverse, bias, broadcast, mask, zero):
    g = torch.Generator().manual_seed(steps * 100 + hidden)
    def r(*shape, s=1.0):
        return ((torch.rand(*shape, generator=g) * 2 - 1) * s).requires_grad_()
    x = r(steps, batch, features)
    states = [r(batch, hidden) for _ in range(2 if cell == "lstm" else 1)]
    s = hidden ** -0.5
    w_ih, w_hh = r(gates * hidden, features, s=s), r(gates * hidden, hidden, s=s)
    b_ih = r(gates * hidden) if bias else None
    b_hh = r(gates * hidden) if bias else None
    leaves = [t for t in (x, *states, w_ih, w_hh, b_ih, b_hh) if t is not None]
    weight = torch.randn(steps, batch, hidden, generator=g)
    kw = dict(mask=mask, reverse=reverse, zero_padding=zero)
    def run(backend):
        if cell == "lstm":
            o = K.lstm(x, *states, w_ih, w_hh, b_ih, b_hh, backend=backend, **kw)
        elif cell == "gru":
            o = K.gru(x, *states, w_ih, w_hh, b_ih, b_hh, backend=backend, **kw)
        else:
            o = K.rnn(x, *states, w_ih, w_hh, b_ih, b_hh, nonlinearity=cell[4:],
                      backend=backend, **kw)
        loss = o[0].sum() if broadcast else (o[0] * weight).sum()
        loss = loss + sum((f * (i + 2)).sum() for i, f in enumerate(o[1:]))
        return o, torch.autograd.grad(loss, leaves)
    fast, slow = run("compiled"), run("loop")
    for a, b in zip(fast[0], slow[0]):
        worst["values"] = max(worst["values"], ((a - b).abs() / (b.abs() + 1)).max().item())
    for a, b in zip(fast[1], slow[1]):
        worst["grads"] = max(worst["grads"], ((a - b).abs() / (b.abs() + 1)).max().item())
for cell, gates in (("lstm", 4), ("gru", 3), ("rnn_tanh", 1), ("rnn_relu", 1)):
    for steps, batch, features, hidden in cases:
        shape = (cell, gates, steps, batch, features, hidden)
        for reverse in (False, True):
            for bias in (True, False):
                for broadcast in (True, False):
                    check(*shape, reverse, bias, broadcast, None, False)
        # masked: lengths from 0 to T, and holes; held and zero padding
        g = torch.Generator().manual_seed(batch)
        lengths = torch.randint(0, steps + 1, (batch,), generator=g)
        lengths[::3] = steps
        lengths[1::3] = 0
        masks = [torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0),
                 torch.rand(steps, batch, generator=g) > 0.4]
        for mask in masks:
            for reverse in (False, True):
                for zero in (False, True):
                    check(*shape, reverse, True, zero, mask, zero)
print(json.dumps(worst))
"""


def _available_isas() -> list[str]:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isas = ["portable"]
    if " avx2" in flags and " fma" in flags:
        isas.append("avx2")
    if all(f" {f}" in flags for f in ("avx512f", "avx512dq", "avx512vl", "avx512bw")):
        isas.append("avx512")
    return isas


@pytest.mark.parametrize("isa", ["portable", "avx2", "avx512"])
def test_fused_steps_match_the_loop_on_every_isa(isa: str) -> None:
    if isa not in _available_isas():
        pytest.skip(f"this CPU has no {isa}")
    if not K._compiled.available():
        pytest.skip("compiled kernels unavailable")
    env = {**os.environ, "RNNKIT_ISA": isa, "PYTHONPATH": str(Path(__file__).parents[2])}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    worst = json.loads(result.stdout.strip().splitlines()[-1])
    assert worst["values"] <= 2e-5, worst
    assert worst["grads"] <= 1e-4, worst
