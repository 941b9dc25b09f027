"""Recording what happens inside the recurrent layers of a model: states, gates and the exact
gradient of the loss with respect to every step's state.

For a recurrent layer ``h_t = f(x_t, h_{t-1})`` the loss L depends on ``h_t`` through the
output at t (with ``return_sequences``) and through every later step. The total derivative::

    dL/dh_t = dL/dy_t + (dh_{t+1}/dh_t)^T dL/dh_{t+1}

is what backpropagation through time carries back; its norm ``||dL/dh_t||`` (Frobenius norm
over the batch and the units) shows how much of the training signal reaches step t. For a tanh
recurrence ``dh_{t+1}/dh_t = R^T diag(1 - h_{t+1}^2)``, so the signal shrinks (or grows)
geometrically with the distance from the loss: the vanishing gradient.

How it is computed: :func:`trace` runs the model's own forward pass once with its recurrent
layers stepping their cells in a loop (``backend="loop"``, the same numbers as the fused
kernels), keeps every state the cell returns, and asks autograd for the gradient of the model's
loss with respect to all of them (``torch.autograd.grad``: exact, and the parameters' ``.grad``
are left untouched). Nothing is estimated and nothing about the model changes: the backends,
the cells and stateful layers' states are restored afterwards.

With a mask, a masked step's state is carried over unchanged, so the state the cell computed
there is discarded: its gradient is 0 and it is left out of the statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..layers import GRUCell, LSTMCell
from ..layers.rnn import RNN, activation_name
from ..training import losses as losses_module
from ..training import metrics as metrics_module

__all__ = ["LayerTrace", "Trace", "gradient_flow", "trace"]

# Names of the gates a cell computes with its recurrent_activation, in the order it calls it.
# (rnnkit._kernels.cells.gru_equation / lstm_equation, which the cells call: r before z.)
_GATES: dict[type, tuple[str, ...]] = {GRUCell: ("r", "z"), LSTMCell: ("i", "f", "o")}


@dataclass
class LayerTrace:
    """What one recurrent layer did on one batch; every array is in time order.

    Attributes:
        name: the layer's name (Bidirectional's halves are ``forward_<name>`` and
            ``backward_<name>``).
        direction: ``"forward"`` or ``"backward"`` (``go_backwards=True``).
        cell: the cell's kind: ``"SimpleRNN"``, ``"GRU"``, ``"LSTM"`` or the cell's class name.
        activation: the cell's activation name (``"tanh"``, ...) or None if it is not a built-in.
        h: the hidden state after each step, (B, T, U).
        c: LSTM's cell state after each step, (B, T, U); None for other cells.
        gates: gate activations per step, name -> (B, T, U): GRU ``z`` (update), ``r`` (reset);
            LSTM ``i`` (input), ``f`` (forget), ``o`` (output).
        mask: (B, T) bool, True where the step was real; None without a mask.
        grad_h: dL/dh_t, (B, T, U); None when the trace had no loss.
        grad_c: dL/dc_t for LSTM, (B, T, U); None otherwise. A total derivative, like
            grad_h: it includes the path through ``h_t = o_t * tanh(c_t)``.
    """

    name: str
    direction: str
    cell: str
    activation: str | None
    h: np.ndarray
    c: np.ndarray | None = None
    gates: dict[str, np.ndarray] = field(default_factory=dict)
    mask: np.ndarray | None = None
    grad_h: np.ndarray | None = None
    grad_c: np.ndarray | None = None

    @property
    def label(self) -> str:
        """``name`` for a forward layer, ``name (backward)`` for a backward one."""
        return self.name if self.direction == "forward" else f"{self.name} (backward)"

    @property
    def steps(self) -> int:
        return int(self.h.shape[1])

    def grad_norm(self, state: str = "h") -> np.ndarray:
        """``||dL/dh_t||`` for t = 0..T-1, (T,): the Frobenius norm over batch and units
        (``state="c"``: LSTM's cell state)."""
        grad = self.grad_h if state == "h" else self.grad_c if state == "c" else None
        if state not in ("h", "c"):
            raise ValueError(f"state must be 'h' or 'c', got {state!r}")
        if grad is None:
            raise ValueError(f"layer '{self.name}' has no gradient for state {state!r}: trace the "
                             "model with targets y (and a loss) to get gradients" if state == "h"
                             else f"layer '{self.name}' is not an LSTM: it has no cell state")
        return np.sqrt((grad.astype(np.float64) ** 2).sum(axis=(0, 2)))

    def _per_step(self, values: np.ndarray) -> np.ndarray:
        """Mean over batch and units of ``values`` (B, T, U), real steps only; NaN where a
        step is masked for every sequence."""
        values = values.astype(np.float64)
        if self.mask is None:
            return values.mean(axis=(0, 2))
        weight = self.mask.astype(np.float64)[:, :, None]  # (B, T, 1)
        count = weight.sum(axis=(0, 2)) * values.shape[2]
        total = (values * weight).sum(axis=(0, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def mean_abs(self) -> np.ndarray:
        """Mean ``|h_t|`` per step, (T,)."""
        return self._per_step(np.abs(self.h))

    def saturation(self, threshold: float = 0.99) -> np.ndarray:
        """Fraction of units with ``|h_t| > threshold`` per step, (T,): for a tanh unit, one
        whose derivative ``1 - h^2`` is below 0.02, so gradient through it is mostly lost.
        NaN for an unbounded activation (relu, linear), where saturation means nothing."""
        if self.activation not in ("tanh", "softsign", "sigmoid", "hard_sigmoid") and \
                self.cell != "LSTM":
            return np.full(self.steps, np.nan)
        return self._per_step(np.abs(self.h) > threshold)

    def gate_saturation(self, epsilon: float = 0.01) -> dict[str, np.ndarray]:
        """Per gate, the fraction of units closer than ``epsilon`` to 0 or 1 per step, (T,).
        A gate stuck at 0 or 1 passes (almost) no gradient to its pre-activation."""
        return {name: self._per_step((g < epsilon) | (g > 1.0 - epsilon))
                for name, g in self.gates.items()}


@dataclass
class Trace:
    """The result of :func:`trace`: one :class:`LayerTrace` per recurrent layer call, in the
    order they ran, the loss (None without targets) and the model's output."""

    layers: list[LayerTrace]
    loss: float | None
    output: Tensor

    def __getitem__(self, key: int | str) -> LayerTrace:
        if isinstance(key, int):
            return self.layers[key]
        for layer in self.layers:
            if key in (layer.label, layer.name):
                return layer
        raise KeyError(f"no recurrent layer {key!r}; traced: {[t.label for t in self.layers]}")

    def gradient_flow(self) -> dict[str, np.ndarray]:
        """``{layer label: ||dL/dh_t|| for each t}`` (see :meth:`LayerTrace.grad_norm`)."""
        return {layer.label: layer.grad_norm() for layer in self.layers}


# -- recording ---------------------------------------------------------------------------------
@dataclass
class _Run:
    layer: RNN
    mask: Tensor | None
    states: list[list[Tensor]] = field(default_factory=list)  # per step, in processing order
    gates: list[list[Tensor]] = field(default_factory=list)


def _cell_kind(layer: RNN) -> str:
    name = type(layer.cell).__name__
    return name[: -len("Cell")] if name.endswith("Cell") and len(name) > 4 else name


@contextmanager
def _recording(model: torch.nn.Module, runs: list[_Run]) -> Iterator[None]:
    """While active, every recurrent layer of ``model`` runs its cell loop and appends one
    :class:`_Run` per call to ``runs``; everything is put back on exit."""
    layers = [m for m in model.modules() if isinstance(m, RNN)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no recurrent layer (rnnkit.layers "
                         "SimpleRNN, GRU, LSTM, RNN or Bidirectional) to diagnose")
    with ExitStack() as stack:
        for layer in layers:
            stack.enter_context(_recording_layer(layer, runs))
        yield


@contextmanager
def _recording_layer(layer: RNN, runs: list[_Run]) -> Iterator[None]:
    cell = layer.cell
    gate_names = next((names for kind, names in _GATES.items() if isinstance(cell, kind)), ())
    captured: list[Tensor] = []
    original_activation = cell.__dict__.get("recurrent_activation") if gate_names else None
    if original_activation is not None:
        def recording_activation(z: Tensor) -> Tensor:
            gate = original_activation(z)
            captured.append(gate)
            return gate

        cell.__dict__["recurrent_activation"] = recording_activation

    def pre_hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("mask")
        if mask is not None and not isinstance(mask, Tensor):
            mask = torch.as_tensor(np.asarray(mask))
        runs.append(_Run(layer, None if mask is None else mask.bool()))

    def cell_step(training: bool) -> Callable[[Tensor, Any], tuple[Tensor, Any]]:
        step = original_cell_step(training)
        run = runs[-1]

        def recorded_step(x: Tensor, states: Any) -> tuple[Tensor, Any]:
            if not run.states:  # make the states differentiable even with frozen weights
                states = [s if s.requires_grad else s.detach().requires_grad_()
                          for s in states]
            captured.clear()
            output, new = step(x, states)
            run.states.append([new] if isinstance(new, Tensor) else list(new))
            run.gates.append(list(captured))
            return output, new

        return recorded_step

    original_cell_step = layer._cell_step
    original_backend, original_states = layer.backend, layer.states
    handle = layer.register_forward_pre_hook(pre_hook, with_kwargs=True)
    layer.backend = "loop"
    layer.__dict__["_cell_step"] = cell_step
    try:
        yield
    finally:
        handle.remove()
        layer.__dict__.pop("_cell_step", None)
        layer.backend, layer.states = original_backend, original_states
        if original_activation is not None:
            cell.__dict__["recurrent_activation"] = original_activation


# -- the loss ----------------------------------------------------------------------------------
def _resolve_loss(model: Any, loss: Any, y: Tensor, y_pred: Tensor) -> losses_module.Loss:
    if loss is None:
        loss = getattr(model, "compiled_loss", None) or getattr(model, "loss", None)
        if loss is None:
            raise ValueError("gradients need a loss: pass loss= (a name such as 'mse' or a "
                             "function) or compile the model with one")
    if isinstance(loss, str) and loss.lower() in ("crossentropy", "ce"):
        binary, sparse = metrics_module.is_binary_or_sparse(y, y_pred)
        loss = ("binary_crossentropy" if binary else "sparse_categorical_crossentropy"
                if sparse else "categorical_crossentropy")
    resolved = losses_module.get(loss)
    assert resolved is not None
    return resolved


def _as_input(x: Any, device: torch.device) -> Any:
    """``x`` as a tensor on ``device``; a list or tuple of arrays (the inputs of a model with
    several inputs) as a list of them."""
    if isinstance(x, (list, tuple)) and x and all(
            isinstance(v, (Tensor, np.ndarray)) for v in x):
        return [_as_input(v, device) for v in x]
    tensor = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return tensor.to(device)


def _device(model: torch.nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


def _numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


# -- the public functions ----------------------------------------------------------------------
def trace(
    model: torch.nn.Module,
    x: Any,
    y: Any = None,
    *,
    loss: Any = None,
    mask: Any = None,
    sample_weight: Any = None,
) -> Trace:
    """Run ``model`` on one batch and record every recurrent layer's states, gates and, with
    targets ``y``, the exact gradients ``dL/dh_t`` (see the module docstring).

    Args:
        model: a ``Sequential`` or any ``torch.nn.Module`` built from rnnkit.layers recurrent
            layers (``SimpleRNN``, ``GRU``, ``LSTM``, ``RNN``, ``Bidirectional``).
        x: inputs (B, T, ...) as the model takes them (a list of arrays for a model with
            several inputs).
        y: targets; without them only the forward pass is recorded (no gradients).
        loss: the loss to differentiate (a name, ``rnnkit.losses`` object or function); default
            the model's compiled loss.
        mask: (B, T) bool, passed to the model (a ``Masking``/``Embedding(mask_zero=True)``
            layer's mask is picked up by the recurrent layers by itself).
        sample_weight: (B,) weights of the samples in the loss.

    The model runs in inference mode (no dropout). Returns a :class:`Trace`.

    Example::

        >>> import numpy as np, rnnkit as rk
        >>> model = rk.Sequential([rk.layers.SimpleRNN(4, input_shape=(6, 1)), rk.layers.Dense(1)])
        >>> result = trace(model, np.ones((2, 6, 1)), np.zeros((2, 1)), loss="mse")
        >>> result.layers[0].grad_norm().shape
        (6,)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"trace() needs an rnnkit model (a torch.nn.Module), got "
                        f"{type(model).__name__}")
    device = _device(model)
    x_t = _as_input(x, device)
    mask_t = None if mask is None else _as_input(mask, device).bool()
    runs: list[_Run] = []
    with torch.enable_grad(), _recording(model, runs):
        if hasattr(model, "_call_with_mask"):
            y_pred, out_mask = model._call_with_mask(x_t, training=False, mask=mask_t)
        else:
            kwargs = {} if mask_t is None else {"mask": mask_t}
            y_pred, out_mask = model(x_t, **kwargs), None
        if isinstance(y_pred, (list, tuple)):
            raise ValueError("the model returns several tensors (return_state=True on its last "
                             "layer); trace() needs a model with one output")
        loss_value: Tensor | None = None
        grads: list[Tensor | None] = []
        flat = [s for run in runs for step in run.states for s in step]
        if y is not None:
            y_t = _as_input(y, device)
            loss_fn = _resolve_loss(model, loss, y_t, y_pred)
            weight = None if sample_weight is None else _as_input(sample_weight, device)
            loss_value = loss_fn(y_t, y_pred, weight, mask=out_mask)
            grads = list(torch.autograd.grad(loss_value, flat, allow_unused=True))
    grad_of = {id(s): g for s, g in zip(flat, grads)}

    layers: list[LayerTrace] = []
    seen: dict[str, int] = {}
    for run in runs:
        layers.append(_layer_trace(run, grad_of, with_grads=y is not None))
        count = seen[layers[-1].name] = seen.get(layers[-1].name, 0) + 1
        if count > 1:  # a layer called more than once in one forward pass
            layers[-1].name = f"{layers[-1].name}#{count}"
    return Trace(layers=layers, loss=None if loss_value is None else float(loss_value.detach()),
                 output=y_pred.detach())


def _layer_trace(run: _Run, grad_of: dict[int, Tensor | None], with_grads: bool) -> LayerTrace:
    layer = run.layer
    backward = bool(layer.go_backwards)

    def stack(tensors: list[Tensor]) -> np.ndarray:
        values = torch.stack([t.detach() for t in tensors], dim=1)  # (B, T, U), processing order
        return _numpy(values.flip(1) if backward else values)

    def grads(index: int) -> np.ndarray:
        out = [grad_of.get(id(step[index])) for step in run.states]
        out = [torch.zeros_like(step[index]) if g is None else g
               for g, step in zip(out, run.states)]
        return stack(out)

    lstm = isinstance(layer.cell, LSTMCell)
    names = next((n for kind, n in _GATES.items() if isinstance(layer.cell, kind)), ())
    gates = {}
    if names and run.gates and all(len(g) == len(names) for g in run.gates):
        gates = {name: stack([g[i] for g in run.gates]) for i, name in enumerate(names)}
    return LayerTrace(
        name=layer.name,
        direction="backward" if backward else "forward",
        cell=_cell_kind(layer),
        activation=activation_name(getattr(layer.cell, "activation", None)),
        h=stack([step[0] for step in run.states]),
        c=stack([step[1] for step in run.states]) if lstm else None,
        gates=gates,
        mask=None if run.mask is None else _numpy(run.mask),
        grad_h=grads(0) if with_grads else None,
        grad_c=grads(1) if with_grads and lstm else None,
    )


def gradient_flow(model: torch.nn.Module, x: Any, y: Any, *, loss: Any = None,
                  mask: Any = None) -> dict[str, np.ndarray]:
    """``{layer label: ||dL/dh_t|| for t = 0..T-1}`` on one batch, exactly (see :func:`trace`).

    A ratio ``norm[0] / norm[-1]`` far below 1 (1e-5 and smaller) means the loss barely
    reaches the first steps: a dependency that long cannot be learned.

    Example::

        >>> import numpy as np, rnnkit as rk
        >>> model = rk.Sequential([rk.layers.GRU(4, input_shape=(8, 1)), rk.layers.Dense(1)])
        >>> flow = gradient_flow(model, np.ones((2, 8, 1)), np.zeros((2, 1)), loss="mse")
        >>> list(flow), flow["gru"].shape  # doctest: +SKIP
        (['gru'], (8,))
    """
    return trace(model, x, y, loss=loss, mask=mask).gradient_flow()
