"""What training says to a person, and where: the engine talks to a ``Reporter``.

The command line passes one writing to its stderr console; a program calling
``erckit.train.train`` gets the same default on a console of its own, or passes
``Reporter(Console(quiet=True))`` to silence it. Metrics go to loggers
(``erckit.train.loggers``), not here.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ..terminal import escape, progress_bar


class Reporter:
    """Lines, warnings, rules, tables and progress bars on a rich console (stderr by default)."""

    def __init__(self, console: Console | None = None, *, progress: bool = True):
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.show_progress = progress

    def line(self, markup: str) -> None:
        """A line of rich markup; data in it must have gone through ``escape``."""
        self.console.print(markup)

    def warning(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(message)}")

    def rule(self, title: str) -> None:
        self.console.rule(escape(title))

    def show(self, renderable: Any) -> None:
        self.console.print(renderable)

    def progress(self, *columns: Any, transient: bool = True) -> Any:
        """A progress display (a no-op when progress is off or this process is not rank 0)."""
        return progress_bar(*columns, console=self.console, transient=transient, enabled=self.show_progress)


class QuietReporter(Reporter):
    """Says nothing: for ranks other than 0."""

    def __init__(self) -> None:
        super().__init__(Console(quiet=True), progress=False)
