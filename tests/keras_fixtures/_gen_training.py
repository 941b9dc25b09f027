"""Losses, metrics, optimizers, a short fit, and pad_sequences; see README.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from _gen_common import rng_for, spec, to_numpy, write_json, write_npz
from _gen_models import SEED_X, SEED_Y, build_model


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return np.asarray(value).tolist()
    return value


# ----------------------------------------------------------------------------- losses


def _f(rows: list) -> np.ndarray:
    return np.array(rows, dtype="float32")


def loss_cases() -> list[tuple[str, str, dict, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(name, Keras loss class, class kwargs, y_true, y_pred, sample_weight)."""
    rng = rng_for("losses")
    reg_t = rng.uniform(-1, 1, (4, 3)).astype("float32")
    reg_p = rng.uniform(-1, 1, (4, 3)).astype("float32")
    seq_t = rng.uniform(-1, 1, (2, 5, 3)).astype("float32")
    seq_p = rng.uniform(-1, 1, (2, 5, 3)).astype("float32")
    bin_t = _f([[1], [0], [1], [0], [1], [0]])
    # exact 0 and 1, on the right and on the wrong side of the label
    bin_p = _f([[1.0], [0.0], [0.0], [1.0], [0.7], [0.2]])
    bin_logits = _f([[100.0], [-100.0], [-100.0], [100.0], [0.0], [-1.5]])
    ml_t = _f([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    ml_p = _f([[0.9, 0.0, 1.0], [0.2, 0.5, 0.6], [1.0, 0.3, 0.0]])
    oh_t = _f([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]])
    # row 1: true class has probability 0; row 3 does not sum to 1 (Keras renormalises)
    oh_p = _f([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8], [0.2, 0.4, 0.2]])
    logits = _f([[2.0, -1.0, 0.5], [50.0, -50.0, 0.0], [0.0, 0.0, 0.0], [-3.0, 1.0, 2.0]])
    sp_t = np.array([0, 1, 2, 1], dtype="int32")
    seq_ids = np.array([[0, 2, 1, 3, 3], [1, 1, 0, 2, 3]], dtype="int32")
    seq_probs = rng.dirichlet(np.ones(4), size=(2, 5)).astype("float32")
    sw = _f([1.0, 0.5, 0.0, 2.0])
    return [
        ("mse", "MeanSquaredError", {}, reg_t, reg_p, None),
        ("mse_sample_weight", "MeanSquaredError", {}, reg_t, reg_p, sw),
        ("mse_sequence", "MeanSquaredError", {}, seq_t, seq_p, None),
        ("mse_rank_mismatch", "MeanSquaredError", {}, reg_t[:, 0], reg_p[:, :1], None),
        ("mae", "MeanAbsoluteError", {}, reg_t, reg_p, None),
        ("mae_sequence", "MeanAbsoluteError", {}, seq_t, seq_p, None),
        ("bce", "BinaryCrossentropy", {}, bin_t, bin_p, None),
        ("bce_rank1", "BinaryCrossentropy", {}, bin_t[:, 0], bin_p[:, 0], None),
        ("bce_logits", "BinaryCrossentropy", {"from_logits": True}, bin_t, bin_logits, None),
        ("bce_multilabel", "BinaryCrossentropy", {}, ml_t, ml_p, None),
        ("bce_sample_weight", "BinaryCrossentropy", {}, bin_t[:4], bin_p[:4], sw),
        ("bce_label_smoothing", "BinaryCrossentropy", {"label_smoothing": 0.1}, bin_t, bin_p, None),
        ("cce", "CategoricalCrossentropy", {}, oh_t, oh_p, None),
        ("cce_logits", "CategoricalCrossentropy", {"from_logits": True}, oh_t, logits, None),
        ("cce_label_smoothing", "CategoricalCrossentropy", {"label_smoothing": 0.1}, oh_t, oh_p,
         None),
        ("scce", "SparseCategoricalCrossentropy", {}, sp_t, oh_p, None),
        ("scce_labels_n1", "SparseCategoricalCrossentropy", {}, sp_t[:, None], oh_p, None),
        ("scce_logits", "SparseCategoricalCrossentropy", {"from_logits": True}, sp_t, logits, None),
        ("scce_sequence", "SparseCategoricalCrossentropy", {}, seq_ids, seq_probs, None),
    ]


LOSS_STRINGS = {
    "MeanSquaredError": "mse",
    "MeanAbsoluteError": "mae",
    "BinaryCrossentropy": "binary_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
}


def generate_losses(out_dir: Path) -> dict[str, int]:
    import keras

    arrays: dict[str, np.ndarray] = {}
    entries = []
    for name, cls, kwargs, y_true, y_pred, sw in loss_cases():
        loss = getattr(keras.losses, cls)(**kwargs)
        per_sample = to_numpy(getattr(keras.losses, cls)(reduction=None, **kwargs)(y_true, y_pred))
        value = float(to_numpy(loss(y_true, y_pred, sample_weight=sw)))
        arrays[f"{name}.y_true"] = y_true
        arrays[f"{name}.y_pred"] = y_pred
        arrays[f"{name}.per_sample"] = per_sample
        entry = {
            "name": name, "class": cls, "kwargs": kwargs, "string": LOSS_STRINGS[cls],
            "y_true": f"{name}.y_true", "y_pred": f"{name}.y_pred",
            "per_sample": f"{name}.per_sample", "sample_weight": None, "value": value,
            "reduction": loss.reduction,
        }
        if sw is not None:
            arrays[f"{name}.sample_weight"] = sw
            entry["sample_weight"] = f"{name}.sample_weight"
        if not kwargs and sw is None:
            # The string form resolves to a plain function returning per-sample values.
            fn = keras.losses.get(LOSS_STRINGS[cls])
            entry["string_resolves_to"] = f"{fn.__module__}.{fn.__name__}"
            np.testing.assert_array_equal(to_numpy(fn(y_true, y_pred)), per_sample)
        entries.append(entry)
    metrics = metric_cases(arrays)
    write_npz(out_dir / "losses.npz", arrays)
    write_json(out_dir / "losses.json", {"losses": entries, "metrics": metrics,
                                         "epsilon": keras.config.epsilon()})
    return {"losses": len(entries), "metrics": len(metrics)}


# ----------------------------------------------------------------------------- metrics


def metric_cases(arrays: dict[str, np.ndarray]) -> list[dict]:
    """How compile(metrics=[...]) resolves "accuracy" and what evaluate() reports on one batch."""
    import keras
    from keras.src.trainers.compile_utils import get_metric

    rng = rng_for("metrics")
    probs3 = rng.dirichlet(np.ones(3), size=6).astype("float32")
    probs3[5] = [0.4, 0.4, 0.2]  # a tie: argmax takes the first
    labels = np.array([0, 1, 2, 1, 0, 1], dtype="int32")
    cases = [
        ("binary", "binary_crossentropy", _f([[1], [0], [1], [0], [1], [0]]),
         _f([[0.9], [0.4], [0.5], [0.51], [0.2], [0.0]])),
        ("binary_logits", {"class": "BinaryCrossentropy", "kwargs": {"from_logits": True}},
         _f([[1], [0], [1], [0], [1], [0]]), _f([[2.0], [-1.0], [0.3], [0.7], [-0.2], [0.6]])),
        ("categorical", "categorical_crossentropy", np.eye(3, dtype="float32")[labels], probs3),
        ("sparse", "sparse_categorical_crossentropy", labels, probs3),
        ("sparse_labels_n1", "sparse_categorical_crossentropy", labels[:, None], probs3),
        ("sparse_sequence", "sparse_categorical_crossentropy",
         rng.integers(0, 4, size=(3, 5)).astype("int32"),
         rng.dirichlet(np.ones(4), size=(3, 5)).astype("float32")),
        ("mse_one_output", "mse", _f([[0.2], [0.8], [0.6], [0.1], [0.9], [0.4]]),
         _f([[0.3], [0.6], [0.4], [0.7], [0.55], [0.45]])),
        ("mse_three_outputs", "mse", rng.uniform(0, 1, (6, 3)).astype("float32"),
         rng.uniform(0, 1, (6, 3)).astype("float32")),
    ]
    out = []
    for name, loss, y_true, y_pred in cases:
        keras.backend.clear_session()
        loss_obj = loss if isinstance(loss, str) else getattr(keras.losses, loss["class"])(
            **loss["kwargs"])
        model = keras.Sequential([keras.Input(shape=y_pred.shape[1:]), keras.layers.Identity()])
        # mae/mse cannot broadcast integer labels against class probabilities: accuracy only.
        names = ["accuracy"] if name.startswith("sparse") else ["accuracy", "mae", "mse"]
        model.compile(loss=loss_obj, metrics=names)
        res = model.evaluate(y_pred, y_true, batch_size=len(y_pred), verbose=0, return_dict=True)
        resolved = type(get_metric("accuracy", y_true, y_pred)).__name__
        arrays[f"metric.{name}.y_true"] = y_true
        arrays[f"metric.{name}.y_pred"] = y_pred
        out.append({"name": name, "loss": loss, "y_true": f"metric.{name}.y_true",
                    "y_pred": f"metric.{name}.y_pred", "metrics": names,
                    "accuracy_resolves_to": resolved,
                    "evaluate": {k: float(v) for k, v in res.items()}})
    return out


# ----------------------------------------------------------------------------- optimizers


def generate_optimizers(out_dir: Path) -> int:
    import keras

    rng = rng_for("optimizers")
    init = [rng.uniform(-1, 1, (3, 2)).astype("float32"), rng.uniform(-1, 1, (2,)).astype("float32")]
    grads = [[rng.normal(0, 1, v.shape).astype("float32") for v in init] for _ in range(5)]
    grads[3][0][0, 0] = 0.0  # a zero gradient entry
    arrays = {"init0": init[0], "init1": init[1]}
    for step, g in enumerate(grads, start=1):
        arrays[f"grad{step}_0"], arrays[f"grad{step}_1"] = g
    builds = [(s, s, None) for s in ("adam", "sgd", "rmsprop", "adamw")] + [
        ("sgd_momentum_nesterov", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
        ("adam_amsgrad", "Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ]
    entries = []
    for name, ident, kwargs in builds:
        keras.backend.clear_session()
        opt = keras.optimizers.get(ident) if kwargs is None else getattr(keras.optimizers, ident)(**kwargs)
        variables = [keras.Variable(v.copy()) for v in init]
        for step, g in enumerate(grads, start=1):
            opt.apply_gradients(zip(g, variables))
            for i, v in enumerate(variables):
                arrays[f"{name}.step{step}_{i}"] = to_numpy(v.value)
        entries.append({
            "name": name, "built_from": ident if kwargs is None else {"class": ident, "kwargs": kwargs},
            "class": type(opt).__name__, "config": _jsonable(opt.get_config()),
            "params_after_step": {str(s): [f"{name}.step{s}_{i}" for i in range(2)]
                                  for s in range(1, 6)},
        })
    write_npz(out_dir / "optimizers.npz", arrays)
    write_json(out_dir / "optimizers.json", {
        "variables": ["init0", "init1"],
        "gradients": {str(s): [f"grad{s}_0", f"grad{s}_1"] for s in range(1, 6)},
        "optimizers": entries,
    })
    return len(entries)


# ----------------------------------------------------------------------------- fit


def generate_training(out_dir: Path) -> int:
    import keras

    specs = [spec("SimpleRNN", units=4, input_shape=[4, 1]), spec("Dense", units=1)]
    arrays: dict[str, np.ndarray] = {"x": SEED_X, "y": SEED_Y}
    runs = []
    for name, opt_spec in (("sgd", {"class": "SGD", "kwargs": {"learning_rate": 0.1}}),
                           ("adam", "adam")):
        keras.backend.clear_session()
        model = build_model(specs)
        rng = rng_for("training")
        init = [rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in model.get_weights()]
        model.set_weights(init)

        def make_opt() -> Any:
            if isinstance(opt_spec, str):
                return keras.optimizers.get(opt_spec)
            return getattr(keras.optimizers, opt_spec["class"])(**opt_spec["kwargs"])

        model.compile(optimizer=make_opt(), loss="mse", metrics=["mae"])
        batch_logs: list[dict] = []
        cb = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: batch_logs.append(
                {k: float(v) for k, v in logs.items()}))
        hist = model.fit(SEED_X, SEED_Y, batch_size=2, epochs=2, shuffle=False, verbose=0,
                         callbacks=[cb])
        final = model.get_weights()
        pred = to_numpy(model(SEED_X))

        # The same six steps one batch at a time, to record the weights after every step.
        keras.backend.clear_session()
        step_model = build_model(specs)
        step_model.set_weights(init)
        step_model.compile(optimizer=make_opt(), loss="mse", metrics=["mae"])
        step_losses = []
        for epoch in range(2):
            step_model.reset_metrics()
            for b in range(3):
                sl = slice(2 * b, 2 * b + 2)
                before = to_numpy(step_model(SEED_X[sl]))
                step_losses.append(float(np.mean((before - SEED_Y[sl]) ** 2)))
                step_model.train_on_batch(SEED_X[sl], SEED_Y[sl])
                for i, w in enumerate(step_model.get_weights()):
                    arrays[f"{name}.step{epoch * 3 + b + 1}_w{i}"] = w
        for i, (w0, w1) in enumerate(zip(init, final)):
            arrays[f"{name}.init_w{i}"] = w0
            arrays[f"{name}.final_w{i}"] = w1
            np.testing.assert_allclose(arrays[f"{name}.step6_w{i}"], w1, rtol=1e-5, atol=1e-6)
        arrays[f"{name}.pred_after_fit"] = pred
        runs.append({
            "name": name, "optimizer": opt_spec, "loss": "mse", "metrics": ["mae"],
            "fit_kwargs": {"batch_size": 2, "epochs": 2, "shuffle": False},
            "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()},
            "batch_logs": batch_logs,
            "batch_losses_before_step": step_losses,
            "init_weights": [f"{name}.init_w{i}" for i in range(len(init))],
            "final_weights": [f"{name}.final_w{i}" for i in range(len(init))],
            "weights_after_step": {str(s): [f"{name}.step{s}_w{i}" for i in range(len(init))]
                                   for s in range(1, 7)},
            "pred_after_fit": f"{name}.pred_after_fit",
            "optimizer_config": _jsonable(model.optimizer.get_config()),
        })
    write_npz(out_dir / "training.npz", arrays)
    write_json(out_dir / "training.json", {"layers": specs, "x": "x", "y": "y", "runs": runs})
    return len(runs)


# ----------------------------------------------------------------------------- pad_sequences


def generate_data(out_dir: Path) -> int:
    import keras

    seqs = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], [], [11]]
    variants = [
        {},
        {"padding": "post"},
        {"maxlen": 3},
        {"maxlen": 3, "truncating": "post"},
        {"maxlen": 3, "padding": "post", "truncating": "post"},
        {"maxlen": 6, "value": -1},
        {"maxlen": 4, "padding": "post", "truncating": "pre", "value": 9},
        {"dtype": "float32", "padding": "post", "value": 0.5},
    ]
    cases = []
    for kw in variants:
        out = keras.utils.pad_sequences(seqs, **kw)
        cases.append({"sequences": seqs, "kwargs": kw, "output": out.tolist(),
                      "dtype": str(out.dtype)})
    write_json(out_dir / "data.json", {"pad_sequences": cases})
    return len(cases)
