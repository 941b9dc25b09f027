"""rnnkit's version of Keras' ``testing.TestCase.run_layer_test`` for the ported Keras tests.

What it checks, as Keras' does: the config round trip (JSON, from_config, same config), the
layer's ``supports_masking``, the output shape (and values when given) of a call on random data
or ``input_data``, the number of trainable and non-trainable weights, the number of losses
after the call, and that a training step reaches every trainable weight (each gets a
gradient). Keras-internal counts (seed generators, non-trainable *variables*, mixed
precision, symbolic calls) have no rnnkit counterpart and are accepted and ignored.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

TOL = {"rtol": 1e-5, "atol": 1e-5}  # float32 golden values printed by Keras to ~7 digits

_KERAS_INTERNAL = {"expected_num_non_trainable_variables", "expected_num_seed_generators",
                   "run_mixed_precision_check", "assert_built_after_instantiation",
                   "expected_mask_shape", "custom_objects", "run_export_check"}


def close(got: Any, want: Any, **tol: float) -> None:
    got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    np.testing.assert_allclose(got, np.asarray(want), **{**TOL, **tol})


def _shapes(outputs: Any) -> Any:
    if isinstance(outputs, (list, tuple)):
        return [tuple(o.shape) for o in outputs]
    return tuple(outputs.shape)


def run_layer_test(layer_cls: Any, init_kwargs: dict[str, Any], input_shape: Any = None,
                   input_dtype: str = "float32", input_data: Any = None,
                   call_kwargs: dict[str, Any] | None = None, expected_output_shape: Any = None,
                   expected_output: Any = None, expected_num_trainable_weights: int | None = None,
                   expected_num_non_trainable_weights: int | None = None,
                   expected_num_losses: int | None = None, supports_masking: bool | None = None,
                   run_training_check: bool = True, **keras_internal: Any) -> None:
    unknown = set(keras_internal) - _KERAS_INTERNAL
    assert not unknown, f"run_layer_test does not know {sorted(unknown)}"
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    json.dumps(config)
    assert layer_cls.from_config(config).get_config() == config
    if supports_masking is not None:
        assert layer.supports_masking == supports_masking
    if input_data is None:
        rng = np.random.default_rng(0)
        if input_dtype.startswith("int"):
            input_data = rng.integers(0, 3, size=input_shape)
        else:
            input_data = rng.normal(size=input_shape).astype(input_dtype)
    outputs = layer(input_data, **(call_kwargs or {}))
    if expected_output_shape is not None:
        want = ([tuple(s) for s in expected_output_shape]
                if isinstance(expected_output_shape, list) else tuple(expected_output_shape))
        assert _shapes(outputs) == want
    if expected_output is not None:
        close(outputs, expected_output)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    if expected_num_losses is not None:
        assert len(layer.losses) == expected_num_losses
    if run_training_check and layer.trainable_weights:
        layer.train()
        outputs = layer(input_data, **{**(call_kwargs or {}), "training": True}
                        if "training" in layer._call_arguments() else (call_kwargs or {}))
        first = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        loss = first.float().square().mean() + sum(layer.losses, torch.zeros(()))
        loss.backward()
        missing = [i for i, w in enumerate(layer.trainable_weights) if w.grad is None]
        assert not missing, f"trainable weights {missing} got no gradient"
