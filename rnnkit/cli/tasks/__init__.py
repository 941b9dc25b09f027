"""The things ``rnnkit train`` can learn: forecast, classify, text, translate."""

from __future__ import annotations

from ._base import Prepared, Report, Task
from .classify import ClassifyTask
from .forecast import ForecastTask
from .text import TextTask
from .translate import TranslateTask

TASKS: dict[str, Task] = {t.name: t for t in (ForecastTask(), ClassifyTask(), TextTask(),
                                              TranslateTask())}

__all__ = ["TASKS", "ClassifyTask", "ForecastTask", "Prepared", "Report", "Task", "TextTask",
           "TranslateTask"]
