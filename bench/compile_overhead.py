"""torch.compile's per-call cost on rnnkit.nn modules, against a torch.nn.Linear control.

    PYTHONPATH=. python bench/compile_overhead.py [cell:size:mode ...]

cells rnn, gru, lstm (rnnkit.nn) and linear (torch.nn.Linear(D, H), the control), sizes tiny
and small of rnnkit.bench, modes inference and training (forward, sum, backward). Eager and
``torch.compile(module, fullgraph=True)`` alternate in rounds of calls; each is the fastest
round's time per call (a shared machine only adds time), the ratio the median of the rounds'.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

import rnnkit.nn as rnn
from rnnkit.bench.speed import SIZES

MODULES = {"rnn": rnn.RNN, "gru": rnn.GRU, "lstm": rnn.LSTM, "linear": torch.nn.Linear}


def _call(fn, module: torch.nn.Module, x: torch.Tensor, training: bool):  # type: ignore[no-untyped-def]
    params = list(module.parameters())

    def first(result):  # type: ignore[no-untyped-def]
        return result[0] if isinstance(result, tuple) else result

    def train() -> None:
        for p in params:
            p.grad = None
        first(fn(x)).sum().backward()

    def infer() -> None:
        with torch.no_grad():
            fn(x)

    return train if training else infer


def measure(cell: str, size: str, mode: str, rounds: int = 40) -> tuple[float, float, float]:
    s = SIZES[size]
    torch.manual_seed(0)
    module = MODULES[cell](s.features, s.hidden)
    x = torch.randn(s.steps, s.batch, s.features)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True)
    training = mode == "training"
    calls = {"eager": _call(module, module, x, training),
             "compiled": _call(compiled, module, x, training)}
    for call in calls.values():
        for _ in range(3):  # the first compiles
            call()
    start = time.perf_counter()
    calls["eager"]()
    n = max(3, min(200, int(0.005 / max(time.perf_counter() - start, 1e-6))))
    per: dict[str, list[float]] = {k: [] for k in calls}
    for r in range(rounds):
        for name in (("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")):
            start = time.perf_counter()
            for _ in range(n):
                calls[name]()
            per[name].append((time.perf_counter() - start) / n)
    ratio = statistics.median(e / c for e, c in zip(per["eager"], per["compiled"]))
    return min(per["eager"]), min(per["compiled"]), ratio


def main(argv: list[str]) -> None:
    rows = [a.split(":") for a in argv] or [
        (c, s, m) for m in ("inference", "training") for s in ("tiny", "small")
        for c in ("linear", "rnn", "gru", "lstm")]
    for cell, size, mode in rows:
        eager, compiled, ratio = measure(cell, size, mode)
        print(f"{cell:6} {size:5} {mode:9} eager {eager * 1e6:8.1f} us  compiled "
              f"{compiled * 1e6:8.1f} us  compiled - eager {(compiled - eager) * 1e6:7.1f} us  "
              f"eager/compiled {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
