"""Seed 002, "Deep RNN" and "Bidirectional RNN": stacked and bidirectional SimpleRNN(8)s on
sequences of 10 steps of 4 features.

    Sequential([SimpleRNN(8, return_sequences=True), SimpleRNN(8, return_sequences=True)])
        no input shape: built by its first call; 104 + 136 = 240 params
    Bidirectional(SimpleRNN(8, return_sequences=True), input_shape=(10, 4))
        (None, 10, 16): forward and backward outputs concatenated; 2 * 104 = 208 params
    four stacked Bidirectional layers: 208 + 3 * 400 = 1408 params

Run: ``python examples/06_deep_and_bidirectional.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit.layers import Bidirectional, SimpleRNN

timesteps = 10
input_dim = 4
hidden_size = 8


def _describe(model: rnnkit.Sequential, x: np.ndarray, say: Any) -> dict[str, Any]:
    summary: list[str] = []
    model.summary(print_fn=summary.append)
    say(summary[0])
    with torch.no_grad():
        out = model(x)
    return {"count_params": model.count_params(),
            "layer_params": [layer.count_params() for layer in model.layers],
            "output_shapes": model.layer_output_shapes(), "output": out.numpy(),
            "summary": summary[0]}


def main(seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    torch.manual_seed(seed)
    say = print if verbose else (lambda *args, **kwargs: None)
    x = np.random.default_rng(seed).random((3, timesteps, input_dim)).astype(np.float32)

    # In [7]: Deep RNN
    deep = rnnkit.Sequential()
    deep.add(SimpleRNN(hidden_size, return_sequences=True))
    deep.add(SimpleRNN(hidden_size, return_sequences=True))
    built_before_call = deep.built
    deep_out = _describe(deep, x, say)  # the first call builds it

    # In [8]: Bidirectional RNN
    bidi = rnnkit.Sequential()
    bidi.add(Bidirectional(SimpleRNN(hidden_size, return_sequences=True),
                           input_shape=(timesteps, input_dim)))
    bidi_out = _describe(bidi, x, say)
    forward, backward = bidi.layers[0].forward_layer, bidi.layers[0].backward_layer
    with torch.no_grad():
        # the backward copy (go_backwards=True) reads the steps last to first and returns its
        # outputs in that order; Bidirectional flips them back into time order
        by_hand = np.concatenate([forward(x).numpy(), backward(x).numpy()[:, ::-1]], axis=-1)

    # In [9]: Deep Bidirectional RNN
    deep_bidi = rnnkit.Sequential()
    deep_bidi.add(Bidirectional(SimpleRNN(hidden_size, return_sequences=True),
                                input_shape=(timesteps, input_dim)))
    for _ in range(3):
        deep_bidi.add(Bidirectional(SimpleRNN(hidden_size, return_sequences=True)))
    deep_bidi_out = _describe(deep_bidi, x, say)

    return {"x": x, "deep_built_before_call": built_before_call, "deep": deep_out,
            "bidi": bidi_out, "bidi_by_hand": by_hand, "deep_bidi": deep_bidi_out}


if __name__ == "__main__":
    main()
