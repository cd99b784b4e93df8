"""What reaches a terminal: user text made safe to show, and progress that suits the output.

``clean`` / ``text``: text from data or from a model directory (utterances,
speakers, dialogue ids, labels, file names) loses its terminal control
sequences, so a dialogue line cannot retitle the window or clear the screen,
and ``text`` shows rich markup in it literally instead of interpreting it.

``progress_bar``: on a terminal, a live rich bar. Anywhere else (a log file, a
pipe, CI) rich would leave a blank line behind every bar, so there is no bar
at all: a long task prints a plain status line now and then, and a task whose
bar would have stayed on screen (``transient=False``) ends with one plain line.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn
from rich.text import Text

PLAIN_INTERVAL = 60.0  # seconds between status lines of one long task in a log

# ESC sequences as a whole (CSI "ESC [ ... final", OSC/DCS/APC/PM/SOS strings up to BEL or ST,
# 8-bit CSI, two-character ones), then any single C0/C1 control character but tab and newline, and DEL.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -~]?"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(value: Any) -> str:
    """``value`` as text safe to put on a terminal: control sequences and characters removed."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", str(value)))


def text(value: Any, style: str = "") -> Text:
    """A table cell (or any renderable) of user data: cleaned, its markup shown as typed."""
    return Text(clean(value), style=style)


def escape(value: Any) -> str:
    """User data inside a markup string: cleaned and markup-escaped."""
    from rich.markup import escape as escape_markup

    return escape_markup(clean(value))


def progress_bar(
    *columns: str | ProgressColumn, console: Console, transient: bool = True, enabled: bool = True
) -> "Progress | PlainProgress":
    """A rich ``Progress`` on a terminal, else a ``PlainProgress`` with the same task API."""
    if enabled and console.is_terminal:
        return Progress(*columns, console=console, transient=transient)
    return PlainProgress(console, enabled=enabled, final_line=not transient)


@dataclass
class _Task:
    description: str
    total: float | None
    fields: dict[str, Any]
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)
    last_line: float = field(default_factory=time.monotonic)


class PlainProgress:
    """``add_task`` / ``update`` / ``advance`` / ``remove_task`` as rich's, printing only plain lines."""

    def __init__(self, console: Console, *, enabled: bool = True, final_line: bool = False, interval: float = PLAIN_INTERVAL):
        self.console, self.enabled, self.final_line, self.interval = console, enabled, final_line, interval
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None and self.final_line:
            for task in self.tasks.values():
                self._line(task)
        self.tasks.clear()

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        number = len(self.tasks) + 1 if not self.tasks else max(self.tasks) + 1
        self.tasks[number] = _Task(description, total, fields)
        return number

    def update(self, task_id: int, *, advance: float = 0, **fields: Any) -> None:
        task = self.tasks[task_id]
        task.completed += advance
        task.fields.update(fields)
        now = time.monotonic()
        if now - task.last_line >= self.interval:
            task.last_line = now
            self._line(task)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def remove_task(self, task_id: int) -> None:
        self.tasks.pop(task_id, None)

    def _line(self, task: _Task) -> None:
        if not self.enabled:
            return
        done = f"{task.completed:g}" + (f"/{task.total:g}" if task.total is not None else "")
        extra = "".join(
            f", {name} {value:.4g}" if isinstance(value, float) else f", {name} {value}" for name, value in task.fields.items()
        )
        seconds = time.monotonic() - task.started
        self.console.print(f"{task.description}: {done}{extra} ({seconds:.0f} s)", markup=False, highlight=False)
