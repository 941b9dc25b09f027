"""The generic recurrent layer: ``RNN(cell)`` runs any cell over a sequence, as Keras 3 does.

A *cell* is one time step. Its contract is Keras' (and the seeds' ``BasicRNNCell``):

- ``state_size``: an int (one state) or a list of ints (LSTM: ``[units, units]``);
- ``call(inputs, states)`` (or, for a ``torch.nn.Module``, ``forward(inputs, states)``) takes the
  step's input (B, D) and the list of states, each (B, size), and returns
  ``(output, new_states)``; ``new_states`` may be a list or, for one state, a tensor;
- optionally ``output_size`` (default ``state_size[0]``) and ``get_initial_state(batch_size)``.

``RNN`` owns the loop, the direction, masking and statefulness (the seeds' ``dynamic_rnn``: a
Python loop over time, never a graph unrolled per step). With x of shape (B, T, D) and the
time steps taken in processing order t = 0..T-1 (T-1..0 with ``go_backwards``)::

    y_t, s_t = cell(x_t, s_{t-1})                            where mask[:, t] is True
    s_t = s_{t-1};  y_t = y_{t-1} (0 before the first real step), or 0 with zero_output_for_mask
                                                             where mask[:, t] is False

These are Keras 3's semantics (TensorFlow and torch backends): a masked step is skipped, the
state is carried over unchanged, and the output repeats the previous step's output. The output
sequence is in processing order, so with ``go_backwards=True`` it comes out reversed (Keras'
``Bidirectional`` flips it back). ``return_state`` appends the final states.

``SimpleRNN``, ``GRU`` and ``LSTM`` are ``RNN`` subclasses whose default configurations run the
fused kernels of ``rnnkit._kernels`` instead of the loop (same numbers; see
:meth:`RNN._fused_states`). ``backend="loop"`` forces the loop, ``backend="fused"`` demands the
kernels and raises an error saying why when the configuration cannot use them.

Example::

    >>> import torch
    >>> from rnnkit.layers import RNN, SimpleRNNCell
    >>> layer = RNN(SimpleRNNCell(4), return_sequences=True, return_state=True)
    >>> outputs, state = layer(torch.randn(2, 5, 3))
    >>> tuple(outputs.shape), tuple(state.shape)
    ((2, 5, 4), (2, 4))
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._captured import run_captured
from ._base import Layer, Shape, activation_name, as_mask, as_tensor, first_weight
from ._checks import backend_from_use_cudnn, check_rate, check_units
from ._dropout_cell import DropoutRNNCell
from ._serialization import deserialize_layer, serialize_layer

BACKENDS = ("auto", "captured", "compiled", "fused", "loop")

States = list[Tensor]

# Re-exported: other modules import these from here.
__all__ = ["RNN", "States", "DropoutRNNCell", "activation_name", "backend_from_use_cudnn",
           "build_here", "check_rate", "check_units", "deserialize_layer", "fresh_copy",
           "keras_outputs", "serialize_layer", "to_weights_dtype"]


def to_weights_dtype(layer: torch.nn.Module, inputs: Any) -> Tensor:
    """Inputs as a tensor of the weights' dtype (float32 without weights, as Keras; floating
    tensors then keep theirs). NumPy data is converted once, straight to that dtype; integer
    data (one-hot lists) too."""
    first = first_weight(layer)  # the first weight is enough (runs every call)
    dtype = first.dtype if first is not None else torch.get_default_dtype()
    if not isinstance(inputs, Tensor):
        return as_tensor(inputs, dtype=dtype)
    if inputs.dtype == dtype or (first is None and inputs.is_floating_point()):
        return inputs
    return inputs.to(dtype)


def _expand(keep: Tensor, like: Tensor) -> Tensor:
    """A (B,) bool mask broadcastable against ``like`` (B, ...)."""
    return keep.view(keep.shape[0], *([1] * (like.dim() - 1)))


def _state_list(states: Any) -> States:
    if isinstance(states, Tensor):
        return [states]
    return list(states)


def _has_own_forward(cell: Any) -> bool:
    return isinstance(cell, torch.nn.Module) and type(cell).forward is not torch.nn.Module.forward


def keras_outputs(held: Tensor, final_output: Tensor, mask: Tensor | None, *,
                  go_backwards: bool, zero_output_for_mask: bool,
                  return_sequences: bool, zero_start: bool = False,
                  ) -> tuple[Tensor, Tensor | None]:
    """Keras' outputs from a kernel's held states: ``(last (B, U), sequence (B, T, U) or None)``.

    ``held`` (T, B, U) is the first state after every step in time order, held at masked steps
    (what ``rnnkit._kernels`` returns), ``final_output`` the final first state, ``mask`` the
    (T, B) mask in time order or None. The built-in cells output their first state, so the held
    state is the output at every real step; Keras repeats the previous output at masked steps,
    which is the held state once a real step has been seen and zero before that (or zero at
    every masked step with ``zero_output_for_mask``). The sequence is in processing order, so
    reversed with ``go_backwards``, as Keras returns it.

    ``zero_start``: the states started at zero (no initial state given). Then the held state
    is already zero before a sequence's first real step, and Keras' rule asks for nothing more
    than the held states (and the final state, zero for a sequence without a real step).
    """
    if mask is not None and zero_start and not zero_output_for_mask:
        mask = None  # the held states are the outputs
    if mask is None and not go_backwards:  # nothing to fill or reverse
        return final_output, held.transpose(0, 1) if return_sequences else None
    if go_backwards:
        held = held.flip(0)
        mask = None if mask is None else mask.flip(0)
    if mask is None:
        last, sequence = final_output, held if return_sequences else None
    else:
        shown = mask if zero_output_for_mask else mask.cumsum(0) > 0  # (T, B)
        last = torch.where(shown[-1].unsqueeze(-1), final_output, torch.zeros_like(final_output))
        sequence = None
        if return_sequences:  # a multiply: 5x faster than torch.where here
            sequence = held * shown.unsqueeze(-1).to(held.dtype)
    if sequence is not None:
        sequence = sequence.transpose(0, 1)
    return last, sequence


class RNN(Layer):
    """Runs a cell over the time axis of batch-first input (B, T, D); Keras' ``RNN`` layer.

    Args:
        cell: the step (see the module docstring); its parameters become this layer's weights.
            A list of cells is run as one :class:`StackedRNNCells`.
        return_sequences: return every step's output (B, T, units), not only the last (B, units).
        return_state: also return the final states: ``[output, *states]``.
        go_backwards: process time from the end; the output sequence is in processing order.
        stateful: the final states of a call are the initial states of the next call (fixed
            batch size) until :meth:`reset_states`.
        unroll: accepted for Keras compatibility; the numbers are the same either way.
        zero_output_for_mask: masked steps output zeros instead of the previous output.
        backend: ``"auto"`` (the fastest kernels when the configuration allows, else the
            loop), ``"compiled"`` (the C++ kernels) or ``"fused"`` (the pure-PyTorch kernels),
            each an error saying why when the configuration cannot use them, ``"loop"``, or
            ``"captured"``: a generic cell's step captured once and run without a Python call
            per step (:mod:`rnnkit._kernels.capture`), falling back to the loop when the step
            cannot be captured (Python control flow on tensor values, random operators, ...).

    Call: ``layer(x, initial_state=None, mask=None, training=None)`` with x (B, T, D) as a
    tensor or NumPy array, ``initial_state`` a list of (B, size) tensors (one per state) and
    ``mask`` a (B, T) bool tensor (True = real step).
    """

    input_dim_is_step_features = True
    supports_masking = True

    def __init__(
        self,
        cell: Any,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        *,
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        if isinstance(cell, (list, tuple)):  # Keras: a list of cells is a StackedRNNCells
            from .stacked_rnn_cells import StackedRNNCells

            cell = StackedRNNCells(cell)
        if not (callable(getattr(cell, "call", None)) or _has_own_forward(cell)):
            raise TypeError(
                "The RNN cell must have a call(inputs, states) method (or, as a torch.nn.Module, "
                f"forward(inputs, states)); got {type(cell).__name__}"
            )
        state_size = getattr(cell, "state_size", None)
        sizes = [state_size] if not isinstance(state_size, (list, tuple)) else list(state_size)
        if not sizes or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0 for s in sizes
        ):
            raise ValueError(
                "The RNN cell needs a state_size attribute: a positive int or a list of positive "
                f"ints (one per state); got state_size={state_size!r} on {type(cell).__name__}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.backend = backend
        self.state_size: list[int] = [int(s) for s in sizes]
        self.states: States | None = None
        self._input_features: int | None = None
        self._state_batch: int | None = None

    @property
    def output_size(self) -> int:
        size = getattr(self.cell, "output_size", None)
        return self.state_size[0] if size is None else int(size)

    # -- building -------------------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of shape (batch, time, "
                f"features) with a known feature size, got {input_shape}"
            )
        step_shape = (input_shape[0], input_shape[-1])
        if isinstance(self.cell, Layer):
            self.cell.maybe_build(step_shape)
        elif callable(getattr(self.cell, "build", None)) and not getattr(self.cell, "built", False):
            self.cell.build(step_shape)
            try:
                self.cell.built = True
            except AttributeError:  # a cell with a read-only `built` keeps its own
                pass
        self._input_features = int(input_shape[-1])
        declared = None if self.batch_input_shape is None else self.batch_input_shape[0]
        batch = declared if declared is not None else input_shape[0]
        if self.stateful and batch is not None:
            self._state_batch = int(batch)
        super().build(input_shape)

    def convert_inputs(self, inputs: Any) -> Tensor:
        return to_weights_dtype(self, inputs)

    def forward(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = self.convert_inputs(inputs)
        if inputs.dim() != 3:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects a 3-D input (batch, time, "
                f"features), got shape {tuple(inputs.shape)}"
            )
        build_here(self, inputs)
        return self._call_converted(inputs, args, kwargs)

    # -- states ---------------------------------------------------------------------------
    def get_initial_state(self, batch_size: int) -> States:
        """The states a call starts from when none are given: the cell's, or zeros."""
        make = getattr(self.cell, "get_initial_state", None)
        if callable(make):
            return _state_list(make(batch_size=batch_size))
        like = first_weight(self)
        like = like if like is not None else torch.empty(0)
        return [like.new_zeros(batch_size, size) for size in self.state_size]

    def reset_states(self, states: Sequence[Any] | None = None) -> None:
        """Zero a stateful layer's states (or set them to ``states``); no-op when not stateful."""
        if not self.stateful:
            return
        if states is None:
            if self.states is not None:
                self.states = [torch.zeros_like(s) for s in self.states]
            return
        batch = self._state_batch
        if batch is None:
            first = states if isinstance(states, (Tensor, np.ndarray)) else states[0]
            batch = int(np.shape(first)[0])
        self.states = [s.detach() for s in self._check_states(states, batch, None, "states")]
        self._state_batch = batch

    def reset_state(self, states: Sequence[Any] | None = None) -> None:
        """Keras 3's name for :meth:`reset_states`."""
        self.reset_states(states)

    def _check_states(
        self, states: Any, batch: int, like: Tensor | None, what: str
    ) -> States:
        given = [states] if isinstance(states, (Tensor, np.ndarray)) else list(states)
        if any(isinstance(s, (list, tuple)) for s in given):  # per cell, as stacked cells return
            given = [t for s in given for t in (s if isinstance(s, (list, tuple)) else [s])]
        if len(given) != len(self.state_size):
            raise ValueError(
                f"Layer '{self.name}' has {len(self.state_size)} state(s) of sizes "
                f"{self.state_size}, but {what} has {len(given)} element(s)"
            )
        params = list(self.parameters())
        dtype = like.dtype if like is not None else (params[0].dtype if params else None)
        device = like.device if like is not None else (params[0].device if params else None)
        out = []
        for index, (value, size) in enumerate(zip(given, self.state_size)):
            tensor = as_tensor(value, dtype=dtype).to(device=device)
            if tuple(tensor.shape) != (batch, size):
                raise ValueError(
                    f"Layer '{self.name}': {what}[{index}] must have shape (batch, {size}) = "
                    f"({batch}, {size}), got {tuple(tensor.shape)}"
                )
            out.append(tensor)
        return out

    def _initial_states(self, inputs: Tensor, initial_state: Any) -> States:
        batch = inputs.shape[0]
        if self.stateful:
            if self._state_batch is None:
                self._state_batch = batch
            if batch != self._state_batch:
                raise ValueError(
                    f"Stateful layer '{self.name}' keeps states for a batch of "
                    f"{self._state_batch} sequences, got a batch of {batch}. A stateful RNN "
                    "needs the same batch size on every call (sample i continues sample i)."
                )
        if initial_state is not None:
            return self._check_states(initial_state, batch, inputs, "initial_state")
        if self.stateful and self.states is not None:
            return [s.to(inputs) for s in self.states]
        return self._default_states(inputs)

    def _default_states(self, inputs: Tensor) -> States:
        """The cell's initial states for a call given none (and holding none)."""
        return [s.to(inputs) for s in self.get_initial_state(inputs.shape[0])]

    # -- calling --------------------------------------------------------------------------
    def call(
        self,
        inputs: Tensor,
        initial_state: Any = None,
        mask: Tensor | None = None,
        training: bool = False,
    ) -> Tensor | list[Tensor]:
        batch, steps, features = inputs.shape
        if features != self._input_features:
            raise ValueError(
                f"Layer '{self.name}' was built for {self._input_features} input features, "
                f"got an input of shape {tuple(inputs.shape)}"
            )
        if steps == 0:
            raise ValueError(f"Layer '{self.name}' needs at least one time step, got shape "
                             f"{tuple(inputs.shape)}")
        if mask is not None:
            mask = as_mask(mask, batch, steps).to(inputs.device)
        training = bool(training)
        if self._use_fused(training):
            given = initial_state is not None or (self.stateful and self.states is not None)
            states = (self._initial_states(inputs, initial_state) if given or self.stateful
                      else self._kernel_default_states(inputs))
            last, sequence, final = self._run_fused(inputs, states, mask, training)
        else:
            states = self._initial_states(inputs, initial_state)
            if self.backend == "captured" and (captured := run_captured(
                    self, inputs, states, mask, training)) is not None:
                last, sequence, final = captured
            else:
                last, sequence, final = self._run_loop(inputs, states, mask, training)
        if self.stateful:
            self.states = [s.detach() for s in final]
        output = sequence if self.return_sequences else last
        return [output, *self._grouped(final)] if self.return_state else output

    def _grouped(self, flat: list[Any]) -> list[Any]:
        """States as returned: stacked cells group theirs per cell, as Keras 3 does."""
        group = getattr(self.cell, "group_states", None)
        return group(flat) if callable(group) else flat

    def _fast_path_blocker(self, training: bool) -> str | None:
        """Why the fused kernels cannot run this call (None: they can). Subclasses refine."""
        return "only SimpleRNN, GRU and LSTM have fused kernels; a generic cell runs the loop"

    def _use_fused(self, training: bool) -> bool:
        if self.backend == "loop":
            return False
        reason = self._fast_path_blocker(training)
        if reason is not None and self.backend in ("fused", "compiled"):
            raise ValueError(
                f"Layer '{self.name}' was created with backend={self.backend!r}, but the fused "
                f"kernels cannot run it: {reason}. Pass backend='auto' to fall back to the loop."
            )
        return reason is None

    @property
    def kernel_backend(self) -> str:
        """The ``rnnkit._kernels`` backend the fused path asks for: the user's explicit
        ``"compiled"``/``"fused"``, else ``"auto"`` (the fastest available)."""
        return self.backend if self.backend in ("compiled", "fused") else "auto"

    def _cell_step(self, training: bool) -> Callable[[Tensor, States], tuple[Tensor, Any]]:
        cell = self.cell
        if isinstance(cell, Layer):
            function = cell.call
        elif _has_own_forward(cell):
            function = cell
        else:
            function = cell.call
        target = cell.forward if function is cell else function
        try:
            takes_training = "training" in inspect.signature(target).parameters
        except (TypeError, ValueError):
            takes_training = False
        if takes_training:
            return lambda x, states: function(x, states, training=training)
        return lambda x, states: function(x, states)

    def _run_loop(
        self, inputs: Tensor, states: States, mask: Tensor | None, training: bool
    ) -> tuple[Tensor, Tensor | None, States]:
        """Keras' ``backend.rnn``: the cell stepped in a Python loop over time."""
        self._prepare_dropout(inputs, states, training)
        try:
            step = self._cell_step(training)
            steps = inputs.shape[1]
            order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
            outputs: list[Tensor] = []
            previous: Tensor | None = None
            for t in order:
                output, new = step(inputs[:, t], states)
                new = _state_list(new)
                if len(new) != len(states):
                    raise ValueError(
                        f"The cell of layer '{self.name}' returned {len(new)} state(s), but its "
                        f"state_size {self.state_size} declares {len(states)}"
                    )
                if mask is not None:
                    keep = mask[:, t]
                    if self.zero_output_for_mask or previous is None:
                        fill = torch.zeros_like(output)
                    else:
                        fill = previous
                    output = torch.where(_expand(keep, output), output, fill)
                    new = [torch.where(_expand(keep, n), n, s) for n, s in zip(new, states)]
                previous, states = output, new
                if self.return_sequences:
                    outputs.append(output)
        finally:
            self._clear_dropout()
        assert previous is not None  # at least one step (checked in call)
        sequence = torch.stack(outputs, dim=1) if self.return_sequences else None
        return previous, sequence, states

    def _run_fused(
        self, inputs: Tensor, states: States, mask: Tensor | None, training: bool
    ) -> tuple[Tensor, Tensor | None, States]:
        """The fused kernels, then Keras' output semantics on top of the held states."""
        cell = self.cell
        x = inputs
        if training and getattr(cell, "dropout", 0.0) > 0:
            try:
                drop = cell.get_dropout_mask(inputs[:, 0])  # (B, D), the same at every step
            finally:
                cell.reset_dropout_mask()
            x = x * drop.unsqueeze(1)
        mask_tm = None if mask is None else mask.t().contiguous()  # (T, B)
        held, final = self._fused_states(x.transpose(0, 1), states, mask_tm)  # (T, B, U)
        last, sequence = keras_outputs(held, final[0], mask_tm, go_backwards=self.go_backwards,
                                       zero_output_for_mask=self.zero_output_for_mask,
                                       return_sequences=self.return_sequences,
                                       zero_start=states[0] is None)
        return last, sequence, final

    def _kernel_default_states(self, inputs: Tensor) -> list[Tensor | None]:
        """The initial states the fused path hands the kernel for a call given none: None
        for zeros (the kernel makes them) where the cell's initial states are zeros."""
        return self._default_states(inputs)

    def _fused_states(
        self, x: Tensor, states: States, mask: Tensor | None
    ) -> tuple[Tensor, States]:
        """Subclasses: run the kernel over time-major x (T, B, D) with ``reverse=go_backwards``;
        return the first state after every step in time order (T, B, U), held at masked steps,
        and the final states."""
        raise NotImplementedError

    # -- dropout --------------------------------------------------------------------------
    def _prepare_dropout(self, inputs: Tensor, states: States, training: bool) -> None:
        cell = self.cell
        if training and isinstance(cell, DropoutRNNCell):
            cell.get_dropout_mask(inputs[:, 0])
            cell.get_recurrent_dropout_mask(states[0])

    def _clear_dropout(self) -> None:
        # DropoutRNNCell, or a StackedRNNCells clearing each of its cells'
        if hasattr(self.cell, "reset_dropout_mask"):
            self.cell.reset_dropout_mask()
            self.cell.reset_recurrent_dropout_mask()

    # -- shapes, masks, weights, config -----------------------------------------------------
    def compute_output_shape(self, input_shape: Shape) -> Shape | list[Shape]:
        batch = input_shape[0]
        if self.return_sequences:
            output: Shape = (batch, input_shape[1], self.output_size)
        else:
            output = (batch, self.output_size)
        if self.return_state:
            return [output, *self._grouped([(batch, size) for size in self.state_size])]
        return output

    def compute_mask(self, inputs: Tensor, mask: Tensor | None = None) -> Any:
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    def keras_weights(self) -> list[torch.nn.Parameter]:
        if isinstance(self.cell, Layer):
            return self.cell.keras_weights()
        if isinstance(self.cell, torch.nn.Module):
            return list(self.cell.parameters())
        return []

    def _rnn_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
            backend=self.backend,
        )
        return config

    def get_config(self) -> dict[str, Any]:
        return {**self._rnn_config(), "cell": serialize_layer(self.cell)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = dict(config)
        cell = deserialize_layer(config.pop("cell"))
        return cls(cell, **config)

    def extra_repr(self) -> str:
        flags = [f"name={self.name!r}"]
        for flag in ("return_sequences", "return_state", "go_backwards", "stateful"):
            if getattr(self, flag):
                flags.append(f"{flag}=True")
        return ", ".join(flags)


def build_here(layer: Layer, inputs: Tensor) -> None:
    """Build ``layer`` for ``inputs`` on first call, with its parameters on the input's device."""
    if not layer.built:
        layer.maybe_build(tuple(inputs.shape))
        if inputs.device != torch.device("cpu"):
            layer.to(inputs.device)


def fresh_copy(layer: Layer, **changes: Any) -> Layer:
    """An unbuilt copy of ``layer`` with new weights and some constructor arguments changed
    (how Keras' ``Bidirectional`` makes its forward and backward layers)."""
    try:
        config = layer.get_config()
    except TypeError:  # a generic RNN over a user's cell: copy it and re-initialise the cell
        clone = copy.deepcopy(layer)
        for key, value in changes.items():
            setattr(clone, key, value)
        reset = getattr(getattr(clone, "cell", None), "reset_parameters", None)
        if callable(reset):
            reset()
        clone.states = None
        return clone
    config.update(changes)
    return type(layer).from_config(config)
