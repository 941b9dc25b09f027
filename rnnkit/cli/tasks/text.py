"""Character-level language modelling: predict every next character (many-to-many).

Data: a UTF-8 text file (``--text FILE``) or the built-in corpus, Python standard-library
sources (``rnnkit.data.load_text_corpus``), cut to ``--max-chars`` characters (default 200,000
for the built-in corpus, so that a run takes minutes on a laptop CPU).

The text is encoded with a character :class:`~rnnkit.data.Vocabulary` (id 0 is the pad token,
never seen in text) and cut into consecutive sequences of ``window`` characters, each paired
with the same characters shifted by one::

    x[i] = ids[i*W : i*W + W]        y[i] = ids[i*W + 1 : i*W + W + 1]

The sequences are split in text order: 80% train, 10% validation, 10% test. The model is
``Embedding -> recurrent layers (return_sequences) -> Dense(vocabulary)`` trained with sparse
categorical cross-entropy on the logits. Baseline: a unigram model (the training text's
character frequencies, add-one smoothed) scored on the same test characters.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..config import RunConfig
from ._base import Prepared, Report, Task, recurrent_stack, split_counts

__all__ = ["TextTask", "load_text"]

FRACTIONS = (0.8, 0.1, 0.1)
BUILTIN_MAX_CHARS = 200_000


def load_text(config: RunConfig) -> tuple[str, str]:
    """The run's text and a description of where it came from."""
    if config.text:
        path = Path(config.text)
        if not path.exists():
            raise FileNotFoundError(f"--text: file {path} does not exist")
        if not path.is_file():
            raise ValueError(f"--text: {path} is not a file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"--text: {path} is not UTF-8 text ({e})") from None
        source = str(path)
        if config.max_chars:
            text = text[: config.max_chars]
    else:
        from ... import data

        text = data.load_text_corpus(max_chars=config.max_chars or BUILTIN_MAX_CHARS)
        source = "built-in corpus (Python standard-library sources)"
    if not text.strip():
        raise ValueError(f"the text ({source}) is empty: there is nothing to learn from")
    return text, source


class TextTask(Task):
    name = "text"
    datasets = ("stdlib",)
    defaults = {"units": 128, "epochs": 5, "batch_size": 32, "lr": 3e-3, "window": 64,
                "embedding_dim": 32}

    def check(self, config: RunConfig) -> None:
        for option, value in (("--csv", config.csv), ("--npy", config.npy),
                              ("--labels", config.labels), ("--target", config.target),
                              ("--date-column", config.date_column)):
            if value:
                raise ValueError(f"{option} is not used by --task text (it reads --text FILE)")
        if config.bidirectional:
            raise ValueError("--bidirectional cannot be used with --task text: a language model "
                             "predicts the next character, so it must not read the text after it")
        if config.horizon != 1:
            raise ValueError("--horizon is a forecast option")
        if config.dataset and config.dataset not in self.datasets:
            raise ValueError(f"--dataset {config.dataset!r} is not a text dataset: choose "
                             f"from {', '.join(self.datasets)}")

    def prepare(self, config: RunConfig) -> Prepared:
        from ...data import Vocabulary

        assert config.window is not None
        text, source = load_text(config)
        window = config.window
        vocab = Vocabulary.from_texts([text], level="char")
        ids = np.asarray(vocab.encode(text), dtype=np.int64)
        sequences = (len(ids) - 1) // window
        if sequences < 3:
            raise ValueError(f"the text ({source}) has {len(text)} characters: too short for "
                             f"train/validation/test sequences of --window {window} (needs at "
                             f"least {3 * window + 1})")
        starts = np.arange(sequences) * window  # (S,)
        x = ids[starts[:, None] + np.arange(window)]  # (S, W)
        y = ids[starts[:, None] + np.arange(window) + 1]  # (S, W)
        n_train, n_val, _ = split_counts(sequences, FRACTIONS)
        cut = [n_train, n_train + n_val]
        (x_train, x_val, x_test), (y_train, y_val, y_test) = np.split(x, cut), np.split(y, cut)
        preprocessing = {"task": "text", "window": window, "vocabulary": vocab.to_dict()}
        described = (f"{source}: {len(text):,} characters, {len(vocab) - 1} distinct; "
                     f"{len(x_train)}/{len(x_val)}/{len(x_test)} train/val/test sequences of "
                     f"{window}")
        return Prepared(x_train, y_train, x_val, y_val, x_test, y_test, preprocessing,
                        described, extra={"vocabulary": vocab})

    def build_model(self, config: RunConfig, data: Prepared) -> Any:
        from ... import layers
        from ...models import Sequential

        size = len(data.preprocessing["vocabulary"]["tokens"])
        # (None,) time steps: generate feeds contexts shorter than the training window.
        return Sequential([layers.Input(shape=(None,), dtype="int64"),
                           layers.Embedding(size, config.embedding_dim or 32),
                           *recurrent_stack(config, return_sequences=True),
                           layers.Dense(size)])

    def compile_args(self, config: RunConfig, data: Prepared) -> dict[str, Any]:
        from ...training import losses, optimizers

        return {"optimizer": optimizers.Adam(learning_rate=config.lr),
                "loss": losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": ["accuracy"]}

    def evaluate(self, model: Any, config: RunConfig, data: Prepared,
                 plot_dir: Path | None) -> Report:
        results = model.evaluate(data.x_test, data.y_test, batch_size=config.batch_size,
                                 verbose=0, return_dict=True)
        loss, accuracy = float(results["loss"]), float(results["accuracy"])
        unigram = unigram_cross_entropy(data.y_train, data.y_test,
                                        len(data.extra["vocabulary"]))
        bits, base_bits = loss / math.log(2), unigram / math.log(2)
        metrics = {"model_loss": loss, "model_bits_per_char": bits,
                   "model_perplexity": math.exp(loss), "model_accuracy": accuracy,
                   "unigram_loss": unigram, "unigram_bits_per_char": base_bits,
                   "unigram_perplexity": math.exp(unigram),
                   "test_characters": int(data.y_test.size)}
        from ..._kernels._cell_spec import spec

        cell = spec(config.cell).keras_class
        rows = [(f"rnnkit {cell}", [f"{bits:.3f}", f"{math.exp(loss):.2f}", f"{accuracy:.1%}"]),
                ("unigram (character frequencies)",
                 [f"{base_bits:.3f}", f"{math.exp(unigram):.2f}", "-"])]
        headline = (f"Test {bits:.2f} bits/character (perplexity {math.exp(loss):.2f}) vs "
                    f"{base_bits:.2f} for character frequencies alone")
        return Report(metrics, ["bits/char", "perplexity", "next-char accuracy"], rows,
                      headline)


def unigram_cross_entropy(train: NDArray[np.int64], test: NDArray[np.int64],
                          vocabulary_size: int) -> float:
    """Mean -log p(c) over the test characters, p from add-one smoothed training counts."""
    counts = np.bincount(train.ravel(), minlength=vocabulary_size)[1:] + 1.0  # no pad id
    log_p = np.log(counts / counts.sum())
    return float(-np.mean(log_p[test.ravel() - 1]))
