"""``orion submit``: parse options, call the submit service, print ids (and wait if asked)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from orion_cli.cli.monitor import wait_and_show
from orion_cli.cli.output import handle_errors, message, print_json
from orion_cli.cli.params import read_params
from orion_cli.cli.render import frozen_file_lines
from orion_cli.cli.root import app
from orion_cli.cli.scripts import submit_script_command
from orion_cli.config import load_settings
from orion_cli.errors import UsageError
from orion_cli.units import parse_mem_mb, parse_walltime_s


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
            help="A named queue from the config (a \\[queues.NAME] table; "
            "`orion queues` lists them)."
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
    pack_tasks: Annotated[
        int | None,
        typer.Option(
            help="Pack into K array tasks, more if a task's share would not fit the "
            "walltime (--pack auto alone: K = the idle CPUs)."
        ),
    ] = None,
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
        list[str] | None,
        typer.Option(
            "--from",
            help="Start from this job's final structure (implies --after); several: one job "
            "each, ID[,ID...] or repeated.",
        ),
    ] = None,
    from_tag: Annotated[
        str,
        typer.Option(
            "--from-tag", help="As --from, for each of your completed jobs with this tag."
        ),
    ] = "",
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
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse",
            help="Take the result of an identical completed (or running) job instead of "
            "computing it again (same calculation key).",
        ),
    ] = False,
    reuse_loose: Annotated[
        bool,
        typer.Option(
            "--reuse-loose", help="As --reuse, ignoring the engine's code version (pw.x upgrade)."
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="A cutoff below the pseudopotentials' suggestion is an error."
        ),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the jobs end.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Submit one job per structure file."""
    from orion_cli.services.lifecycle.depgraph import parse_ids
    from orion_cli.services.submission.packing import parse_estimate_s, parse_pack_tasks
    from orion_cli.services.submission.plan import SubmitRequest

    settings = load_settings()
    if script is not None:
        submit_script_command(settings, script, structures or [], locals())
        return
    _check_engine_job(engine, soft_limit)
    parents = _parents(settings, parse_ids(structure_from or [], "--from"), from_tag)
    build = lambda parent: SubmitRequest(  # noqa: E731 - one request per --from parent
        after=parse_ids(after or [], "--after"),
        after_any=parse_ids(after_any or [], "--after-any"),
        structures=[Path(item) for item in structures or []],
        structure_from=parent,
        engine=engine,
        params=read_params(param or [], params),
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
        pack_tasks=parse_pack_tasks(pack_tasks),
        on_scf_fail=on_scf_fail or [],
        strict=strict,
        reuse="loose" if reuse_loose else "strict" if reuse else "",
        estimate_s=parse_estimate_s(estimate) if estimate else None,
        retry_delay_s=parse_walltime_s(retry_delay, "--retry-delay") if retry_delay else None,
    )
    done = _submitted(settings, build, parents)
    if dry_run:
        _print_dry_run(done, as_json)
        return
    _print_submitted(done, as_json, wait)
    if wait and done.ids:
        wait_and_show(settings, done.ids, as_json)
    if done.errors:
        raise typer.Exit(1)


def _check_engine_job(engine: str, soft_limit: str) -> None:
    """An engine job names its engine and takes no --soft-limit (a --script job's option)."""
    if not engine:
        raise UsageError(
            "no engine given", "write e.g. orion submit Si.cif --engine qe, or --script run.sbatch"
        )
    if soft_limit:
        raise UsageError(
            "--soft-limit is for --script jobs",
            "orion's engine jobs get a soft limit already (soft_margin_s)",
        )


def _submitted(settings: Any, build: Any, parents: list[int]) -> Any:
    """Submit with a progress bar; print the notes (chosen frames, frozen inputs, warnings)."""
    with progress_bar() as report:
        done = _submit_each(settings, build, parents, report)
    show_notes(done.notes)
    for line in done.frozen_notes:
        message(line if line.startswith("warning: ") else f"note: {line}")
    return done


def _print_dry_run(done: Any, as_json: bool) -> None:
    """The batch scripts and the first job's engine input files a submit would write."""
    if as_json:
        print_json(
            {
                "scripts": done.scripts,
                "inputs": done.inputs,
                "inputs_of": done.inputs_of,
                "frozen": done.frozen,
            }
        )
        return
    typer.echo("\n".join(done.scripts), nl=False)
    for line in frozen_file_lines(done.frozen):
        typer.echo(f"# {line}")
    for file_name, text in done.inputs.items():
        typer.echo(f"# --- {file_name} (engine input of {done.inputs_of}) ---")
        typer.echo(text, nl=not text.endswith("\n"))


def _print_submitted(done: Any, as_json: bool, wait: bool) -> None:
    """Errors on stderr; the new ids (one a line, or JSON unless --wait prints the jobs)."""
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


def _parents(settings: Any, given: list[int], from_tag: str) -> list[int]:
    """The --from parents: those given, then each completed job of ``--from-tag``."""
    from orion_cli.services.submission.structure_from import tagged_parents

    tagged = tagged_parents(settings, from_tag) if from_tag else []
    return given + [p for p in tagged if p not in given]


def _submit_each(settings: Any, build: Any, parents: list[int], report: Any) -> Any:
    """Submit the request; with several --from parents, one request each (a parent that
    cannot be used is an error line, the others go on)."""
    from orion_cli.errors import OrionError
    from orion_cli.services.submission.submit import submit as submit_jobs

    if len(parents) <= 1:
        return submit_jobs(settings, build(parents[0] if parents else None), report)
    done = None
    for parent in parents:
        try:
            one = submit_jobs(settings, build(parent), report)
        except OrionError as exc:
            if done is None:
                raise
            done.errors.append(f"--from {parent}: {exc.one_line()}")
            continue
        if done is None:
            done = one
            continue
        done.ids += one.ids
        done.scheduler_job_ids += one.scheduler_job_ids
        done.scripts += one.scripts
        done.errors += one.errors
        done.notes += [n for n in one.notes if n not in done.notes]
        done.frozen_notes += [n for n in one.frozen_notes if n not in done.frozen_notes]
    return done


def _resources(**given: Any) -> dict[str, Any]:
    """The resources given on the command line (None: not given)."""
    return {key: value for key, value in given.items() if value is not None}
