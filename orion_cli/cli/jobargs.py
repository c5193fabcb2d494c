"""Arguments that name jobs: strict orion ids, ``--slurm-id``, ``--tag``, ``--study``,
``--status``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from orion_cli.cli.output import fail, message, print_json
from orion_cli.errors import UsageError
from orion_cli.jobids import check_slurm_id, parse_job_id, parse_job_ids, parse_study_id
from orion_cli.limits import check_bound, check_text
from orion_cli.units import parse_mem_mb, parse_walltime_s

if TYPE_CHECKING:
    from orion_cli.services.queries.selection import BulkReport, Selection

IdsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="orion job ids (whole numbers; a SLURM id goes with --slurm-id)", show_default=False
    ),
]
SlurmIdOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--slurm-id", help="A job's SLURM id (1234, or 1234_5 for an array task); repeatable."
    ),
]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", help="Jobs with this tag (repeatable: any of them).")
]
StudyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--study",
        help="Jobs of this study: the id `orion eos` printed (repeatable: any of them).",
        show_default=False,
    ),
]
StatusOpt = Annotated[
    list[str] | None, typer.Option("--status", "-s", help="Jobs with this status (repeatable).")
]
NameOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--name", help="Jobs with this name; * matches anything: 'si-*' (repeatable: any of them)."
    ),
]
SinceOpt = Annotated[str, typer.Option(help="Only jobs created within: 2h, 3d, 90m.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def selection(
    ids: list[str] | None,
    slurm_ids: list[str] | None,
    tags: list[str] | None,
    statuses: list[str] | None,
    studies: list[str] | None = None,
    names: list[str] | None = None,
    since: str = "",
) -> Selection:
    """Build the selection from the command line, reading every id strictly."""
    from orion_cli.services.queries.selection import Selection

    return Selection(
        tuple(parse_job_ids(ids)),
        tuple(map(check_slurm_id, slurm_ids or ())),
        tuple(t for t in tags or () if t),
        tuple(s.strip() for value in statuses or () for s in value.split(",") if s.strip()),
        tuple(dict.fromkeys(map(parse_study_id, studies or ()))),
        tuple(check_text(n, "--name") for n in names or () if n),
        parse_walltime_s(since, "--since") if since else None,
    )


def one_job_id(settings: Any, job_id: str, slurm_id: str) -> int:
    """The one job a command names by orion id or by ``--slurm-id``."""
    from orion_cli.services.queries.show import job_id_for

    if bool(job_id) == bool(slurm_id):
        raise UsageError(
            "name one job: an orion id or --slurm-id", "`orion ls` lists both kinds of id"
        )
    if job_id:
        return parse_job_id(job_id)

    return job_id_for(settings, check_slurm_id(slurm_id))


def finish(report: BulkReport, as_json: bool, selection_text: str = "") -> None:
    """Print what a bulk action did (one summary line) and exit with its code."""

    if as_json:
        print_json(report.as_dict())
    if report.named == 0:
        message(f"no jobs of yours match {selection_text}; nothing {report.verb}")
        return
    if not report.done:
        raise fail(report.failure())
    if not as_json and len(report.notes) <= 20:
        for line in report.notes:
            message(line)
    message(report.summary())
    if report.exit_code():
        raise typer.Exit(report.exit_code())


# ---- resource options shared by submit-like commands, retry and move ----------------------

WalltimeOpt = Annotated[str, typer.Option(help="Time limit: 90m, 2h, 1:30:00 or seconds.")]
MemOpt = Annotated[str, typer.Option(help="Memory per node: 4G, 500M.")]
PartitionOpt = Annotated[str, typer.Option(help="SLURM partition (queue).")]
GpusOpt = Annotated[int | None, typer.Option(help="GPUs per node (sbatch --gres=gpu:N).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
NtasksOpt = Annotated[int | None, typer.Option(help="MPI tasks of each job.")]
QueueOpt = Annotated[str, typer.Option(help="A named queue from the config (`orion queues`).")]
RetriesOpt = Annotated[
    int | None, typer.Option(help="Automatic retries after timeout/OOM/node failure (default 3).")
]
OnScfFailOpt = Annotated[
    list[str] | None,
    typer.Option("--on-scf-fail", help="qe: retry once after an unconverged SCF with key=value."),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Check everything, print what would be submitted; write nothing."
    ),
]


def resource_changes(walltime: str, mem: str, partition: str, gpus: int | None) -> dict[str, Any]:
    """The resource fields a command line changes (empty: none), read strictly.

    >>> resource_changes("4h", "8G", "long", 1)
    {'walltime_s': 14400, 'mem_mb': 8192, 'partition': 'long', 'gpus': 1}
    >>> resource_changes("", "", "", None)
    {}
    """
    from orion_cli.units import parse_walltime_s

    changes: dict[str, Any] = {}
    if walltime:
        changes["walltime_s"] = parse_walltime_s(walltime, "--walltime")
    if mem:
        changes["mem_mb"] = parse_mem_mb(mem)
    if partition:
        changes["partition"] = partition
    if gpus is not None:
        changes["gpus"] = gpus
    for key, value in changes.items():
        if key != "partition":
            check_bound(key, value)
    return changes
