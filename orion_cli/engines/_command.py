"""Helpers shared by the engines that run an external program (qe, lammps, vasp)."""

from __future__ import annotations

import io
import math
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from ase import Atoms


def command_words(settings: Mapping[str, Any], default_binary: str) -> tuple[str, ...]:
    """Split the configured ``binary`` setting (it may carry flags) into argv words.

    >>> command_words({"binary": "pw.x -nk 2"}, "pw.x")
    ('pw.x', '-nk', '2')
    >>> command_words({}, "lmp")
    ('lmp',)
    """
    return tuple(shlex.split(str(settings.get("binary") or default_binary)))


def binary_status(
    engine_name: str, settings: Mapping[str, Any], default_binary: str
) -> tuple[bool, str]:
    """Tell whether the configured binary is on PATH, in one line."""
    binary = command_words(settings, default_binary)[0]
    found = shutil.which(binary)
    if found:
        return True, f"{binary} found at {found}"
    return False, (
        f"{binary} not found on PATH — install it or set [engines.{engine_name}] binary "
        f"(ORION_{engine_name.upper()}_BINARY)"
    )


def setting_path(settings: Mapping[str, Any], key: str, default: str | None) -> Path | None:
    """Return the directory setting ``key`` (expanded), or ``default``."""
    value = settings.get(key) or default
    return Path(str(value)).expanduser() if value else None


def setting_mapping(settings: Mapping[str, Any], engine_name: str, key: str) -> dict[str, str]:
    """Read a per-element mapping setting: a TOML table or a string ``"Si=a.UPF,Cu=b.UPF"``.

    >>> setting_mapping({"p": "Si=a.UPF, Cu=b.UPF"}, "qe", "p")
    {'Si': 'a.UPF', 'Cu': 'b.UPF'}
    """
    value = settings.get(key)
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    pairs = [item.split("=", 1) for item in str(value).split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ConfigError(
            f"[engines.{engine_name}] {key} = {value!r} is not a mapping",
            f'write it as {key} = {{Si = "file"}} in orion.toml or "Si=file,Cu=file" in '
            f"ORION_{engine_name.upper()}_{key.upper()}",
        )
    return {k.strip(): v.strip() for k, v in pairs}


def check_kpoints(
    engine_name: str, params: Mapping[str, Any], merged: dict[str, Any], shifts: bool = False
) -> None:
    """Validate ``kpoints`` / ``kspacing_per_a``; an explicit grid switches the spacing off.

    With ``shifts`` (the engine has ``kpoints_shift``), six numbers are a grid and its shift.
    """
    if params.get("kpoints") is not None and params.get("kspacing_per_a") is not None:
        raise UsageError(
            f"engine '{engine_name}': give either kpoints or kspacing_per_a, not both",
            "drop one of the two --param options",
        )
    grid = merged.get("kpoints")
    if shifts:
        _split_shift(engine_name, merged)
        grid = merged.get("kpoints")
    if grid is not None:
        if not (
            isinstance(grid, Sequence)
            and len(grid) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in grid)
        ):
            raise UsageError(
                f"engine '{engine_name}': kpoints={grid!r} is not three positive integers"
                + (" (and three 0/1 shifts)" if shifts else ""),
                "write e.g. --param kpoints=4,4,4" + (" or kpoints=6,6,6,1,1,1" if shifts else ""),
            )
        merged["kpoints"] = [int(n) for n in grid]
        merged["kspacing_per_a"] = None
    else:
        require_positive(engine_name, merged, "kspacing_per_a")


def _split_shift(engine_name: str, merged: dict[str, Any]) -> None:
    """``kpoints=[6,6,6,1,1,1]`` → grid and ``kpoints_shift``; each shift is 0 or 1."""
    grid, shift = merged.get("kpoints"), merged.get("kpoints_shift")
    if isinstance(grid, Sequence) and not isinstance(grid, str) and len(grid) == 6:
        if shift is not None and list(shift) != list(grid[3:]):
            raise UsageError(
                f"engine '{engine_name}': kpoints={list(grid)} and kpoints_shift={shift} disagree",
                "give the shift once",
            )
        merged["kpoints"], shift = list(grid[:3]), list(grid[3:])
    if shift is None:
        return
    if not (
        isinstance(shift, Sequence)
        and not isinstance(shift, str)
        and len(shift) == 3
        and all(n in (0, 1) and not isinstance(n, bool) for n in shift)
    ):
        raise UsageError(
            f"engine '{engine_name}': kpoints_shift={shift!r} is not three 0/1 values",
            "write e.g. -p kpoints_shift=1,1,1 or -p kpoints=6,6,6,1,1,1",
        )
    merged["kpoints_shift"] = [int(n) for n in shift]


def require_positive(engine_name: str, merged: Mapping[str, Any], *names: str) -> None:
    """Raise UsageError unless every named parameter is a positive number (None allowed)."""
    for name in names:
        value = merged.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise UsageError(
                f"engine '{engine_name}': {name}={value!r} must be a positive number",
                f"write e.g. --param {name}=1",
            )


def kpoint_grid(atoms: Atoms, spacing_per_a: float) -> list[int]:
    """Return the Monkhorst-Pack grid whose spacing is at most ``spacing_per_a`` (2π included).

    Same convention as VASP's KSPACING: n_i = max(1, ceil(|b_i| / spacing)), |b_i| with 2π.
    """
    lengths = [
        2 * math.pi * float(sum(x * x for x in row)) ** 0.5 for row in atoms.cell.reciprocal()
    ]
    return [max(1, math.ceil(length / spacing_per_a - 1e-9)) for length in lengths]


def atoms_to_extxyz(atoms: Atoms) -> str:
    """Render a structure (without calculator results) as extended-XYZ text."""
    import ase.io

    plain = atoms.copy()
    plain.calc = None
    buffer = io.StringIO()
    ase.io.write(buffer, plain, format="extxyz")
    return buffer.getvalue()


def read_text(path: Path) -> str | None:
    """Return the file's text, or None when it does not exist."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return None


def last_line(text: str) -> str:
    """Return the last non-blank line, stripped (for 'did not finish' messages).

    >>> last_line("a\\n  b  \\n\\n")
    'b'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(empty)"


def to_floats(values: Any) -> Any:
    """Convert numpy arrays / scalars into plain Python floats for JSON."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, list):
        return [to_floats(v) for v in values]
    return float(values)
