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
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.errors import UsageError
from orion_cli.limits import printable
from orion_cli.services.structures import ASE_FORMAT, extxyz_text
from orion_cli.services.submission.cif import read_large_cif
from orion_cli.services.submission.physical import MIN_DISTANCE_A, check_atoms
from orion_cli.taskfile import bare_atoms

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
#: larger structure files are refused before parsing (a 1 GB file took 6.4 GB of memory)
MAX_STRUCTURE_FILE_BYTES = 512 * 2**20
#: the head of a text structure file that is checked for NUL bytes before it is read
SNIFF_BYTES = 64 * 1024
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
    """One structure file to read, and which frames of it (``index``: ASE syntax, "" = default).

    A part of a multi-frame extended-XYZ file (:func:`split_frames`) carries its frames'
    ``text``, the number of its ``first`` frame in the file, and how many ``frames`` it holds.
    """

    path: Path
    index: str = ""
    text: str = field(default="", repr=False)
    first: int = 0
    frames: int = 1

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
    fmt, text, frames = _read_all(path, everything=bool(given.index), part=given.text)
    output = fmt in OUTPUT_FORMATS
    numbered = list(enumerate(frames, given.first))
    note = ""
    if given.index:
        numbered = _select(numbered, given)
    elif output and len(frames) > 1:
        numbered = numbered[-1:]
        note = (
            f"'{path}' is an engine output ({fmt}): using its last frame, {len(frames) - 1} "
            f"of 0-{len(frames) - 1}; write '{path}@0' for the first, '{path}@:' for all"
        )
    many = len(frames) > 1 or bool(given.text)  # a part: frames of a many-frame file
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
    texts = _frame_texts(fmt, text, len(frames))
    return [
        Frame(
            f"{resolved}@{i}",
            frame_name(
                atoms, name if len(numbered) == 1 and output and not given.index else f"{name}-{i}"
            ),
            atoms,
            texts[i - given.first] if texts else extxyz_text(atoms),
            True,
            note,
        )
        for i, atoms in numbered
    ]


def _frame_texts(fmt: str, text: str, count: int) -> list[str] | None:
    """Each frame's own lines of an extended-XYZ ``text`` (kept as the job's structure, as
    a one-frame file's text is); None when its frames cannot be told apart by their counts
    (ASE's reading of them is then written out instead)."""
    offsets = frame_offsets(text) if fmt == "extxyz" and text else None
    if offsets is None or len(offsets) != count + 1:
        return None
    return [text[start:end] for start, end in itertools.pairwise(offsets)]


#: an extended-XYZ file of at least this many frames is read in parts, side by side
SPLIT_MIN_FRAMES = 64


def split_frames(given: StructureInput, parts: int) -> list[StructureInput]:
    """Split a many-frame extended-XYZ file into up to ``parts`` inputs of consecutive frames.

    Only the frame boundaries are found (a frame is a count line, a comment line and that
    many atom lines), so ASE is not needed here; each part is then parsed by ASE on its own
    core. A selector, another format, a file of fewer than ``SPLIT_MIN_FRAMES`` frames, or
    lines of another shape: the file is returned whole (ASE reads it and names any error).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "many.xyz"
    >>> _ = path.write_text("1\\n\\nH 0 0 0\\n" * 100)
    >>> [(p.first, p.frames) for p in split_frames(StructureInput(path), 3)]
    [(0, 34), (34, 33), (67, 33)]
    >>> split_frames(StructureInput(path, "0:50"), 3) == [StructureInput(path, "0:50")]
    True
    """
    path = given.path
    if given.index or given.text or parts < 2 or ASE_FORMAT.get(path.suffix.lower()) != "extxyz":
        return [given]
    try:
        _check_readable(path)
        _check_size_and_content(path, text_format=True)
        text = path.read_text()
    except (UsageError, OSError, UnicodeDecodeError):
        return [given]  # read whole: the usual path names the problem
    starts = frame_offsets(text)
    if starts is None or len(starts) - 1 < SPLIT_MIN_FRAMES:
        return [given]
    count = len(starts) - 1
    size, extra = divmod(count, parts)
    out, first = [], 0
    for number in range(parts):
        last = first + size + (1 if number < extra else 0)
        out.append(
            StructureInput(path, "", text[starts[first] : starts[last]], first, last - first)
        )
        first = last
    return out


def frame_offsets(text: str) -> list[int] | None:
    """Where each frame of extended-XYZ ``text`` starts, then where the last ends; None when
    a line is not where a frame says it is (a count that is not a whole number, too few
    lines). Blank lines after the last frame are allowed.

    >>> frame_offsets("1\\nc\\nH 0 0 0\\n2\\nc\\nH 0 0 0\\nH 1 0 0\\n\\n")
    [0, 12, 32]
    >>> frame_offsets("2\\nc\\nH 0 0 0\\n") is None, frame_offsets("x\\n") is None
    (True, True)
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # what follows the last newline is no line
    offsets: list[int] = []
    position = line = 0
    while line < len(lines):
        if not lines[line].strip():
            if any(rest.strip() for rest in lines[line:]):
                return None
            break
        try:
            natoms = int(lines[line])
        except ValueError:
            return None
        if natoms < 1 or line + 2 + natoms > len(lines):
            return None
        offsets.append(position)
        position += sum(len(lines[i]) + 1 for i in range(line, line + 2 + natoms))
        line += 2 + natoms
    return [*offsets, min(position, len(text))] if offsets else None


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


def _read_all(path: Path, everything: bool, part: str = "") -> tuple[str, str, list[Atoms]]:
    """Return the file's ASE format, its text (for text formats orion names) and frames.

    ``everything``: every frame of any format (a selector picks among them); otherwise
    every frame of trajectories and engine outputs, the first of other formats. ``part``:
    the text of some frames of an extended-XYZ file (:func:`split_frames` checked the file).
    """
    suffix = path.suffix.lower()
    fmt = ASE_FORMAT.get(suffix, "")
    if not part:
        _check_size_and_content(path, text_format=bool(fmt) and fmt != "traj")
    text = part or (_read_text(path) if fmt and fmt != "traj" else "")
    if fmt == "extxyz" and text:  # bare frames: read without importing ase.io
        bare = _bare_frames(text, everything or suffix in MULTI_FRAME_SUFFIXES)
        if bare:
            return fmt, text, bare
    from ase.io import read
    from ase.io.formats import filetype

    try:  # a text format orion names is parsed from the text read once (one open per file)
        fmt = fmt or filetype(str(path))
        if not text and fmt not in OUTPUT_FORMATS:
            text = _text_or_nothing(path)  # kept as the job's input structure
        index: Any = (
            ":" if everything or suffix in MULTI_FRAME_SUFFIXES or fmt in OUTPUT_FORMATS else 0
        )
        source_arg: Any = io.StringIO(text) if text and fmt in ASE_FORMAT.values() else path
        large = read_large_cif(text, path) if fmt == "cif" and text else None
        loaded: Any = (
            large[slice(None) if index == ":" else slice(0, 1)]
            if large
            else read(source_arg, index=index, format=fmt)
        )
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


def _bare_frames(text: str, every: bool) -> list[Atoms] | None:
    """The frames of extended-XYZ ``text`` (``every``: all, else the first) when each is of
    the bare shape ASE writes for a structure alone (:func:`~orion_cli.taskfile.bare_atoms`:
    the same atoms ASE reads); None when any is not, for ASE to read them all."""
    offsets = frame_offsets(text)
    if offsets is None:
        return None
    frames = []
    for start, end in itertools.islice(itertools.pairwise(offsets), None if every else 1):
        atoms = bare_atoms(text[start:end])
        if atoms is None:
            return None
        frames.append(atoms)
    return frames


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


def _check_size_and_content(path: Path, text_format: bool) -> None:
    """Refuse, before parsing, a file over the size limit or a text file holding NUL bytes."""
    size_bytes = path.stat().st_size
    if size_bytes > MAX_STRUCTURE_FILE_BYTES:
        raise UsageError(
            f"'{path}' is {size_bytes / 2**20:,.0f} MiB; orion reads structure files of up to "
            f"{MAX_STRUCTURE_FILE_BYTES // 2**20} MiB",
            "give a smaller file (e.g. only the frames you need)",
        )
    if text_format:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
        if b"\0" in head:
            raise UsageError(
                f"'{path}' holds NUL bytes in its first {SNIFF_BYTES // 1024} KiB: "
                f"it is not a {path.suffix.lstrip('.')} text file",
                "give a CIF, POSCAR/CONTCAR, xyz/extxyz or traj file",
            )


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
