"""erckit.terminal: user text made safe for a terminal; progress that leaves no blank lines in a log."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.progress import Progress

from erckit.terminal import PlainProgress, clean, progress_bar, text


@pytest.mark.parametrize("hostile, shown", [
    ("\x1b]0;pwned\x07title", "title"),  # OSC: set the window title
    ("a\x1b[2Jb", "ab"),  # CSI: clear the screen
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST-terminated
    ("\x9b31mred", "red"),  # 8-bit CSI
    ("bell\x07 back\x08space\r", "bell backspace"),
    ("[red]x[/]", "[red]x[/]"),  # markup is not a control sequence: kept, and shown literally by text()
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("émotion 😀", "émotion 😀"),
])
def test_clean(hostile: str, shown: str) -> None:
    assert clean(hostile) == shown


def test_text_shows_markup_literally() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", highlight=False)
    console.print(text("[red]x[/] \x1b[2J"))
    output = console.file.getvalue()
    assert "[red]x[/]" in output and "\x1b[2J" not in output


def test_a_log_file_gets_no_bar_and_no_blank_lines() -> None:
    log = io.StringIO()
    console = Console(file=log)  # not a terminal
    for transient in (True, False):
        with progress_bar("{task.description}", console=console, transient=transient) as bar:
            assert isinstance(bar, PlainProgress)
            task = bar.add_task("decoding media", total=3)
            for _ in range(3):
                bar.advance(task)
    assert log.getvalue().splitlines() == ["decoding media: 3/3 (0 s)"]  # only the kept bar, as one plain line


def test_a_long_task_prints_a_status_line_now_and_then() -> None:
    log = io.StringIO()
    bar = PlainProgress(Console(file=log), interval=0.0)
    with bar:
        task = bar.add_task("teacher epoch 1/2", total=2, loss=float("nan"))
        bar.update(task, advance=1, loss=1.25)
    assert log.getvalue().splitlines() == ["teacher epoch 1/2: 1/2, loss 1.25 (0 s)"]


def test_a_terminal_gets_a_live_bar_and_disabled_means_silent() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert isinstance(progress_bar(console=terminal), Progress)
    log = io.StringIO()
    with progress_bar(console=Console(file=log), transient=False, enabled=False) as bar:
        bar.advance(bar.add_task("x", total=1))
    assert log.getvalue() == ""
