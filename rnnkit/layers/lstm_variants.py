"""Keras-style peephole LSTM, layer-normalised LSTM and layer-normalised GRU: the layers
:class:`PeepholeLSTM`, :class:`LayerNormLSTM`, :class:`LayerNormGRU` and their cells (one step,
for ``RNN(cell)`` and streaming). The equations and the published formulations they follow are
in :mod:`rnnkit._kernels.lstm_variants`; ``rnnkit.nn`` has the same cells in torch's style.

The cells hold Keras' ``kernel`` (D, G*U), ``recurrent_kernel`` (U, G*U) and ``bias`` in Keras'
gate order (LSTM ``i, f, c, o``, bias (4U,); GRU ``z, r, h``, bias (2, 3U) = [input bias,
recurrent bias] as Keras' GRU with ``reset_after=True``), then their own weights, named as
TensorFlow Addons' ``PeepholeLSTMCell`` and ``LayerNormLSTMCell`` name them:
``input_gate_peephole_weights``, ``forget_gate_peephole_weights``,
``output_gate_peephole_weights`` (U,) (zeros); ``kernel_norm_gamma``/``kernel_norm_beta`` and
``recurrent_norm_gamma``/``recurrent_norm_beta`` (G*U, the kernel's gate order; ones and zeros)
and, for the LSTM, ``state_norm_gamma``/``state_norm_beta`` (U,).

The layers take ``RNN``'s arguments (``return_sequences``, ``return_state``, ``go_backwards``,
``stateful``, masks, e.g. from ``Embedding(mask_zero=True)``) with Keras' mask semantics; the
whole sequence runs :func:`rnnkit._kernels.lstm_variants.variant_sequence` (the peephole and
layer-normalised LSTMs' C++ loops; the layer-normalised GRU's composite sequence, the input side
once for all steps, then the step), ``backend="loop"`` steps the cell instead (the same
numbers). The
activations are fixed (tanh and sigmoid, as in the papers) and there is no dropout: other
values raise an error.

Example::

    >>> import torch
    >>> outputs, h, c = LayerNormLSTM(4, return_sequences=True,
    ...                               return_state=True)(torch.randn(2, 5, 3))
    >>> tuple(outputs.shape), tuple(h.shape), tuple(c.shape)
    ((2, 5, 4), (2, 4), (2, 4))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._kernels._cell_spec import GRU as _GRU_SPEC
from .._kernels._cell_spec import LSTM as _LSTM_SPEC
from .._kernels.lstm_variants import VARIANTS, variant_sequence
from ._base import Layer, Shape
from ._cells import KerasRNN, RecurrentCell
from .rnn import States

__all__ = ["LayerNormGRU", "LayerNormGRUCell", "LayerNormLSTM", "LayerNormLSTMCell",
           "PeepholeLSTM", "PeepholeLSTMCell"]

# Keras-style name -> (torch-style name, size in units, initial value)
_OWN: dict[str, dict[str, tuple[str, int, float]]] = {
    "peephole_lstm": {
        "input_gate_peephole_weights": ("weight_ci", 1, 0.0),
        "forget_gate_peephole_weights": ("weight_cf", 1, 0.0),
        "output_gate_peephole_weights": ("weight_co", 1, 0.0)},
    "layer_norm_lstm": {
        "kernel_norm_gamma": ("ln_ih_weight", 4, 1.0), "kernel_norm_beta": ("ln_ih_bias", 4, 0.0),
        "recurrent_norm_gamma": ("ln_hh_weight", 4, 1.0),
        "recurrent_norm_beta": ("ln_hh_bias", 4, 0.0),
        "state_norm_gamma": ("ln_c_weight", 1, 1.0), "state_norm_beta": ("ln_c_bias", 1, 0.0)},
    "layer_norm_gru": {
        "kernel_norm_gamma": ("ln_ih_weight", 3, 1.0), "kernel_norm_beta": ("ln_ih_bias", 3, 0.0),
        "recurrent_norm_gamma": ("ln_hh_weight", 3, 1.0),
        "recurrent_norm_beta": ("ln_hh_bias", 3, 0.0)},
}


# what a layer's arguments hold for the layer (Layer's, RNN's); the rest is the cell's
_LAYER_OPTIONS = ("name", "trainable", "dtype", "input_shape", "batch_input_shape", "batch_size",
                  "input_dim", "activity_regularizer", "zero_output_for_mask")


class _VariantCell(RecurrentCell):
    kind: str

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        owner = type(self).__name__
        if self._given["activation"] != "tanh":
            raise ValueError(f"{owner}: activation is fixed to 'tanh' (the published cell), got "
                             f"{self._given['activation']!r}")
        if self.dropout or self.recurrent_dropout:
            raise ValueError(f"{owner}: dropout and recurrent_dropout are not supported, got "
                             f"{self.dropout} and {self.recurrent_dropout}")
        self.gates = VARIANTS[self.kind].gates
        states = VARIANTS[self.kind].states
        self.state_size = [self.units] * states if states > 1 else self.units
        for name in _OWN[self.kind]:
            self.register_parameter(name, None)

    def build(self, input_shape: Shape) -> None:
        super().build(input_shape)
        dtype = torch.get_default_dtype()
        for name, (_, width, value) in _OWN[self.kind].items():
            setattr(self, name, torch.nn.Parameter(
                torch.full((width * self.units,), value, dtype=dtype)))

    def torch_parameters(self) -> dict[str, Tensor | None]:
        """The weights in torch's layout and names, as :data:`VARIANTS`' steps read them."""
        rows = (_GRU_SPEC if self.gates == 3 else _LSTM_SPEC).rows("keras", "torch", self.units)
        bias_ih = bias_hh = None
        if self.bias is not None:
            bias_ih, bias_hh = (self.bias[0], self.bias[1]) if self.gates == 3 else (self.bias,
                                                                                    None)
        p: dict[str, Tensor | None] = {
            "weight_ih": self.kernel.t()[rows], "weight_hh": self.recurrent_kernel.t()[rows],
            "bias_ih": None if bias_ih is None else bias_ih[rows],
            "bias_hh": None if bias_hh is None else bias_hh[rows]}
        for name, (torch_name, width, _) in _OWN[self.kind].items():
            value = getattr(self, name)
            p[torch_name] = value[rows] if width > 1 else value
        return p

    def call(self, inputs: Tensor, states: Any, training: bool = False
             ) -> tuple[Tensor, list[Tensor]]:
        variant = VARIANTS[self.kind]
        p = self.torch_parameters()
        state = tuple(states[:variant.states]) if isinstance(states, (list, tuple)) else (states,)
        new = variant.step(variant.input_side(inputs, p), state, p)
        return new[0], list(new)


class _VariantLSTMCell(_VariantCell):
    def __init__(self, units: int, unit_forget_bias: bool = True,
                 recurrent_activation: Any = "sigmoid", **kwargs: Any) -> None:
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, **kwargs)
        self._given["recurrent_activation"] = recurrent_activation
        if recurrent_activation != "sigmoid":
            raise ValueError(f"{type(self).__name__}: recurrent_activation is fixed to "
                             f"'sigmoid' (the published cell), got {recurrent_activation!r}")

    def _initial_bias(self, dtype: torch.dtype) -> Tensor:
        units = self.units
        if not self.unit_forget_bias:
            return self.bias_initializer((4 * units,), dtype=dtype)
        return torch.cat([self.bias_initializer((units,), dtype=dtype),
                          torch.ones(units, dtype=dtype),
                          self.bias_initializer((2 * units,), dtype=dtype)])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(unit_forget_bias=self.unit_forget_bias, recurrent_activation="sigmoid")
        return config


class PeepholeLSTMCell(_VariantLSTMCell):
    """One peephole LSTM step (Gers & Schmidhuber 2000): ``states = [h, c]``, returns
    ``(h', [h', c'])``."""

    kind = "peephole_lstm"


class LayerNormLSTMCell(_VariantLSTMCell):
    """One layer-normalised LSTM step (Ba et al. 2016): ``states = [h, c]``, returns
    ``(h', [h', c'])``."""

    kind = "layer_norm_lstm"


class LayerNormGRUCell(_VariantCell):
    """One layer-normalised GRU step (Ba et al. 2016): ``states = [h]``, returns
    ``(h', [h'])``."""

    kind = "layer_norm_gru"

    def __init__(self, units: int, recurrent_activation: Any = "sigmoid",
                 reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self._given["recurrent_activation"] = recurrent_activation
        if recurrent_activation != "sigmoid" or reset_after is not True:
            raise ValueError(f"{type(self).__name__}: recurrent_activation is fixed to "
                             f"'sigmoid' and reset_after to True (the published cell), got "
                             f"{recurrent_activation!r} and {reset_after!r}")

    def _initial_bias(self, dtype: torch.dtype) -> Tensor:
        return self.bias_initializer((2, 3 * self.units), dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(recurrent_activation="sigmoid", reset_after=True)
        return config


class _VariantLayer(KerasRNN):
    cell_class: type[_VariantCell]
    cell: _VariantCell

    def __init__(self, units: int, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 *, backend: str = "auto", **kwargs: Any) -> None:
        layer_options = {k: kwargs.pop(k) for k in _LAYER_OPTIONS if k in kwargs}
        cell = self.cell_class(units, **kwargs)
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         backend=backend, **layer_options)

    def _fast_path_blocker(self, training: bool) -> str | None:
        return None  # every configuration the cell accepts runs variant_sequence

    def _kernel_default_states(self, inputs: Tensor) -> list[Tensor | None]:
        return self._default_states(inputs)  # variant_sequence takes the zeros as tensors

    def _fused_states(self, x: Tensor, states: States,
                      mask: Tensor | None) -> tuple[Tensor, States]:
        kind = self.cell.kind
        held, final = variant_sequence(kind, x, self.cell.torch_parameters(),
                                       tuple(states[:VARIANTS[kind].states]), mask,
                                       reverse=self.go_backwards)
        return held, list(final)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)


class PeepholeLSTM(_VariantLayer):
    """The peephole LSTM over sequences (B, T, D) (module docstring); states ``[h, c]``."""

    cell_class = PeepholeLSTMCell


class LayerNormLSTM(_VariantLayer):
    """The layer-normalised LSTM over sequences (B, T, D) (module docstring); states
    ``[h, c]``."""

    cell_class = LayerNormLSTMCell


class LayerNormGRU(_VariantLayer):
    """The layer-normalised GRU over sequences (B, T, D) (module docstring); state ``[h]``."""

    cell_class = LayerNormGRUCell
