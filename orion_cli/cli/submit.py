"""``orion submit``: parse options, call the submit service, print ids (and wait if asked)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from orion_cli.cli import app
from orion_cli.cli.output import handle_errors, message, print_json
from orion_cli.errors import UsageError


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr that appears only for big batches (≥ 200 structures)."""
    state: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if total < 200 or (done % max(1, total // 100) and done != total):
            return  # small batches need no bar; big ones redraw once per percent
        if "bar" not in state:
            from rich.console import Console
            from rich.progress import Progress

            state["bar"] = Progress(console=Console(stderr=True), transient=True)
            state["bar"].start()
        bar = state["bar"]
        if stage not in state:
            state[stage] = bar.add_task(stage, total=total)
        bar.update(state[stage], completed=done)

    try:
        yield report
    finally:
        if "bar" in state:
            state["bar"].stop()


def _params(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    from orion_cli.units import parse_param_pairs

    params: dict[str, Any] = {}
    if params_file is not None:
        params = _read_params_file(params_file)
    params.update(parse_param_pairs(pairs))
    return params


def _read_params_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON table of parameters; every way it can be wrong is one UsageError."""
    from orion_cli.inputfile import check_regular

    fix = "use a TOML or JSON file of key = value pairs"
    check_regular(path, "params file")  # a FIFO or /dev/zero: one line, no hang
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"params file '{path}' is not a UTF-8 text file", fix) from None
    except OSError as exc:
        raise UsageError(
            f"cannot read params file '{path}': {exc.strerror}", "check its permissions"
        ) from None
    try:
        if path.suffix == ".json":
            params = json.loads(text)
        else:
            import tomllib

            params = tomllib.loads(text)
    except RecursionError:
        raise UsageError(f"params file '{path}' is nested too deeply", fix) from None
    except ValueError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read parameters from '{path}': {detail}", fix) from None
    if not isinstance(params, dict):
        raise UsageError(f"'{path}' must hold a table of key = value pairs", fix)
    return params


#: notes printed one by one; more are summed up in one line
MAX_NOTES_SHOWN = 5


def show_notes(notes: list[str]) -> None:
    """Tell (on stderr) which frame orion took where it chose, e.g. an output's last one."""
    for line in notes[:MAX_NOTES_SHOWN]:
        message(f"note: {line}")
    if len(notes) > MAX_NOTES_SHOWN:
        message(
            f"note: and {len(notes) - MAX_NOTES_SHOWN} more engine output files: "
            "the last frame of each (FILE@INDEX picks another)"
        )


@app.command()
@handle_errors
def submit(
    engine: Annotated[
        str, typer.Option("--engine", "-e", help="Engine (see `orion engines`).")
    ] = "",
    structures: Annotated[
        list[str] | None,
        typer.Argument(
            help="Structure files (CIF, POSCAR, xyz, ...), directories, globs; multi-frame "
            "extxyz/traj files give one job per frame, engine outputs (pw.out, OUTCAR, "
            "vasprun.xml, dumps) their last frame; FILE@-1, FILE@3, FILE@::2 pick frames "
            "(none with --from). With --script: the script's arguments (after --)."
        ),
    ] = None,
    script: Annotated[
        Path | None,
        typer.Option(
            "--script",
            help="Track your own sbatch script, submitted unchanged (its #SBATCH "
            "lines stay; flags given here override them).",
        ),
    ] = None,
    soft_limit: Annotated[
        str,
        typer.Option(
            "--soft-limit",
            help="With --script: send SIGUSR1 to the script this long before "
            "its time limit (sbatch --signal=B:USR1@...).",
        ),
    ] = "",
    name: Annotated[str, typer.Option(help="Job name (default: file name).")] = "",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Engine parameter key=value.")
    ] = None,
    params: Annotated[
        Path | None, typer.Option("--params", help="TOML/JSON parameter file.")
    ] = None,
    partition: Annotated[str, typer.Option(help="SLURM partition (queue).")] = "",
    walltime: Annotated[str, typer.Option(help="Time limit: 90m, 2h, 1:30:00 or seconds.")] = "",
    nodes: Annotated[int | None, typer.Option()] = None,
    ntasks: Annotated[int | None, typer.Option()] = None,
    cpus_per_task: Annotated[int | None, typer.Option("--cpus-per-task")] = None,
    mem: Annotated[str, typer.Option(help="Memory per node: 4G, 500M.")] = "",
    mem_per_cpu: Annotated[
        str, typer.Option("--mem-per-cpu", help="Memory per CPU instead of per node: 2G.")
    ] = "",
    gpus: Annotated[int | None, typer.Option(help="GPUs per node (sbatch --gres=gpu:N).")] = None,
    constraint: Annotated[
        str, typer.Option(help="Node features the job needs (sbatch --constraint), e.g. avx512.")
    ] = "",
    exclusive: Annotated[
        bool | None,
        typer.Option(
            "--exclusive/--shared",
            help="Whole nodes to this job (sbatch --exclusive).",
            show_default=False,
        ),
    ] = None,
    sbatch_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--sbatch-arg",
            help='One more sbatch option, e.g. "--reservation=maint" '
            "(repeatable; not one orion sets itself).",
        ),
    ] = None,
    queue: Annotated[
        str,
        typer.Option(
            help="A named queue from the config ([queues.NAME]; orion queues lists them)."
        ),
    ] = "",
    account: Annotated[str, typer.Option()] = "",
    qos: Annotated[str, typer.Option()] = "",
    priority: Annotated[int | None, typer.Option(help="0..20, 20 = most urgent.")] = None,
    retries: Annotated[
        int | None,
        typer.Option(help="Automatic retries after timeout/OOM/node failure (default 3)."),
    ] = None,
    retry_delay: Annotated[
        str, typer.Option(help="First retry delay, doubled each time (default 60s).")
    ] = "",
    hold: Annotated[
        bool, typer.Option("--hold", help="Submit held; `orion release` starts.")
    ] = False,
    tag: Annotated[
        list[str] | None,
        typer.Option(help="A label to filter by later (orion ls --tag); repeatable."),
    ] = None,
    throttle: Annotated[
        int | None,
        typer.Option(help="At most N jobs of one array run at once (sbatch --array=...%N)."),
    ] = None,
    pack: Annotated[
        str,
        typer.Option(
            help="Run N calculations one after another in each array task (one Python "
            "process), or 'auto' (from --estimate and the walltime)."
        ),
    ] = "",
    estimate: Annotated[
        str, typer.Option(help="Time one calculation takes, for --pack auto: 10s, 2m.")
    ] = "",
    allow_close_atoms: Annotated[
        bool,
        typer.Option(
            "--allow-close-atoms", help="Accept atoms closer than 0.5 Å (deliberate overlaps)."
        ),
    ] = False,
    scheduler: Annotated[
        str, typer.Option(help="slurm or local (default: slurm if sbatch exists).")
    ] = "",
    after: Annotated[
        list[str] | None,
        typer.Option("--after", help="Start only after these jobs completed: ID[,ID...]."),
    ] = None,
    after_any: Annotated[
        list[str] | None,
        typer.Option("--after-any", help="Start after these jobs ended, however: ID[,ID...]."),
    ] = None,
    structure_from: Annotated[
        int | None,
        typer.Option("--from", help="Start from this job's final structure (implies --after)."),
    ] = None,
    on_scf_fail: Annotated[
        list[str] | None,
        typer.Option(
            "--on-scf-fail",
            help="qe: retry once after an unconverged SCF with this change, "
            "key=value (repeatable), e.g. mixing_beta=0.3.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the batch script, write nothing.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the jobs end.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Submit one job per structure file."""
    from orion_cli.config import load_settings
    from orion_cli.services.depgraph import parse_ids
    from orion_cli.services.packing import parse_estimate_s
    from orion_cli.services.submit import SubmitRequest
    from orion_cli.services.submit import submit as submit_jobs
    from orion_cli.units import parse_mem_mb, parse_walltime_s

    settings = load_settings()
    if script is not None:
        from orion_cli.cli.scripts import submit_script_command

        submit_script_command(settings, script, structures or [], locals())
        return
    if not engine:
        raise UsageError(
            "no engine given", "write e.g. orion submit Si.cif --engine qe, or --script run.sbatch"
        )
    if soft_limit:
        raise UsageError(
            "--soft-limit is for --script jobs",
            "orion's engine jobs get a soft limit already (soft_margin_s)",
        )
    request = SubmitRequest(
        after=parse_ids(after or [], "--after"),
        after_any=parse_ids(after_any or [], "--after-any"),
        structures=[Path(item) for item in structures or []],
        structure_from=structure_from,
        engine=engine,
        params=_params(param or [], params),
        name=name,
        scheduler=scheduler,
        queue=queue,
        resources=_resources(
            partition=partition or None,
            account=account or None,
            qos=qos or None,
            priority=priority,
            nodes=nodes,
            ntasks=ntasks,
            cpus_per_task=cpus_per_task,
            walltime_s=parse_walltime_s(walltime, "--walltime") if walltime else None,
            mem_mb=parse_mem_mb(mem) if mem else None,
            mem_per_cpu_mb=parse_mem_mb(mem_per_cpu) if mem_per_cpu else None,
            gpus=gpus,
            constraints=constraint or None,
            exclusive=exclusive,
            sbatch_args=tuple(sbatch_arg) if sbatch_arg else None,
        ),
        dry_run=dry_run,
        hold=hold,
        tags=tuple(tag or ()),
        throttle=throttle,
        allow_close_atoms=allow_close_atoms,
        max_retries=retries,
        pack=pack,
        on_scf_fail=on_scf_fail or [],
        estimate_s=parse_estimate_s(estimate) if estimate else None,
        retry_delay_s=parse_walltime_s(retry_delay, "--retry-delay") if retry_delay else None,
    )
    with progress_bar() as report:
        done = submit_jobs(settings, request, report)
    show_notes(done.notes)
    if dry_run:
        if as_json:
            print_json(
                {"scripts": done.scripts, "inputs": done.inputs, "inputs_of": done.inputs_of}
            )
            return
        typer.echo("\n".join(done.scripts), nl=False)
        for file_name, text in done.inputs.items():
            typer.echo(f"# --- {file_name} (engine input of {done.inputs_of}) ---")
            typer.echo(text, nl=not text.endswith("\n"))
        return
    for line in done.errors:
        message(f"error: {line}")
    if as_json and not wait:
        print_json(
            {
                "id": done.ids[0] if len(done.ids) == 1 else None,
                "ids": done.ids,
                "scheduler_job_ids": done.scheduler_job_ids,
                "errors": done.errors,
            }
        )
    elif not as_json:
        for job_id in done.ids:
            typer.echo(job_id)
    if wait and done.ids:
        _wait(settings, done.ids, as_json)
    if done.errors:
        raise typer.Exit(1)


def _resources(**given: Any) -> dict[str, Any]:
    """The resources given on the command line (None: not given)."""
    return {key: value for key, value in given.items() if value is not None}


def _wait(settings: Any, ids: list[int], as_json: bool) -> None:
    """Wait as `orion wait` does (the same loop), then print the jobs."""
    from orion_cli.cli.monitor import wait_and_report
    from orion_cli.services.jobs import show_job

    wait_and_report(settings, ids, None)
    jobs = [show_job(settings, job_id) for job_id in ids]
    if as_json:
        print_json(jobs[0] if len(jobs) == 1 else jobs)
    else:
        from orion_cli.cli.commands import render_job

        for job in jobs:
            render_job(job)
    if any(job["status"] != "completed" for job in jobs):
        raise typer.Exit(1)
