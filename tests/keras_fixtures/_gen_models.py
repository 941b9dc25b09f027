"""Sequential model cases (models/) and saved Keras model files (files/); see README.md."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from _gen_common import (
    build_layer,
    make_mask,
    random_weights,
    rng_for,
    shape_json,
    spec,
    to_numpy,
    write_json,
    write_npz,
)

# ----------------------------------------------------------------------------- seeds' data

SEED_X = np.array([[[(i + k) / 10] for k in range(4)] for i in range(6)], dtype="float32")
SEED_Y = np.array([(i + 4) / 10 for i in range(6)], dtype="float32").reshape(6, 1)
WORDS = ["good", "bad", "worse", "so good"]
CHAR_SET = ["<pad>"] + sorted(set("".join(WORDS)))
CHAR2IDX = {c: i for i, c in enumerate(CHAR_SET)}


def char_sentiment_inputs() -> np.ndarray:
    import keras

    seqs = [[CHAR2IDX[c] for c in w] for w in WORDS]
    return keras.utils.pad_sequences(seqs, maxlen=10, padding="post", truncating="post")


# ----------------------------------------------------------------------------- building


def _input_for(first: dict) -> Any:
    """keras.Input for the Keras-2-style shape kwargs of the first layer spec (or None)."""
    import keras

    kw = first["kwargs"]
    dtype = "int32" if first["class"] == "Embedding" else "float32"
    if "batch_input_shape" in kw:
        return keras.Input(batch_shape=tuple(kw["batch_input_shape"]), dtype=dtype)
    if "input_shape" in kw:
        return keras.Input(shape=tuple(kw["input_shape"]), batch_size=kw.get("batch_size"),
                           dtype=dtype)
    if "input_length" in kw:
        return keras.Input(shape=(kw["input_length"],), dtype=dtype)
    return None


def build_model(specs: list[dict]) -> Any:
    import keras

    inp = _input_for(specs[0])
    layers = [build_layer(s) for s in specs]
    return keras.Sequential(([inp] if inp is not None else []) + layers)


def _summary(model: Any) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda text, line_break=None: lines.append(text))
    return "\n".join(lines)


def _n_params(variables: list[Any]) -> int:
    return int(sum(int(np.prod(v.shape)) for v in variables))


def _frozen(specs: list[dict]) -> set[int]:
    """Indices of layers whose weights the spec fixes (trainable=False with an initializer)."""
    return {i for i, s in enumerate(specs) if s["kwargs"].get("trainable") is False}


def _set_random_weights(model: Any, specs: list[dict], rng: np.random.Generator) -> None:
    frozen = _frozen(specs)
    for i, layer in enumerate(model.layers):
        if i in frozen or not layer.weights:
            continue
        layer.set_weights(random_weights([w.shape for w in layer.get_weights()], rng))


# ----------------------------------------------------------------------------- model cases


def _x(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=shape).astype("float32")


def _ids(rng: np.random.Generator, batch: int, steps: int, vocab: int, padding: str) -> np.ndarray:
    ids = rng.integers(1, vocab, size=(batch, steps)).astype("int32")
    for b, n in enumerate((steps, 3, 1, steps - 2)[:batch]):
        if padding == "post":
            ids[b, n:] = 0
        else:
            ids[b, : steps - n] = 0
    return ids


def model_cases() -> list[tuple[str, list[dict], np.ndarray, str | None]]:
    one_hot = np.eye(len(CHAR_SET), dtype="float32")
    r = lambda name: rng_for("inputs/" + name)  # noqa: E731
    srnn8 = spec("SimpleRNN", units=8, return_sequences=True)
    cases = [
        ("seed_simplernn10_dense1",
         [spec("SimpleRNN", units=10, return_sequences=False, input_shape=[4, 1]),
          spec("Dense", units=1)], SEED_X, "seed 000: 131 params; x is the seed's X"),
        ("seed_simplernn3_input_shape",
         [spec("SimpleRNN", units=3, input_shape=[2, 10])],
         _x(r("s3"), (3, 2, 10)), "seed 003: 42 params"),
        ("seed_simplernn3_batch_input_shape",
         [spec("SimpleRNN", units=3, batch_input_shape=[8, 2, 10])],
         _x(r("s3b"), (8, 2, 10)), "seed 003: output shape (8, 3)"),
        ("seed_simplernn3_batch_input_shape_seq",
         [spec("SimpleRNN", units=3, batch_input_shape=[8, 2, 10], return_sequences=True)],
         _x(r("s3bs"), (8, 2, 10)), "seed 003: output shape (8, 2, 3)"),
        ("seed_char_sentiment",
         [spec("Embedding", input_dim=len(CHAR_SET), output_dim=len(CHAR_SET), trainable=False,
               mask_zero=True, input_length=10,
               embeddings_initializer={"class_name": "Constant",
                                       "config": {"value": one_hot.tolist()}}),
          spec("SimpleRNN", units=10), spec("Dense", units=2)],
         char_sentiment_inputs(),
         "seed 001: words ['good','bad','worse','so good'] -> char ids, pad_sequences(maxlen=10, "
         "padding='post'); frozen one-hot Embedding (its weights are the identity)"),
        ("seed_deep_simplernn", [srnn8, srnn8], _x(r("deep"), (3, 10, 4)),
         "seed 003: no input shape; built by the first call model(x) (see summary_before_build)"),
        ("seed_deep_simplernn_input_shape",
         [spec("SimpleRNN", units=8, return_sequences=True, input_shape=[10, 4]), srnn8, srnn8],
         _x(r("deep_in"), (3, 10, 4)), None),
        ("seed_bidi_simplernn",
         [spec("Bidirectional", srnn8, input_shape=[10, 4])], _x(r("bidi1"), (3, 10, 4)),
         "seed 003: input_shape is a kwarg of the Bidirectional wrapper"),
        ("seed_deep_bidi_simplernn",
         [spec("Bidirectional", srnn8, input_shape=[10, 4])] + [spec("Bidirectional", srnn8)] * 3,
         _x(r("bidi4"), (3, 10, 4)), None),
        ("embedding_mask_gru_dense",
         [spec("Embedding", input_dim=12, output_dim=4, mask_zero=True, input_shape=[7]),
          spec("GRU", units=5), spec("Dense", units=3, activation="softmax")],
         _ids(r("egd"), 4, 7, 12, "post"), "post-padded ids (lengths 7, 3, 1, 5)"),
        ("embedding_mask_gru_dense_prepad",
         [spec("Embedding", input_dim=12, output_dim=4, mask_zero=True, input_shape=[7]),
          spec("GRU", units=5), spec("Dense", units=3, activation="softmax")],
         _ids(r("egdp"), 4, 7, 12, "pre"), "pre-padded ids (lengths 7, 3, 1, 5)"),
        ("embedding_lstm_timedistributed",
         [spec("Embedding", input_dim=10, output_dim=4, input_shape=[6]),
          spec("LSTM", units=5, return_sequences=True),
          spec("TimeDistributed", spec("Dense", units=2))],
         _ids(r("elt"), 3, 6, 10, "post"), "no mask: padding ids 0 are ordinary tokens here"),
        ("embedding_mask_lstm_timedistributed",
         [spec("Embedding", input_dim=10, output_dim=4, mask_zero=True, input_shape=[6]),
          spec("LSTM", units=5, return_sequences=True),
          spec("TimeDistributed", spec("Dense", units=2, activation="tanh"))],
         _ids(r("emlt"), 3, 6, 10, "post"), "mask flows Embedding -> LSTM -> TimeDistributed"),
        ("masking_lstm_dense",
         [spec("Masking", mask_value=0.0, input_shape=[6, 3]), spec("LSTM", units=4),
          spec("Dense", units=1, activation="sigmoid")],
         _masked_x(r("mld"), 6, 3), "all-zero steps are masked (post padding lengths 6, 3, 1)"),
        ("one_to_many_repeatvector",
         [spec("Dense", units=4, activation="relu", input_shape=[3]), spec("RepeatVector", n=5),
          spec("SimpleRNN", units=6, return_sequences=True),
          spec("TimeDistributed", spec("Dense", units=2))],
         _x(r("o2m"), (3, 3)), None),
        ("stacked_gru_lstm_bidi",
         [spec("GRU", units=4, return_sequences=True, reset_after=False, input_shape=[5, 2]),
          spec("Bidirectional", spec("LSTM", units=3, return_sequences=True), merge_mode="sum"),
          spec("SimpleRNN", units=2)],
         _x(r("sglb"), (3, 5, 2)), None),
    ]
    return cases


def _masked_x(rng: np.random.Generator, steps: int, dim: int) -> np.ndarray:
    x = _x(rng, (3, steps, dim))
    mask = make_mask("post", 3, steps)
    x[~mask] = 0.0
    return x


def run_model_case(name: str, specs: list[dict], x: np.ndarray, notes: str | None) -> tuple[dict, dict]:
    import keras

    keras.backend.clear_session()
    model = build_model(specs)
    before = None
    if not model.built:
        before = _summary(model)
        model(x)  # builds an input-less Sequential from the first call
    _set_random_weights(model, specs, rng_for(name))
    y = to_numpy(model(x))
    weights = model.get_weights()
    arrays = {"x": x, "y": y} | {f"w{i}": w for i, w in enumerate(weights)}
    entry = {
        "name": name,
        "file": f"{name}.npz",
        "layers": specs,
        "weights": [f"w{i}" for i in range(len(weights))],
        "weight_paths": [v.path for v in model.weights],
        "weight_shapes": [list(w.shape) for w in weights],
        "count_params": int(model.count_params()),
        "trainable_params": _n_params(model.trainable_weights),
        "non_trainable_params": _n_params(model.non_trainable_weights),
        "layer_names": [layer.name for layer in model.layers],
        "layer_classes": [type(layer).__name__ for layer in model.layers],
        "layer_output_shapes": [shape_json(layer.output.shape) for layer in model.layers],
        "layer_param_counts": [int(layer.count_params()) for layer in model.layers],
        "output_shape": list(y.shape),
        "summary": _summary(model),
    }
    if before is not None:
        entry["summary_before_build"] = before
    if notes:
        entry["notes"] = notes
    return entry, arrays


def generate_models(out_dir: Path) -> int:
    manifest = []
    for name, specs, x, notes in model_cases():
        entry, arrays = run_model_case(name, specs, x, notes)
        write_npz(out_dir / entry["file"], arrays)
        manifest.append(entry)
    write_json(out_dir / "manifest.json", manifest)
    return len(manifest)


# ----------------------------------------------------------------------------- saved files


def file_cases() -> list[tuple[str, list[dict], np.ndarray]]:
    r = lambda name: rng_for("files/" + name)  # noqa: E731
    return [
        ("simplernn_dense",
         [spec("SimpleRNN", units=8, input_shape=[5, 3]), spec("Dense", units=2)],
         _x(r("a"), (3, 5, 3))),
        ("embedding_bigru_dense",
         [spec("Embedding", input_dim=10, output_dim=4, mask_zero=True, input_shape=[6]),
          spec("Bidirectional", spec("GRU", units=5)),
          spec("Dense", units=3, activation="softmax")],
         _ids(r("b"), 3, 6, 10, "post")),
        ("stacked_lstm",
         [spec("LSTM", units=6, return_sequences=True, input_shape=[5, 3]),
          spec("LSTM", units=4), spec("Dense", units=1)],
         _x(r("c"), (3, 5, 3))),
        ("lstm_timedistributed",
         [spec("LSTM", units=6, return_sequences=True, input_shape=[5, 3]),
          spec("TimeDistributed", spec("Dense", units=2))],
         _x(r("d"), (3, 5, 3))),
    ]


def _h5_tree(source: Any) -> dict[str, Any]:
    """Every dataset (path -> [shape, dtype]) and the attribute names of each group."""
    import h5py

    datasets: dict[str, Any] = {}
    attrs: dict[str, list[str]] = {}
    with h5py.File(source, "r") as f:
        attrs["/"] = sorted(f.attrs.keys())

        def visit(path: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                datasets[path] = [list(obj.shape), str(obj.dtype)]
            elif obj.attrs.keys():
                attrs[path] = sorted(obj.attrs.keys())

        f.visititems(visit)
    return {"datasets": datasets, "group_attrs": attrs}


def _keras_archive_tree(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        members = sorted(zf.namelist())
        weights = _h5_tree(io.BytesIO(zf.read("model.weights.h5")))
    return {"members": members, "model.weights.h5": weights}


def generate_files(out_dir: Path) -> int:
    import keras

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for name, specs, x in file_cases():
        keras.backend.clear_session()
        model = build_model(specs)
        _set_random_weights(model, specs, rng_for("files/" + name))
        y = to_numpy(model(x))
        weights = model.get_weights()
        entry: dict[str, Any] = {"name": name, "layers": specs, "npz": f"{name}.npz",
                                 "keras": f"{name}.keras", "weights_h5": f"{name}.weights.h5"}
        model.save(out_dir / entry["keras"])
        model.save_weights(out_dir / entry["weights_h5"])
        try:
            model.save(out_dir / f"{name}.h5")
            entry["legacy_h5"] = f"{name}.h5"
        except Exception as exc:  # noqa: BLE001 - record why Keras cannot write it
            entry["legacy_h5"] = None
            entry["legacy_h5_error"] = f"{type(exc).__name__}: {exc}"
        # Round trip through Keras itself, so a file that Keras cannot read back is caught here.
        for key in ("keras", "legacy_h5"):
            if entry.get(key):
                back = keras.models.load_model(out_dir / entry[key], compile=False)
                np.testing.assert_allclose(to_numpy(back(x)), y, rtol=0, atol=0)
        entry["weight_paths"] = [v.path for v in model.weights]
        entry["weight_shapes"] = [list(w.shape) for w in weights]
        entry["keras_tree"] = _keras_archive_tree(out_dir / entry["keras"])
        entry["weights_h5_tree"] = _h5_tree(out_dir / entry["weights_h5"])
        if entry.get("legacy_h5"):
            entry["legacy_h5_tree"] = _h5_tree(out_dir / entry["legacy_h5"])
        write_npz(out_dir / entry["npz"],
                  {"x": x, "y": y} | {f"w{i}": w for i, w in enumerate(weights)})
        manifest.append(entry)
    write_json(out_dir / "manifest.json", manifest)
    return len(manifest)
