"""One rich console for everything erckit prints; messages go to stderr so
stdout stays clean for data (predictions, TOML)."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def error(message: str) -> None:
    console.print(f"[bold red]error:[/] {_escape(message)}")


def warning(message: str) -> None:
    console.print(f"[yellow]warning:[/] {_escape(message)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
