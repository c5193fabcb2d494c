"""ASE's EMT calculator: single points and relaxations, no external program needed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from orion_cli.engines.base import (
    EngineParam,
    ProgressFn,
    Result,
    RunSpec,
    check_known_params,
)
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

INPUT_FILE = "emt-input.extxyz"
OUTPUT_FILE = "emt-output.extxyz"
LOG_FILE = "emt-relax.log"
EMT_ELEMENTS = frozenset({"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt", "H", "C", "N", "O"})


class EmtEngine:
    name: ClassVar[str] = "emt"
    summary: ClassVar[str] = "ASE effective-medium theory (Al Cu Ag Au Ni Pd Pt; H C N O)"
    parameters: ClassVar[tuple[EngineParam, ...]] = (
        EngineParam("relax", False, "relax atomic positions (BFGS) before reporting"),
        EngineParam("relax_cell", False,
                    "relax the cell too (ASE's FrechetCellFilter, BFGS); implies relax"),
        EngineParam("pressure_gpa", 0.0, "relax_cell: target hydrostatic pressure", "GPa"),
        EngineParam("fmax_ev_per_a", 0.05, "force convergence criterion of the relaxation",
                    "eV/Å"),
        EngineParam("max_steps", 200, "maximum number of relaxation steps"),
    )

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        merged = check_known_params(self.name, self.parameters, params)
        for key in ("relax", "relax_cell"):
            if not isinstance(merged[key], bool):
                raise UsageError(f"emt: {key}={merged[key]!r} must be true or false",
                                 f"write --param {key}=true")
        pressure = merged["pressure_gpa"]
        if isinstance(pressure, bool) or not isinstance(pressure, int | float) \
                or pressure != pressure or abs(pressure) == float("inf"):
            raise UsageError(f"emt: pressure_gpa={pressure!r} must be a number")
        if pressure and not merged["relax_cell"]:
            raise UsageError("emt: pressure_gpa needs relax_cell=true",
                             "add --param relax_cell=true")
        for key in ("fmax_ev_per_a", "max_steps"):
            value = merged[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise UsageError(f"emt: {key}={value!r} must be a positive number")
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        return True, "built in (ase.calculators.emt)"

    def prepare(
        self, atoms: Atoms, params: Mapping[str, Any], workdir: Path,
        settings: Mapping[str, Any],
    ) -> RunSpec:
        from ase.io import write

        unsupported = sorted(set(atoms.get_chemical_symbols()) - EMT_ELEMENTS)
        if unsupported:
            raise UsageError(
                f"emt has no parameters for {', '.join(unsupported)}",
                f"EMT covers {' '.join(sorted(EMT_ELEMENTS))}; use another engine (qe, lammps)",
            )
        if params.get("relax_cell") and not all(atoms.pbc):
            raise UsageError("emt: relax_cell needs a structure periodic in all three directions",
                             "give a crystal (CIF, POSCAR) or drop relax_cell")
        write(workdir / INPUT_FILE, atoms, format="extxyz")
        return RunSpec()

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        from ase.calculators.emt import EMT
        from ase.io import read, write
        from ase.optimize import BFGS

        report("Initializing", 0.0)
        atoms = cast("Atoms", read(workdir / INPUT_FILE, format="extxyz"))
        atoms.calc = EMT()
        steps = 0
        converged = True
        if params["relax"] or params.get("relax_cell"):
            max_steps = int(params["max_steps"])
            optimizer = BFGS(relax_target(atoms, params), logfile=str(workdir / LOG_FILE))

            def progress() -> None:
                report("Relaxing", min(95.0, 100.0 * optimizer.nsteps / max_steps))

            optimizer.attach(progress, interval=5)
            converged = bool(optimizer.run(fmax=float(params["fmax_ev_per_a"]), steps=max_steps))
            steps = optimizer.nsteps
        report("Analyzing", 95.0)
        atoms.get_potential_energy()
        atoms.get_forces()
        if all(atoms.pbc):
            atoms.get_stress()
        atoms.info["orion_relax_steps"] = steps
        atoms.info["orion_converged"] = converged
        write(workdir / OUTPUT_FILE, atoms, format="extxyz")

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        from ase.io import read

        path = workdir / OUTPUT_FILE
        if not path.exists():
            return Result(error=f"emt: {OUTPUT_FILE} missing (the run did not finish)")
        atoms = cast("Atoms", read(path, format="extxyz"))
        calc = atoms.calc
        stress = calc.results.get("stress") if calc else None
        converged = bool(atoms.info.get("orion_converged", True))
        result = Result(
            energy_ev=float(atoms.get_potential_energy()),
            forces_ev_per_a=atoms.get_forces().round(8).tolist(),
            stress_ev_per_a3=[float(x) for x in stress] if stress is not None else None,
            final_structure=path.read_text()
            if params.get("relax") or params.get("relax_cell") else None,
            converged=converged,
            extras={"relax_steps": int(atoms.info.get("orion_relax_steps", 0)),
                    "natoms": len(atoms), "formula": atoms.get_chemical_formula(),
                    **({"volume_a3": float(atoms.get_volume()),
                        "cell_a": atoms.cell.array.round(10).tolist()}
                       if all(atoms.pbc) else {})},
        )
        if not converged:
            result.error = (f"emt: relaxation did not reach fmax {params['fmax_ev_per_a']} eV/Å "
                            f"in {params['max_steps']} steps")
        return result


def relax_target(atoms: Atoms, params: Mapping[str, Any]) -> Any:
    """What the optimizer moves: the atoms, or atoms and cell (``FrechetCellFilter``)."""
    if not params.get("relax_cell"):
        return atoms
    from ase.filters import FrechetCellFilter
    from ase.units import GPa

    if not all(atoms.pbc):
        raise ValueError("relax_cell needs a periodic structure in all three directions")
    return FrechetCellFilter(atoms, scalar_pressure=float(params.get("pressure_gpa", 0.0)) * GPa)
