"""``orion submit --script``: track a user's own batch script, submitted unchanged.

The script's ``#SBATCH`` lines stay in force; orion reads them to record the resources and
passes only sbatch options on the command line, which override the script's lines as
sbatch's own options do: the job name ``orion-<id>-<instance>-<name>`` (crash recovery
finds the job by it), ``--output`` into the job directory when the script names none,
``--export`` of ``ORION_JOB_ID``/``ORION_ATTEMPT``/``ORION_JOB_DIR`` (``orion progress``),
``--chdir`` = the directory ``orion submit`` ran in (where plain sbatch would run it) unless
the script sets its own, and the resources given as flags or escalated by a retry.

The script is copied into the job directory (``submitted.sbatch``) and that copy is what
sbatch gets, now and at every retry: a later edit of the file changes neither the record
nor a retry. A script job writes no ``result.json``: the poller knows it started, ended and
its exit code from squeue/sacct alone (COMPLETED with exit 0 is completed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orion_cli.batch import sbatch_options
from orion_cli.config import Settings
from orion_cli.db.models import add_tags, insert_jobs
from orion_cli.db.roles import check_role
from orion_cli.db.session import instance_id, ready_engine, session_scope
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.limits import check_bound, check_text
from orion_cli.queues import settings_layer
from orion_cli.resources import ResourceAsk, resolve
from orion_cli.sbatch_header import (
    ScriptHeader,
    check_sbatch_accepts,
    check_script_text,
    header_resources,
    parse_header,
)
from orion_cli.schedulers import scheduler_for
from orion_cli.schedulers.slurm_commands import sbatch_argv
from orion_cli.services.lifecycle import dispatch
from orion_cli.services.lifecycle.dependencies import add_edges, check_links
from orion_cli.services.lifecycle.user_script import SCRIPT_COPY, script_submission
from orion_cli.services.submission.plan import scheduler_name
from orion_cli.services.submission.submit import Submitted, check_partition, queued, refused
from orion_cli.workroot import job_base

#: the engine column of a script job (not an engine of the registry)
SCRIPT_ENGINE = "script"
#: a larger file is not a batch script
MAX_SCRIPT_BYTES = 1024 * 1024


@dataclass
class ScriptRequest:
    """What ``orion submit --script`` was given; the resources it does not set come from the
    script's ``#SBATCH`` lines."""

    script: Path
    args: list[str] = field(default_factory=list)
    name: str = ""
    tag: str = ""
    tags: tuple[str, ...] = ()  # every --tag; ``tag`` is the first
    scheduler: str = ""
    #: the resources given as flags (they override the script's lines)
    resources: ResourceAsk = ResourceAsk()
    max_retries: int | None = None
    retry_delay_s: int | None = None
    hold: bool = False
    after: list[int] = field(default_factory=list)
    after_any: list[int] = field(default_factory=list)
    #: send SIGUSR1 to the batch shell this many seconds before the limit (0: never)
    soft_limit_s: int = 0
    dry_run: bool = False


def read_script(path: Path) -> str:
    """The script's text; every way the file is unusable is one UsageError."""
    fix = "give the path of your sbatch script"
    if not path.exists():
        raise UsageError(f"script '{path}' does not exist", fix)
    if not path.is_file():
        raise UsageError(f"script '{path}' is not a file", fix)
    try:
        if path.stat().st_size > MAX_SCRIPT_BYTES:
            raise UsageError(f"script '{path}' is larger than {MAX_SCRIPT_BYTES} bytes", fix)
        raw = path.read_bytes()
    except PermissionError:
        raise UsageError(
            f"script '{path}' is not readable", f"check its permissions (chmod u+r {path})"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read script '{path}': {exc.strerror}", fix) from None
    return check_script_text(raw, f"script '{path}'")


def _flag_options(r: ScriptRequest) -> list[str]:
    """sbatch options for the resources given as flags (time and memory are added per
    attempt, see :func:`script_submission`)."""
    options = sbatch_options(r.resources.without("walltime_s", "mem_mb"))
    if r.soft_limit_s:
        options.append(f"--signal=B:USR1@{r.soft_limit_s}")
    return options


#: the resources a script job records (what flags and ``#SBATCH`` lines can set)
_RECORDED = (
    "partition",
    "account",
    "qos",
    "walltime_s",
    "mem_mb",
    "nodes",
    "ntasks",
    "cpus_per_task",
    "priority",
)


def _checked_header(text: str, where: str) -> ScriptHeader:
    """The script's ``#SBATCH`` options; UsageError for what sbatch refuses and for arrays."""
    header = parse_header(text, where)
    check_sbatch_accepts(text, header.options, where)
    if header.get("array") is not None:
        raise UsageError(
            f"{where} is a job array (#SBATCH --array)",
            "submit each task as its own script; arrays are not tracked yet",
        )
    return header


def _checked(settings: Settings, r: ScriptRequest) -> tuple[str, dict[str, Any]]:
    """Read and check the script and the flags; return its text and the job row's values."""
    path = r.script.expanduser().absolute()
    text = read_script(path)
    where = f"script '{path}'"
    header = _checked_header(text, where)
    own = header_resources(header, where)
    for flag, value in (("--name", r.name), ("--tag", r.tag)):
        check_text(value, flag)
    # flags over the script's lines over orion's default walltime (passed when it has none)
    resources = resolve(r.resources, own, settings_layer(settings, "walltime_s"))
    row: dict[str, Any] = dict(
        name=r.name or header.get("job-name") or path.stem,
        tag=r.tag,
        engine=SCRIPT_ENGINE,
        structure_source=str(path),
        **{name: getattr(resources, name) for name in _RECORDED},
        max_retries=settings.max_retries if r.max_retries is None else r.max_retries,
        retry_delay_s=r.retry_delay_s or settings.retry_delay_s,
        soft_margin_s=r.soft_limit_s,
        held=r.hold,
    )
    for key in ("max_retries", "retry_delay_s"):
        check_bound(key, row[key])
    if r.soft_limit_s:
        check_bound("soft_margin_s", r.soft_limit_s)
    for value in r.args:
        check_text(value, "a script argument", max_chars=4096)
    row["script"] = {
        "path": str(path),
        "args": list(r.args),
        "submit_dir": os.getcwd(),
        "header": header.options,
        "options": _flag_options(r),
        "own_time": own.get("walltime_s"),
        "own_mem_mb": own.get("mem_mb"),
        "own_output": header.get("output") is not None,
        "own_chdir": header.get("chdir") is not None,
        "export": header.get("export"),
    }
    return text, row


def submit_script(settings: Settings, r: ScriptRequest) -> Submitted:
    """Check everything, record the job with a copy of the script, then submit the copy."""

    text, row = _checked(settings, r)
    name = scheduler_name(r.scheduler, settings)  # as a plan resolves it
    scheduler = scheduler_for(settings, name)
    check_partition(scheduler, row["partition"])
    links = check_links(settings, r.after, r.after_any, name)
    base_dir = settings.work_root_path
    if "," in str(base_dir):  # sbatch --export splits its list at commas
        raise UsageError(
            f"work_root '{base_dir}' has a comma, which sbatch --export cannot pass",
            "set work_root in orion.toml to a path without commas",
        )
    if r.dry_run:
        return Submitted([], [], [_dry_run(row, base_dir, links.after)])
    ready_engine(settings.resolved_database_url)
    result = Submitted([], [], [])
    with session_scope(settings.resolved_database_url) as session:
        owner = current_user()
        check_role(session, owner)
        job = insert_jobs(session, [dict(row, owner=owner, scheduler=name)])[0]
        add_tags(session, [job], r.tags or (r.tag,))
        instance = instance_id(session)
        workdir = job_base(base_dir, instance, settings.job_dir_mode_bits) / str(job.id)
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, settings.job_dir_mode_bits)
        (workdir / SCRIPT_COPY).write_text(text)
        job.workdir = str(workdir)
        add_edges(session, [job], links)
        session.commit()  # the row exists before the scheduler hears of the job
        script, options = script_submission(job, instance, hold=r.hold, after=links.after)
        answer = dispatch.send(scheduler, dispatch.Attempt(script, options))
        if answer.unknown:
            result.errors.append(f"job {job.id}: {answer.line()}")
        elif not answer.accepted:
            refused(session, [job], answer, result)
        else:
            queued(session, [job], [answer.scheduler_job_id], name)
            result.ids.append(job.id or 0)
            result.scheduler_job_ids.append(answer.scheduler_job_id)
    return result


def _dry_run(row: dict[str, Any], base_dir: Path, after: tuple[tuple[str, str], ...]) -> str:
    """The sbatch command a submit would run (``<id>`` for the job's id), as one line."""
    import shlex
    from types import SimpleNamespace

    job = SimpleNamespace(**row, id="<id>", attempt=1, workdir=str(base_dir / "<id>"))
    script, options = script_submission(job, "<database id>", hold=row["held"], after=after)
    return shlex.join(sbatch_argv(script, options)) + "\n"
