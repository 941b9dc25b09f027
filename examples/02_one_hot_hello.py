"""Seed 001, first half: one-hot "hello" through SimpleRNN(2, return_sequences=True,
return_state=True), then a mini-batch of three sequences.

    x_data = [[h, e, l, o]]                  (1, 4, 4) -> outputs (1, 4, 2), state (1, 2)
    x_data = [[h,e,l,l,o], [e,o,l,l,l], [l,l,e,e,l]]
                                             (3, 5, 4) -> outputs (3, 5, 2), states (3, 2)

``outputs`` hold the hidden state of every step, ``state`` only the last one, so
``state == outputs[:, -1]``. Every number is also checked against the NumPy textbook loop
(``rnnkit.reference.simple_rnn``) with the layer's own weights.

Run: ``python examples/02_one_hot_hello.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnnkit import reference
from rnnkit.layers import SimpleRNN

h = [1, 0, 0, 0]
e = [0, 1, 0, 0]
l = [0, 0, 1, 0]  # noqa: E741 - the seed's name for the letter
o = [0, 0, 0, 1]


def _run(x_data: np.ndarray) -> dict[str, np.ndarray]:
    rnn = SimpleRNN(units=2, return_sequences=True, return_state=True)
    outputs, state = rnn(x_data)
    kernel, recurrent_kernel, bias = rnn.get_weights()
    return {
        "x": x_data,
        "outputs": outputs.detach().numpy(),
        "state": state.detach().numpy(),
        "reference": reference.simple_rnn(x_data, kernel, recurrent_kernel, bias),
    }


def main(seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    torch.manual_seed(seed)
    say = print if verbose else (lambda *args, **kwargs: None)

    hello = _run(np.array([[h, e, l, o]], dtype=np.float32))
    say("x_data", hello["x"].shape, "\noutputs", hello["outputs"], "\nstate", hello["state"])

    # a mini-batch of three sequences of length 5
    batch = _run(np.array([[h, e, l, l, o], [e, o, l, l, l], [l, l, e, e, l]], dtype=np.float32))
    say("x_data", batch["x"].shape, "\noutputs", batch["outputs"], "\nstates", batch["state"])
    return {"hello": hello, "batch": batch}


if __name__ == "__main__":
    main()
