"""Keras 3's ``model.summary()`` table, rendered with rich as Keras renders it::

    Model: "sequential"
    ┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
    ┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
    ┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
    │ simple_rnn (SimpleRNN)          │ (None, 10)             │           120 │
    ├─────────────────────────────────┼────────────────────────┼───────────────┤
    │ dense (Dense)                   │ (None, 1)              │            11 │
    └─────────────────────────────────┴────────────────────────┴───────────────┘
     Total params: 131 (524.00 B)
     Trainable params: 131 (524.00 B)
     Non-trainable params: 0 (0.00 B)

The width is ``min(88, terminal columns - 4)`` split at 45% / 80% as Keras does. An unbuilt
layer shows ``?`` and ``0 (unbuilt)``. After training, ``Optimizer params`` counts the
optimizer's state (iterations, learning rate, moments) and is included in the total.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import rich.console
import rich.markup
import rich.table
import torch


def readable_memory_size(size: float) -> str:
    """Bytes as Keras prints them: ``524.00 B``, ``1.03 KB`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _count(tensors: Sequence[torch.Tensor]) -> tuple[int, int]:
    unique = {id(t): t for t in tensors}.values()
    return sum(t.numel() for t in unique), sum(t.numel() * t.element_size() for t in unique)


def _number(value: Any) -> str:
    return f"[color(45)]{value}[/]" if value is None else f"[color(34)]{value}[/]"


def format_shape(shape: Any) -> str:
    """``(None, 10)``; a list of shapes (layers that return states) as ``[(None, 3), ...]``."""
    if isinstance(shape, list):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    return "(" + ", ".join(_number(d) for d in shape) + ")"


def _layer_slice(layers: list[Any], layer_range: Sequence[str] | None) -> list[Any]:
    if layer_range is None:
        return layers
    if len(layer_range) != 2 or not all(isinstance(n, str) for n in layer_range):
        raise ValueError(f"layer_range must be two layer names (or regexes), got {layer_range!r}")
    lower = [i for i, layer in enumerate(layers) if re.match(layer_range[0], layer.name)]
    upper = [i for i, layer in enumerate(layers) if re.match(layer_range[1], layer.name)]
    if not lower or not upper:
        raise ValueError(f"layer_range {layer_range!r} does not match the layer names "
                         f"{[layer.name for layer in layers]}")
    start, stop = min(lower), max(upper) + 1
    if start >= stop:
        start, stop = min(upper), max(lower) + 1
    return layers[start:stop]


def print_summary(
    model: Any,
    line_length: int | None = None,
    positions: Sequence[float] | None = None,
    print_fn: Callable[..., Any] | None = None,
    show_trainable: bool = False,
    layer_range: Sequence[str] | None = None,
) -> None:
    """Print ``model``'s summary table (see the module docstring).

    ``print_fn`` receives the whole summary as one plain-text string (no colours); without it
    the table goes to stdout through rich.
    """
    header = ["Layer (type)", "Output Shape", "Param #"]
    justify = ["left", "left", "right"]
    default_length = 88
    # A functional model that is not a plain chain adds Keras' "Connected to" column.
    connections = getattr(model, "_summary_connections", lambda: None)()
    if connections is not None:
        header.append("Connected to")
        justify.append("left")
        default_length = 108
        positions = list(positions or [0.3, 0.56, 0.74, 1.0])
    positions = list(positions or [0.45, 0.80, 1.0])
    if show_trainable:
        default_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        justify.append("center")
    default_length = min(default_length, shutil.get_terminal_size().columns - 4)
    line_length = line_length or default_length
    if positions[-1] <= 1:  # fractions of the line, else absolute columns
        positions = [int(line_length * p) for p in positions]
    widths = []
    current = 0
    for position in positions:
        width = int(position) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width)
        current += width
    table = rich.table.Table(
        *[rich.table.Column(name, justify=j, width=w)  # type: ignore[arg-type]
          for name, j, w in zip(header, justify, widths)],
        width=line_length, show_lines=True,
    )
    shapes = model.layer_output_shapes()
    shown = _layer_slice(model.layers, layer_range)
    for index, layer in enumerate(model.layers):
        if not any(layer is s for s in shown):
            continue
        name = (f"{rich.markup.escape(layer.name)} "
                f"([color(33)]{rich.markup.escape(type(layer).__name__)}[/])")
        shape = shapes[index] if shapes is not None and layer.built else None
        params = (f"{_number(0)} (unbuilt)" if not layer.built
                  else _number(f"{layer.count_params():,}"))
        row = [name, "?" if shape is None else format_shape(shape), params]
        if connections is not None:
            row.append(rich.markup.escape(connections[index]))
        if show_trainable:
            if layer.built and layer.keras_weights():
                row.append("[bold][color(34)]Y[/][/]" if layer.trainable
                           else "[bold][color(9)]N[/][/]")
            else:
                row.append("[bold]-[/]")
        table.add_row(*row)

    weights = [w for layer in model.layers if layer.built for w in layer.keras_weights()]
    trainable, trainable_bytes = _count([w for w in weights if w.requires_grad])
    frozen, frozen_bytes = _count([w for w in weights if not w.requires_grad])
    optimizer = getattr(model, "optimizer", None)
    optimizer_built = bool(getattr(model, "compiled", False) and optimizer is not None
                           and optimizer.built)
    opt_count, opt_bytes = _count(optimizer.variables) if optimizer_built else (0, 0)

    if print_fn is not None:
        console = rich.console.Console(highlight=False, force_terminal=False, color_system=None,
                                       width=max(line_length, 80))
        console.begin_capture()
    else:
        console = rich.console.Console(highlight=False)
    console.print(f'[bold]Model: "{rich.markup.escape(model.name)}"[/]')
    console.print(table)
    total = trainable + frozen + opt_count
    total_bytes = trainable_bytes + frozen_bytes + opt_bytes
    console.print(f"[bold] Total params: [/]{_number(f'{total:,}')} "
                  f"({readable_memory_size(total_bytes)})")
    console.print(f"[bold] Trainable params: [/]{_number(f'{trainable:,}')} "
                  f"({readable_memory_size(trainable_bytes)})")
    console.print(f"[bold] Non-trainable params: [/]{_number(f'{frozen:,}')} "
                  f"({readable_memory_size(frozen_bytes)})")
    if optimizer_built:
        console.print(f"[bold] Optimizer params: [/]{_number(f'{opt_count:,}')} "
                      f"({readable_memory_size(opt_bytes)})")
    if print_fn is not None:
        print_fn(console.end_capture())


__all__ = ["print_summary", "readable_memory_size", "format_shape"]
