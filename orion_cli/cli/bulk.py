"""``orion cancel | retry | hold | release | priority | rm``: by ids, ``--tag``, ``--study``
or ``--status``."""

from __future__ import annotations

from typing import Annotated

import typer

from orion_cli.cli.jobargs import (
    IdsArg,
    JsonOpt,
    SlurmIdOpt,
    StatusOpt,
    StudyOpt,
    TagOpt,
    finish,
    selection,
)
from orion_cli.cli.output import handle_errors, message
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.errors import UsageError
from orion_cli.units import parse_param_pairs


@app.command()
@handle_errors
def cancel(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    with_dependents: Annotated[
        bool, typer.Option("--with-dependents", help="Also cancel every job waiting for these.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel jobs that have not ended yet (the others are reported, not refused)."""
    from orion_cli.services.actions.apply import cancel as run

    chosen = selection(job_ids, slurm_id, tag, status, study)
    finish(run(load_settings(), chosen, with_dependents), as_json, chosen.describe())


@app.command()
@handle_errors
def retry(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Run the new attempt with this engine parameter changed: key=value (repeatable).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a new attempt of failed or cancelled jobs now (more walltime after a timeout)."""
    from orion_cli.services.actions.apply import retry as run

    changes = parse_param_pairs(param or [])
    chosen = selection(job_ids, slurm_id, tag, status, study)
    finish(run(load_settings(), chosen, changes or None), as_json, chosen.describe())


@app.command()
@handle_errors
def hold(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Keep queued jobs from starting until `orion release`."""
    from orion_cli.services.actions.apply import control

    chosen = selection(job_ids, slurm_id, tag, status, study)
    finish(control(load_settings(), chosen, "hold"), as_json, chosen.describe())


@app.command()
@handle_errors
def release(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let held jobs start."""
    from orion_cli.services.actions.apply import control

    chosen = selection(job_ids, slurm_id, tag, status, study)
    finish(control(load_settings(), chosen, "release"), as_json, chosen.describe())


@app.command()
@handle_errors
def priority(
    value: Annotated[str, typer.Argument(help="new priority 0..20 (20 = most urgent)")],
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the priority of queued jobs."""
    from orion_cli.services.actions.apply import control

    if not value.isascii() or not value.isdigit():
        raise UsageError(
            f"priority '{value}' is not a whole number",
            "use 0..20 (20 = most urgent), then the job ids",
        )
    chosen = selection(job_ids, slurm_id, tag, status, study)
    finish(
        control(load_settings(), chosen, "priority", priority=int(value)),
        as_json,
        chosen.describe(),
    )


@app.command("rm")
@handle_errors
def remove(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    keep_results: Annotated[
        bool,
        typer.Option(
            "--keep-results",
            help="Delete only the job directories; keep the jobs listed with their results.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished jobs' directories and hide their records (events are kept)."""
    import sys

    from orion_cli.services.actions.remove import human_size, plan, remove

    settings = load_settings()
    chosen = selection(job_ids, slurm_id, tag, status, study)
    todo = plan(settings, chosen, keep_results)
    if todo.job_ids and not yes:
        what = "directories" if keep_results else "directories and records"
        question = (
            f"delete the {what} of {len(todo.job_ids)} finished jobs "
            f"({human_size(todo.size_bytes)})?"
        )
        if not sys.stdin.isatty():
            raise UsageError(
                f"{question[:-1]}: not confirmed", "add --yes to confirm when not on a terminal"
            )
        if not typer.confirm(question, err=True):
            message("nothing removed")
            raise typer.Exit(1)
    finish(remove(settings, todo, keep_results), as_json, chosen.describe())
