"""Keras 3 on rnnkit's kernels (:mod:`rnnkit._keras_adapter`): these tests need Keras with the
torch backend, which rnnkit's own environment does not have; without Keras nothing here is
collected. ``.ci/run`` runs them in a separate environment with Keras installed.

``RNNKIT_KERAS_ADAPTER=0`` runs Keras' own test files (``keras_3_15_1/``) without the adapter,
for the counts to compare.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports Keras

if importlib.util.find_spec("keras") is None:
    collect_ignore_glob = ["*.py", "*/*.py"]


@pytest.fixture(autouse=True)
def _adapter(request: pytest.FixtureRequest):
    """The adapter on for every test, except where the test manages it itself (``off``) or
    ``RNNKIT_KERAS_ADAPTER=0``."""
    from rnnkit import _keras_adapter

    if request.node.get_closest_marker("adapter_managed") or \
            os.environ.get("RNNKIT_KERAS_ADAPTER") == "0":
        yield
        return
    assert _keras_adapter.install(), "Keras is not on the torch backend"
    try:
        yield
    finally:
        _keras_adapter.uninstall()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "adapter_managed: the test installs the adapter itself")


_HERE = __import__("pathlib").Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Keras' own warnings are not rnnkit's to fix: its variables warn under NumPy 2
    # (np.array(variable)), its test helpers about their own fit arguments
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:keras"))
            item.add_marker(pytest.mark.filterwarnings("ignore::UserWarning:keras"))
