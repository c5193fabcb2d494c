"""``orion queues``: the named queues of the configuration ([queues.NAME])."""

from __future__ import annotations

from typing import Annotated

import typer

from orion_cli.cli.output import handle_errors, message, print_json, table
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.queues import queue_rows


@app.command()
@handle_errors
def queues(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the named queues (--queue NAME) of orion.toml and the user config."""

    settings = load_settings()
    if as_json:
        print_json(
            [
                {
                    "name": name,
                    **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()},
                    "source": settings.queue_sources.get(name, ""),
                }
                for name, values in sorted(settings.queues.items())
            ]
        )
        return
    if not settings.queues:
        message(
            "no named queues: add a [queues.NAME] table to orion.toml (see README, Named queues)"
        )
        return
    table(
        f"{len(settings.queues)} queues",
        ["name", "partition", "qos", "account", "priority", "walltime", "other", "from"],
        queue_rows(settings),
    )
