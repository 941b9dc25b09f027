"""The child side of tests/cli/test_faults.py: one ``rnnkit`` command in a process forked from
a server that has already imported torch and rnnkit (multiprocessing's forkserver), so that a
test can kill dozens of training runs for the price of a few process starts.

Not a test module (no ``test_`` prefix); the test puts this folder on ``sys.path`` so that the
server can import it.
"""

from __future__ import annotations

import os
import signal
import sys

# Imported once, in the server, before any child is forked (nothing here runs a torch op, so no
# thread pool exists yet when the server forks).
import matplotlib.figure  # noqa: F401
import numpy  # noqa: F401
import torch  # noqa: F401

import rnnkit.cli
import rnnkit.cli.commands  # noqa: F401
import rnnkit.cli.plots
import rnnkit.cli.run_state  # noqa: F401
import rnnkit.cli.tasks  # noqa: F401
import rnnkit.cli.train  # noqa: F401
import rnnkit.training.backup  # noqa: F401
import rnnkit.models.saving  # noqa: F401


def _warm_up() -> int:
    """One tiny training run, single-threaded, so that the first-use costs (lazy imports,
    matplotlib's fonts, torch's first calls) are paid once, here, instead of in every child.
    Single-threaded: no thread pool exists when the server forks (a pool does not survive a
    fork). Returns torch's default thread count, which every child gets back."""
    import tempfile

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    saved = dict(os.environ)
    os.environ["RNNKIT_NO_EXTENSION"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    streams = os.dup(1), os.dup(2)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    try:
        with tempfile.TemporaryDirectory() as folder:
            data = os.path.join(folder, "series.csv")
            with open(data, "w", encoding="utf-8") as f:
                f.write("value\n" + "".join(f"{(i * 7) % 5}\n" for i in range(60)))
            try:
                rnnkit.cli.main(["train", "--quiet", "--csv", data, "--target", "value",
                                 "--window", "4", "--units", "2", "--epochs", "1",
                                 "--out", os.path.join(folder, "run")])
            except SystemExit:
                pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved_fd in zip((1, 2), streams):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
        os.close(quiet)
        os.environ.clear()
        os.environ.update(saved)
    return threads


_THREADS = _warm_up()


def run(argv: list[str], env: dict[str, str], log: str) -> None:
    """``rnnkit ARGV`` with ``env`` added to the environment and stdout + stderr into ``log``;
    the process ends with the command's exit code (or the signal that killed it)."""
    os.environ.update(env)
    torch.set_num_threads(_THREADS)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a shell
    code = 0
    try:
        rnnkit.cli.main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
