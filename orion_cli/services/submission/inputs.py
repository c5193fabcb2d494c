"""Turn what the researcher typed (files, globs, directories, multi-frame files) into frames.

Which frames a file gives, unless ``file@INDEX`` says (ASE's index syntax: ``@-1``,
``@3``, ``@::2``, ``@1:5``):

- a trajectory meant as a batch (extxyz/xyz, ASE traj): every frame, one job each;
- an engine's output (pw.x output, OUTCAR, vasprun.xml, XDATCAR, a LAMMPS dump, ...):
  its **last** frame, the relaxed or final structure, with a note saying so;
- any other structure file (CIF, POSCAR, ...): its first (usually only) structure.
"""

from __future__ import annotations

import glob
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.errors import UsageError
from orion_cli.limits import printable
from orion_cli.services.structures import ASE_FORMAT, extxyz_text
from orion_cli.services.submission.physical import MIN_DISTANCE_A, check_atoms

if TYPE_CHECKING:
    from ase import Atoms

#: file endings read as structures when a directory is given
STRUCTURE_SUFFIXES = frozenset(
    {
        ".cif",
        ".xyz",
        ".extxyz",
        ".vasp",
        ".poscar",
        ".traj",
        ".pdb",
        ".json",
        ".in",
        ".lmp",
        ".data",
        ".cell",
        ".gen",
        ".res",
    }
)
STRUCTURE_NAMES = ("POSCAR", "CONTCAR")
#: formats that can hold many frames: one job per frame
MULTI_FRAME_SUFFIXES = frozenset({".xyz", ".extxyz", ".traj"})
#: ASE formats of engine outputs: their last frame is the structure meant (relaxed, final)
OUTPUT_FORMATS = frozenset(
    {
        "espresso-out",
        "vasp-out",
        "vasp-xml",
        "vasp-xdatcar",
        "lammps-dump-text",
        "lammps-dump-binary",
        "castep-castep",
        "gpaw-out",
        "aims-output",
        "abinit-out",
        "gaussian-out",
        "nwchem-out",
        "orca-output",
        "onetep-out",
    }
)
_INDEX = re.compile(r"-?\d+|(-?\d+)?:(-?\d+)?(:(-?\d+)?)?")
INDEX_HINT = "write file@-1 (last frame), file@3 (the fourth) or file@::2 (every second)"


def default_name(path: Path) -> str:
    """Name a job after its structure file, keeping names like ``POSCAR.Al`` whole.

    Control characters (a file name may hold any) become ``?``; at most 200 characters.

    >>> default_name(Path("a/Si.cif")), default_name(Path("POSCAR.Al"))
    ('Si', 'POSCAR.Al')
    """

    return printable(path.stem if path.suffix.lower() in STRUCTURE_SUFFIXES else path.name)


def parse_index(text: str) -> int | slice:
    """Read a frame selector in ASE's syntax (an integer or a slice); ValueError if bad.

    >>> parse_index("-1"), parse_index("3"), parse_index("::2"), parse_index("1:5")
    (-1, 3, slice(None, None, 2), slice(1, 5, None))
    >>> parse_index("a")
    Traceback (most recent call last):
    ValueError: 'a' is not a frame index
    """
    if not _INDEX.fullmatch(text):
        raise ValueError(f"{text!r} is not a frame index")
    if ":" not in text:
        return int(text)
    parts = [int(part) if part else None for part in text.split(":")]
    if len(parts) == 3 and parts[2] == 0:
        raise ValueError(f"{text!r} has a step of 0")
    return slice(*parts)


@dataclass(frozen=True)
class StructureInput:
    """One structure file to read, and which frames of it (``index``: ASE syntax, "" = default)."""

    path: Path
    index: str = ""

    def __str__(self) -> str:
        return f"{self.path}@{self.index}" if self.index else str(self.path)


def _is_structure_file(path: Path) -> bool:
    return (
        path.is_file()
        and not path.name.startswith(".")
        and (path.suffix.lower() in STRUCTURE_SUFFIXES or path.name.startswith(STRUCTURE_NAMES))
    )


def _split_selector(arg: str) -> tuple[str, str]:
    """Split ``file@INDEX`` when ``file`` exists (or is a glob); UsageError on a bad INDEX.

    A file whose own name holds ``@`` is taken whole when it exists.
    """
    if "@" not in arg or Path(arg).exists():
        return arg, ""
    base, _, index = arg.rpartition("@")
    if not (Path(base).exists() or glob.has_magic(base)):
        return arg, ""  # no such file: named as typed by the reader
    try:
        parse_index(index)
    except ValueError as exc:
        raise UsageError(f"'{arg}': bad frame index ({exc})", INDEX_HINT) from None
    return base, index


def expand_inputs(args: list[str] | list[Path]) -> list[StructureInput]:
    """Expand directories (recursively, sorted) and globs; keep files as given.

    ``ARG@INDEX`` selects frames of every file ``ARG`` stands for.
    """
    inputs: list[StructureInput] = []
    for given in map(str, args):
        arg, index = _split_selector(given)
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_structure_file(p))
            if not found:
                raise UsageError(
                    f"directory '{arg}' holds no structure files",
                    "orion reads CIF, POSCAR, xyz/extxyz, traj, ... files",
                )
            inputs.extend(StructureInput(p, index) for p in found)
        elif not path.exists() and glob.has_magic(arg):
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True))
            if not matches:
                raise UsageError(f"no file matches '{arg}'", "check the pattern")
            inputs.extend(StructureInput(p, index) for p in matches)
        else:
            inputs.append(StructureInput(path, index))
    return inputs


@dataclass
class Frame:
    """One structure to compute: where it came from, its job name, the atoms, and its text.

    ``is_extxyz`` says that ``text`` can be read back with ASE's extxyz reader; ``note``
    is what the researcher should be told about the choice of frame ("" for nothing).
    """

    source: str
    name: str
    atoms: Atoms
    text: str
    is_extxyz: bool = False
    note: str = ""


def read_frames(
    source: StructureInput | Path, min_distance_a: float | None = MIN_DISTANCE_A
) -> list[Frame]:
    """Read the frames ``source`` selects; raise UsageError naming the file (and frame).

    Each frame is checked (:func:`~orion_cli.services.submission.physical.check_atoms`): finite
    numbers, a cell with volume, no two atoms closer than ``min_distance_a`` (None: any).
    """

    given = source if isinstance(source, StructureInput) else StructureInput(source)
    path = given.path
    _check_readable(path)
    fmt, text, frames = _read_all(path, everything=bool(given.index))
    output = fmt in OUTPUT_FORMATS
    numbered = list(enumerate(frames))
    note = ""
    if given.index:
        numbered = _select(numbered, given)
    elif output and len(frames) > 1:
        numbered = numbered[-1:]
        note = (
            f"'{path}' is an engine output ({fmt}): using its last frame, {len(frames) - 1} "
            f"of 0-{len(frames) - 1}; write '{path}@0' for the first, '{path}@:' for all"
        )
    many = len(frames) > 1
    for index, atoms in numbered:
        check_atoms(atoms, f"'{path}'" + (f" frame {index}" if many else ""), min_distance_a)
    name = default_name(path)
    resolved = str(path.resolve())
    if not many:
        keep_text = bool(text) and not output
        atoms = frames[0]
        return [
            Frame(
                resolved,
                frame_name(atoms, name),
                atoms,
                text if keep_text else extxyz_text(atoms),
                fmt == "extxyz" or not keep_text,
                note,
            )
        ]
    return [
        Frame(
            f"{resolved}@{i}",
            frame_name(
                atoms, name if len(numbered) == 1 and output and not given.index else f"{name}-{i}"
            ),
            atoms,
            extxyz_text(atoms),
            True,
            note,
        )
        for i, atoms in numbered
    ]


def frame_name(atoms: Atoms, default: str) -> str:
    """The job name of a frame: its ``name=`` or ``label=`` (extxyz info), else ``default``."""

    for key in ("name", "label"):
        value = atoms.info.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return printable(str(value).strip())
    return default


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"structure file '{path}' does not exist", "check the path")
    if not path.is_file():
        raise UsageError(f"'{path}' is not a file", "give a structure file (CIF, POSCAR, xyz)")
    if path.name.startswith("log.lammps"):
        raise UsageError(
            f"'{path}' is a LAMMPS log: it holds thermo output, no structure",
            "submit the dump file the run wrote (dump ... custom ...), e.g. traj.dump@-1",
        )


def _read_all(path: Path, everything: bool) -> tuple[str, str, list[Atoms]]:
    """Return the file's ASE format, its text (for text formats orion names) and frames.

    ``everything``: every frame of any format (a selector picks among them); otherwise
    every frame of trajectories and engine outputs, the first of other formats.
    """
    from ase.io import read
    from ase.io.formats import filetype

    suffix = path.suffix.lower()
    fmt = ASE_FORMAT.get(suffix, "")
    text = _read_text(path) if fmt and fmt != "traj" else ""
    try:  # a text format orion names is parsed from the text read once (one open per file)
        fmt = fmt or filetype(str(path))
        if not text and fmt not in OUTPUT_FORMATS:
            text = _text_or_nothing(path)  # kept as the job's input structure
        index: Any = (
            ":" if everything or suffix in MULTI_FRAME_SUFFIXES or fmt in OUTPUT_FORMATS else 0
        )
        source_arg: Any = io.StringIO(text) if text and fmt in ASE_FORMAT.values() else path
        loaded = read(source_arg, index=index, format=fmt)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds for bad files
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot read a structure from '{path}': {detail}",
            "give a CIF, POSCAR/CONTCAR, xyz/extxyz, traj or engine output file",
        ) from None
    frames = loaded if isinstance(loaded, list) else [loaded]
    if not frames or any(len(atoms) == 0 for atoms in frames):
        raise UsageError(f"'{path}' holds no atoms", "check the file")
    return fmt, text, frames


def _select(numbered: list[tuple[int, Atoms]], given: StructureInput) -> list[tuple[int, Atoms]]:
    """The frames ``given.index`` picks; UsageError naming the file when it picks none."""
    index = parse_index(given.index)
    count = len(numbered)
    if isinstance(index, int):
        if not -count <= index < count:
            raise UsageError(
                f"'{given}': no frame {index} ('{given.path}' has {count} "
                f"frame{'s' if count != 1 else ''}, 0 to {count - 1})",
                INDEX_HINT,
            )
        return [numbered[index]]
    chosen = numbered[index]
    if not chosen:
        raise UsageError(
            f"'{given}': the index selects no frame ('{given.path}' has {count})", INDEX_HINT
        )
    return chosen


def _text_or_nothing(path: Path) -> str:
    """The file's text, or "" for a binary file (its frames are then written as extxyz)."""
    try:
        return path.read_text()
    except UnicodeDecodeError:
        return ""


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise UsageError(
            f"'{path}' is not a text structure file",
            "give a CIF, POSCAR/CONTCAR, xyz/extxyz or traj file",
        ) from None
