"""``orion logs ID [--follow] [--engine-output] [--attempt N]``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from orion_cli.cli.jobargs import one_job_id
from orion_cli.cli.output import handle_errors, message, visible
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.states import JobStatus

FOLLOW_INTERVAL_S = 1.0  # how often --follow looks at the file (no scheduler query)
STATUS_EVERY = 5  # --follow reads the job's status from the database every N looks


def _write(chunk: bytes) -> None:
    """Print output from the job's files with control characters made visible."""
    text = chunk.decode(errors="replace").replace("\t", "    ")
    sys.stdout.write("".join(visible(line) + "\n" for line in text.split("\n")[:-1]))
    rest = text.split("\n")[-1]
    if rest:
        sys.stdout.write(visible(rest))
    sys.stdout.flush()


@app.command()
@handle_errors
def logs(
    job_id: Annotated[str, typer.Argument(help="orion job id")] = "",
    slurm_id: Annotated[str, typer.Option("--slurm-id", help="Name the job by its SLURM id.")] = "",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing while the job runs.")
    ] = False,
    engine_output: Annotated[
        bool,
        typer.Option("--engine-output", help="The engine's own file (pw.out, log.lammps, OUTCAR)."),
    ] = False,
    attempt: Annotated[int, typer.Option(help="Which attempt, 1.. (default: the latest).")] = 0,
) -> None:
    """Print a job's output (stdout and stderr share one file), or its engine's output."""
    from orion_cli.services.queries.logs import job_status, log_target

    settings = load_settings()
    target = log_target(
        settings, one_job_id(settings, job_id, slurm_id), attempt or None, engine_output
    )
    message(
        f"==> {target.path} (job {target.job_id}, attempt {target.attempt}, {target.status}) <=="
    )
    offset, looks = 0, 0
    status = target.status
    while True:
        offset += _print_new(target.path, offset)
        if not follow or JobStatus(status).is_final:
            break
        time.sleep(FOLLOW_INTERVAL_S)
        looks += 1
        if looks % STATUS_EVERY == 0:
            status = job_status(settings, target.job_id)
    if offset == 0 and not target.path.exists():
        message(
            f"{target.path} does not exist yet"
            + (
                ""
                if JobStatus(status).is_active or status == "created"
                else " (the job never started, or its directory was removed)"
            )
        )


def _print_new(path: Path, offset: int) -> int:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except (FileNotFoundError, IsADirectoryError):
        return 0
    if chunk:
        _write(chunk)
    return len(chunk)
