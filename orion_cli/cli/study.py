"""``orion results`` and ``orion eos``: studies rather than single jobs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orion_cli.cli import jobargs
from orion_cli.cli.output import count_of, handle_errors, message, print_json, table
from orion_cli.cli.params import read_params
from orion_cli.cli.root import app
from orion_cli.config import load_settings
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.jobids import parse_study_id
from orion_cli.outfile import open_output
from orion_cli.units import parse_mem_mb, parse_walltime_s

if TYPE_CHECKING:
    from orion_cli.config import Settings


@app.command()
@handle_errors
def results(
    job_ids: Annotated[list[str] | None, typer.Argument(help="orion job ids")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Your jobs with this tag (repeatable: any of them).")
    ] = None,
    study: jobargs.StudyOpt = None,
    status: jobargs.StatusOpt = None,
    name: jobargs.NameOpt = None,
    since: jobargs.SinceOpt = "",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json or extxyz.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
    trajectory: Annotated[
        bool,
        typer.Option(
            "--trajectory",
            help="With -f extxyz: every frame of each job's trajectory (attempts stitched), "
            "not only the final structure.",
        ),
    ] = False,
) -> None:
    """Energies, forces, stress, volumes (and swept parameters) of many jobs at once."""
    import sys

    from orion_cli.services.queries.results import Selection, answers, table_rows, write_results

    settings = load_settings()
    common = jobargs.selection(job_ids, None, tag, status, study, name, since)  # read strictly
    chosen = Selection(
        common.ids,
        common.tags,
        None,
        current_user(),
        statuses=common.statuses,
        studies=common.studies,
        names=common.names,
        since_s=common.since_s,
    )
    if trajectory:
        _trajectories(settings, chosen, fmt, output)
        return
    if fmt == "table" and output is None:
        header, rows = table_rows(settings, chosen)
        table(f"{len(rows)} job" + ("" if len(rows) == 1 else "s"), header, rows)
        for job_id, answer in answers(settings, chosen):  # a study's outcome, in words
            typer.echo(f"job {job_id}: {answer}")
        return
    if fmt == "table":
        raise UsageError("--format table is for the terminal", "use csv, json or extxyz with -o")
    if output is None:
        write_results(settings, chosen, fmt, sys.stdout)
        return
    with open_output(output) as out:  # never through a planted link, never over a device
        count = write_results(settings, chosen, fmt, out)
    message(f"wrote {count} jobs to {output}")


def _trajectories(settings: Settings, selection: Any, fmt: str, output: Path | None) -> None:
    """``orion results -f extxyz --trajectory [-o FILE]``."""
    import sys

    from orion_cli.errors import UsageError
    from orion_cli.services.queries.files import write_trajectories

    if fmt != "extxyz":
        raise UsageError("--trajectory writes extended XYZ", "add -f extxyz")
    frames, jobs, skipped = write_trajectories(
        settings, selection, output if output is not None else sys.stdout
    )
    for line in skipped[:10]:
        message(f"skipped: {line}")
    where = f" to {output}" if output is not None else ""
    message(f"wrote {frames} frames of {count_of(jobs, 'job')}{where}")


def _base_request(
    engine: str,
    param: list[str] | None,
    params_file: Path | None,
    name: str,
    tag: str | list[str] | None,
    scheduler: str,
    resources: dict[str, Any],
) -> Any:
    """The SubmitRequest every job of a study shares (no structures yet)."""
    from orion_cli.services.submission.plan import SubmitRequest

    walltime = resources.pop("walltime", "")
    if walltime:
        resources["walltime_s"] = parse_walltime_s(walltime, "--walltime")
    policy = {k: resources.pop(k, None) for k in ("queue", "retries", "on_scf_fail", "mem")}
    if policy["mem"]:
        resources["mem_mb"] = parse_mem_mb(policy["mem"])
    tags = tuple(t for t in (tag if isinstance(tag, list | tuple) else [tag]) if t)
    return SubmitRequest(
        structures=[],
        engine=engine,
        params=read_params(param or [], params_file),
        name=name,
        tag=tags[0] if tags else "",
        tags=tags,
        scheduler=scheduler,
        queue=policy["queue"] or "",
        max_retries=policy["retries"],
        on_scf_fail=list(policy["on_scf_fail"] or []),
        resources={k: v for k, v in resources.items() if v not in (None, "")},
    )


ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Engine parameter key=value.")
]
ParamsFileOpt = Annotated[
    Path | None, typer.Option("--params", help="TOML/JSON file of engine parameters.")
]
SchedulerOpt = Annotated[str, typer.Option(help="slurm or local.")]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", help="A label for the study's jobs (repeatable).")
]
NameOpt = Annotated[str, typer.Option(help="Study name (default: file name).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ExtendOpt = Annotated[
    str,
    typer.Option(
        "--extend",
        help="Extend this study: compute only what it has not completed, then analyse all.",
    ),
]

ReuseOpt = Annotated[
    bool,
    typer.Option(
        "--reuse",
        help="Points identical to a completed (or running) job take its result (same "
        "calculation key); only the others run.",
    ),
]


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
    tag: TagOpt = None,
    walltime: jobargs.WalltimeOpt = "",
    partition: jobargs.PartitionOpt = "",
    ntasks: jobargs.NtasksOpt = None,
    mem: jobargs.MemOpt = "",
    queue: jobargs.QueueOpt = "",
    retries: jobargs.RetriesOpt = None,
    on_scf_fail: jobargs.OnScfFailOpt = None,
    scheduler: SchedulerOpt = "",
    hold: Annotated[
        bool,
        typer.Option("--hold", help="Submit the points held; `orion release --study ID` starts."),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the fit ends.")] = False,
    extend: ExtendOpt = "",
    reuse: ReuseOpt = False,
    dry_run: jobargs.DryRunOpt = False,
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
        {
            "partition": partition,
            "ntasks": ntasks,
            "walltime": walltime,
            "mem": mem,
            "queue": queue,
            "retries": retries,
            "on_scf_fail": on_scf_fail,
        },
    )
    base = replace(base, hold=hold, dry_run=dry_run, reuse="strict" if reuse else "")
    done = submit_eos(
        settings, structure, base, points, strain, form, relax_first, _study_arg(extend)
    )
    if dry_run:
        _print_dry_run(done, as_json)
        return
    for line in done.errors:
        message(f"error: {line}")
    fit = _wait_for(settings, done.fit_id) if wait and done.fit_id else None
    if as_json:
        print_json(_eos_json(done, fit))
    else:
        relax = f"relax {done.relax_id}; " if done.relax_id else ""
        message(
            f"study {done.study_id}: {relax}points {', '.join(map(str, done.point_ids)) or '-'}"
            f"{_reused(done.reused_ids)}; "
            f"fit {done.fit_id} (orion show {done.fit_id}; "
            f"orion results --study {done.study_id})"
        )
        if fit is not None:
            _print_fit(fit)
    if done.errors or (fit is not None and fit["status"] != "completed"):
        raise typer.Exit(1)


def _eos_json(done: Any, fit: dict[str, Any] | None) -> dict[str, Any]:
    """What ``orion eos --json`` prints."""
    return {
        "study_id": done.study_id,
        "relax": done.relax_id,
        "points": done.point_ids,
        "fit": done.fit_id,
        "scales": done.scales,
        "reused": done.reused_ids,
        "errors": done.errors,
        "result": (fit or {}).get("result"),
    }


def _sweep_of(sweep: str, param: list[str], hint: str) -> tuple[str, list[str]]:
    """The swept parameter: ``--sweep``, or the one ``-p key=start:stop:step`` (a range)."""
    if sweep:
        return sweep, param
    ranges = [p for p in param if ":" in p.partition("=")[2]]
    if len(ranges) != 1:
        raise UsageError("no swept parameter given", hint)
    return ranges[0], [p for p in param if p != ranges[0]]


def _converge_json(done: Any, analysis: dict[str, Any] | None) -> dict[str, Any]:
    """What ``orion converge --json`` prints."""
    return {
        "study_id": done.study_id,
        "jobs": done.job_ids,
        "analysis": done.analysis_id,
        "parameter": done.parameter,
        "values": done.values,
        "reused": done.reused_ids,
        "errors": done.errors,
        "result": (analysis or {}).get("result"),
    }


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
    tag: TagOpt = None,
    walltime: jobargs.WalltimeOpt = "",
    partition: jobargs.PartitionOpt = "",
    ntasks: jobargs.NtasksOpt = None,
    mem: jobargs.MemOpt = "",
    queue: jobargs.QueueOpt = "",
    retries: jobargs.RetriesOpt = None,
    on_scf_fail: jobargs.OnScfFailOpt = None,
    scheduler: SchedulerOpt = "",
    hold: Annotated[
        bool,
        typer.Option("--hold", help="Submit the jobs held; `orion release --study ID` starts."),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the analysis ends.")] = False,
    extend: ExtendOpt = "",
    reuse: ReuseOpt = False,
    dry_run: jobargs.DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convergence test: one job per value of a parameter as one array, then the analysis.

    With --wait it exits 1 when the answer is "not converged", naming the range to try next.
    """
    from orion_cli.services.studies.converge import SWEEP_HINT, submit_converge

    settings = load_settings()
    sweep, param = _sweep_of(sweep, param or [], SWEEP_HINT)
    base = _base_request(
        engine,
        param,
        params_file,
        name,
        tag,
        scheduler,
        {
            "partition": partition,
            "ntasks": ntasks,
            "walltime": walltime,
            "mem": mem,
            "queue": queue,
            "retries": retries,
            "on_scf_fail": on_scf_fail,
        },
    )
    if hold and wait:
        raise UsageError(
            "--hold with --wait would wait for ever",
            "drop --wait; start the study with `orion release --study ID`, then `orion wait`",
        )
    base = replace(base, hold=hold, dry_run=dry_run, reuse="strict" if reuse else "")
    done = submit_converge(settings, structure, base, sweep, tol, _study_arg(extend))
    if dry_run:
        _print_dry_run(done, as_json)
        return
    for line in done.errors:
        message(f"error: {line}")
    analysis = _wait_for(settings, done.analysis_id) if wait and done.analysis_id else None
    if as_json:
        print_json(_converge_json(done, analysis))
    else:
        message(
            f"study {done.study_id}: {done.parameter} = "
            + ", ".join(map(_shown, done.values))
            + f" as jobs {', '.join(map(str, done.job_ids))}{_reused(done.reused_ids)}; "
            f"analysis {done.analysis_id} "
            f"(orion show {done.analysis_id}; orion results --study {done.study_id})"
        )
        if analysis is not None:
            _print_answer(analysis)
    unconverged = _next_sweep(analysis)
    if unconverged and not as_json:
        message(
            f"not converged: try next `orion converge {structure} --extend {done.study_id} "
            f"--sweep {unconverged}` (and the same --engine and -p)"
        )
    if done.errors or unconverged or (analysis is not None and analysis["status"] != "completed"):
        raise typer.Exit(1)


def _print_dry_run(done: Any, as_json: bool) -> None:
    """A study's dry run: the batch scripts on stdout, what would run in words on stderr."""
    for line in done.errors:
        message(f"error: {line}")
    if as_json:
        print_json({"scripts": done.scripts, "notes": done.notes, "errors": done.errors})
    else:
        typer.echo("\n".join(done.scripts), nl=False)
        for line in done.notes:
            message(f"{line} (nothing submitted)")
    if done.errors:
        raise typer.Exit(1)


def _study_arg(text: str) -> int | None:
    """``--extend``'s study id, parsed strictly (``1_0`` is not study 10)."""

    return parse_study_id(text) if text else None


def _reused(ids: list[int]) -> str:
    return f" (already done, reused: {', '.join(map(str, ids))})" if ids else ""


def _next_sweep(analysis: dict[str, Any] | None) -> str:
    """The range an unconverged analysis says to try next; '' when converged or not run."""
    if analysis is None or analysis["status"] != "completed":
        return ""
    extras = (analysis.get("result") or {}).get("extras") or {}
    if extras.get("converged_index") is not None:
        return ""
    return str(extras.get("next_sweep") or "a longer range")


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
    typer.echo(f"{extras['answer']}  [{extras['eos']}; plot: {job['workdir']}/eos.png]")


def _print_answer(job: dict[str, Any]) -> None:
    extras = (job.get("result") or {}).get("extras") or {}
    if job["status"] != "completed" or "answer" not in extras:
        message(f"analysis job {job['id']}: {job['status']} {job.get('error_message') or ''}")
        return
    for value, diff in zip(extras["values"], extras["differences_mev_per_atom"], strict=True):
        shown = "failed" if diff is None else f"{diff:+10.3f} meV/atom"
        typer.echo(f"  {extras['parameter']} = {_shown(value):>10}  {shown}")
    typer.echo(f"{extras['answer']} (plot: {job['workdir']}/convergence.png)")
