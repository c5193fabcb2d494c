"""The ``orion`` Typer app and its root options; every command module registers on it."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from orion_cli import __version__
from orion_cli.cli.help import PanelGroup

app = typer.Typer(
    name="orion",
    cls=PanelGroup,
    help="Submit, track and parse materials-science calculations on SLURM (or locally).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion, and the _ORION_COMPLETE protocol behind
    # them (Typer registers its completion classes only when this is on). Free at start-up:
    # typer.main imports typer.completion and shellingham whether or not it is on.
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"debug": False}


def debug_enabled() -> bool:
    return _state["debug"] or os.environ.get("ORION_DEBUG", "") not in ("", "0")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"orion {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """orion: one command line for your calculations on the cluster."""
    _state["debug"] = debug
