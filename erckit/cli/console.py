"""One rich console for everything erckit prints; messages go to stderr so
stdout stays clean for data (predictions, TOML).

Text that comes from data or from a model directory (utterances, speakers,
dialogue ids, labels, file names in messages) is shown through ``clean``,
``text`` or ``escape`` (from ``erckit.terminal``): its control sequences are
removed and its rich markup is shown literally, never interpreted.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from rich.console import Console

from ..terminal import clean, escape, text  # noqa: F401  (the CLI's names for them)

console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

# Wide enough that no table of names is ever wrapped or cut when the output is not a terminal.
UNLIMITED_WIDTH = 10_000


def error(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}")


def warning(message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(message)}")


def print_whole(renderable: Any, target: Console | None = None) -> None:
    """Print a table so that no cell is wrapped or cut where nobody reads at a fixed width.

    On a terminal (or with COLUMNS set) rich fits the table to the width; into a
    pipe or a file it is printed at its natural width, so ``| grep`` and ``| cut``
    see every name whole.
    """
    target = target or out
    if target.is_terminal or os.environ.get("COLUMNS"):
        target.print(renderable)
        return
    wide = Console(file=target.file, width=UNLIMITED_WIDTH, highlight=False, soft_wrap=True, color_system=None)
    wide.print(renderable)


class _ConsoleHandler(logging.Handler):
    """Shows the library's INFO messages (``logging.getLogger("erckit")``) as plain lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                warning(message)
            else:
                console.print(escape(message))
        except Exception:  # a display problem must never break a run
            self.handleError(record)


def show_library_messages() -> None:
    """Route erckit's log messages (e.g. 'generating the demo data set in ...') to the console, once."""
    logger = logging.getLogger("erckit")
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.setLevel(logging.INFO)
