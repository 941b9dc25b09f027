"""Keras' Bidirectional wrapper: one recurrent layer reading forward, a copy reading backward.

The forward layer and the backward layer (``go_backwards=True``) each get fresh weights, built
from the wrapped layer's config as Keras does. With ``y`` the forward output and ``y_rev`` the
backward one (flipped back into time order when ``return_sequences``)::

    concat: [y, y_rev] on the last axis      sum: y + y_rev      mul: y * y_rev
    ave: (y + y_rev) / 2                     None: the list [y, y_rev]

As in Keras, both layers output zeros at masked steps when they return sequences
(``zero_output_for_mask`` is forced to ``return_sequences``), so the two halves line up; with a
mask the backward layer starts at each sequence's last real step. ``return_state`` gives
``[output, *forward_states, *backward_states]``; ``initial_state`` takes the forward states
followed by the backward states. ``get_weights()`` is the forward layer's weights, then the
backward layer's.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from ._base import Layer, Shape
from ._serialization import deserialize_layer, serialize_layer
from .rnn import build_here, fresh_copy

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _prefixed(prefix: str, name: str) -> str:
    return prefix + name[len(prefix) :] if name.startswith(prefix) else prefix + name


class Bidirectional(Layer):
    """Runs ``layer`` forward and a copy of it backward over the sequence and merges the outputs.

    Args:
        layer: a recurrent layer (``SimpleRNN``, ``GRU``, ``LSTM``, ``RNN``).
        merge_mode: "concat" (default), "sum", "mul", "ave" or None (return both outputs).
        backward_layer: optional layer for the backward direction; it must have
            ``go_backwards`` opposite to ``layer`` and the same ``stateful``,
            ``return_sequences`` and ``return_state``. It is used as given (its weights too).

    Example::

        >>> import torch
        >>> from rnnkit.layers import SimpleRNN
        >>> layer = Bidirectional(SimpleRNN(8, return_sequences=True))
        >>> tuple(layer(torch.randn(2, 10, 4)).shape)
        (2, 10, 16)
        >>> layer.count_params()  # two SimpleRNN(8) on 4 features: 2 * (4*8 + 8*8 + 8)
        208
    """

    input_dim_is_step_features = True
    supports_masking = True

    def __init__(
        self,
        layer: Layer,
        merge_mode: str | None = "concat",
        weights: Any = None,
        backward_layer: Layer | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(layer, Layer) or not hasattr(layer, "go_backwards"):
            raise ValueError(
                "Bidirectional wraps a recurrent rnnkit layer (SimpleRNN, GRU, LSTM, RNN); "
                f"got {type(layer).__name__}"
            )
        if backward_layer is not None and (
            not isinstance(backward_layer, Layer) or not hasattr(backward_layer, "go_backwards")
        ):
            raise ValueError(
                "backward_layer must be a recurrent rnnkit layer; "
                f"got {type(backward_layer).__name__}"
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        super().__init__(**kwargs)
        self.forward_layer = fresh_copy(layer, name=_prefixed("forward_", layer.name))
        if backward_layer is None:
            # Keras sets go_backwards=True (not "the opposite"): a wrapped layer that already
            # goes backwards is an error below, as in Keras.
            self.backward_layer = fresh_copy(
                layer, name=_prefixed("backward_", layer.name), go_backwards=True
            )
        else:
            self.backward_layer = backward_layer
        self._check_pair()
        for inner in (self.forward_layer, self.backward_layer):
            if hasattr(inner, "zero_output_for_mask"):
                inner.zero_output_for_mask = inner.return_sequences
        self.merge_mode = merge_mode
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self._initial_weights = None if weights is None else list(weights)

    def _check_pair(self) -> None:
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "The forward and backward layers must have different go_backwards values; got "
                f"{forward.go_backwards} for both"
            )
        for attribute in ("stateful", "return_sequences", "return_state"):
            a, b = getattr(forward, attribute), getattr(backward, attribute)
            if a != b:
                raise ValueError(
                    f"The forward and backward layers must have the same {attribute}; got {a} "
                    f"for the forward layer and {b} for the backward layer"
                )

    # -- building and calling ---------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        self.forward_layer.maybe_build(input_shape)
        self.backward_layer.maybe_build(input_shape)
        super().build(input_shape)
        if self._initial_weights is not None:
            weights, self._initial_weights = self._initial_weights, None
            self.built = True
            self.set_weights(weights)

    def convert_inputs(self, inputs: Any) -> Tensor:
        return self.forward_layer.convert_inputs(inputs)

    def forward(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = self.convert_inputs(inputs)
        if inputs.dim() != 3:
            raise ValueError(
                f"Bidirectional '{self.name}' expects a 3-D input (batch, time, features), got "
                f"shape {tuple(inputs.shape)}"
            )
        build_here(self, inputs)
        return self._call_converted(inputs, args, kwargs)

    def call(
        self,
        inputs: Tensor,
        initial_state: Any = None,
        mask: Tensor | None = None,
        training: bool = False,
    ) -> Tensor | list[Tensor]:
        forward_state = backward_state = None
        if initial_state is not None:
            states = list(initial_state)
            expected = len(self.forward_layer.state_size) + len(self.backward_layer.state_size)
            if len(states) != expected:
                raise ValueError(
                    f"Bidirectional '{self.name}' needs {expected} initial states (the forward "
                    f"layer's, then the backward layer's), got {len(states)}"
                )
            half = len(states) // 2
            forward_state, backward_state = states[:half], states[half:]
        y = self.forward_layer(inputs, initial_state=forward_state, mask=mask, training=training)
        y_rev = self.backward_layer(
            inputs, initial_state=backward_state, mask=mask, training=training
        )
        states_out: list[Tensor] = []
        if self.return_state:
            states_out = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)  # the backward layer's sequence is in processing order
        output: Tensor | list[Tensor]
        if self.merge_mode == "concat":
            output = torch.cat([y, y_rev], dim=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            output = [y, y_rev]
        if self.return_state:
            return [*output, *states_out] if self.merge_mode is None else [output, *states_out]
        return output

    # -- states -----------------------------------------------------------------------------
    @property
    def states(self) -> list[Tensor] | None:
        forward, backward = self.forward_layer.states, self.backward_layer.states
        if forward and backward:
            return [*forward, *backward]
        return None

    def reset_states(self) -> None:
        if not self.stateful:
            raise AttributeError(f"Bidirectional '{self.name}': reset_states() needs stateful layers")
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    def reset_state(self) -> None:
        """Keras 3's name for :meth:`reset_states`."""
        self.reset_states()

    # -- shapes, masks, weights, config -------------------------------------------------------
    def compute_output_shape(self, input_shape: Shape) -> Any:
        shape = self.forward_layer.compute_output_shape(input_shape)
        state_shapes: list[Shape] = []
        if self.return_state:
            shape, state_shapes = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            output: Any = (*shape[:-1], None if shape[-1] is None else 2 * shape[-1])
        elif self.merge_mode is None:
            output = [shape, shape]
        else:
            output = shape
        if self.return_state:
            outputs = output if self.merge_mode is None else [output]
            return [*outputs, *state_shapes, *state_shapes]
        return output

    def compute_mask(self, inputs: Tensor, mask: Tensor | None = None) -> Any:
        # Keras 3 lists no masks for the returned states (its Bidirectional keeps no `states`
        # unless stateful), so with return_state the mask list is the outputs' only.
        output_mask = mask if self.return_sequences else None
        return [output_mask, output_mask] if self.merge_mode is None else output_mask

    def keras_weights(self) -> list[torch.nn.Parameter]:
        return [*self.forward_layer.keras_weights(), *self.backward_layer.keras_weights()]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["merge_mode"] = self.merge_mode
        config["layer"] = serialize_layer(self.forward_layer)
        config["backward_layer"] = serialize_layer(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = copy.deepcopy(config)
        config["layer"] = deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize_layer(config["backward_layer"])
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, merge_mode={self.merge_mode!r}"


__all__ = ["Bidirectional"]
