"""Functional-model fixtures (functional/): the graphs of functional_cases.py built in Keras 3.

For each case: random weights per layer (``w/<layer>/<i>``), the inputs, Keras' outputs of
``model(x)``, the summary (text at line_length=108 and per-layer rows: shape text, params,
``Connected to``), ``count_params``, ``output_names``, the history of a fit of EPOCHS epochs
(SGD, batch BATCH_SIZE, no shuffling) and the weights after it (``after/<layer>/<i>``), plus
``model.save`` files (.keras and legacy .h5) for rnnkit.models.load_keras.

Run through make_fixtures.py (part ``functional``) in the Keras venv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import functional_cases as cases
from _gen_common import as_list, rng_for, to_numpy, write_json, write_npz


def _rows(model: Any) -> list[dict[str, Any]]:
    from keras.src.utils.summary_utils import format_layer_shape

    relevant = [n for nodes in model._nodes_by_depth.values() for n in nodes]
    rows = []
    for layer in model.layers:
        connections = []
        for node in layer._inbound_nodes:
            if node not in relevant:
                continue
            for kt in node.input_tensors:
                op, node_index, tensor_index = kt._keras_history
                connections.append(f"{op.name}[{node_index}][{tensor_index}]")
        rows.append({"name": layer.name, "class": type(layer).__name__,
                     "shape": format_layer_shape(layer), "params": int(layer.count_params()),
                     "connected_to": connections})
    return rows


def _summary_text(model: Any) -> str:
    lines: list[str] = []
    model.summary(line_length=108, print_fn=lambda text, line_break=None: lines.append(text))
    return "\n".join(lines)


def _set_random_weights(model: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    arrays = {}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = [rng.uniform(-0.6, 0.6, size=w.shape).astype("float32") for w in weights]
        layer.set_weights(new)
        for i, w in enumerate(new):
            arrays[f"w/{layer.name}/{i}"] = w
    return arrays


def _structure(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        for key, item in value.items():
            arrays[f"{prefix}/{key}"] = np.asarray(item)
        return {"kind": "dict", "keys": list(value)}
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            arrays[f"{prefix}/{i}"] = np.asarray(item)
        return {"kind": "list", "count": len(value)}
    arrays[prefix] = np.asarray(value)
    return {"kind": "single"}


def run_case(name: str, out_dir: Path) -> dict[str, Any]:
    import keras

    keras.backend.clear_session()
    build, make_data = cases.CASES[name]
    model = build(keras.Input, keras.layers, keras.Model)
    arrays = _set_random_weights(model, rng_for("functional/" + name))
    data = make_data(rng_for("functional/data/" + name))
    entry: dict[str, Any] = {"x": _structure(data["x"], "x", arrays),
                             "y": _structure(data["y"], "y", arrays)}
    outputs = as_list(model(data["x"]))
    for i, out in enumerate(outputs):
        arrays[f"out/{i}"] = to_numpy(out)
    entry.update(
        n_outputs=len(outputs), count_params=int(model.count_params()),
        output_names=list(model.output_names), layers=[la.name for la in model.layers],
        summary=_summary_text(model), rows=_rows(model),
    )
    model.save(out_dir / f"{name}.keras")
    model.save(out_dir / f"{name}.h5")
    compile_kwargs = {k: data[k] for k in ("loss", "loss_weights", "metrics") if data.get(k)}
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=cases.LEARNING_RATE),
                  **compile_kwargs)
    history = model.fit(data["x"], data["y"], batch_size=cases.BATCH_SIZE, epochs=cases.EPOCHS,
                        shuffle=False, verbose=0)
    entry["history"] = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    entry["evaluate"] = model.evaluate(data["x"], data["y"], batch_size=cases.BATCH_SIZE,
                                       verbose=0, return_dict=True)
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            arrays[f"after/{layer.name}/{i}"] = w
    write_npz(out_dir / f"{name}.npz", arrays)
    return entry


def generate(out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {name: run_case(name, out_dir) for name in cases.CASES}
    write_json(out_dir / "functional.json", manifest)
    return len(manifest)


def generate_layers(out_dir: Path) -> int:
    """Single merge/attention/reshaping layers called on random inputs (and masks)."""
    import keras

    arrays: dict[str, np.ndarray] = {}
    manifest: dict[str, Any] = {}
    for name, cls, kwargs, call_kwargs, shapes, masks in cases.LAYER_CASES:
        keras.backend.clear_session()
        rng = rng_for("functional/layers/" + name)
        inputs = [rng.uniform(-1, 1, size=s).astype("float32") for s in shapes]
        layer = getattr(keras.layers, cls)(**kwargs)
        given = inputs if len(inputs) > 1 else inputs[0]
        mask = None
        if masks is not None:
            mask = [cases.lengths_mask(s, m) for s, m in zip(shapes, masks)]
        takes_mask = "Attention" in cls  # merge layers take no mask: only compute_mask sees it
        passed = {"mask": mask} if mask is not None and takes_mask else {}
        layer(given, **passed, **call_kwargs)  # build
        weights = [rng.uniform(0.2, 1.2, size=w.shape).astype("float32")
                   for w in layer.get_weights()]
        if weights:
            layer.set_weights(weights)
        out = as_list(layer(given, **passed, **call_kwargs))
        out_mask = layer.compute_mask(given, mask) if len(inputs) > 1 else None
        for i, x in enumerate(inputs):
            arrays[f"{name}/x/{i}"] = x
        for i, w in enumerate(weights):
            arrays[f"{name}/w/{i}"] = w
        for i, o in enumerate(out):
            arrays[f"{name}/out/{i}"] = to_numpy(o)
        if out_mask is not None:
            arrays[f"{name}/out_mask"] = to_numpy(out_mask)
        manifest[name] = {"n_outputs": len(out), "n_weights": len(weights),
                          "has_out_mask": out_mask is not None,
                          "count_params": int(layer.count_params())}
    write_npz(out_dir / "layers.npz", arrays)
    write_json(out_dir / "layers.json", manifest)
    return len(manifest)
