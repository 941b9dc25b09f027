"""rnnkit.export.onnx: graphs run in onnxruntime against rnnkit's own outputs.

Every exported graph is run at sequence lengths and batch sizes the export never saw (the graph
has symbolic batch/time axes), with and without a ``lengths`` input, and compared with the
model's float32 outputs at atol=1e-5 (float32 arithmetic in a different order). The Keras
fixture models are also compared with Keras' own outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import rnnkit
from rnnkit import layers as L
from rnnkit.export import onnx as export_onnx
from rnnkit.models import Sequential, load_keras
from keras_fixtures.fixtures import load_file_cases

ATOL = 1e-5
SHAPES = [(1, 1), (3, 4), (2, 9)]  # (batch, steps), none of them special to the export
STANDARD_OPS = {"RNN", "GRU", "LSTM"}


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _lengths(batch: int, steps: int, rng: np.random.Generator, low: int = 1) -> np.ndarray:
    lengths = rng.integers(low, steps + 1, size=batch)
    lengths[0] = steps  # one full-length sequence
    return lengths.astype(np.int64)


# -- rnnkit.nn / torch.nn ----------------------------------------------------------------------
NN_CASES = {
    "rnn-tanh": (rnnkit.nn.RNN, {}),
    "rnn-relu": (rnnkit.nn.RNN, {"nonlinearity": "relu"}),
    "gru": (rnnkit.nn.GRU, {}),
    "lstm": (rnnkit.nn.LSTM, {}),
    "gru-stacked-bi": (rnnkit.nn.GRU, {"num_layers": 2, "bidirectional": True}),
    "lstm-stacked-bi-batch-first": (rnnkit.nn.LSTM, {"num_layers": 3, "bidirectional": True,
                                                      "batch_first": True}),
    "rnn-bi-no-bias": (rnnkit.nn.RNN, {"bidirectional": True, "bias": False}),
}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["padded", "lengths"])
@pytest.mark.parametrize("case", sorted(NN_CASES))
def test_nn_modules_match_in_onnxruntime(tmp_path: Path, case: str, with_lengths: bool) -> None:
    cls, options = NN_CASES[case]
    module = cls(3, 5, **options).eval()
    path = tmp_path / "module.onnx"
    assert export_onnx(module, path, lengths=with_lengths) == str(path)
    assert _op_types(path) & STANDARD_OPS and "Scan" not in _op_types(path)
    session = _session(path)
    rng = np.random.default_rng(0)
    for batch, steps in SHAPES:
        shape = (batch, steps, 3) if module.batch_first else (steps, batch, 3)
        x = rng.standard_normal(shape).astype(np.float32)
        feeds: dict[str, np.ndarray] = {"input": x}
        kwargs: dict[str, Any] = {}
        if with_lengths:
            feeds["lengths"] = kwargs["lengths"] = _lengths(batch, steps, rng)
            kwargs["lengths"] = torch.from_numpy(kwargs["lengths"])
        with torch.no_grad():
            output, hidden = module(torch.from_numpy(x), **kwargs)
        expected = [output, *(hidden if isinstance(hidden, tuple) else (hidden,))]
        got = session.run(None, feeds)
        assert [o.name for o in session.get_outputs()] == ["output", "h_n", "c_n"][: len(got)]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e.numpy(), atol=ATOL, rtol=0)


def test_torch_nn_lstm_exports_with_packed_semantics(tmp_path: Path) -> None:
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).eval()
    path = tmp_path / "torch.onnx"
    export_onnx(module, path, lengths=True)
    session = _session(path)
    x = torch.randn(6, 3, 3)
    lengths = torch.tensor([6, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.no_grad():
        out_packed, (h, c) = module(packed)
    output, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, total_length=6)
    got = session.run(None, {"input": x.numpy(), "lengths": lengths.numpy()})
    for g, e in zip(got, (output, h, c)):
        np.testing.assert_allclose(g, e.numpy(), atol=ATOL, rtol=0)


def test_nn_projection_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="proj_size"):
        export_onnx(rnnkit.nn.LSTM(3, 4, proj_size=2), tmp_path / "p.onnx")


# -- Keras fixture models ----------------------------------------------------------------------
FILE_CASES = {case["name"]: case for case in load_file_cases()}


def _model_input(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64) if x.dtype.kind in "iu" else x.astype(np.float32)


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_keras_fixture_models_match_keras_in_onnxruntime(tmp_path: Path, name: str) -> None:
    case = FILE_CASES[name]
    model = load_keras(case["paths"]["keras"])
    path = tmp_path / f"{name}.onnx"
    model.export_onnx(path)
    got, = _session(path).run(None, {"input": _model_input(case["x"])})
    np.testing.assert_allclose(got, case["y"], atol=ATOL, rtol=0)


# -- Keras-style models built here ----------------------------------------------------------------
def _float_model(*layers: L.Layer, features: int = 3) -> Sequential:
    return Sequential([L.Input(shape=(None, features)), *layers])


KERAS_CASES: dict[str, Callable[[], Sequential]] = {
    "simplernn-relu-timedistributed": lambda: _float_model(
        L.SimpleRNN(6, activation="relu", return_sequences=True), L.TimeDistributed(L.Dense(2))),
    "gru-reset-before-go-backwards": lambda: _float_model(
        L.GRU(5, reset_after=False, go_backwards=True, return_sequences=True),
        L.Dropout(0.5), L.Dense(1)),
    "lstm-go-backwards-last": lambda: _float_model(L.LSTM(4, go_backwards=True), L.Dense(2)),
    "stacked-bidirectional-sum-ave": lambda: _float_model(
        L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum"),
        L.Bidirectional(L.GRU(3), merge_mode="ave"), L.Dense(3, activation="softmax")),
    "bidirectional-mul-sequences": lambda: _float_model(
        L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode="mul")),
    "bidirectional-gru-reset-before": lambda: _float_model(
        L.Bidirectional(L.GRU(3, reset_after=False, return_sequences=True)),
        L.LSTM(2, use_bias=False)),
    "scan-activations": lambda: _float_model(
        L.LSTM(4, activation="softsign", recurrent_activation="hard_sigmoid",
               return_sequences=True),
        L.GRU(3, activation="selu", return_sequences=True),
        L.SimpleRNN(2, activation="gelu"), L.Dense(2, activation="elu")),
    "masking-holes": lambda: _float_model(
        L.Masking(0.0), L.LSTM(5, return_sequences=True), L.TimeDistributed(L.Dense(2))),
    "masking-bidirectional-stacked": lambda: _float_model(
        L.Masking(0.0), L.Bidirectional(L.GRU(3, return_sequences=True)),
        L.Bidirectional(L.SimpleRNN(2, go_backwards=False))),
}


def _masked_floats(rng: np.random.Generator, batch: int, steps: int) -> np.ndarray:
    """Float inputs with all-zero steps (Masking's padding): leading, trailing and holes, and
    one sequence padded throughout."""
    x = rng.standard_normal((batch, steps, 3)).astype(np.float32)
    drop = rng.random((batch, steps)) < 0.35
    drop[-1, :] = batch > 1  # the last sequence entirely padding (when there are several)
    x[drop] = 0.0
    return x


def _expected(model: Sequential, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    model.eval()  # models start in training mode (torch's rule); the export is inference
    with torch.no_grad():
        return model(torch.from_numpy(x), mask=None if mask is None else torch.from_numpy(mask)
                     ).numpy()


@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_keras_models_match_in_onnxruntime(tmp_path: Path, name: str) -> None:
    model = KERAS_CASES[name]()
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    ops = _op_types(path)
    masked = name.startswith("masking") or name == "scan-activations"
    assert ("Scan" in ops) == masked
    if not masked:
        assert ops & STANDARD_OPS
    session = _session(path)
    rng = np.random.default_rng(1)
    for batch, steps in SHAPES:
        x = (_masked_floats(rng, batch, steps) if name.startswith("masking")
             else rng.standard_normal((batch, steps, 3)).astype(np.float32))
        got, = session.run(None, {"input": x})
        np.testing.assert_allclose(got, _expected(model, x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["gru-reset-before-go-backwards", "lstm-go-backwards-last",
                                  "stacked-bidirectional-sum-ave", "simplernn-relu-timedistributed",
                                  "bidirectional-mul-sequences", "bidirectional-gru-reset-before",
                                  "scan-activations"])
def test_keras_models_with_lengths(tmp_path: Path, name: str) -> None:
    """lengths=True: the mask t < lengths[b] is the model's input mask (model(x, mask=...)).
    Such a prefix mask runs on the standard ops (sequence_lens) unless an activation needs
    the Scan."""
    model = KERAS_CASES[name]()
    path = tmp_path / "model.onnx"
    export_onnx(model, path, lengths=True)
    assert ("Scan" in _op_types(path)) == (name == "scan-activations")
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["input", "lengths"]
    rng = np.random.default_rng(2)
    for batch, steps in SHAPES:
        x = rng.standard_normal((batch, steps, 3)).astype(np.float32)
        lengths = _lengths(batch, steps, rng, low=0)  # a length of 0 is allowed here
        mask = np.arange(steps)[None, :] < lengths[:, None]
        got, = session.run(None, {"input": x, "lengths": lengths})
        np.testing.assert_allclose(got, _expected(model, x, mask), atol=ATOL, rtol=0)


def test_embedding_mask_with_leading_padding_and_holes(tmp_path: Path) -> None:
    model = Sequential([L.Input(shape=(None,), dtype="int64"),
                        L.Embedding(12, 4, mask_zero=True),
                        L.Bidirectional(L.LSTM(3, return_sequences=True)),
                        L.GRU(4), L.Dense(1, activation="sigmoid")])
    path = tmp_path / "embedding.onnx"
    export_onnx(model, path)
    session = _session(path)
    assert session.get_inputs()[0].type == "tensor(int64)"
    rng = np.random.default_rng(3)
    for batch, steps in SHAPES:
        ids = rng.integers(1, 12, size=(batch, steps))
        ids[rng.random((batch, steps)) < 0.3] = 0  # holes
        ids[0, : steps // 2] = 0  # leading padding ('pre', pad_sequences' default)
        got, = session.run(None, {"input": ids.astype(np.int64)})
        np.testing.assert_allclose(got, _expected(model, ids.astype(np.int64)), atol=ATOL,
                                   rtol=0)


@pytest.mark.parametrize("layer_class", [L.PeepholeLSTM, L.LayerNormLSTM, L.LayerNormGRU])
@pytest.mark.parametrize("source", ["embedding-mask", "lengths", "no-mask"])
def test_lstm_and_gru_variants_run_as_a_scan(tmp_path: Path, layer_class: Any,
                                             source: str) -> None:
    """The peephole and layer-normalised cells have no ONNX operator: a Scan over their step
    (LayerNormalization inside), with weights away from their initial values, both directions
    and Bidirectional, at lengths the export never saw."""
    if source == "embedding-mask":
        front = [L.Input(shape=(None,), dtype="int64"), L.Embedding(12, 3, mask_zero=True)]
    else:
        front = [L.Input(shape=(None, 3))]
    model = Sequential([*front, L.Bidirectional(layer_class(3, return_sequences=True)),
                        layer_class(4, return_sequences=True, go_backwards=True),
                        layer_class(2), L.Dense(2)])
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    path = tmp_path / "variants.onnx"
    export_onnx(model, path, lengths=source == "lengths")
    ops = _op_types(path)
    assert "Scan" in ops and not ops & STANDARD_OPS
    session = _session(path)
    rng = np.random.default_rng(4)
    for batch, steps in SHAPES:
        if source == "embedding-mask":
            ids = rng.integers(1, 12, size=(batch, steps))
            ids[rng.random((batch, steps)) < 0.3] = 0  # holes
            ids[0, : steps // 2] = 0  # leading padding
            got, = session.run(None, {"input": ids.astype(np.int64)})
            want = _expected(model, ids.astype(np.int64))
        elif source == "lengths":
            x = rng.standard_normal((batch, steps, 3)).astype(np.float32)
            lengths = _lengths(batch, steps, rng)
            got, = session.run(None, {"input": x, "lengths": lengths})
            want = _expected(model, x, np.arange(steps)[None, :] < lengths[:, None])
        else:
            x = rng.standard_normal((batch, steps, 3)).astype(np.float32)
            got, = session.run(None, {"input": x})
            want = _expected(model, x)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_repeat_vector_one_to_many(tmp_path: Path) -> None:
    model = Sequential([L.Input(shape=(3,)), L.Dense(4, activation="tanh"), L.RepeatVector(5),
                        L.LSTM(3, return_sequences=True), L.TimeDistributed(L.Dense(1))])
    path = tmp_path / "repeat.onnx"
    export_onnx(model, path)
    x = np.random.default_rng(4).standard_normal((2, 3)).astype(np.float32)
    got, = _session(path).run(None, {"input": x})
    assert got.shape == (2, 5, 1)
    np.testing.assert_allclose(got, _expected(model, x), atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="time axis"):
        export_onnx(model, tmp_path / "bad.onnx", lengths=True)


def test_single_layer_export(tmp_path: Path) -> None:
    layer = L.GRU(4, return_sequences=True, input_shape=(None, 3))
    layer.maybe_build((None, None, 3))
    path = tmp_path / "layer.onnx"
    export_onnx(layer, path)
    x = np.random.default_rng(5).standard_normal((2, 7, 3)).astype(np.float32)
    got, = _session(path).run(None, {"input": x})
    with torch.no_grad():
        np.testing.assert_allclose(got, layer(torch.from_numpy(x)).numpy(), atol=ATOL, rtol=0)


# -- what is refused ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _float_model(L.LSTM(3, stateful=True, batch_size=2)), "stateful"),
        (lambda: _float_model(L.LSTM(3, return_state=True)), "return_state"),
        (lambda: _float_model(L.Bidirectional(L.GRU(3), merge_mode=None)), "merge_mode=None"),
        (lambda: _float_model(L.RNN(L.SimpleRNNCell(3))), "generic RNN over a custom cell"),
        (lambda: _float_model(L.RNN(L.LayerNormGRUCell(3))), "generic RNN over a custom cell"),
        (lambda: _float_model(L.SimpleRNN(3, activation=torch.sin)), "not one of rnnkit"),
        (lambda: _float_model(L.TimeDistributed(L.Masking(0.0))),
         "only Dense or Dropout"),
    ],
    ids=["stateful", "return_state", "merge-none", "custom-cell", "variant-cell-in-rnn",
         "custom-activation",
         "timedistributed-masking"],
)
def test_unsupported_models_are_refused(tmp_path: Path, build: Any, message: str) -> None:
    model = build()
    path = tmp_path / "refused.onnx"
    with pytest.raises(ValueError, match=message):
        export_onnx(model, path)
    assert not path.exists()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Build the model"):
        export_onnx(Sequential([L.LSTM(3)]), tmp_path / "a.onnx")
    with pytest.raises(TypeError, match="rnnkit Sequential"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "b.onnx")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(rnnkit.nn.GRU(2, 2), tmp_path / "c.onnx", opset=11)


def test_export_names_and_clean_write(tmp_path: Path) -> None:
    assert rnnkit.export.onnx is export_onnx
    model = KERAS_CASES["lstm-go-backwards-last"]()
    path = tmp_path / "m.onnx"
    assert model.export_onnx(path, lengths=True) == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary files left
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def test_models_that_are_not_a_chain_of_layers_are_refused_by_name(tmp_path: Path) -> None:
    # export asks any model (the rnnkit.Model base) for its chain of layers
    inputs = rnnkit.Input((None, 3))
    functional = rnnkit.Model(inputs, L.Dense(2)(L.LSTM(4)(inputs)), name="graph")

    class Subclassed(rnnkit.Model):
        def __init__(self):
            super().__init__(name="mine")
            self.head = L.Dense(1)

        def call(self, inputs):
            return self.head(inputs)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 3), np.float32))
    for model, name in ((functional, r"'graph' \(Functional\)"),
                        (subclassed, r"'mine' \(Subclassed\)")):
        path = tmp_path / "m.onnx"
        with pytest.raises(ValueError, match=f"Model {name} is not a chain of layers"):
            model.export_onnx(path)
        assert not path.exists()
