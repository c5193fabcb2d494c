"""``orion results`` and ``orion eos``: studies rather than single jobs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orion_cli.cli import app
from orion_cli.cli.output import handle_errors, message, table

if TYPE_CHECKING:
    from orion_cli.config import Settings


@app.command()
@handle_errors
def results(
    job_ids: Annotated[list[str] | None, typer.Argument(help="orion job ids")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Your jobs with this tag (repeatable: any of them).")
    ] = None,
    study: Annotated[str, typer.Option(help="Your jobs of this study (orion eos).")] = "",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json or extxyz.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
) -> None:
    """Energies, forces, stress, volumes (and swept parameters) of many jobs at once."""
    import sys

    from orion_cli.config import load_settings
    from orion_cli.errors import UsageError
    from orion_cli.identity import current_user
    from orion_cli.jobids import parse_job_ids, parse_study_id
    from orion_cli.services.results import Selection, table_rows, write_results

    settings = load_settings()
    selection = Selection(
        tuple(parse_job_ids(job_ids)),  # strictly: int() reads "1_0" as job 10
        tuple(t for t in tag or () if t),
        parse_study_id(study) if study else None,
        current_user(),
    )
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


@app.command()
@handle_errors
def eos(
    structure: Annotated[Path, typer.Argument(help="One periodic structure (CIF, POSCAR, ...).")],
    engine: Annotated[str, typer.Option("--engine", "-e", help="Engine of the points.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Engine parameter key=value.")
    ] = None,
    points: Annotated[int, typer.Option(help="Number of volumes.")] = 7,
    strain: Annotated[float, typer.Option(help="Largest lattice strain (0.05 = ±5 %).")] = 0.05,
    form: Annotated[str, typer.Option("--eos", help="E(V) form (ase.eos).")] = "birchmurnaghan",
    name: Annotated[str, typer.Option(help="Study name (default: file name).")] = "",
    tag: Annotated[str, typer.Option(help="A label for the study's jobs.")] = "",
    walltime: Annotated[str, typer.Option(help="Time limit of each point.")] = "",
    partition: Annotated[str, typer.Option(help="SLURM partition.")] = "",
    ntasks: Annotated[int | None, typer.Option()] = None,
    scheduler: Annotated[str, typer.Option(help="slurm or local.")] = "",
    hold: Annotated[
        bool,
        typer.Option("--hold", help="Submit the points held; `orion release --study ID` starts."),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the fit ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Equation of state: scaled cells as one array, then a Birch–Murnaghan fit after them."""
    from orion_cli.cli.output import print_json
    from orion_cli.config import load_settings
    from orion_cli.services.eos import submit_eos
    from orion_cli.services.submit import SubmitRequest
    from orion_cli.units import parse_param_pairs, parse_walltime_s

    if hold and wait:
        from orion_cli.errors import UsageError

        raise UsageError(
            "--hold with --wait would wait for ever",
            "drop --wait; start the study with `orion release --study ID`, then `orion wait`",
        )
    settings = load_settings()
    base = SubmitRequest(
        structures=[],
        engine=engine,
        params=parse_param_pairs(param or []),
        name=name,
        tag=tag,
        scheduler=scheduler,
        hold=hold,
        resources={
            k: v
            for k, v in {
                "partition": partition or None,
                "ntasks": ntasks,
                "walltime_s": parse_walltime_s(walltime, "--walltime") if walltime else None,
            }.items()
            if v is not None
        },
    )
    done = submit_eos(settings, structure, base, points, strain, form)
    for line in done.errors:
        message(f"error: {line}")
    fit = _wait_for(settings, done.fit_id) if wait and done.fit_id else None
    if as_json:
        print_json(
            {
                "study_id": done.study_id,
                "points": done.point_ids,
                "fit": done.fit_id,
                "scales": done.scales,
                "errors": done.errors,
                "result": (fit or {}).get("result"),
            }
        )
    else:
        message(
            f"study {done.study_id}: points {', '.join(map(str, done.point_ids))}; "
            f"fit {done.fit_id} (orion show {done.fit_id}; "
            f"orion results --study {done.study_id})"
        )
        if fit is not None:
            _print_fit(fit)
    if done.errors or (fit is not None and fit["status"] != "completed"):
        raise typer.Exit(1)


def _wait_for(settings: Settings, job_id: int) -> dict[str, Any]:
    from orion_cli.services.jobs import show_job
    from orion_cli.services.waiting import wait_for

    wait_for(settings, [job_id])
    return show_job(settings, job_id)


def _print_fit(job: dict[str, Any]) -> None:
    result = job.get("result") or {}
    extras = result.get("extras") or {}
    if job["status"] != "completed" or "v0_a3" not in extras:
        message(f"fit job {job['id']}: {job['status']} {job.get('error_message') or ''}")
        return
    typer.echo(
        f"V0 = {extras['v0_a3']:.4f} Å³   E0 = {extras['e0_ev']:.6f} eV   "
        f"B = {extras['b_gpa']:.2f} GPa   ({len(extras['jobs_used'])} points, "
        f"{extras['eos']}; plot: {job['workdir']}/eos.png)"
    )
