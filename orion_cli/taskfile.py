"""What a job needs to make its own directory: engine, parameters, structure.

A big submit does not create thousands of job directories on the shared file system (a
metadata storm that parallel file systems handle worst). It writes one ``tasks.jsonl``
beside the array's batch script, a line per job; each array task, when it starts on its
compute node, makes its own directory from its line (:func:`materialize`) and runs. A
single job is materialized at submit time, on the login node, from the same line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from orion_cli.batch import TASKS_FILE as TASKS_FILE
from orion_cli.batch import array_first_id
from orion_cli.engines.registry import get_engine
from orion_cli.jobdir import JOB_FILE, write_json_atomic

#: left in a packed job's directory by ``orion cancel``: its task skips it (the others run)
CANCEL_MARKER = "CANCELLED"


@dataclass
class JobInputs:
    """Everything :func:`materialize` needs; ``structure`` is extended-XYZ text."""

    engine: str
    params: dict[str, Any]
    structure: str
    launcher: str = "auto"
    ntasks: int = 1
    engine_settings: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    #: the parent's result.json whose final structure replaces ``structure`` on the node
    structure_from: str = ""
    #: with ``structure_from``: the lattice factor applied to the parent's final cell
    structure_scale: float = 1.0
    #: what the job is, resolved at submit (orion_cli.frozen.Frozen.record)
    frozen: dict[str, Any] = field(default_factory=dict)


def task_line(workdir: Path, inputs: JobInputs) -> str:
    """One line of ``tasks.jsonl``: the job's directory and its inputs."""
    # vars, not asdict: asdict deep-copies the parameters of every one of thousands of lines
    return json.dumps({"workdir": str(workdir), **vars(inputs)}, separators=(",", ":")) + "\n"


def read_task(path: Path, index: int) -> tuple[Path, JobInputs] | None:
    """Return line ``index`` (0-based) of a tasks file, or None if there is no such line."""
    with path.open() as handle:
        line = next(islice(handle, index, index + 1), None)
    if not line or not line.strip():
        return None
    data = json.loads(line)
    workdir = Path(data.pop("workdir"))
    return workdir, JobInputs(**data)


def prepare(workdir: Path, inputs: JobInputs) -> dict[str, Any]:
    """Let the engine write its input files into ``workdir``; return the job.json content."""
    import io

    from ase.io import read

    atoms = read(io.StringIO(inputs.structure), format="extxyz", index=0)
    assert not isinstance(atoms, list)
    engine = get_engine(inputs.engine)
    spec = engine.prepare(atoms, inputs.params, workdir, inputs.engine_settings)
    job = {
        "engine": inputs.engine,
        "params": inputs.params,
        "attempt": inputs.attempt,
        "ntasks": inputs.ntasks,
        "launcher": inputs.launcher,
        "run_spec": spec.to_json(),
        "engine_settings": inputs.engine_settings,  # frozen at submit: retries read these
        "frozen": inputs.frozen,
    }
    if inputs.structure_from:  # read on the node when the job starts (orion_cli.handoff)
        job.update(structure_from=inputs.structure_from)
        if inputs.structure_scale != 1.0:
            job.update(structure_scale=inputs.structure_scale)
    return job


def materialize(workdir: Path, inputs: JobInputs) -> bool:
    """Make the job directory (inputs, then ``job.json`` last); False if it was already made.

    ``job.json`` is written last and atomically: its presence means the directory is
    complete, so a task that starts twice, or a retry, leaves a made directory alone.
    """
    if (workdir / JOB_FILE).exists():
        return False
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as a single job's
    write_json_atomic(workdir / JOB_FILE, prepare(workdir, inputs))
    return True


def array_tasks_file(workdir: Path, array_name: str) -> Path:
    """The tasks file of the array that job directory ``workdir`` belongs to.

    >>> array_tasks_file(Path("/w/ab12cd/14"), "orion-array-12-ab12cd-")
    PosixPath('/w/ab12cd/arrays/12/tasks.jsonl')
    """

    return workdir.parent / "arrays" / str(array_first_id(array_name)) / TASKS_FILE


def ensure_made(workdir: Path, array_name: str | None, array_index: int | None) -> None:
    """Make the directory of an array job that never started (before a retry runs it alone)."""
    if (workdir / JOB_FILE).exists() or not array_name or array_index is None:
        return
    found = read_task(array_tasks_file(workdir, array_name), array_index)
    if found is None:
        raise FileNotFoundError(f"no line {array_index} in the tasks file of {array_name}")
    materialize(workdir, found[1])


def pack_groups(n_jobs: int, size: int) -> list[list[int]]:
    """Split line indices ``0..n_jobs-1`` into packs of ``size``, in order.

    >>> pack_groups(5, 2)
    [[0, 1], [2, 3], [4]]
    """
    return [list(range(start, min(start + size, n_jobs))) for start in range(0, n_jobs, size)]


def write_packs(path: Path, groups: list[list[int]]) -> None:
    """Write one line per packed task: the ``tasks.jsonl`` line indices it runs, in order."""
    path.write_text("".join(json.dumps(group, separators=(",", ":")) + "\n" for group in groups))


def read_packs(path: Path) -> list[list[int]]:
    """Every packed task's line indices (see :func:`write_packs`)."""
    groups = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not all(isinstance(g, list) and all(isinstance(i, int) for i in g) for g in groups):
        raise ValueError(f"{path} is not a list of line indices per task")
    return groups


def read_tasks(path: Path, indices: list[int]) -> dict[int, tuple[Path, JobInputs]]:
    """Lines ``indices`` (0-based) of a tasks file, read in one pass."""
    wanted, found = set(indices), {}
    with path.open() as handle:
        for index, line in enumerate(handle):
            if index in wanted and line.strip():
                data = json.loads(line)
                workdir = Path(data.pop("workdir"))
                found[index] = (workdir, JobInputs(**data))
                if len(found) == len(wanted):
                    break
    return found


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMMENT = re.compile(r'\s*(?:\w+=(?:"[^"\\]*"|[^\s"=]+)\s*)*')
_FIELD = re.compile(r'(\w+)=(?:"([^"\\]*)"|([^\s"=]+))')
_ATOM = re.compile(rf"\s*([A-Z][a-z]?)\s+({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s*")
_LATTICE = re.compile(rf"\s*{_NUMBER}(?:\s+{_NUMBER}){{8}}\s*")
_PBC = re.compile(r"\s*[TF]\s+[TF]\s+[TF]\s*")


def bare_atoms(text: str) -> Any | None:
    """The atoms of an extended-XYZ frame of the bare shape ASE writes for a structure
    alone, read without ``ase.io``; None for any other frame (ASE's reader takes those).

    The bare shape: a count line; a comment of exactly ``Lattice="<9 numbers>"``,
    ``Properties=species:S:1:pos:R:3`` and ``pbc="<T|F> <T|F> <T|F>"``; one ``Symbol x y z``
    line per atom. ``import ase.io`` costs a packed task 0.2-0.45 s on this machine
    (SciPy's integrate and special, through ase.spacegroup), which an EMT task of a few
    hundred single points otherwise never needs.

    >>> atoms = bare_atoms('1\\nLattice="2 0 0 0 2 0 0 0 2" Properties=species:S:1:pos:R:3 '
    ...                    'pbc="T T F"\\nCu 0.5 0 1e-1\\n')
    >>> atoms.get_chemical_symbols(), atoms.positions.tolist(), atoms.pbc.tolist()
    (['Cu'], [[0.5, 0.0, 0.1]], [True, True, False])
    >>> bare_atoms('1\\nenergy=-1.0 Lattice="2 0 0 0 2 0 0 0 2" '
    ...            'Properties=species:S:1:pos:R:3 pbc="T T T"\\nCu 0 0 0\\n') is None
    True
    >>> bare_atoms('\u00b2\\nLattice="2 0 0 0 2 0 0 0 2" Properties=species:S:1:pos:R:3 '
    ...            'pbc="T T T"\\nCu 0 0 0\\n') is None  # a count that is no ASCII number
    True
    """
    lines = text.split("\n")
    count = lines[0].strip()
    if not (count.isascii() and count.isdigit()) or len(lines) < 2:  # "²" is a digit to Python
        return None
    natoms = int(lines[0])
    if natoms < 1 or len(lines) < natoms + 2 or any(x.strip() for x in lines[natoms + 2 :]):
        return None
    fields = _bare_comment(lines[1])
    if fields is None:
        return None
    atoms = [_ATOM.fullmatch(line) for line in lines[2 : natoms + 2]]
    if not all(atoms):
        return None
    from ase import Atoms
    from ase.data import atomic_numbers

    symbols = [match[1] for match in atoms if match]
    lattice = fields["Lattice"].split()
    if not all(symbol in atomic_numbers for symbol in symbols):
        return None
    return Atoms(
        symbols=symbols,
        positions=[[float(match[i]) for i in (2, 3, 4)] for match in atoms if match],
        cell=[[float(x) for x in lattice[row : row + 3]] for row in (0, 3, 6)],
        pbc=[flag == "T" for flag in fields["pbc"].split()],
    )


def bare_text(atoms: Any) -> str | None:
    """The extended XYZ ``ase.io.write`` gives for atoms that carry nothing but species,
    positions, a cell and pbc, written without importing ``ase.io`` (compared with ASE's
    writer, character for character, in the tests); None for any other atoms.

    >>> from ase import Atoms
    >>> print(bare_text(Atoms("H", positions=[[0, 0, -0.5]], cell=[2, 2, 2], pbc=True)), end="")
    1
    Lattice="2.0 0.0 0.0 0.0 2.0 0.0 0.0 0.0 2.0" Properties=species:S:1:pos:R:3 pbc="T T T"
    H        0.00000000       0.00000000      -0.50000000
    """
    if set(atoms.arrays) != {"numbers", "positions"} or atoms.info or atoms.constraints:
        return None
    if atoms.calc is not None or not atoms.cell.any():
        return None
    lattice = " ".join(str(float(x)) for x in atoms.cell.array.flat)
    pbc = " ".join("T" if flag else "F" for flag in atoms.pbc)
    rows = [
        f"{symbol:<2s} {x:16.8f} {y:16.8f} {z:16.8f}\n"
        for symbol, (x, y, z) in zip(
            atoms.get_chemical_symbols(), atoms.positions.tolist(), strict=True
        )
    ]
    head = f'{len(atoms)}\nLattice="{lattice}" Properties=species:S:1:pos:R:3 pbc="{pbc}"\n'
    return head + "".join(rows)


def _bare_comment(line: str) -> dict[str, str] | None:
    """The comment line's fields when they are exactly the bare shape's, else None."""
    if not _COMMENT.fullmatch(line):
        return None
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(line):
        if match[1] in fields:
            return None
        fields[match[1]] = match[2] if match[2] is not None else match[3]
    if (
        set(fields) != {"Lattice", "Properties", "pbc"}
        or fields["Properties"] != "species:S:1:pos:R:3"
        or not _LATTICE.fullmatch(fields["Lattice"])
        or not _PBC.fullmatch(fields["pbc"])
    ):
        return None
    return fields
