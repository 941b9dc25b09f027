"""rnnkit's non-recurrent layers against real Keras 3 outputs (tests/keras_fixtures, group
"other", generated once by tests/keras_fixtures/make_fixtures.py; Keras is not needed here).

Every case: Dense with each of Keras 3's activations (and a 3-D input without bias), Embedding
with and without ``mask_zero``, Masking with two mask values, TimeDistributed(Dense) with and
without a mask, RepeatVector. Build the rnnkit layer from the case's class and kwargs, load
Keras' weights with ``set_weights``, call it on the same input (as a NumPy array and as a
tensor), and compare the output, ``count_params`` and ``compute_mask``.
Tolerance: float32, rtol 1e-5 / atol 2e-6 (as the recurrent parity test).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import rnnkit.layers as layers
from keras_fixtures.fixtures import LayerCall, layer_case_names, load_layer_case

TOL = dict(rtol=1e-5, atol=2e-6)
CASES = layer_case_names("other")


def build(spec: dict[str, Any]) -> Any:
    """An rnnkit layer from a fixture spec: ``{"class", "kwargs", "layer"?}``."""
    cls = getattr(layers, spec["class"])
    if "layer" in spec:
        return cls(build(spec["layer"]), **spec["kwargs"])
    return cls(**spec["kwargs"])


def _call(layer: Any, call: LayerCall, x: Any) -> np.ndarray:
    kwargs = {"mask": torch.from_numpy(call.mask)} if call.mask_passed_to_call else {}
    out = layer(x, **kwargs)
    assert isinstance(out, torch.Tensor)
    return out.detach().numpy()


@pytest.mark.parametrize("name", CASES)
def test_keras_case(name):
    case = load_layer_case(name)
    layer = build(case.spec)
    assert not layer.built  # lazy: nothing exists before the input shape is known
    layer.maybe_build(tuple(case.x.shape))
    assert [tuple(w.shape) for w in layer.get_weights()] == [w.shape for w in case.weights]
    layer.set_weights(case.weights)
    assert layer.count_params() == sum(w.size for w in case.weights)
    call = case.calls[0]
    keras = call.outputs[0]
    for x in (call.x, torch.from_numpy(call.x)):  # NumPy and tensor inputs alike
        ours = _call(layer, call, x)
        assert ours.shape == keras.shape, name
        assert ours.dtype == np.float32, name
        np.testing.assert_allclose(ours, keras, **TOL, err_msg=name)
    assert layer.compute_output_shape((None, *case.x.shape[1:])) == (None, *keras.shape[1:])

    mask = None if call.mask is None else torch.from_numpy(call.mask)
    ours_mask = layer.compute_mask(torch.from_numpy(call.x), mask)
    if call.output_mask is None:
        assert ours_mask is None, name
    else:
        assert not call.output_mask_is_list
        assert ours_mask.dtype == torch.bool
        np.testing.assert_array_equal(ours_mask.numpy(), call.output_mask[0], err_msg=name)


@pytest.mark.parametrize("name", ["masking_zero", "masking_minus1"])
def test_masking_zeroes_exactly_the_masked_steps(name):
    case = load_layer_case(name)
    mask_value = case.kwargs["mask_value"]
    keras_mask = case.calls[0].output_mask[0]
    # the fixture has both kinds of step, and Keras' mask is "any feature differs"
    assert keras_mask.any() and not keras_mask.all()
    np.testing.assert_array_equal(keras_mask, (case.x != mask_value).any(-1))
    out = build(case.spec)(case.x).numpy()
    assert np.all(out[~keras_mask] == 0.0)
    np.testing.assert_array_equal(out[keras_mask], case.x[keras_mask])


def test_embedding_mask_marks_padding_only():
    case = load_layer_case("embedding_maskzero1")
    assert (case.x == 0).any()  # the fixture has padding
    np.testing.assert_array_equal(case.calls[0].output_mask[0], case.x != 0)
    layer = build(case.spec)
    np.testing.assert_array_equal(layer.compute_mask(case.x).numpy(), case.x != 0)


def test_the_fixtures_cover_every_layer_and_activation():
    names = set(CASES)
    classes = {load_layer_case(n).cls for n in names}
    assert classes == {"Dense", "Embedding", "Masking", "TimeDistributed", "RepeatVector"}
    from rnnkit import activations

    dense_acts = {load_layer_case(n).kwargs.get("activation") for n in names
                  if n.startswith("dense_")}
    # every activation rnnkit knows, except the aliases of another one, has a Keras case
    assert set(activations.names()) - {"hard_swish"} <= dense_acts | {None}
    assert {"embedding_maskzero0", "embedding_maskzero1", "timedistributed_dense_post"} <= names
