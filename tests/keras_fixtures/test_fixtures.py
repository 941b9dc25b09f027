"""Self-checks of the Keras fixtures: the files load, and plain NumPy re-derives Keras' numbers.

These tests pin down the semantics the README states (weight and gate order, masks, go_backwards
order, Bidirectional merging, stateful calls, optimizer steps), so a consumer can trust them.
They do not touch rnnkit. Float64 NumPy against Keras' float32: rtol=1e-5, atol=1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest

from keras_fixtures.fixtures import (
    load_file_cases,
    load_layer_case,
    load_layer_cases,
    load_layer_errors,
    load_losses,
    load_model_cases,
    load_optimizers,
    load_pad_sequences_cases,
    load_training,
    versions,
)

RTOL = ATOL = 1e-5

ACT = {
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
    "linear": lambda v: v,
    None: lambda v: v,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "hard_sigmoid": lambda v: np.clip(v / 6.0 + 0.5, 0.0, 1.0),  # Keras 3: relu6(x + 3) / 6
}


def _step(cls: str, kw: dict, w: list[np.ndarray], x: np.ndarray, states: list[np.ndarray]):
    """One Keras cell step in float64: (B, D), states -> (output, new states)."""
    act = ACT[kw.get("activation", "tanh")]
    ract = ACT[kw.get("recurrent_activation", "sigmoid")]
    use_bias = kw.get("use_bias", True)
    kernel, rec = w[0], w[1]
    h = states[0]
    if cls == "SimpleRNN":
        out = act(x @ kernel + h @ rec + (w[2] if use_bias else 0.0))
        return out, [out]
    if cls == "LSTM":
        u = rec.shape[0]
        z = x @ kernel + h @ rec + (w[2] if use_bias else 0.0)
        i, f, g, o = (z[:, k * u : (k + 1) * u] for k in range(4))
        c = ract(f) * states[1] + ract(i) * act(g)
        out = ract(o) * act(c)
        return out, [out, c]
    # GRU, gates ordered [z, r, h] in the kernel's columns.
    u = rec.shape[0]
    reset_after = kw.get("reset_after", True)
    if use_bias and reset_after:
        b_in, b_rec = w[2][0], w[2][1]
    else:
        b_in, b_rec = (w[2] if use_bias else np.zeros(3 * u)), np.zeros(3 * u)
    xz = x @ kernel + b_in
    if reset_after:
        hz = h @ rec + b_rec
        z = ract(xz[:, :u] + hz[:, :u])
        r = ract(xz[:, u : 2 * u] + hz[:, u : 2 * u])
        cand = act(xz[:, 2 * u :] + r * hz[:, 2 * u :])
    else:
        z = ract(xz[:, :u] + h @ rec[:, :u])
        r = ract(xz[:, u : 2 * u] + h @ rec[:, u : 2 * u])
        cand = act(xz[:, 2 * u :] + (r * h) @ rec[:, 2 * u :])
    out = z * h + (1.0 - z) * cand
    return out, [out]


def _run_rnn(cls, kw, w, x, mask, init):
    """Keras RNN semantics: returns (sequence in processing order, final states)."""
    w = [np.asarray(a, dtype=np.float64) for a in w]
    bsz, steps, _ = x.shape
    units = kw["units"]
    n_states = 2 if cls == "LSTM" else 1
    states = [np.asarray(s, np.float64) for s in init] if init is not None else [
        np.zeros((bsz, units)) for _ in range(n_states)
    ]
    order = range(steps - 1, -1, -1) if kw.get("go_backwards") else range(steps)
    # The fixtures come from Keras' JAX backend, whose loop shows the carried state at a masked
    # step: before the first real step that is the initial state (zero without one). The
    # TensorFlow/torch backends (and rnnkit) show zero there; see
    # tests/layers/test_keras_parity_recurrent.py.
    prev_out = states[0].copy()
    seq = []
    for t in order:
        out, new = _step(cls, kw, w, x[:, t].astype(np.float64), states)
        if mask is not None:
            m = mask[:, t][:, None]
            states = [np.where(m, n, s) for n, s in zip(new, states)]
            filler = np.zeros_like(out) if kw.get("zero_output_for_mask") else prev_out
            out = np.where(m, out, filler)
        else:
            states = new
        prev_out = out
        seq.append(out)
    return np.stack(seq, axis=1), states


def _expected_rnn(spec, weights, x, mask, init):
    cls, kw = spec["class"], spec["kwargs"]
    seq, states = _run_rnn(cls, kw, weights, x, mask, init)
    first = seq if kw.get("return_sequences") else seq[:, -1]
    return [first] + (states if kw.get("return_state") else [])


def _expected_bidi(spec, weights, x, mask, init):
    inner = spec["layer"]
    fw_kw = dict(inner["kwargs"])
    bw_spec = spec.get("backward_layer", {"class": inner["class"],
                                          "kwargs": {**fw_kw, "go_backwards": True}})
    bw_kw = dict(bw_spec["kwargs"])
    if fw_kw.get("return_sequences"):  # Bidirectional forces zero_output_for_mask
        fw_kw["zero_output_for_mask"] = bw_kw["zero_output_for_mask"] = True
    n_fw = len(weights) // 2 if "backward_layer" not in spec else 3
    n_st = 2 if inner["class"] == "LSTM" else 1
    fw_init = bw_init = None
    if init is not None:
        fw_init, bw_init = init[:n_st], init[n_st:]
    f_seq, f_st = _run_rnn(inner["class"], fw_kw, weights[:n_fw], x, mask, fw_init)
    b_seq, b_st = _run_rnn(bw_spec["class"], bw_kw, weights[n_fw:], x, mask, bw_init)
    if fw_kw.get("return_sequences"):
        f_out, b_out = f_seq, b_seq[:, ::-1]  # backward output put back in time order
    else:
        f_out, b_out = f_seq[:, -1], b_seq[:, -1]
    merge = spec["kwargs"].get("merge_mode", "concat")
    merged = {
        "concat": lambda: [np.concatenate([f_out, b_out], axis=-1)],
        "sum": lambda: [f_out + b_out],
        "mul": lambda: [f_out * b_out],
        "ave": lambda: [(f_out + b_out) / 2],
        None: lambda: [f_out, b_out],
    }[merge]()
    return merged + (f_st + b_st if fw_kw.get("return_state") else [])


RNN_CASES = load_layer_cases(group="rnn") + load_layer_cases(group="bidirectional")


@pytest.mark.parametrize("case", RNN_CASES, ids=[c.name for c in RNN_CASES])
def test_numpy_reproduces_recurrent_case(case) -> None:
    expect = _expected_bidi if case.cls == "Bidirectional" else _expected_rnn
    got = expect(case.spec, case.weights, case.x, case.mask, case.initial_state)
    assert len(got) == len(case.outputs)
    for g, k in zip(got, case.outputs):
        np.testing.assert_allclose(g, k, rtol=RTOL, atol=ATOL)


def test_stateful_calls_continue_and_reset() -> None:
    cases = load_layer_cases(group="stateful")
    assert len(cases) == 7
    for case in cases:
        c0, c1, c2 = case.calls
        assert c2.reset_states_before and not c1.reset_states_before
        for a, b in zip(c0.outputs, c2.outputs):
            np.testing.assert_array_equal(a, b)
        got = _expected_rnn(case.spec, case.weights, c1.x, c1.mask, c0.states_after)
        for g, k in zip(got, c1.outputs):
            np.testing.assert_allclose(g, k, rtol=RTOL, atol=ATOL)
        assert not np.allclose(c0.outputs[0], c1.outputs[0])


def test_masked_steps_carry_previous_output_unless_zeroed() -> None:
    rules = {}
    for case in RNN_CASES:
        if case.calls[0].initial_state is not None:  # JAX shows the initial state (see above)
            continue
        for key, rule in (case.calls[0].masked_output_steps or {}).items():
            rules.setdefault((case.cls, bool(case.kwargs.get("zero_output_for_mask"))), set()).add(rule)
    assert rules[("LSTM", False)] <= {"carry_previous", "both"}
    assert "carry_previous" in rules[("LSTM", False)]
    assert rules[("GRU", True)] == {"zeros"}
    assert rules[("Bidirectional", False)] <= {"zeros", "both"}


def test_rnn_compute_mask_propagates_input_mask() -> None:
    case = load_layer_case("lstm_rs1_st1_gb1_post")
    mask = case.calls[0].output_mask
    assert case.calls[0].output_mask_is_list and len(mask) == 3
    np.testing.assert_array_equal(mask[0], case.mask)  # not reversed by go_backwards
    assert mask[1] is None and mask[2] is None
    assert load_layer_case("gru_rs0_st0_gb0_post").calls[0].output_mask is None


def test_simple_layers() -> None:
    emb = load_layer_case("embedding_maskzero1")
    np.testing.assert_array_equal(emb.outputs[0], emb.weights[0][emb.x])
    np.testing.assert_array_equal(emb.calls[0].output_mask[0], emb.x != 0)
    assert load_layer_case("embedding_maskzero0").calls[0].output_mask is None
    for name, value in (("masking_zero", 0.0), ("masking_minus1", -1.0)):
        m = load_layer_case(name)
        keep = np.any(m.x != value, axis=-1)
        np.testing.assert_array_equal(m.calls[0].output_mask[0], keep)
        np.testing.assert_array_equal(m.outputs[0], m.x * keep[..., None])
    for act in ("relu", "tanh", "sigmoid", "hard_sigmoid", "linear"):
        d = load_layer_case(f"dense_{act}")
        want = ACT[act](d.x.astype(np.float64) @ d.weights[0] + d.weights[1])
        np.testing.assert_allclose(d.outputs[0], want, rtol=RTOL, atol=ATOL)
    d = load_layer_case("dense_softmax")
    z = d.x.astype(np.float64) @ d.weights[0] + d.weights[1]
    want = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(d.outputs[0], want / want.sum(-1, keepdims=True), rtol=RTOL, atol=ATOL)
    td = load_layer_case("timedistributed_dense_post")
    np.testing.assert_allclose(td.outputs[0], np.tanh(td.x @ td.weights[0] + td.weights[1]),
                               rtol=RTOL, atol=ATOL)
    rv = load_layer_case("repeatvector")
    np.testing.assert_array_equal(rv.outputs[0], np.repeat(rv.x[:, None], 4, axis=1))


def test_every_weight_is_random_and_nonconstant() -> None:
    for case in load_layer_cases():
        for w in case.weights:
            if w.size > 1:
                assert np.unique(w).size == w.size, case.name


def test_models_match_seed_counts() -> None:
    models = {m.name: m for m in load_model_cases()}
    assert models["seed_simplernn10_dense1"].count_params == 131
    assert models["seed_simplernn3_input_shape"].count_params == 42
    assert models["seed_simplernn3_batch_input_shape"].layer_output_shapes == [[8, 3]]
    assert models["seed_simplernn3_batch_input_shape_seq"].layer_output_shapes == [[8, 2, 3]]
    char = models["seed_char_sentiment"]
    assert (char.trainable_params, char.non_trainable_params) == (242, 121)
    np.testing.assert_array_equal(char.weights[0], np.eye(11))
    for m in models.values():
        assert m.count_params == sum(int(np.prod(w.shape)) for w in m.weights)
        assert f"Total params: {m.count_params:,}" in m.summary


def test_losses_optimizers_training_and_data_load() -> None:
    assert versions()["keras"].startswith("3.")
    losses = {e["name"]: e for e in load_losses()["losses"]}
    mse = losses["mse"]
    np.testing.assert_allclose(mse["value"], np.mean((mse["y_true"] - mse["y_pred"]) ** 2), rtol=1e-6)
    bce = losses["bce"]  # probabilities clipped to [eps, 1 - eps] in float32, eps = 1e-7
    eps = np.float32(1e-7)
    p = np.clip(bce["y_pred"].astype(np.float32), eps, np.float32(1) - eps).astype(np.float64)
    t = bce["y_true"]
    np.testing.assert_allclose(bce["value"], np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))),
                               rtol=1e-4)
    opt = load_optimizers()
    sgd = next(o for o in opt["optimizers"] if o["name"] == "sgd")
    for i in range(2):
        np.testing.assert_allclose(sgd["params_after_step"]["1"][i],
                                   opt["variables"][i] - 0.01 * opt["gradients"]["1"][i], rtol=1e-6)
    adam = next(o for o in opt["optimizers"] if o["name"] == "adam")
    # Adam's first step moves each entry by lr * g / (|g| + eps') ~ lr * sign(g).
    step = adam["params_after_step"]["1"][0] - opt["variables"][0]
    np.testing.assert_allclose(step, -0.001 * np.sign(opt["gradients"]["1"][0]), rtol=1e-3)
    for run in load_training()["runs"]:
        losses_ = np.array(run["batch_losses_before_step"])
        running = [float(np.mean(losses_[3 * e : 3 * e + k + 1])) for e in range(2) for k in range(3)]
        np.testing.assert_allclose([b["loss"] for b in run["batch_logs"]], running, rtol=1e-5)
        np.testing.assert_allclose(run["history"]["loss"], running[2::3], rtol=1e-5)
    pads = load_pad_sequences_cases()
    assert pads[0]["output"][0] == [0, 0, 1, 2, 3]  # default padding="pre"
    files = load_file_cases()
    assert len(files) == 4 and all(p.exists() for f in files for p in f["paths"].values())
    assert {e["error_type"] for e in load_layer_errors()} == {"ValueError"}
