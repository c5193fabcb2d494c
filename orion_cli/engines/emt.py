"""ASE's EMT calculator: single points and relaxations, no external program needed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from orion_cli.engines._ase_run import (
    RELAX_PARAMS,
    check_periodic,
    check_relax_params,
    parse_output,
    run_calculation,
)
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
    parameters: ClassVar[tuple[EngineParam, ...]] = RELAX_PARAMS
    #: seconds one calculation usually takes (orion submit --pack auto): a relaxation of a
    #: small cell; a single point takes milliseconds
    estimate_s: ClassVar[float] = 1.0

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        merged = check_known_params(self.name, self.parameters, params)
        check_relax_params(self.name, merged)
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
        check_periodic(self.name, atoms, params)
        write(workdir / INPUT_FILE, atoms, format="extxyz")
        return RunSpec()

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        from ase.calculators.emt import EMT
        from ase.io import read

        report("Initializing", 0.0)
        atoms = cast("Atoms", read(workdir / INPUT_FILE, format="extxyz"))
        atoms.calc = EMT()
        run_calculation(atoms, params, workdir, LOG_FILE, OUTPUT_FILE, report)

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        return parse_output(self.name, workdir, params, OUTPUT_FILE)
