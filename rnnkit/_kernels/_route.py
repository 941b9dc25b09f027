"""When a call goes to PyTorch's own kernel instead of rnnkit's: the one place that decides.

``rnnkit._kernels`` asks :func:`prefers_torch` on every ``backend="auto"`` call that the
compiled kernels could run, and runs :func:`torch_recurrence` when it says yes. Only dense
(unmasked) float32 calls are candidates: with a mask ``torch.nn`` has to pack, and rnnkit's
kernel measured 2-30x faster on every such row; float64 is for checking, not for speed.

How a candidate is decided, first match wins:

1. a measurement of this shape class in this process (see below);
2. with ``RNNKIT_DISPATCH=measure`` (or :func:`set_policy("measure")`), a measurement made now,
   the first time the shape class is seen: both kernels on the call's batch, width and hidden
   size for at most 16 steps, interleaved, the fastest of three each (a few to a few tens of
   milliseconds, once per class and process). It is opt-in because it would otherwise land in
   the first iteration of whatever loop the user is timing; :func:`calibrate` measures a shape
   up front instead, outside any such loop;
3. the rule :data:`RULES`: per kind of vector unit, where PyTorch's kernel measured faster in
   ``bench/speed.py`` on a machine of that kind (``torch.backends.cpu.get_cpu_capability()``:
   oneDNN, behind torch's LSTM/GRU/RNN, uses AVX-512 where it exists, and that is where the
   balance moved). An unknown capability gets the AVX2 rule.

A shape class is (cell, inference or training, batch, input width and hidden size rounded up
to powers of two, steps up to 16), on this machine's vector unit and thread count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ._cell_spec import CELLS, by_torch_mode

__all__ = ["ENV_POLICY", "POLICIES", "RULES", "Rule", "calibrate", "capability", "needs_grad",
           "prefers_torch", "prefers_torch_compiled", "prefers_torch_lstm", "set_policy",
           "torch_recurrence"]

ENV_POLICY = "RNNKIT_DISPATCH"
POLICIES = ("rule", "measure")
_MEASURED_STEPS = 16  # per-step cost is what differs; a longer sequence repeats it


@dataclass(frozen=True)
class Rule:
    """PyTorch's kernel for ``cell`` in ``mode`` from batch x hidden = ``min_work`` (and
    hidden >= ``min_hidden``); never when ``min_work`` is None."""

    min_work: int | None
    min_hidden: int = 0

    def holds(self, batch: int, hidden: int) -> bool:
        # hidden first: under torch.compile each comparison asked is a shape guard
        return (self.min_work is not None and hidden >= self.min_hidden
                and batch * hidden >= self.min_work)


_NEVER = Rule(None)

# (capability, cell, training) -> Rule. Measured with bench/speed.py (interleaved, ratios of
# torch.nn's time over the compiled kernel's; the sizes are (B, T, D, H)):
# - AVX2 (2-core Zen 1 EPYC, bench/results-full.json): only dense float32 LSTM inference from
#   B x H = 16384 was faster on torch (medium (64, 256, 128, 256) and large (128, 128, 256, 512):
#   0.85-0.93x); every training row and every smaller size >= 1.05x on ours.
# - AVX512 (2-core Zen 5 EPYC, the README's AVX-512 table): with the input projection and the
#   backward pass's products on the micro-kernel and chunked passes, rnnkit's LSTM ran faster
#   than oneDNN's on every row (interleaved, same process; inference: small 1.30-1.43x, medium
#   1.17-1.18x, long 1.18-1.21x, large 1.07-1.08x; training: small 1.56x, medium 1.34x, long
#   1.70x, large 1.13x). Before them oneDNN won the long, medium and large inference rows and
#   the medium and large training rows: no rule sends a call to torch there any more.
#   torch's GRU and RNN are not oneDNN kernels and were slower on every row.
RULES: dict[tuple[str, str, bool], Rule] = {
    ("AVX2", "lstm", False): Rule(16384),
}


_RULED = frozenset(family for _, family, _ in RULES)  # cells some rule sends to PyTorch


# "rnn_tanh" / "rnn_relu" -> "rnn": the rules' name of a cell (its one name)
_FAMILY = {mode.lower(): cell.name for cell in CELLS.values() for mode in cell.torch_modes}


def _family(cell: str) -> str:
    return _FAMILY[cell]


@torch.compiler.assume_constant_result  # a compiled graph bakes it in: it never changes
def capability() -> str:
    """The vector unit the rule is chosen by: torch's detected CPU capability (``AVX512``,
    ``AVX2``, ...); anything but AVX512 is ruled as AVX2."""
    return "AVX512" if torch.backends.cpu.get_cpu_capability() == "AVX512" else "AVX2"


_policy: str | None = None  # None: read ENV_POLICY on the next decision, then keep it
_measured: dict[tuple[Any, ...], bool] = {}


def set_policy(policy: str | None) -> None:
    """``"rule"`` (the default) or ``"measure"`` (time unseen shape classes on first sight);
    None goes back to ``RNNKIT_DISPATCH`` (read at the next decision, as it is then).
    Measurements already made are kept."""
    global _policy
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"dispatch policy must be one of {POLICIES} or None, got {policy!r}")
    _policy = policy


def _current_policy() -> str:
    """The policy, ``RNNKIT_DISPATCH`` read once (not on every call: that read alone cost a
    tenth of a tiny call)."""
    global _policy
    if _policy is None:
        value = os.environ.get(ENV_POLICY, "") or "rule"
        if value not in POLICIES:
            raise ValueError(f"{ENV_POLICY} must be one of {POLICIES}, got {value!r}")
        _policy = value
    return _policy


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _shape_class(cell: str, training: bool, steps: int, batch: int, features: int,
                 hidden: int) -> tuple[Any, ...]:
    return (capability(), torch.get_num_threads(), cell, training, min(_pow2(steps),
            _MEASURED_STEPS), _pow2(batch), _pow2(features), _pow2(hidden))


def prefers_torch(cell: str, x: Tensor, w_hh: Tensor, mask: Tensor | None,
                  *tensors: Tensor | None, training: bool | None = None) -> bool:
    """Whether this call (``cell`` one of ``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"``,
    ``"lstm"``; time-major ``x``, recurrent weights ``w_hh``) runs faster on PyTorch's kernel.
    ``training`` says whether it is one (a gradient to compute), or else ``tensors``, the
    call's other inputs, tell inference from training."""
    measure = _current_policy() == "measure"
    if not measure and not _measured and _family(cell) not in _RULED:
        return False  # the common case on every call of a GRU or an RNN: nothing to decide
    if not _candidate(x, mask):
        return False
    if training is None:
        training = needs_grad(x, *tensors)
    steps, batch, features = x.shape
    hidden = w_hh.shape[1]
    if steps == 0 or batch == 0:
        return False
    if _measured or measure:
        key = _shape_class(cell, training, steps, batch, features, hidden)
        if key in _measured:
            return _measured[key]
        if measure:
            return _measure(key, cell, training, steps, batch, features, hidden)
    return rule(cell, training, batch, hidden)


def rule(cell: str, training: bool, batch: int, hidden: int, cap: str | None = None) -> bool:
    """The rule's answer for this machine's capability (or ``cap``)."""
    return RULES.get((cap or capability(), _family(cell), training), _NEVER).holds(batch, hidden)


def prefers_torch_lstm(x: Tensor, w_hh: Tensor, mask: Tensor | None,
                       *tensors: Tensor | None) -> bool:
    """:func:`prefers_torch` for an LSTM call."""
    return prefers_torch("lstm", x, w_hh, mask, *tensors)


def calibrate(cell: str, steps: int, batch: int, features: int, hidden: int, *,
              training: bool = False) -> bool:
    """Measure the shape class of this call now (whatever the policy) and remember the answer
    for the rest of the process: whether PyTorch's kernel is faster. For use before a timed
    loop, so that the measurement does not land in it."""
    if cell not in _FAMILY:
        raise ValueError(f"cell must be one of {tuple(_FAMILY)}, got {cell!r}")
    for name, value in (("steps", steps), ("batch", batch), ("features", features),
                        ("hidden", hidden)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    key = _shape_class(cell, training, steps, batch, features, hidden)
    return _measure(key, cell, training, steps, batch, features, hidden)


def _forget_measurements() -> None:
    """For tests: drop every measurement made in this process."""
    _measured.clear()


def needs_grad(*tensors: Tensor | None) -> bool:
    if torch.compiler.is_compiling():  # dynamo cannot trace the C helper
        return torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                               for t in tensors)
    return torch.is_grad_enabled() and torch._C._any_requires_grad(*tensors)


def prefers_torch_compiled(cell: str, x: Tensor, w_hh: Tensor, mask: Tensor | None,
                           *tensors: Tensor | None) -> bool:
    """:func:`prefers_torch` inside ``torch.compile``, by the rule alone (a measurement would
    not be a graph's). Its comparison of the sizes becomes one of dynamo's shape guards (with
    a symbolic batch too), so a call on the other side of the threshold recompiles and the
    choice is made again. Never under ``torch.export`` or ``jit.trace``, whose graphs keep
    the operator (and would have no such guard). Inference only: a compiled
    training graph of ``torch._VF.lstm`` fails in inductor (torch 2.13: an output assertion on
    ``aten.mkldnn_rnn_layer``), so training keeps the operator."""
    if torch.compiler.is_exporting() or not _candidate(x, mask) or needs_grad(x, *tensors):
        return False
    return rule(cell, False, x.shape[1], w_hh.shape[1])


def _candidate(x: Tensor, mask: Tensor | None) -> bool:
    """Whether torch's kernel could take the call at all: dense (no mask: torch.nn would
    pack), float32, on the CPU, time-major 3-D."""
    return mask is None and x.dtype == torch.float32 and x.is_cpu and x.dim() == 3


# -- measuring ------------------------------------------------------------------------------
def _contenders(cell: str, training: bool, steps: int, batch: int, features: int,
                hidden: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """rnnkit's compiled kernel and PyTorch's on random inputs of this shape, each a call that
    runs inference, or forward and backward of the outputs' sum."""
    from . import _recurrence  # the package imports this module first

    spec = by_torch_mode(cell)
    flags = tuple(mode.lower() == cell for mode in spec.torch_modes[1:])  # Elman: relu
    g = torch.Generator().manual_seed(0)
    scale = hidden ** -0.5
    width = spec.gates * hidden

    def r(*shape: int, s: float = scale) -> Tensor:
        return ((torch.rand(*shape, generator=g) * 2 - 1) * s).requires_grad_(training)

    x = r(steps, batch, features, s=1.0)
    states = tuple(r(batch, hidden) for _ in spec.states)
    w_ih, w_hh, b_ih, b_hh = r(width, features), r(width, hidden), r(width), r(width)
    params = (w_ih, w_hh, b_ih, b_hh)

    def ours() -> Tensor:
        return _recurrence(spec.name, "compiled", x, states, *params, None, False, False,
                           *flags)[0]

    function = getattr(torch._VF, cell)

    def theirs() -> Tensor:
        return torch_recurrence(function, x, states, *params, False)[0]

    def run(forward: Callable[[], Tensor]) -> Callable[[], Any]:
        if not training:
            def infer() -> None:
                with torch.no_grad():
                    forward()
            return infer

        def train() -> None:
            with torch.enable_grad():
                for p in params:
                    p.grad = None
                forward().sum().backward()
        return train

    return run(ours), run(theirs)


def _measure(key: tuple[Any, ...], cell: str, training: bool, steps: int, batch: int,
             features: int, hidden: int) -> bool:
    ours, theirs = _contenders(cell, training, min(steps, _MEASURED_STEPS), batch, features,
                               hidden)
    best = {"ours": float("inf"), "theirs": float("inf")}
    calls = {"ours": ours, "theirs": theirs}
    for fn in calls.values():  # warm-up: first-call allocations, weight reorders, caches
        fn()
    for round_ in range(3):  # interleaved, alternating who goes first
        for name in (("ours", "theirs") if round_ % 2 == 0 else ("theirs", "ours")):
            start = time.perf_counter()
            calls[name]()
            best[name] = min(best[name], time.perf_counter() - start)
    answer = best["theirs"] < best["ours"]
    _measured[key] = answer
    return answer


def torch_recurrence(function: Any, x: Tensor, states: tuple[Tensor, ...], w_ih: Tensor,
                     w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
                     reverse: bool) -> tuple[Tensor, ...]:
    """One layer and direction on PyTorch's own kernel (``torch._VF.lstm``, ``.gru``,
    ``.rnn_tanh`` or ``.rnn_relu``: what ``torch.nn`` calls; differentiable by autograd).
    Returns (states, *final states)."""
    if (b_ih is None) != (b_hh is None):  # the Keras layout has one bias
        b_ih = b_ih if b_ih is not None else torch.zeros_like(b_hh)  # type: ignore[arg-type]
        b_hh = b_hh if b_hh is not None else torch.zeros_like(b_ih)
    params = [w_ih, w_hh] if b_ih is None else [w_ih, w_hh, b_ih, b_hh]
    inputs = x.flip(0) if reverse else x
    train = needs_grad(x, *states, *params)
    hx = tuple(s.unsqueeze(0) for s in states)
    out, *finals = function(inputs, hx if len(hx) > 1 else hx[0], params, b_ih is not None, 1,
                            0.0, train, False, False)
    return (out.flip(0) if reverse else out, *(f[0] for f in finals))
