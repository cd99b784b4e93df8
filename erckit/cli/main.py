"""Entry point of the ``erckit`` command (also ``python -m erckit``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Any, Callable, Sequence

from .. import __version__
from ..errors import ErckitError
from . import console as ui

# Built-in sub-commands, each a module in this package with add_parser(subparsers).
COMMAND_MODULES = ("components", "plugins", "recipe", "data", "train", "predict", "evaluate", "serve", "compare", "tune", "export")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        ui.error(f"{self.prog}: {message} (see '{self.prog} --help')")
        raise SystemExit(2)


def build_parser(with_plugins: bool = True) -> ArgumentParser:
    parser = ArgumentParser(
        prog="erckit",
        description="Multimodal Emotion Recognition in Conversation: train, predict and evaluate from recipes.",
    )
    parser.add_argument("--version", action="version", version=f"erckit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        module.add_parser(subparsers)
    if with_plugins:
        _add_plugin_commands(subparsers)
    return parser


def _add_plugin_commands(subparsers: Any) -> None:
    """Each plugin's ``register_commands``, on its own: a command that cannot be added
    (a built-in's name, another plugin's, a ``configure`` that raises) is reported with
    the plugin's name and skipped, and so is a plugin whose hook itself raises."""
    from ..plugins import get_plugin_manager, plugin_label, report_plugin_problem

    for impl in get_plugin_manager().hook.register_commands.get_hookimpls():
        label = plugin_label(impl.plugin_name)

        def add_command(
            name: str,
            help: str,
            configure: Callable[[argparse.ArgumentParser], None],
            run: Callable[[argparse.Namespace], int | None],
            _label: str = label,
        ) -> None:
            if not isinstance(name, str) or not name or name.startswith("-"):
                report_plugin_problem(f"{_label}: command name {name!r} is not a word; skipped")
                return
            if name in subparsers.choices:
                owner = "a built-in command" if name in COMMAND_MODULES else "already added by another plugin"
                report_plugin_problem(f"{_label}: command {name!r} is {owner}; skipped")
                return
            # Arguments go to a scratch parser first, so a failing configure leaves no half command.
            arguments = argparse.ArgumentParser(add_help=False)
            try:
                configure(arguments)
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                report_plugin_problem(f"{_label}: command {name!r} failed to configure: {type(error).__name__}: {error}; skipped")
                return
            command = subparsers.add_parser(name, help=help, description=arguments.description or help,
                                            epilog=arguments.epilog, parents=[arguments])
            command.set_defaults(run=run)

        try:
            impl.function(add_command=add_command)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            report_plugin_problem(f"{label}: register_commands failed: {type(error).__name__}: {error}; its other commands are skipped")


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    ui.warning(str(message))


def _prefer_passive_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning, unless the user chose otherwise.

    By default torch's OpenMP threads busy-wait between parallel regions. When other processes
    share the CPUs, a spinning thread burns the time slice its busy sibling needs, and small
    models (many short regions) then slow down far more than their share of the CPU: the quick
    start ran 3-4x slower per step with 2 threads than with 1 beside other trainings. This must be
    in the environment before torch is imported (OpenMP reads it once, at load).
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    _prefer_passive_threads()
    ui.show_library_messages()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # Plugin commands need plugins loaded; plain --help and recipe checks
        # must stay light, so plugins load only when the command is unknown.
        parser = build_parser(with_plugins=_needs_plugin_commands(argv))
        args = parser.parse_args(argv)
        if getattr(args, "run", None) is None:
            parser.print_help()
            return 0
        return int(args.run(args) or 0)
    except ErckitError as error:
        ui.error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130


def _needs_plugin_commands(argv: Sequence[str]) -> bool:
    first = next((a for a in argv if not a.startswith("-")), None)
    return first is None or first not in COMMAND_MODULES
