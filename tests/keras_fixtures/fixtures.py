"""Load the golden Keras 3 fixtures (plain NumPy + JSON; Keras is not needed to read them).

With ``tests/`` on ``sys.path`` (tests/conftest.py puts it there)::

    from keras_fixtures.fixtures import load_layer_cases

    for case in load_layer_cases(group="rnn"):
        layer = build_from_spec(case.spec)          # the consumer's own builder
        layer.set_weights(case.weights)             # Keras get_weights() order
        call = case.calls[0]
        outs = layer(call.x, mask=call.mask, initial_state=call.initial_state)
        # compare against call.outputs (Keras' return order), e.g. rtol=1e-5, atol=1e-6 in float32

See README.md beside this file for every key, shape and order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES_DIR = Path(__file__).resolve().parent


def _json(rel: str) -> Any:
    return json.loads((FIXTURES_DIR / rel).read_text(encoding="utf-8"))


def _npz(rel: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES_DIR / rel, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _get(arrays: dict[str, np.ndarray], key: str | None) -> np.ndarray | None:
    return None if key is None else arrays[key]


def versions() -> dict[str, str]:
    """Versions of Keras, JAX, NumPy and Python the fixtures were generated with."""
    return _json("versions.json")


# ----------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerCall:
    """One call ``layer(x, mask=mask, initial_state=initial_state)`` and what Keras returned.

    ``outputs`` follow Keras' return order (``output_names`` says what each is).
    ``output_mask`` is ``layer.compute_mask(x, mask)``: ``None`` when Keras returned None,
    otherwise a list (one entry per output when ``output_mask_is_list``; entries may be None).
    ``states_after`` (stateful layers only) are ``layer.states`` after the call.
    ``masked_output_steps`` maps an output key to "zeros" | "carry_previous" | "both" | "other":
    what Keras put at masked steps of a returned sequence.
    """

    x: np.ndarray
    mask: np.ndarray | None
    initial_state: list[np.ndarray] | None
    outputs: list[np.ndarray]
    output_names: list[str]
    output_mask: list[np.ndarray | None] | None
    output_mask_is_list: bool
    mask_passed_to_call: bool
    reset_states_before: bool
    states_after: list[np.ndarray] | None
    masked_output_steps: dict[str, str] | None


@dataclass(frozen=True)
class LayerCase:
    """A Keras layer (``spec``), its weights in ``get_weights()`` order, and its calls in order."""

    name: str
    group: str
    spec: dict[str, Any]
    weights: list[np.ndarray]
    weight_paths: list[str]
    calls: list[LayerCall]
    notes: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def cls(self) -> str:
        return self.spec["class"]

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.spec["kwargs"]

    # Shortcuts to the first call, which is the only one except for stateful cases.
    @property
    def x(self) -> np.ndarray:
        return self.calls[0].x

    @property
    def mask(self) -> np.ndarray | None:
        return self.calls[0].mask

    @property
    def initial_state(self) -> list[np.ndarray] | None:
        return self.calls[0].initial_state

    @property
    def outputs(self) -> list[np.ndarray]:
        return self.calls[0].outputs


def _layer_call(entry: dict[str, Any], arrays: dict[str, np.ndarray]) -> LayerCall:
    om = entry.get("output_mask")
    return LayerCall(
        x=arrays[entry["x"]],
        mask=_get(arrays, entry["mask"]),
        initial_state=None if entry["initial_state"] is None
        else [arrays[k] for k in entry["initial_state"]],
        outputs=[arrays[k] for k in entry["outputs"]],
        output_names=list(entry["output_names"]),
        output_mask=None if om is None else [_get(arrays, k) for k in om],
        output_mask_is_list=bool(entry.get("output_mask_is_list", False)),
        mask_passed_to_call=bool(entry["mask_passed_to_call"]),
        reset_states_before=bool(entry["reset_states_before"]),
        states_after=None if "states_after" not in entry
        else [arrays[k] for k in entry["states_after"]],
        masked_output_steps=entry.get("masked_output_steps"),
    )


@lru_cache(maxsize=1)
def _layer_manifest() -> tuple[dict[str, Any], ...]:
    return tuple(_json("layers/manifest.json"))


def _layer_case(entry: dict[str, Any]) -> LayerCase:
    arrays = _npz(f"layers/{entry['file']}")
    return LayerCase(
        name=entry["name"],
        group=entry["group"],
        spec=entry["spec"],
        weights=[arrays[k] for k in entry["weights"]],
        weight_paths=list(entry["weight_paths"]),
        calls=[_layer_call(c, arrays) for c in entry["calls"]],
        notes=entry.get("notes"),
        raw=entry,
    )


def load_layer_cases(group: str | None = None, cls: str | None = None) -> list[LayerCase]:
    """All layer cases, optionally only one ``group`` ("rnn", "stateful", "bidirectional",
    "other") and/or one Keras class name (``cls="GRU"``; for wrappers, the wrapper's class)."""
    return [
        _layer_case(e)
        for e in _layer_manifest()
        if (group is None or e["group"] == group) and (cls is None or e["spec"]["class"] == cls)
    ]


def load_layer_case(name: str) -> LayerCase:
    for e in _layer_manifest():
        if e["name"] == name:
            return _layer_case(e)
    raise KeyError(f"no layer case named {name!r}")


def layer_case_names(group: str | None = None, cls: str | None = None) -> list[str]:
    """Names only (cheap), e.g. for ``pytest.mark.parametrize``."""
    return [
        e["name"]
        for e in _layer_manifest()
        if (group is None or e["group"] == group) and (cls is None or e["spec"]["class"] == cls)
    ]


def load_layer_errors() -> list[dict[str, Any]]:
    """Specs Keras rejects: ``{"name", "spec", "input_shape", "error_type", "message"}``."""
    return _json("layers/errors.json")


# ----------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelCase:
    """A Sequential model: layer specs, input, ``model.get_weights()``, ``model(x)`` and summary facts."""

    name: str
    layers: list[dict[str, Any]]
    x: np.ndarray
    y: np.ndarray
    weights: list[np.ndarray]
    count_params: int
    trainable_params: int
    non_trainable_params: int
    layer_output_shapes: list[list[int | None]]
    layer_param_counts: list[int]
    summary: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def load_model_cases() -> list[ModelCase]:
    out = []
    for e in _json("models/manifest.json"):
        arrays = _npz(f"models/{e['file']}")
        out.append(ModelCase(
            name=e["name"], layers=e["layers"], x=arrays["x"], y=arrays["y"],
            weights=[arrays[k] for k in e["weights"]], count_params=e["count_params"],
            trainable_params=e["trainable_params"], non_trainable_params=e["non_trainable_params"],
            layer_output_shapes=e["layer_output_shapes"], layer_param_counts=e["layer_param_counts"],
            summary=e["summary"], raw=e,
        ))
    return out


# ----------------------------------------------------------------------------- losses, optimizers, fit


def load_losses() -> dict[str, list[dict[str, Any]]]:
    """``{"losses": [...], "metrics": [...], "epsilon": float}`` with array keys replaced by arrays."""
    meta = _json("losses.json")
    arrays = _npz("losses.npz")
    for e in meta["losses"]:
        for key in ("y_true", "y_pred", "per_sample", "sample_weight"):
            e[key] = _get(arrays, e[key])
    for e in meta["metrics"]:
        e["y_true"], e["y_pred"] = arrays[e["y_true"]], arrays[e["y_pred"]]
    return meta


def load_optimizers() -> dict[str, Any]:
    """``{"variables": [w, b], "gradients": {step: [gw, gb]}, "optimizers": [...]}`` where each
    optimizer's ``params_after_step`` maps "1".."5" to the two arrays after that many steps."""
    meta = _json("optimizers.json")
    arrays = _npz("optimizers.npz")
    meta["variables"] = [arrays[k] for k in meta["variables"]]
    meta["gradients"] = {s: [arrays[k] for k in ks] for s, ks in meta["gradients"].items()}
    for e in meta["optimizers"]:
        e["params_after_step"] = {
            s: [arrays[k] for k in ks] for s, ks in e["params_after_step"].items()
        }
    return meta


def load_training() -> dict[str, Any]:
    """The short deterministic fits; see README.md ("training")."""
    meta = _json("training.json")
    arrays = _npz("training.npz")
    meta["x"], meta["y"] = arrays[meta["x"]], arrays[meta["y"]]
    for run in meta["runs"]:
        for key in ("init_weights", "final_weights"):
            run[key] = [arrays[k] for k in run[key]]
        run["weights_after_step"] = {
            s: [arrays[k] for k in ks] for s, ks in run["weights_after_step"].items()
        }
        run["pred_after_fit"] = arrays[run["pred_after_fit"]]
    return meta


def load_pad_sequences_cases() -> list[dict[str, Any]]:
    """``[{"sequences", "kwargs", "output" (nested lists), "dtype"}]`` from keras.utils.pad_sequences."""
    return _json("data.json")["pad_sequences"]


# ----------------------------------------------------------------------------- saved files


def load_file_cases() -> list[dict[str, Any]]:
    """Saved models: manifest entries plus absolute ``paths`` and the ``x``, ``y``, ``weights``
    arrays (``y = model(x)`` in Keras)."""
    out = []
    for e in _json("files/manifest.json"):
        arrays = _npz(f"files/{e['npz']}")
        e["x"], e["y"] = arrays["x"], arrays["y"]
        e["weights"] = [arrays[f"w{i}"] for i in range(len(e["weight_shapes"]))]
        e["paths"] = {
            key: FIXTURES_DIR / "files" / e[key]
            for key in ("keras", "weights_h5", "legacy_h5")
            if e.get(key)
        }
        out.append(e)
    return out
