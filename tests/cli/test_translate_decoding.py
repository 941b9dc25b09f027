"""Translate decoding with the decoder's state carried (rnnkit.cli.tasks.translate.StepDecoder):
the same logits and outputs as running the whole model on the growing prefix, one decoder step
per output character, batched beam search; the target cap, per-input errors and the warning
for inputs longer than any training source, through ``rnnkit translate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.cli.tasks.translate import (
    END,
    PAD,
    START,
    StepDecoder,
    _decode_ids,
    _source_ids,
    beam_decode,
    greedy_decode,
)
from rnnkit.models import load_model


def rnnkit(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _no_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_NO_EXTENSION", "1")


@pytest.fixture(scope="module", params=["lstm-attention", "gru"])
def run(request, tmp_path_factory):
    """A small trained translate run: LSTM with attention, or GRU without."""
    cell, *attention = request.param.split("-")
    out = tmp_path_factory.mktemp("translate") / "run"
    code, stdout, stderr = rnnkit("train", "--quiet", "--task", "translate", "--samples", 400,
                                  "--epochs", 3, "--units", 16, "--cell", cell,
                                  *(["--attention"] if attention else []), "--out", out)
    assert code == 0, stdout + stderr
    model = load_model(out / "model.rnnkit")
    preprocessing = json.loads((out / "preprocessing.json").read_text(encoding="utf-8"))
    return out, model, preprocessing


SOURCES = ["7 June 1999", "1999년 6월 7일", "07/06/1999", "3 March 2021", "12 de mayo de 2004",
           "May 12, 2004", "31.12.1980"]


def quadratic_greedy(model, preprocessing, sources):
    """The decoder this module replaced: the whole model on the growing prefix, every step."""
    x = _source_ids(preprocessing, sources)
    prefix = np.full((len(sources), 1), START, dtype=np.int64)
    done = np.zeros(len(sources), dtype=bool)
    for _ in range(int(preprocessing["target_length"])):
        logits = np.asarray(model.predict([x, prefix], batch_size=256, verbose=0))
        logits[:, -1, [PAD, START]] = -np.inf
        nxt = logits[:, -1].argmax(-1)
        nxt[done] = END
        done |= nxt == END
        prefix = np.concatenate([prefix, nxt[:, None]], axis=1)
        if done.all():
            break
    return [_decode_ids(preprocessing, row[1:]) for row in prefix]


def quadratic_beam(model, preprocessing, source, beam):
    """The replaced beam search: one source, the whole model on every prefix, every step."""
    x = _source_ids(preprocessing, [source])
    beams, finished = [([START], 0.0)], []
    for _ in range(int(preprocessing["target_length"])):
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


def test_stepped_logits_equal_the_whole_models(run):
    """Teacher-forced: the logits of every step of StepDecoder equal the model's on the whole
    target sequence (float32 tolerance)."""
    _, model, preprocessing = run
    x = _source_ids(preprocessing, SOURCES)
    rng = np.random.default_rng(0)
    target = rng.integers(3, len(preprocessing["target_chars"]) + 3, size=(len(SOURCES), 11))
    target[:, 0] = START
    whole = np.asarray(model.predict([x, target], verbose=0))  # (N, 11, V)
    decoder = StepDecoder(model)
    encoded, mask, states = decoder.start(x)
    rows = np.arange(len(SOURCES))
    for t in range(target.shape[1]):
        logits, states = decoder.step((encoded, mask), rows, target[:, t], states)
        np.testing.assert_allclose(logits, whole[:, t], rtol=1e-4, atol=1e-5, err_msg=f"step {t}")


def test_greedy_equals_the_quadratic_decoder(run):
    _, model, preprocessing = run
    new = greedy_decode(model, preprocessing, SOURCES)
    assert new == quadratic_greedy(model, preprocessing, SOURCES)
    assert greedy_decode(model, preprocessing, SOURCES, batch_size=3) == new
    assert all(new), new  # every source gets characters, not an empty string


@pytest.mark.parametrize("beam", [1, 3])
def test_batched_beam_search_equals_the_one_source_search(run, beam):
    _, model, preprocessing = run
    batched = beam_decode(model, preprocessing, SOURCES, beam)
    assert len(batched) == len(SOURCES)
    for source, got in zip(SOURCES, batched):
        want = quadratic_beam(model, preprocessing, source, beam)
        assert [t for t, _ in got] == [t for t, _ in want], source
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4,
                                   atol=1e-4)
    if beam == 1:
        assert [r[0][0] for r in batched] == greedy_decode(model, preprocessing, SOURCES)


def test_decoding_takes_one_decoder_step_per_output_character(run):
    """The decoder layer is run on one step per call, once per output character: L
    characters cost L decoder steps (the replaced decoder ran L (L + 1) / 2)."""
    _, model, preprocessing = run
    steps = []
    original = StepDecoder.__init__

    def counting(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.decoder.register_forward_pre_hook(
            lambda layer, inputs: steps.append(inputs[0].shape[1]))

    StepDecoder.__init__ = counting
    try:
        for limit in (4, 8, 16):
            steps.clear()
            capped = {**preprocessing, "target_length": limit}
            never_ends = ["7 June 1999"]  # END forbidden below: every step is taken
            out = greedy_decode(_NoEnd(model), capped, never_ends)
            assert steps == [1] * limit, (limit, steps)
            assert len(out[0]) == limit
    finally:
        StepDecoder.__init__ = original


class _NoEnd:
    """The model, with the output layer never choosing the end token (so a decode runs to its
    length limit)."""

    def __init__(self, model):
        self.model = model

    def get_layer(self, name):
        layer = self.model.get_layer(name)
        if name != "logits":
            return layer

        def logits(x):
            out = layer(x).clone()
            out[..., END] = -1e9
            return out

        return logits

    @property
    def layers(self):
        return self.model.layers


def test_translate_reports_a_bad_input_and_translates_the_others(run):
    out, model, preprocessing = run
    good = ["7 June 1999", "3 March 2021"]
    code, stdout, stderr = rnnkit("translate", out, good[0], "3 March 2021 ☃", good[1])
    assert code == 1
    lines = stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == good
    assert [line.split("\t")[1] for line in lines] == greedy_decode(model, preprocessing, good)
    errors = stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: input 2 ('3 March 2021 ☃')")
    assert "never saw in training: '☃'" in errors[0]
    code, stdout, stderr = rnnkit("translate", out, good[0], "", "--beam", 2)
    assert code == 1 and "error: input 2" in stderr and "empty" in stderr
    assert [line.split("\t")[2] for line in stdout.strip().splitlines()] == ["1", "2"]


def test_an_input_longer_than_any_training_source_is_warned_about(run):
    out, _, preprocessing = run
    long = ("7 June 1999 " * 50)[:600]
    code, stdout, stderr = rnnkit("translate", out, long, "7 June 1999")
    assert code == 0, stderr
    assert len(stdout.strip().splitlines()) == 2
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "input 1" in warnings[0] and "600 characters" in warnings[0]
    assert f"at most {preprocessing['source_length']}" in warnings[0]


@pytest.mark.parametrize("side", ["source", "target"])
def test_a_long_pair_is_refused_naming_the_cap(side, tmp_path):
    path = tmp_path / "pairs.tsv"
    pairs = [("cat", "tac")] * 20
    long = "x" * 10_000
    pairs[7] = (long, "tac") if side == "source" else ("cat", long)
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    code, _, stderr = rnnkit("train", "--quiet", "--task", "translate", "--tsv", path,
                             "--epochs", 1, "--out", tmp_path / "run")
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1, stderr
    assert f"the {side} of pair 8 has 10,000 characters" in lines[0]
    assert f"{side}s of at most 200 characters" in lines[0]
    assert not (tmp_path / "run").exists()


def test_overwrite_keeps_a_users_file_named_like_another_tasks_output(tmp_path):
    """The manifest lists what rnnkit wrote: a translate run never writes forecast.png, so a
    user's forecast.png in its folder is the user's, and --overwrite keeps it."""
    path = tmp_path / "pairs.tsv"
    words = ["cat", "dog", "bird", "fish", "horse", "cow", "sheep", "goat", "duck", "frog"]
    path.write_text("".join(f"{w}\t{w[::-1]}\n" for w in words * 2), encoding="utf-8")
    args = ["train", "--quiet", "--task", "translate", "--tsv", path, "--epochs", 1,
            "--units", 4, "--embedding-dim", 4, "--out", tmp_path / "run"]
    code, _, stderr = rnnkit(*args)
    assert code == 0, stderr
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in run.iterdir()
                                               if p.name != "manifest.json")
    (run / "forecast.png").write_bytes(b"my own plot")
    code, _, stderr = rnnkit(*args, "--overwrite")
    assert code == 0, stderr
    assert (run / "forecast.png").read_bytes() == b"my own plot"
    assert "forecast.png" not in json.loads((run / "manifest.json").read_text())["files"]
