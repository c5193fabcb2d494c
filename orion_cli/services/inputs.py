"""Turn what the researcher typed (files, globs, directories, multi-frame files) into frames."""

from __future__ import annotations

import glob
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.errors import UsageError
from orion_cli.services.physical import MIN_DISTANCE_A

if TYPE_CHECKING:
    from ase import Atoms

#: file endings read as structures when a directory is given
STRUCTURE_SUFFIXES = frozenset({".cif", ".xyz", ".extxyz", ".vasp", ".poscar", ".traj", ".pdb",
                                ".json", ".in", ".lmp", ".data", ".cell", ".gen", ".res"})
STRUCTURE_NAMES = ("POSCAR", "CONTCAR")
#: formats that can hold many frames: one job per frame
MULTI_FRAME_SUFFIXES = frozenset({".xyz", ".extxyz", ".traj"})
ASE_FORMAT = {".xyz": "extxyz", ".extxyz": "extxyz", ".traj": "traj", ".cif": "cif"}


def default_name(path: Path) -> str:
    """Name a job after its structure file, keeping names like ``POSCAR.Al`` whole.

    Control characters (a file name may hold any) become ``?``; at most 200 characters.

    >>> default_name(Path("a/Si.cif")), default_name(Path("POSCAR.Al"))
    ('Si', 'POSCAR.Al')
    """
    from orion_cli.limits import printable

    return printable(path.stem if path.suffix.lower() in STRUCTURE_SUFFIXES else path.name)


def _is_structure_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and (
        path.suffix.lower() in STRUCTURE_SUFFIXES or path.name.startswith(STRUCTURE_NAMES))


def expand_inputs(args: list[str] | list[Path]) -> list[Path]:
    """Expand directories (recursively, sorted) and globs; keep files as given."""
    paths: list[Path] = []
    for arg in map(str, args):
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_structure_file(p))
            if not found:
                raise UsageError(f"directory '{arg}' holds no structure files",
                                 "orion reads CIF, POSCAR, xyz/extxyz, traj, ... files")
            paths.extend(found)
        elif not path.exists() and glob.has_magic(arg):
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True))
            if not matches:
                raise UsageError(f"no file matches '{arg}'", "check the pattern")
            paths.extend(matches)
        else:
            paths.append(path)
    return paths


@dataclass
class Frame:
    """One structure to compute: where it came from, its job name, the atoms, and its text.

    ``is_extxyz`` says that ``text`` can be read back with ASE's extxyz reader.
    """

    source: str
    name: str
    atoms: Atoms
    text: str
    is_extxyz: bool = False


def read_frames(path: Path, min_distance_a: float | None = MIN_DISTANCE_A) -> list[Frame]:
    """Read every frame of ``path`` (one for most formats); raise UsageError naming the file.

    Each frame is checked (:func:`~orion_cli.services.physical.check_atoms`): finite
    numbers, a cell with volume, no two atoms closer than ``min_distance_a`` (None: any).
    """
    from ase.io import read

    from orion_cli.services.physical import check_atoms

    if not path.exists():
        raise UsageError(f"structure file '{path}' does not exist", "check the path")
    if not path.is_file():
        raise UsageError(f"'{path}' is not a file", "give a structure file (CIF, POSCAR, xyz)")
    suffix = path.suffix.lower()
    index = ":" if suffix in MULTI_FRAME_SUFFIXES else 0
    fmt = ASE_FORMAT.get(suffix)
    text = "" if suffix == ".traj" else _read_text(path)
    try:  # a text format orion names is parsed from the text read once (one open per file)
        source_arg: Any = io.StringIO(text) if fmt and text else path
        loaded = read(source_arg, index=index, format=fmt)
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds for bad files
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot read a structure from '{path}': {detail}",
            "give a CIF, POSCAR/CONTCAR, xyz/extxyz or traj file (the extension picks the format)",
        ) from None
    frames = loaded if isinstance(loaded, list) else [loaded]
    if not frames or any(len(atoms) == 0 for atoms in frames):
        raise UsageError(f"'{path}' holds no atoms", "check the file")
    for index, atoms in enumerate(frames):
        check_atoms(atoms, f"'{path}'" + (f" frame {index}" if len(frames) > 1 else ""),
                    min_distance_a)
    name = default_name(path)
    source = str(path.resolve())
    if len(frames) == 1:
        return [Frame(source, name, frames[0], text, ASE_FORMAT.get(suffix) == "extxyz")]
    return [Frame(f"{source}@{i}", f"{name}-{i}", atoms, extxyz_text(atoms), True)
            for i, atoms in enumerate(frames)]


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"'{path}' is not a text structure file",
                         "give a CIF, POSCAR/CONTCAR, xyz/extxyz or traj file") from None


def extxyz_text(atoms: Atoms) -> str:
    """Write ``atoms`` as extended-XYZ text (how job inputs carry a structure)."""
    import io

    from ase.io import write

    buffer = io.StringIO()
    write(buffer, atoms, format="extxyz")
    return buffer.getvalue()
