"""Saving and loading models: one safetensors file, JSON metadata, no pickle, atomic writes.

File layout (``model.save(path)``; any file name works, e.g. ``model.rnnkit``)::

    safetensors header
      __metadata__:
        format          "rnnkit.model" (save) or "rnnkit.weights" (save_weights)
        format_version  "1"
        rnnkit_version  the writing version
        model_config    JSON: {"class_name": "Sequential", "config": {name, layers, ...}}
        layers          JSON: [{"name", "class_name", "shapes"}] (to explain mismatches)
        compile_config  JSON: {"optimizer", "loss", "loss_weights", "metrics"} when compiled
                        (model files; loss and metrics per output where given so)
        sha256          digest of every tensor's name, dtype, shape and bytes
    tensors
      layers/<i>/<j>    weight j of layer i, in Keras' get_weights() order
      optimizer/...     the optimizer's state (iterations, moments) when saved with it

Layers are rebuilt from their configs by class name, looked up in ``rnnkit.layers`` only.
A write goes through rnnkit's one atomic writer (:mod:`rnnkit._io`: a temporary file in the
same directory, flushed to disk, renamed over the target), so a crash mid-save leaves the
previous file untouched; the header is written in a canonical order, so the same model gives
the same bytes. Reading
checks the header, the format and version, the tensor data and the digest, and reports any
problem as a ``ValueError`` naming the file.

Example::

    >>> model.save("regressor.rnnkit")                          # doctest: +SKIP
    >>> same = rnnkit.models.load_model("regressor.rnnkit")      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import warnings
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
import safetensors.torch
import torch
from torch import Tensor

from .. import _io
from ..layers import _serialization
from ..training import losses, metrics as metrics_module, optimizers

FORMAT_VERSION = 1
MODEL_FORMAT = "rnnkit.model"
WEIGHTS_FORMAT = "rnnkit.weights"
_MAX_HEADER = 100 * 1024 * 1024


# -- layer configs ------------------------------------------------------------------------------
# One layer serialiser for models and nested layers alike (rnnkit.layers._serialization).
serialize_layer = _serialization.serialize_layer
deserialize_layer = _serialization.deserialize_layer


# -- writing ------------------------------------------------------------------------------------
def _json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, (np.ndarray, np.generic, Tensor)):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.dumps(value, default=default, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"The model's configuration cannot be written as JSON: {error}") from None


def _write_all(handle: BinaryIO, data: bytes) -> None:
    handle.write(data)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` with rnnkit's one atomic writer (:mod:`rnnkit._io`): readers
    see the old file or the new one, never a partial one; the folder must exist."""
    _io.atomic_write(path, data, write=lambda handle, chunk: _write_all(handle, chunk))


def _digest(tensors: dict[str, Tensor]) -> str:
    sha = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].contiguous()
        sha.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return sha.hexdigest()


def _target(filepath: str | os.PathLike[str], overwrite: bool) -> str:
    path = os.fspath(filepath)
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot save to {path!r}: it is a directory; give a file path")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} already exists; pass overwrite=True to replace it")
    return path


def _weight_tensors(model: Any) -> tuple[dict[str, Tensor], list[dict[str, Any]]]:
    tensors: dict[str, Tensor] = {}
    layers = []
    for i, layer in enumerate(model.layers):
        weights = layer.keras_weights() if layer.built else []
        for j, weight in enumerate(weights):
            tensors[f"layers/{i}/{j}"] = weight.detach().cpu().contiguous().clone()
        layers.append({"name": layer.name, "class_name": type(layer).__name__,
                       "shapes": [list(w.shape) for w in weights]})
    return tensors, layers


def _serialize_loss(loss: Any) -> Any:
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, losses.Loss):
        return losses.serialize(loss)
    for name in ("mean_squared_error", "mean_absolute_error", "binary_crossentropy",
                 "categorical_crossentropy", "sparse_categorical_crossentropy"):
        if loss is getattr(losses, name):
            return name
    if isinstance(loss, type) and issubclass(loss, losses.Loss):
        return losses.serialize(loss())
    raise TypeError(f"a user-defined loss ({loss!r})")


def _serialize_metric(spec: Any) -> Any:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, type) and issubclass(spec, metrics_module.Metric):
        spec = spec()
    if callable(spec) and not isinstance(spec, metrics_module.Metric):
        for name in ("binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"):
            if spec is getattr(metrics_module, name):
                return name
        raise TypeError(f"a user-defined metric ({spec!r})")
    return metrics_module.serialize(spec)


def _per_output(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """``leaf`` of each entry of a per-output dict or list (a loss or metric spec), or of
    ``value`` itself; None stays None."""
    if isinstance(value, dict):
        return {key: _per_output(v, leaf) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_per_output(v, leaf) for v in value]
    return None if value is None else leaf(value)


def _serialized(value: Any) -> bool:
    """A serialised loss or metric ({"class_name", "config"}), not a dict per output."""
    return isinstance(value, dict) and "class_name" in value and "config" in value


def _per_output_back(value: Any, leaf: Callable[[Any], Any]) -> Any:
    if _serialized(value):
        return leaf(value)
    if isinstance(value, dict):
        return {key: _per_output_back(v, leaf) for key, v in value.items()}
    if isinstance(value, list):
        return [_per_output_back(v, leaf) for v in value]
    return value  # a name, a weight or None


def _compile_config(model: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not getattr(model, "compiled", False):
        return None, None
    given = model.__dict__.get("_compile_args") or {
        "loss": model.loss, "loss_weights": None, "metrics": model._metric_specs}
    try:
        return {
            "optimizer": optimizers.serialize(model.optimizer),
            "loss": _per_output(given["loss"], _serialize_loss),
            "loss_weights": given["loss_weights"],
            "metrics": _per_output(given["metrics"], _serialize_metric),
        }, None
    except TypeError as error:
        return None, f"the compile settings were not saved: they use {error}"


def save_model(model: Any, filepath: str | os.PathLike[str], overwrite: bool = True,
               include_optimizer: bool = True) -> None:
    """Write ``model`` (architecture, weights, compile settings, optimizer state) atomically."""
    path = _target(filepath, overwrite)
    _io.check_not_keras_name(path)
    tensors, layers = _weight_tensors(model)
    metadata = {
        "format": MODEL_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "rnnkit_version": _version(),
        "model_config": _json(_model_spec(model)),
        "layers": _json(layers),
    }
    compile_config, note = _compile_config(model)
    if compile_config is not None:
        metadata["compile_config"] = _json(compile_config)
        optimizer = model.optimizer
        if include_optimizer and optimizer is not None and optimizer.built:
            for key, value in optimizer.state_tensors().items():
                tensors[f"optimizer/{key}"] = value.detach().cpu().contiguous().clone()
    if note is not None:
        metadata["compile_note"] = note
    metadata["sha256"] = _digest(tensors)
    atomic_write(path, _io.safetensors_bytes(tensors, metadata))


def _model_spec(model: Any) -> dict[str, Any]:
    spec = {"class_name": type(model).__name__, "config": model.get_config()}
    shapes = model.__dict__.get("_build_input_shape")  # subclassed models: built by a call
    if shapes is not None:
        spec["build_input_shape"] = shapes
    return spec


def save_weights(model: Any, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
    """Write the model's weights (Keras order) atomically."""
    path = _target(filepath, overwrite)
    _io.check_not_keras_name(path, weights_only=True)
    model._require_built("save_weights()")
    tensors, layers = _weight_tensors(model)
    metadata = {
        "format": WEIGHTS_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "rnnkit_version": _version(),
        "layers": _json(layers),
        "sha256": _digest(tensors),
    }
    atomic_write(path, _io.safetensors_bytes(tensors, metadata))


def _version() -> str:
    from .. import __version__

    return __version__


# -- reading ------------------------------------------------------------------------------------
def _read(filepath: str | os.PathLike[str]) -> tuple[str, dict[str, str], dict[str, Tensor]]:
    """The file's metadata and tensors, every problem a ValueError naming the file."""
    path = os.fspath(filepath)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not an rnnkit model file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}")
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 8:
        raise ValueError(f"{path!r} is not an rnnkit file: it is empty or truncated "
                         f"({len(data)} bytes)")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > _MAX_HEADER:
        raise ValueError(f"{path!r} is not an rnnkit file (not safetensors: its first 8 bytes "
                         "do not give a plausible header size)")
    if 8 + header_size > len(data):
        raise ValueError(f"{path!r} is truncated: its header needs {header_size} bytes but only "
                         f"{len(data) - 8} follow")
    try:
        header = json.loads(data[8:8 + header_size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path!r} is corrupt or not an rnnkit file: its header is not valid "
                         f"JSON ({error})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or "format" not in metadata:
        raise ValueError(f"{path!r} is not an rnnkit file: it has no rnnkit metadata (a "
                         "safetensors file written by something else?)")
    if metadata["format"] not in (MODEL_FORMAT, WEIGHTS_FORMAT):
        raise ValueError(f"{path!r} has format {metadata['format']!r}, not an rnnkit model or "
                         "weights file")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ValueError(f"{path!r} has an invalid format_version "
                         f"{metadata.get('format_version')!r}") from None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path!r} uses rnnkit file format version {version} (written by rnnkit "
            f"{metadata.get('rnnkit_version', '?')}); this rnnkit ({_version()}) reads version "
            f"{FORMAT_VERSION}"
        )
    try:
        tensors = safetensors.torch.load(data)
    except Exception as error:  # safetensors raises its own error type for bad data
        raise ValueError(f"{path!r} is corrupt or truncated: {error}") from None
    if metadata.get("sha256") != _digest(tensors):
        raise ValueError(f"{path!r} is corrupt: its tensor data do not match the stored "
                         "checksum")
    return path, metadata, tensors


def _metadata_json(path: str, metadata: dict[str, str], key: str) -> Any:
    try:
        return json.loads(metadata[key])
    except KeyError:
        raise ValueError(f"{path!r} is missing its {key!r} entry") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path!r} is corrupt: its {key!r} entry is not valid JSON "
                         f"({error})") from None


def _assign_weights(model: Any, path: str, metadata: dict[str, str],
                    tensors: dict[str, Tensor]) -> None:
    saved = _metadata_json(path, metadata, "layers")
    layers = model.layers
    if len(saved) != len(layers):
        raise ValueError(
            f"{path!r} holds weights for {len(saved)} layers "
            f"({[s.get('name') for s in saved]}), but the model has {len(layers)} "
            f"({[layer.name for layer in layers]})"
        )
    values = []
    for i, (entry, layer) in enumerate(zip(saved, layers)):
        if entry.get("class_name") != type(layer).__name__:
            raise ValueError(f"{path!r}: layer {i} was a {entry.get('class_name')} "
                             f"('{entry.get('name')}') but the model's layer {i} is a "
                             f"{type(layer).__name__} ('{layer.name}')")
        params = layer.keras_weights() if layer.built else []
        if len(entry.get("shapes", [])) != len(params):
            raise ValueError(f"{path!r}: layer '{entry.get('name')}' has "
                             f"{len(entry.get('shapes', []))} weights in the file but layer "
                             f"'{layer.name}' has {len(params)}"
                             + ("" if layer.built else " (it is not built)"))
        for j, param in enumerate(params):
            key = f"layers/{i}/{j}"
            if key not in tensors:
                raise ValueError(f"{path!r} is missing tensor {key!r}")
            if tuple(tensors[key].shape) != tuple(param.shape):
                raise ValueError(f"{path!r}: weight {j} of layer '{layer.name}' has shape "
                                 f"{tuple(tensors[key].shape)} in the file but "
                                 f"{tuple(param.shape)} in the model")
            values.append((param, tensors[key]))
    with torch.no_grad():
        for param, value in values:
            param.copy_(value.to(dtype=param.dtype, device=param.device))


def load_weights(model: Any, filepath: str | os.PathLike[str]) -> None:
    """Load weights from a weights or model file into ``model`` (same layers, same shapes)."""
    path, metadata, tensors = _read(filepath)
    model._require_built("load_weights()")
    _assign_weights(model, path, metadata, tensors)


def load_model(filepath: str | os.PathLike[str], compile: bool = True,
               custom_objects: dict[str, type] | None = None) -> Any:
    """Rebuild a model written by ``model.save``: architecture, weights and, with
    ``compile=True``, its compile settings and optimizer state.

    Sequential and functional models are rebuilt from rnnkit's layers; a subclassed model,
    and a layer or cell of a class neither rnnkit's nor registered, needs its class in
    ``custom_objects`` (``{"Seq2Seq": Seq2Seq}``): nothing is imported by name from the file."""
    path, metadata, tensors = _read(filepath)
    if metadata["format"] != MODEL_FORMAT:
        raise ValueError(f"{path!r} holds weights only (written by save_weights); build the "
                         "model in code and call model.load_weights(path)")
    spec = _metadata_json(path, metadata, "model_config")
    with _serialization.custom_object_scope(custom_objects):
        model = _model_from_spec(spec, custom_objects, path)
    _assign_weights(model, path, metadata, tensors)
    if compile and "compile_note" in metadata:
        warnings.warn(f"{path!r}: {metadata['compile_note']}; call compile() on the loaded "
                      "model before training it", stacklevel=2)
    if compile and "compile_config" in metadata:
        _restore_compile(model, path, _metadata_json(path, metadata, "compile_config"), tensors)
    return model


def _model_from_spec(spec: Any, custom_objects: dict[str, type] | None, path: str) -> Any:
    from .functional import Functional
    from .sequential import Sequential

    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise ValueError(f"{path!r}: unknown model class {spec!r}")
    name = spec["class_name"]
    known: dict[str, Any] = {"Sequential": Sequential, "Functional": Functional}
    cls = (custom_objects or {}).get(name) or known.get(name)
    if cls is None:
        raise ValueError(
            f"{path!r} holds a subclassed model of class {name!r}; pass its class to "
            f"load_model(path, custom_objects={{{name!r}: {name}}}) (rnnkit never imports "
            "code named in a file)"
        )
    try:
        model = cls.from_config(spec.get("config", {}))
        shapes = spec.get("build_input_shape")
        if shapes is not None and not model.built:
            model.build(shapes)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"{path!r}: the model could not be rebuilt from its config: "
                         f"{error}") from None
    return model


def _restore_compile(model: Any, path: str, config: dict[str, Any],
                     tensors: dict[str, Tensor]) -> None:
    loss = _per_output_back(config.get("loss"), losses.deserialize)
    metrics = _per_output_back(config.get("metrics"), metrics_module.deserialize) or None
    try:
        optimizer = optimizers.deserialize(config["optimizer"])
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{path!r}: its optimizer could not be restored: {error}") from None
    model.compile(optimizer=optimizer, loss=loss, loss_weights=config.get("loss_weights"),
                  metrics=metrics)
    state = {key.removeprefix("optimizer/"): value for key, value in tensors.items()
             if key.startswith("optimizer/")}
    if state and model.built:
        optimizer.build([p for p in model.parameters() if p.requires_grad])
        try:
            optimizer.load_state_tensors(state)
        except ValueError as error:
            raise ValueError(f"{path!r}: {error}") from None


__all__ = ["save_model", "load_model", "save_weights", "load_weights", "atomic_write",
           "serialize_layer", "deserialize_layer", "FORMAT_VERSION"]
