"""In-process ASE calculations shared by the emt and ase engines: relax, cell relax, parse.

The engines' parameters ``relax``, ``relax_cell``, ``pressure_gpa``, ``fmax_ev_per_a`` and
``max_steps`` mean the same in both (:data:`RELAX_PARAMS`); BFGS moves the atoms, or atoms
and cell through ASE's ``FrechetCellFilter``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orion_cli.engines.base import EngineParam, ProgressFn, Result
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

RELAX_PARAMS = (
    EngineParam("relax", False, "relax atomic positions (BFGS) before reporting"),
    EngineParam("relax_cell", False,
                "relax the cell too (ASE's FrechetCellFilter, BFGS); implies relax"),
    EngineParam("pressure_gpa", 0.0, "relax_cell: target hydrostatic pressure", "GPa"),
    EngineParam("fmax_ev_per_a", 0.05, "force convergence criterion of the relaxation", "eV/Å"),
    EngineParam("max_steps", 200, "maximum number of relaxation steps"),
)


def check_relax_params(engine: str, merged: Mapping[str, Any]) -> None:
    """Raise UsageError naming a bad relaxation parameter."""
    for key in ("relax", "relax_cell"):
        if not isinstance(merged[key], bool):
            raise UsageError(f"{engine}: {key}={merged[key]!r} must be true or false",
                             f"write --param {key}=true")
    for key in ("fmax_ev_per_a", "max_steps"):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 \
                or value == float("inf"):
            raise UsageError(f"{engine}: {key}={value!r} must be a positive number")
    pressure = merged["pressure_gpa"]
    if isinstance(pressure, bool) or not isinstance(pressure, int | float) \
            or pressure != pressure or abs(pressure) == float("inf"):
        raise UsageError(f"{engine}: pressure_gpa={pressure!r} must be a number")
    if pressure and not merged["relax_cell"]:
        raise UsageError(f"{engine}: pressure_gpa needs relax_cell=true",
                         "add --param relax_cell=true")


def check_periodic(engine: str, atoms: Atoms, params: Mapping[str, Any]) -> None:
    """A cell relaxation needs a crystal."""
    if params.get("relax_cell") and not all(atoms.pbc):
        raise UsageError(f"{engine}: relax_cell needs a structure periodic in all three "
                         "directions", "give a crystal (CIF, POSCAR) or drop relax_cell")


def relax_target(atoms: Atoms, params: Mapping[str, Any]) -> Any:
    """What the optimizer moves: the atoms, or atoms and cell (``FrechetCellFilter``)."""
    if not params.get("relax_cell"):
        return atoms
    from ase.filters import FrechetCellFilter
    from ase.units import GPa

    return FrechetCellFilter(atoms, scalar_pressure=float(params.get("pressure_gpa", 0.0)) * GPa)


def run_calculation(atoms: Atoms, params: Mapping[str, Any], workdir: Path, log_name: str,
                    output_name: str, report: ProgressFn) -> None:
    """Relax if asked, compute energy/forces (stress where periodic), write ``output_name``."""
    from ase.calculators.calculator import PropertyNotImplementedError
    from ase.io import write
    from ase.optimize import BFGS

    steps = 0
    converged = True
    if params["relax"] or params.get("relax_cell"):
        max_steps = int(params["max_steps"])
        optimizer = BFGS(relax_target(atoms, params), logfile=str(workdir / log_name))

        def progress() -> None:
            report("Relaxing", min(95.0, 100.0 * optimizer.nsteps / max_steps))

        optimizer.attach(progress, interval=5)
        converged = bool(optimizer.run(fmax=float(params["fmax_ev_per_a"]), steps=max_steps))
        steps = optimizer.nsteps
    report("Analyzing", 95.0)
    atoms.get_potential_energy()
    atoms.get_forces()
    if all(atoms.pbc):
        try:
            atoms.get_stress()
        except PropertyNotImplementedError:
            pass  # a calculator without stress: no stress in the result
    atoms.info["orion_relax_steps"] = steps
    atoms.info["orion_converged"] = converged
    write(workdir / output_name, atoms, format="extxyz")


def parse_output(engine: str, workdir: Path, params: Mapping[str, Any],
                 output_name: str) -> Result:
    """Read what :func:`run_calculation` wrote; an unconverged relaxation is an error."""
    from ase.io import read

    path = workdir / output_name
    if not path.exists():
        return Result(error=f"{engine}: {output_name} missing (the run did not finish)")
    atoms = cast("Atoms", read(path, format="extxyz"))
    calc = atoms.calc
    stress = calc.results.get("stress") if calc else None
    converged = bool(atoms.info.get("orion_converged", True))
    relaxing = bool(params.get("relax") or params.get("relax_cell"))
    result = Result(
        energy_ev=float(atoms.get_potential_energy()),
        forces_ev_per_a=atoms.get_forces().round(8).tolist(),
        stress_ev_per_a3=[float(x) for x in stress] if stress is not None else None,
        final_structure=path.read_text() if relaxing else None,
        converged=converged,
        extras={"relax_steps": int(atoms.info.get("orion_relax_steps", 0)),
                "natoms": len(atoms), "formula": atoms.get_chemical_formula(),
                **({"volume_a3": float(atoms.get_volume()),
                    "cell_a": atoms.cell.array.round(10).tolist()}
                   if all(atoms.pbc) else {})},
    )
    if not converged:
        result.error = (f"{engine}: relaxation did not reach fmax {params['fmax_ev_per_a']} "
                        f"eV/Å in {params['max_steps']} steps")
    return result
