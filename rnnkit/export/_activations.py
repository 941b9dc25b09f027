"""rnnkit's activations as ONNX: element-wise nodes, and the names the RNN/GRU/LSTM ops take."""

from __future__ import annotations

import math
from typing import Any

from .. import activations
from ._graph import Graph

# activation -> (ONNX RNN-op activation, alpha, beta) for those the standard ops implement
RNN_OP_ACTIVATIONS: dict[str, tuple[str, float | None, float | None]] = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),  # Keras 3: relu6(x + 3) / 6
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
}


def name_of(function: Any, owner: str) -> str:
    """The rnnkit.activations name of ``function`` (an error for custom callables)."""
    for name in activations.names():
        if activations.get(name) is function:
            return "silu" if name == "swish" else "hard_silu" if name == "hard_swish" else name
    raise ValueError(
        f"{owner}: the activation {function!r} is not one of rnnkit.activations, so it cannot be "
        "exported to ONNX"
    )


def emit(g: Graph, name: str, x: str) -> str:
    """Nodes computing activation ``name`` of ``x`` (softmax family over the last axis)."""
    if name == "linear":
        return x
    simple = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "softsign": "Softsign",
              "softplus": "Softplus", "exponential": "Exp", "selu": "Selu"}
    if name in simple:
        return g.op(simple[name], [x])
    if name == "hard_sigmoid":
        return g.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if name == "elu":
        return g.op("Elu", [x], alpha=1.0)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=0.2)
    if name == "relu6":
        return g.op("Clip", [x, g.const(0.0, "zero"), g.const(6.0, "six")])
    if name == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if name == "log_softmax":
        return g.op("LogSoftmax", [x], axis=-1)
    if name == "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    if name == "hard_silu":
        return g.op("Mul", [x, g.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])
    if name == "mish":
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])])
    if name == "gelu":  # exact: x * (1 + erf(x / sqrt 2)) / 2
        erf = g.op("Erf", [g.op("Mul", [x, g.const(1.0 / math.sqrt(2.0), "rsqrt2")])])
        return g.op("Mul", [g.op("Mul", [x, g.const(0.5, "half")]),
                            g.op("Add", [erf, g.const(1.0, "one")])])
    raise ValueError(f"The activation {name!r} has no ONNX translation")
