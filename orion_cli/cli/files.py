"""``orion path ID`` and ``orion files ID [--trajectory] [-o FILE]``: a job's files back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orion_cli.cli.jobargs import one_job_id
from orion_cli.cli.output import handle_errors, message, print_json, table, visible
from orion_cli.cli.root import app
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from orion_cli.services.queries.files import JobFiles


@app.command()
@handle_errors
def path(
    job_id: Annotated[str, typer.Argument(help="orion job id")] = "",
    slurm_id: Annotated[str, typer.Option("--slurm-id", help="Name the job by its SLURM id.")] = "",
) -> None:
    """Print a job's directory, alone on stdout: cd "$(orion path 12)"."""
    from orion_cli.config import load_settings
    from orion_cli.services.queries.files import job_files

    settings = load_settings()
    typer.echo(str(job_files(settings, one_job_id(settings, job_id, slurm_id)).workdir))


@app.command()
@handle_errors
def files(
    job_id: Annotated[str, typer.Argument(help="orion job id")] = "",
    slurm_id: Annotated[str, typer.Option("--slurm-id", help="Name the job by its SLURM id.")] = "",
    trajectory: Annotated[
        bool,
        typer.Option(
            "--trajectory",
            help="Write the trajectory as extended XYZ: a continued MD's attempts stitched, "
            "each step once.",
        ),
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the trajectory to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a job's files (the directory, names and sizes), or write its trajectory."""
    from orion_cli.config import load_settings
    from orion_cli.services.queries.files import job_files

    settings = load_settings()
    found = job_files(settings, one_job_id(settings, job_id, slurm_id))
    if output is not None and not trajectory:
        raise UsageError("-o writes the trajectory", "add --trajectory")
    if trajectory:
        _write_trajectory(found, output)
        return
    if as_json:
        print_json(
            {
                "id": found.job_id,
                "workdir": str(found.workdir),
                "files": [{"name": n, "size_bytes": b} for n, b in found.files],
                "trajectory": found.trajectory,
            }
        )
        return
    message(f"job {found.job_id} ({found.status}): {visible(str(found.workdir))}")
    table(
        f"{len(found.files)} files",
        ["file", "size"],
        [(name, _size(size)) for name, size in found.files],
    )
    if found.trajectory:
        message(
            f"trajectory: {' + '.join(found.trajectory)} "
            f"(`orion files {found.job_id} --trajectory -o traj.extxyz`)"
        )


def _size(size_bytes: int) -> str:
    """
    >>> _size(512), _size(2048), _size(5 * 1024**2)
    ('512 B', '2.0 KiB', '5.0 MiB')
    """
    if size_bytes < 1024:
        return f"{size_bytes} B"
    size, unit = size_bytes / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def _write_trajectory(found: JobFiles, output: Path | None) -> None:
    import sys

    from orion_cli.services.queries.files import stitched_frames, write_frames

    frames = stitched_frames(found)
    if output is None:
        write_frames(frames, sys.stdout)
    else:
        write_frames(frames, output)
    steps = [a.info["timestep"] for a in frames if "timestep" in a.info]
    span = f", steps {steps[0]}–{steps[-1]}" if steps else ""
    parts = " + ".join(found.trajectory)
    message(f"wrote {len(frames)} frames{span} from {parts}" + (f" to {output}" if output else ""))
