"""Neighbours for the speed benchmark's contention rows: other processes that compete for the
cores while a row is timed, as a laptop with other work open, a shared CI runner or several
DataLoader workers do.

- ``busy``: plain Python loops (one thread each, no synchronisation): the fair share of each
  of the benchmark's threads is what the neighbours leave;
- ``torch``: other multi-threaded PyTorch processes, each running ``torch.mm`` in a loop on
  as many threads as this process's torch uses: their OpenMP threads wait for each other at
  every product's end, as two test workers, DataLoader workers or training jobs would;
- a quota: the row runs in a child process held to the first ``cores`` CPUs
  (``sched_setaffinity``, what ``taskset -c`` does), where torch and rnnkit see fewer cores.

The neighbours are child processes of the benchmark; they stop when the ``with`` block ends
(or the benchmark dies: each exits when its stdin, a pipe from the benchmark, closes).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

__all__ = ["KINDS", "neighbours", "restricted"]

# Each neighbour prints "ready" once it runs its loop, and stops when its stdin closes: a
# watcher thread reads stdin to its end and exits the process.
_PRELUDE = (
    "import os, sys, threading\n"
    "def _watch():\n"
    "    sys.stdin.read()\n"
    "    os._exit(0)\n"
    "threading.Thread(target=_watch, daemon=True).start()\n"
)
_LOOPS = {
    "busy": "print('ready', flush=True)\nwhile True:\n    pass\n",
    "torch": ("import torch\n"
              "torch.set_num_threads({threads})\n"
              "a = torch.randn(256, 256)\n"
              "out = torch.empty(256, 256)\n"
              "torch.mm(a, a, out=out)\n"
              "print('ready', flush=True)\n"
              "while True:\n"
              "    torch.mm(a, a, out=out)\n"),
}
KINDS = tuple(_LOOPS)


@contextlib.contextmanager
def neighbours(kind: str, count: int = 2, threads: int = 2) -> Iterator[list[int]]:
    """Run ``count`` neighbour processes of ``kind`` (``busy`` or ``torch``; ``threads``: the
    torch neighbours' thread count) for the duration of the block; yields their process ids.
    Returns once every neighbour runs its loop."""
    if kind not in _LOOPS:
        raise ValueError(f"unknown contention kind {kind!r} (choose from {', '.join(KINDS)})")
    code = _PRELUDE + _LOOPS[kind].format(threads=threads)
    processes: list[subprocess.Popen[str]] = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen(
                [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}))
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a {kind} neighbour did not start (exit code "
                                   f"{process.poll()}, said {line!r})")
        yield [p.pid for p in processes]
    finally:
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()


def restricted(cores: int) -> set[int]:
    """The CPUs a quota of ``cores`` keeps: the first ``cores`` of this process's affinity.
    ValueError when fewer are available."""
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= cores <= len(allowed):
        raise ValueError(f"a quota of {cores} cores needs 1 to {len(allowed)} (this process may "
                         f"run on CPUs {allowed})")
    return set(allowed[:cores])
