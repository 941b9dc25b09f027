"""RNN(cell, backend="captured"): a user's Keras-style cell (the Keras guide's MinimalRNNCell,
a two-state cell whose output is not its state) run with its step captured, against the same
layer on the loop: values and gradients in float64, masks, go_backwards, return_state, and the
fall back to the loop when the step cannot be captured.

Tolerances: float64 rtol 1e-10 / atol 1e-12.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit._kernels import capture
from rnnkit.layers import RNN, Layer

F64 = dict(rtol=1e-10, atol=1e-12)


class MinimalRNNCell(Layer):
    """The custom cell of the Keras RNN guide: output = x W + h U, one state."""

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape) -> None:
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform",
                                      name="kernel", dtype=torch.float64)
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                initializer="uniform", name="recurrent_kernel",
                                                dtype=torch.float64)
        self.built = True

    def call(self, inputs, states):
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]


class PeekCell(torch.nn.Module):
    """Two states; the output (2 units) is neither of them: Keras' mask rules show."""

    def __init__(self, features: int, units: int = 3) -> None:
        super().__init__()
        self.state_size = [units, units]
        self.output_size = 2
        self.linear = torch.nn.Linear(features + units, 2 * units, dtype=torch.float64)
        self.head = torch.nn.Linear(units, 2, dtype=torch.float64)

    def forward(self, inputs, states, training=False):
        a, b = self.linear(torch.cat([inputs, states[0]], -1)).chunk(2, -1)
        c = torch.sigmoid(a) * states[1] + torch.tanh(b)
        h = torch.tanh(c) * (2.0 if training else 1.0)
        return self.head(h), [h, c]


class SignCell(MinimalRNNCell):
    """Python control flow on a tensor's value: cannot be captured."""

    def call(self, inputs, states):
        output, new = super().call(inputs, states)
        if output.sum() > 0:
            output = output * 0.5
        return output, [output]


def _pair(cell, **kwargs):
    return (RNN(cell, backend="captured", **kwargs), RNN(cell, backend="loop", **kwargs))


def _check(captured, loop, x, **call):
    got, want = captured(x, **call), loop(x, **call)
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **F64)
    weights = list(captured.parameters())
    cotangents = [torch.randn_like(w) for w in want]
    grads_got = torch.autograd.grad(sum((g * c).sum() for g, c in zip(got, cotangents)),
                                    [x, *weights])
    grads_want = torch.autograd.grad(sum((w * c).sum() for w, c in zip(want, cotangents)),
                                     [x, *weights])
    for g, w in zip(grads_got, grads_want):
        torch.testing.assert_close(g, w, **F64)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_minimal_rnn_cell_equals_the_loop(go_backwards: bool, masked: bool) -> None:
    captured, loop = _pair(MinimalRNNCell(4), return_sequences=True, return_state=True,
                           go_backwards=go_backwards)
    x = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 1, 1, 0, 1, 1]]).bool()
    _check(captured, loop, x, mask=mask if masked else None)
    assert any(isinstance(v, capture.Captured)
               for v in capture._cache[captured.cell].values())


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_two_states_and_an_output_of_its_own(zero_output_for_mask: bool, training: bool) -> None:
    captured, loop = _pair(PeekCell(5), return_sequences=True, return_state=True,
                           zero_output_for_mask=zero_output_for_mask)
    x = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 1]]).bool()
    initial = [torch.randn(3, 3, dtype=torch.float64) for _ in range(2)]
    _check(captured, loop, x, mask=mask, initial_state=initial, training=training)


def test_a_cell_that_cannot_be_captured_runs_the_loop() -> None:
    captured, loop = _pair(SignCell(4), return_sequences=True)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    _check(captured, loop, x)
    entries = capture._cache[captured.cell].values()
    assert entries and all(isinstance(v, capture.CaptureError) for v in entries)


def test_the_backend_is_kept_in_the_config() -> None:
    layer = RNN(MinimalRNNCell(4), backend="captured")
    assert layer._rnn_config()["backend"] == "captured"
