"""Every JSON file rnnkit reads back from a run folder is checked on every read: each field of
run.json, manifest.json, metrics.json and each task's preprocessing.json, edited to a wrong
type, deleted, or (where a field has a range) put out of range, gives exit code 1 and one
``error:`` line naming the file and the field."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.cli.config import RunConfig
from rnnkit.cli.run_dir import ManifestFile
from rnnkit.cli.run_state import MetricsFile
from rnnkit.cli.tasks import TASKS


@pytest.fixture(autouse=True)
def _no_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_NO_EXTENSION", "1")


def rnnkit(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def one_error(*args: object) -> str:
    code, stdout, stderr = rnnkit(*args)
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), (code, stderr)
    return lines[0]


def _data(task: str, folder: Path) -> list[object]:
    rng = np.random.default_rng(0)
    if task == "forecast":
        path = folder / "series.csv"
        path.write_text("value\n" + "".join(f"{np.sin(i / 3):.4f}\n" for i in range(80)))
        return ["--csv", path, "--target", "value", "--window", 6]
    if task == "classify":
        x = rng.normal(size=(40, 5, 2)).astype(np.float32)
        np.save(folder / "x.npy", x)
        np.save(folder / "y.npy", (x[:, :, 0].sum(axis=1) > 0).astype(np.int64))
        return ["--npy", folder / "x.npy", "--labels", folder / "y.npy"]
    if task == "text":
        (folder / "t.txt").write_text("def add(a, b):\n    return a + b\n\n" * 8)
        return ["--text", folder / "t.txt", "--window", 16, "--embedding-dim", 4]
    words = ["cat", "dog", "bird", "fish", "horse", "cow", "sheep", "goat", "duck", "frog"]
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words * 3))
    return ["--tsv", folder / "pairs.tsv", "--embedding-dim", 4]


@pytest.fixture(scope="module", params=list(TASKS))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    out = folder / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNKIT_NO_EXTENSION", "1")
        code, _, stderr = rnnkit("train", "--quiet", "--task", request.param,
                                 *_data(request.param, folder), "--units", 4, "--epochs", 1,
                                 "--batch-size", 16, "--out", out)
    assert code == 0, stderr
    return out


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, typing.Any]]:
    """(dotted field name, declared type) of every field of a file's dataclass, nested ones
    included."""
    out = []
    for name, kind in typing.get_type_hints(cls).items():
        out.append((prefix + name, kind))
        if dataclasses.is_dataclass(kind):
            out += _leaves(kind, f"{prefix}{name}.")
    return out


def _wrong_type(kind: typing.Any) -> object:
    if dataclasses.is_dataclass(kind):
        return "abc"
    return [{"not": "this"}] if typing.get_origin(kind) is dict else {"not": "this"}


# Out-of-range values (right type, wrong value), by file and field.
OUT_OF_RANGE = {
    "forecast": {"task": "classify", "columns": [], "target": "other", "window": 0,
                 "horizon": 0, "season": 0, "scaling.mean": [float("nan")], "scaling.scale": [0]},
    "classify": {"task": "text", "classes": ["a"], "timesteps": 0, "features": 0,
                 "scaler.mean": [0.0, float("inf")], "scaler.scale": [0.0, -1.0]},
    "text": {"task": "forecast", "window": 0, "vocabulary.format": "x", "vocabulary.version": 2,
             "vocabulary.level": "byte", "vocabulary.pad_token": "",
             "vocabulary.tokens": ["a", "b"]},
    "translate": {"task": "text", "source_chars": ["ab"], "target_chars": [],
                  "source_length": 0, "target_length": -3},
    "metrics.json": {"epochs": 0, "train_seconds_this_session": -1.0},
    "manifest.json": {"format": "other", "version": 2, "command": "rm -rf /",
                      "files": ["../outside"]},
    "run.json": {"task": "regress", "cell": "transformer", "units": 0, "layers": 0,
                 "epochs": 0, "batch_size": 0, "horizon": 0, "seed": -1, "window": 0,
                 "dropout": 1.5, "lr": 0.0, "device": "tpu"},
}


def _cases(file: str, cls: type) -> list[tuple[str, str, object]]:
    cases: list[tuple[str, str, object]] = []
    for name, kind in _leaves(cls):
        cases.append((name, "wrong type", _wrong_type(kind)))
        cases.append((name, "missing", None))
    cases += [(name, "out of range", value) for name, value in OUT_OF_RANGE[file].items()]
    return cases


def _edit(path: Path, field: str, how: str, value: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    *parents, last = field.split(".")
    holder = data
    for parent in parents:
        holder = holder[parent]
    if how == "missing":
        del holder[last]
    else:
        holder[last] = value
    path.write_text(json.dumps(data), encoding="utf-8")


def _check(run: Path, file: str, field: str, how: str, value: object, *command: object) -> None:
    path = run / file
    before = path.read_bytes()
    try:
        _edit(path, field, how, value)
        line = one_error(*command)
        assert str(path) in line, line
        assert f"'{field}'" in line, line
        if how == "missing":
            assert f"field '{field}' is missing" in line, line
        elif how == "wrong type" and field != "format":
            assert f"field '{field}' must be" in line, line
    finally:
        path.write_bytes(before)


def test_every_preprocessing_field(run: Path) -> None:
    task = json.loads((run / "run.json").read_text())["task"]
    cases = _cases(task, TASKS[task].preprocessing_file)
    assert len(cases) >= 10
    for field, how, value in cases:
        _check(run, "preprocessing.json", field, how, value, "summary", run)


@pytest.mark.parametrize("file", ["run.json", "manifest.json", "metrics.json"])
def test_every_field_of_the_run_files(run: Path, file: str) -> None:
    if json.loads((run / "run.json").read_text())["task"] != "forecast":
        pytest.skip("the same files in every task: checked on the forecast run")
    cls = {"run.json": RunConfig, "manifest.json": ManifestFile,
           "metrics.json": MetricsFile}[file]
    for field, how, value in _cases(file, cls):
        if file == "run.json" and how == "wrong type" and field == "data_digests":
            value = {"a": 5}
        _check(run, file, field, how, value, "summary", run)


@pytest.mark.parametrize(("edit", "command", "message"), [
    ({"source_chars": 5}, "translate", "field 'source_chars' must be a list of strings, got 5"),
    ({"target_chars": []}, "translate", "field 'target_chars' must list at least one"),
    ({"target_length": -3}, "translate", "field 'target_length' must be >= 2, got -3"),
    ({"scaling": {"relative": True, "mean": [0.0], "scale": "abc"}}, "predict",
     "field 'scaling.scale' must be a list of numbers, got 'abc'"),
    ({"scaling": {"relative": True, "mean": [0.0], "scale": [0]}}, "predict",
     "field 'scaling.scale' must hold finite numbers > 0, got 0"),
])
def test_the_reported_edits(run: Path, edit: dict, command: str, message: str) -> None:
    """The edits of the issue, in the commands that failed on them."""
    pre = run / "preprocessing.json"
    data = json.loads(pre.read_text())
    if set(edit) - set(data):
        pytest.skip("an edit of another task's preprocessing.json")
    before = pre.read_bytes()
    try:
        pre.write_text(json.dumps({**data, **edit}))
        args = [command, run, *(["3 March"] if command == "translate" else [])]
        line = one_error(*args)
        assert str(pre) in line and message in line, line
    finally:
        pre.write_bytes(before)
    code, _, stderr = rnnkit(*args)
    assert code in (0, 1) and "preprocessing.json" not in stderr, stderr


# What each command does with each task's run: the views that exist, and for the others one
# error line that names the task of the run.
VIEWS = {"forecast": {"predict", "evaluate", "summary", "diagnose"},
         "classify": {"predict", "evaluate", "summary", "diagnose"},
         "text": {"evaluate", "summary", "diagnose", "generate"},
         "translate": {"evaluate", "summary", "diagnose", "translate"}}


@pytest.mark.parametrize("command", ["predict", "evaluate", "summary", "diagnose", "generate",
                                     "translate"])
def test_each_command_on_each_task(run: Path, command: str) -> None:
    task = json.loads((run / "run.json").read_text())["task"]
    extra = {"predict": ["--npy", run.parent / "x.npy"] if task == "classify" else [],
             "diagnose": ["--samples", 4], "generate": ["--length", 5, "--prime", "d"],
             "translate": ["cat"]}.get(command, [])
    code, stdout, stderr = rnnkit(command, run, *extra)
    if command in VIEWS[task]:
        assert code == 0, stderr
        assert stdout.strip(), command
    else:
        lines = stderr.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert f"{task} run" in lines[0], lines[0]
        assert "Traceback" not in stderr


def test_a_preprocessing_that_does_not_fit_the_model(run: Path) -> None:
    """Edits that keep the schema but describe more or fewer outputs than the model has (a
    class name added, a character dropped): one error naming the field, before any
    prediction could index past the list."""
    pre = run / "preprocessing.json"
    data = json.loads(pre.read_text())
    edits = {"forecast": ("horizon", 2), "classify": ("classes", [*data.get("classes", []), "x"]),
             "text": ("vocabulary.tokens", data.get("vocabulary", {}).get("tokens", [])[:-1]),
             "translate": ("target_chars", data.get("target_chars", [])[:-1])}
    field, value = edits[data["task"]]
    _check(run, "preprocessing.json", field, "out of range", value, "summary", run)
    if data["task"] == "translate":
        _check(run, "preprocessing.json", field, "out of range", value, "translate", run, "cat")
