"""Your own batch scripts: ``orion submit --script`` (called from cli/submit.py),
``orion progress`` (inside a job) and ``orion adopt`` (jobs submitted without orion)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orion_cli.cli.monitor import wait_and_show
from orion_cli.cli.output import handle_errors, message, print_json
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.errors import UsageError
from orion_cli.jobprogress import (
    job_context,
    parse_pairs,
    parse_percent,
    report_progress,
    report_result,
)
from orion_cli.limits import check_bound, check_text
from orion_cli.resources import ResourceAsk
from orion_cli.units import parse_mem_mb, parse_walltime_s

#: submit options an engine job takes and a script job does not
_ENGINE_ONLY = {
    "engine": "--engine",
    "param": "--param",
    "params": "--params",
    "pack": "--pack",
    "estimate": "--estimate",
    "throttle": "--throttle",
    "structure_from": "--from",
    "from_tag": "--from-tag",
    "allow_close_atoms": "--allow-close-atoms",
}


def submit_script_command(
    settings: Any, script: Path, args: list[str], given: dict[str, Any]
) -> None:
    """``orion submit --script``: ``given`` holds the submit command's parsed options."""
    from orion_cli.services.lifecycle.depgraph import parse_ids
    from orion_cli.services.submission.scripts import ScriptRequest, submit_script

    for key, flag in _ENGINE_ONLY.items():
        if given.get(key):
            raise UsageError(
                f"{flag} does not go with --script", "your script says what to run; drop the option"
            )
    retry_delay, soft = given["retry_delay"], given["soft_limit"]
    request = ScriptRequest(
        script=script,
        args=list(args),
        name=given["name"],
        tag=(given["tag"] or [""])[0],
        tags=tuple(given["tag"] or ()),
        scheduler=given["scheduler"],
        resources=_script_resources(given),
        max_retries=given["retries"],
        retry_delay_s=parse_walltime_s(retry_delay, "--retry-delay") if retry_delay else None,
        hold=given["hold"],
        after=parse_ids(given["after"] or [], "--after"),
        after_any=parse_ids(given["after_any"] or [], "--after-any"),
        soft_limit_s=parse_walltime_s(soft, "--soft-limit") if soft else 0,
        dry_run=given["dry_run"],
    )
    done = submit_script(settings, request)
    if request.dry_run:  # the sbatch command it would run; nothing written
        typer.echo("".join(done.scripts), nl=False)
        return
    for line in done.errors:
        message(f"error: {line}")
    if given["as_json"] and not given["wait"]:
        print_json(
            {
                "id": done.ids[0] if done.ids else None,
                "ids": done.ids,
                "scheduler_job_ids": done.scheduler_job_ids,
                "errors": done.errors,
            }
        )
    elif not given["as_json"]:
        for job_id in done.ids:
            typer.echo(job_id)
    if given["wait"] and done.ids:
        wait_and_show(settings, done.ids, given["as_json"])
    if done.errors:
        raise typer.Exit(1)


def _script_resources(given: dict[str, Any]) -> ResourceAsk:
    """The resources given as flags, in the order they are passed to sbatch (an empty
    value or a count of 0 is not given: the script's line stays in force)."""
    walltime = given["walltime"]
    return ResourceAsk.of(
        partition=given["partition"] or None,
        account=given["account"] or None,
        qos=given["qos"] or None,
        nodes=given["nodes"] or None,
        ntasks=given["ntasks"] or None,
        cpus_per_task=given["cpus_per_task"] or None,
        priority=given["priority"],
        walltime_s=parse_walltime_s(walltime, "--walltime") if walltime else None,
        mem_mb=parse_mem_mb(given["mem"]) if given["mem"] else None,
    )


@app.command()
@handle_errors
def progress(
    words: Annotated[
        list[str] | None,
        typer.Argument(
            help='PERCENT [STEP...], e.g. 40 "SCF step 12"; with --result: key=value pairs.'
        ),
    ] = None,
    result: Annotated[
        bool,
        typer.Option(
            "--result", help="Record key=value results (energy_ev, converged, anything else)."
        ),
    ] = False,
) -> None:
    """Report progress or results from inside a job orion submitted (no database needed)."""
    import os

    workdir, attempt = job_context(os.environ)
    items = words or []
    if result:
        report_result(workdir, attempt, parse_pairs(items))
        return
    if not items:
        raise UsageError("no progress given", 'write e.g. orion progress 40 "SCF step 12"')
    report_progress(workdir, attempt, parse_percent(items[0]), " ".join(items[1:]))


@app.command()
@handle_errors
def adopt(
    job_ids: Annotated[list[str], typer.Argument(help="SLURM job ids submitted without orion.")],
    retries: Annotated[
        int,
        typer.Option(
            help="Retries after timeout/OOM/node failure (resubmits the script SLURM kept)."
        ),
    ] = 0,
    tag: Annotated[str, typer.Option(help="A label to filter by later (orion ls --tag).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Track SLURM jobs you submitted with plain sbatch: orion poll reconciles them from now on."""
    from orion_cli.services.submission.adopt import adopt as adopt_jobs

    check_bound("max_retries", retries)
    check_text(tag, "--tag")
    done = adopt_jobs(load_settings(), job_ids, retries, tag)
    for line in done.errors:
        message(f"error: {line}")
    if as_json:
        print_json({"ids": done.ids, "errors": done.errors})
    else:
        for line in done.lines:
            typer.echo(line)
    if done.errors:
        raise typer.Exit(2)
