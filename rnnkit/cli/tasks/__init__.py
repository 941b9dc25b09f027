"""The three things ``rnnkit train`` can learn: forecast, classify, text."""

from __future__ import annotations

from ._base import Prepared, Report, Task
from .classify import ClassifyTask
from .forecast import ForecastTask
from .text import TextTask

TASKS: dict[str, Task] = {t.name: t for t in (ForecastTask(), ClassifyTask(), TextTask())}

__all__ = ["TASKS", "ClassifyTask", "ForecastTask", "Prepared", "Report", "Task", "TextTask"]
