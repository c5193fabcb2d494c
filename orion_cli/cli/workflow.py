"""``orion workflow submit | show | retry``: studies described by a workflow file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orion_cli.cli import jobargs
from orion_cli.cli.jobargs import JsonOpt, finish
from orion_cli.cli.output import handle_errors, message, print_json
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.errors import UsageError
from orion_cli.jobids import parse_job_id
from orion_cli.units import parse_param_pairs

if TYPE_CHECKING:
    from rich.tree import Tree

workflow_app = typer.Typer(
    help="Studies from a workflow file: named steps, dependencies, sweeps.", no_args_is_help=True
)
app.add_typer(workflow_app, name="workflow")

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
    "created": "white",
}


@workflow_app.command("submit")
@handle_errors
def submit(
    workflow_file: Annotated[Path, typer.Argument(help="The workflow file (TOML).")],
    structures: Annotated[
        list[str] | None, typer.Argument(help="Structures: one study per structure.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="A label for every job (repeatable).")
    ] = None,
    scheduler: Annotated[str, typer.Option(help="slurm or local.")] = "",
    walltime: jobargs.WalltimeOpt = "",
    mem: jobargs.MemOpt = "",
    partition: jobargs.PartitionOpt = "",
    ntasks: jobargs.NtasksOpt = None,
    queue: jobargs.QueueOpt = "",
    retries: jobargs.RetriesOpt = None,
    on_scf_fail: jobargs.OnScfFailOpt = None,
    hold: Annotated[bool, typer.Option("--hold", help="Submit held (orion release).")] = False,
    dry_run: jobargs.DryRunOpt = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Poll until every job ended, then show each study.")
    ] = False,
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse",
            help="Take the result of an identical job (same calculation key) for every step "
            "without its own reuse key; a from: child is reused when its parent was and its "
            "own parameters are unchanged.",
        ),
    ] = False,
    reuse_loose: Annotated[
        bool,
        typer.Option("--reuse-loose", help="As --reuse, ignoring the engines' code versions."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the whole file first, then record each study in one go and submit its steps.

    Resource and retry options apply to every step that does not set its own.
    """
    from orion_cli.services.studies.workflow import WorkflowRequest, submit_workflow

    resources = jobargs.resource_changes(walltime, mem, partition, None)
    if ntasks is not None:
        resources["ntasks"] = ntasks
    request = WorkflowRequest(
        workflow_file,
        list(structures or []),
        scheduler,
        tuple(tag or ()),
        hold,
        dry_run,
        reuse="loose" if reuse_loose else "strict" if reuse else "",
        resources=resources,
        queue=queue,
        retries=retries,
        on_scf_fail=tuple(on_scf_fail or ()),
    )
    settings = load_settings()
    studies = submit_workflow(settings, request)
    if dry_run:
        for study in studies:
            message(f"{study.name} (nothing submitted):")
            for line in study.notes:
                message(f"  {line}")
        return
    _print_studies(studies, as_json)
    recorded = [study.study_id for study in studies if study.study_id]
    if not as_json and recorded and not wait:
        message(f"follow it: orion workflow show {recorded[0]}")
    if wait and recorded:
        _wait_and_show(settings, studies, recorded, as_json)
    if any(study.errors for study in studies):
        raise typer.Exit(1)


def _print_studies(studies: list[Any], as_json: bool) -> None:
    """Each recorded study's errors, notes and (without --json) its steps' job ids."""
    if as_json:
        print_json([vars(study) for study in studies])
    for study in studies:
        which = f"study {study.study_id} ({study.name})" if study.study_id else study.name
        for line in study.errors:
            message(f"error: {which}: {line}")
        for line in study.notes:
            message(f"{which}: {line}")
        if not as_json and study.study_id:
            steps = "; ".join(f"{name} {_ids(ids)}" for name, ids in study.steps.items())
            message(f"{which}: {steps}")


def _wait_and_show(settings: Any, studies: list[Any], recorded: list[int], quiet: bool) -> None:
    """``workflow submit --wait``: wait as `orion wait` does, then each study's tree; exit 1
    when a job did not complete."""
    from orion_cli.cli.monitor import wait_and_report
    from orion_cli.services.studies.workflow_status import study_graph

    ids = [job_id for study in studies for step in study.steps.values() for job_id in step]
    outcome = wait_and_report(settings, ids, None)
    if not quiet:
        from rich.console import Console

        for study_id in recorded:
            Console().print(render_tree(study_graph(settings, study_id)))
    if not outcome.all_completed:
        raise typer.Exit(1)


def _ids(ids: list[int]) -> str:
    if len(ids) == 1:
        return f"job {ids[0]}"
    return f"jobs {ids[0]}-{ids[-1]}"


@workflow_app.command("show")
@handle_errors
def show(
    study_id: Annotated[str, typer.Argument(help="A study id (or any job of the study).")],
    as_json: JsonOpt = False,
) -> None:
    """The study's steps as a tree: each step's jobs, statuses and why they wait or failed."""
    from orion_cli.services.studies.workflow_status import study_graph

    graph = study_graph(load_settings(), parse_job_id(study_id))
    if as_json:
        print_json(graph)
        return
    from rich.console import Console

    Console().print(render_tree(graph))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def render_tree(graph: dict[str, Any]) -> Tree:
    """Each step under its first parent step; a fan-in names its other parents."""
    from rich.markup import escape
    from rich.tree import Tree

    style = STATUS_STYLE.get(graph["status"], "white")
    root = Tree(
        f"study {graph['study_id']}  {escape(graph['formula'])}  "
        f"[{style}]{graph['status']}[/]  ({_counts(graph['counts'])})"
    )
    nodes: dict[str, Tree] = {}
    for step in graph["steps"]:
        parents = step["needs"] + step["needs_any"]
        under = next((nodes[p] for p in parents if p in nodes), root)
        nodes[step["step"]] = _step_node(under, step)
    return root


def _step_node(under: Tree, step: dict[str, Any]) -> Tree:
    from rich.markup import escape

    style = STATUS_STYLE.get(step["status"], "white")
    parts = [f"[bold]{escape(step['step'])}[/]", escape(step["engine"])]
    parts.append(f"[{style}]{step['status']}[/]")
    if len(step["jobs"]) > 1:
        parts.append(f"({_counts(step['counts'])})")
    waits = [*step["needs"], *(f"{p} (any outcome)" for p in step["needs_any"])]
    if len(waits) > 1 or step["needs_any"]:  # a single afterok parent: the tree says it
        parts.append("after " + ", ".join(escape(w) for w in waits))
    if step["from"]:
        parts.append(f"from:{escape(step['from'])}")
    node = under.add("  ".join(parts))
    jobs = step["jobs"]
    shown = jobs if len(jobs) <= 12 else [j for j in jobs if j["status"] != "completed"]
    for job in shown:
        line = node.add(_job_line(job))
        if job.get("hint"):
            line.add(f"hint: {escape(job['hint'])}")
    if len(shown) < len(jobs):
        node.add(f"… and {len(jobs) - len(shown)} completed")
    return node


def _job_line(job: dict[str, Any]) -> str:
    from rich.markup import escape

    style = STATUS_STYLE.get(job["status"], "white")
    sweep = " ".join(f"{k}={v}" for k, v in job["sweep"].items())
    line = f"job {job['id']}" + (f"  {escape(sweep)}" if sweep else "")
    line += f"  [{style}]{job['status']}[/]"
    if job["attempt"] > 1:
        line += f"  attempt {job['attempt']}"
    if job["reason"]:
        line += f"  — {escape(job['reason'])}"
    return line


@workflow_app.command("retry")
@handle_errors
def retry(
    study_id: Annotated[
        str, typer.Argument(help="A study id (or any job of the study).", show_default=False)
    ] = "",
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Every study with a job of this tag (repeatable)."),
    ] = None,
    failed: Annotated[
        bool,
        typer.Option("--failed", help="Rerun what failed and what was cancelled because of it."),
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Rerun the failed jobs with this engine parameter changed: key=value.",
        ),
    ] = None,
    step: Annotated[
        list[str] | None,
        typer.Option("--step", help="Only the failures of this step (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rerun the failed part of a study; completed steps are kept, not rerun."""
    from orion_cli.services.studies.workflow_status import retry_failed, tagged_studies

    if not failed:
        raise UsageError(
            "say what to rerun", f"write orion workflow retry {study_id or '--tag T'} --failed"
        )
    settings = load_settings()
    if bool(study_id) == bool(tag):
        raise UsageError("name the studies: a study id or --tag", "`orion ls --tag T` lists them")
    ids = [parse_job_id(study_id)] if study_id else tagged_studies(settings, tuple(tag or ()))
    changes = parse_param_pairs(param or []) or None
    reports = [retry_failed(settings, one, changes, tuple(step or ())) for one in ids]
    report = reports[0]
    for other in reports[1:]:  # one summary for every study
        report.merge(other)
    which = f"study {study_id}" if study_id else f"{len(ids)} studies tagged {', '.join(tag or ())}"
    finish(report, as_json, f"{which} --failed")
