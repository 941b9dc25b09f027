"""Public names: rnnkit.utils re-exports, no torch in the data layer, docstring examples hold."""

from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import pytest

import rnnkit.data
import rnnkit.utils
from rnnkit.data import _scaling, _sequence, _vocab, _windows


def test_utils_reexports_the_keras_utilities() -> None:
    assert rnnkit.utils.__all__ == ["Vocabulary", "make_windows", "pad_sequences", "to_categorical"]
    for name in rnnkit.utils.__all__:
        assert getattr(rnnkit.utils, name) is getattr(rnnkit.data, name)


def test_every_public_name_exists() -> None:
    for name in rnnkit.data.__all__:
        assert getattr(rnnkit.data, name).__doc__


def test_data_layer_does_not_import_torch() -> None:
    code = "import sys, rnnkit.data, rnnkit.utils; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "module", [_scaling, _sequence, _vocab, _windows], ids=lambda m: m.__name__
)
def test_docstring_examples(module) -> None:
    names = {name: getattr(rnnkit.data, name) for name in rnnkit.data.__all__}
    result = doctest.testmod(module, extraglobs={"np": np, **names}, report=True)
    assert result.attempted > 0 and result.failed == 0
