"""Pure: what a job asks of the scheduler, as one value object.

Settings and flags stay flat (``walltime_s`` in ``orion.toml``, ``--walltime`` on the
command line). Each source of resources (the flags, a script's ``#SBATCH`` lines, a named
queue, the settings, SLURM's record of an adopted job) gives a partial :class:`ResourceAsk`;
:func:`resolve` layers them and turns them into one :class:`Resources`, every value checked
and named by where it came from. From there on the job row
(:meth:`Resources.row` / :meth:`Resources.of`), the batch script
(:func:`orion_cli.batch.sbatch_lines`), retries
(:func:`orion_cli.services.lifecycle.retry.escalate`) and packed resubmissions all use it.

A new field is one edit here (with its flag in the metadata), its column (models.py and a
migration), its command-line option and its ``#SBATCH`` line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from orion_cli.errors import ConfigError, UsageError
from orion_cli.limits import BOUNDS, bad_character, check_bound, check_text, shown


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

    def asked(self) -> ResourceAsk:
        """The values that ask for something: all but an empty one left at its default.

        >>> Resources(partition="debug", priority=0).asked().names()[:5]
        ('partition', 'priority', 'walltime_s', 'nodes', 'ntasks')
        """
        values = {}
        for name in RESOURCE_FIELDS:
            value = getattr(self, name)
            if value or value != getattr(_DEFAULTS, name):
                values[name] = value
        return ResourceAsk(values)


RESOURCE_FIELDS = tuple(f.name for f in fields(Resources))
#: each field's command-line flag, to name it in errors
RESOURCE_FLAGS = {f.name: f.metadata["flag"] for f in fields(Resources)}
#: the kind of each field's value: str, int, bool or tuple
RESOURCE_KINDS = {name: type(getattr(Resources(), name)) for name in RESOURCE_FIELDS}
_DEFAULTS = Resources()
#: the two kinds of memory: one set in a layer replaces the other kind below it
_MEMORY_KINDS = (("mem_mb", "mem_per_cpu_mb"), ("mem_per_cpu_mb", "mem_mb"))
#: counts whose 0 means "not asked" (no #SBATCH line): their bound applies from 1
_ZERO_IS_UNSET = ("mem_mb", "mem_per_cpu_mb")


@dataclass(frozen=True)
class ResourceAsk:
    """Part of a job's resources as one source gives them; each value with its origin.

    The flags, a script's ``#SBATCH`` lines, a named queue, the settings and SLURM's record
    of an adopted job each give one; :func:`resolve` layers them into :class:`Resources`.
    A checked mapping keyed by :data:`RESOURCE_FIELDS` rather than a second list of
    optional fields: a new field of :class:`Resources` needs no edit here, and the origin
    of each value (``""`` for a command-line flag, else e.g. ``script 'run.sbatch'`` or
    the path of ``orion.toml``) travels with it, so an error names what to fix. A name
    absent is "not said". The names are checked here, the values by :func:`resolve`.
    The values keep the order they were given in (:meth:`only` picks an order), and
    :func:`orion_cli.batch.sbatch_options` writes them in that order.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [name for name in self.values if name not in RESOURCE_KINDS]
        if unknown or any(value is None for value in self.values.values()):
            raise TypeError(f"not resource values: {dict(self.values)!r}")
        origins = {name: self.origins.get(name, "") for name in self.values}
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "origins", MappingProxyType(origins))

    @classmethod
    def of(cls, origin: str = "", **values: Any) -> ResourceAsk:
        """The values given (None: not given), all from ``origin`` ("" = the command line).

        >>> ResourceAsk.of(nodes=2, partition=None).values
        mappingproxy({'nodes': 2})
        """
        given = {name: value for name, value in values.items() if value is not None}
        return cls(given, dict.fromkeys(given, origin))

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    def only(self, *names: str) -> ResourceAsk:
        """The values of ``names`` that are set, in the order of ``names``."""
        kept = [name for name in names if name in self.values]
        return ResourceAsk({n: self.values[n] for n in kept}, self.origins)

    def without(self, *names: str) -> ResourceAsk:
        return self.only(*(name for name in self.values if name not in names))

    def over(self, lower: ResourceAsk) -> ResourceAsk:
        """This layer over ``lower``: each value set here wins.

        Memory per node and per CPU exclude each other: one set here replaces the other
        kind below (the more specific choice wins), as sbatch's own options do.

        >>> ask = ResourceAsk.of(mem_mb=4096).over(ResourceAsk.of(mem_per_cpu_mb=2048, nodes=2))
        >>> dict(ask.values)
        {'mem_per_cpu_mb': 0, 'nodes': 2, 'mem_mb': 4096}
        """
        values = {**lower.values, **self.values}
        origins = {**lower.origins, **self.origins}
        for mine, other in _MEMORY_KINDS:
            if self.values.get(mine) and other not in self.values and lower.values.get(other):
                values[other], origins[other] = 0, self.origins[mine]
        return ResourceAsk(values, origins)


def resolve(*layers: ResourceAsk) -> Resources:
    """The one resolver: ``layers`` (highest first) over the defaults, every value checked.

    >>> flags = ResourceAsk.of(ntasks=8)
    >>> header = ResourceAsk.of("script 'run.sbatch'", ntasks=4, walltime_s=600)
    >>> r = resolve(flags, header, ResourceAsk.of("orion.toml", walltime_s=60, nodes=2))
    >>> r.ntasks, r.walltime_s, r.nodes, r.partition
    (8, 600, 2, '')
    """
    ask = ResourceAsk()
    for layer in layers:
        ask = ask.over(layer)
    if ask.get("mem_mb") and ask.get("mem_per_cpu_mb"):  # both from one layer
        origin = ask.origins["mem_mb"]
        raise UsageError(
            "--mem and --mem-per-cpu exclude each other"
            + (f" ({origin} sets both)" if origin else ""),
            "give memory per node (--mem) or per CPU (--mem-per-cpu), not both",
        )
    values = {name: ask.get(name, getattr(_DEFAULTS, name)) for name in RESOURCE_FIELDS}
    values["sbatch_args"] = tuple(values["sbatch_args"] or ())
    for name in RESOURCE_FIELDS:
        _check(name, values[name], ask.origins.get(name, "the defaults"))
    return Resources(**values)


def _check(name: str, value: Any, origin: str) -> None:
    """Check one value; an error names its flag ("" origin) or where it came from."""
    flag = RESOURCE_FLAGS[name]
    if name == "sbatch_args":
        for arg in value:
            check_sbatch_arg(arg, flag if not origin else f"sbatch_args in {origin}")
    elif RESOURCE_KINDS[name] is str:
        check_text(value, flag, origin, name)
    elif name in BOUNDS and not (name in _ZERO_IS_UNSET and not value):
        check_bound(name, value, origin)


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


def sbatch_arg_option(text: str, quote: Any) -> str:
    """A checked extra option with its value quoted by ``quote`` (for an ``#SBATCH`` line).

    >>> sbatch_arg_option("--comment=a b", repr)
    "--comment='a b'"
    >>> sbatch_arg_option("--requeue", repr)
    '--requeue'
    """
    match = _OPTION.fullmatch(text)
    assert match is not None, "checked by check_sbatch_arg"
    if match["value"] is None:
        return f"--{match['name']}"
    return f"--{match['name']}={quote(match['value'])}"
