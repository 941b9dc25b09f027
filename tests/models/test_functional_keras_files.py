"""rk.models.load_keras on Keras 3 .keras and legacy .h5 files of functional models (written by
_gen_functional.py): the rebuilt model's layers, outputs and count_params match Keras'."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rnnkit as rk
from keras_fixtures.fixtures import FIXTURES_DIR

HERE = FIXTURES_DIR / "functional"
MANIFEST = json.loads((HERE / "functional.json").read_text(encoding="utf-8"))


def _arrays(name):
    with np.load(HERE / f"{name}.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _x(entry, arrays):
    spec = entry["x"]
    if spec["kind"] == "list":
        return [arrays[f"x/{i}"] for i in range(spec["count"])]
    return arrays["x"]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_load_keras_functional(name, suffix):
    entry, arrays = MANIFEST[name], _arrays(name)
    model = rk.models.load_keras(HERE / f"{name}{suffix}")
    assert isinstance(model, rk.Model) and model.name == name
    assert [layer.name for layer in model.layers] == entry["layers"]
    assert model.count_params() == entry["count_params"]
    outputs = model.predict(_x(entry, arrays), verbose=0)
    outputs = list(outputs) if isinstance(outputs, list) else [outputs]
    for i, out in enumerate(outputs):
        np.testing.assert_allclose(out, arrays[f"out/{i}"], rtol=1e-5, atol=2e-6)


def test_weights_into_an_rnnkit_built_model():
    from keras_fixtures import functional_cases as cases

    build, _ = cases.CASES["attention_luong"]
    model = build(rk.Input, rk.layers, rk.Model)
    rk.models.load_keras(HERE / "attention_luong.keras", model=model)
    arrays = _arrays("attention_luong")
    out = model.predict(_x(MANIFEST["attention_luong"], arrays), verbose=0)
    np.testing.assert_allclose(out, arrays["out/0"], rtol=1e-5, atol=2e-6)
