"""``orion metrics``: Prometheus text-format metrics of your jobs (stdout or a .prom file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orion_cli.cli.output import handle_errors, message
from orion_cli.cli.root import app
from orion_cli.config import load_settings


@app.command()
@handle_errors
def metrics(
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            help="Write to this .prom file atomically (node_exporter's textfile "
            "collector directory) instead of stdout.",
        ),
    ] = None,
) -> None:
    """Jobs by status and engine, transitions and retries by reason, queue wait and run time
    histograms, core-hours and the poller's health, without per-job labels."""
    import sys

    from orion_cli.services.queries.metrics import collect, render, write_textfile

    settings = load_settings()
    if textfile is None:
        sys.stdout.write(render(collect(settings)))
        return
    data = write_textfile(settings, textfile)
    message(f"wrote {textfile}: {sum(data.jobs.values())} jobs")
