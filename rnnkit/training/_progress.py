"""Keras' progress line, drawn with rich (the done part of the bar in green)::

    3/10 ━━━━━━━━━━━━━━━━━━━━ 1s 12ms/step - loss: 0.1234

``verbose=1``: on a terminal the line updates in place (a rich ``Live`` display); elsewhere
(files, CI logs, captured output) only the finished line is printed. ``verbose=2``: one
finished line without the bar, ``10/10 - 1s - 12ms/step - loss: 0.1234``.
Metric values print as Keras prints them: ``%.4f``, or ``%.4e`` when ``|value| <= 1e-3``.
"""

from __future__ import annotations

import math
import time

import rich.console
import rich.live
import rich.text

BAR_WIDTH = 20


def format_value(value: float) -> str:
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_logs(logs: dict[str, float] | None) -> str:
    if not logs:
        return ""
    parts = []
    for key, value in logs.items():
        try:
            parts.append(f"{key}: {format_value(float(value))}")
        except (TypeError, ValueError):
            parts.append(f"{key}: {value}")
    return " - " + " - ".join(parts)


def format_time_per_unit(seconds: float, unit: str = "step") -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


class ProgressBar:
    """A progress line for ``target`` steps; ``update(current, logs)``, ``finish(logs)``."""

    def __init__(self, target: int, verbose: int = 1, unit: str = "step") -> None:
        self.target = max(int(target), 0)
        self.verbose = verbose
        self.unit = unit
        self.console = rich.console.Console(highlight=False, soft_wrap=True)
        self.start = time.perf_counter()
        self.current = 0
        self._last_draw = 0.0
        self._live: rich.live.Live | None = None
        if verbose == 1 and self.console.is_terminal:
            self._live = rich.live.Live(self._render({}), console=self.console,
                                        auto_refresh=False, transient=False)
            self._live.start()

    def _render(self, logs: dict[str, float] | None) -> rich.text.Text:
        elapsed = time.perf_counter() - self.start
        per_unit = elapsed / self.current if self.current else 0.0
        digits = int(math.log10(self.target)) + 1 if self.target > 0 else 1
        line = rich.text.Text()
        line.append(f"{self.current:>{digits}d}/{self.target}", style="bold")
        if self.verbose == 1:
            done = int(BAR_WIDTH * self.current / self.target) if self.target else BAR_WIDTH
            line.append(" ")
            line.append("━" * done, style="green")
            line.append("━" * (BAR_WIDTH - done), style="bright_black")
            line.append(f" {elapsed:.0f}s {format_time_per_unit(per_unit, self.unit)}")
        else:
            line.append(f" - {elapsed:.0f}s - {format_time_per_unit(per_unit, self.unit)}")
        line.append(format_logs(logs))
        return line

    def update(self, current: int, logs: dict[str, float] | None = None) -> None:
        self.current = current
        if self._live is not None:
            now = time.perf_counter()
            if now - self._last_draw >= 0.05:
                self._live.update(self._render(logs), refresh=True)
                self._last_draw = now

    def finish(self, logs: dict[str, float] | None = None) -> None:
        line = self._render(logs)
        if self._live is not None:
            self._live.update(line, refresh=True)
            self._live.stop()
            self._live = None
        elif self.verbose in (1, 2):
            self.console.print(line)
