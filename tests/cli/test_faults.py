"""Fault injection: ``rnnkit train`` killed at every stage of a run, and what it leaves behind.

Each case stops a tiny training run at one named point (``RNNKIT_FAULT``, the test hook of
:mod:`rnnkit._faults`: no sleeps, the same point every time) with SIGKILL (nothing can clean
up) or SIGINT (what Ctrl-C sends), then checks what a user would meet:

- no file in the run folder is half-written (every JSON parses, every PNG is whole, the model
  and the checkpoint load); a SIGKILLed write may leave a hidden temporary file, which the
  command that continues the run removes;
- ``predict``, ``evaluate``, ``summary`` and ``train --resume`` each either work or fail with
  one ``error:`` line naming the one command that continues the run;
- that command works, and the run then ends with weights equal, bit for bit, to those of a run
  that was never interrupted.

The runs are forked from a server process that has imported torch and rnnkit once
(``_fault_child.py``), so a case costs a fraction of a second of training rather than a Python
start-up. The compiled kernels are switched off in every run, so that all of them take the same
code path whatever this test process has loaded.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import multiprocessing
import re
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.models import load_model

HERE = Path(__file__).resolve().parent
ENV = {"RNNKIT_NO_EXTENSION": "1", "PYTHONHASHSEED": "0"}
EPOCHS = 3

# Inside the run's creation, inside epochs, while writing each epoch's checkpoint, the history,
# the plots, the model and the metrics (``#N``: the N-th time a point is reached).
POINTS = [
    "write:manifest.json:partial",
    "write:run.json:partial",
    "write:run.json:renamed",
    "write:preprocessing.json:synced",
    "batch:1:2",
    "write:backup.safetensors:partial",
    "epoch:1",
    "batch:2:3",
    "write:backup.safetensors:synced#2",
    "batch:3:1",
    "write:backup.safetensors:partial#3",
    "write:backup.safetensors:renamed#3",
    "epoch:3",
    "write:history.json:partial",
    "write:history.csv:synced",
    "write:learning_curves.png:partial",
    "write:learning_curves.png:renamed",
    "write:model.rnnkit:partial",
    "write:model.rnnkit:synced",
    "write:model.rnnkit:renamed",
    "write:forecast.png:partial",
    "write:metrics.json:partial",
    "write:metrics.json:renamed",
]
CONTINUE = re.compile(r"with: (rnnkit train .+?)\s*$")


def suggested(output: str) -> set[str]:
    """Every command a message in ``output`` tells the user to run."""
    return {m.group(1) for line in output.splitlines() if (m := CONTINUE.search(line))}


@pytest.fixture(autouse=True)
def _no_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands run in this process too: no wait for the compiled kernels' build."""
    monkeypatch.setenv("RNNKIT_NO_EXTENSION", "1")


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "series.csv"
    values = np.sin(np.arange(120) / 3.0) + rng.normal(0, 0.1, 120)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["value"])
        writer.writerows([[f"{v:.4f}"] for v in values])
    return path


def train_args(series: Path, out: Path) -> list[str]:
    return ["train", "--quiet", "--task", "forecast", "--csv", str(series), "--target", "value",
            "--window", "6", "--units", "4", "--cell", "gru", "--epochs", str(EPOCHS),
            "--batch-size", "16", "--out", str(out)]


Spawn = Callable[..., tuple[int, str]]


@pytest.fixture(scope="module")
def spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spawn]:
    """``spawn(argv, fault=None)``: ``rnnkit ARGV`` in a forked process; (exit code, output).
    The exit code is negative for a signal (-9: SIGKILL)."""
    sys.path.insert(0, str(HERE))
    try:
        import _fault_child

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["_fault_child"])
        logs = tmp_path_factory.mktemp("logs")
        counter = itertools.count()

        def run(argv: list[str], fault: str | None = None, log_points: Path | None = None
                ) -> tuple[int, str]:
            env = dict(ENV)
            if fault:
                env["RNNKIT_FAULT"] = fault
            if log_points:
                env["RNNKIT_FAULT_LOG"] = str(log_points)
            log = logs / f"{next(counter)}.txt"
            process = context.Process(target=_fault_child.run,
                                      args=([str(a) for a in argv], env, str(log)))
            process.start()
            process.join(300)
            if process.is_alive():
                process.kill()
                process.join()
                pytest.fail(f"rnnkit {' '.join(map(str, argv))} hung")
            return process.exitcode, log.read_text() if log.exists() else ""

        yield run
    finally:
        sys.path.remove(str(HERE))


@pytest.fixture(scope="module")
def reference(spawn: Spawn, series: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, list[str]]:
    """An uninterrupted run, and the fault points it passed, in order."""
    out = tmp_path_factory.mktemp("reference") / "run"
    points = out.parent / "points.txt"
    code, log = spawn(train_args(series, out), log_points=points)
    assert code == 0, log
    return out, points.read_text().split()


def cli(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def weights(run: Path) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in load_model(run / "model.rnnkit").state_dict().items()}


def temporary_files(run: Path) -> list[str]:
    """Temporary files of killed writes: inside the run, and a half-made run folder beside it."""
    inside = list(run.rglob(".*.tmp")) if run.exists() else []
    return sorted(str(p) for p in [*inside, *run.parent.glob(f".{run.name}.*.tmp")])


def assert_no_half_written_file(run: Path) -> None:
    """Every file rnnkit left is complete: it parses as what its name says."""
    if not run.exists():
        return
    for path in run.rglob("*"):
        if path.is_dir() or (path.name.startswith(".") and path.name.endswith(".tmp")):
            continue  # a killed write's temporary file: never read, removed by the next run
        data = path.read_bytes()
        if path.suffix == ".json":
            json.loads(data, parse_constant=lambda c: pytest.fail(f"{path}: {c} is not JSON"))
        elif path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), path
        elif path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(data.decode())))
            assert rows and len({len(r) for r in rows}) == 1, path
        elif path.suffix == ".rnnkit":
            load_model(path)
        elif path.suffix == ".safetensors":
            safetensors.torch.load(data)
        else:
            pytest.fail(f"unexpected file {path}")


def test_the_points_are_reached_and_identical_runs_are_identical(
        reference: tuple[Path, list[str]], spawn: Spawn, series: Path, tmp_path: Path) -> None:
    """Every point of POINTS is one an uninterrupted run passes (the hook names are real), and
    a second identical run writes the same model file, byte for byte."""
    run, points = reference
    for point in POINTS:
        name, _, nth = point.partition("#")
        assert points.count(name) >= int(nth or 1), (point, sorted(set(points)))
    assert len(POINTS) >= 20
    code, log = spawn(train_args(series, tmp_path / "again"))
    assert code == 0, log
    assert (tmp_path / "again" / "model.rnnkit").read_bytes() == (run / "model.rnnkit").read_bytes()
    for name in ("history.json", "preprocessing.json", "learning_curves.png", "forecast.png"):
        assert (tmp_path / "again" / name).read_bytes() == (run / name).read_bytes(), name


@pytest.mark.parametrize("how", ["KILL", "INT"])
@pytest.mark.parametrize("point", POINTS)
def test_a_run_killed_at_any_point_continues_to_the_same_weights(
        point: str, how: str, reference: tuple[Path, list[str]], spawn: Spawn, series: Path,
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = train_args(series, run)
    code, log = spawn(command, fault=f"{point}={how}")
    assert code == (-signal.SIGKILL if how == "KILL" else 130), log
    if how == "INT":
        assert "Traceback" not in log, log
        assert temporary_files(run) == [], "a Ctrl-C left a temporary file"
    assert_no_half_written_file(run)

    # Each command works, or names the one command that continues the run.
    named = set()
    finished_already = False
    for args in (["predict", run], ["evaluate", run], ["summary", run]):
        code, stdout, stderr = cli(*args)
        named |= suggested(stderr) if code == 0 else set()  # a note's command is run too
        if code != 0:
            assert code == 1 and stderr.startswith("error: "), (args, code, stderr)
            assert len(stderr.strip().splitlines()) == 1, stderr
            if run.exists():
                named.add(CONTINUE.search(stderr).group(1))  # type: ignore[union-attr]
            else:
                assert "does not exist" in stderr  # nothing was made: the same train again
                named.add(shlex.join(["rnnkit", *command]))
    code, resumed = spawn(["train", "--quiet", "--resume", run])
    if code == 0:
        named.add(f"rnnkit train --resume {shlex.quote(str(run))}")
    else:
        assert code == 1, resumed
        lines = [line for line in resumed.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, resumed
        if "already completed" in lines[0]:
            finished_already = True  # killed after metrics.json: the run had finished
        elif run.exists() and CONTINUE.search(lines[0]):
            named.add(CONTINUE.search(lines[0]).group(1))  # type: ignore[union-attr]
        else:
            assert "does not exist" in lines[0], lines[0]
            named.add(shlex.join(["rnnkit", *command]))
    assert len(named) <= 1, named  # one command continues the run, whoever is asked
    if finished_already:
        assert not named, named
    elif code != 0:
        (continuation,) = named
        words = shlex.split(continuation)
        assert words[0] == "rnnkit"
        code, log = spawn(words[1:])
        assert code == 0, (continuation, log)

    assert temporary_files(run) == []
    assert_no_half_written_file(run)
    code, _, stderr = cli("predict", run)
    assert code == 0 and "note:" not in stderr, stderr
    ours, theirs = weights(run), weights(reference[0])
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS


@pytest.mark.parametrize("task", ["classify", "text"])
def test_every_task_is_bit_identical_across_runs_and_kill_resume(
        task: str, spawn: Spawn, tmp_path: Path) -> None:
    """At the default thread count: two identical runs write the same model file, and a run
    SIGKILLed inside its second epoch and resumed ends with the same weights."""
    rng = np.random.default_rng(1)
    if task == "classify":
        x = rng.normal(size=(90, 6, 2)).astype(np.float32)
        np.save(tmp_path / "x.npy", x)
        np.save(tmp_path / "y.npy", (x[:, :, 0].sum(axis=1) > 0).astype(np.int64))
        data = ["--npy", tmp_path / "x.npy", "--labels", tmp_path / "y.npy"]
    else:
        (tmp_path / "t.txt").write_text("def add(a, b):\n    return a + b\n\n" * 25)
        data = ["--text", tmp_path / "t.txt", "--window", 16, "--embedding-dim", 8]
    args = ["train", "--quiet", "--task", task, *data, "--units", 8, "--epochs", 2,
            "--batch-size", 16]
    for name in ("a", "b"):
        code, log = spawn([*args, "--out", tmp_path / name])
        assert code == 0, log
    assert (tmp_path / "a" / "model.rnnkit").read_bytes() == (tmp_path / "b" / "model.rnnkit").read_bytes()
    code, log = spawn([*args, "--out", tmp_path / "killed"], fault="batch:2:2=KILL")
    assert code == -signal.SIGKILL, log
    code, log = spawn(["train", "--quiet", "--resume", tmp_path / "killed"])
    assert code == 0, log
    ours, theirs = weights(tmp_path / "killed"), weights(tmp_path / "a")
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_after_ctrl_c_the_progress_line_ends_with_a_newline(series: Path, tmp_path: Path) -> None:
    """On a terminal the progress line is redrawn in place; Ctrl-C in the middle of an epoch
    must end it, so that the shell prompt does not start behind it."""
    import os
    import pty
    import subprocess

    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "rnnkit", *train_args(series, tmp_path / "run")[:1],
               *train_args(series, tmp_path / "run")[2:]]  # without --quiet
    process = subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE,
                               env={**os.environ, **ENV, "RNNKIT_FAULT": "batch:2:2=INT",
                                    "COLUMNS": "100"},
                               # SIGINT back to its default: a test run in the background
                               # ignores SIGINT, and the child would inherit that
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, stderr = process.communicate(timeout=300)
    os.close(leader)
    assert process.returncode == 130, stderr
    assert b"Interrupted: kept the 1 completed epoch(s)" in stderr
    assert output.rstrip(b" ").endswith((b"\n", b"\r\n")), output[-200:]


@pytest.mark.parametrize("how", ["KILL", "INT"])
def test_after_the_data_changed_the_messages_name_a_command_that_works(
        how: str, spawn: Spawn, series: Path, tmp_path: Path) -> None:
    """A run stopped in its second epoch, then its CSV edited: --resume refuses (it would not
    reproduce the run), so no message may suggest it; the one they suggest works."""
    data = tmp_path / "series.csv"
    data.write_bytes(series.read_bytes())
    run = tmp_path / "run"
    code, log = spawn(train_args(data, run), fault=f"batch:2:3={how}")
    assert code == (-signal.SIGKILL if how == "KILL" else 130), log
    data.write_text(data.read_text() + "0.5\n")
    named: set[str] = set()
    for args in (["predict", run], ["evaluate", run], ["summary", run]):
        code, _, stderr = cli(*args)
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == (code != 0), stderr  # a note may come first
        named |= suggested(stderr)
    code, log = spawn(["train", "--quiet", "--resume", run])
    assert code == 1 and "data of this run changed" in log, log
    named |= suggested(log)
    assert len(named) == 1, named
    (command,) = named
    assert "--resume" not in command and f"--out {run}" in command, command
    code, log = spawn(shlex.split(command)[1:])
    assert code == 0, (command, log)
    code, _, stderr = cli("predict", run)
    assert code == 0 and "note:" not in stderr, stderr


@pytest.mark.parametrize("point", ["write:run.json:partial", "batch:2:3"])
def test_a_copied_run_folder_names_commands_for_the_copy(
        point: str, spawn: Spawn, series: Path, tmp_path: Path) -> None:
    """A stopped run's folder copied elsewhere: the commands its messages name write the copy,
    never the original folder (whose absolute path the manifest holds), and they work."""
    import shutil

    original, copy = tmp_path / "original", tmp_path / "elsewhere" / "copy"
    code, log = spawn(train_args(series, original), fault=f"{point}=KILL")
    assert code == -signal.SIGKILL, log
    shutil.copytree(original, copy)
    before = sorted((p.relative_to(original), p.stat().st_mtime_ns) for p in original.rglob("*"))
    named: set[str] = set()
    for args in (["predict", copy], ["summary", copy]):
        code, _, stderr = cli(*args)
        assert code == 1, stderr
        named |= suggested(stderr)
    code, log = spawn(["train", "--quiet", "--resume", copy])
    assert code in (0, 1), log
    if code == 0:  # the command the messages named was this one, and it worked
        named.add(f"rnnkit train --resume {shlex.quote(str(copy))}")
    named |= suggested(log)
    assert len(named) == 1, named
    (command,) = named
    assert str(original) not in command, command
    if code:
        code, log = spawn(shlex.split(command)[1:])
        assert code == 0, (command, log)
    code, _, stderr = cli("predict", copy)
    assert code == 0 and "note:" not in stderr, stderr
    after = sorted((p.relative_to(original), p.stat().st_mtime_ns) for p in original.rglob("*"))
    assert after == before  # the original folder was not touched
