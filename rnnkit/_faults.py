"""A test hook: stop this process at a named point, to test what a crash there leaves behind.

rnnkit calls :func:`point` at the places where a crash matters (inside ``_io``'s atomic write:
after half of a file is written, after it is synced, after the rename; and where ``rnnkit
train`` moves from one stage of a run to the next). Normally that is a dictionary lookup and
nothing else. With the environment variable ``RNNKIT_FAULT`` set::

    RNNKIT_FAULT="write:model.rnnkit:partial=KILL"   SIGKILL the process at that point
    RNNKIT_FAULT="batch:2:1=INT"                     SIGINT (what Ctrl-C sends) instead
    RNNKIT_FAULT="write:backup.safetensors:synced#3=KILL"   the 3rd time the point is reached

the process sends itself that signal when it reaches the point (the N-th time, with ``#N``;
the first time without). ``RNNKIT_FAULT_LOG=FILE`` appends the name of every point reached to
FILE, one a line, so a test can list the points of an uninterrupted run and then stop a run at
each of them. Both are test hooks, not a user interface: ``tests/cli/test_faults.py`` uses them.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "LOG_ENV", "point"]

ENV = "RNNKIT_FAULT"
LOG_ENV = "RNNKIT_FAULT_LOG"
_SIGNALS = {"KILL": signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM,
            "INT": signal.SIGINT, "TERM": signal.SIGTERM}
_reached: dict[str, int] = {}


def point(name: str) -> None:
    """Mark a point a crash may hit (see the module notes); a no-op unless a test asks."""
    log = os.environ.get(LOG_ENV)
    spec = os.environ.get(ENV)
    if not log and not spec:
        return
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    count = _reached[name] = _reached.get(name, 0) + 1
    if not spec:
        return
    where, _, how = spec.rpartition("=")
    if not where:
        where, how = how, "KILL"
    target, _, nth = where.partition("#")
    if target == name and count == int(nth or 1):
        os.kill(os.getpid(), _SIGNALS[how.upper()])
