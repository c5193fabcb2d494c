"""Pure: a job's specification → the text of its batch script.

The same script runs under SLURM (``sbatch``) and the local backend (``bash``): the
``#SBATCH`` lines are comments to bash. The script only starts orion's job runner, which
runs the engine and writes events into the job directory; it never opens the database.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orion_cli.resources import RESOURCE_FIELDS, ResourceAsk, Resources, sbatch_arg_option
from orion_cli.units import format_walltime

SCRIPT_NAME = "job.sh"


@dataclass(frozen=True)
class BatchSpec:
    orion_id: int
    name: str
    workdir: Path
    python: str
    resources: Resources = Resources()
    attempt: int = 1
    soft_margin_s: int = 300
    instance: str = ""
    #: site set-up lines (:mod:`orion_cli.site`), run before the runner; checked at submit
    setup_lines: tuple[str, ...] = ()

    @property
    def output_name(self) -> str:
        return f"attempt-{self.attempt}.out"

    @property
    def output_path(self) -> Path:
        return self.workdir / self.output_name


def nice_for_priority(priority: int) -> int:
    """Map orion priority 0..20 (20 = most urgent, 10 the default) to a SLURM nice value.

    The default is nice 0, so an orion job competes as a plain ``sbatch`` job of the same
    user does; each step below 10 adds 100 (lets your other jobs go first). Users may not
    set a negative nice, so 11..20 are nice 0 as well: running ahead of the default takes a
    QOS an admin grants (``--qos``).

    >>> [nice_for_priority(p) for p in (20, 15, 10, 9, 0)]
    [0, 0, 0, 100, 1000]
    """
    return max(0, 10 - priority) * 100


def job_name_prefix(orion_id: int, instance: str) -> str:
    """The start of every scheduler job name of orion job ``orion_id`` in database ``instance``.

    >>> job_name_prefix(7, "ab12cd"), job_name_prefix(7, "")
    ('orion-7-ab12cd-', 'orion-7-')
    """
    return f"orion-{orion_id}-{instance}-" if instance else f"orion-{orion_id}-"


def slurm_job_name(spec: BatchSpec) -> str:
    """Name the SLURM job so that squeue shows orion's id first, then the database's id.

    Characters other than letters, digits, ``._-`` become ``_`` (squeue output stays parseable).

    >>> slurm_job_name(BatchSpec(7, "Si scf|x", Path("/j"), "python3", instance="ab12cd"))
    'orion-7-ab12cd-Si_scf_x'
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", spec.name)
    return (job_name_prefix(spec.orion_id, spec.instance) + safe)[:200]


_SBATCH_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+=,-]+")


def sbatch_quote(value: str) -> str:
    r"""Quote ``value`` for an ``#SBATCH`` line so that sbatch reads back exactly ``value``.

    sbatch's header parser (``_get_argument`` in src/sbatch/opt.c) is not a shell: quotes
    ' or " group, but a backslash escapes the next character *inside quotes too*, and an
    unquoted ``#`` ends the line. Inside double quotes with only ``\\`` and ``\"`` escaped,
    sbatch and POSIX ``shlex`` (the local backend's reader) agree. Control characters
    never get here (checked at submit).

    >>> print(sbatch_quote("debug"), sbatch_quote("/a b/x#1"), sbatch_quote('ba\\ck"q'))
    debug "/a b/x#1" "ba\\ck\"q"
    """
    if _SBATCH_PLAIN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def slurm_filename(path: Path) -> str | None:
    """The ``--output`` filename pattern that names exactly ``path``, or None if none can.

    sbatch's ``--output`` is a pattern: ``%`` starts a replacement symbol (``%%`` is a
    literal ``%``), and any backslash switches every replacement off and is removed
    (slurmstepd ``fname_create``/``is_path_escaped``). Slurm 22.05 applies this to the
    job's directory as well when the name is relative, so the pattern is absolute. A path
    with a backslash cannot be named at all: the script then redirects its own output.

    >>> slurm_filename(Path("/w/100%/a.out")), slurm_filename(Path("/w/a\\\\b/a.out"))
    ('/w/100%%/a.out', None)
    """
    text = str(path)
    return None if "\\" in text else text.replace("%", "%%")


#: each resource's sbatch option and how its value is written (quoted where a user's text)
_OPTIONS: dict[str, tuple[str, Callable[[Any, Callable[[str], str]], str]]] = {
    "partition": ("partition", lambda value, quote: quote(value)),
    "account": ("account", lambda value, quote: quote(value)),
    "qos": ("qos", lambda value, quote: quote(value)),
    "priority": ("nice", lambda value, quote: str(nice_for_priority(value))),
    "walltime_s": ("time", lambda value, quote: format_walltime(value)),
    "nodes": ("nodes", lambda value, quote: str(value)),
    "ntasks": ("ntasks", lambda value, quote: str(value)),
    "cpus_per_task": ("cpus-per-task", lambda value, quote: str(value)),
    "mem_mb": ("mem", lambda value, quote: f"{value}M"),
    "mem_per_cpu_mb": ("mem-per-cpu", lambda value, quote: f"{value}M"),
    "gpus": ("gres", lambda value, quote: f"gpu:{value}"),  # every SLURM with GPUs reads it
    "constraints": ("constraint", lambda value, quote: quote(value)),
}


def sbatch_options(ask: ResourceAsk, quote: Callable[[str], str] = str) -> list[str]:
    """The one builder of sbatch's resource options: one per value ``ask`` sets, in its order.

    ``quote`` quotes a user's text for an ``#SBATCH`` line (:func:`sbatch_quote`); on
    sbatch's command line (the default) a value needs no quoting.

    >>> sbatch_options(ResourceAsk.of(partition="a b", priority=8, walltime_s=120, mem_mb=512))
    ['--partition=a b', '--nice=200', '--time=00:02:00', '--mem=512M']
    >>> sbatch_options(ResourceAsk.of(exclusive=True, sbatch_args=("--comment=a b",)), repr)
    ['--exclusive', "--comment='a b'"]
    """
    options = []
    for name, value in ask.values.items():
        if name == "exclusive":
            options.extend(["--exclusive"] if value else [])
        elif name == "sbatch_args":
            options.extend(sbatch_arg_option(arg, quote) for arg in value)
        else:
            option, write = _OPTIONS[name]
            options.append(f"--{option}={write(value, quote)}")
    return options


#: the resources written before orion's own chdir/output lines (the order of ``job.sh``)
_FIRST = ("walltime_s", "nodes", "ntasks", "cpus_per_task")
_MIDDLE = (
    "priority",
    "partition",
    "mem_mb",
    "mem_per_cpu_mb",
    "account",
    "qos",
    "gpus",
    "constraints",
)
_LAST = ("exclusive", "sbatch_args")
assert sorted((*_FIRST, *_MIDDLE, *_LAST)) == sorted(RESOURCE_FIELDS), "a resource has no line"


def sbatch_lines(spec: BatchSpec) -> list[str]:
    """Return the ``#SBATCH`` directives for ``spec``; every user string is quoted for sbatch.

    Where SLURM cannot name the output file (:func:`slurm_filename`), ``--output`` and
    ``--error`` go to /dev/null and :func:`render_script` redirects the script's output.
    """
    q = sbatch_quote
    r = spec.resources
    output = slurm_filename(spec.output_path) or "/dev/null"
    ask = r.asked()
    if not nice_for_priority(r.priority):
        ask = ask.without("priority")  # nice 0 is sbatch's own default
    options = [
        f"--job-name={q(slurm_job_name(spec))}",
        f"--comment={q(f'orion:{spec.orion_id}:{spec.attempt}')}",
        *sbatch_options(ask.only(*_FIRST), q),
        f"--chdir={q(str(spec.workdir))}",
        f"--output={q(output)}",
        f"--error={q(output)}",
        *sbatch_options(ask.only(*_MIDDLE), q),
    ]
    margin_s = soft_margin_for(spec.soft_margin_s, r.walltime_s)
    if margin_s:
        options.append(f"--signal=B:USR1@{margin_s}")
    options += sbatch_options(ask.only(*_LAST), q)
    return [f"#SBATCH {option}" for option in options]


def soft_margin_for(margin_s: int, walltime_s: int) -> int:
    """The soft stop's margin for this walltime: a margin as long as the walltime would leave
    no stop at all, so a short job gets a quarter of its walltime instead (0: no soft stop).

    >>> soft_margin_for(300, 3600), soft_margin_for(300, 120), soft_margin_for(300, 300)
    (300, 30, 75)
    >>> soft_margin_for(0, 120), soft_margin_for(300, 3)
    (0, 0)
    """
    if margin_s <= 0:
        return 0
    return margin_s if margin_s < walltime_s else walltime_s // 4


def _site_lines(spec: BatchSpec) -> list[str]:
    """The site's set-up lines under a comment saying where they come from (none: nothing)."""
    if not spec.setup_lines:
        return []
    return [
        "# site set-up: setup, env, [engines.<engine>] setup, env (orion.toml)",
        *spec.setup_lines,
    ]


def _own_output(path: Path, shell_target: str) -> list[str]:
    """Lines that send the script's output to ``shell_target`` where SLURM cannot name it."""
    if slurm_filename(path) is not None:
        return []
    return [
        "# SLURM cannot write to a path with a backslash: the script writes its own output",
        f"exec >>{shell_target} 2>&1",
    ]


def render_script(spec: BatchSpec) -> str:
    """Return the complete batch script for ``spec``."""
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        *sbatch_lines(spec),
        f"# orion job {spec.orion_id}, attempt {spec.attempt}",
        f"export ORION_JOB_ID={spec.orion_id}",
        f"export ORION_ATTEMPT={spec.attempt}",
        *_site_lines(spec),
        f"cd {q(str(spec.workdir))} || exit 1",
        *_own_output(spec.output_path, q(spec.output_name)),
        f"exec {q(spec.python)} -m orion_cli.jobrun {q(str(spec.workdir))}",
        "",
    ]
    return "\n".join(lines)


ARRAY_SCRIPT_NAME = "array.sh"
TASKS_FILE = "tasks.jsonl"  # written by orion_cli.taskfile


def array_name_prefix(first_orion_id: int, instance: str) -> str:
    """The SLURM job name (prefix) of an array whose first task is orion job ``first_orion_id``.

    >>> array_name_prefix(12, "ab12cd")
    'orion-array-12-ab12cd-'
    """
    return f"orion-array-{first_orion_id}-{instance}-"


def array_first_id(array_name: str) -> int:
    """The first orion job id of an array, read back from its SLURM name (prefix).

    >>> array_first_id("orion-array-12-ab12cd-")
    12
    """
    return int(array_name.split("-")[2])


def packs_file_name(round_: int) -> str:
    """The file that lists the jobs of each packed task of submission ``round_`` of an array.

    Round 0 is ``orion submit``; later rounds resubmit the jobs a packed task never started.

    >>> packs_file_name(0), packs_file_name(2)
    ('packs-0.jsonl', 'packs-2.jsonl')
    """
    return f"packs-{round_}.jsonl"


#: set in a packed task's script with ``--gpus N`` (N > 1): the runner's number of slots
SLOTS_VARIABLE = "ORION_PACK_SLOTS"


def slot_lines(gpus: int) -> list[str]:
    """A packed task with several GPUs runs a slot per GPU side by side (orion_cli.jobrun).

    >>> slot_lines(0), slot_lines(1), slot_lines(4)
    ([], [], ['export ORION_PACK_SLOTS=4'])
    """
    return [f"export {SLOTS_VARIABLE}={gpus}"] if gpus > 1 else []


def render_array_script(
    spec: BatchSpec, array_dir: Path, n_tasks: int, packs_round: int | None = None
) -> str:
    """Return one batch script for many jobs with the same resources (``sbatch --array``).

    Task *i* runs the job of line *i + 1* of ``tasks.jsonl`` beside the script: the job
    runner makes the job's directory from that line, then runs it there. Packed
    (``packs_round`` given), task *i* runs, one after the other in one process, the jobs
    whose lines line *i + 1* of ``packs-<round>.jsonl`` lists.
    ``spec`` carries the resources; its ``orion_id`` is the first job's and its ``workdir``
    is ignored.
    """
    q = shlex.quote
    array_spec = replace(spec, workdir=array_dir)
    lines = [
        line
        for line in sbatch_lines(array_spec)
        if not line.startswith(
            ("#SBATCH --job-name", "#SBATCH --comment", "#SBATCH --output", "#SBATCH --error")
        )
    ]
    pattern_dir = slurm_filename(array_dir)
    task_out = "task-%a.out" if not packs_round else f"task-{packs_round}-%a.out"
    output = "/dev/null" if pattern_dir is None else sbatch_quote(f"{pattern_dir}/{task_out}")
    name = array_name_prefix(spec.orion_id, spec.instance) + str(n_tasks)
    tasks = q(str(array_dir / TASKS_FILE))
    run = f"--task {tasks}"
    if packs_round is not None:
        run = f"--pack {tasks} {q(str(array_dir / packs_file_name(packs_round)))}"
    return "\n".join(
        [
            "#!/bin/bash",
            f"#SBATCH --job-name={name}",
            f"#SBATCH --output={output}",
            f"#SBATCH --error={output}",
            *lines,
            f"# orion jobs {spec.orion_id}.. as one array of {n_tasks} tasks"
            + (" (packed)" if packs_round is not None else ""),
            # no ORION_ATTEMPT here: each job's attempt is in its own job.json
            *slot_lines(spec.resources.gpus if packs_round is not None else 0),
            *_site_lines(spec),
            *_own_output(
                array_dir, f"{q(str(array_dir))}/" + task_out.replace("%a", "$SLURM_ARRAY_TASK_ID")
            ),
            f'exec {q(spec.python)} -m orion_cli.jobrun {run} "$SLURM_ARRAY_TASK_ID"',
            "",
        ]
    )
