"""Regenerate rnnkit's golden Keras fixtures from real Keras 3 (JAX backend, CPU).

Run from the repository root, in the separate Keras venv (never the project's .venv):

    python3 -m venv .keras-venv
    .keras-venv/bin/pip install keras jax jaxlib h5py numpy
    .keras-venv/bin/python tests/keras_fixtures/make_fixtures.py            # everything
    .keras-venv/bin/python tests/keras_fixtures/make_fixtures.py layers     # one part

Parts: layers, models, losses, optimizers, training, files, data, features, functional. Every case draws its numbers
from a generator seeded by the case's name, so reruns give the same values (the .keras/.h5
files under files/ embed save times, so their bytes change; their contents do not).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gen_common import HERE, write_json  # noqa: E402

PARTS = ("layers", "models", "losses", "optimizers", "training", "files", "data", "features",
         "functional")


def versions() -> dict[str, str]:
    import platform

    import jax
    import jaxlib
    import keras
    import numpy

    return {
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "floatx": keras.backend.floatx(),
        "device": "cpu",
    }


def main(argv: list[str]) -> None:
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit(f"expected the jax backend, got {keras.backend.backend()!r}")
    keras.utils.set_random_seed(0)
    parts = argv or list(PARTS)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; expected some of {list(PARTS)}")

    import _gen_features
    import _gen_layers
    import _gen_models
    import _gen_training

    counts: dict[str, object] = {}
    for part in parts:
        if part in ("layers", "models", "files"):
            shutil.rmtree(HERE / part, ignore_errors=True)
        if part == "layers":
            counts[part] = _gen_layers.generate(HERE / "layers")
        elif part == "models":
            counts[part] = _gen_models.generate_models(HERE / "models")
        elif part == "files":
            counts[part] = _gen_models.generate_files(HERE / "files")
        elif part == "losses":
            counts[part] = _gen_training.generate_losses(HERE)
        elif part == "optimizers":
            counts[part] = _gen_training.generate_optimizers(HERE)
        elif part == "training":
            counts[part] = _gen_training.generate_training(HERE)
        elif part == "data":
            counts[part] = _gen_training.generate_data(HERE)
        elif part == "features":
            counts[part] = _gen_features.generate_features(HERE)
        elif part == "functional":
            import _gen_functional

            shutil.rmtree(HERE / part, ignore_errors=True)
            counts[part] = _gen_functional.generate(HERE / part)
            counts[part] += _gen_functional.generate_layers(HERE / part)
        print(f"{part}: {counts[part]}", flush=True)
    write_json(HERE / "versions.json", versions())


if __name__ == "__main__":
    main(sys.argv[1:])
