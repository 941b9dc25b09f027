"""Seed 000: predict the next value of 0.0, 0.1, 0.2, ... with SimpleRNN(10) + Dense(1).

The seed's Keras cells, one for one, on rnnkit::

    rnn1 = SimpleRNN(units=1, activation='tanh', return_sequences=True)   # In [1]
    X, Y: six windows of four values and the value after each            # In [4]
    model = Sequential([SimpleRNN(10, input_shape=[4, 1]), Dense(1)])    # In [5]: 131 params
    model.compile(optimizer='adam', loss='mse'); model.summary()
    model.fit(X, Y, epochs=100, verbose=0); model.predict(X)             # In [6]
    model.predict(on two windows outside the training range)             # In [9]

Run: ``python examples/01_next_value_regression.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit.layers import Dense, SimpleRNN


def make_data() -> tuple[np.ndarray, np.ndarray]:
    """In [4]: X[i] = [[i/10], [(i+1)/10], [(i+2)/10], [(i+3)/10]], Y[i] = (i+4)/10."""
    X, Y = [], []
    for i in range(6):
        lst = list(range(i, i + 4))
        X.append([[c / 10] for c in lst])
        Y.append((i + 4) / 10)
    return np.array(X), np.array(Y)


def main(seed: int = 1, epochs: int = 100, verbose: bool = True) -> dict[str, Any]:
    torch.manual_seed(seed)
    say = print if verbose else (lambda *args, **kwargs: None)

    # In [1]: a SimpleRNN layer in one line; return_sequences=True gives every step's output
    rnn1 = SimpleRNN(units=1, activation="tanh", return_sequences=True)
    rnn1_out = rnn1(np.zeros((1, 4, 1), dtype=np.float32))

    X, Y = make_data()
    for i in range(len(X)):
        say(X[i].ravel(), Y[i])

    # In [5]: input_shape is (timesteps, input_dim)
    model = rnnkit.Sequential([
        SimpleRNN(units=10, return_sequences=False, input_shape=[4, 1]),
        Dense(1),
    ])
    model.compile(optimizer="adam", loss="mse")
    summary: list[str] = []
    model.summary(print_fn=summary.append)
    say(summary[0])

    # In [6]
    history = model.fit(X, Y, epochs=epochs, verbose=0)
    predictions = model.predict(X, verbose=0)
    say(predictions)

    # In [9]: windows far outside the training data
    outside = [np.array([[[1.3], [1.4], [1.5], [1.6]]]),
               np.array([[[-11.1], [-11.0], [-10.9], [-10.8]]])]
    extrapolations = [model.predict(x, verbose=0) for x in outside]
    for value in extrapolations:
        say(value)

    return {
        "rnn1_output_shape": tuple(rnn1_out.shape),
        "X": X,
        "Y": Y,
        "count_params": model.count_params(),
        "summary": summary[0],
        "losses": history.history["loss"],
        "predictions": predictions,
        "extrapolations": extrapolations,
    }


if __name__ == "__main__":
    main()
