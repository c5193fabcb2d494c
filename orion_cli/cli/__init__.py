"""The ``orion`` command. Only typer is imported at start-up; each command imports its service."""

from __future__ import annotations

from orion_cli.cli import (  # noqa: F401  (registers the commands)
    bulk,
    commands,
    files,
    logs,
    ls,
    metrics,
    monitor,
    queues,
    reuse,
    scripts,
    stats,
    study,
    submit,
    watch,
    workflow,
)
from orion_cli.cli.help import arrange
from orion_cli.cli.root import app as app
from orion_cli.cli.root import debug_enabled as debug_enabled

arrange(app)


def main() -> None:
    app()
