"""Pure: what a job asks of the scheduler, as one value object.

Settings and flags stay flat (``walltime_s`` in ``orion.toml``, ``--walltime`` on the
command line); :func:`orion_cli.queues.resolve_resources` turns them, with a
named queue's values in between, into one :class:`Resources`. From there on the job row
(:meth:`Resources.row` / :meth:`Resources.of`), the batch script
(:func:`orion_cli.batch.sbatch_lines`), retries
(:func:`orion_cli.services.lifecycle.retry.escalate`) and packed resubmissions all use it.

A new field is one edit here (with its flag in the metadata), its column (models.py and a
migration), its command-line option and its ``#SBATCH`` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from orion_cli.errors import ConfigError, UsageError
from orion_cli.limits import bad_character, shown


def _flag(name: str) -> Any:
    return {"flag": name}


@dataclass(frozen=True)
class Resources:
    """What one attempt of a job asks of the scheduler (0, "" or () for "not asked")."""

    partition: str = field(default="", metadata=_flag("--partition"))
    account: str = field(default="", metadata=_flag("--account"))
    qos: str = field(default="", metadata=_flag("--qos"))
    #: orion priority 0..20 (batch.nice_for_priority maps it to sbatch --nice)
    priority: int = field(default=10, metadata=_flag("--priority"))
    walltime_s: int = field(default=3600, metadata=_flag("--walltime"))
    nodes: int = field(default=1, metadata=_flag("--nodes"))
    ntasks: int = field(default=1, metadata=_flag("--ntasks"))
    cpus_per_task: int = field(default=1, metadata=_flag("--cpus-per-task"))
    #: memory per node (sbatch --mem); excludes mem_per_cpu_mb
    mem_mb: int = field(default=0, metadata=_flag("--mem"))
    mem_per_cpu_mb: int = field(default=0, metadata=_flag("--mem-per-cpu"))
    #: GPUs per node, as sbatch --gres=gpu:N (understood by every SLURM with GPUs)
    gpus: int = field(default=0, metadata=_flag("--gpus"))
    #: node features (sbatch --constraint), e.g. "avx512&ib"
    constraints: str = field(default="", metadata=_flag("--constraint"))
    exclusive: bool = field(default=False, metadata=_flag("--exclusive"))
    #: extra sbatch options, one each, checked by :func:`check_sbatch_arg`
    sbatch_args: tuple[str, ...] = field(default=(), metadata=_flag("--sbatch-arg"))

    def row(self) -> dict[str, Any]:
        """The job row's column values.

        >>> Resources(sbatch_args=("--comment=x",)).row()["sbatch_args"]
        ['--comment=x']
        """
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in ((f, getattr(self, f)) for f in RESOURCE_FIELDS)
        }

    @classmethod
    def of(cls, row: Any) -> Resources:
        """Read the resources back from a job row (or anything with the same attributes)."""
        values = {name: getattr(row, name) for name in RESOURCE_FIELDS}
        values["sbatch_args"] = tuple(values["sbatch_args"] or ())
        values["exclusive"] = bool(values["exclusive"])
        return cls(**values)


RESOURCE_FIELDS = tuple(f.name for f in fields(Resources))
#: each field's command-line flag, to name it in errors
RESOURCE_FLAGS = {f.name: f.metadata["flag"] for f in fields(Resources)}
#: the kind of each field's value: str, int, bool or tuple
RESOURCE_KINDS = {name: type(getattr(Resources(), name)) for name in RESOURCE_FIELDS}

#: sbatch options orion writes itself, with what to use instead ("" : nothing, orion's own)
OWN_OPTIONS = {
    "job-name": "",
    "output": "",
    "error": "",
    "array": "",
    "dependency": "",
    "chdir": "",
    "signal": "",
    "begin": "",
    "hold": "",
    "parsable": "",
    "wrap": "",
    "open-mode": "",
    "time": "--walltime",
    "partition": "--partition",
    "account": "--account",
    "qos": "--qos",
    "nice": "--priority",
    "nodes": "--nodes",
    "ntasks": "--ntasks",
    "cpus-per-task": "--cpus-per-task",
    "mem": "--mem",
    "mem-per-cpu": "--mem-per-cpu",
    "gpus": "--gpus",
    "constraint": "--constraint",
    "exclusive": "--exclusive",
}
_OPTION = re.compile(r"--(?P<name>[A-Za-z][A-Za-z0-9-]*)(?:=(?P<value>.*))?", re.DOTALL)
MAX_SBATCH_ARG_CHARS = 1000


_BOOL_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def coerce_value(name: str, kind: type, value: Any, origin: str) -> Any:
    """Read ``value`` (from a file or an ORION_* variable) as ``kind``; words make a tuple.

    >>> coerce_value("gpus", int, "2", "x"), coerce_value("exclusive", bool, "yes", "x")
    (2, True)
    >>> coerce_value("sbatch_args", tuple, "--comment=a --requeue", "x")
    ('--comment=a', '--requeue')
    """
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
                return _BOOL_WORDS[value.strip().lower()]
            raise TypeError
        if kind is tuple:  # a list in a file; words in an ORION_* variable
            items = value.split() if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise TypeError
            return tuple(items)
        if kind is int and not isinstance(value, bool):
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            if not isinstance(value, str | int | float):
                raise TypeError
            return str(value)
    except (TypeError, ValueError):
        pass
    kind_names: dict[type, str] = {bool: "true or false", tuple: "a list of strings"}
    name_of = kind_names.get(kind, kind.__name__)
    raise ConfigError(
        f"{origin}: '{name}' must be {name_of}, got {value!r}",
        f"fix '{name}' in {origin}",
    )


def check_sbatch_arg(text: str, where: str = "--sbatch-arg") -> str:
    """Return ``text`` if it is one long sbatch option orion does not write itself.

    sbatch takes an unambiguous start of a long option for the whole (``--out`` is
    ``--output``), so a start of one of orion's own options is refused too.

    >>> check_sbatch_arg("--reservation=maint")
    '--reservation=maint'
    >>> check_sbatch_arg("--job=x")
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: --sbatch-arg '--job=x': orion sets --job-name itself
    """
    what = f"{where} {shown(text)}"
    char = bad_character(text)
    if char is not None:
        raise UsageError(
            f"{what} contains a control character ({char!r})",
            "give one option per --sbatch-arg, on one line",
        )
    if len(text) > MAX_SBATCH_ARG_CHARS:
        raise UsageError(f"{what} is longer than {MAX_SBATCH_ARG_CHARS} characters")
    match = _OPTION.fullmatch(text)
    if match is None or (match["value"] is None and any(c.isspace() for c in text)):
        raise UsageError(
            f"{what} is not one long sbatch option",
            'write it as --name=value, e.g. --sbatch-arg "--reservation=maint"',
        )
    name = match["name"].lower()
    for own, instead in OWN_OPTIONS.items():
        if own.startswith(name):
            fix = f"use {instead}" if instead else "leave it out"
            raise UsageError(f"{what}: orion sets --{own} itself", fix)
    return text


def sbatch_arg_line(text: str, quote: Any) -> str:
    """The ``#SBATCH`` line of a checked extra option; its value quoted for sbatch.

    >>> sbatch_arg_line("--comment=a b", repr)
    "#SBATCH --comment='a b'"
    >>> sbatch_arg_line("--requeue", repr)
    '#SBATCH --requeue'
    """
    match = _OPTION.fullmatch(text)
    assert match is not None, "checked by check_sbatch_arg"
    if match["value"] is None:
        return f"#SBATCH --{match['name']}"
    return f"#SBATCH --{match['name']}={quote(match['value'])}"
