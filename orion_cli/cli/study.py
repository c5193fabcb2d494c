"""``orion results`` and ``orion eos``: studies rather than single jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orion_cli.cli import app
from orion_cli.cli.output import handle_errors, message, table


@app.command()
@handle_errors
def results(
    job_ids: Annotated[list[int] | None, typer.Argument(help="orion job ids")] = None,
    tag: Annotated[str, typer.Option(help="Your jobs with this tag.")] = "",
    study: Annotated[int | None, typer.Option(help="Your jobs of this study (orion eos).")]
    = None,
    fmt: Annotated[str, typer.Option("--format", "-f",
                                     help="table, csv, json or extxyz.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write to this file.")] = None,
) -> None:
    """Energies, forces, stress, volumes (and swept parameters) of many jobs at once."""
    import sys

    from orion_cli.config import load_settings
    from orion_cli.errors import UsageError
    from orion_cli.identity import current_user
    from orion_cli.services.results import Selection, table_rows, write_results

    settings = load_settings()
    selection = Selection(tuple(job_ids or ()), tag, study, current_user())
    if fmt == "table" and output is None:
        header, rows = table_rows(settings, selection)
        table(f"{len(rows)} jobs", header, rows)
        return
    if fmt == "table":
        raise UsageError("--format table is for the terminal", "use csv, json or extxyz with -o")
    if output is None:
        write_results(settings, selection, fmt, sys.stdout)
        return
    if output.is_dir():
        raise UsageError(f"'{output}' is a directory", "give a file name with -o")
    partial = output.with_name(output.name + ".part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = write_results(settings, selection, fmt, out)
        partial.replace(output)  # a failed export leaves no half-written file behind
    finally:
        partial.unlink(missing_ok=True)
    message(f"wrote {count} jobs to {output}")
