"""Shared helpers for the fixture generator (needs Keras; never imported by the test suite).

Byte-stable ``.npz`` writing, JSON writing, seeded random numbers, mask patterns, and
turning a JSON layer spec (``{"class": ..., "kwargs": ..., "layer": ...}``) into a Keras layer.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

# Fixed zip timestamp so that rerunning the generator rewrites identical bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

HERE = Path(__file__).resolve().parent


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed ``.npz`` that ``np.load`` reads, with fixed timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def rng_for(name: str) -> np.random.Generator:
    """A generator seeded from the case name, so each case is reproducible on its own."""
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def to_numpy(value: Any) -> np.ndarray:
    return np.asarray(value)


def as_list(value: Any) -> list[Any]:
    """Keras returns a tensor, or a list/tuple of tensors; always give a flat list."""
    if isinstance(value, (list, tuple)):
        out: list[Any] = []
        for v in value:
            out.extend(as_list(v))
        return out
    return [value]


def shape_json(shape: Any) -> list[int | None]:
    return [None if d is None else int(d) for d in shape]


# ----------------------------------------------------------------------------- masks

MASK_KINDS = ("none", "post", "pre", "hole", "empty_row")


def make_mask(kind: str, batch: int, steps: int) -> np.ndarray | None:
    """(B, T) bool mask patterns, True = real step.

    post: lengths (T, 3, 1) padded at the end; pre: the same lengths padded at the front;
    hole: gaps in the middle of rows 0 and 1 (row 2 complete); empty_row: lengths (T, 2, 0).
    """
    if kind == "none":
        return None
    assert batch == 3, "mask patterns are written for B=3"
    mask = np.zeros((batch, steps), dtype=bool)
    if kind in ("post", "pre", "empty_row"):
        lengths = (steps, 3, 1) if kind != "empty_row" else (steps, 2, 0)
        for b, n in enumerate(lengths):
            if kind == "pre":
                mask[b, steps - n :] = True
            else:
                mask[b, :n] = True
        return mask
    if kind == "hole":
        mask[:] = True
        mask[0, 2] = False
        mask[1, 1:3] = False
        mask[1, steps - 1] = False
        return mask
    raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")


# ----------------------------------------------------------------------------- specs


def spec(cls: str, layer: dict | None = None, **kwargs: Any) -> dict:
    """A JSON layer spec. Wrappers (Bidirectional, TimeDistributed) carry the wrapped spec in ``layer``."""
    out: dict[str, Any] = {"class": cls, "kwargs": kwargs}
    if layer is not None:
        out["layer"] = layer
    return out


# kwargs that rnnkit users write (Keras 2 style) but Keras 3 layers no longer take;
# the generator feeds them to keras.Input instead (or drops them, for input_length).
INPUT_KWARGS = ("input_shape", "batch_input_shape", "input_length", "batch_size")


def build_layer(layer_spec: dict) -> Any:
    """Build a Keras layer from a spec, ignoring the input-shape kwargs Keras 3 dropped."""
    import keras

    kwargs = {k: v for k, v in layer_spec["kwargs"].items() if k not in INPUT_KWARGS}
    init = kwargs.get("embeddings_initializer")
    if isinstance(init, dict):
        kwargs["embeddings_initializer"] = keras.initializers.Constant(
            np.asarray(init["config"]["value"], dtype="float32")
        )
    cls = getattr(keras.layers, layer_spec["class"])
    if "layer" in layer_spec:
        inner = build_layer(layer_spec["layer"])
        if "backward_layer" in layer_spec:
            kwargs["backward_layer"] = build_layer(layer_spec["backward_layer"])
        return cls(inner, **kwargs)
    return cls(**kwargs)


def random_weights(
    shapes: list[tuple[int, ...]], rng: np.random.Generator, scale: float = 0.6
) -> list[np.ndarray]:
    """Uniform(-scale, scale) float32 arrays: every entry non-zero and distinct."""
    return [rng.uniform(-scale, scale, size=s).astype("float32") for s in shapes]
