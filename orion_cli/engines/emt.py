"""ASE's EMT calculator: single points and relaxations, no external program needed."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines._ase_run import (
    RELAX_PARAMS,
    AseFiles,
    check_periodic,
    check_relax_params,
    compute_in_memory,
    parse_output,
    prepare_attempt,
    run_calculation,
    starting_atoms,
    structure_texts,
)
from orion_cli.engines.base import (
    EngineParam,
    ProgressFn,
    Result,
    RunSpec,
    check_known_params,
    write_texts,
)
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

FILES = AseFiles("emt")
EMT_ELEMENTS = frozenset({"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt", "H", "C", "N", "O"})


@cache
def ase_version() -> str:
    """``ase <version>``, looked up once per process (1 ms a lookup: once per structure of
    a 1,000-structure submit was a second)."""
    from importlib.metadata import version

    return f"ase {version('ase')}"


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

    def code_version(self, settings: Mapping[str, Any]) -> str:
        """The calculator's package version, part of the calculation key."""
        return ase_version()

    def writes_files(self, params: Mapping[str, Any]) -> bool:
        """In memory (a packed task), only a relaxation writes files: its trajectory, log."""
        return bool(params.get("relax") or params.get("relax_cell"))

    def input_texts(
        self, atoms: Atoms, params: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> dict[str, bytes]:
        """The checked structure as the input file's text (see ``freeze``)."""
        unsupported = sorted(set(atoms.get_chemical_symbols()) - EMT_ELEMENTS)
        if unsupported:
            raise UsageError(
                f"emt has no parameters for {', '.join(unsupported)}",
                f"EMT covers {' '.join(sorted(EMT_ELEMENTS))}; use another engine (qe, lammps)",
            )
        check_periodic(self.name, atoms, params)
        return structure_texts(FILES, atoms)

    def prepare(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        settings: Mapping[str, Any],
    ) -> RunSpec:
        write_texts(workdir, self.input_texts(atoms, params, settings))
        return RunSpec()

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        from ase.calculators.emt import EMT

        report("Initializing", 0.0)
        atoms = starting_atoms(FILES, workdir, report)
        atoms.calc = EMT()
        run_calculation(atoms, params, workdir, FILES, report)

    def compute(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        report: ProgressFn,
        session: Any,
    ) -> Result:
        """Run on ``atoms`` in memory (a packed task's fast path); see ``Engine`` in base."""
        from ase.calculators.emt import EMT

        atoms.calc = EMT()  # cheap to make; a fresh one keeps no state between structures
        return compute_in_memory(self.name, atoms, params, workdir, FILES, report)

    def prepare_attempt(self, workdir: Path, attempt: int) -> None:
        """A retry keeps the earlier attempt's files and continues an interrupted relaxation."""
        prepare_attempt(FILES, workdir, attempt)

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        return parse_output(self.name, workdir, params, FILES)
