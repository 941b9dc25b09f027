"""Seed 003: the TensorFlow 1 walk-through (a two-step RNN by hand, ``BasicRNNCell`` with
``static_rnn``, and one (batch, steps, inputs) placeholder), redone on rnnkit.

The seed's three programs compute one thing: 5 tanh neurons, 3 inputs, 2 time steps, a batch
of 4::

    Y0 = tanh(X0 @ Wx + b)
    Y1 = tanh(Y0 @ Wy + X1 @ Wx + b)

1. By hand (``tf.placeholder`` / ``tf.Variable``): the two lines above, with Wx, Wy drawn from
   a normal distribution and b = 0, here in torch.
2. ``BasicRNNCell`` + ``static_rnn`` (one cell copied per step, the graph unrolled in Python):
   ``rnnkit.layers.SimpleRNNCell`` stepped over [X0, X1] in a Python loop; the final state is
   the last output.
3. One placeholder (batch, n_steps, n_inputs) with ``unstack``/``stack``, and what
   ``dynamic_rnn`` does with a loop instead of an unrolled graph: ``rnnkit.layers.SimpleRNN``
   with ``return_sequences=True, return_state=True``, outputs (4, 2, 5).

All three use the same Wx, Wy, b and give the same numbers (the seed's printed values came
from its own random weights, so only shapes and the agreement between the ways are checked).

Run: ``python examples/08_tf1_basic_rnn_cell.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnnkit import reference
from rnnkit.layers import SimpleRNN, SimpleRNNCell

n_inputs = 3
n_neurons = 5
n_steps = 2

# t = 0 and t = 1, four samples each (the seed's mini-batch)
X0_batch = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]], dtype=np.float32)
X1_batch = np.array([[9, 8, 7], [3, 4, 5], [6, 5, 4], [3, 2, 1]], dtype=np.float32)


def main(seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    torch.manual_seed(seed)
    say = print if verbose else (lambda *args, **kwargs: None)

    # 1. by hand
    Wx = torch.randn(n_inputs, n_neurons)
    Wy = torch.randn(n_neurons, n_neurons)
    b = torch.zeros(1, n_neurons)
    X0, X1 = torch.from_numpy(X0_batch), torch.from_numpy(X1_batch)
    Y0 = torch.tanh(X0 @ Wx + b)
    Y1 = torch.tanh(Y0 @ Wy + X1 @ Wx + b)
    say(f"Y0_val:{tuple(Y0.shape)}\n{Y0.numpy()}")
    say(f"Y1_val:{tuple(Y1.shape)}\n{Y1.numpy()}")
    weights = [Wx.numpy(), Wy.numpy(), b[0].numpy()]  # Keras' kernel, recurrent_kernel, bias

    # 2. BasicRNNCell + static_rnn: one cell, stepped in Python over the list of inputs
    basic_cell = SimpleRNNCell(units=n_neurons)
    basic_cell.maybe_build((None, n_inputs))
    basic_cell.set_weights(weights)
    state = [torch.zeros(4, n_neurons)]
    output_seqs = []
    with torch.no_grad():
        for x_t in (X0, X1):
            output, state = basic_cell(x_t, state)
            output_seqs.append(output)
    cell_Y0, cell_Y1 = output_seqs
    cell_state = state[0]

    # 3. one (batch, steps, inputs) tensor through the whole layer
    X_batch = np.stack([X0_batch, X1_batch], axis=1)  # (4, 2, 3)
    layer = SimpleRNN(n_neurons, return_sequences=True, return_state=True)
    layer.maybe_build(X_batch.shape)
    layer.set_weights(weights)
    with torch.no_grad():
        outputs, final_state = layer(X_batch)
    say(f"outputs_val:{tuple(outputs.shape)}\n{outputs.numpy()}")

    return {
        "Y0": Y0.numpy(), "Y1": Y1.numpy(),
        "cell_Y0": cell_Y0.numpy(), "cell_Y1": cell_Y1.numpy(), "cell_state": cell_state.numpy(),
        "X_batch": X_batch, "outputs": outputs.numpy(), "final_state": final_state.numpy(),
        "reference": reference.simple_rnn(X_batch, *weights),
    }


if __name__ == "__main__":
    main()
