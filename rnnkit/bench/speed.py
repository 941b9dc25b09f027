"""Speed of rnnkit's recurrences against ``torch.nn`` (and JAX / Keras when installed).

For each cell (tanh RNN, GRU, LSTM) and size (batch, time, features, hidden), in inference
(forward under ``no_grad``) and training (forward + backward of the sum of the outputs):

- milliseconds per call of every contender, measured *interleaved* in the same process (one call
  of each in turn, repeated, the median kept), so that a slow moment of a shared machine hits
  all of them alike; the ratio to ``torch.nn`` (> 1: rnnkit is faster);
- achieved GFLOP/s of the matrix products (``matmul_flops``: 2 T B G H (D + H) per forward
  pass, 2 T B G H (2 D + 3 H) for training, whose input needs no gradient) as a share of two
  limits measured in the same run: the machine's, a register-resident FMA loop in the compiled
  library (``rnnkit::fma_gflops``) at the run's vector width and thread count ("% FMA limit"),
  and the best speed of a large float32 ``torch.mm`` ("% torch.mm": how close to MKL);
- peak memory of training: the highest total of tensor bytes alive at once during one forward +
  backward that were allocated inside it, from the allocator events ``torch.profiler`` records
  with ``profile_memory=True`` (weights, inputs and anything allocated before are not counted;
  the compiled kernels' small per-thread scratch vectors are not torch allocations and are not
  counted either, at most a (B, 3H) row block);
- a variable-length case (the small and long sizes, random lengths in [1, T]): rnnkit with
  ``lengths=`` against the same dense batch (the overhead of masking) and against ``torch.nn``
  on a ``PackedSequence`` (packing and unpacking included, as a user pays them).

Contenders: ``torch.nn`` (the baseline), ``rnnkit.nn`` (``backend="auto"``), ``rnnkit.layers``
(the Keras-style front end), ``rnnkit.nn`` forced onto each kernel path (``fused``: the
composite pure-PyTorch implementation under autograd, ``compiled``: the C++ loop),
``rnnkit.nn[torch.compile]`` (``torch.compile(fullgraph=True)``; the rnnkit operator runs the
same C++ loop inside the compiled graph; compiling is the untimed warm-up call), and ``jax``
(``lax.scan``) / ``keras`` (TensorFlow) when importable.

Usage: ``python -m rnnkit.bench [--quick] [--json PATH] [--cells rnn,gru] [--sizes small,long]``
(also ``rnnkit bench ...``). ``--contention busy|torch`` and ``--quota CORES`` time a few rows
(``CONTENTION_ROWS``: LSTM small and long) quiet and then beside two busy loops or two
multi-threaded PyTorch processes, or held to that many cores (:mod:`.contention`), instead of
the table: rnnkit.nn's and torch.nn's contended / quiet time and rnnkit's speed-up in both.
``--step`` times batch-1 streaming steps instead (:mod:`.step`). ``--quick`` runs the tiny and small
sizes in about a minute. The reports behind the README's
tables are saved in the repository's ``bench/`` folder.
"""

import argparse
import contextlib
import importlib.util
import itertools
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import layers as _layers, nn as _nn
from .._kernels import compiled
from .._kernels.threads import thread_policy
from . import contention, step
from .._kernels._cell_spec import CELLS as _SPECS

__all__ = ["SIZES", "Size", "main", "run"]


@dataclass(frozen=True)
class Size:
    name: str
    batch: int
    steps: int
    features: int
    hidden: int


SIZES = {
    size.name: size
    for size in (
        Size("tiny", 6, 4, 1, 10),
        Size("small", 32, 100, 32, 64),
        Size("medium", 64, 256, 128, 256),
        Size("long", 16, 1000, 64, 128),
        Size("large", 128, 128, 256, 512),
    )
}
VARIABLE_SIZES = ("small", "long")
CELLS = tuple(name for name, cell in _SPECS.items() if cell.torch_modes)  # torch.nn has them
GATES = {name: cell.gates for name, cell in _SPECS.items()}
BASELINE = "torch.nn"
TORCH_CLASSES = {name: getattr(torch.nn, _SPECS[name].nn_class) for name in CELLS}
RNNKIT_CLASSES = {name: getattr(_nn, cell.nn_class) for name, cell in _SPECS.items()}
LAYER_CLASSES = {name: getattr(_layers, cell.keras_class) for name, cell in _SPECS.items()}


@dataclass(frozen=True)
class Settings:
    """How long to measure: per-row time budget and bounds on the number of repeats."""

    budget_s: float
    min_repeats: int
    max_repeats: int
    mm_size: int
    memory: bool


QUICK = Settings(budget_s=0.6, min_repeats=3, max_repeats=15, mm_size=1024, memory=True)
FULL = Settings(budget_s=4.0, min_repeats=5, max_repeats=40, mm_size=2048, memory=True)

Call = Callable[[], Any]
COMPILED = "rnnkit.nn[torch.compile]"


# -- timing ----------------------------------------------------------------------------------
def _once(fn: Call) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_interleaved(calls: dict[str, Call], settings: Settings) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin in a fresh random order
    each round (seeded): a call that runs after a heavy one meets colder caches and fresh pages,
    and a fixed rotation makes some contender follow the heaviest one most of the time."""
    for fn in calls.values():  # warm-up: first-call allocations, extension loading, caches
        fn()
    estimate = sum(_once(fn) for fn in calls.values())
    repeats = int(min(settings.max_repeats,
                      max(settings.min_repeats, settings.budget_s / max(estimate, 1e-9))))
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    order = random.Random(0)
    for _ in range(repeats):
        for name in order.sample(names, len(names)):
            samples[name].append(_once(calls[name]))
    return {name: statistics.median(times) for name, times in samples.items()}


def matmul_peak_gflops(n: int, repeats: int = 5) -> float:
    """GFLOP/s of a float32 (n, n) @ (n, n) ``torch.mm`` on this machine: the fastest of a few
    runs, since a limit is what the machine can reach, not what it reaches on average."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    seconds = min(_once(lambda: torch.mm(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / seconds / 1e9


# -- the machine ----------------------------------------------------------------------------
VECTOR_BITS = {"AVX512": 512, "AVX2": 256}  # torch's CPU capability -> vector register width


def cpu_description() -> dict[str, Any]:
    """The CPU the numbers came from: its model name (with the family and model numbers, which
    tell e.g. Zen 1 from Zen 5 where a hypervisor shortens the name to "AMD EPYC"), the vector
    unit torch found on it (``torch.backends.cpu.get_cpu_capability()``: what oneDNN, MKL and
    rnnkit's kernels dispatch on) and its width in bits, and the logical core count."""
    name, family, model = platform.processor() or platform.machine(), None, None
    try:
        with open("/proc/cpuinfo") as info:
            fields = dict(line.split(":", 1) for line in info.read().split("\n\n")[0].splitlines()
                          if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        name = fields.get("model name", name)
        family, model = fields.get("cpu family"), fields.get("model")
    except OSError:  # not Linux: the platform's name is all there is
        pass
    if family is not None and model is not None:
        name = f"{name} (family {family}, model {model})"
    capability = torch.backends.cpu.get_cpu_capability()
    return {"cpu_model": name, "vector_isa": capability,
            "vector_bits": VECTOR_BITS.get(capability, 128), "cpu_count": os.cpu_count()}


def machine_line(machine: dict[str, Any]) -> str:
    """One line naming the machine of a report, for the tables' captions (reports written
    before the CPU was recorded say so)."""
    cpu = machine.get("cpu_model")
    if cpu is None:
        where = "CPU not recorded in this report"
    else:
        where = f"{cpu}, {machine['vector_isa']} ({machine['vector_bits']}-bit vectors)"
    limit = machine.get("fma_limit_gflops")
    fma = "FMA limit not measured" if limit is None else f"FMA limit {limit:.0f} GFLOP/s"
    return (f"{where}; {machine['threads']} threads, {fma}, matmul peak "
            f"{machine['matmul_peak_gflops']:.0f} GFLOP/s, torch {machine['torch']}")


def peak_memory_bytes(fn: Call) -> int:
    """Highest total of tensor bytes alive at once among those allocated during ``fn()``."""
    from torch.profiler import ProfilerActivity, profile

    with _without_profiler_noise(), profile(activities=[ProfilerActivity.CPU],
                                            profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    return max(itertools.accumulate((e.nbytes() for e in events), initial=0))


# Lines the profiler's C++ side prints straight to the process's stderr on every start and stop
# (kineto's USDT trace points, the allocator's note on blocks from before the start): noise in a
# report, so they are dropped; anything else printed meanwhile is passed on.
_PROFILER_NOISE = re.compile(r"^USDT:.*profiler_(start|stop)|Memory block of unknown size")


@contextlib.contextmanager
def _without_profiler_noise() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file for the duration; afterwards its lines, less
    the profiler's own, are written to the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if not _PROFILER_NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def matmul_flops(cell: str, size: Size, training: bool) -> float:
    """Floating-point operations of the matrix products of one call, 2 per multiply-add
    (elementwise work left out). Forward: the input projection x W_ih^T (2 T B D G H) and the
    recurrent product h W_hh^T of every step (2 T B H G H). Training adds the products of the
    backward pass the bench's step needs (its input needs no gradient): the recurrent weight
    gradient and input-weight gradient (2 T B G H (H + D)) and the state gradient through
    W_hh at every step (2 T B G H H), so training = 2 T B G H (2 D + 3 H)."""
    s, g = size, GATES[cell]
    forward = 2.0 * s.steps * s.batch * g * s.hidden * (s.features + s.hidden)
    backward = 2.0 * s.steps * s.batch * g * s.hidden * (s.features + 2 * s.hidden)
    return forward + backward if training else forward


def fma_limits(threads: int) -> dict[str, dict[str, float]]:
    """GFLOP/s of the compiled library's register-resident FMA loop (``rnnkit::fma_gflops``)
    for every vector width this CPU runs, on one thread and on ``threads``: the arithmetic
    limit of the machine. Empty when the compiled kernels are not available."""
    if not _compiled_available():
        return {}
    ops = torch.ops.rnnkit
    return {str(bits): {"1": ops.fma_gflops(bits, 1), str(threads): ops.fma_gflops(bits, threads)}
            for bits in ops.fma_vector_bits()}


def fma_limit(limits: dict[str, dict[str, float]], bits: int, threads: int) -> float | None:
    """The limit a run is measured against: the FMA loop at the run's vector width (torch's
    CPU capability: what torch's, oneDNN's and rnnkit's kernels use) on the run's threads, or
    the widest measured below it; None when none was measured."""
    widths = sorted((int(b) for b in limits if int(b) <= bits), reverse=True)
    return limits[str(widths[0])][str(threads)] if widths else None


# -- contenders ------------------------------------------------------------------------------
def _inference(model: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
    def call() -> None:
        with torch.no_grad():
            model(*args, **kwargs)
    return call


def _training(model: torch.nn.Module, output: Callable[[], torch.Tensor]) -> Call:
    params = list(model.parameters())
    def call() -> None:
        for p in params:
            p.grad = None
        output().sum().backward()
    return call


def _first(result: Any) -> torch.Tensor:
    return result[0] if isinstance(result, (tuple, list)) else result


def _torch_call(module: torch.nn.Module, x: torch.Tensor, training: bool, **kw: Any) -> Call:
    if training:
        return _training(module, lambda: _first(module(x, **kw)))
    return _inference(module, x, **kw)


def import_inductor() -> None:
    """Import torch.compile's backend before compiling: it imports a module that uses
    ``torch.jit.script_method``, whose deprecation warning would otherwise fail the compile
    where warnings are errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module("torch._inductor.compile_fx")


def torch_contenders(cell: str, size: Size, training: bool) -> dict[str, Call]:
    """torch.nn and rnnkit on the same weights and input, dense batch."""
    x = torch.randn(size.steps, size.batch, size.features)
    reference = TORCH_CLASSES[cell](size.features, size.hidden)
    calls = {BASELINE: _torch_call(reference, x, training)}
    for name, backend in (("rnnkit.nn", "auto"), ("rnnkit.nn[fused]", "fused"),
                          ("rnnkit.nn[compiled]", "compiled")):
        if backend == "compiled" and not _compiled_available():
            continue
        model = RNNKIT_CLASSES[cell](size.features, size.hidden, backend=backend)
        model.load_state_dict(reference.state_dict())
        calls[name] = _torch_call(model, x, training)
    # torch.compile'd (the warm-up call compiles): the operator runs inside the compiled graph
    model = RNNKIT_CLASSES[cell](size.features, size.hidden)
    model.load_state_dict(reference.state_dict())
    torch._dynamo.reset()  # one compile per row: earlier rows' would count toward the limit
    import_inductor()
    compiled_model = torch.compile(model, fullgraph=True)
    calls[COMPILED] = (_training(model, lambda: _first(compiled_model(x))) if training
                       else _inference(compiled_model, x))
    layer = LAYER_CLASSES[cell](size.hidden, return_sequences=True)
    batch_major = x.transpose(0, 1).contiguous()
    layer(batch_major[:, :1])  # build
    calls["rnnkit.layers"] = (_training(layer, lambda: layer(batch_major, training=True))
                              if training else _inference(layer, batch_major))
    return calls


def variable_contenders(cell: str, size: Size, training: bool, seed: int = 0) -> dict[str, Call]:
    """torch.nn on a PackedSequence against rnnkit with lengths= and on the same dense batch."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(size.steps, size.batch, size.features, generator=g)
    lengths = torch.randint(1, size.steps + 1, (size.batch,), generator=g)
    lengths[0] = size.steps
    reference = TORCH_CLASSES[cell](size.features, size.hidden)

    def packed() -> torch.Tensor:
        seq = pack_padded_sequence(x, lengths, enforce_sorted=False)
        return pad_packed_sequence(reference(seq)[0])[0]

    calls = {BASELINE + " (packed)": (_training(reference, packed) if training
                                      else _inference(packed))}
    model = RNNKIT_CLASSES[cell](size.features, size.hidden)
    model.load_state_dict(reference.state_dict())
    calls["rnnkit.nn (lengths)"] = _torch_call(model, x, training, lengths=lengths)
    calls["rnnkit.nn (dense)"] = _torch_call(model, x, training)
    layer = LAYER_CLASSES[cell](size.hidden, return_sequences=True)
    batch_major = x.transpose(0, 1).contiguous()
    mask = torch.arange(size.steps).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    layer(batch_major[:, :1])
    calls["rnnkit.layers (mask)"] = (
        _training(layer, lambda: layer(batch_major, mask=mask, training=True)) if training
        else _inference(layer, batch_major, mask=mask)
    )
    return calls


def optional_contenders(cell: str, size: Size, training: bool) -> dict[str, Call]:
    """JAX (lax.scan) and Keras (TensorFlow) versions, when those are installed."""
    calls: dict[str, Call] = {}
    for name, builder in (("jax", _jax_call), ("keras", _keras_call)):
        module = "jax" if name == "jax" else "tensorflow"
        if importlib.util.find_spec(module) is None:
            continue
        try:
            calls[name] = builder(cell, size, training)
        except Exception as e:  # an optional extra must never break the benchmark
            print(f"skipping {name}: {type(e).__name__}: {e}", file=sys.stderr)
    return calls


def _jax_call(cell: str, size: Size, training: bool) -> Call:
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    g, s = GATES[cell], size
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"w_ih": jax.random.normal(k1, (s.features, g * s.hidden)) * 0.1,
              "w_hh": jax.random.normal(k2, (s.hidden, g * s.hidden)) * 0.1,
              "b": jnp.zeros(g * s.hidden)}
    x = jax.random.normal(k3, (s.steps, s.batch, s.features))
    h = s.hidden

    def run(p: dict, x: Any) -> Any:
        gx = x @ p["w_ih"] + p["b"]  # (T, B, G H): the input projection hoisted, as rnnkit does
        zeros = jnp.zeros((s.batch, h))

        def step(carry: Any, gx_t: Any) -> Any:
            if cell == "rnn":
                new = jnp.tanh(gx_t + carry @ p["w_hh"])
                return new, new
            if cell == "gru":
                gh = carry @ p["w_hh"]
                r = jax.nn.sigmoid(gx_t[:, :h] + gh[:, :h])
                z = jax.nn.sigmoid(gx_t[:, h:2 * h] + gh[:, h:2 * h])
                n = jnp.tanh(gx_t[:, 2 * h:] + r * gh[:, 2 * h:])
                new = n + z * (carry - n)
                return new, new
            hp, cp = carry
            a = gx_t + hp @ p["w_hh"]
            i, f = jax.nn.sigmoid(a[:, :h]), jax.nn.sigmoid(a[:, h:2 * h])
            gg, o = jnp.tanh(a[:, 2 * h:3 * h]), jax.nn.sigmoid(a[:, 3 * h:])
            c = f * cp + i * gg
            new = o * jnp.tanh(c)
            return (new, c), new

        carry = (zeros, zeros) if cell == "lstm" else zeros
        return jax.lax.scan(step, carry, gx)[1]

    fn = jax.jit(jax.grad(lambda p, x: run(p, x).sum())) if training else jax.jit(run)
    return lambda: jax.block_until_ready(fn(params, x))


def _keras_call(cell: str, size: Size, training: bool) -> Call:
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    layer_class = {"rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU,
                   "lstm": keras.layers.LSTM}[cell]
    layer = layer_class(size.hidden, return_sequences=True)
    x = tf.random.normal((size.batch, size.steps, size.features))
    layer(x[:, :1])

    @tf.function
    def forward() -> Any:
        return layer(x)

    @tf.function
    def train() -> Any:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, layer.trainable_weights)

    return (lambda: train()) if training else (lambda: forward())


def _compiled_available() -> bool:
    try:
        compiled.load()
    except compiled.ExtensionUnavailable:
        return False
    return True


# -- one row ---------------------------------------------------------------------------------
def measure_row(cell: str, size: Size, training: bool, variable: bool, settings: Settings,
                peak: float, limit: float | None = None) -> dict[str, Any]:
    torch.manual_seed(0)
    if variable:
        calls = variable_contenders(cell, size, training)
    else:
        calls = {**torch_contenders(cell, size, training),
                 **optional_contenders(cell, size, training)}
    seconds = time_interleaved(calls, settings)
    baseline = BASELINE + " (packed)" if variable else BASELINE
    flops = matmul_flops(cell, size, training)
    row: dict[str, Any] = {
        "cell": cell, "size": size.name, **{k: v for k, v in asdict(size).items() if k != "name"},
        "mode": "training" if training else "inference", "variable_length": variable,
        "ms": {name: s * 1e3 for name, s in seconds.items()},
        "speedup_vs_torch": {name: seconds[baseline] / s for name, s in seconds.items()},
        "gflops": {name: flops / s / 1e9 for name, s in seconds.items()},
        "flops": flops,
        "peak_fraction": {name: flops / s / 1e9 / peak for name, s in seconds.items()},
    }
    if limit is not None:
        row["fma_fraction"] = {name: flops / s / 1e9 / limit for name, s in seconds.items()}
    if variable:
        row["masking_overhead"] = seconds["rnnkit.nn (lengths)"] / seconds["rnnkit.nn (dense)"] - 1
    if training and settings.memory:
        rnnkit_name = "rnnkit.nn (lengths)" if variable else "rnnkit.nn"
        row["peak_memory_mb"] = {name: peak_memory_bytes(calls[name]) / 2**20
                                 for name in (baseline, rnnkit_name)}
    return row


def run(cells: list[str], sizes: list[str], variable_sizes: list[str], modes: list[bool],
        settings: Settings, progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Measure every requested row; returns the JSON-ready report."""
    peak = matmul_peak_gflops(settings.mm_size)
    cpu = cpu_description()
    threads = torch.get_num_threads()
    limits = fma_limits(threads)
    limit = fma_limit(limits, cpu["vector_bits"], threads)
    progress(f"matrix-multiply peak: {peak:.1f} GFLOP/s ({settings.mm_size}^2 float32 torch.mm) "
             f"on {cpu['cpu_model']}, {cpu['vector_isa']} ({cpu['vector_bits']}-bit vectors); "
             f"FMA limit: {_fmt(limit, '.1f') or 'not measured'} GFLOP/s ({threads} threads)")
    extension = "available"
    try:
        compiled.load()
    except compiled.ExtensionUnavailable as e:
        extension = f"unavailable: {e}"
    rows = []
    plan = [(c, SIZES[s], m, False) for c in cells for s in sizes for m in modes]
    plan += [(c, SIZES[s], m, True) for c in cells for s in variable_sizes for m in modes]
    for cell, size, training, variable in plan:
        row = measure_row(cell, size, training, variable, settings, peak, limit)
        rows.append(row)
        progress(_row_summary(row))
    return {
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(), **cpu,
            "python": platform.python_version(), "torch": torch.__version__,
            "threads": threads, "matmul_peak_gflops": peak,
            "fma_gflops": limits, "fma_limit_gflops": limit,
            "matmul_size": settings.mm_size, "compiled_extension": extension,
        },
        "settings": asdict(settings),
        "rows": rows,
    }


def _row_summary(row: dict[str, Any]) -> str:
    label = f"{row['cell']} {row['size']}{' var' if row['variable_length'] else ''} {row['mode']}"
    ratios = ", ".join(f"{k} {v:.2f}x" for k, v in row["speedup_vs_torch"].items()
                       if not k.startswith(BASELINE))
    return f"{label}: {ratios}"


# -- contention ------------------------------------------------------------------------------
CONTENTION_ROWS = (("lstm", "small", True), ("lstm", "small", False), ("lstm", "long", True))
CONTENDERS = (BASELINE, "rnnkit.nn")


def _pair(cell: str, size: Size, training: bool) -> dict[str, Call]:
    """torch.nn and rnnkit.nn (backend auto) on the same weights and input."""
    torch.manual_seed(0)
    x = torch.randn(size.steps, size.batch, size.features)
    reference = TORCH_CLASSES[cell](size.features, size.hidden)
    model = RNNKIT_CLASSES[cell](size.features, size.hidden)
    model.load_state_dict(reference.state_dict())
    return {BASELINE: _torch_call(reference, x, training),
            "rnnkit.nn": _torch_call(model, x, training)}


def time_pairs(rows: list[tuple[str, str, bool]], settings: Settings) -> list[dict[str, float]]:
    """Milliseconds per call of torch.nn and rnnkit.nn, interleaved, for each row."""
    return [{name: s * 1e3 for name, s in
             time_interleaved(_pair(cell, SIZES[size], training), settings).items()}
            for cell, size, training in rows]


def _time_pairs_restricted(rows: list[tuple[str, str, bool]], settings: Settings,
                           cores: int) -> tuple[list[dict[str, float]], dict[str, Any] | None]:
    """time_pairs in a child process held to the first ``cores`` CPUs (as ``taskset -c``):
    torch and rnnkit start there and see only those. Also the thread policy's decision there."""
    allowed = contention.restricted(cores)
    job = json.dumps({"rows": rows, "settings": asdict(settings)})
    code = ("import json, sys\n"
            "from rnnkit.bench import speed\n"
            "job = json.loads(sys.stdin.read())\n"
            "rows = [tuple(r) for r in job['rows']]\n"
            "times = speed.time_pairs(rows, speed.Settings(**job['settings']))\n"
            "print(json.dumps({'times': times, 'policy': speed.thread_decision()}))\n")
    done = subprocess.run([sys.executable, "-c", code], input=job, capture_output=True,
                          text=True, preexec_fn=lambda: os.sched_setaffinity(0, allowed),
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the run held to {cores} core(s) failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["times"], result["policy"]


def thread_decision() -> dict[str, Any] | None:
    """What the compiled loops' thread policy decides here and now (rnnkit._kernels.threads:
    threads granted, torch's, the CPUs, the runnable threads seen); None without the compiled
    kernels."""
    if not _compiled_available():
        return None
    return thread_policy()


def run_contention(rows: list[tuple[str, str, bool]], settings: Settings, kind: str | None,
                   quota: int | None, neighbours: int = 2,
                   progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Each row timed quiet, then beside ``neighbours`` processes of ``kind`` (busy, torch;
    None: none) and/or held to ``quota`` cores: rnnkit.nn's and torch.nn's contended time,
    its ratio to their quiet time, and rnnkit's speed-up over torch.nn in both conditions."""
    threads = torch.get_num_threads()
    progress(f"contention: {len(rows)} rows quiet, then beside {neighbours if kind else 0} "
             f"{kind or ''} neighbours{f', held to {quota} core(s)' if quota else ''}")
    quiet = time_pairs(rows, settings)
    policy = {"quiet": thread_decision()}
    with (contention.neighbours(kind, neighbours, threads) if kind
          else contextlib.nullcontext()):
        if quota:
            busy, policy["contended"] = _time_pairs_restricted(rows, settings, quota)
        else:
            busy = time_pairs(rows, settings)
            policy["contended"] = thread_decision()
    report_rows = []
    for (cell, size, training), calm, loaded in zip(rows, quiet, busy):
        row = {"cell": cell, "size": size, **{k: v for k, v in asdict(SIZES[size]).items()
                                              if k != "name"},
               "mode": "training" if training else "inference",
               "quiet_ms": calm, "contended_ms": loaded,
               "slowdown": {name: loaded[name] / calm[name] for name in CONTENDERS},
               "speedup_vs_torch": {"quiet": calm[BASELINE] / calm["rnnkit.nn"],
                                    "contended": loaded[BASELINE] / loaded["rnnkit.nn"]}}
        report_rows.append(row)
        progress(f"{cell} {size} {row['mode']}: rnnkit.nn {calm['rnnkit.nn']:.2f} -> "
                 f"{loaded['rnnkit.nn']:.2f} ms ({row['slowdown']['rnnkit.nn']:.1f}x), torch.nn "
                 f"{calm[BASELINE]:.2f} -> {loaded[BASELINE]:.2f} ms")
    return {"kind": kind, "neighbours": neighbours if kind else 0, "quota_cores": quota,
            "threads": threads, "thread_policy": policy, "rows": report_rows}


def print_contention(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    condition = ", ".join(
        ([f"beside {report['neighbours']} {report['kind']} neighbours"] if report["kind"] else [])
        + ([f"held to {report['quota_cores']} core(s)"] if report["quota_cores"] else []))
    table = Table(title=f"contention ({condition}; {report['threads']} threads): ms per call, "
                        "contended / quiet time, speed-up over torch.nn", title_justify="left")
    for column in ("cell", "size", "mode", "rnnkit.nn quiet ms", "rnnkit.nn contended ms",
                   "rnnkit.nn slowdown", "torch.nn quiet ms", "torch.nn contended ms",
                   "torch.nn slowdown", "nn x quiet", "nn x contended"):
        table.add_column(column, justify="left" if column in ("cell", "size", "mode") else "right")
    for row in report["rows"]:
        quiet, loaded, slow = row["quiet_ms"], row["contended_ms"], row["slowdown"]
        table.add_row(row["cell"], row["size"], row["mode"], f"{quiet['rnnkit.nn']:.2f}",
                      f"{loaded['rnnkit.nn']:.2f}", f"{slow['rnnkit.nn']:.1f}",
                      f"{quiet[BASELINE]:.2f}", f"{loaded[BASELINE]:.2f}",
                      f"{slow[BASELINE]:.1f}", f"{row['speedup_vs_torch']['quiet']:.2f}",
                      f"{row['speedup_vs_torch']['contended']:.2f}")
    console = Console(width=200)
    console.print(table)
    policy = report.get("thread_policy") or {}
    for condition, decision in policy.items():
        if decision:
            console.print(f"rnnkit's thread policy, {condition}: {decision['threads']} of "
                          f"{decision['torch_threads']} threads ({decision['running']} runnable "
                          f"threads on {decision['online_cpus']} CPUs, {decision['running_ours']} "
                          f"of them ours; affinity {decision['affinity_cpus']} CPUs, quota "
                          f"{decision['quota_cpus'] or 'none'})")


# -- output ----------------------------------------------------------------------------------
def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    machine = report["machine"]
    table = Table(title=f"rnnkit vs torch.nn: ms per call and speed-up (x, > 1 is faster); "
                        f"{machine_line(machine)}", title_justify="left")
    for column in ("cell", "size", "mode", "torch.nn ms", "rnnkit.nn ms", "nn x",
                   "layers x", "fused x", "compiled x", "torch.compile x", "other x", "GFLOP/s",
                   "% FMA limit", "% torch.mm",
                   "mem MB torch/rnnkit"):
        table.add_column(column, justify="left" if column in ("cell", "size", "mode") else "right")
    for row in report["rows"]:
        ms, up = row["ms"], row["speedup_vs_torch"]
        var = row["variable_length"]
        base = BASELINE + " (packed)" if var else BASELINE
        nn = "rnnkit.nn (lengths)" if var else "rnnkit.nn"
        layers = "rnnkit.layers (mask)" if var else "rnnkit.layers"
        other = ", ".join(f"{k} {up[k]:.2f}" for k in ("jax", "keras") if k in up)
        if var:
            other = f"vs dense {100 * row['masking_overhead']:+.0f}%"
        memory = row.get("peak_memory_mb")
        table.add_row(
            row["cell"], row["size"] + (" var" if var else ""), row["mode"],
            f"{ms[base]:.2f}", f"{ms[nn]:.2f}", f"{up[nn]:.2f}",
            f"{up[layers]:.2f}", _fmt(up.get("rnnkit.nn[fused]")),
            _fmt(up.get("rnnkit.nn[compiled]")), _fmt(up.get(COMPILED)), other,
            f"{row['gflops'][nn]:.1f}", _percent(row, "fma_fraction", nn),
            _percent(row, "peak_fraction", nn),
            f"{memory[base]:.1f}/{memory[nn]:.1f}" if memory else "",
        )
    Console(width=200).print(table)


def markdown_table(report: dict[str, Any]) -> str:
    """The report as the README's table: a line naming the machine, then one line per cell,
    size and case, with the inference and training numbers side by side (ratios are torch.nn's
    time over the contender's)."""
    pairs: dict[tuple[str, str, bool], dict[str, dict[str, Any]]] = {}
    for row in report["rows"]:
        pairs.setdefault((row["cell"], row["size"], row["variable_length"]), {})[row["mode"]] = row
    lines = [
        f"Machine: {machine_line(report['machine'])}.",
        "",
        "| cell | size (B, T, D, H) | torch.nn ms: inference / training | rnnkit.nn ×: inference "
        "/ training | rnnkit.layers ×: inference / training | JAX ×: inference / training | "
        "training: % of FMA limit / of torch.mm; memory MB torch.nn / rnnkit |",
        "|---|---|---|---|---|---|---|",
    ]

    def order(key: tuple[str, str, bool]) -> tuple[int, int, bool]:  # each var row after its size
        cell, size, var = key
        return list(CELLS).index(cell), list(SIZES).index(size), var

    for (cell, size, var), modes in sorted(pairs.items(), key=lambda item: order(item[0])):
        first = next(iter(modes.values()))
        dims = ", ".join(str(first[k]) for k in ("batch", "steps", "features", "hidden"))
        shape = f"{size} ({dims})"
        base = BASELINE + " (packed)" if var else BASELINE
        nn = "rnnkit.nn (lengths)" if var else "rnnkit.nn"
        layers = "rnnkit.layers (mask)" if var else "rnnkit.layers"

        def both(pick: Callable[[dict[str, Any]], str]) -> str:
            return " / ".join(pick(modes[m]) if m in modes else "–"
                              for m in ("inference", "training"))

        def ratio(name: str) -> Callable[[dict[str, Any]], str]:
            return lambda r: f"{r['speedup_vs_torch'][name]:.2f}" if name in r["ms"] else "–"

        def base_ms(r: dict[str, Any]) -> str:
            return f"{r['ms'][base]:.2f}"

        last = ""
        if "training" in modes:
            train = modes["training"]
            last = f"{_percent(train, 'fma_fraction', nn)} / {_percent(train, 'peak_fraction', nn)}"
            if "peak_memory_mb" in train:
                memory = train["peak_memory_mb"]
                last += f"; {memory[base]:.1f} / {memory[nn]:.1f}"
        if var:
            last += "; lengths vs dense: " + both(lambda r: f"{100 * r['masking_overhead']:+.0f}%")
        lines.append(
            f"| {cell} | {shape}{', random lengths vs packed' if var else ''} | "
            f"{both(base_ms)} | {both(ratio(nn))} | "
            f"{both(ratio(layers))} | {both(ratio('jax'))} | {last} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)


def _percent(row: dict[str, Any], table: str, name: str) -> str:
    """A row's share (``fma_fraction`` or ``peak_fraction``) for a contender as a percentage;
    "–" where the report has none (the FMA limit unmeasured, or a report from before it)."""
    return f"{100 * row[table][name]:.0f}%" if table in row else "–"


def _names(text: str, allowed: Any, what: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return names


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="rnnkit bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny and small sizes, short timings (about a minute)")
    parser.add_argument("--json", type=Path, help="write the report to this JSON file")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated: rnn,gru,lstm")
    parser.add_argument("--sizes", default=None,
                        help=f"comma-separated from {', '.join(SIZES)} (default: all; quick: "
                             "tiny,small)")
    parser.add_argument("--variable", default=None,
                        help="sizes of the variable-length case (default: small,long; quick: "
                             "small; 'none' to skip)")
    parser.add_argument("--modes", default="inference,training")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timing per row (default 0.6 quick, 4 full)")
    parser.add_argument("--markdown", type=Path, metavar="JSON",
                        help="print the README table of a saved report and time nothing")
    parser.add_argument("--contention", choices=contention.KINDS, default=None,
                        help="time a few rows (LSTM small and long) quiet and then beside two "
                             "busy-loop ('busy') or multi-threaded PyTorch ('torch') processes, "
                             "instead of the full table")
    parser.add_argument("--quota", type=int, default=None, metavar="CORES",
                        help="time those rows quiet and then in a process held to this many "
                             "cores (taskset), alone or with --contention")
    parser.add_argument("--step", action="store_true",
                        help="batch-1 streaming inference instead of the table: microseconds "
                             "per step of torch.nn's cells, rnnkit.nn's cells and T=1 modules, "
                             "and onnxruntime (see rnnkit/bench/step.py)")
    parser.add_argument("--hidden", default=",".join(map(str, step.HIDDEN)),
                        help="with --step: comma-separated hidden sizes (default 64,256)")
    args = parser.parse_args(argv)
    if args.step:
        try:
            hidden = [int(h) for h in args.hidden.split(",")]
        except ValueError as e:
            raise SystemExit(f"--hidden: comma-separated integers, got {args.hidden!r}") from e
        print(step.step_header())
        report = {"machine": {**cpu_description(), "torch": torch.__version__},
                  "step": step.run_step(_names(args.cells, CELLS, "cells"), hidden,
                                        rounds=200 if args.quick else 2000)}
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, allow_nan=False))
        return report
    if args.markdown is not None:
        try:
            report = json.loads(args.markdown.read_text())
            table = markdown_table(report)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"cannot make a table of {args.markdown}: it is not a report "
                             f"written by --json ({type(e).__name__}: {e})") from e
        print(table)
        return report
    settings = QUICK if args.quick else FULL
    if args.budget is not None:
        settings = Settings(args.budget, settings.min_repeats, settings.max_repeats,
                            settings.mm_size, settings.memory)
    if args.contention is not None or args.quota is not None:
        if args.quota is not None:
            try:
                contention.restricted(args.quota)
            except ValueError as e:
                raise SystemExit(f"--quota: {e}") from e
        report = {"machine": {**cpu_description(), "torch": torch.__version__},
                  "contention": run_contention(
                      list(CONTENTION_ROWS), settings, args.contention, args.quota,
                      progress=lambda text: print(text, file=sys.stderr, flush=True))}
        print_contention(report["contention"])
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, allow_nan=False))
        return report
    cells = _names(args.cells, CELLS, "cells")
    sizes = _names(args.sizes or ("tiny,small" if args.quick else ",".join(SIZES)), SIZES, "sizes")
    variable = args.variable or ("small" if args.quick else ",".join(VARIABLE_SIZES))
    variable_sizes = [] if variable == "none" else _names(variable, SIZES, "sizes")
    modes = [m == "training" for m in _names(args.modes, ("inference", "training"), "modes")]
    report = run(cells, sizes, variable_sizes, modes, settings,
                 progress=lambda text: print(text, file=sys.stderr, flush=True))
    print_table(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, allow_nan=False))
    return report


if __name__ == "__main__":
    main()
