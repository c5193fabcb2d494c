"""``orion logs ID [--follow] [--engine-output] [--attempt N]``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from orion_cli.cli.jobargs import one_job_id
from orion_cli.cli.monitor import freshness_lines
from orion_cli.cli.output import handle_errors, message, visible
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.states import JobStatus

FOLLOW_INTERVAL_S = 1.0  # how often --follow looks at the file (no scheduler query)
CHUNK_BYTES = 1 << 20  # read and print a large output a MiB at a time
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
    _check_readable(target.path)  # refused in one line, before the header
    message(
        f"==> {target.path} (job {target.job_id}, attempt {target.attempt}, {target.status}) <=="
    )
    status = target.status
    if not follow:  # --follow polls by itself
        _, stale = freshness_lines(settings, JobStatus(status).is_active or status == "created")
        for line in (stale or "").split("\n") if stale else ():
            message(line)
    offset, looks = 0, 0
    while True:
        offset += _print_new(target.path, offset)
        if not follow or JobStatus(status).is_final:
            break
        time.sleep(FOLLOW_INTERVAL_S)
        looks += 1
        if looks % STATUS_EVERY == 0:
            status = job_status(settings, target.job_id, poll_first=True)
    if offset == 0 and not target.path.exists():
        message(
            f"{target.path} does not exist yet"
            + (
                ""
                if JobStatus(status).is_active or status == "created"
                else " (the job never started, or its directory was removed)"
            )
        )


def _check_readable(path: Path) -> None:
    import os

    from orion_cli.errors import UsageError
    from orion_cli.jobdir import JobFileError, open_regular

    try:
        os.close(open_regular(path))
    except FileNotFoundError:
        pass
    except JobFileError as exc:
        raise UsageError(str(exc), "orion logs prints only the job's own output file") from None


def _print_new(path: Path, offset: int) -> int:
    """Print what ``path`` holds after ``offset``, in bounded chunks; return how much.

    Only a regular file is read: a link (to /etc/shadow), a FIFO (waits for ever) or a
    device (/dev/zero never ends) is refused in one line, as the poller refuses them.
    """
    import os

    from orion_cli.errors import UsageError
    from orion_cli.jobdir import JobFileError, open_regular

    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return 0
    except JobFileError as exc:
        raise UsageError(str(exc), "orion logs prints only the job's own output file") from None
    total = 0
    with os.fdopen(fd, "rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(CHUNK_BYTES):
            _write(chunk)
            total += len(chunk)
    return total
