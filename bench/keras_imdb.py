"""keras-io's ``bidirectional_lstm_imdb`` on Keras 3 (torch backend, CPU), with and without
rnnkit's kernels underneath (``rnnkit._keras_adapter``, switched on by ``rnnkit.accelerate()``).

The example's model and training: Embedding(20000, 128) -> Bidirectional(LSTM(64,
return_sequences=True)) -> Bidirectional(LSTM(64)) -> Dense(1, sigmoid), Adam, binary
cross-entropy, batch 32, reviews padded to 200 tokens. The data are synthetic with IMDB's
shapes (random review lengths, token ids below 20000, zero padding in front as
``pad_sequences`` pads; no downloads). One model is timed: each round fits ``--batches``
batches with the adapter off, then on (and predicts, each way); the report is the median time
per training step of each and their ratio. Needs an environment with Keras 3 (not
rnnkit's dev environment)::

    KERAS_BACKEND=torch python bench/keras_imdb.py [--batches 8] [--rounds 5] [--threads N]

Run it on a quiet machine for numbers; on a busy one only the ratio means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import keras  # noqa: E402
from rnnkit import _keras_adapter  # noqa: E402

MAX_FEATURES, MAXLEN, BATCH = 20000, 200, 32


def imdb_like(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (samples, 200) zero-padded in front, as IMDB after pad_sequences, and labels.
    Review lengths follow IMDB's roughly (median ~170 words, many longer than 200)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(175), 0.7, samples).astype(int), 10, MAXLEN)
    x = np.zeros((samples, MAXLEN), dtype="int32")
    for row, length in enumerate(lengths):
        x[row, MAXLEN - length:] = rng.integers(1, MAX_FEATURES, length)
    return x, rng.integers(0, 2, (samples, 1)).astype("float32")


def build_model() -> keras.Model:
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(MAX_FEATURES, 128)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    assert keras.backend.backend() == "torch", "set KERAS_BACKEND=torch"
    x, y = imdb_like(args.batches * BATCH)
    keras.utils.set_random_seed(0)
    model = build_model()
    times: dict[str, list[float]] = {f"{what} {mode}": [] for what in ("fit", "predict")
                                     for mode in ("keras", "rnnkit")}

    def fit() -> None:
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)

    def predict() -> None:
        model.predict(x, batch_size=BATCH, verbose=0)

    for round_ in range(args.rounds + 1):  # round 0 warms both up, untimed
        for mode in ("keras", "rnnkit"):
            if mode == "rnnkit":
                assert _keras_adapter.install()
            try:
                fit_s, predict_s = _timed(fit), _timed(predict)
            finally:
                _keras_adapter.uninstall()
            if round_:
                times[f"fit {mode}"].append(fit_s / args.batches)
                times[f"predict {mode}"].append(predict_s / args.batches)
            print(f"round {round_}{' (warm-up)' if not round_ else ''} {mode:6s}: fit "
                  f"{fit_s / args.batches * 1e3:.0f} ms/step, predict "
                  f"{predict_s / args.batches * 1e3:.0f} ms/step", flush=True)
    report = {name: statistics.median(values) for name, values in times.items()}
    report["fit speedup"] = report["fit keras"] / report["fit rnnkit"]
    report["predict speedup"] = report["predict keras"] / report["predict rnnkit"]
    report.update(keras=keras.__version__, torch=torch.__version__,
                  threads=torch.get_num_threads(), batches=args.batches, rounds=args.rounds)
    for name in ("fit", "predict"):
        print(f"{name:8s} per step: Keras {report[f'{name} keras'] * 1e3:8.1f} ms   "
              f"rnnkit {report[f'{name} rnnkit'] * 1e3:8.1f} ms   "
              f"{report[f'{name} speedup']:.2f}x")
    print(f"keras {keras.__version__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
