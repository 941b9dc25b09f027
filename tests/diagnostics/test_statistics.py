"""Spectral numbers of recurrent matrices on hand-built weights, per-step statistics on
hand-built states, and the plain-language reading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit.diagnostics import (
    LayerTrace,
    Trace,
    explain,
    gradient_ratio,
    largest_singular_value,
    recurrent_matrices,
    spectral_radius,
)


def _rotation(angle: float) -> np.ndarray:
    return np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


def test_spectral_radius_and_largest_singular_value_on_known_matrices() -> None:
    assert spectral_radius(0.9 * _rotation(0.3)) == pytest.approx(0.9, rel=1e-12)
    assert largest_singular_value(0.9 * _rotation(0.3)) == pytest.approx(0.9, rel=1e-12)
    # non-normal: eigenvalues 0.5 (twice), but it stretches e_2 by about 10
    shear = np.array([[0.5, 10.0], [0.0, 0.5]])
    assert spectral_radius(shear) == pytest.approx(0.5, rel=1e-7)
    assert largest_singular_value(shear) == pytest.approx(np.linalg.svd(shear)[1][0], rel=1e-12)
    assert largest_singular_value(torch.diag(torch.tensor([3.0, -4.0]))) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="square"):
        spectral_radius(np.ones((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        largest_singular_value(np.ones(3))


def test_recurrent_matrices_of_keras_layers_split_the_gate_blocks() -> None:
    rnn = rk.layers.SimpleRNN(2, name="rnn")
    gru = rk.layers.GRU(2, name="gru")
    model = rk.Sequential([rk.layers.Input((4, 3)), rnn, rk.layers.Dense(1)])
    gru.build((None, 4, 3))
    with torch.no_grad():
        rnn.cell.recurrent_kernel.copy_(torch.tensor(0.8 * _rotation(1.0)))
        gru.cell.recurrent_kernel.copy_(torch.cat([c * torch.eye(2) for c in (0.1, 0.2, 0.3)], 1))
    (simple,) = recurrent_matrices(model)
    assert (simple.layer, simple.cell, simple.gate) == ("rnn", "SimpleRNN", "h")
    assert simple.spectral_radius == pytest.approx(0.8, rel=1e-6)
    blocks = recurrent_matrices(gru)
    assert [(b.gate, round(b.spectral_radius, 6)) for b in blocks] == [
        ("z", 0.1), ("r", 0.2), ("h", 0.3)]
    lstm = rk.layers.Bidirectional(rk.layers.LSTM(3))
    lstm.build((None, 4, 2))
    gates = [(m.layer.split("_")[0], m.gate) for m in recurrent_matrices(lstm)]
    assert gates == [(d, g) for d in ("forward", "backward") for g in "ifco"]


def test_recurrent_matrices_of_torch_style_modules() -> None:
    module = rk.nn.GRU(3, 2, num_layers=2, bidirectional=True)
    with torch.no_grad():
        module.weight_hh_l1_reverse.copy_(torch.cat([c * torch.eye(2) for c in (0.5, 0.6, 0.7)]))
    found = recurrent_matrices(module)
    assert len(found) == 4 * 3
    reverse = [m for m in found if m.layer == "weight_hh_l1_reverse"]
    assert [(m.cell, m.gate, round(m.spectral_radius, 6)) for m in reverse] == [
        ("GRU", "r", 0.5), ("GRU", "z", 0.6), ("GRU", "n", 0.7)]
    projected = recurrent_matrices(torch.nn.LSTM(3, 4, proj_size=2))
    assert len(projected) == 4 and all(math.isnan(m.spectral_radius) for m in projected)
    assert all(m.matrix.shape == (4, 2) for m in projected)


def _layer(h: np.ndarray, **kwargs) -> LayerTrace:
    return LayerTrace(name="layer", direction="forward", cell="SimpleRNN", activation="tanh",
                      h=h, **kwargs)


def test_step_statistics_on_hand_built_states() -> None:
    h = np.zeros((2, 3, 2))
    h[:, 0] = 0.5                      # mean |h| 0.5, nothing saturated
    h[:, 1] = [[1.0, 0.0], [-0.995, 0.2]]  # two of four saturated
    h[:, 2] = [[0.999, -0.999], [9.0, 9.0]]  # the second sequence is masked at t=2
    mask = np.array([[True, True, True], [True, True, False]])
    layer = _layer(h, mask=mask, gates={"z": np.full((2, 3, 2), 0.995)})
    np.testing.assert_allclose(layer.mean_abs(), [0.5, (1.0 + 0.995 + 0.2) / 4, 0.999])
    np.testing.assert_allclose(layer.saturation(), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(layer.gate_saturation()["z"], [1.0, 1.0, 1.0])
    unmasked = _layer(h)
    np.testing.assert_allclose(unmasked.mean_abs()[2], (0.999 * 2 + 18) / 4)
    relu = LayerTrace("r", "forward", "SimpleRNN", "relu", h)
    assert np.isnan(relu.saturation()).all()


def test_simple_rnn_with_large_weights_saturates_and_zero_weights_do_not() -> None:
    x = np.ones((2, 5, 1))
    for scale, expected in ((10.0, 1.0), (0.0, 0.0)):
        model = rk.Sequential([rk.layers.SimpleRNN(
            3, input_shape=(5, 1), kernel_initializer=rk.initializers.Constant(scale),
            recurrent_initializer=rk.initializers.Constant(scale))])
        layer = rk.diagnostics.trace(model, x).layers[0]
        np.testing.assert_allclose(layer.saturation(), expected)


def test_explain_reads_a_vanishing_gradient_and_a_contracting_matrix() -> None:
    norms = 10.0 ** np.linspace(-8, 0, 10)  # ||dL/dh_t|| from 1e-8 (t=0) to 1 (t=9)
    grad = np.zeros((1, 10, 1))
    grad[0, :, 0] = norms
    layer = _layer(np.zeros((1, 10, 1)), grad_h=grad)
    assert gradient_ratio(layer) == pytest.approx(1e-8)
    rnn = rk.layers.SimpleRNN(2, name="rnn")
    rnn.build((None, 10, 1))
    with torch.no_grad():
        rnn.cell.recurrent_kernel.copy_(0.5 * torch.eye(2))
    lines = explain(Trace([layer], 1.0, torch.zeros(1)), recurrent_matrices(rnn))
    assert lines[0].startswith("layer: the gradient at t=0 is 1e-08 of the gradient at t=9: "
                               "long-range dependencies cannot be learned; consider GRU/LSTM")
    assert "largest singular value 0.50 < 1" in lines[1]
    healthy = _layer(np.zeros((1, 10, 1)), grad_h=np.ones((1, 10, 1)))
    assert "reaches the whole sequence" in explain(Trace([healthy], 1.0, torch.zeros(1)))[0]
    backward = LayerTrace("b", "backward", "GRU", "tanh", np.zeros((1, 10, 1)),
                          grad_h=grad[:, ::-1].copy())
    assert gradient_ratio(backward) == pytest.approx(1e-8)  # far end is t=T-1
    assert "t=9 is 1e-08 of the gradient at t=0" in explain(Trace([backward], 1.0,
                                                                  torch.zeros(1)))[0]
