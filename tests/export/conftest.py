"""Fixtures of the export/compile tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_CHILD = "RNNKIT_TEST_FRESH_PROCESS"


@pytest.fixture
def fresh_process(request: pytest.FixtureRequest) -> bool:
    """Run the requesting test again in a new interpreter; True inside that interpreter.

    torch.compile's caches and the global state its guards read are process-wide, and in full
    runs (pytest -n 2, many other tests before it in the same worker) a test counting compiles
    saw a second compile that never appears on its own: the cause was not found. A test that
    counts compiles therefore asserts on a fresh process, which is what a user's process starts
    as. In the parent the fixture returns False once the child passed, and the test returns.
    """
    if os.environ.get(_CHILD) == request.node.nodeid:
        return True
    env = {**os.environ, _CHILD: request.node.nodeid}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         request.node.nodeid],
        cwd=request.config.rootpath, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, (
        f"{request.node.nodeid} failed in a fresh process:\n"
        f"{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    )
    assert " passed" in result.stdout, result.stdout[-2000:]  # it ran, not deselected
    return False
