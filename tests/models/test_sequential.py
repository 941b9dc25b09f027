"""Sequential's mechanics with small user-defined layers: building from the declared input
shape, threading masks, shapes, weights in order, and the errors that name the layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import Dense, Layer, SimpleRNN
from rnnkit.models import Sequential


class Affine(Layer):
    """y = x @ kernel + bias over the last axis (a user's Dense)."""

    supports_masking = True

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = torch.nn.Parameter(torch.full((input_shape[-1], self.units), 0.5))
        self.bias = torch.nn.Parameter(torch.zeros(self.units))
        super().build(input_shape)

    def call(self, inputs):
        return inputs @ self.kernel + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)


class ZeroMask(Layer):
    """Marks time steps whose features are all zero as padding (like Masking(0.0))."""

    supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, mask=None):
        return inputs.ne(0).any(-1)


class Recorder(Layer):
    """Passes its input through and records the mask and training flag it was called with."""

    supports_masking = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def call(self, inputs, mask=None, training=None):
        self.calls.append((mask, training))
        return inputs


class LastReal(Layer):
    """The last unmasked step of each sequence: (B, T, D) -> (B, D); consumes the mask."""

    def call(self, inputs, mask=None):
        if mask is None:
            return inputs[:, -1]
        last = mask.long().cumsum(1).argmax(1)
        return inputs[torch.arange(inputs.shape[0]), last]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


class WithState(Layer):
    """Returns [outputs, state] like an RNN with return_state=True."""

    def call(self, inputs):
        return [inputs, inputs.sum(-1)]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape), tuple(input_shape[:-1])]


def test_builds_from_first_layer_input_shape():
    model = Sequential([Affine(4, input_shape=(3,)), Affine(2)])
    assert model.built and model.input_shape == (None, 3)
    assert model.layer_output_shapes() == [(None, 4), (None, 2)]
    assert model.count_params() == (3 * 4 + 4) + (4 * 2 + 2)
    batched = Sequential([Affine(2, batch_input_shape=(8, 5, 3))])
    assert batched.output_shape == (8, 5, 2)


def test_input_marker_and_build():
    class InputSpec:  # duck-typed: anything with batch_input_shape that is not a layer
        batch_input_shape = (None, 6)

    model = Sequential([InputSpec(), Affine(2)])
    assert model.built and model.layers[0].kernel.shape == (6, 2)
    assert len(model.layers) == 1
    lazy = Sequential([Affine(2)])
    assert not lazy.built
    lazy.build((None, 7))
    assert lazy.count_params() == 16
    with pytest.raises(ValueError, match="first element"):
        Sequential([Affine(2), InputSpec()])


def test_lazy_build_on_first_call():
    model = Sequential()
    model.add(Affine(3))
    model.add(Affine(1))
    with pytest.raises(ValueError, match="isn't built"):
        model.count_params()
    out = model(np.ones((4, 5), dtype=np.float32))
    assert out.shape == (4, 1) and model.built
    assert model.input_shape == (None, 5) and model.count_params() == 18 + 4


def test_mask_is_threaded_to_layers_that_take_it():
    recorder = Recorder()
    model = Sequential([ZeroMask(input_shape=(4, 2)), Affine(2), recorder, LastReal()])
    x = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
                      [[1.0, 0.0], [1.0, 1.0], [3.0, 0.0], [0.0, 0.0]]])
    out = model(x)
    mask, _ = recorder.calls[-1]
    np.testing.assert_array_equal(mask.numpy(), [[1, 1, 0, 0], [1, 1, 1, 0]])
    # LastReal picked step 1 for the first sequence and step 2 for the second.
    expected = torch.stack([x[0, 1], x[1, 2]]) @ torch.full((2, 2), 0.5)
    np.testing.assert_allclose(out.detach().numpy(), expected.numpy())
    _, final_mask = model._call_with_mask(x)
    assert final_mask is None  # LastReal does not support masking: the mask stops there


def test_training_flag_reaches_layers():
    recorder = Recorder()
    model = Sequential([Affine(2, input_shape=(2,)), recorder])
    assert model.training and recorder.training  # training mode from the start, as torch
    model(torch.ones(1, 2))  # a bare call is inference, as in Keras
    model(torch.ones(1, 2), training=False)
    model.eval()
    model(torch.ones(1, 2))
    model(torch.ones(1, 2), training=True)
    assert [training for _, training in recorder.calls] == [False, False, False, True]
    assert not recorder.training


def test_layer_returning_states_must_be_last():
    model = Sequential([Affine(2, input_shape=(3,)), WithState()])
    outputs = model(torch.ones(2, 3))
    assert isinstance(outputs, list) and len(outputs) == 2
    with pytest.raises(ValueError, match="Layer 'with_state.*returns a list of 2 tensors"):
        Sequential([WithState(input_shape=(3,)), Affine(2)])
    lazy = Sequential([WithState(name="stateful_piece"), Affine(2)])
    with pytest.raises(ValueError, match="'stateful_piece'"):
        lazy(torch.ones(2, 3))


def test_add_pop_and_names():
    first = Affine(2, name="first", input_shape=(3,))
    model = Sequential([first])
    with pytest.raises(ValueError, match="unique names.*'first'"):
        model.add(Affine(2, name="first"))
    with pytest.raises(ValueError, match="Only instances of rnnkit.layers.Layer"):
        model.add(torch.nn.Linear(2, 2))
    model.add(Affine(5))
    assert model.output_shape == (None, 5)
    popped = model.pop()
    assert isinstance(popped, Affine) and model.output_shape == (None, 2)
    assert model.get_layer("first") is first and model.get_layer(index=0) is first
    model.pop()
    with pytest.raises(TypeError, match="no layers"):
        model.pop()
    with pytest.raises(ValueError, match="no layers"):
        model(torch.ones(1, 3))


def test_default_names_count_up():
    a, b = Sequential(), Sequential()
    assert a.name.startswith("sequential") and b.name.startswith("sequential")
    assert a.name != b.name
    assert Sequential(name="mine").name == "mine"


def test_weights_in_order_and_set_weights_checks_everything_first():
    model = Sequential([Affine(2, input_shape=(3,)), Affine(1)])
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 2), (2,), (2, 1), (1,)]
    new = [np.full(w.shape, i, dtype=np.float32) for i, w in enumerate(weights)]
    model.set_weights(new)
    np.testing.assert_array_equal(model.layers[1].kernel.detach().numpy(), new[2])
    with pytest.raises(ValueError, match="list of 3 weights, but the model expects 4"):
        model.set_weights(new[:3])
    bad = [*new[:2], np.zeros((3, 1)), new[3]]
    with pytest.raises(ValueError, match=r"Layer 'affine.*' weight 0 .*shape \(2, 1\).*\(3, 1\)"):
        model.set_weights(bad)
    # nothing changed by the failed call
    np.testing.assert_array_equal(model.layers[0].kernel.detach().numpy(), new[0])


def test_trainable_flag_and_weight_lists():
    model = Sequential([Affine(2, input_shape=(3,)), Affine(1)])
    model.layers[0].trainable = False
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    model.trainable = False
    assert model.trainable_weights == []


def test_is_a_torch_module():
    model = Sequential([Affine(2, input_shape=(3,))])
    assert isinstance(model, torch.nn.Module)
    assert sum(p.numel() for p in model.parameters()) == 8
    assert set(model.state_dict()) == {"_layers.0.kernel", "_layers.0.bias"}
    model.to(torch.float64)
    assert model(torch.ones(1, 3, dtype=torch.float64)).dtype == torch.float64


class ConfiguredAffine(Affine):
    """A user's layer with a config, registered nowhere."""

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_a_users_layer_is_written_and_loads_with_custom_objects(tmp_path):
    model = Sequential([ConfiguredAffine(2, input_shape=(3,))], name="net")
    config = model.get_config()  # as Keras: written; loading it is what needs the class
    assert config["layers"][-1]["class_name"] == "ConfiguredAffine"
    assert config["layers"][-1]["module"] == ConfiguredAffine.__module__
    assert config["layers"][-1]["config"]["units"] == 2
    error = r"custom_objects=\{'ConfiguredAffine': ConfiguredAffine\}"
    with pytest.raises(ValueError, match=error):
        Sequential.from_config(config)
    model.save(tmp_path / "net.rnnkit")
    with pytest.raises(ValueError, match=error):
        rnnkit.load_model(tmp_path / "net.rnnkit")
    loaded = rnnkit.load_model(tmp_path / "net.rnnkit",
                               custom_objects={"ConfiguredAffine": ConfiguredAffine})
    assert isinstance(loaded.layers[-1], ConfiguredAffine)
    x = torch.ones(1, 3)
    torch.testing.assert_close(loaded(x), model(x))


def test_unbuilt_shapes_are_attribute_errors_with_their_message():
    """Keras raises AttributeError (hasattr is False); the message survives torch's
    Module.__getattr__, and it is still a ValueError as before."""
    model = Sequential()
    assert not hasattr(model, "input_shape") and not hasattr(model, "output_shape")
    with pytest.raises(AttributeError, match="has no input shape yet"):
        model.input_shape
    with pytest.raises(ValueError, match="has no output shape yet"):
        model.output_shape


def test_input_dim_is_the_feature_axis():
    """Keras 3 reads input_dim=n as input_shape=(n,); the recurrent layers read it as n
    features per step (an rnnkit extension: Keras would fail on rank 2)."""
    assert Sequential([Dense(4, input_dim=2)]).input_shape == (None, 2)
    assert Sequential([SimpleRNN(3, input_dim=2)]).input_shape == (None, None, 2)


def test_a_sequential_is_a_model_and_a_layer_as_in_keras():
    import rnnkit

    model = Sequential([Affine(2, input_shape=(3,))])
    assert isinstance(model, rnnkit.Model) and isinstance(model, Layer)
    assert Sequential.summary is rnnkit.Model.summary  # one implementation for every kind
    assert Sequential.fit is rnnkit.Model.fit
    outer = Sequential([model, Affine(1)])  # nested as one layer
    assert outer.built and outer.count_params() == 8 + 3
    # Keras 3: the model's own flag, not all(layer.trainable)
    model.layers[0].trainable = False
    assert model.trainable and len(model.non_trainable_weights) == 2
