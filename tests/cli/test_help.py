"""`orion --help` shows the commands in panels, in order; every command's help has examples."""

from __future__ import annotations

import re
import shlex
from typing import Any

import typer.main
from typer.testing import CliRunner

from orion_cli.cli import app
from orion_cli.cli.help import EXAMPLES, PANELS

runner = CliRunner()


def all_commands() -> dict[str, Any]:
    """Every command and subcommand of the app, by path (``"db upgrade"``)."""
    root: Any = typer.main.get_command(app)
    found: dict[str, Any] = {}
    for name, command in root.commands.items():
        found[name] = command
        if hasattr(command, "commands"):
            for sub_name, sub in command.commands.items():
                found[f"{name} {sub_name}"] = sub
    return found


def test_help_lists_the_panels_in_order_with_their_commands_in_order() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"}, terminal_width=120)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    titles = [t for line in lines for t in re.findall(r"╭─ (.+?) ─", line)]
    assert titles == ["Options", *PANELS]
    listed: dict[str, list[str]] = {}
    panel = ""
    for line in lines:
        if match := re.search(r"╭─ (.+?) ─", line):
            panel = match.group(1)
        elif match := re.match(r"│ (\w+)\s{2,}", line):
            listed.setdefault(panel, []).append(match.group(1))
    assert {p: listed[p] for p in PANELS} == {p: list(names) for p, names in PANELS.items()}


def test_every_command_is_in_a_panel() -> None:
    top_level = {path for path in all_commands() if " " not in path}
    in_panels = {name for names in PANELS.values() for name in names}
    assert top_level == in_panels


def test_every_command_help_ends_with_examples() -> None:
    for path in all_commands():
        result = runner.invoke(app, [*path.split(), "--help"], terminal_width=200)
        assert result.exit_code == 0, path
        assert "Examples:" in result.output, path
        assert f"orion {path}" in result.output.split("Examples:")[1], path


def test_examples_use_only_options_the_command_has() -> None:
    commands = all_commands()
    for path, lines in EXAMPLES.items():
        names = {
            opt for param in commands[path].params for opt in (*param.opts, *param.secondary_opts)
        }
        for line in lines:
            words = shlex.split(line.split("#")[0])
            for word in words:
                option = word.split("=")[0]
                if option.startswith("-") and option != "--" and "orion" in words:
                    assert option in names or option in ("-h", "--help"), (path, line, option)
