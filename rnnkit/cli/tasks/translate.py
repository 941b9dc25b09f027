"""Translation with an encoder-decoder (many-to-many): source characters -> target characters.

Data: ``--tsv FILE`` of tab-separated pairs (``source<TAB>target[<TAB>anything]``, the format
of the public sentence-pair files), or the built-in corpus generated at run time,
``rnnkit.data.date_pairs`` (dates in 15 formats and five languages, Korean included ->
``YYYY-MM-DD``; ``--samples`` pairs, default 6000). Pairs are shuffled with the seed and split
80/10/10 into train/validation/test.

Model (functional, character level; ``0`` is padding, ``1`` start, ``2`` end of a target)::

    source ids -> Embedding(mask_zero) -> LSTM/GRU/...(return_sequences, return_state) -> states
    <start> + target -> Embedding -> LSTM/GRU/...(initial_state=states) -> [Attention] -> Dense

trained with teacher forcing (sparse cross-entropy on logits, masked past each target's end).
``--attention`` adds Luong attention over the encoder's outputs (the padded source steps get no
weight), concatenated to the decoder's output before the Dense layer.

Decoding (``evaluate`` and ``rnnkit translate``): greedy, or beam search (``--beam N``: keep the
N prefixes of highest summed log-probability; a finished one stops), both with the trained
layers run one decoder step per output character, the decoder's state carried between steps
(:class:`StepDecoder`), every source (and every beam) of a call in one batch. Targets are at
most ``MAX_TARGET`` characters, so decoding is bounded.
Metrics on the test pairs: exact match (the whole target right) and character accuracy
(positions of the reference), next to the trivial baseline that always answers the most
common training target.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig
from ..fields import check_int
from ._base import Prepared, Report, Task, split_counts

__all__ = ["StepDecoder", "Translation", "TranslateTask", "beam_decode", "greedy_decode",
           "load_pairs", "translate"]

FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_SAMPLES = 6000
PAD, START, END = 0, 1, 2
MAX_SOURCE = 200  # characters: longer sources are refused rather than silently cut
# characters: decoding takes one decoder step per target character (and the end token), so a
# target length bounds the work of every translation
MAX_TARGET = 200


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
    for what, limit, side in (("source", MAX_SOURCE, 0), ("target", MAX_TARGET, 1)):
        lengths = [len(pair[side]) for pair in pairs]
        longest = max(lengths)
        if longest > limit:
            where = f"pair {lengths.index(longest) + 1}"
            raise ValueError(f"{source}: the {what} of {where} has {longest:,} characters; "
                             f"--task translate takes {what}s of at most {limit} characters")
    return pairs, source


def _check_chars(name: str, chars: list[str]) -> None:
    if not chars:
        raise ValueError(f"{name!r} must list at least one character, got []")
    if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
        raise ValueError(f"{name!r} must be distinct single characters, got {chars!r:.60}")


@dataclass
class TranslatePreprocessing:
    """A translate run's ``preprocessing.json``: the characters (source id i + 1 is
    ``source_chars[i]``, target id i + 3 is ``target_chars[i]``), the longest training source
    and the decoding limit (the longest training target + its end token)."""

    task: str
    source_chars: list[str]
    target_chars: list[str]
    source_length: int
    target_length: int

    def __post_init__(self) -> None:
        if self.task != "translate":
            raise ValueError(f"'task' must be 'translate' (the run's task), got {self.task!r}")
        _check_chars("source_chars", self.source_chars)
        _check_chars("target_chars", self.target_chars)
        check_int("source_length", self.source_length, 1, MAX_SOURCE)
        check_int("target_length", self.target_length, 2, MAX_TARGET + 1)


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
    preprocessing_file = TranslatePreprocessing
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
            raise ValueError("--task translate uses a gated cell, e.g. --cell lstm or gru (a "
                             "SimpleRNN encoder forgets the start of the source)")
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

    def sizes(self, preprocessing: dict[str, Any]) -> dict[str, tuple[str, int]]:
        return {"source_chars": ("source_embedding", len(preprocessing["source_chars"]) + 1),
                "target_chars": ("logits", len(preprocessing["target_chars"]) + 3)}

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
    from ..._kernels._cell_spec import spec
    from ...layers import Input
    from ...models import Model

    recurrent = getattr(layers, spec(cell).keras_class)
    one_state = len(spec(cell).states) == 1
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
        target_embedded, initial_state=states[0] if one_state else states)
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


class StepDecoder:
    """The trained translator run one decoder step at a time, its state carried between steps.

    ``start`` runs the encoder once over the sources; ``step`` feeds one target character per
    row through the target embedding, one step of the decoder (a copy of the trained decoder
    layer that also returns its states), the attention over that row's encoder outputs and the
    output layer. Decoding L characters thus costs L decoder steps, where running the whole
    model on the growing prefix costs L (L + 1) / 2. The layers and weights are the trained
    model's, so the logits are the model's own.
    """

    def __init__(self, model: Any) -> None:
        self.source_embedding = model.get_layer("source_embedding")
        self.encoder = model.get_layer("encoder")
        self.target_embedding = model.get_layer("target_embedding")
        trained = model.get_layer("decoder")
        self.decoder = type(trained).from_config({**trained.get_config(), "return_state": True})
        self.decoder.maybe_build((1, 1, self.target_embedding.output_dim))
        self.decoder.load_state_dict(trained.state_dict())
        self.decoder.to(next(trained.parameters()).device)
        names = {layer.name for layer in model.layers}
        self.attention = model.get_layer("attention") if "attention" in names else None
        self.logits = model.get_layer("logits")
        self.device = next(trained.parameters()).device

    def start(self, source_ids: np.ndarray) -> tuple[Any, Any, list[Any]]:
        """(encoder outputs (N, S, U), source mask (N, S), decoder states [(N, U), ...])."""
        import torch

        with torch.no_grad():
            ids = torch.as_tensor(source_ids, device=self.device)
            mask = self.source_embedding.compute_mask(ids)
            encoded, *states = self.encoder(self.source_embedding(ids), mask=mask,
                                            training=False)
        return encoded, mask, list(states)

    def step(self, memory: tuple[Any, Any], rows: np.ndarray, tokens: np.ndarray,
             states: list[Any]) -> tuple[np.ndarray, list[Any]]:
        """Logits (R, target vocabulary) of the next character after ``tokens`` (R,), and the
        new states; row r reads the encoder outputs of source ``rows[r]``."""
        import torch

        encoded, source_mask = memory
        with torch.no_grad():
            token = torch.as_tensor(tokens, device=self.device).reshape(-1, 1)  # (R, 1)
            mask = self.target_embedding.compute_mask(token)
            output, *states = self.decoder(self.target_embedding(token), initial_state=states,
                                           mask=mask, training=False)  # (R, 1, U)
            if self.attention is not None:
                picked = torch.as_tensor(rows, device=self.device)
                context = self.attention(
                    [output, encoded[picked]],
                    mask=[mask, None if source_mask is None else source_mask[picked]],
                    training=False)
                output = torch.cat([output, context], dim=-1)
            logits = self.logits(output)[:, 0]
        return logits.float().cpu().numpy(), list(states)


def _pick(states: list[Any], rows: Any) -> list[Any]:
    import torch

    index = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=states[0].device)
    return [s.index_select(0, index) for s in states]


def greedy_decode(model: Any, preprocessing: dict[str, Any], sources: list[str],
                  batch_size: int = 256) -> list[str]:
    """The most likely next character at each step, ``batch_size`` sources at a time."""
    decoder = StepDecoder(model)
    x = _source_ids(preprocessing, sources)
    steps = int(preprocessing["target_length"])
    out: list[str] = []
    for first in range(0, len(sources), batch_size):
        chunk = x[first:first + batch_size]
        encoded, source_mask, states = decoder.start(chunk)
        rows = np.arange(len(chunk))
        tokens = np.full(len(chunk), START, dtype=np.int64)
        produced = []
        done = np.zeros(len(chunk), dtype=bool)
        for _ in range(steps):
            logits, states = decoder.step((encoded, source_mask), rows, tokens, states)
            logits[:, [PAD, START]] = -np.inf
            tokens = logits.argmax(-1)
            tokens[done] = END
            done |= tokens == END
            produced.append(tokens)
            if done.all():
                break
        ids = np.stack(produced, axis=1)  # (n, steps taken)
        out += [_decode_ids(preprocessing, row) for row in ids]
    return out


def beam_decode(model: Any, preprocessing: dict[str, Any], sources: list[str],
                beam: int) -> list[list[tuple[str, float]]]:
    """The ``beam`` best translations of each source with their log-probabilities, all
    sources' beams decoded as one batch.

    Per source: every step extends each live prefix by its ``beam`` most likely characters,
    keeps the ``beam`` best of these by summed log-probability, and retires the ones that end;
    a source stops when ``beam`` have ended (or after ``target_length`` steps).
    """
    if beam < 1:
        raise ValueError(f"--beam must be >= 1, got {beam}")
    decoder = StepDecoder(model)
    x = _source_ids(preprocessing, sources)
    steps = int(preprocessing["target_length"])
    encoded, source_mask, states = decoder.start(x)
    live: list[list[tuple[list[int], float]]] = [[([START], 0.0)] for _ in sources]
    finished: list[list[tuple[list[int], float]]] = [[] for _ in sources]
    rows = np.arange(len(sources))  # the source of each live prefix, in order
    for _ in range(steps):
        if len(rows) == 0:
            break
        tokens = np.asarray([ids[-1] for group in live for ids, _ in group], dtype=np.int64)
        logits, states = decoder.step((encoded, source_mask), rows, tokens, states)
        logits = logits.astype(np.float64)
        logits[:, [PAD, START]] = -np.inf
        log_p = logits - logits.max(-1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
        parents, next_rows, row = [], [], 0
        for source, group in enumerate(live):
            candidates = [(ids + [int(k)], score + float(log_p[row + i, k]), row + i)
                          for i, (ids, score) in enumerate(group)
                          for k in np.argsort(-log_p[row + i])[:beam]]
            row += len(group)
            candidates.sort(key=lambda c: -c[1])
            kept = []
            for ids, score, parent in candidates[:beam]:
                if ids[-1] == END:
                    finished[source].append((ids, score))
                else:
                    kept.append((ids, score))
                    parents.append(parent)
            if len(finished[source]) >= beam:
                finished[source].extend(kept)
                parents = parents[:len(parents) - len(kept)]
                kept = []
            live[source] = kept
            next_rows += [source] * len(kept)
        rows = np.asarray(next_rows, dtype=np.int64)
        if len(rows):
            states = _pick(states, parents)
    results = []
    for source in range(len(sources)):
        ended = sorted(finished[source] + live[source], key=lambda c: -c[1])
        results.append([(_decode_ids(preprocessing, ids[1:]), score)
                        for ids, score in ended[:beam]])
    return results


@dataclass
class Translation:
    """One input of ``rnnkit translate``: its translations (best first, with log-probabilities
    for a beam), or the error that kept it from being translated, and a warning if any."""

    source: str
    results: list[tuple[str, float | None]]
    error: str | None = None
    warning: str | None = None


def translate(model: Any, preprocessing: dict[str, Any], sources: list[str],
              beam: int = 1) -> list[Translation]:
    """``rnnkit translate``: each source translated, or an error for that source alone (the
    others are translated); a warning for a source longer than any the model was trained on."""
    if preprocessing.get("task") != "translate":
        raise ValueError(f"this is a {preprocessing.get('task')} run: translate needs a run "
                         "trained with --task translate")
    if not sources:
        raise ValueError("give the text to translate, e.g. rnnkit translate RUN_DIR "
                         "\"3 March 2021\"")
    index = {c: i + 1 for i, c in enumerate(preprocessing["source_chars"])}
    longest = int(preprocessing["source_length"])
    out = []
    for text in sources:
        item = Translation(text, [])
        unknown = "".join(sorted({c for c in text if c not in index}))
        if not text:
            item.error = "the text is empty: nothing to translate"
        elif unknown:
            item.error = f"it has characters the model never saw in training: {unknown!r}"
        elif len(text) > longest:
            item.warning = (f"it has {len(text)} characters, more than any source the model "
                            f"was trained on (at most {longest}): its translation is unreliable")
        out.append(item)
    good = [item for item in out if item.error is None]
    if good:
        texts = [item.source for item in good]
        if beam == 1:
            for item, text in zip(good, greedy_decode(model, preprocessing, texts)):
                item.results = [(text, None)]
        else:
            for item, ranked in zip(good, beam_decode(model, preprocessing, texts, beam)):
                item.results = list(ranked)
    return out
