"""Keras model configs (JSON) to rnnkit layers, by an explicit table: nothing is imported or run.

Every option of a supported Keras layer is either translated to the rnnkit constructor argument
of the same meaning, accepted because it does not change the layer's outputs (initializers,
``implementation``, ``unroll``, Keras 3's ``dtype`` policy when it is float32), or rejected with
a ``ValueError`` that names the layer and the option. An option this table does not know is
accepted only when it holds Keras' "off" value (``None``/``False``/``0``/``{}``), so a newer
Keras that adds a switch left at its default still loads, and one that turns it on does not
load silently wrong.
"""

from __future__ import annotations

from typing import Any

from ... import activations, initializers
from ...layers import (
    GRU,
    LSTM,
    Add,
    AdditiveAttention,
    Attention,
    Bidirectional,
    Concatenate,
    Dot,
    Flatten,
    Reshape,
    Dense,
    Dropout,
    Embedding,
    InputLayer,
    Layer,
    Masking,
    RepeatVector,
    SimpleRNN,
    TimeDistributed,
)

SUPPORTED_LAYERS = (
    "SimpleRNN", "GRU", "LSTM", "Bidirectional", "Embedding", "Masking", "Dense", "Dropout",
    "TimeDistributed", "RepeatVector", "InputLayer", "Concatenate", "Add", "Dot", "Attention",
    "AdditiveAttention", "Flatten", "Reshape",
)

# Keys every layer config may carry that rnnkit handles itself.
_COMMON = ("name", "trainable", "dtype", "batch_input_shape", "batch_size", "input_shape")
_PENALTIES = (
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint", "embeddings_regularizer",
    "embeddings_constraint",
)
_RNN = (
    "units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "dropout", "recurrent_dropout", "return_sequences", "return_state",
    "go_backwards", "stateful", "unroll", "seed", "zero_output_for_mask",
)
# class -> (rnnkit class, options passed on)
_TABLE: dict[str, tuple[type[Layer], tuple[str, ...]]] = {
    "SimpleRNN": (SimpleRNN, _RNN),
    "GRU": (GRU, (*_RNN, "recurrent_activation", "reset_after")),
    "LSTM": (LSTM, (*_RNN, "recurrent_activation", "unit_forget_bias")),
    "Dense": (Dense, ("units", "activation", "use_bias", "kernel_initializer",
                      "bias_initializer")),
    "Embedding": (Embedding, ("input_dim", "output_dim", "embeddings_initializer", "mask_zero",
                              "input_length")),
    "Masking": (Masking, ("mask_value",)),
    "Dropout": (Dropout, ("rate", "noise_shape", "seed")),
    "RepeatVector": (RepeatVector, ("n",)),
    "Concatenate": (Concatenate, ("axis",)),
    "Add": (Add, ()),
    "Dot": (Dot, ("axes", "normalize")),
    "Attention": (Attention, ("use_scale", "score_mode", "dropout", "seed")),
    "AdditiveAttention": (AdditiveAttention, ("use_scale", "dropout", "seed")),
    "Flatten": (Flatten, ()),
    "Reshape": (Reshape, ("target_shape",)),
}
# options that never change a layer's outputs at inference
_HARMLESS = ("implementation", "use_cudnn", "lora_alpha")
_ACTIVATION_KEYS = ("activation", "recurrent_activation")
_INITIALIZER_KEYS = ("kernel_initializer", "recurrent_initializer", "bias_initializer",
                     "embeddings_initializer")


def _off(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == {} or value == []


def _dtype_name(dtype: Any) -> str | None:
    if isinstance(dtype, dict):  # Keras 3: {"class_name": "DTypePolicy", "config": {"name": ..}}
        dtype = (dtype.get("config") or {}).get("name")
    return dtype if dtype is None or isinstance(dtype, str) else repr(dtype)


def _check_custom(spec: dict[str, Any], where: str) -> str:
    name = spec.get("class_name")
    registered = spec.get("registered_name")
    if registered not in (None, name) or (spec.get("module") or "keras").split(".")[0] != "keras":
        raise ValueError(
            f"{where}: the layer {registered or name!r} is a custom layer "
            f"(module {spec.get('module')!r}); only Keras' built-in layers can be loaded"
        )
    if name not in SUPPORTED_LAYERS:
        raise ValueError(
            f"{where}: the Keras layer class {name!r} is not supported by rnnkit "
            f"(supported: {', '.join(SUPPORTED_LAYERS)})"
        )
    return str(name)


def _activation(value: Any, where: str, keras_version: str) -> Any:
    name = value
    if isinstance(value, dict):
        name = value.get("config")
        if isinstance(name, dict):
            name = name.get("name")
        if value.get("registered_name") not in (None, "function", name) or not isinstance(name, str):
            raise ValueError(f"{where}: custom activation {value!r} is not supported")
    name = "linear" if name is None else name
    if not isinstance(name, str) or name not in activations.names():
        raise ValueError(
            f"{where}: activation {name!r} is not supported (rnnkit knows "
            f"{', '.join(activations.names())})"
        )
    if name == "hard_sigmoid" and keras_version.startswith(("1.", "2.")):
        raise ValueError(
            f"{where}: activation 'hard_sigmoid' in a Keras {keras_version} file is Keras 2's "
            "clip(0.2 x + 0.5, 0, 1); rnnkit implements Keras 3's relu6(x + 3) / 6, so the "
            "outputs would differ"
        )
    return name


def _initializer(value: Any) -> Any:
    """The initializer when rnnkit knows it, else the default: the weights are loaded anyway."""
    try:
        initializers.get(value)
    except (TypeError, ValueError):
        return None
    return value


def layer_from_config(spec: Any, keras_version: str = "3", where: str = "model") -> Layer:
    """One rnnkit layer from a Keras ``{"class_name", "config"}`` entry (see the module doc)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"{where}: a layer entry must be {{'class_name', 'config'}}, got {spec!r}")
    cls_name = _check_custom(spec, where)
    config = dict(spec["config"])
    where = f"{where}: layer {config.get('name', '?')!r} ({cls_name})"
    dtype = _dtype_name(config.get("dtype"))
    if cls_name != "InputLayer" and dtype not in (None, "float32"):
        raise ValueError(f"{where}: dtype policy {dtype!r} is not supported (only float32)")
    if config.get("time_major"):
        raise ValueError(f"{where}: time_major=True is not supported (rnnkit is batch first)")
    if config.get("cell") is not None and cls_name in ("SimpleRNN", "GRU", "LSTM"):
        raise ValueError(f"{where}: a custom 'cell' option is not supported")

    kwargs: dict[str, Any] = {}
    for key in ("name", "trainable", "batch_input_shape", "batch_size"):
        if config.get(key) is not None:
            kwargs[key] = config[key]
    if cls_name == "InputLayer":
        shape = config.get("batch_shape", config.get("batch_input_shape"))
        for key in ("sparse", "ragged", "optional"):
            if config.get(key):
                raise ValueError(f"{where}: {key}=True is not supported")
        return InputLayer(batch_shape=shape, dtype=dtype, name=config.get("name"))
    if cls_name in ("Bidirectional", "TimeDistributed"):
        return _wrapper(cls_name, config, kwargs, keras_version, where)

    cls, options = _TABLE[cls_name]
    handled = set(options) | set(_COMMON) | set(_HARMLESS) | {"time_major", "cell"}
    for key in _PENALTIES:
        if key in config:
            handled.add(key)
            if config[key] is not None:
                raise ValueError(
                    f"{where}: {key} is not supported by rnnkit; got {config[key]!r}"
                )
    for key, value in config.items():
        if key not in handled and not _off(value):
            raise ValueError(f"{where}: option {key}={value!r} is not supported by rnnkit")
    for key in options:
        if key not in config:
            continue
        value = config[key]
        if key in _ACTIVATION_KEYS:
            value = _activation(value, where, keras_version)
        elif key in _INITIALIZER_KEYS:
            value = _initializer(value)
            if value is None:
                continue
        elif key == "noise_shape" and value is not None:
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def _wrapper(cls_name: str, config: dict[str, Any], kwargs: dict[str, Any], keras_version: str,
             where: str) -> Layer:
    known = set(_COMMON) | {"layer", "merge_mode", "backward_layer", "weights"}
    for key, value in config.items():
        if key not in known and not _off(value):
            raise ValueError(f"{where}: option {key}={value!r} is not supported by rnnkit")
    inner = layer_from_config(config.get("layer"), keras_version, where)
    try:
        if cls_name == "TimeDistributed":
            if type(inner) not in (Dense, Dropout):
                raise ValueError(
                    f"TimeDistributed over {type(inner).__name__} is not supported (only Dense "
                    "and Dropout)"
                )
            return TimeDistributed(inner, **kwargs)
        backward = config.get("backward_layer")
        if backward is not None:
            backward = layer_from_config(backward, keras_version, where)
        return Bidirectional(inner, merge_mode=config.get("merge_mode", "concat"),
                             backward_layer=backward, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def sequential_layers(model_config: Any, keras_version: str) -> tuple[str | None, list[Layer],
                                                                       Any]:
    """(name, layers, build input shape) from a saved model's top-level config."""
    if not isinstance(model_config, dict):
        raise ValueError(f"The model config must be a JSON object, got {type(model_config).__name__}")
    cls_name = model_config.get("class_name")
    if cls_name != "Sequential":
        raise ValueError(
            f"Only Keras Sequential models can be loaded; this file holds a {cls_name!r} model. "
            "Rebuild it as an rnnkit Sequential and load the weights with load_keras(path, model)"
        )
    config = model_config.get("config")
    if isinstance(config, list):  # Keras 2.0-2.1 wrote the layer list itself
        config = {"layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("The Sequential config has no 'layers' list")
    layers = [layer_from_config(spec, keras_version, "Sequential") for spec in config["layers"]]
    shape = config.get("build_input_shape")
    if shape is None and config["layers"]:
        build = config["layers"][0].get("build_config") or {}
        shape = build.get("input_shape")
    return config.get("name"), layers, shape
