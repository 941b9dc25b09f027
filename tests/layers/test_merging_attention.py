"""Concatenate, Add, Dot, Attention, AdditiveAttention, Flatten, Reshape against Keras 3.15
(tests/keras_fixtures/functional/layers.*: random inputs, weights and masks), plus errors,
gradients in float64 and Lambda."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit as rk
from keras_fixtures import functional_cases as cases
from keras_fixtures.fixtures import FIXTURES_DIR
from rnnkit import layers as L

HERE = FIXTURES_DIR / "functional"
MANIFEST = json.loads((HERE / "layers.json").read_text(encoding="utf-8"))
with np.load(HERE / "layers.npz", allow_pickle=False) as _data:
    ARRAYS = {k: _data[k] for k in _data.files}
SPECS = {case[0]: case[1:] for case in cases.LAYER_CASES}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_layer_matches_keras(name):
    cls, kwargs, call_kwargs, shapes, masks = SPECS[name]
    entry = MANIFEST[name]
    inputs = [torch.from_numpy(ARRAYS[f"{name}/x/{i}"]) for i in range(len(shapes))]
    given = inputs if len(inputs) > 1 else inputs[0]
    layer = getattr(L, cls)(**kwargs)
    mask = None
    if masks is not None:
        mask = [None if m is None else torch.from_numpy(cases.lengths_mask(s, m))
                for s, m in zip(shapes, masks)]
    passed = {"mask": mask} if mask is not None and "Attention" in cls else {}
    out = layer(given, **passed, **call_kwargs)
    if entry["n_weights"]:
        layer.set_weights([ARRAYS[f"{name}/w/{i}"] for i in range(entry["n_weights"])])
        out = layer(given, **passed, **call_kwargs)
    assert layer.count_params() == entry["count_params"]
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    assert len(outs) == entry["n_outputs"]
    for i, o in enumerate(outs):
        np.testing.assert_allclose(o.detach().numpy(), ARRAYS[f"{name}/out/{i}"], rtol=1e-5,
                                   atol=1e-6)
    if len(inputs) > 1:
        out_mask = layer.compute_mask(inputs, mask)
        assert (out_mask is not None) == entry["has_out_mask"]
        if out_mask is not None:
            np.testing.assert_array_equal(out_mask.numpy(), ARRAYS[f"{name}/out_mask"])


def test_attention_masked_value_steps_get_no_weight():
    q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    value_mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    _, weights = L.Attention()([q, v], mask=[None, value_mask], return_attention_scores=True)
    assert torch.all(weights[1, :, 2:] < 1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("cls", ["Attention", "AdditiveAttention"])
def test_attention_gradcheck_float64(cls):
    torch.set_default_dtype(torch.float64)
    try:
        layer = getattr(L, cls)(use_scale=True)
        q = torch.randn(2, 3, 4, requires_grad=True)
        v = torch.randn(2, 5, 4, requires_grad=True)
        mask = [torch.tensor([[True, True, False]] * 2), torch.tensor([[True] * 4 + [False]] * 2)]
        layer([q, v], mask=mask)
        assert torch.autograd.gradcheck(lambda a, b: layer([a, b], mask=mask), (q, v))
    finally:
        torch.set_default_dtype(torch.float32)


def test_merge_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"matching shapes except for the concatenation axis"):
        L.Concatenate()([torch.ones(2, 3, 4), torch.ones(2, 5, 4)])
    with pytest.raises(ValueError, match=r"same shape; got \(2, 3\), \(2, 4\)"):
        L.Add()([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(ValueError, match="list of inputs"):
        L.Add()(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"axis values 3 \(at axis 1\) != 4"):
        L.Dot(axes=1)([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(ValueError, match="score_mode"):
        L.Attention(score_mode="general")
    with pytest.raises(ValueError, match="query's last dimension"):
        L.Attention()([torch.ones(2, 3, 4), torch.ones(2, 5, 3)])


def test_lambda_computes_and_refuses_to_save(tmp_path):
    x = rk.Input(shape=(5, 3))
    last = L.Lambda(lambda t: t[:, -1], name="last_step")(x)
    assert last.shape == (None, 3)
    model = rk.Model(x, L.Dense(2, name="head")(last))
    data = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    head = model.get_layer("head")
    expected = data[:, -1] @ head.get_weights()[0] + head.get_weights()[1]
    np.testing.assert_allclose(model.predict(data, verbose=0), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="Lambda layer 'last_step' cannot be saved"):
        model.save(tmp_path / "m.rnnkit")


def test_reshape_and_flatten_shapes_in_a_graph():
    x = rk.Input(shape=(None, 6))
    assert L.Reshape((-1, 3))(L.Flatten()(rk.Input(shape=(4, 6)))).shape == (None, 8, 3)
    assert L.Flatten()(x).shape == (None, None)
    with pytest.raises(ValueError, match="positive sizes and at most one -1"):
        L.Reshape((-1, -1))
