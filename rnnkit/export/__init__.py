"""Export rnnkit models to ONNX: :func:`onnx` (and ``Sequential.export_onnx``).

Both front ends are supported, with a dynamic batch size and sequence length:

==========================================  ================================================
model                                       ONNX graph
==========================================  ================================================
``rnnkit.nn.RNN/GRU/LSTM`` (and torch.nn's) inputs ``input`` (L, N, H_in), or (N, L, H_in) with
                                            ``batch_first``; ``lengths`` (N,) int64 with
                                            ``lengths=True``. Outputs ``output``, ``h_n``
                                            (+ ``c_n`` for LSTM), as the module returns them.
                                            Standard RNN/GRU/LSTM ops, any depth, bidirectional.
``rnnkit.Sequential`` / one rnnkit layer    input ``input`` (B, T, D) float32, or (B, T) int64
                                            token ids when it starts with an Embedding;
                                            ``lengths`` (B,) int64 with ``lengths=True`` (the
                                            mask ``t < lengths[b]`` given to the first layer,
                                            as ``model(x, mask=...)``). Output ``output``.
==========================================  ================================================

Keras-style recurrent layers run on the standard ONNX RNN/GRU/LSTM operators when no mask, or
only the ``lengths`` prefix mask (as ``sequence_lens``), reaches them: GRU ``reset_after`` both
ways, go_backwards, Bidirectional, and the activations the operators offer (tanh, sigmoid, relu,
hard_sigmoid, linear, softsign, softplus). Where a general mask reaches them
(``Embedding(mask_zero=True)``, ``Masking``) or another activation is used, they run as a
``Scan`` over the cell with Keras' masking rule (held state, repeated output), which is exact
for any mask, holes and leading padding included. ``PeepholeLSTM``, ``LayerNormLSTM`` and
``LayerNormGRU`` have no ONNX operator and always run as such a ``Scan`` (the norms as
``LayerNormalization``), masked or not. Everything is
computed in float32 with the model's current weights, in inference mode (no dropout).

Not exported (an error says so): stateful layers, ``return_state``, Bidirectional with
``merge_mode=None``, generic ``RNN`` over custom cells, custom activations, LSTM ``proj_size``,
``rnnkit.nn``'s torch-style ``PeepholeLSTM``/``LayerNormLSTM``/``LayerNormGRU`` (their
Keras-style layers export).

Example::

    >>> import rnnkit
    >>> model = rnnkit.Sequential([rnnkit.layers.LSTM(8, input_shape=(None, 3)),
    ...                            rnnkit.layers.Dense(1)])
    >>> rnnkit.export.onnx(model, "model.onnx", lengths=True)   # doctest: +SKIP
    >>> import onnxruntime as ort                               # doctest: +SKIP
    >>> session = ort.InferenceSession("model.onnx")            # doctest: +SKIP
    >>> y, = session.run(None, {"input": x, "lengths": lengths})  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["onnx", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17


def onnx(model_or_module: Any, path: str | os.PathLike[str], *, lengths: bool = False,
         opset: int = DEFAULT_OPSET) -> str:
    """Write ``model_or_module`` as an ONNX model to ``path`` (atomically); returns the path.

    Args:
        model_or_module: an ``rnnkit.Sequential`` (built; other model kinds are refused, as
            they are not a chain of layers), one built ``rnnkit.layers`` layer, or an
            ``rnnkit.nn`` / ``torch.nn`` ``RNN``, ``GRU`` or ``LSTM``.
        path: the ``.onnx`` file to write.
        lengths: add an int64 ``lengths`` input (B,) for padded variable-length batches.
        opset: the ONNX opset (17 or later).

    Raises:
        ValueError: something in the model has no exact ONNX translation (the message names it).
    """
    import onnx as onnx_lib
    from onnx import helper

    from .._io import atomic_write
    from ..layers._base import Layer
    from . import _keras, _torch_nn
    from ._graph import FLOAT, INT64, Graph, value_info

    if not isinstance(opset, int) or opset < 17:
        raise ValueError(f"opset must be an int >= 17, got {opset!r}")
    g = Graph()
    inputs: list[Any] = []
    outputs: list[Any] = []
    kind = _torch_nn.module_kind(model_or_module)
    if kind is not None:
        module = model_or_module
        dims: list[Any] = ["batch", "time"] if module.batch_first else ["time", "batch"]
        inputs.append(value_info("input", FLOAT, [*dims, module.input_size]))
        if lengths:
            inputs.append(value_info("lengths", INT64, ["batch"]))
        out, states = _torch_nn.module_graph(g, module, kind, "input",
                                             "lengths" if lengths else None)
        directions = 2 if module.bidirectional else 1
        width = directions * module.hidden_size
        g.op("Identity", [out], ["output"])
        outputs.append(value_info("output", FLOAT, [*dims, width]))
        for name, state in zip(("h_n", "c_n"), states):
            g.op("Identity", [state], [name])
            outputs.append(value_info(name, FLOAT, [directions * module.num_layers, "batch",
                                                    module.hidden_size]))
        graph_name = type(module).__name__
    elif isinstance(model_or_module, Layer):
        # Any model kind (the rnnkit.Model base) says whether it is a plain chain of layers;
        # export asks it rather than importing the kinds (models import export, not back).
        chain = getattr(model_or_module, "_layer_chain", None)
        if chain is not None:
            model = model_or_module
            if not model.built:
                raise ValueError("Build the model before exporting it (give the first layer "
                                 "input_shape=, call model.build(...), or call it on data)")
            layers = chain()
            if layers is None:
                raise ValueError(
                    f"Model '{model.name}' ({type(model).__name__}) is not a chain of layers "
                    "each feeding the next: only a Sequential model (or one layer) can be "
                    "exported to ONNX")
            shape = model.input_shape
        else:
            if not model_or_module.built or model_or_module.batch_input_shape is None:
                raise ValueError(f"Layer '{model_or_module.name}' needs input_shape= to be "
                                 "exported on its own (or put it in a built Sequential)")
            layers, shape = [model_or_module], model_or_module.batch_input_shape
        graph_name = model_or_module.name
        token_ids = isinstance(layers[0], _keras.Embedding)
        has_time = len(shape) >= 3 or (token_ids and len(shape) == 2)
        dims = ["batch", *[d if d is not None else f"dim{i + 1}" for i, d in
                           enumerate(shape[1:])]]
        if has_time:
            dims[1] = "time"
        inputs.append(value_info("input", INT64 if token_ids else FLOAT, dims))
        mask = None
        if lengths:
            if not has_time:
                raise ValueError("lengths=True needs inputs with a time axis (batch, time, ...)")
            inputs.append(value_info("lengths", INT64, ["batch"]))
            steps = g.op("Gather", [g.op("Shape", ["input"]), g.const(1, "axis", np.int64)])
            positions = g.op("Range", [g.const(0, "start", np.int64), steps,
                                       g.const(1, "delta", np.int64)])
            mask = g.op("Less", [g.unsqueeze(positions, 0), g.unsqueeze("lengths", 1)])
        seq_lens = g.op("Cast", ["lengths"], to=6) if lengths else None  # int32
        out = _keras.layers_graph(g, layers, "input", mask, seq_lens)
        g.op("Identity", [out], ["output"])
        out_shape = (model_or_module.output_shape if chain is not None
                     else model_or_module.compute_output_shape(shape))
        if isinstance(out_shape, list):
            raise ValueError("The model returns several tensors; only one output can be exported")
        out_dims = ["batch", *[f"output_dim{i + 1}" for i in range(len(out_shape) - 2)]]
        outputs.append(value_info("output", FLOAT, [*out_dims, out_shape[-1]]))
    else:
        raise TypeError(
            "rnnkit.export.onnx takes an rnnkit Sequential, an rnnkit layer, or an rnnkit.nn / "
            f"torch.nn RNN, GRU or LSTM; got {type(model_or_module).__name__}"
        )
    graph = g.make_graph(graph_name, inputs, outputs)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="rnnkit")
    proto.ir_version = 8
    onnx_lib.checker.check_model(proto, full_check=True)
    target = os.fspath(path)
    atomic_write(target, proto.SerializeToString())
    return target
