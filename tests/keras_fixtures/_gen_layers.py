"""Layer cases: run one Keras layer on fixed inputs with random weights and record everything.

Each case becomes ``layers/<name>.npz`` plus one entry in ``layers/manifest.json``; see README.md.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from _gen_common import (
    as_list,
    build_layer,
    make_mask,
    random_weights,
    rng_for,
    spec,
    to_numpy,
    write_json,
    write_npz,
)

RNN_CLASSES = ("SimpleRNN", "GRU", "LSTM")
N_STATES = {"SimpleRNN": 1, "GRU": 1, "LSTM": 2}
B = 3  # batch size of every layer case


# ----------------------------------------------------------------------------- running one case


def _output_names(layer_spec: dict) -> list[str]:
    cls, kw = layer_spec["class"], layer_spec["kwargs"]
    if cls in RNN_CLASSES:
        names = ["output"]
        if kw.get("return_state"):
            names += ["h", "c"][: N_STATES[cls]]
        return names
    if cls == "Bidirectional":
        inner = layer_spec["layer"]
        names = ["output"] if kw.get("merge_mode", "concat") is not None else [
            "output_forward",
            "output_backward",
        ]
        if inner["kwargs"].get("return_state"):
            per = ["h", "c"][: N_STATES[inner["class"]]]
            names += [f"forward_{s}" for s in per] + [f"backward_{s}" for s in per]
        return names
    return ["output"]


def _masked_output_rule(out: np.ndarray, mask: np.ndarray, reversed_time: bool) -> str:
    """Describe what Keras put at masked steps of a returned sequence.

    ``out`` is (B, T, U) in the order Keras returned it; with ``reversed_time`` output step j
    belongs to input step T-1-j. Returns "zeros", "carry_previous" (the previous returned
    step's value, zeros before the first), "both" (every masked step qualifies as either),
    or "other".
    """
    steps = out.shape[1]
    m = mask[:, ::-1] if reversed_time else mask
    zeros = carry = True
    for b in range(out.shape[0]):
        for j in range(steps):
            if m[b, j]:
                continue
            prev = out[b, j - 1] if j > 0 else np.zeros_like(out[b, j])
            zeros &= bool(np.all(out[b, j] == 0))
            carry &= bool(np.array_equal(out[b, j], prev))
    if zeros and carry:
        return "both"
    return "zeros" if zeros else "carry_previous" if carry else "other"


def run_case(
    name: str,
    layer_spec: dict,
    calls: list[dict[str, Any]],
    *,
    weight_scale: float = 0.6,
    notes: str | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Build the layer, give it random weights, run ``calls`` in order, record inputs and outputs.

    A call is ``{"x": array, "mask": array|None, "initial_state": [arrays]|None,
    "reset_states_before": bool}``. Keys of call k >= 1 get the prefix ``call{k}_``.
    """
    import keras

    keras.backend.clear_session()
    rng = rng_for(name)
    layer = build_layer(layer_spec)
    layer.build(calls[0]["x"].shape)
    weights = random_weights([w.shape for w in layer.get_weights()], rng, weight_scale)
    layer.set_weights(weights)

    arrays: dict[str, np.ndarray] = {f"w{i}": w for i, w in enumerate(weights)}
    call_entries = []
    for k, call in enumerate(calls):
        pre = "" if k == 0 else f"call{k}_"
        if call.get("reset_states_before"):
            layer.reset_states()
        x, mask, init = call["x"], call.get("mask"), call.get("initial_state")
        kwargs: dict[str, Any] = {}
        # Keras hands a mask only to layers whose call() takes one (Dense does not: the mask
        # then only passes through compute_mask).
        mask_to_call = mask is not None and "mask" in inspect.signature(layer.call).parameters
        if mask_to_call:
            kwargs["mask"] = mask
        if init is not None:
            kwargs["initial_state"] = list(init)
        outs = [to_numpy(o) for o in as_list(layer(x, **kwargs))]
        out_mask = layer.compute_mask(x, mask) if _has_compute_mask(layer_spec) else None
        entry: dict[str, Any] = {
            "x": pre + "x",
            "mask": None if mask is None else pre + "mask",
            "initial_state": None,
            "mask_passed_to_call": mask_to_call,
            "reset_states_before": bool(call.get("reset_states_before", False)),
            "outputs": [],
            "output_names": _output_names(layer_spec),
            "output_mask": None,
        }
        arrays[pre + "x"] = x
        if mask is not None:
            arrays[pre + "mask"] = mask
        if init is not None:
            entry["initial_state"] = []
            for i, s in enumerate(init):
                arrays[f"{pre}initial_state{i}"] = s
                entry["initial_state"].append(f"{pre}initial_state{i}")
        for i, o in enumerate(outs):
            arrays[f"{pre}out{i}"] = o
            entry["outputs"].append(f"{pre}out{i}")
        if out_mask is not None:
            entry["output_mask_is_list"] = isinstance(out_mask, (list, tuple))
            entry["output_mask"] = []
            for i, om in enumerate(as_list(out_mask)):
                if om is None:
                    entry["output_mask"].append(None)
                else:
                    arrays[f"{pre}out_mask{i}"] = to_numpy(om)
                    entry["output_mask"].append(f"{pre}out_mask{i}")
        if layer_spec["kwargs"].get("stateful"):
            entry["states_after"] = []
            for i, s in enumerate(layer.states):
                arrays[f"{pre}state_after{i}"] = to_numpy(s)
                entry["states_after"].append(f"{pre}state_after{i}")
        rule = _rule_for(layer_spec, outs, mask)
        if rule is not None:
            entry["masked_output_steps"] = rule
        call_entries.append(entry)

    manifest = {
        "name": name,
        "file": f"{name}.npz",
        "spec": layer_spec,
        "weights": [f"w{i}" for i in range(len(weights))],
        "weight_paths": [v.path for v in layer.weights],
        "weight_shapes": [list(w.shape) for w in weights],
        "calls": call_entries,
    }
    if notes:
        manifest["notes"] = notes
    return manifest, arrays


def _has_compute_mask(layer_spec: dict) -> bool:
    return layer_spec["class"] not in ("RepeatVector",)


def _rule_for(layer_spec: dict, outs: list[np.ndarray], mask: np.ndarray | None) -> dict | None:
    """For masked sequence outputs, classify the values at masked steps (see _masked_output_rule)."""
    if mask is None:
        return None
    cls, kw = layer_spec["class"], layer_spec["kwargs"]
    if cls in RNN_CLASSES and kw.get("return_sequences"):
        return {"out0": _masked_output_rule(outs[0], mask, bool(kw.get("go_backwards")))}
    if cls == "Bidirectional" and layer_spec["layer"]["kwargs"].get("return_sequences"):
        n = 1 if kw.get("merge_mode", "concat") is not None else 2
        return {f"out{i}": _masked_output_rule(outs[i], mask, False) for i in range(n)}
    return None


# ----------------------------------------------------------------------------- case lists


def _x(rng: np.random.Generator, steps: int, dim: int, batch: int = B) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=(batch, steps, dim)).astype("float32")


def _rnn_spec(cls: str, units: int, **kw: Any) -> dict:
    return spec(cls, units=units, **kw)


CELLS: tuple[tuple[str, str, dict], ...] = (
    ("simplernn", "SimpleRNN", {}),
    ("gru", "GRU", {"reset_after": True}),
    ("gru_ra0", "GRU", {"reset_after": False}),
    ("lstm", "LSTM", {}),
)


def rnn_cases() -> list[tuple[str, dict, list[dict], str | None]]:
    """(name, spec, calls, notes) for single RNN layers."""
    cases: list[tuple[str, dict, list[dict], str | None]] = []
    idx = 0

    def one(name: str, sp: dict, steps: int, dim: int, mask_kind: str, init: bool = False,
            notes: str | None = None) -> None:
        rng = rng_for("inputs/" + name)
        x = _x(rng, steps, dim)
        call: dict[str, Any] = {"x": x, "mask": make_mask(mask_kind, B, steps)}
        if init:
            units = sp["kwargs"]["units"]
            call["initial_state"] = [
                rng.uniform(-0.5, 0.5, size=(B, units)).astype("float32")
                for _ in range(N_STATES[sp["class"]])
            ]
        cases.append((name, sp, [call], notes))

    # The flag grid: return_sequences x return_state x go_backwards x mask, for every cell.
    for tag, cls, extra in CELLS:
        for rs in (False, True):
            for st in (False, True):
                for gb in (False, True):
                    for mk in ("none", "post", "pre", "hole"):
                        units = 2 + idx % 3
                        sp = _rnn_spec(cls, units, return_sequences=rs, return_state=st,
                                       go_backwards=gb, **extra)
                        one(f"{tag}_rs{int(rs)}_st{int(st)}_gb{int(gb)}_{mk}", sp,
                            5 + idx % 3, 2 + (idx // 3) % 3, mk)
                        idx += 1
    # A sequence with no valid step at all, and zero_output_for_mask=True.
    for tag, cls, extra in CELLS:
        for gb in (False, True):
            sp = _rnn_spec(cls, 3, return_sequences=True, return_state=True, go_backwards=gb,
                           **extra)
            one(f"{tag}_emptyrow_gb{int(gb)}", sp, 6, 3, "empty_row",
                notes="row 2 has no valid step (length 0)")
            sp = _rnn_spec(cls, 3, return_sequences=True, return_state=True, go_backwards=gb,
                           zero_output_for_mask=True, **extra)
            one(f"{tag}_zeroout_gb{int(gb)}_hole", sp, 6, 3, "hole")
    # Non-default activations.
    act_configs = [
        ("simplernn_relu", "SimpleRNN", {"activation": "relu"}),
        ("simplernn_linear", "SimpleRNN", {"activation": "linear"}),
    ]
    for tag, cls, extra in CELLS[1:]:
        act_configs.append((f"{tag}_relu_hardsig", cls,
                            {**extra, "activation": "relu", "recurrent_activation": "hard_sigmoid"}))
        act_configs.append((f"{tag}_rectanh", cls, {**extra, "recurrent_activation": "tanh"}))
    for tag, cls, extra in act_configs:
        for mk in ("none", "post"):
            sp = _rnn_spec(cls, 4, return_sequences=True, return_state=True, **extra)
            one(f"{tag}_{mk}", sp, 6, 3, mk)
    # use_bias=False.
    for tag, cls, extra in CELLS:
        for mk in ("none", "post"):
            sp = _rnn_spec(cls, 3, return_sequences=True, return_state=True, use_bias=False,
                           **extra)
            one(f"{tag}_nobias_{mk}", sp, 5, 4, mk)
    # initial_state.
    for tag, cls, extra in CELLS:
        for mk in ("none", "post"):
            for gb in (False, True):
                sp = _rnn_spec(cls, 3, return_sequences=True, return_state=True, go_backwards=gb,
                               **extra)
                one(f"{tag}_init_gb{int(gb)}_{mk}", sp, 6, 2, mk, init=True)
    return cases


def stateful_cases() -> list[tuple[str, dict, list[dict], str | None]]:
    """stateful=True: two consecutive chunks, then reset_states() and the first chunk again."""
    cases = []
    configs = [(tag, cls, extra, {"return_sequences": True}, "none") for tag, cls, extra in CELLS]
    configs += [
        ("lstm_last", "LSTM", {}, {"return_sequences": False, "return_state": True}, "none"),
        ("gru_gb", "GRU", {}, {"return_sequences": True, "go_backwards": True}, "none"),
        ("simplernn_masked", "SimpleRNN", {}, {"return_sequences": True, "return_state": True},
         "post"),
    ]
    for tag, cls, extra, flags, mk in configs:
        name = f"stateful_{tag}"
        rng = rng_for("inputs/" + name)
        x0, x1 = _x(rng, 5, 3), _x(rng, 5, 3)
        sp = _rnn_spec(cls, 3, stateful=True, **flags, **extra)
        calls = [
            {"x": x0},
            {"x": x1, "mask": make_mask(mk, B, 5)},
            {"x": x0, "reset_states_before": True},
        ]
        cases.append((name, sp, calls,
                      "call 1 continues from call 0's final state; call 2 follows reset_states() "
                      "and repeats call 0's input, so its outputs equal call 0's"))
    return cases


def bidirectional_cases() -> list[tuple[str, dict, list[dict], str | None]]:
    cases = []
    idx = 0
    for cls in RNN_CLASSES:
        for merge in ("concat", "sum", "mul", "ave", None):
            for rs in (False, True):
                for st in (False, True):
                    for mk in ("none", "post", "pre"):
                        name = f"bidi_{cls.lower()}_{merge or 'none'}_rs{int(rs)}_st{int(st)}_{mk}"
                        rng = rng_for("inputs/" + name)
                        steps, dim = 5 + idx % 3, 2 + idx % 3
                        inner = _rnn_spec(cls, 2 + idx % 2, return_sequences=rs, return_state=st)
                        sp = spec("Bidirectional", inner, merge_mode=merge)
                        cases.append((name, sp, [{"x": _x(rng, steps, dim),
                                                  "mask": make_mask(mk, B, steps)}], None))
                        idx += 1
    extras = [
        ("bidi_gru_ra0_concat_hole",
         spec("Bidirectional", _rnn_spec("GRU", 3, return_sequences=True, reset_after=False)),
         "hole", None),
        ("bidi_lstm_concat_hole_state",
         spec("Bidirectional", _rnn_spec("LSTM", 3, return_sequences=True, return_state=True)),
         "hole", None),
    ]
    for name, sp, mk, notes in extras:
        rng = rng_for("inputs/" + name)
        cases.append((name, sp, [{"x": _x(rng, 6, 3), "mask": make_mask(mk, B, 6)}], notes))
    # An explicit backward_layer with its own settings.
    name = "bidi_lstm_backward_layer"
    sp = spec("Bidirectional", _rnn_spec("LSTM", 3, return_sequences=True), merge_mode="concat")
    sp["backward_layer"] = _rnn_spec("LSTM", 2, return_sequences=True, go_backwards=True,
                                     activation="relu")
    rng = rng_for("inputs/" + name)
    cases.append((name, sp, [{"x": _x(rng, 6, 3), "mask": make_mask("post", B, 6)}],
                  "backward_layer given explicitly (2 units, relu); kwargs of it are in spec.backward_layer"))
    # initial_state: forward states then backward states.
    for cls in RNN_CLASSES:
        for mk in ("none", "post"):
            name = f"bidi_{cls.lower()}_init_{mk}"
            rng = rng_for("inputs/" + name)
            sp = spec("Bidirectional", _rnn_spec(cls, 3, return_sequences=True, return_state=True))
            init = [rng.uniform(-0.5, 0.5, size=(B, 3)).astype("float32")
                    for _ in range(2 * N_STATES[cls])]
            cases.append((name, sp, [{"x": _x(rng, 6, 2), "mask": make_mask(mk, B, 6),
                                      "initial_state": init}],
                          "initial_state = forward states then backward states"))
    return cases


DENSE_ACTIVATIONS = (
    None, "linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softmax", "log_softmax", "elu",
    "selu", "softplus", "softsign", "swish", "silu", "gelu", "exponential", "leaky_relu", "relu6",
    "hard_silu", "mish",
)


def other_cases() -> list[tuple[str, dict, list[dict], str | None]]:
    cases = []
    # Embedding alone.
    for mz in (False, True):
        name = f"embedding_maskzero{int(mz)}"
        x = np.array([[3, 1, 6, 0, 0, 0], [0, 0, 2, 5, 4, 1], [6, 0, 3, 0, 2, 0]], dtype="int32")
        cases.append((name, spec("Embedding", input_dim=7, output_dim=3, mask_zero=mz),
                      [{"x": x}], "x is int32 token ids; out_mask0 is compute_mask(x)"))
    # Masking alone: whole-zero steps are masked (and zeroed); steps with some zeros are not.
    for mv in (0.0, -1.0):
        name = f"masking_{'zero' if mv == 0.0 else 'minus1'}"
        rng = rng_for("inputs/" + name)
        x = _x(rng, 6, 3)
        x[0, 4:] = mv
        x[1, 0] = mv
        x[1, 3] = mv
        x[2, 2, 1] = mv  # only one feature equals mask_value: not masked
        x[2, 5, :2] = mv
        cases.append((name, spec("Masking", mask_value=mv), [{"x": x}], None))
    # Dense with every common activation, on 2D input spread wide enough to hit each branch.
    for act in DENSE_ACTIVATIONS:
        name = f"dense_{act or 'None'}"
        rng = rng_for("inputs/" + name)
        x = rng.uniform(-3.0, 3.0, size=(B, 4)).astype("float32")
        cases.append((name, spec("Dense", units=5, activation=act), [{"x": x}], None))
    rng = rng_for("inputs/dense_3d")
    cases.append(("dense_3d_nobias", spec("Dense", units=3, activation="tanh", use_bias=False),
                  [{"x": _x(rng, 5, 4), "mask": make_mask("post", B, 5)}],
                  "Dense on (B,T,D) acts on the last axis; mask passes through compute_mask"))
    # TimeDistributed(Dense).
    for mk in ("none", "post"):
        name = f"timedistributed_dense_{mk}"
        rng = rng_for("inputs/" + name)
        sp = spec("TimeDistributed", spec("Dense", units=3, activation="tanh"))
        cases.append((name, sp, [{"x": _x(rng, 6, 4), "mask": make_mask(mk, B, 6)}], None))
    rng = rng_for("inputs/repeatvector")
    cases.append(("repeatvector", spec("RepeatVector", n=4),
                  [{"x": rng.uniform(-1, 1, size=(B, 3)).astype("float32")}], None))
    return cases


def error_cases() -> list[tuple[str, dict, np.ndarray]]:
    """Specs that Keras refuses; the manifest records the exception type and message."""
    x = _x(rng_for("inputs/errors"), 5, 3)
    return [
        ("bidi_inner_go_backwards",
         spec("Bidirectional", _rnn_spec("SimpleRNN", 3, return_sequences=True, go_backwards=True)),
         x),
        ("bidi_backward_layer_same_direction",
         {**spec("Bidirectional", _rnn_spec("GRU", 3, return_sequences=True)),
          "backward_layer": _rnn_spec("GRU", 3, return_sequences=True)},
         x),
        ("bidi_backward_layer_mismatched_return_sequences",
         {**spec("Bidirectional", _rnn_spec("GRU", 3, return_sequences=True)),
          "backward_layer": _rnn_spec("GRU", 3, return_sequences=False, go_backwards=True)},
         x),
        ("bidi_bad_merge_mode",
         spec("Bidirectional", _rnn_spec("LSTM", 3), merge_mode="max"), x),
    ]


def _run_error_case(name: str, layer_spec: dict, x: np.ndarray) -> dict:
    import keras

    keras.backend.clear_session()
    try:
        layer = build_layer(layer_spec)
        layer(x)
    except Exception as exc:  # noqa: BLE001 - recording whatever Keras raises
        return {"name": name, "spec": layer_spec, "input_shape": list(x.shape),
                "error_type": type(exc).__name__, "message": str(exc)}
    raise AssertionError(f"{name}: Keras accepted a spec expected to fail")


def generate(out_dir: Path) -> dict[str, int]:
    """Write every layer case; returns counts per group."""
    groups = {
        "rnn": rnn_cases(),
        "stateful": stateful_cases(),
        "bidirectional": bidirectional_cases(),
        "other": other_cases(),
    }
    manifest = []
    for group, cases in groups.items():
        for name, sp, calls, notes in cases:
            entry, arrays = run_case(name, sp, calls, notes=notes)
            entry["group"] = group
            write_npz(out_dir / entry["file"], arrays)
            manifest.append(entry)
    write_json(out_dir / "manifest.json", manifest)
    errors = [_run_error_case(*case) for case in error_cases()]
    write_json(out_dir / "errors.json", errors)
    counts = {g: len(c) for g, c in groups.items()}
    counts["errors"] = len(errors)
    return counts
