"""The engine contract: check parameters, write inputs, run, parse outputs.

An engine never touches the scheduler or the database. ``prepare`` runs at submit time
on the login node (so a bad input fails before anything is queued); ``run`` and ``parse``
run inside the batch job, through :mod:`orion_cli.jobrun`.
ASE and pymatgen are imported inside engine methods only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from orion_cli.errors import UsageError
from orion_cli.limits import bad_character
from orion_cli.outfile import write_output

if TYPE_CHECKING:
    from ase import Atoms

#: report(step_name, progress_pct) — written as a progress event into the job directory
ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class EngineParam:
    """One parameter an engine understands, for ``orion engines`` and for validation."""

    name: str
    default: Any
    help: str
    unit: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSpec:
    """How to run a prepared calculation.

    ``command`` None means the engine runs in-process (``Engine.run``); otherwise the job
    runs ``command`` in the work directory with stdout to ``stdout_name``. ``mpi`` says the
    command may be prefixed by the configured launcher (srun / mpirun -np N).
    """

    command: tuple[str, ...] | None = None
    stdout_name: str | None = None
    mpi: bool = False
    env: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["command"] = list(self.command) if self.command else None
        data["env"] = dict(self.env)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSpec:
        command = data.get("command")
        return cls(
            command=tuple(command) if command else None,
            stdout_name=data.get("stdout_name"),
            mpi=bool(data.get("mpi", False)),
            env=dict(data.get("env") or {}),
        )


@dataclass
class Result:
    """What a calculation produced, in eV / Å units; ``error`` set means it failed.

    ``final_structure`` is extended-XYZ text; ``extras`` holds engine-specific numbers
    (raw Ry energy, SCF steps, thermo table, ...).
    """

    energy_ev: float | None = None
    forces_ev_per_a: list[list[float]] | None = None
    stress_ev_per_a3: list[float] | None = None
    final_structure: str | None = None
    converged: bool | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields as they are (written out at once: no deep copy of the forces)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Result:
        known: dict[str, Any] = {f: data.get(f) for f in cls.__dataclass_fields__}
        known["extras"] = dict(data.get("extras") or {})
        return cls(**known)


class Engine(Protocol):
    """A simulation code orion can drive. Registered under the ``orion.engines`` entry point."""

    name: ClassVar[str]
    summary: ClassVar[str]
    parameters: ClassVar[tuple[EngineParam, ...]]

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``params`` completed with defaults; raise UsageError naming a bad one."""
        ...

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        """Tell whether the engine can run here (its binary found), for ``orion engines``."""
        ...

    def prepare(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        settings: Mapping[str, Any],
    ) -> RunSpec:
        """Write the input files into ``workdir``; return how to run them."""
        ...

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        """Run in-process (only engines whose RunSpec has no command)."""
        ...

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        """Read the outputs in ``workdir``; a failed calculation gives ``Result(error=...)``."""
        ...

    # Optional: ``request_stop(workdir)`` asks a running command engine to stop cleanly when
    # the soft time limit arrives (pw.x: a ``<prefix>.EXIT`` file). Engines without it run on.
    # Optional: ``prepare_attempt(workdir, attempt)`` runs on the node before every attempt
    # (qe: clear stale stop files, continue from restart files; emt/ase: keep the previous
    # attempt's files, continue an interrupted relaxation from its trajectory).
    #
    # In-process engines may also offer the fast path of a packed task (orion_cli.jobrun):
    # Optional: ``compute(atoms, params, workdir, report, session) -> Result`` runs on a
    # structure already in memory (parsed once from the task's line) and returns the result,
    # which the runner writes once; ``workdir`` exists for files the engine must keep (a
    # relaxation's trajectory). No input file is written and nothing is read back. A first
    # attempt of a job whose directory does not exist yet takes this path; anything else
    # (a retry, a --from job) goes through prepare/run/parse as when the job runs alone.
    # Optional: ``session() -> AbstractContextManager[Any]`` is entered once per packed task
    # (per GPU slot), before the first calculation of this engine, and left when the task
    # ends; what it yields is passed to every ``compute`` as ``session``. Load a model there
    # (or lazily into a dict it yields, keyed by the parameters that choose the model), and
    # every calculation of the task reuses it. Without ``session``, ``compute`` gets None.


#: integer parameters are step counts, seeds, iteration limits: 32-bit in every engine's code
MAX_INT_PARAM = 2**31 - 1
#: any integer inside a parameter value (a k-point grid, a list) must fit a JSON/DB integer
MAX_ANY_INT = 2**63 - 1
MAX_PARAM_TEXT_CHARS = 4096


def check_known_params(
    engine_name: str, declared: tuple[EngineParam, ...], params: Mapping[str, Any]
) -> dict[str, Any]:
    """Fill defaults; reject undeclared names, ill-typed and non-finite values (all engines).

    A parameter whose default is a bool takes only true/false, an int only whole numbers
    (``2.0`` becomes ``2``), a float any finite number; a str default takes text. Whatever
    the type, no number inside a value may be NaN or infinite and no text may hold a
    control character (parameters end up in engines' input files).

    >>> p = (EngineParam("steps", 10, "number of steps"),)
    >>> check_known_params("mock", p, {})
    {'steps': 10}
    >>> check_known_params("mock", p, {"steps": 20.0})
    {'steps': 20}
    """

    names = {p.name for p in declared}
    unknown = sorted(set(params) - names)
    if unknown:
        raise UsageError(
            f"engine '{engine_name}' has no parameter '{unknown[0]}'",
            f"known: {', '.join(sorted(names))} (see `orion engines`)",
        )
    merged = {p.name: p.default for p in declared}
    merged.update(params)
    for p in declared:
        merged[p.name] = check_param_value(engine_name, p, merged[p.name])
        if p.choices and merged[p.name] not in p.choices:
            raise UsageError(
                f"engine '{engine_name}': {p.name}={merged[p.name]!r} is not allowed",
                f"use one of: {', '.join(p.choices)}",
            )
    return merged


def check_param_value(engine_name: str, param: EngineParam, value: Any) -> Any:
    """Return ``value`` checked against the type of ``param``'s default (see above)."""

    what = f"engine '{engine_name}': {param.name}={_short(value)}"
    _check_inside(what, value)
    default = param.default
    if value is None or default is None:
        return value  # optional, or a parameter of several forms: its engine checks it
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UsageError(f"{what} must be true or false", f"write --param {param.name}=true")
        return value
    if isinstance(default, int | float) and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise UsageError(f"{what} must be {kind}", f"write e.g. --param {param.name}={default}")
    if isinstance(default, int):
        if isinstance(value, float) and not value.is_integer():
            raise UsageError(
                f"{what} must be a whole number", f"write e.g. --param {param.name}={default}"
            )
        if abs(value) > MAX_INT_PARAM:
            raise UsageError(
                f"{what} is out of range: must be at most {MAX_INT_PARAM} in size",
                f"write e.g. --param {param.name}={default}",
            )
        return int(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise UsageError(f"{what} must be text", f"write e.g. --param {param.name}={default}")
    return value


def _check_inside(what: str, value: Any) -> None:
    """Refuse NaN/infinity, huge integers, control characters anywhere inside ``value``.

    Iterative, so a value nested as deep as JSON allows cannot exhaust the stack.
    """
    import math

    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(
                f"{what} must be finite (not NaN or infinity)", "write an ordinary number"
            )
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_ANY_INT:
            raise UsageError(f"{what} is out of range: must be at most {MAX_ANY_INT} in size")
        if isinstance(item, str):
            if bad_character(item) is not None:
                raise UsageError(
                    f"{what} contains a control character ({bad_character(item)!r})", "remove it"
                )
            if len(item) > MAX_PARAM_TEXT_CHARS:
                raise UsageError(f"{what} is longer than {MAX_PARAM_TEXT_CHARS} characters")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif item is not None and not isinstance(item, bool | int | float):
            raise UsageError(
                f"{what} has a value of type {type(item).__name__}",
                "use numbers, true/false, text and lists",
            )


def _short(value: Any) -> str:
    """``repr`` of a parameter value, shortened for a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}… ({len(text)} characters)"


def write_texts(workdir: Path, texts: Mapping[str, bytes]) -> None:
    """Write an engine's input texts (its ``input_texts``) into the job directory, each
    through the safe-write helper (a planted link or FIFO is not written through)."""
    for name, data in texts.items():
        write_output(workdir / name, data)
