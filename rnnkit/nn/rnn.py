"""``torch.nn``-compatible multi-layer RNN, GRU and LSTM modules on rnnkit's fused kernels.

Same constructor, parameter names and shapes, ``state_dict``, ``forward(input, hx)`` contract and
return values as ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` (``load_state_dict`` works both ways),
plus variable-length batches without packing: ``forward(input, hx, lengths=...)`` or
``mask=...``.

Named dimensions (as in ``torch.nn``)::

    N = batch size           L = sequence length       D = 2 if bidirectional else 1
    H_in = input_size        H_out = proj_size or hidden_size

Shapes: input (L, N, H_in), or (N, L, H_in) with ``batch_first=True``, or (L, H_in) unbatched;
``h_0``/``h_n`` (D * num_layers, N, H_out) (the batch dimension stays second even with
``batch_first``); output (L, N, D * H_out).

Variable length: ``lengths`` is a 1-D integer tensor (N,), in any order, no sorting needed;
``mask`` is a (N, L) bool tensor of real steps. Output steps past a sequence's end are zero (as
``pad_packed_sequence`` gives), ``h_n`` holds each sequence's state at its last real step, and
the reverse direction of a bidirectional layer runs over each sequence's real steps only: the
same values as ``torch.nn`` on the equivalent ``PackedSequence``. A mask may also have holes;
at a masked step every layer holds its state and outputs zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
import operator
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import _kernels
from . import _torchscript
from ._checks import ShapeError, check_input, check_state, step_mask as _step_mask

State = tuple[Tensor, ...]
Weights = tuple[Tensor | None, ...]  # one layer and direction's, in the order of _KINDS
# One layer and direction: (x (T, B, H_in), initial states (empty: zeros), weights, mask
# (T, B) or None, reverse) -> (outputs (T, B, H_out), zero where the mask is False; final states).
Layer = Callable[[Tensor, tuple[Tensor | None, ...], Weights, Tensor | None, bool],
                 tuple[Tensor, State]]


class _RecurrentBase(torch.nn.RNNBase):
    """Shape handling and layer stacking shared by RNN, GRU and LSTM.

    Everything else is :class:`torch.nn.RNNBase`'s own: the constructor's checks, the parameters
    and their names, ``_flat_weights`` / ``_flat_weights_names`` / ``all_weights``,
    ``flatten_parameters``, ``reset_parameters``, ``extra_repr``, pickling. ``forward`` reads
    every weight as an attribute on every call, so parametrizations (``weight_norm``,
    ``spectral_norm``, ``orthogonal``), pruning and plain-tensor weights (weight-drop) work.

    Not a subclass of ``torch.nn.RNN`` / ``GRU`` / ``LSTM``: ``torch.compile`` refuses to trace
    any instance of those three (``torch._dynamo.config.allow_rnn`` is off by default), which
    would rule out compiling a model that holds one (see the README).
    """

    state_count: int = 1  # LSTM carries (h, c)

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int,
        device: Any,
        dtype: torch.dtype | None,
        backend: str,
    ) -> None:
        for label, value in (("num_layers", num_layers), ("proj_size", proj_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{label} should be of type int, got: {type(value).__name__}")
        if not isinstance(bidirectional, bool):
            raise TypeError(
                f"bidirectional should be of type bool, got: {type(bidirectional).__name__}"
            )
        if backend not in _kernels.BACKENDS:
            raise ValueError(f"backend must be one of {_kernels.BACKENDS}, got {backend!r}")
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype)
        self.backend = backend

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _layer_weights(self) -> list[Weights]:
        """Each layer and direction's weights, (w_ih, w_hh, b_ih, b_hh, w_hr) with None for the
        absent ones, read as attributes (not from ``_parameters``) so that parametrized, pruned
        and plain-tensor weights are the ones used."""
        # a registered parameter is what the attribute returns; anything else (a parametrized
        # property, a pruned or weight-dropped plain tensor) is read as the attribute
        parameter = self._parameters.get
        flat = [w if (w := parameter(name)) is not None else getattr(self, name)
                for name in self._flat_weights_names]
        self._sync_flat_weights(flat)
        slots = self.__dict__.get("_weight_slots")
        if slots is None:  # where each group's weights sit in the flat list, by kind
            index = {name: i for i, name in enumerate(self._flat_weights_names)}
            slots = [tuple(next((index[n] for n in names if _kind(n) == kind), None)
                           for kind in _KINDS) for names in self._all_weights]
            self.__dict__["_weight_slots"] = slots
        return [tuple(None if i is None else flat[i] for i in group) for group in slots]

    def _sync_flat_weights(self, weights: list[Tensor]) -> None:
        """Keep ``_flat_weights`` the tensors forward used, as ``torch.nn``'s forward does (its
        ``_update_flat_weights``), without recomputing a parametrization a second time."""
        if torch.compiler.is_compiling() or torch._C._is_tracing():
            return  # a trace must not record (or guard on) this bookkeeping
        current = self._flat_weights
        if len(weights) == len(current) and all(map(operator.is_, weights, current)):
            return
        self.__dict__["_flat_weights"] = weights
        self.__dict__["_flat_weight_refs"] = [weakref.ref(w) for w in weights]

    def _layer(self) -> Layer:
        """This module's one layer and direction (see :data:`Layer`), as :func:`run_layers`
        calls it."""
        raise NotImplementedError

    # -- forward ----------------------------------------------------------------------------
    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: Tensor | tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Any, Any]:
        # lengths and mask are not keyword-only: torch.onnx's legacy exporter passes every
        # parameter of forward positionally (the defaults of those not given)
        name = type(self).__name__
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            if lengths is not None or mask is not None:
                raise ValueError(f"{name}: pass lengths/mask with padded input, not a PackedSequence")
            input, lengths = pad_packed_sequence(packed, batch_first=self.batch_first)
        weights = self._layer_weights()
        check_input(input, self.input_size, weights[0][0].dtype, name)
        batched = input.dim() == 3
        if not batched:
            if lengths is not None or mask is not None:
                raise ShapeError(f"{name}: lengths/mask need batched 3-D input, got shape "
                                 f"{tuple(input.shape)}")
            input = input.unsqueeze(0 if self.batch_first else 1)
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, H_in)
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise ShapeError(f"{name}: Expected sequence length to be larger than 0 in RNN, got "
                             f"input of shape {tuple(input.shape)}")
        step_mask = _step_mask(lengths, mask, batch, steps, x.device, name)  # (T, B)
        states = [] if hx is None else self._initial_states(hx, batch, batched)
        dropout = None
        # the rate last: eval and one-layer calls never read (or, compiled, guard on) it
        if self.training and self.num_layers > 1 and self.dropout:
            dropout = (partial(F.dropout, p=self.dropout, training=True) if packed is None
                       else packed_dropout(self.dropout, step_mask, packed.sorted_indices))
        layer_input, final_states = run_layers(self._layer(), x, states, weights,
                                               self.num_layers, self._directions, step_mask,
                                               dropout)

        output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        if not batched:
            output = output.squeeze(0 if self.batch_first else 1)
            final_states = [s.squeeze(1) for s in final_states]
        if packed is not None:
            output = _repack(output, packed, lengths, self.batch_first)
        hidden = final_states[0] if self.state_count == 1 else tuple(final_states)
        return output, hidden

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """What ``torch.jit.script`` compiles: see :mod:`._torchscript`."""
        return _torchscript.torch_nn_twin(self)

    def _state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        layers = self.num_layers * self._directions
        return [(layers, batch, self.proj_size or self.hidden_size)]

    def _initial_states(self, hx: Any, batch: int, batched: bool) -> list[Tensor]:
        """hx as a list of (layers * directions, B, size) tensors."""
        shapes = self._state_shapes(batch)
        given = list(hx) if isinstance(hx, (tuple, list)) else [hx]
        if len(given) != len(shapes):
            raise ValueError(
                f"{type(self).__name__} expects hx as {'a tuple (h_0, c_0)' if len(shapes) == 2 else 'one tensor'}, "
                f"got {len(given)} tensor(s)"
            )
        states = []
        for label, state, shape in zip(("h_0", "c_0"), given, shapes):
            expected = shape if batched else (shape[0], shape[2])
            check_state(state, expected, label, batched)
            states.append(state if batched else state.unsqueeze(1))
        return states

    def extra_repr(self) -> str:
        text = super().extra_repr()  # torch.nn's, which leaves out nonlinearity
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if self.backend != "auto":
            text += f", backend={self.backend!r}"
        return text


def _kind(name: str) -> str:
    """"weight_hh_l1_reverse" -> "weight_hh"."""
    return name.rsplit("_l", 1)[0]


_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def run_layers(
    layer: Layer, x: Tensor, states: Sequence[Tensor], weights: Sequence[Weights],
    num_layers: int, directions: int, mask: Tensor | None,
    dropout: Callable[[Tensor], Tensor] | None,
) -> tuple[Tensor, list[Tensor]]:
    """torch.nn's layer stack: each layer's directions run over the previous layer's outputs
    (concatenated), with ``dropout`` (None: none) on every layer's outputs but the last.

    ``x`` is time-major (T, B, H_in); ``states`` one (num_layers * directions, B, size) tensor
    per state kind (empty: zeros); ``weights`` one :data:`Weights` per layer and direction.
    Returns the last layer's outputs (T, B, directions * H_out) and the final states, one
    (num_layers * directions, B, size) tensor per kind. Both :class:`_RecurrentBase` and
    :func:`rnnkit.accelerate`'s kernels for ``torch.nn``'s modules run through here.
    """
    finals: list[State] = []
    layer_input = x
    for index_layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = index_layer * directions + direction
            initial = tuple(s[index] for s in states)  # (): zeros
            out, final = layer(layer_input, initial, weights[index], mask, bool(direction))
            outputs.append(out)
            finals.append(final)
        # each direction's outputs are already zero past each sequence's end (the Layer's)
        layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
        if dropout is not None and index_layer < num_layers - 1:
            layer_input = dropout(layer_input)
    if len(finals) == 1:
        final_states = [state[None] for state in finals[0]]  # (1, B, H)
    else:
        final_states = [torch.stack(kind) for kind in zip(*finals)]
    return layer_input, final_states


def packed_dropout(rate: float, mask: Tensor, sorted_indices: Tensor | None,
                   ) -> Callable[[Tensor], Tensor]:
    """Dropout between layers on a packed batch, drawn as ``torch.nn`` draws it: one
    ``dropout`` over the packed data (its rows in packed order: step by step, each step's
    sequences longest first), here multiplied onto the padded (T, B, F) outputs.

    ``mask`` (T, B) marks the real steps of the padded batch; ``sorted_indices`` is the
    ``PackedSequence``'s (the padded batch position of each packed slot; None: already sorted).
    """
    if sorted_indices is not None:
        sorted_indices = sorted_indices.to(mask.device)
        steps, slots = mask.index_select(1, sorted_indices).nonzero(as_tuple=True)
        batch = sorted_indices[slots]
    else:
        steps, batch = mask.nonzero(as_tuple=True)  # row-major: the packed order

    def drop(y: Tensor) -> Tensor:
        noise = F.dropout(y.new_ones(steps.shape[0], y.shape[2]), rate, training=True)
        scale = y.new_zeros(y.shape)
        scale[steps, batch] = noise
        return y * scale

    return drop


def _repack(output: Tensor, packed: PackedSequence, lengths: Tensor, batch_first: bool) -> PackedSequence:
    """Pack the padded output with the input's own batch order, as torch.nn returns it."""
    order = packed.sorted_indices
    if order is not None:
        output = output.index_select(0 if batch_first else 1, order.to(output.device))
        lengths = lengths.index_select(0, order.cpu())
    repacked = pack_padded_sequence(output, lengths, batch_first=batch_first, enforce_sorted=True)
    return PackedSequence(
        repacked.data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
    )


def _no_projection(proj_size: int) -> None:
    if proj_size:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")


class RNN(_RecurrentBase):
    r"""Multi-layer Elman RNN, a drop-in for :class:`torch.nn.RNN`.

    .. math:: h_t = \tanh(x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh})

    (``nonlinearity="relu"`` uses ReLU). Arguments in ``torch.nn.RNN``'s order: ``input_size,
    hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, device=None, dtype=None``; keyword-only ``backend`` (see
    :mod:`rnnkit._kernels`). See the module docstring for shapes, ``lengths`` and ``mask``.

    Example::

        >>> rnn = RNN(4, 2, batch_first=True)
        >>> out, h_n = rnn(torch.randn(3, 5, 4), lengths=torch.tensor([5, 2, 3]))
        >>> out.shape, h_n.shape
        (torch.Size([3, 5, 2]), torch.Size([1, 3, 2]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        proj_size: int = 0,
        backend: str = "auto",
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity {nonlinearity!r}. Select from 'tanh' or 'relu'."
            )
        _no_projection(proj_size)
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, backend)
        self.nonlinearity = nonlinearity

    def _layer(self) -> Layer:
        return partial(rnn_layer, relu=self.nonlinearity == "relu", backend=self.backend)


class GRU(_RecurrentBase):
    r"""Multi-layer GRU, a drop-in for :class:`torch.nn.GRU` (gates ordered r, z, n).

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Arguments in ``torch.nn.GRU``'s order: ``input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None``; keyword-only
    ``backend``.

    Example::

        >>> gru = GRU(4, 8, num_layers=2, bidirectional=True)
        >>> out, h_n = gru(torch.randn(5, 3, 4))
        >>> out.shape, h_n.shape
        (torch.Size([5, 3, 16]), torch.Size([4, 3, 8]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        proj_size: int = 0,
        backend: str = "auto",
    ) -> None:
        _no_projection(proj_size)
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, backend)

    def _layer(self) -> Layer:
        return partial(gru_layer, backend=self.backend)


class LSTM(_RecurrentBase):
    r"""Multi-layer LSTM, a drop-in for :class:`torch.nn.LSTM` (gates ordered i, f, g, o).

    .. math::
        i_t, f_t, o_t = \sigma(\cdot), \quad g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)

    With ``proj_size > 0``, :math:`h_t = W_{hr}(o_t \odot \tanh(c_t))`, inside the same kernels.
    ``hx`` and the returned state are ``(h, c)``. Arguments in ``torch.nn.LSTM``'s order:
    ``input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0, device=None, dtype=None``; keyword-only ``backend``.

    Example::

        >>> lstm = LSTM(4, 8, batch_first=True)
        >>> out, (h_n, c_n) = lstm(torch.randn(3, 5, 4))
        >>> out.shape, h_n.shape, c_n.shape
        (torch.Size([3, 5, 8]), torch.Size([1, 3, 8]), torch.Size([1, 3, 8]))
    """

    state_count = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype, backend)

    def _state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        layers = self.num_layers * self._directions
        return [(layers, batch, self.proj_size or self.hidden_size), (layers, batch, self.hidden_size)]

    def _layer(self) -> Layer:
        return partial(lstm_layer, backend=self.backend)


# -- one layer and direction of each cell ---------------------------------------------------

def rnn_layer(x: Tensor, state: tuple[Tensor | None, ...], weights: Weights,
                mask: Tensor | None, reverse: bool, *, relu: bool, backend: str = "auto",
                ) -> tuple[Tensor, State]:
    """:data:`Layer` of the Elman RNN (``relu``: ReLU, else tanh)."""
    out, h_n = _kernels.rnn(x, state[0] if state else None, *weights[:4],
                            nonlinearity="relu" if relu else "tanh", mask=mask, reverse=reverse,
                            zero_padding=True, backend=backend)
    return out, (h_n,)


def gru_layer(x: Tensor, state: tuple[Tensor | None, ...], weights: Weights,
              mask: Tensor | None, reverse: bool, *, backend: str = "auto",
              ) -> tuple[Tensor, State]:
    """:data:`Layer` of the GRU."""
    out, h_n = _kernels.gru(x, state[0] if state else None, *weights[:4], mask=mask, reverse=reverse,
                            zero_padding=True, backend=backend)
    return out, (h_n,)


def lstm_layer(x: Tensor, state: tuple[Tensor | None, ...], weights: Weights,
               mask: Tensor | None, reverse: bool, *, backend: str = "auto",
               ) -> tuple[Tensor, State]:
    """:data:`Layer` of the LSTM, with the output projection ``weights[4]`` (``w_hr``, torch.nn's
    ``proj_size``) when present."""
    h0, c0 = state or (None, None)
    out, h_n, c_n = _kernels.lstm(x, h0, c0, *weights[:4], w_hr=weights[4], mask=mask,
                                  reverse=reverse, zero_padding=True, backend=backend)
    return out, (h_n, c_n)
