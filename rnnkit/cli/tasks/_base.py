"""What every task shares: the prepared data, the report, and the recurrent stack.

A task turns a :class:`~rnnkit.cli.config.RunConfig` into arrays (``prepare``), a model
(``build_model``, compiled by ``rnnkit train`` with ``compile_args``) and, after training, a
:class:`Report` (``evaluate``: test metrics next to baselines, plus plots). ``rnnkit train`` and
``rnnkit evaluate`` run the same ``prepare``/``evaluate``, so their numbers agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..config import RunConfig

__all__ = ["Prepared", "Report", "Task", "recurrent_stack"]


@dataclass
class Prepared:
    """A task's data, split and scaled, plus what predict/generate need later.

    ``preprocessing`` is JSON-ready (saved as ``preprocessing.json``); ``extra`` holds anything
    else ``evaluate`` needs (dates, raw values), never saved.
    """

    x_train: NDArray[Any]
    y_train: NDArray[Any]
    x_val: NDArray[Any]
    y_val: NDArray[Any]
    x_test: NDArray[Any]
    y_test: NDArray[Any]
    preprocessing: dict[str, Any]
    description: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass
class Report:
    """Test results: ``metrics`` for metrics.json, ``rows`` for the summary table."""

    metrics: dict[str, Any]
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    headline: str
    plots: list[Path] = field(default_factory=list)


class Task:
    """Base class of the three tasks; see forecast.py, classify.py, text.py."""

    name = ""
    datasets: tuple[str, ...] = ()  # built-in datasets, the first is the default
    defaults: dict[str, Any] = {}   # RunConfig values used when the user gives none
    plots: tuple[str, ...] = ()     # files evaluate(plot_dir=...) writes (a run's manifest lists them)

    def data_files(self, config: RunConfig) -> list[str]:
        """The input files the run reads (their digests guard --resume)."""
        return [p for p in (config.csv, config.npy, config.labels, config.text) if p]

    def check(self, config: RunConfig) -> None:
        """Refuse options that make no sense for this task (a ValueError naming them)."""

    def prepare(self, config: RunConfig) -> Prepared:
        raise NotImplementedError

    def build_model(self, config: RunConfig, data: Prepared) -> Any:
        raise NotImplementedError

    def compile_args(self, config: RunConfig, data: Prepared) -> dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, model: Any, config: RunConfig, data: Prepared,
                 plot_dir: Path | None) -> Report:
        raise NotImplementedError


def recurrent_stack(config: RunConfig, return_sequences: bool) -> list[Any]:
    """``config.layers`` recurrent layers of ``config.cell`` with ``config.units`` units each.

    Every layer but the last returns sequences (so the next one can read them); the last
    returns sequences only when asked. With ``bidirectional`` each layer is wrapped in
    ``Bidirectional`` (outputs concatenated: 2 * units features); with ``dropout`` > 0 a
    ``Dropout`` layer follows each recurrent layer.
    """
    from ... import layers
    from ..._kernels._cell_spec import spec

    cell = getattr(layers, spec(config.cell).keras_class)
    stack: list[Any] = []
    for i in range(config.layers):
        last = i == config.layers - 1
        layer = cell(config.units, return_sequences=return_sequences or not last)
        stack.append(layers.Bidirectional(layer) if config.bidirectional else layer)
        if config.dropout:
            stack.append(layers.Dropout(config.dropout))
    return stack


def split_counts(n: int, fractions: tuple[float, ...]) -> tuple[int, int, int]:
    """Sizes of the (train, val, test) parts of ``n`` items, as chronological_split cuts them."""
    from ...data import chronological_split

    parts = chronological_split(n, fractions=fractions)
    return tuple(p.stop - p.start for p in parts)  # type: ignore[return-value]


def finite_or_none(value: float | np.floating[Any] | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
