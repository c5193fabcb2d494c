"""``orion results`` and ``orion eos``: studies rather than single jobs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orion_cli.cli.output import handle_errors, message, print_json, table
from orion_cli.cli.params import read_params
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.jobids import parse_job_ids, parse_study_id
from orion_cli.units import parse_walltime_s

if TYPE_CHECKING:
    from orion_cli.config import Settings


@app.command()
@handle_errors
def results(
    job_ids: Annotated[list[str] | None, typer.Argument(help="orion job ids")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Your jobs with this tag (repeatable: any of them).")
    ] = None,
    study: Annotated[
        str, typer.Option(help="Your jobs of this study (eos, converge, workflow).")
    ] = "",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json or extxyz.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
) -> None:
    """Energies, forces, stress, volumes (and swept parameters) of many jobs at once."""
    import sys

    from orion_cli.services.queries.results import Selection, answers, table_rows, write_results

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
        for job_id, answer in answers(settings, selection):  # a study's outcome, in words
            typer.echo(f"job {job_id}: {answer}")
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


def _base_request(
    engine: str,
    param: list[str] | None,
    params_file: Path | None,
    name: str,
    tag: str,
    scheduler: str,
    resources: dict[str, Any],
) -> Any:
    """The SubmitRequest every job of a study shares (no structures yet)."""
    from orion_cli.services.submission.submit import SubmitRequest

    walltime = resources.pop("walltime", "")
    if walltime:
        resources["walltime_s"] = parse_walltime_s(walltime, "--walltime")
    return SubmitRequest(
        structures=[],
        engine=engine,
        params=read_params(param or [], params_file),
        name=name,
        tag=tag,
        scheduler=scheduler,
        resources={k: v for k, v in resources.items() if v not in (None, "")},
    )


ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Engine parameter key=value.")
]
ParamsFileOpt = Annotated[
    Path | None, typer.Option("--params", help="TOML/JSON file of engine parameters.")
]
WalltimeOpt = Annotated[str, typer.Option(help="Time limit of each job.")]
PartitionOpt = Annotated[str, typer.Option(help="SLURM partition.")]
SchedulerOpt = Annotated[str, typer.Option(help="slurm or local.")]
TagOpt = Annotated[str, typer.Option(help="A label for the study's jobs.")]
NameOpt = Annotated[str, typer.Option(help="Study name (default: file name).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command()
@handle_errors
def eos(
    structure: Annotated[Path, typer.Argument(help="One periodic structure (CIF, POSCAR, ...).")],
    engine: Annotated[str, typer.Option("--engine", "-e", help="Engine of the points.")],
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    points: Annotated[int, typer.Option(help="Number of volumes.")] = 7,
    strain: Annotated[float, typer.Option(help="Largest lattice strain (0.05 = ±5 %).")] = 0.05,
    form: Annotated[str, typer.Option("--eos", help="E(V) form (ase.eos).")] = "birchmurnaghan",
    relax_first: Annotated[
        bool,
        typer.Option(
            "--relax-first",
            help="Relax atoms and cell first (emt, ase, qe, lammps); scale the relaxed cell.",
        ),
    ] = False,
    name: NameOpt = "",
    tag: TagOpt = "",
    walltime: WalltimeOpt = "",
    partition: PartitionOpt = "",
    ntasks: Annotated[int | None, typer.Option()] = None,
    scheduler: SchedulerOpt = "",
    hold: Annotated[
        bool,
        typer.Option("--hold", help="Submit the points held; `orion release --study ID` starts."),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the fit ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Equation of state: scaled cells as one array, then a Birch–Murnaghan fit after them."""
    from orion_cli.services.studies.eos import submit_eos

    if hold and wait:
        raise UsageError(
            "--hold with --wait would wait for ever",
            "drop --wait; start the study with `orion release --study ID`, then `orion wait`",
        )
    settings = load_settings()
    base = _base_request(
        engine,
        param,
        params_file,
        name,
        tag,
        scheduler,
        {"partition": partition, "ntasks": ntasks, "walltime": walltime},
    )
    base.hold = hold
    done = submit_eos(settings, structure, base, points, strain, form, relax_first)
    for line in done.errors:
        message(f"error: {line}")
    fit = _wait_for(settings, done.fit_id) if wait and done.fit_id else None
    if as_json:
        print_json(
            {
                "study_id": done.study_id,
                "relax": done.relax_id,
                "points": done.point_ids,
                "fit": done.fit_id,
                "scales": done.scales,
                "errors": done.errors,
                "result": (fit or {}).get("result"),
            }
        )
    else:
        relax = f"relax {done.relax_id}; " if done.relax_id else ""
        message(
            f"study {done.study_id}: {relax}points {', '.join(map(str, done.point_ids))}; "
            f"fit {done.fit_id} (orion show {done.fit_id}; "
            f"orion results --study {done.study_id})"
        )
        if fit is not None:
            _print_fit(fit)
    if done.errors or (fit is not None and fit["status"] != "completed"):
        raise typer.Exit(1)


@app.command()
@handle_errors
def converge(
    structure: Annotated[Path, typer.Argument(help="One structure (CIF, POSCAR, ...).")],
    engine: Annotated[str, typer.Option("--engine", "-e", help="Engine of the sweep.")],
    sweep: Annotated[
        str,
        typer.Option(
            "--sweep",
            "-s",
            help="The swept parameter, least to most accurate: ecutwfc_ry=20:60:10 "
            "(start:stop:step), ecutwfc_ry=20,30,40 or kpoints=2x2x2,4x4x4,6x6x6.",
        ),
    ] = "",
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    tol: Annotated[
        float, typer.Option(help="Converged within this of the last value (meV/atom).")
    ] = 1.0,
    name: NameOpt = "",
    tag: TagOpt = "",
    walltime: WalltimeOpt = "",
    partition: PartitionOpt = "",
    ntasks: Annotated[int | None, typer.Option()] = None,
    scheduler: SchedulerOpt = "",
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the analysis ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Convergence test: one job per value of a parameter as one array, then the analysis."""
    from orion_cli.services.studies.converge import SWEEP_HINT, submit_converge

    settings = load_settings()
    if not sweep:  # -p key=start:stop:step (a range can be nothing else) is the sweep too
        ranges = [p for p in param or [] if ":" in p.partition("=")[2]]
        if len(ranges) != 1:
            raise UsageError("no swept parameter given", SWEEP_HINT)
        sweep, param = ranges[0], [p for p in param or [] if p != ranges[0]]
    base = _base_request(
        engine,
        param,
        params_file,
        name,
        tag,
        scheduler,
        {"partition": partition, "ntasks": ntasks, "walltime": walltime},
    )
    done = submit_converge(settings, structure, base, sweep, tol)
    for line in done.errors:
        message(f"error: {line}")
    analysis = _wait_for(settings, done.analysis_id) if wait and done.analysis_id else None
    if as_json:
        print_json(
            {
                "study_id": done.study_id,
                "jobs": done.job_ids,
                "analysis": done.analysis_id,
                "parameter": done.parameter,
                "values": done.values,
                "errors": done.errors,
                "result": (analysis or {}).get("result"),
            }
        )
    else:
        message(
            f"study {done.study_id}: {done.parameter} = "
            + ", ".join(map(_shown, done.values))
            + f" as jobs {', '.join(map(str, done.job_ids))}; analysis {done.analysis_id} "
            f"(orion show {done.analysis_id}; orion results --study {done.study_id})"
        )
        if analysis is not None:
            _print_answer(analysis)
    if done.errors or (analysis is not None and analysis["status"] != "completed"):
        raise typer.Exit(1)


def _shown(value: Any) -> str:
    return "x".join(map(str, value)) if isinstance(value, list) else str(value)


def _wait_for(settings: Settings, job_id: int) -> dict[str, Any]:
    from orion_cli.services.queries.show import show_job
    from orion_cli.services.queries.waiting import wait_for

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


def _print_answer(job: dict[str, Any]) -> None:
    extras = (job.get("result") or {}).get("extras") or {}
    if job["status"] != "completed" or "answer" not in extras:
        message(f"analysis job {job['id']}: {job['status']} {job.get('error_message') or ''}")
        return
    for value, diff in zip(extras["values"], extras["differences_mev_per_atom"], strict=True):
        shown = "failed" if diff is None else f"{diff:+10.3f} meV/atom"
        typer.echo(f"  {extras['parameter']} = {_shown(value):>10}  {shown}")
    typer.echo(f"{extras['answer']} (plot: {job['workdir']}/convergence.png)")
