"""Seed 002, "Python RNN": the recurrence as a NumPy loop, and the same numbers from rnnkit.

    h_t = tanh(Wx @ x_t + Wh @ h_{t-1} + b),   Wx (8, 4), Wh (8, 8), b (8,), h_0 = 0

over 10 steps of 4 random features. The seed's weights are in the (hidden, input) layout of
the equation; Keras and rnnkit.layers keep their transposes (``kernel = Wx.T``,
``recurrent_kernel = Wh.T``), rnnkit.nn / torch.nn keep them as they are (``weight_ih = Wx``).
The loop's states equal ``rnnkit.reference.simple_rnn``, ``rnnkit.layers.SimpleRNN`` and
``rnnkit.nn.RNN`` given the same weights.

Run: ``python examples/05_numpy_rnn.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit import reference
from rnnkit.layers import SimpleRNN

timesteps = 10
input_dim = 4
hidden_size = 8


def main(seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    np.random.seed(seed)
    say = print if verbose else (lambda *args, **kwargs: None)

    # In [4]
    inputs = np.random.random((timesteps, input_dim))
    hidden_state_t = np.zeros((hidden_size,))
    say(hidden_state_t)

    # In [5]
    Wx = np.random.random((hidden_size, input_dim))
    Wh = np.random.random((hidden_size, hidden_size))
    b = np.random.random((hidden_size,))
    say(np.shape(Wx), np.shape(Wh), np.shape(b), sep="\n")

    # In [6]
    total_hidden_states = []
    shapes = []
    for input_t in inputs:
        output_t = np.tanh(np.dot(Wx, input_t) + np.dot(Wh, hidden_state_t) + b)
        total_hidden_states.append(list(output_t))
        shapes.append(np.shape(total_hidden_states))
        say(shapes[-1])
        hidden_state_t = output_t
    total_hidden_states = np.stack(total_hidden_states, axis=0)
    say(total_hidden_states)

    # the same recurrence three more ways, in float64
    from_reference = reference.simple_rnn(inputs, Wx.T, Wh.T, b)

    layer = SimpleRNN(hidden_size, return_sequences=True)
    layer.maybe_build((None, timesteps, input_dim))
    layer.double()
    layer.set_weights([Wx.T, Wh.T, b])
    with torch.no_grad():
        from_layer = layer(torch.from_numpy(inputs[None]))[0].numpy()

    module = rnnkit.nn.RNN(input_dim, hidden_size, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(Wx))
        module.weight_hh_l0.copy_(torch.from_numpy(Wh))
        module.bias_ih_l0.copy_(torch.from_numpy(b))
        module.bias_hh_l0.zero_()
        from_nn = module(torch.from_numpy(inputs[None]))[0][0].numpy()

    return {
        "inputs": inputs,
        "weight_shapes": [np.shape(Wx), np.shape(Wh), np.shape(b)],
        "step_shapes": shapes,
        "states": total_hidden_states,
        "reference": from_reference,
        "layer": from_layer,
        "nn": from_nn,
    }


if __name__ == "__main__":
    main()
