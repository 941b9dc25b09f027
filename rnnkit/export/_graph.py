"""A small ONNX graph builder over ``onnx.helper``: unique names, initializers, one call per node.

Subgraphs (a ``Scan`` body) share the parent's name counter and put their constants in the
parent's initializers, which ONNX lets a body read as outer-scope values.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
BOOL = TensorProto.BOOL


class Graph:
    """Nodes and initializers of one ONNX graph; ``op`` returns the output name(s)."""

    def __init__(self, parent: Graph | None = None) -> None:
        self.parent = parent
        self._counter: itertools.count[int] = parent._counter if parent else itertools.count()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: dict[tuple[Any, ...], str] = {} if parent is None else parent._constants

    def name(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    def const(self, value: Any, hint: str = "const", dtype: Any = np.float32) -> str:
        """An initializer (in the top-level graph) holding ``value``; small ones are shared."""
        if self.parent is not None:
            return self.parent.const(value, hint, dtype)
        array = np.array(value, dtype=dtype, order="C")  # (keeps 0-d scalars 0-d)
        key = None
        if array.size <= 8:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._constants:
                return self._constants[key]
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        if key is not None:
            self._constants[key] = name
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1,
           hint: str | None = None, **attrs: Any) -> Any:
        """Add a node; returns its output name, or the list of names when ``outputs`` > 1."""
        names = outputs if isinstance(outputs, list) else [
            self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.name(op_type),
                                           **attrs))
        return names[0] if len(names) == 1 else names

    def make_graph(self, name: str, inputs: list[onnx.ValueInfoProto],
                   outputs: list[onnx.ValueInfoProto]) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, name, inputs, outputs,
                                 initializer=self.initializers)

    # -- small helpers used everywhere --------------------------------------------------------
    def transpose(self, x: str, perm: list[int]) -> str:
        return self.op("Transpose", [x], perm=perm)

    def squeeze(self, x: str, axis: int) -> str:
        return self.op("Squeeze", [x, self.const([axis], "axes", np.int64)])

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", [x, self.const([axis], "axes", np.int64)])

    def flip(self, x: str, axis: int) -> str:
        """Reverse ``x`` along ``axis`` (any length)."""
        i64 = np.iinfo(np.int64)
        return self.op("Slice", [x, self.const([-1], "starts", np.int64),
                                 self.const([i64.min], "ends", np.int64),
                                 self.const([axis], "axes", np.int64),
                                 self.const([-1], "steps", np.int64)])

    def zeros_like_rows(self, x: str, width: int) -> str:
        """A (x.shape[0], width) float zero tensor, for a dynamic batch size."""
        batch = self.op("Slice", [self.op("Shape", [x]), self.const([0], "start", np.int64),
                                  self.const([1], "end", np.int64)])
        shape = self.op("Concat", [batch, self.const([width], "width", np.int64)], axis=0)
        return self.op("ConstantOfShape", [shape],
                       value=numpy_helper.from_array(np.zeros(1, np.float32)))


def value_info(name: str, elem_type: int, shape: list[Any] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)
