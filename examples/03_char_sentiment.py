"""Seed 001, second half: many-to-one character-level sentiment with a masked SimpleRNN.

    words = ['good', 'bad', 'worse', 'so good'], y = [1, 0, 0, 1]
    char_set = ['<pad>'] + sorted(set(''.join(words)))       # id 0 is the padding
    x = pad_sequences(ids, maxlen=10, padding='post', truncating='post')
    Embedding(11, 11, trainable=False, mask_zero=True, input_length=10,
              embeddings_initializer=Constant(np.eye(11)))    # a frozen one-hot lookup
    SimpleRNN(10) -> Dense(2)                                 # 363 params, 121 frozen

The seed stops at ``model.summary()``; as in the lecture it comes from (TF 2 "deep learning
zero to all"), the model is then trained with Adam(0.01) on the logits
(``SparseCategoricalCrossentropy(from_logits=True)``), batch 2, 30 epochs, and classifies all
four words. ``mask_zero=True`` makes the SimpleRNN skip padded steps, so padding the same words
to 15 steps, or at the front, gives the same predictions.

Run: ``python examples/03_char_sentiment.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit.data import pad_sequences
from rnnkit.initializers import Constant
from rnnkit.layers import Dense, Embedding, SimpleRNN

words = ["good", "bad", "worse", "so good"]
y_data = [1, 0, 0, 1]
max_sequence = 10
hidden_size = 10
num_classes = 2


def main(seed: int = 0, epochs: int = 30, verbose: bool = True) -> dict[str, Any]:
    torch.manual_seed(seed)
    say = print if verbose else (lambda *args, **kwargs: None)

    char_set = ["<pad>"] + sorted(list(set("".join(words))))
    idx2char = {idx: char for idx, char in enumerate(char_set)}
    char2idx = {char: idx for idx, char in enumerate(char_set)}
    say(char_set, idx2char, char2idx, sep="\n")

    ids = [[char2idx.get(char) for char in word] for word in words]
    lengths = [len(word) for word in ids]
    say(ids, lengths, sep="\n")
    x_data = pad_sequences(sequences=ids, maxlen=max_sequence, padding="post",
                           truncating="post")
    say(x_data)

    input_dim = output_dim = len(char2idx)
    one_hot = np.eye(len(char2idx))

    def create_m2o_model() -> rnnkit.Sequential:
        model = rnnkit.Sequential()
        model.add(Embedding(input_dim=input_dim, output_dim=output_dim, trainable=False,
                            mask_zero=True, input_length=max_sequence,
                            embeddings_initializer=Constant(one_hot)))
        model.add(SimpleRNN(units=hidden_size))
        model.add(Dense(units=num_classes))
        return model

    model = create_m2o_model()
    summary: list[str] = []
    model.summary(print_fn=summary.append)
    say(summary[0])
    counts = {
        "total": model.count_params(),
        "trainable": sum(w.numel() for w in model.trainable_weights),
        "non_trainable": sum(w.numel() for w in model.non_trainable_weights),
    }

    model.compile(optimizer=rnnkit.optimizers.Adam(learning_rate=0.01),
                  loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x_data, np.array(y_data), epochs=epochs, batch_size=2, verbose=0)
    logits = model.predict(x_data, verbose=0)
    predicted = logits.argmax(-1)
    for word, label in zip(words, predicted):
        say(f"{word!r}: {'positive' if label else 'negative'}")

    # the masked model ignores padding: more zeros after, or zeros in front, change nothing
    longer = pad_sequences(ids, maxlen=15, padding="post")
    in_front = pad_sequences(ids, maxlen=max_sequence, padding="pre")
    with torch.no_grad():
        logits_longer = model(longer).numpy()
        logits_in_front = model(in_front).numpy()

    return {
        "char_set": char_set,
        "x_data": x_data,
        "counts": counts,
        "summary": summary[0],
        "losses": history.history["loss"],
        "accuracy": history.history["accuracy"],
        "logits": logits,
        "predicted": predicted,
        "labels": np.array(y_data),
        "logits_longer_padding": logits_longer,
        "logits_pre_padding": logits_in_front,
        "embedding_after_fit": model.layers[0].get_weights()[0],
        "one_hot": one_hot,
    }


if __name__ == "__main__":
    main()
