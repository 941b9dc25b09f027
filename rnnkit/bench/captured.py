"""``python -m rnnkit.bench.captured``: a user's cell on the captured path against its
per-step loop, in one process, interleaved (the ratio loop / captured; above 1 is faster).

Two cells, as issue 22 names them: the Keras RNN guide's ``MinimalRNNCell`` (``output = x W +
h U``) under ``rnnkit.layers.RNN(cell, backend="captured")`` against ``backend="loop"``, and
an LSTM step written in torch ops under ``rnnkit.nn.scan_cell(backend="captured")`` against
``backend="loop"``; training (forward and backward) and inference, at the bench's sizes.
"""

from __future__ import annotations

import argparse

import torch

from ..layers import RNN, Layer
from ..nn import scan_cell
from .speed import FULL, QUICK, SIZES, time_interleaved


class MinimalRNNCell(Layer):
    """The Keras RNN guide's custom cell."""

    def __init__(self, units: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                initializer="uniform", name="recurrent_kernel")
        self.built = True

    def call(self, inputs: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]


class HandLSTMCell(torch.nn.Module):
    """An LSTM step in torch ops, ``forward(x, (h, c)) -> (h, c)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = torch.nn.Linear(input_size, 4 * hidden_size)
        self.hh = torch.nn.Linear(hidden_size, 4 * hidden_size, bias=False)

    def forward(self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = hx
        i, f, g, o = (self.ih(x) + self.hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def run(sizes: list[str], quick: bool) -> list[tuple[str, str, str, float]]:
    settings = QUICK if quick else FULL
    rows = []
    for size_name in sizes:
        size = SIZES[size_name]
        x = torch.randn(size.batch, size.steps, size.features)
        cell = MinimalRNNCell(size.hidden)
        fast, slow = (RNN(cell, return_sequences=True, backend=b) for b in ("captured", "loop"))
        lstm = HandLSTMCell(size.features, size.hidden)
        x_tm = x.transpose(0, 1).contiguous()
        hx = (torch.zeros(size.batch, size.hidden), torch.zeros(size.batch, size.hidden))
        contenders = {
            "MinimalRNNCell": (lambda: fast(x), lambda: slow(x)),
            "torch-style LSTM": (lambda: scan_cell(lstm, x_tm, hx)[0],
                                 lambda: scan_cell(lstm, x_tm, hx, backend="loop")[0]),
        }
        for name, (captured, loop) in contenders.items():
            for mode in ("training", "inference"):
                if mode == "training":
                    calls = {"captured": lambda f=captured: f().sum().backward(),
                             "loop": lambda f=loop: f().sum().backward()}
                else:
                    calls = {"captured": lambda f=captured: _no_grad(f),
                             "loop": lambda f=loop: _no_grad(f)}
                times = time_interleaved(calls, settings)
                rows.append((name, size_name, mode, times["loop"] / times["captured"]))
                print(f"{name:18s} {size_name:6s} {mode:9s} loop/captured = "
                      f"{rows[-1][3]:.2f}x", flush=True)
    return rows


def _no_grad(fn: object) -> None:
    with torch.no_grad():
        fn()  # type: ignore[operator]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rnnkit.bench.captured",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,long", help="comma-separated bench sizes")
    parser.add_argument("--quick", action="store_true", help="short timings")
    args = parser.parse_args(argv)
    run(args.sizes.split(","), args.quick)


if __name__ == "__main__":
    main()
