"""Seed 002, "Keras RNN": parameter counts and output shapes of SimpleRNN(3).

    SimpleRNN(3, input_shape=(2, 10))                          -> (None, 3),    42 params
    SimpleRNN(3, batch_input_shape=(8, 2, 10))                 -> (8, 3),       42 params
    SimpleRNN(3, batch_input_shape=(8, 2, 10), return_sequences=True) -> (8, 2, 3), 42 params

42 = 10*3 (kernel) + 3*3 (recurrent kernel) + 3 (bias): the weights are shared by every time
step, so the sequence length (2) does not count.

Run: ``python examples/04_param_counts.py``.
"""

from __future__ import annotations

from typing import Any

import rnnkit
from rnnkit.layers import SimpleRNN


def main(verbose: bool = True) -> dict[str, Any]:
    say = print if verbose else (lambda *args, **kwargs: None)
    results = []
    for kwargs in [
        {"input_shape": (2, 10)},                                   # In [1]
        {"batch_input_shape": (8, 2, 10)},                          # In [2]
        {"batch_input_shape": (8, 2, 10), "return_sequences": True},  # In [3]
    ]:
        model = rnnkit.Sequential()
        model.add(SimpleRNN(3, **kwargs))
        summary: list[str] = []
        model.summary(print_fn=summary.append)
        say(summary[0])
        results.append({"kwargs": kwargs, "count_params": model.count_params(),
                        "output_shape": model.output_shape, "summary": summary[0]})
    return {"models": results}


if __name__ == "__main__":
    main()
