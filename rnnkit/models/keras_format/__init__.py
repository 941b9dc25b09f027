"""Keras model files in: :func:`load_keras` reads ``.keras``, ``.weights.h5`` and legacy ``.h5``.

Formats (recognised by their content, not their extension):

========================  ==========================================================  ========
file                      what it holds                                               model=
========================  ==========================================================  ========
``.keras`` (Keras 3)      zip: ``config.json`` (architecture), ``model.weights.h5``   optional
``.weights.h5`` (Keras 3) HDF5, weights by layer name: ``layers/<name>/cell/vars/0``   required
legacy ``.h5`` (Keras 2,  HDF5, ``model_config`` JSON attribute and the weights under  optional
Keras 3 ``save("x.h5")``) ``model_weights/<layer>/...`` (``weight_names`` order)
Keras 2 weights ``.h5``   HDF5, ``layer_names`` at the root (``save_weights``)         required
========================  ==========================================================  ========

Only JSON and arrays are read (``zipfile``, ``json``, ``h5py``): no code from the file is ever
imported or executed, and only rnnkit's own layer classes are built (the table in
``_config.py``: SimpleRNN, GRU, LSTM, Bidirectional, Embedding, Masking, Dense, Dropout,
TimeDistributed, RepeatVector, InputLayer). Anything else, and any option rnnkit does not
implement (regularizers, constraints, custom activations, non-float32 dtype policies, ...), is
a ``ValueError`` naming it.

Example::

    >>> model = rnnkit.models.load_keras("sentiment.keras")                  # doctest: +SKIP
    >>> same = rnnkit.models.load_keras("sentiment.weights.h5", model=model)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

from .. import _functional_config
from ..model import Model
from ..sequential import Sequential
from . import _weights
from ._config import SUPPORTED_LAYERS, layer_from_config, sequential_layers

__all__ = ["SUPPORTED_LAYERS", "layer_from_config", "load_keras"]

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_MAX_JSON = 64 * 1024 * 1024


def load_keras(filepath: str | os.PathLike[str], model: Any = None) -> Any:
    """An rnnkit model (``Sequential``, or functional for a Keras functional model) from a
    Keras model or weights file.

    Args:
        filepath: a Keras 3 ``.keras`` archive, a Keras 3 ``.weights.h5`` file, or a legacy
            HDF5 ``.h5`` file (a full model, or Keras 2 ``save_weights`` output).
        model: an rnnkit model of the same architecture to load the weights into (required for
            weights-only files; with a full-model file its architecture is then ignored and
            only its weights are read). Keras 3 weights are matched by layer name, legacy
            weights by the order of the layers that have weights.

    Returns:
        ``model`` (with the weights set), or a new Sequential built from the file's config,
        in training mode like any new torch module (``predict`` runs it in inference mode,
        where its outputs equal Keras' to float32 rounding).

    Raises:
        ValueError: the file is not a Keras file, is corrupt, or uses a layer or option rnnkit
            does not support (the message names it).
        FileNotFoundError: no such file.
    """
    path = os.fspath(filepath)
    if model is not None and not isinstance(model, (Sequential, Model)):
        raise TypeError(f"model must be an rnnkit model, got {type(model).__name__}")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(_ZIP_MAGIC):
        return _load_archive(path, model)
    if magic == _HDF5_MAGIC:
        return _load_hdf5(path, model)
    raise ValueError(
        f"{path!r} is neither a Keras .keras archive (zip) nor an HDF5 .h5 file"
    )


def _build(model_config: Any, keras_version: str, source: str) -> Any:
    if isinstance(model_config, dict) and model_config.get("class_name") in ("Functional",
                                                                           "Model"):
        return _build_functional(model_config, keras_version, source)
    name, layers, shape = sequential_layers(model_config, keras_version)
    if not layers:
        raise ValueError(f"{source}: the Sequential model has no layers")
    model = Sequential(layers, name=name)
    if not model.built:
        if shape is None:
            raise ValueError(f"{source}: the model was saved unbuilt (no input shape), so it "
                             "has no weights to load")
        model.build(tuple(shape))
    return model


def _build_functional(model_config: dict[str, Any], keras_version: str, source: str) -> Any:
    """A functional model from Keras' graph config (layers by the table in ``_config.py``;
    the ``NotEqual`` ops Keras records for an Embedding's mask are rebuilt by rnnkit's mask
    rule instead)."""
    from ..functional import Functional

    def make_layer(spec: Any) -> Any:
        if isinstance(spec, dict) and spec.get("class_name") == "NotEqual":
            return _functional_config.MASK_OP
        return layer_from_config(spec, keras_version, "Functional")

    config = model_config.get("config")
    inputs, outputs, name = _functional_config.rebuild(config, make_layer, source)
    return Functional(inputs, outputs, name=name)


def _load_archive(path: str, model: Sequential | None) -> Sequential:
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            for needed in ("config.json", "model.weights.h5"):
                if needed not in members:
                    raise ValueError(f"{path!r}: the .keras archive has no {needed} "
                                     f"(members: {sorted(members)})")
            if archive.getinfo("config.json").file_size > _MAX_JSON:
                raise ValueError(f"{path!r}: config.json is implausibly large")
            config_text = archive.read("config.json")
            metadata: dict[str, Any] = {}
            if "metadata.json" in members:
                metadata = _parse_json(archive.read("metadata.json"), path, "metadata.json")
            weights = archive.read("model.weights.h5")
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path!r} is not a valid .keras archive: {error}") from None
    version = str(metadata.get("keras_version", "3"))
    if model is None:
        model = _build(_parse_json(config_text, path, "config.json"), version, path)
    with _open_h5(io.BytesIO(weights), f"{path!r} (model.weights.h5)") as root:
        _weights.load_keras3_weights(model, root, path)
    return model


def _load_hdf5(path: str, model: Sequential | None) -> Sequential:
    with _open_h5(path, repr(path)) as root:
        if "model_config" in root.attrs:  # legacy full model
            version = _text(root.attrs.get("keras_version", "2"))
            if model is None:
                config = _parse_json(_text(root.attrs["model_config"]).encode(), path,
                                     "model_config")
                model = _build(config, version, path)
            if "model_weights" not in root:
                raise ValueError(f"{path!r}: the legacy .h5 file has no model_weights group")
            _weights.load_legacy_weights(model, root["model_weights"], path)
            return model
        if model is None:
            raise ValueError(
                f"{path!r} holds weights only (no architecture): pass model=, an rnnkit "
                "Sequential of the same architecture"
            )
        if "layer_names" in root.attrs:  # Keras 2 save_weights
            _weights.load_legacy_weights(model, root, path)
        elif "layers" in root:
            _weights.load_keras3_weights(model, root, path)
        else:
            raise ValueError(f"{path!r} is an HDF5 file but not a Keras model or weights file")
    return model


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _parse_json(data: bytes, path: str, member: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path!r}: {member} is not valid JSON: {error}") from None


class _open_h5:  # noqa: N801 - used as a context manager like open()
    """h5py.File, with h5py's errors on a bad file turned into a ValueError naming it."""

    def __init__(self, source: Any, label: str) -> None:
        self.source, self.label = source, label

    def __enter__(self) -> Any:
        try:
            import h5py
        except ImportError:  # pragma: no cover - h5py is a dependency of the interop extra
            raise ImportError("Reading Keras .h5/.keras files needs h5py: pip install h5py") from None
        try:
            self.file = h5py.File(self.source, "r")
        except OSError as error:
            raise ValueError(f"{self.label} is not a readable HDF5 file: {error}") from None
        return self.file

    def __exit__(self, *exc: Any) -> None:
        self.file.close()
