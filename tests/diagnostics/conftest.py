"""The diagnostics tests compare against the fused kernels in their PyTorch form; they do not
need (or wait for a build of) the compiled extension."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_NO_EXTENSION", "1")
