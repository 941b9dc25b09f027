"""rnnkit's recurrent layers against real Keras 3 outputs (tests/keras_fixtures, generated once
by tests/keras_fixtures/make_fixtures.py; Keras is not needed here).

Every recurrent, stateful and Bidirectional case: build the rnnkit layer from the case's class and
kwargs, load Keras' weights with set_weights, make the same calls (mask, initial_state,
reset_states) and compare every returned tensor, the states a stateful layer keeps, and
compute_mask. Tolerance: float32, rtol 1e-5 / atol 2e-6.

One documented difference. The fixtures come from Keras' JAX backend (versions.json), whose RNN
loop outputs the *carried state* at a masked step, so before the first real step a non-zero
``initial_state`` shows up in the output. Keras' TensorFlow and torch backends output the previous
*output* there, zero before the first real step, and rnnkit follows them (TensorFlow is Keras'
default backend and the seeds' one). Only cases with a non-zero initial state and a masked step
before the first real one (in processing order) can tell the two apart; for those the test checks
that the fixture differs from rnnkit exactly there, and that it holds the initial state there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import rnnkit.layers as layers
from keras_fixtures.fixtures import (
    LayerCall,
    layer_case_names,
    load_layer_case,
    load_layer_errors,
    versions,
)

TOL = dict(rtol=1e-5, atol=2e-6)
CASES = [name for group in ("rnn", "stateful", "bidirectional") for name in layer_case_names(group)]


def build(spec: dict[str, Any]) -> Any:
    """An rnnkit layer from a fixture spec: ``{"class", "kwargs", "layer"?, "backward_layer"?}``."""
    kwargs = dict(spec["kwargs"])
    cls = getattr(layers, spec["class"])
    if "layer" in spec:
        if "backward_layer" in spec:
            kwargs["backward_layer"] = build(spec["backward_layer"])
        return cls(build(spec["layer"]), **kwargs)
    return cls(**kwargs)


def _flat(value: Any) -> list[torch.Tensor]:
    return [v for item in value for v in _flat(item)] if isinstance(value, (list, tuple)) else [value]


def _call(layer: Any, call: LayerCall) -> list[np.ndarray]:
    kwargs: dict[str, Any] = {}
    if call.mask is not None:
        kwargs["mask"] = torch.from_numpy(call.mask)
    if call.initial_state is not None:
        kwargs["initial_state"] = [torch.from_numpy(s) for s in call.initial_state]
    return [t.detach().numpy() for t in _flat(layer(call.x, **kwargs))]


def _jax_only_steps(spec: dict[str, Any], call: LayerCall) -> np.ndarray | None:
    """(B, T) processing-order steps where the JAX backend shows the initial state and the
    TensorFlow/torch backends show zeros: masked, before the first real step, with a non-zero
    initial state, outputs not zeroed (see the module docstring). None when there are none."""
    kwargs = spec["kwargs"]
    if (
        spec["class"] == "Bidirectional"
        or call.mask is None
        or call.initial_state is None
        or kwargs.get("zero_output_for_mask")
    ):
        return None
    keep = call.mask[:, ::-1] if kwargs.get("go_backwards") else call.mask
    before_first = np.cumsum(keep, axis=1) == 0
    return before_first if before_first.any() else None


@pytest.mark.parametrize("name", CASES)
def test_keras_case(name):
    case = load_layer_case(name)
    layer = build(case.spec)
    layer.maybe_build(tuple(case.x.shape))
    assert [tuple(w.shape) for w in layer.get_weights()] == [w.shape for w in case.weights]
    layer.set_weights(case.weights)
    assert layer.count_params() == sum(w.size for w in case.weights)
    for index, call in enumerate(case.calls):
        if call.reset_states_before:
            layer.reset_states()
        got = _call(layer, call)
        assert len(got) == len(call.outputs), call.output_names
        jax_steps = _jax_only_steps(case.spec, call)
        for label, ours, keras in zip(call.output_names, got, call.outputs):
            where = f"{name} call {index} {label}"
            if jax_steps is not None and label == "output" and ours.ndim == 3:
                # JAX shows initial_state[0] (the carried h) where rnnkit shows zero
                carried = np.broadcast_to(call.initial_state[0][:, None], ours.shape)
                np.testing.assert_allclose(keras[jax_steps], carried[jax_steps], **TOL, err_msg=where)
                assert np.all(ours[jax_steps] == 0), where
                ours, keras = ours[~jax_steps], keras[~jax_steps]
            np.testing.assert_allclose(ours, keras, **TOL, err_msg=where)
        if call.states_after is not None:
            for ours, keras in zip(layer.states, call.states_after):
                np.testing.assert_allclose(ours.numpy(), keras, **TOL, err_msg=f"{name} states")
        if call.output_mask is not None or call.mask is not None:
            _check_output_mask(layer, call, name)


def _check_output_mask(layer: Any, call: LayerCall, name: str) -> None:
    mask = None if call.mask is None else torch.from_numpy(call.mask)
    ours = layer.compute_mask(torch.from_numpy(call.x), mask)
    if call.output_mask is None:
        assert ours is None or all(m is None for m in _flat(ours)), name
        return
    ours_list = _flat(ours) if isinstance(ours, (list, tuple)) else [ours]
    assert len(ours_list) == len(call.output_mask) or not call.output_mask_is_list, name
    for mine, keras in zip(ours_list, call.output_mask):
        if keras is None:
            assert mine is None, name
        else:
            np.testing.assert_array_equal(mine.numpy(), keras, err_msg=f"{name} output mask")


def test_the_fixtures_cover_what_the_layers_promise():
    names = set(CASES)
    assert len(names) >= 300
    for prefix in ("simplernn_", "gru_", "gru_ra0_", "lstm_", "bidi_", "stateful_"):
        assert any(n.startswith(prefix) for n in names), prefix
    assert versions()["floatx"] == "float32"


@pytest.mark.parametrize("entry", load_layer_errors(), ids=lambda e: e["name"])
def test_keras_refuses_and_so_do_we(entry):
    if not entry["name"].startswith("bidi_"):
        pytest.skip("not a recurrent layer case")
    with pytest.raises(ValueError):
        layer = build(entry["spec"])
        layer(np.zeros(entry["input_shape"], dtype=np.float32))
    assert entry["error_type"] == "ValueError"
