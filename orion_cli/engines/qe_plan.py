"""What a pw.x job's answer depends on beyond its parameters, resolved in one place.

:func:`plan_inputs` turns checked parameters, a structure and engine settings into the
pseudopotential files, ``ecutrho`` and the k-mesh pw.x runs with; ``prepare`` writes pw.in
from it and :func:`frozen_inputs` stores it with the job at submit (orion_cli.frozen).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.engines import _command
from orion_cli.engines.qe_pseudo import DEBIAN_DIR, Choice, choose, family_table, read_upf_header
from orion_cli.errors import UsageError
from orion_cli.frozen import sha256_file
from orion_cli.runner import run

if TYPE_CHECKING:
    from ase import Atoms

#: pseudopotentials that live in several directories are linked here, in the job directory
LINKED_PSEUDO_DIR = "pseudo"
_BANNER = re.compile(r"Program PWSCF (v\.\S+)")


def check_pseudo_table(table: Any) -> dict[str, str] | None:
    """``pseudo`` is a table element → file name or path.

    >>> check_pseudo_table({"Si": "Si.pz-vbc.UPF"})
    {'Si': 'Si.pz-vbc.UPF'}
    """
    if table is None:
        return None
    if not isinstance(table, Mapping) or not all(
        isinstance(v, str) and v.strip() for v in table.values()
    ):
        raise UsageError(
            f"engine 'qe': pseudo={table!r} is not a table of element = file",
            "write e.g. -p pseudo.Si=Si.pz-vbc.UPF",
        )
    return {str(k): str(v).strip() for k, v in table.items()}


@dataclass(frozen=True)
class PwPlan:
    """The pseudopotential per element (with why), ecutrho and the k-mesh pw.x runs with."""

    choices: dict[str, Choice]
    ecutrho_ry: float
    dual: int
    kpoints: list[int]
    kpoints_shift: list[int]

    @property
    def pseudos(self) -> dict[str, Path]:
        return {element: choice.path for element, choice in self.choices.items()}

    def pseudo_dir(self, workdir: Path) -> Path:
        """One directory for pw.x: the files' own, else links in ``workdir/pseudo``."""
        dirs = {path.parent for path in self.pseudos.values()}
        if len(dirs) == 1:
            return dirs.pop()
        linked = workdir / LINKED_PSEUDO_DIR
        linked.mkdir(parents=True, exist_ok=True)
        for path in self.pseudos.values():
            link = linked / path.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(path)
        return linked.absolute()


def plan_inputs(atoms: Atoms, params: Mapping[str, Any], settings: Mapping[str, Any]) -> PwPlan:
    """Resolve pseudopotentials, ``ecutrho`` (the dual their type needs) and the k-mesh."""
    pseudo_dir = _command.setting_path(settings, "pseudo_dir", DEBIAN_DIR)
    assert pseudo_dir is not None
    elements = sorted(set(atoms.get_chemical_symbols()))
    choices = {el: choose(el, params, settings, pseudo_dir) for el in elements}
    headers = [read_upf_header(c.path) for c in choices.values()]
    dual = 8 if any(h.needs_dual_8 for h in headers) else 4
    ecutrho = params.get("ecutrho_ry") or dual * float(params["ecutwfc_ry"])
    kpoints = params.get("kpoints") or _command.kpoint_grid(atoms, params["kspacing_per_a"])
    shift = params.get("kpoints_shift") or [0, 0, 0]
    return PwPlan(choices, float(ecutrho), dual, list(kpoints), list(shift))


def frozen_inputs(
    atoms: Atoms, params: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """The plan as orion_cli.frozen stores it: absolute files, derived values, notes."""
    plan = plan_inputs(atoms, params, settings)
    pseudo_dir = _command.setting_path(settings, "pseudo_dir", DEBIAN_DIR)
    assert pseudo_dir is not None
    families = {
        name: family_table(name, settings)
        for name in {params.get("pseudo_family"), settings.get("pseudo_family")}
        if name
    }
    frozen_settings = {
        **settings,
        "pseudo_dir": str(pseudo_dir.absolute()),
        "pseudopotentials": {el: str(path) for el, path in plan.pseudos.items()},
        **({"families": {**(settings.get("families") or {}), **families}} if families else {}),
    }
    notes, warnings = [], []
    for element, choice in plan.choices.items():
        header = read_upf_header(choice.path)
        notes.append(
            f"pseudopotential {element}: {choice.path.name} sha256 {sha256_file(choice.path)[:12]} "
            f"({choice.why}; {header.pseudo_type or 'type unknown'}, "
            f"{header.functional or 'functional unknown'})"
            + (
                f" — choose with -p pseudo.{element}=FILE or -p pseudo_family=NAME"
                if choice.why == "default rule"
                else ""
            )
        )
        warnings += _cutoff_warnings(params, plan, choice, header)
    explicit = {
        el: str(Path(v).expanduser().absolute()) if "/" in v else v
        for el, v in (params.get("pseudo") or {}).items()
    }
    return {
        "params": {**params, "pseudo": explicit or params.get("pseudo")},
        "settings": frozen_settings,
        "derived": {
            "ecutrho_ry": plan.ecutrho_ry,
            "kpoints": plan.kpoints,
            "kpoints_shift": plan.kpoints_shift,
            "kspacing_per_a": None,
        },
        "files": {f"pseudo.{el}": path for el, path in plan.pseudos.items()},
        "notes": notes,
        "warnings": warnings,
    }


def _cutoff_warnings(
    params: Mapping[str, Any], plan: PwPlan, choice: Choice, header: Any
) -> list[str]:
    """A cutoff below the family's recommendation (else the UPF's suggestion)."""
    family_wfc, family_rho = choice.cutoffs_ry
    name_ = choice.path.name
    source = (
        f"that {choice.why} recommends for {name_}"
        if family_wfc or family_rho
        else f"that {name_} suggests"
    )
    out = []
    for name, value, suggested in (
        ("ecutwfc_ry", float(params["ecutwfc_ry"]), family_wfc or header.wfc_cutoff_ry),
        ("ecutrho_ry", plan.ecutrho_ry, family_rho or header.rho_cutoff_ry),
    ):
        if suggested and value < float(suggested) - 1e-9:
            out.append(f"{name}={value:g} is below the {round(float(suggested), 1):g} Ry {source}")
    return out


@lru_cache(maxsize=8)
def pw_version(binary: str) -> str:
    """pw.x's version from its banner (it prints it, then stops on the empty input)."""

    result = run([binary], input_text="", timeout_s=30)
    found = _BANNER.search(result.stdout)
    return f"pw.x {found.group(1)}" if found else f"{binary}: version unknown"
