"""``orion cancel | retry | hold | release | priority | rm``: by ids, ``--tag``, ``--study``
or ``--status``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from orion_cli.cli.jobargs import (
    GpusOpt,
    IdsArg,
    JsonOpt,
    MemOpt,
    NameOpt,
    PartitionOpt,
    SinceOpt,
    SlurmIdOpt,
    StatusOpt,
    StudyOpt,
    TagOpt,
    WalltimeOpt,
    YesOpt,
    finish,
    resource_changes,
    selection,
)
from orion_cli.cli.output import handle_errors, message
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.errors import UsageError
from orion_cli.units import parse_param_pairs

if TYPE_CHECKING:
    from orion_cli.services.queries.selection import Selection


@app.command()
@handle_errors
def cancel(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    name: NameOpt = None,
    since: SinceOpt = "",
    with_dependents: Annotated[
        bool, typer.Option("--with-dependents", help="Also cancel every job waiting for these.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel jobs that have not ended yet (the others are reported, not refused)."""
    from orion_cli.services.actions.apply import cancel as run

    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
    finish(run(load_settings(), chosen, with_dependents), as_json, chosen.describe())


@app.command()
@handle_errors
def retry(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    name: NameOpt = None,
    since: SinceOpt = "",
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Run the new attempt with this engine parameter changed: key=value (repeatable).",
        ),
    ] = None,
    walltime: WalltimeOpt = "",
    mem: MemOpt = "",
    partition: PartitionOpt = "",
    gpus: GpusOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit a new attempt of failed or cancelled jobs now (more walltime after a timeout).

    --walltime/--mem/--partition/--gpus change the new attempt's resources (recorded with it).
    A job that failed in the engine itself fails the same way again unless something changes:
    without -p or a resource option, orion asks first (--yes does not ask).
    """
    from orion_cli.services.actions.apply import retry as run

    changes = parse_param_pairs(param or [])
    resources = resource_changes(walltime, mem, partition, gpus)
    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
    settings = load_settings()
    if not changes and not resources and not yes:
        confirm_same_failure(settings, chosen)
    finish(run(settings, chosen, changes or None, resources), as_json, chosen.describe())


def confirm_same_failure(settings: Any, chosen: Selection) -> None:
    """Ask before retrying, unchanged, jobs whose engine failed (it would fail the same way)."""
    import sys

    from orion_cli.cli.output import message
    from orion_cli.services.actions.apply import would_fail_again

    doomed = would_fail_again(settings, chosen)
    if not doomed:
        return
    first_id, error = doomed[0]
    which = f"job {first_id}" if len(doomed) == 1 else f"{len(doomed)} jobs (e.g. {first_id})"
    question = (
        f"{which} failed in the engine ({error[:120] or 'engine_error'}); retried unchanged, "
        "it will fail the same way"
    )
    fix = f"change something with -p KEY=VALUE (`orion show {first_id}` suggests what), or --yes"
    if not sys.stdin.isatty():
        raise UsageError(f"{question}: not retried", fix)
    if not typer.confirm(f"{question}. Retry anyway?", err=True):
        message("nothing retried")
        raise typer.Exit(1)


@app.command()
@handle_errors
def move(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    name: NameOpt = None,
    since: SinceOpt = "",
    partition: Annotated[str, typer.Option(help="The partition to move them to.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Move queued jobs to another partition (same job, no attempt spent, nothing run twice)."""
    from orion_cli.config import load_settings
    from orion_cli.services.actions.apply import move as run

    if not partition:
        raise UsageError("say where to: --partition NAME", "`sinfo -s` lists the partitions")
    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
    finish(run(load_settings(), chosen, partition), as_json, chosen.describe())


@app.command()
@handle_errors
def hold(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    name: NameOpt = None,
    since: SinceOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Keep queued jobs from starting until `orion release`."""
    from orion_cli.services.actions.apply import control

    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
    finish(control(load_settings(), chosen, "hold"), as_json, chosen.describe())


@app.command()
@handle_errors
def release(
    job_ids: IdsArg = None,
    slurm_id: SlurmIdOpt = None,
    tag: TagOpt = None,
    study: StudyOpt = None,
    status: StatusOpt = None,
    name: NameOpt = None,
    since: SinceOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Let held jobs start."""
    from orion_cli.services.actions.apply import control

    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
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
    name: NameOpt = None,
    since: SinceOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Change the priority of queued jobs."""
    from orion_cli.services.actions.apply import control

    if not value.isascii() or not value.isdigit():
        raise UsageError(
            f"priority '{value}' is not a whole number",
            "use 0..20 (20 = most urgent), then the job ids",
        )
    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
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
    name: NameOpt = None,
    since: SinceOpt = "",
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
    chosen = selection(job_ids, slurm_id, tag, status, study, name, since)
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
