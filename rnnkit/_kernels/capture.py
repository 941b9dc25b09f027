"""A user's cell over a whole sequence without a Python call per step: the step captured once.

:func:`captured_scan` runs ``carry, y_t = body(params, x_t, carry)`` over time like the plain
loop (:func:`rnnkit._kernels.scan`), but it never calls ``body`` per step. It traces one step
once, with fake tensors (``make_fx``: the ATen operators the step runs, in order), and splits
the graph in two, the structure of rnnkit's own kernels:

- the *input projection*: every operator that reads no carried state (``x W``, a bias, an
  activation of ``x``), run once for all T steps at once (``torch.vmap`` over time: one product
  of (T*B, D) rows instead of T products of B rows), under ordinary autograd;
- the *recurrent epilogue*: the operators that read the carried state. They run in one
  ``autograd.Function``: its forward steps the traced graph's ATen calls without autograd
  bookkeeping, and its backward steps the traced vector-Jacobian product of the epilogue
  (``torch.func.vjp`` of the graph, traced once too), summing the weights' gradients. The
  backward is made of differentiable ATen operators over saved inputs and outputs, so it
  differentiates again (double backward) under ``create_graph``.

What cannot be captured raises :class:`CaptureError` (the callers fall back to the loop, which
gives the same numbers): a step whose Python control flow reads tensor *values* (fake tensors
have none), random operators (the loop's random stream could not be reproduced), operators
that write into their arguments, tensors the step reads that are not passed in (an attribute
that is not a parameter or buffer: the trace would freeze its value), and integer or complex
carried states. A capture is cached per ``key`` (the caller's: the cell, shapes, dtypes,
training flag), so a cell whose Python code changes behaviour after its first call must run the
loop.

Values equal the loop's up to rounding (the input projection is one product over all steps,
not T products), gradients too.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["CaptureError", "Captured", "capture", "captured_scan"]

# body(params, xs_t, carry) -> (y_t, new_carry); each a sequence of tensors
Body = Callable[[Sequence[Tensor], Sequence[Tensor], Sequence[Tensor]], tuple[Tensor, Sequence[Tensor]]]


class CaptureError(RuntimeError):
    """The step cannot be captured (the message says why); run the loop instead."""


@dataclass
class Captured:
    """One step's graph split into its input projection and its recurrent epilogue."""

    projection: Callable[..., tuple[Tensor, ...]]  # (params, xs_t) -> boundary values
    epilogue: Callable[..., tuple[Tensor, ...]]  # (params, boundary_t, carry) -> (y, *carry)
    vjp_carry: Callable[..., tuple[Tensor, ...]]  # (params, b_t, carry, g_y, *g_carry) -> g_carry
    vjp_rest: Callable[..., tuple[Tensor, ...]]  # the same arguments -> (g_params, g_boundary)
    n_params: int
    n_boundary: int
    n_carry: int
    grad_params: tuple[int, ...]  # the params the vjp differentiates (floating ones)
    grad_boundary: tuple[int, ...]  # the boundary values it differentiates


def _fake_trace(fn: Callable[..., Any], args: Sequence[Tensor]) -> torch.fx.GraphModule:
    from torch.fx.experimental.proxy_tensor import make_fx

    try:
        return make_fx(fn, tracing_mode="fake")(*args)
    except CaptureError:
        raise
    except Exception as e:  # data-dependent control flow, an unsupported operator, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CaptureError(f"the step could not be traced ({type(e).__name__}: {first})") from e


def _check_graph(graph: torch.fx.Graph) -> None:
    for node in graph.nodes:
        if node.op == "get_attr":
            raise CaptureError(
                "the step reads a tensor that is neither an input, a state, a parameter nor a "
                "buffer (a captured copy would freeze its value)")
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        if torch.Tag.nondeterministic_seeded in node.target.tags:
            raise CaptureError(f"the step draws random numbers ({node.target})")
        if node.target._schema.is_mutable:
            raise CaptureError(f"the step writes into a tensor in place ({node.target})")


def _fast(gm: torch.fx.GraphModule) -> Callable[..., tuple[Tensor, ...]]:
    """The graph as one Python function that calls each operator through its C++ entry point
    (``OpOverload._op``), not ``OpOverload.__call__`` (Python), with dead code out (a vjp
    recomputes outputs it does not need): it runs at every step, where each call counts."""
    _check_graph(gm.graph)
    gm.graph.eliminate_dead_code()
    names: dict[torch.fx.Node, str] = {}
    scope: dict[str, Any] = {}
    arguments: list[str] = []
    lines: list[str] = []

    def value(a: Any) -> str:
        if isinstance(a, torch.fx.Node):
            return names[a]
        if isinstance(a, (list, tuple)):
            inner = ", ".join(value(v) for v in a)
            return f"[{inner}]" if isinstance(a, list) else f"({inner}{',' if len(a) == 1 else ''})"
        if a is None or isinstance(a, (bool, int)):
            return repr(a)
        scope[f"c{len(scope)}"] = a
        return f"c{len(scope) - 1}"

    for index, node in enumerate(gm.graph.nodes):
        names[node] = f"v{index}"
        if node.op == "placeholder":
            arguments.append(names[node])
        elif node.op == "call_function":
            target = node.target._op if isinstance(node.target, torch._ops.OpOverload) else node.target
            function = value(target)
            args = [value(a) for a in node.args]
            args += [f"{k}={value(v)}" for k, v in node.kwargs.items()]
            lines.append(f"    {names[node]} = {function}({', '.join(args)})")
        elif node.op == "output":
            lines.append(f"    return {value(tuple(node.args[0]))}")
        else:
            raise CaptureError(f"unexpected graph node {node.op}")
    source = f"def step({', '.join(arguments)}):\n" + "\n".join(lines) + "\n"
    exec(compile(source, "<rnnkit captured step>", "exec"), scope)
    return scope["step"]


def _split(gm: torch.fx.GraphModule, n_params: int, n_xs: int) -> tuple[torch.fx.GraphModule, torch.fx.GraphModule, int]:
    """The projection graph (params, xs) -> boundary and the epilogue graph
    (params, boundary, carry) -> outputs, from the whole step's graph."""
    graph = gm.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    params, xs, carry = (placeholders[:n_params], placeholders[n_params:n_params + n_xs],
                         placeholders[n_params + n_xs:])
    varying: set[torch.fx.Node] = set(carry)
    for node in graph.nodes:
        if node.op == "call_function" and any(a in varying for a in node.all_input_nodes):
            varying.add(node)
    reads_x: set[torch.fx.Node] = set(xs)
    for node in graph.nodes:
        if node.op == "call_function" and any(a in reads_x for a in node.all_input_nodes):
            reads_x.add(node)
    # what reads the weights only (W^T, a sum of biases) is recomputed in the epilogue: as a
    # boundary value it would be repeated over time and its gradient formed once per step
    weights_only = {n for n in graph.nodes if n.op == "call_function"
                    and n not in varying and n not in reads_x}
    output = next(n for n in graph.nodes if n.op == "output")
    # boundary: values computed from x without the carry that the epilogue (or output) reads
    boundary: list[torch.fx.Node] = []
    for node in graph.nodes:
        if node in reads_x and node not in varying:
            users = [u for u in node.users if u in varying or u in weights_only or u is output]
            if any(u in varying or u is output for u in users):
                boundary.append(node)

    projection = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    for node in graph.nodes:
        if node.op == "placeholder" and node not in carry:
            env[node] = projection.placeholder(node.name)
        elif node.op == "call_function" and node not in varying:
            env[node] = projection.node_copy(node, lambda n: env[n])
    projection.output(tuple(env[n] for n in boundary))

    epilogue = torch.fx.Graph()
    env = {}
    for node in params:
        env[node] = epilogue.placeholder(node.name)
    for node in boundary:
        env[node] = epilogue.placeholder(f"b_{node.name}")
    for node in carry:
        env[node] = epilogue.placeholder(node.name)
    for node in graph.nodes:
        if node.op == "call_function" and (node in varying or node in weights_only):
            env[node] = epilogue.node_copy(node, lambda n: env[n])
    epilogue.output(torch.fx.map_arg(output.args[0], lambda n: env[n]))
    for g in (projection, epilogue):
        g.eliminate_dead_code()
        g.lint()
    root = torch.nn.Module()
    return (torch.fx.GraphModule(root, projection), torch.fx.GraphModule(root, epilogue),
            len(boundary))


def capture(body: Body, params: Sequence[Tensor], xs: Sequence[Tensor],
            carry: Sequence[Tensor]) -> Captured:
    """Trace ``body`` for one step (``xs`` are the step's inputs, without the time axis) and
    split it; :class:`CaptureError` when it cannot be captured."""
    n_p, n_x, n_c = len(params), len(xs), len(carry)
    if any(not (c.is_floating_point()) for c in carry):
        raise CaptureError("a carried state is not a floating-point tensor")

    def flat(*args: Tensor) -> tuple[Tensor, ...]:
        y, new = body(args[:n_p], args[n_p:n_p + n_x], args[n_p + n_x:])
        new = list(new)
        if len(new) != n_c:
            raise CaptureError(f"the step returned {len(new)} state(s), expected {n_c}")
        return (y, *new)

    example = [*params, *xs, *carry]
    gm = _fake_trace(torch.func.functionalize(flat, remove="mutations"), example)
    _check_graph(gm.graph)
    projection_gm, epilogue, n_b = _split(gm, n_p, n_x)
    _check_graph(epilogue.graph)
    # the boundary of one step, to trace the vjp with
    with torch.no_grad():
        boundary = projection_gm(*params, *xs)
    outputs = epilogue(*params, *boundary, *carry)  # real, once: the shapes of the cotangents
    grad_params = tuple(i for i, p in enumerate(params) if p.is_floating_point())
    grad_boundary = tuple(i for i, b in enumerate(boundary) if b.is_floating_point())

    def pullback(wrt_carry: bool) -> Callable[..., tuple[Tensor, ...]]:
        """The step's vjp with respect to the carried states (run at every step, backwards)
        or to the weights and boundary values (run for all steps at once, afterwards)."""

        def vjp(*args: Tensor) -> tuple[Tensor, ...]:
            p, b = list(args[:n_p]), list(args[n_p:n_p + n_b])
            c = list(args[n_p + n_b:n_p + n_b + n_c])
            cotangents = args[n_p + n_b + n_c:]
            slots = ([(c, i) for i in range(n_c)] if wrt_carry else
                     [(p, i) for i in grad_params] + [(b, i) for i in grad_boundary])

            def f(*diff: Tensor) -> tuple[Tensor, ...]:
                for (where, i), value in zip(slots, diff):
                    where[i] = value
                return tuple(epilogue(*p, *b, *c))

            _, pull = torch.func.vjp(f, *[where[i] for where, i in slots])
            return tuple(pull(tuple(cotangents)))

        return vjp

    cotangents = [torch.zeros_like(o) for o in outputs]
    example = [*params, *boundary, *carry, *cotangents]
    vjp_carry = _fast(_fake_trace(pullback(True), example))
    vjp_rest = _fast(_fake_trace(pullback(False), example))
    n_x_in = n_x

    projection = _over_time(lambda *a: tuple(projection_gm(*a)), n_p)

    def project(p: Sequence[Tensor], x_seq: Sequence[Tensor]) -> tuple[Tensor, ...]:
        return () if n_b == 0 else projection(*p, *x_seq)

    return Captured(project, _fast(epilogue), vjp_carry, _over_time(vjp_rest, n_p), n_p, n_b,
                    n_c, grad_params, grad_boundary)


def _over_time(fn: Callable[..., tuple[Tensor, ...]], n_params: int
               ) -> Callable[..., tuple[Tensor, ...]]:
    """``fn`` of one step applied to all steps at once: ``torch.vmap`` over the leading time axis
    of every argument after the first ``n_params``, traced once per shape into plain ATen calls
    (a product of (T*B, D) rows, not a batched one), so that neither running it nor
    differentiating it goes through vmap's per-call machinery (its backward over long
    sequences was most of the time)."""
    traced: dict[tuple[Any, ...], Callable[..., tuple[Tensor, ...]]] = {}

    def over_time(*args: Tensor) -> tuple[Tensor, ...]:
        key = tuple((tuple(a.shape), a.dtype, a.device) for a in args)
        run = traced.get(key)
        if run is None:
            batched = torch.vmap(fn, in_dims=(None,) * n_params + (0,) * (len(args) - n_params))
            gm = _fake_trace(lambda *a: tuple(batched(*a)), [a.detach() for a in args])
            run = traced[key] = _fast(gm)
        return run(*args)

    return over_time


class _Scan(torch.autograd.Function):
    """The recurrent epilogue over time: (params, boundary sequences, carry0) ->
    (y sequence, one sequence per carried state)."""

    @staticmethod
    def forward(ctx: Any, captured: Captured, T: int, *tensors: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        n_p, n_b = captured.n_params, captured.n_boundary
        params, seqs, carry = tensors[:n_p], tensors[n_p:n_p + n_b], list(tensors[n_p + n_b:])
        steps = [s.unbind(0) for s in seqs]
        step = captured.epilogue
        ys: list[Tensor] = []
        carried: list[list[Tensor]] = [[] for _ in carry]
        for t in range(T):
            out = step(*params, *[s[t] for s in steps], *carry)
            ys.append(out[0])
            carry = list(out[1:])
            for k, c in enumerate(carry):
                carried[k].append(c)
        results = (torch.stack(ys), *(torch.stack(c) for c in carried))
        ctx.y_like = results[0].new_zeros(()).expand(results[0].shape)
        ctx.captured = captured
        ctx.set_materialize_grads(False)  # outputs nobody reads get no zero gradient to add
        ctx.save_for_backward(*tensors, *results[1:])
        return results

    @staticmethod
    def backward(ctx: Any, g_y: Tensor | None, *g_seqs: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        captured: Captured = ctx.captured
        n_p, n_b, n_c = captured.n_params, captured.n_boundary, captured.n_carry
        saved = ctx.saved_tensors
        params, seqs = saved[:n_p], saved[n_p:n_p + n_b]
        carry0, carried = saved[n_p + n_b:n_p + n_b + n_c], saved[n_p + n_b + n_c:]
        T = carried[0].shape[0]
        if g_y is None:
            g_y = torch.zeros_like(ctx.y_like)
        # the carried states each step started from: (T, ...) per state
        previous = [torch.cat([c0.unsqueeze(0), c[:-1]]) for c0, c in zip(carry0, carried)]
        steps = [s.unbind(0) for s in seqs]
        starts = [p.unbind(0) for p in previous]
        gys = g_y.unbind(0)
        gcs = [None if g is None else g.unbind(0) for g in g_seqs]  # None: nobody reads it
        vjp = captured.vjp_carry
        # backwards through time: the gradient reaching each step's carried states
        reaching: list[list[Tensor]] = [[] for _ in range(n_c)]
        g_c = [torch.zeros_like(c[0]) if g is None else g[T - 1] for g, c in zip(gcs, carried)]
        for t in range(T - 1, -1, -1):
            for k in range(n_c):
                reaching[k].append(g_c[k])
            g_prev = vjp(*params, *[s[t] for s in steps], *[s[t] for s in starts], gys[t], *g_c)
            g_c = [g if gc is None or t == 0 else g + gc[t - 1] for g, gc in zip(g_prev, gcs)]
        # then the weights' and the boundary values' gradients of all steps at once
        grads = captured.vjp_rest(*params, *seqs, *previous, g_y,
                                  *[torch.stack(r[::-1]) for r in reaching])
        result: list[Tensor | None] = [None] * (n_p + n_b + n_c)
        n_gp = len(captured.grad_params)
        for k, i in enumerate(captured.grad_params):
            result[i] = grads[k].sum(0)
        for k, i in enumerate(captured.grad_boundary):
            result[n_p + i] = grads[n_gp + k]
        for k in range(n_c):
            result[n_p + n_b + k] = g_c[k]
        return (None, None, *result)


_cache: weakref.WeakKeyDictionary[Any, dict[Hashable, Captured | CaptureError]] = (
    weakref.WeakKeyDictionary())
_lock = threading.Lock()


def captured_scan(
    body: Body,
    params: Sequence[Tensor],
    xs: Sequence[Tensor],
    carry: Sequence[Tensor],
    *,
    owner: Any = None,
    key: Hashable = None,
) -> tuple[Tensor, list[Tensor]]:
    """Run ``y_t, carry = body(params, [x[t] for x in xs], carry)`` for t = 0..T-1 with the
    step captured once (see the module docstring). ``xs`` are time-major (T, ...).

    Returns (the y of every step, (T, ...), the carried states after every step, each (T, ...)).
    ``owner`` (weakly referenced) and ``key`` name the capture in the cache: the same owner and
    key must mean the same step function for the same shapes. Raises :class:`CaptureError`
    (remembered for that key too) when the step cannot be captured.
    """
    if not xs or xs[0].shape[0] == 0:
        raise CaptureError("nothing to scan over (no input steps)")
    params = list(params)
    step_xs = [x[0] for x in xs]
    captured: Captured | CaptureError | None = None
    entries = None
    if owner is not None:
        with _lock:
            entries = _cache.setdefault(owner, {})
            captured = entries.get(key)
    if captured is None:
        try:
            captured = capture(body, [p.detach() for p in params],
                               [x.detach() for x in step_xs], [c.detach() for c in carry])
        except CaptureError as e:
            captured = e
        if entries is not None:
            with _lock:
                entries[key] = captured
    if isinstance(captured, CaptureError):
        raise captured
    boundary = captured.projection(params, xs)
    out = _Scan.apply(captured, xs[0].shape[0], *params, *boundary, *carry)
    return out[0], list(out[1:])
