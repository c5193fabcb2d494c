"""Read a workflow file (TOML) into checked steps; nothing is written, nothing submitted.

A workflow is a set of named steps::

    [steps.relax]
    engine = "emt"
    params = { relax = true }

    [steps.energy]
    engine = "emt"
    needs = ["relax"]
    structure = "from:relax"

    [steps.points]
    engine = "emt"
    needs = ["relax"]
    structure = "from:relax"  # each point scales the relaxed cell, on the node
    sweep = { scale = [0.96, 0.98, 1.0, 1.02, 1.04] }

    [steps.fit]
    engine = "eos"
    needs_any = ["points"]

Every problem is a UsageError naming ``file:step:key``. Engine parameters and resource
values are checked later by the engine and the resource resolver (services/studies/workflow.py);
this module only needs the names of the engines.
"""

from __future__ import annotations

import heapq
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orion_cli.errors import UsageError
from orion_cli.inputfile import check_regular
from orion_cli.resources import RESOURCE_FIELDS
from orion_cli.reuse_mode import check_mode
from orion_cli.services.lifecycle.depgraph import find_cycle

#: a step's own keys; resource names (walltime_s, ntasks, partition, ...) are allowed too
STEP_KEYS = (
    "engine",
    "params",
    "needs",
    "needs_any",
    "structure",
    "sweep",
    "queue",
    "walltime",
    "mem",
    "retries",
    "reuse",
)
#: a sweep of the lattice (every cell vector times the factor, atoms scaled with it)
SCALE = "scale"
#: jobs one step may make (one array); a larger sweep is a sign of a typo
MAX_STEP_JOBS = 1000
_STEP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Step:
    """One checked step of a workflow."""

    name: str
    engine: str
    params: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # start after these completed (afterok)
    needs_any: tuple[str, ...] = ()  # start after these ended, whatever the outcome
    structure_from: str = ""  # "": the structure given; else the step whose final one
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (key, values), in file order
    resources: dict[str, Any] = field(default_factory=dict)  # Resources field names
    walltime: str = ""  # as --walltime takes it ("30m", "1:00:00")
    mem: str = ""  # as --mem takes it ("4G")
    queue: str = ""
    retries: int | None = None
    reuse: str = ""  # "": the command line's or the config's; else off, strict or loose

    @property
    def parents(self) -> tuple[str, ...]:
        return self.needs + self.needs_any

    def points(self) -> list[dict[str, Any]]:
        """One dict per job: the sweep's values (every combination of several keys).

        >>> Step("s", "emt", sweep=(("scale", (0.9, 1.0)), ("seed", (1, 2)))).points()
        [{'scale': 0.9, 'seed': 1}, {'scale': 0.9, 'seed': 2}, {'scale': 1.0, 'seed': 1}, \
{'scale': 1.0, 'seed': 2}]
        >>> Step("s", "emt").points()
        [{}]
        """
        keys = [key for key, _ in self.sweep]
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(values for _, values in self.sweep))
        ]


@dataclass(frozen=True)
class Workflow:
    path: Path
    steps: tuple[Step, ...]  # parents before children, otherwise in file order

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


def read_workflow(path: Path, engines: Iterable[str]) -> Workflow:
    """Read and check ``path``; ``engines`` are the engine names orion knows."""
    check_regular(path, "workflow file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a valid TOML file: {exc}", "fix the file") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply", "write flat tables and lists") from None
    return parse_workflow(data, path, tuple(engines))


def parse_workflow(data: Mapping[str, Any], path: Path, engines: Sequence[str]) -> Workflow:
    """Check a workflow read from TOML.

    >>> flow = parse_workflow({"steps": {"b": {"engine": "emt", "needs": ["a"]},
    ...                                  "a": {"engine": "emt"}}}, Path("w.toml"), ["emt"])
    >>> [s.name for s in flow.steps]
    ['a', 'b']
    >>> parse_workflow({"steps": {"a": {"engine": "emt", "sweep": {"scale": []}}}},
    ...                Path("w.toml"), ["emt"])
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: w.toml:a:sweep.scale: a sweep of zero values
    """
    for key in data:
        if key != "steps":
            raise UsageError(
                f"{path}:{key}: unknown key", "a workflow file holds [steps.NAME] tables only"
            )
    tables = data.get("steps")
    if not isinstance(tables, dict) or not tables:
        raise UsageError(f"{path}: no steps", 'add one, e.g. [steps.relax] engine = "emt"')
    names = list(tables)
    steps = [_step(path, name, tables[name], names, engines) for name in names]
    cycle = find_cycle({s.name: list(s.parents) for s in steps})
    if cycle:
        raise UsageError(
            f"{path}:{cycle[0]}:needs: a cycle: {' → '.join(cycle)}",
            "a step cannot wait for itself, directly or through others",
        )
    return Workflow(path, tuple(_ordered(steps)))


def _ordered(steps: list[Step]) -> list[Step]:
    """Parents first; otherwise the file's order: Kahn's algorithm taking, each time, the
    earliest ready step in the file (a heap of file positions: 1,500 chained steps in
    milliseconds, where rescanning for the first ready step took 28 s). The steps have
    no cycle (checked before).

    >>> names = lambda ss: [s.name for s in ss]
    >>> names(_ordered([Step("c", "emt", needs=("b",)), Step("a", "emt"), Step("b", "emt")]))
    ['a', 'b', 'c']
    """
    waiting = [len(set(step.parents)) for step in steps]
    children: dict[str, list[int]] = {}
    for i, step in enumerate(steps):
        for parent in set(step.parents):
            children.setdefault(parent, []).append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    done: list[Step] = []
    while ready:
        step = steps[heapq.heappop(ready)]
        done.append(step)
        for child in children.get(step.name, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    assert len(done) == len(steps), "a cycle passed find_cycle"
    return done


def _step(path: Path, name: str, table: Any, names: list[str], engines: Sequence[str]) -> Step:
    where = f"{path}:{name}"
    _check_table(where, name, table)
    engine = table.get("engine")
    if not isinstance(engine, str) or not engine:
        raise UsageError(f"{where}:engine: missing", f"name one of: {', '.join(engines)}")
    if engine not in engines:
        raise UsageError(
            f"{where}:engine: unknown engine '{engine}'", f"use one of: {', '.join(engines)}"
        )
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise UsageError(f"{where}:params: must be a table", "write params = { key = value }")
    needs = _step_list(where, "needs", table.get("needs", []), name, names)
    needs_any = _step_list(where, "needs_any", table.get("needs_any", []), name, names)
    both = sorted(set(needs) & set(needs_any))
    if both:
        raise UsageError(
            f"{where}:needs_any: '{both[0]}' is in needs too", "name each parent step once"
        )
    structure_from = _structure_from(where, table.get("structure", ""), needs, needs_any)
    sweep = _sweep(where, table.get("sweep", {}), params)
    walltime = _text(where, table, "walltime", "walltime_s", '"30m"')
    mem = _text(where, table, "mem", "mem_mb", '"4G"')
    queue = table.get("queue", "")
    if not isinstance(queue, str):
        raise UsageError(f"{where}:queue: must be a string", 'write e.g. queue = "short"')
    retries = table.get("retries")
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool)):
        raise UsageError(f"{where}:retries: must be a whole number", "write e.g. retries = 2")
    resources = {key: value for key, value in table.items() if key in RESOURCE_FIELDS}
    reuse = table.get("reuse", "")
    if not isinstance(reuse, str):
        raise UsageError(f"{where}:reuse: must be a string", 'write reuse = "strict"')
    return Step(
        name,
        engine,
        params,
        needs,
        needs_any,
        structure_from,
        sweep,
        resources,
        walltime,
        mem,
        queue,
        retries,
        check_mode(reuse, f"{where}:reuse") if reuse else "",
    )


def _check_table(where: str, name: str, table: Any) -> None:
    """The step's name and that its table holds only known keys."""
    if not _STEP_NAME.fullmatch(str(name)):
        raise UsageError(
            f"{where}: '{name}' is not a step name",
            "start with a letter; use letters, digits, '_' and '-' (at most 64)",
        )
    if not isinstance(table, dict):
        raise UsageError(f"{where}: a step must be a table", f'write [steps.{name}] engine = "..."')
    for key in table:
        if key not in STEP_KEYS and key not in RESOURCE_FIELDS:
            raise UsageError(
                f"{where}:{key}: unknown key",
                f"a step may set: {', '.join(STEP_KEYS)}, "
                f"or a resource ({', '.join(RESOURCE_FIELDS)})",
            )


def _text(where: str, table: Mapping[str, Any], key: str, other: str, example: str) -> str:
    """A value written as the command line takes it (``walltime = "30m"``), not twice."""
    value = table.get(key, "")
    if not isinstance(value, str):
        raise UsageError(f"{where}:{key}: must be a string", f"write e.g. {key} = {example}")
    if value and other in table:
        raise UsageError(f"{where}:{key}: given twice ({other} too)", "keep one of them")
    return value


def _step_list(where: str, key: str, value: Any, name: str, names: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}:{key}: must be a list of step names", f'write {key} = ["relax"]')
    for parent in value:
        if parent not in names:
            raise UsageError(
                f"{where}:{key}: unknown step '{parent}'",
                f"steps in this file: {', '.join(names)}",
            )
        if parent == name:
            raise UsageError(f"{where}:{key}: a step cannot wait for itself", "remove it")
    return tuple(dict.fromkeys(value))


def _structure_from(
    where: str, value: Any, needs: tuple[str, ...], needs_any: tuple[str, ...]
) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{where}:structure: must be a string", 'write structure = "from:relax"')
    if value in ("", "input"):
        return ""
    if not value.startswith("from:"):
        raise UsageError(
            f"{where}:structure: '{value}' is not understood",
            'write "input" (the structure given) or "from:STEP" (that step\'s final structure)',
        )
    parent = value[len("from:") :]
    if parent not in needs:
        also = " (needs_any does not wait for it to complete)" if parent in needs_any else ""
        raise UsageError(
            f"{where}:structure: from:{parent} names a step that is not a parent{also}",
            f'add it to needs: needs = ["{parent}"]',
        )
    return parent


def _sweep(
    where: str, value: Any, params: Mapping[str, Any]
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(value, dict):
        raise UsageError(
            f"{where}:sweep: must be a table", "write [steps.NAME.sweep] key = [value, ...]"
        )
    sweep = []
    total = 1
    for key, values in value.items():
        what = f"{where}:sweep.{key}"
        if not isinstance(values, list):
            raise UsageError(f"{what}: must be a list of values", f"write {key} = [1, 2, 3]")
        if not values:
            raise UsageError(f"{what}: a sweep of zero values", "give at least one value")
        if any(isinstance(v, dict | list) for v in values):
            raise UsageError(f"{what}: values must be numbers, strings or booleans", "")
        if len(set(map(repr, values))) != len(values):
            raise UsageError(f"{what}: a value is given twice", "give each value once")
        if key in params:
            raise UsageError(
                f"{what}: {key} is in params too", "give it either in params or in the sweep"
            )
        if key == SCALE and not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0.5 <= v <= 2 for v in values
        ):
            raise UsageError(
                f"{what}: lattice factors must be numbers from 0.5 to 2",
                "write e.g. scale = [0.96, 0.98, 1.0, 1.02, 1.04]",
            )
        total *= len(values)
        sweep.append((key, tuple(values)))
    if total > MAX_STEP_JOBS:
        raise UsageError(
            f"{where}:sweep: {total} jobs; a step makes at most {MAX_STEP_JOBS}",
            "sweep fewer values",
        )
    return tuple(sweep)
