"""Streaming inference: latency of one recurrent step at batch 1, the state carried.

What streaming, autoregressive decoding and the translate task's greedy decode run: one input
vector (1, D) at a time, with the previous step's state. For each cell (tanh RNN, GRU, LSTM)
and hidden size ``H`` (input width ``D = H``), microseconds per step, measured interleaved in
one process (one step of each contender in turn, the median kept), under ``no_grad``:

- ``torch.nn cell``: ``torch.nn.RNNCell`` / ``GRUCell`` / ``LSTMCell`` (the baseline);
- ``rnnkit.nn cell``: ``rnnkit.nn``'s cell of the same name, on the same weights;
- ``rnnkit.nn T=1``: ``rnnkit.nn.RNN`` / ``GRU`` / ``LSTM`` on a (1, 1, D) input with ``hx``;
- ``onnxruntime``: the single-step model ``x (1, 1, D), h (1, 1, H)[, c] -> output, states``
  (``rnnkit.nn``'s module exported by ``torch.onnx.export``: one ONNX RNN/GRU/LSTM node) in an
  ``InferenceSession`` on one thread, inputs and outputs as NumPy arrays, the states carried;
  only where ``onnxruntime`` and ``onnx`` are installed (the ``interop`` extra).

Each contender carries its own state from step to step (its outputs feed its next step), so
what is timed is what a decoding loop pays. Usage: ``python -m rnnkit.bench --step [--json
PATH] [--cells lstm] [--hidden 64,256]``.
"""

from __future__ import annotations

import importlib.util
import io
import random
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from .. import nn as _nn
from .._kernels._cell_spec import CELLS as _SPECS

__all__ = ["HIDDEN", "step_contenders", "run_step"]

HIDDEN = (64, 256)
BASELINE = "torch.nn cell"
CELLS = tuple(name for name, cell in _SPECS.items() if cell.torch_modes)
_CELL_CLASS = {"rnn": "RNNCell", "gru": "GRUCell", "lstm": "LSTMCell"}

Step = Callable[[], Any]


def _carried(step: Callable[[Any], Any], state: Any) -> Step:
    """A call that runs one step from the state the previous call left."""
    holder = [state]

    def call() -> None:
        holder[0] = step(holder[0])

    return call


def step_contenders(cell: str, hidden: int, seed: int = 0) -> dict[str, Step]:
    """One step of every contender, on the same weights, each carrying its own state."""
    g = torch.Generator().manual_seed(seed)
    features = hidden
    x = torch.randn(1, features, generator=g)
    lstm = cell == "lstm"
    reference = getattr(torch.nn, _CELL_CLASS[cell])(features, hidden)
    zeros = torch.zeros(1, hidden)
    cell_state: Any = (zeros, zeros) if lstm else zeros

    def run_cell(module: torch.nn.Module) -> Step:
        return _carried(lambda state: module(x, state), cell_state)

    ours = getattr(_nn, _CELL_CLASS[cell])(features, hidden)
    ours.load_state_dict(reference.state_dict())
    calls = {BASELINE: run_cell(reference), "rnnkit.nn cell": run_cell(ours)}

    module = getattr(_nn, _SPECS[cell].nn_class)(features, hidden)
    module.load_state_dict({f"{name}_l0": value for name, value in reference.state_dict().items()})
    x_seq = x.unsqueeze(0)  # (1, 1, D)
    seq_state: Any = (zeros[None], zeros[None]) if lstm else zeros[None]  # (1, 1, H)
    calls["rnnkit.nn T=1"] = _carried(lambda state: module(x_seq, state)[1], seq_state)

    session = _onnx_session(module, x_seq, seq_state)
    if session is not None:
        names = ["input", "h0", "c0"] if lstm else ["input", "h0"]
        x_np = x_seq.numpy()

        def ort_step(state: Any) -> Any:
            outputs = session.run(None, dict(zip(names, (x_np, *state))))
            return outputs[1:]

        start = [s.numpy() for s in (seq_state if lstm else (seq_state,))]
        calls["onnxruntime"] = _carried(ort_step, start)
    return calls


def _onnx_session(module: torch.nn.Module, x: torch.Tensor, state: Any) -> Any:
    """An onnxruntime session (one thread) of ``module``'s step exported by ``torch.onnx``,
    or None when onnxruntime or onnx is not installed."""
    if any(importlib.util.find_spec(name) is None for name in ("onnxruntime", "onnx")):
        return None
    import onnxruntime

    lstm = isinstance(state, tuple)

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor, *hx: torch.Tensor) -> Any:
            out, final = self.inner(x, hx if lstm else hx[0])
            return (out, *final) if lstm else (out, final)

    inputs = (x, *state) if lstm else (x, state)
    names = ["input", "h0", "c0"] if lstm else ["input", "h0"]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Step(), inputs, buffer, input_names=names, dynamo=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(buffer.getvalue(), options,
                                        providers=["CPUExecutionProvider"])


def time_steps(calls: dict[str, Step], rounds: int) -> dict[str, float]:
    """Median seconds per step of each contender, round-robin in a seeded random order."""
    for call in calls.values():  # warm-up
        for _ in range(20):
            call()
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    order = random.Random(0)
    for _ in range(rounds):
        for name in order.sample(names, len(names)):
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def run_step(cells: list[str], hidden: list[int], rounds: int = 2000) -> dict[str, Any]:
    """The step table: one row per cell and hidden size (see the module docstring)."""
    rows = []
    with torch.no_grad():
        for cell in cells:
            for size in hidden:
                times = time_steps(step_contenders(cell, size), rounds)
                base = times[BASELINE]
                rows.append({
                    "cell": cell, "batch": 1, "features": size, "hidden": size,
                    "us_per_step": {name: t * 1e6 for name, t in times.items()},
                    "speedup": {name: base / t for name, t in times.items()},
                })
                print(_row_line(rows[-1]), flush=True)
    return {"threads": torch.get_num_threads(), "rounds": rounds, "rows": rows}


def _row_line(row: dict[str, Any]) -> str:
    cells = "  ".join(f"{name} {us:7.1f} us ({row['speedup'][name]:.2f}x)"
                      for name, us in row["us_per_step"].items())
    return f"{row['cell']:5s} H={row['hidden']:<4d} {cells}"


def step_header() -> str:
    found = "present" if importlib.util.find_spec("onnxruntime") else "absent"
    return (f"batch-1 step latency, us per step (x: torch.nn cell's time / the contender's, "
            f"> 1: faster), {torch.get_num_threads()} thread(s), onnxruntime {found}")
