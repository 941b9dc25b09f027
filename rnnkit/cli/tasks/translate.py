"""Translation with an encoder-decoder (many-to-many): source characters -> target characters.

Data: ``--tsv FILE`` of tab-separated pairs (``source<TAB>target[<TAB>anything]``, the format
of the public sentence-pair files), or the built-in corpus generated at run time,
``rnnkit.data.date_pairs`` (dates in 15 formats and five languages, Korean included ->
``YYYY-MM-DD``; ``--samples`` pairs, default 6000). Pairs are shuffled with the seed and split
80/10/10 into train/validation/test.

Model (functional, character level; ``0`` is padding, ``1`` start, ``2`` end of a target)::

    source ids -> Embedding(mask_zero) -> LSTM/GRU(return_sequences, return_state) -> states
    <start> + target -> Embedding -> LSTM/GRU(initial_state=states) -> [Attention] -> Dense

trained with teacher forcing (sparse cross-entropy on logits, masked past each target's end).
``--attention`` adds Luong attention over the encoder's outputs (the padded source steps get no
weight), concatenated to the decoder's output before the Dense layer.

Decoding (``evaluate`` and ``rnnkit translate``): greedy, or beam search (``--beam N``: keep the
N prefixes of highest summed log-probability; a finished one stops), both by running the
trained model on the growing target prefix, so the decoder is the trained one exactly.
Metrics on the test pairs: exact match (the whole target right) and character accuracy
(positions of the reference), next to the trivial baseline that always answers the most
common training target.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig
from ._base import Prepared, Report, Task, split_counts

__all__ = ["TranslateTask", "greedy_decode", "beam_decode", "load_pairs"]

FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_SAMPLES = 6000
PAD, START, END = 0, 1, 2
MAX_SOURCE = 200  # characters: longer sources are refused rather than silently cut


def load_pairs(config: RunConfig) -> tuple[list[tuple[str, str]], str]:
    if config.tsv:
        path = Path(config.tsv)
        if not path.is_file():
            raise FileNotFoundError(f"--tsv: file {path} does not exist")
        pairs = []
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                for number, row in enumerate(csv.reader(handle, delimiter="\t",
                                                        quoting=csv.QUOTE_NONE), 1):
                    if not row or not "".join(row).strip():
                        continue
                    if len(row) < 2 or not row[0] or not row[1]:
                        raise ValueError(f"--tsv: line {number} of {path} is not "
                                         "source<TAB>target")
                    pairs.append((row[0], row[1]))
        except UnicodeDecodeError as error:
            raise ValueError(f"--tsv: {path} is not UTF-8 text ({error})") from None
        if config.samples:
            pairs = pairs[: config.samples]
        source = str(path)
    else:
        from ...data import date_pairs

        pairs = date_pairs(config.samples or DEFAULT_SAMPLES, seed=config.seed)
        source = "built-in corpus (dates in 15 formats and 5 languages -> ISO)"
    if len(pairs) < 10:
        raise ValueError(f"{source} has {len(pairs)} pairs: at least 10 are needed for "
                         "train/validation/test")
    longest = max(len(s) for s, _ in pairs)
    if longest > MAX_SOURCE:
        raise ValueError(f"{source}: a source has {longest} characters; at most {MAX_SOURCE}")
    return pairs, source


def _encode(texts: list[str], index: dict[str, int], length: int, offset: int = 0,
            what: str = "source") -> np.ndarray:
    ids = np.zeros((len(texts), length), dtype=np.int64)
    for row, text in enumerate(texts):
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(f"the {what} {text!r} has characters the model never saw in "
                             f"training: {''.join(unknown)!r}")
        ids[row, offset:offset + len(text)] = [index[c] for c in text[:length - offset]]
    return ids


class TranslateTask(Task):
    name = "translate"
    datasets = ("dates",)
    # measured (seed 0, no attention, 6000 pairs, quiet 2-core AVX-512 machine): 8 epochs at
    # batch 64 reached 17.8% exact match, 10 at batch 32 60.3%, 30 at batch 32 96.8% (99.2% of
    # characters) in 16 s; with --attention, 10 epochs give 98.7%
    defaults = {"units": 64, "epochs": 30, "batch_size": 32, "lr": 3e-3, "embedding_dim": 32}

    def data_files(self, config: RunConfig) -> list[str]:
        return [config.tsv] if config.tsv else []

    def check(self, config: RunConfig) -> None:
        for option, value in (("--csv", config.csv), ("--npy", config.npy),
                              ("--labels", config.labels), ("--text", config.text),
                              ("--target", config.target), ("--window", config.window)):
            if value:
                raise ValueError(f"{option} is not used by --task translate (it reads --tsv "
                                 "FILE or generates dates)")
        if config.cell == "rnn":
            raise ValueError("--task translate uses --cell lstm or gru (a SimpleRNN encoder "
                             "forgets the start of the source)")
        if config.layers != 1 or config.bidirectional:
            raise ValueError("--task translate has one encoder and one decoder layer: --layers "
                             "and --bidirectional are not used")
        if config.dataset and config.dataset not in self.datasets:
            raise ValueError(f"--dataset {config.dataset!r} is not a translate dataset: choose "
                             f"from {', '.join(self.datasets)}")

    def prepare(self, config: RunConfig) -> Prepared:
        pairs, source = load_pairs(config)
        order = np.random.default_rng(config.seed).permutation(len(pairs))
        pairs = [pairs[i] for i in order]
        n_train, n_val, _ = split_counts(len(pairs), FRACTIONS)
        train = pairs[:n_train]
        source_chars = sorted({c for s, _ in train for c in s})
        target_chars = sorted({c for _, t in train for c in t})
        source_index = {c: i + 1 for i, c in enumerate(source_chars)}
        target_index = {c: i + 3 for i, c in enumerate(target_chars)}
        kept = [(s, t) for s, t in pairs if all(c in source_index for c in s)
                and all(c in target_index for c in t)]
        dropped = len(pairs) - len(kept)
        n_val_test = len(kept) - n_train
        parts = (kept[:n_train], kept[n_train:n_train + n_val_test // 2],
                 kept[n_train + n_val_test // 2:])
        source_length = max(len(s) for s, _ in kept)
        target_length = max(len(t) for _, t in kept) + 1  # + the end token

        def arrays(part: list[tuple[str, str]]) -> tuple[list[np.ndarray], np.ndarray]:
            x = _encode([s for s, _ in part], source_index, source_length)
            y = _encode([t for _, t in part], target_index, target_length, what="target")
            for row, (_, t) in enumerate(part):
                y[row, len(t)] = END
            decoder_in = np.concatenate([np.full((len(part), 1), START), y[:, :-1]], axis=1)
            decoder_in[decoder_in == END] = PAD
            return [x, decoder_in], y

        (x_train, y_train), (x_val, y_val), (x_test, y_test) = (arrays(p) for p in parts)
        preprocessing = {"task": "translate", "source_chars": source_chars,
                         "target_chars": target_chars, "source_length": source_length,
                         "target_length": target_length}
        described = (f"{source}: {len(kept)} pairs ({dropped} held-out pairs with characters "
                     f"unseen in training dropped), {len(source_chars)} source / "
                     f"{len(target_chars)} target characters; {len(parts[0])}/{len(parts[1])}/"
                     f"{len(parts[2])} train/val/test")
        return Prepared(x_train, y_train, x_val, y_val, x_test, y_test,  # type: ignore[arg-type]
                        preprocessing, described,
                        extra={"pairs": parts, "most_common": _most_common(parts[0])})

    def build_model(self, config: RunConfig, data: Prepared) -> Any:
        return build_translator(data.preprocessing, config.cell, config.units,
                                config.embedding_dim or 32, config.attention)

    def compile_args(self, config: RunConfig, data: Prepared) -> dict[str, Any]:
        from ...training import losses, optimizers

        return {"optimizer": optimizers.Adam(learning_rate=config.lr),
                # the target embedding's mask (mask_zero) leaves the padding out of the loss
                "loss": losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": ["accuracy"]}

    def evaluate(self, model: Any, config: RunConfig, data: Prepared,
                 plot_dir: Path | None) -> Report:
        test = data.extra["pairs"][2]
        sources = [s for s, _ in test]
        references = [t for _, t in test]
        predicted = greedy_decode(model, data.preprocessing, sources)
        exact, chars = match_scores(predicted, references)
        common = data.extra["most_common"]
        base_exact, base_chars = match_scores([common] * len(references), references)
        metrics = {"exact_match": exact, "char_accuracy": chars,
                   "baseline_exact_match": base_exact, "baseline_char_accuracy": base_chars,
                   "test_pairs": len(test),
                   "examples": [{"source": s, "reference": r, "translation": p}
                                for s, r, p in list(zip(sources, references, predicted))[:8]]}
        cell = config.cell.upper() + (" + attention" if config.attention else "")
        rows = [(f"rnnkit {cell} encoder-decoder", [f"{exact:.1%}", f"{chars:.1%}"]),
                (f"baseline (always {common!r})", [f"{base_exact:.1%}", f"{base_chars:.1%}"])]
        rows += [(f"  {s!r} -> {p!r}", ["ok" if p == r else f"want {r!r}", ""])
                 for s, r, p in list(zip(sources, references, predicted))[:5]]
        headline = (f"Test exact match {exact:.1%} (character accuracy {chars:.1%}) on "
                    f"{len(test)} held-out pairs vs {base_exact:.1%} ({base_chars:.1%}) for the "
                    "most common training target")
        return Report(metrics, ["exact match", "character accuracy"], rows, headline)


def _most_common(pairs: list[tuple[str, str]]) -> str:
    counts: dict[str, int] = {}
    for _, target in pairs:
        counts[target] = counts.get(target, 0) + 1
    return max(sorted(counts), key=lambda t: counts[t])


def match_scores(predicted: list[str], references: list[str]) -> tuple[float, float]:
    """(exact match rate, character accuracy over the references' positions)."""
    exact = float(np.mean([p == r for p, r in zip(predicted, references)]))
    right = sum(sum(a == b for a, b in zip(p, r)) for p, r in zip(predicted, references))
    total = sum(len(r) for r in references)
    return exact, right / max(total, 1)


def build_translator(preprocessing: dict[str, Any], cell: str, units: int, embedding_dim: int,
                     attention: bool) -> Any:
    """The functional encoder-decoder of the module docstring."""
    from ... import layers
    from ...layers import Input
    from ...models import Model

    recurrent = {"gru": layers.GRU, "lstm": layers.LSTM}[cell]
    source_vocab = len(preprocessing["source_chars"]) + 1
    target_vocab = len(preprocessing["target_chars"]) + 3
    source = Input(shape=(None,), dtype="int64", name="source")
    target = Input(shape=(None,), dtype="int64", name="target_in")
    embedded = layers.Embedding(source_vocab, embedding_dim, mask_zero=True,
                                name="source_embedding")(source)
    encoded, *states = recurrent(units, return_sequences=True, return_state=True,
                                 name="encoder")(embedded)
    target_embedded = layers.Embedding(target_vocab, embedding_dim, mask_zero=True,
                                       name="target_embedding")(target)
    decoded = recurrent(units, return_sequences=True, name="decoder")(
        target_embedded, initial_state=states if cell == "lstm" else states[0])
    if attention:
        context = layers.Attention(name="attention")([decoded, encoded])
        decoded = layers.Concatenate(name="with_context")([decoded, context])
    logits = layers.Dense(target_vocab, name="logits")(decoded)
    return Model([source, target], logits, name="translator")


def _source_ids(preprocessing: dict[str, Any], sources: list[str]) -> np.ndarray:
    index = {c: i + 1 for i, c in enumerate(preprocessing["source_chars"])}
    length = max(max(len(s) for s in sources), 1)
    return _encode(sources, index, length)


def _decode_ids(preprocessing: dict[str, Any], ids: Any) -> str:
    chars = preprocessing["target_chars"]
    out = []
    for i in ids:
        if i == END:
            break
        if i >= 3:
            out.append(chars[i - 3])
    return "".join(out)


def greedy_decode(model: Any, preprocessing: dict[str, Any], sources: list[str],
                  batch_size: int = 256) -> list[str]:
    """The most likely next character at each step, for every source at once."""
    x = _source_ids(preprocessing, sources)
    steps = int(preprocessing["target_length"])
    prefix = np.full((len(sources), 1), START, dtype=np.int64)
    done = np.zeros(len(sources), dtype=bool)
    for _ in range(steps):
        logits = np.asarray(model.predict([x, prefix], batch_size=batch_size, verbose=0))
        logits[:, -1, [PAD, START]] = -np.inf
        nxt = logits[:, -1].argmax(-1)
        nxt[done] = END
        done |= nxt == END
        prefix = np.concatenate([prefix, nxt[:, None]], axis=1)
        if done.all():
            break
    return [_decode_ids(preprocessing, row[1:]) for row in prefix]


def beam_decode(model: Any, preprocessing: dict[str, Any], source: str,
                beam: int) -> list[tuple[str, float]]:
    """The ``beam`` best translations of one source with their log-probabilities."""
    if beam < 1:
        raise ValueError(f"--beam must be >= 1, got {beam}")
    x = _source_ids(preprocessing, [source])
    steps = int(preprocessing["target_length"])
    beams: list[tuple[list[int], float]] = [([START], 0.0)]
    finished: list[tuple[list[int], float]] = []
    for _ in range(steps):
        if not beams:
            break
        prefixes = np.asarray([b[0] for b in beams], dtype=np.int64)
        logits = np.asarray(model.predict([np.repeat(x, len(beams), axis=0), prefixes],
                                          verbose=0), dtype=np.float64)[:, -1]
        logits[:, [PAD, START]] = -np.inf
        log_p = logits - logits.max(-1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
        candidates = [(ids + [int(k)], score + float(log_p[row, k]))
                      for row, (ids, score) in enumerate(beams)
                      for k in np.argsort(-log_p[row])[:beam]]
        candidates.sort(key=lambda c: -c[1])
        beams = []
        for ids, score in candidates[:beam]:
            (finished if ids[-1] == END else beams).append((ids, score))
        if len(finished) >= beam:
            break
    finished.extend(beams)
    finished.sort(key=lambda c: -c[1])
    return [(_decode_ids(preprocessing, ids[1:]), score) for ids, score in finished[:beam]]


def translate(model: Any, preprocessing: dict[str, Any], sources: list[str],
              beam: int = 1) -> list[list[tuple[str, float | None]]]:
    """``rnnkit translate``: for each source, its translation(s) (with scores for a beam)."""
    if preprocessing.get("task") != "translate":
        raise ValueError(f"this is a {preprocessing.get('task')} run: translate needs a run "
                         "trained with --task translate")
    if not sources or any(not s for s in sources):
        raise ValueError("give the text to translate, e.g. rnnkit translate RUN_DIR "
                         "\"3 March 2021\"")
    if beam == 1:
        return [[(t, None)] for t in greedy_decode(model, preprocessing, sources)]
    return [[(t, s) for t, s in beam_decode(model, preprocessing, text, beam)]
            for text in sources]
