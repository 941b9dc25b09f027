"""The seeds' examples (examples/*.py) run in-process and give the numbers the seeds show.

Each script's ``main()`` returns what it computed; these tests check real numbers: the
regression's loss falls and its predictions approach the targets, the sentiment model classifies
all four words and ignores extra padding, the parameter counts are the seeds' printed counts,
``nn.RNN`` reproduces the seed's printed outputs, and the NumPy RNN equals rnnkit's.
Float32 results are compared at rtol 1e-5 / atol 2e-6, float64 ones at 1e-12.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
F32 = dict(rtol=1e-5, atol=2e-6)
F64 = dict(rtol=1e-12, atol=1e-12)


def load(name: str) -> ModuleType:
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"rnnkit_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=None)
def run(name: str) -> dict[str, Any]:
    """main() once per script (the trainings take a few seconds)."""
    return load(name).main(verbose=False)


def total_params(summary: str) -> dict[str, int]:
    found = re.findall(r"^ (Total|Trainable|Non-trainable) params: ([\d,]+)", summary, re.M)
    return {kind: int(count.replace(",", "")) for kind, count in found}


def test_every_example_has_a_test_and_a_readme_entry():
    scripts = sorted(p.stem for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
    tested = {name for name in globals() if name.startswith("test_")}
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert len(scripts) == 9
    for script in scripts:
        topic = script[3:]
        assert any(topic in name for name in tested), script
        assert f"{script}.py" in readme, script


# ----------------------------------------------------------------------------- seed 000


def test_next_value_regression():
    out = run("01_next_value_regression")
    assert out["rnn1_output_shape"] == (1, 4, 1)
    np.testing.assert_allclose(out["X"][:, :, 0], [[(i + k) / 10 for k in range(4)]
                                                  for i in range(6)])
    np.testing.assert_allclose(out["Y"], [0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert out["count_params"] == 131
    assert total_params(out["summary"]) == {"Total": 131, "Trainable": 131, "Non-trainable": 0}
    losses = out["losses"]
    assert len(losses) == 100 and losses[-1] < losses[0] / 10
    assert losses[-1] < 0.01
    predictions = out["predictions"]
    assert predictions.shape == (6, 1)
    # the seed's own fit ended within 0.09 of every target
    np.testing.assert_allclose(predictions[:, 0], out["Y"], atol=0.09)
    assert np.all(np.diff(predictions[:, 0]) > 0)  # increasing, as the targets
    assert [p.shape for p in out["extrapolations"]] == [(1, 1), (1, 1)]
    assert all(np.isfinite(p).all() for p in out["extrapolations"])


# ----------------------------------------------------------------------------- seed 001


@pytest.mark.parametrize("part,shape", [("hello", (1, 4, 4)), ("batch", (3, 5, 4))])
def test_one_hot_hello(part, shape):
    out = run("02_one_hot_hello")[part]
    batch, steps, _ = shape
    assert out["x"].shape == shape
    assert out["outputs"].shape == (batch, steps, 2)
    assert out["state"].shape == (batch, 2)
    np.testing.assert_array_equal(out["state"], out["outputs"][:, -1])  # the last hidden state
    np.testing.assert_allclose(out["outputs"], out["reference"], **F32)
    assert np.all(np.abs(out["outputs"]) < 1)  # tanh


def test_char_sentiment():
    out = run("03_char_sentiment")
    assert out["char_set"] == ["<pad>", " ", "a", "b", "d", "e", "g", "o", "r", "s", "w"]
    assert out["x_data"].shape == (4, 10)
    np.testing.assert_array_equal(out["x_data"][0], [6, 7, 7, 4, 0, 0, 0, 0, 0, 0])  # good
    np.testing.assert_array_equal(out["x_data"][3], [9, 7, 1, 6, 7, 7, 4, 0, 0, 0])  # so good
    assert out["counts"] == {"total": 363, "trainable": 242, "non_trainable": 121}
    assert total_params(out["summary"]) == {"Total": 363, "Trainable": 242,
                                            "Non-trainable": 121}
    assert out["losses"][-1] < out["losses"][0] / 10
    np.testing.assert_array_equal(out["predicted"], out["labels"])  # all four words
    assert out["accuracy"][-1] == 1.0
    # the frozen one-hot Embedding did not move during the fit
    np.testing.assert_array_equal(out["embedding_after_fit"], out["one_hot"])
    # masking: five more zeros at the end, or the zeros in front, give the same prediction
    np.testing.assert_allclose(out["logits_longer_padding"], out["logits"], **F32)
    np.testing.assert_allclose(out["logits_pre_padding"], out["logits"], **F32)


# ----------------------------------------------------------------------------- seed 002


def test_param_counts():
    models = run("04_param_counts")["models"]
    assert [m["count_params"] for m in models] == [42, 42, 42]  # 10*3 + 3*3 + 3
    assert [m["output_shape"] for m in models] == [(None, 3), (8, 3), (8, 2, 3)]
    for m in models:
        assert total_params(m["summary"]) == {"Total": 42, "Trainable": 42, "Non-trainable": 0}


def test_numpy_rnn():
    out = run("05_numpy_rnn")
    assert out["weight_shapes"] == [(8, 4), (8, 8), (8,)]
    assert out["step_shapes"] == [(t, 8) for t in range(1, 11)]
    states = out["states"]
    assert states.shape == (10, 8) and states.dtype == np.float64
    np.testing.assert_allclose(out["reference"], states, **F64)
    np.testing.assert_allclose(out["layer"], states, **F64)
    np.testing.assert_allclose(out["nn"], states, **F64)
    # with the seed's positive random weights every unit saturates towards 1, as printed
    assert states[1:].min() > 0.99


def test_deep_and_bidirectional():
    out = run("06_deep_and_bidirectional")
    deep, bidi, deep_bidi = out["deep"], out["bidi"], out["deep_bidi"]
    assert out["deep_built_before_call"] is False
    assert deep["layer_params"] == [104, 136] and deep["count_params"] == 240
    assert deep["output_shapes"] == [(None, 10, 8), (None, 10, 8)]
    assert deep["output"].shape == (3, 10, 8)
    assert bidi["count_params"] == 208 and bidi["output_shapes"] == [(None, 10, 16)]
    np.testing.assert_allclose(bidi["output"], out["bidi_by_hand"], **F32)
    assert deep_bidi["layer_params"] == [208, 400, 400, 400]
    assert deep_bidi["count_params"] == 1408
    assert total_params(deep_bidi["summary"])["Total"] == 1408
    assert deep_bidi["output_shapes"] == [(None, 10, 16)] * 4


# ----------------------------------------------------------------------------- seed 004

SEED_004_OUTPUTS = [  # printed by the seed (torch.manual_seed(0), 4 decimals)
    [[-0.7497, -0.6135], [-0.5282, -0.2473], [-0.9136, -0.4269], [-0.9136, -0.4269],
     [-0.9028, 0.1180]],
    [[-0.5753, -0.0070], [-0.9052, 0.2597], [-0.9173, -0.1989], [-0.9173, -0.1989],
     [-0.8996, -0.2725]],
    [[-0.9077, -0.3205], [-0.8944, -0.2902], [-0.5134, -0.0288], [-0.5134, -0.0288],
     [-0.9127, -0.2222]],
]


def test_pytorch_nn_rnn():
    out = run("07_pytorch_nn_rnn")
    assert out["outputs"].shape == (3, 5, 2)  # torch.Size([3, 5, 2]) as printed
    assert out["status"].shape == (1, 5, 2)  # time first: a batch of 5
    np.testing.assert_allclose(out["outputs"], SEED_004_OUTPUTS, rtol=0, atol=5e-5)
    np.testing.assert_allclose(out["outputs"], out["torch_outputs"], **F32)
    np.testing.assert_allclose(out["status"], out["torch_status"], **F32)
    np.testing.assert_array_equal(out["status"][0], out["outputs"][-1])
    assert out["batch_first_outputs"].shape == (3, 5, 2)
    assert out["batch_first_status"].shape == (1, 3, 2)
    assert out["parameter_names"] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


# ----------------------------------------------------------------------------- seed 003


def test_tf1_basic_rnn_cell():
    out = run("08_tf1_basic_rnn_cell")
    assert out["Y0"].shape == out["Y1"].shape == (4, 5)  # (samples, neurons) as printed
    assert out["outputs"].shape == (4, 2, 5)  # outputs_val:(4, 2, 5)
    np.testing.assert_allclose(out["cell_Y0"], out["Y0"], **F32)
    np.testing.assert_allclose(out["cell_Y1"], out["Y1"], **F32)
    np.testing.assert_allclose(out["outputs"][:, 0], out["Y0"], **F32)
    np.testing.assert_allclose(out["outputs"][:, 1], out["Y1"], **F32)
    np.testing.assert_allclose(out["outputs"], out["reference"], **F32)
    # static_rnn's state and the layer's final state are the last output
    np.testing.assert_array_equal(out["cell_state"], out["cell_Y1"])
    np.testing.assert_allclose(out["final_state"], out["Y1"], **F32)


# ----------------------------------------------------------------------------- as scripts


def test_a_script_runs_from_the_command_line():
    done = subprocess.run([sys.executable, str(EXAMPLES / "04_param_counts.py")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Total params: 42") == 3


def test_main_is_deterministic_for_a_seed():
    module = load("02_one_hot_hello")
    a, b = module.main(seed=5, verbose=False), module.main(seed=5, verbose=False)
    np.testing.assert_array_equal(a["batch"]["outputs"], b["batch"]["outputs"])
    c = module.main(seed=6, verbose=False)
    assert not np.array_equal(a["batch"]["outputs"], c["batch"]["outputs"])


# ----------------------------------------------------------------------------- keras.io example
def test_lstm_seq2seq_keras_example_trains_and_decodes(monkeypatch, tmp_path):
    """keras.io's character-level seq2seq example with ``import rnnkit as keras``: a small
    version (500 generated pairs, 10 epochs, 32 units) trains, saves, reloads, builds the
    encoder/decoder sampling models from the reloaded model's layers and decodes."""
    monkeypatch.setenv("SEQ2SEQ_EPOCHS", "10")
    monkeypatch.setenv("SEQ2SEQ_SAMPLES", "500")
    monkeypatch.setenv("SEQ2SEQ_LATENT", "32")
    import torch

    torch.manual_seed(0)
    result = load("09_lstm_seq2seq").main(verbose=False, workdir=str(tmp_path))
    history = result["history"]
    assert sorted(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history["loss"][-1] < 0.75 * history["loss"][0]
    assert history["val_accuracy"][-1] > history["val_accuracy"][0]
    assert (tmp_path / "s2s_model.rnnkit").is_file()
    assert len(result["decoded"]) == 20
    limit = result["max_decoder_seq_length"]
    for _, target, decoded in result["decoded"]:
        assert decoded.endswith("\n") or len(decoded) == limit + 1
