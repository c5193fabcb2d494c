"""LAMMPS (lmp) in metal units: Lennard-Jones and EAM potentials; energy, minimize, md.

The structure goes in as a data file written by ASE (types = elements sorted
alphabetically); the final configuration comes back from a dump with an ``element``
column, rotated back into the input's frame.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines import _command
from orion_cli.engines.base import EngineParam, ProgressFn, Result, RunSpec, check_known_params
from orion_cli.engines.lammps_input import (
    BUILTIN_PAIR_STYLES,
    DATA_NAME,
    DUMP_NAME,
    RESTART_NAME,
    STOP_FILE,
    THERMO_COLUMNS,
    check_custom_inputs,
    input_script,
    pair_commands,
    per_species,
)
from orion_cli.engines.lammps_restart import prepare_attempt, stopped_step
from orion_cli.errors import UsageError
from orion_cli.jobdir import attempt_parts

if TYPE_CHECKING:
    from ase import Atoms

SCRIPT_NAME = "in.lammps"
INPUT_STRUCTURE_NAME = "input.extxyz"
LOG_NAME = "log.lammps"
STDOUT_NAME = "lammps.out"
_CONVERGED_CRITERIA = ("energy tolerance", "force tolerance")


class LammpsEngine:
    """Run lmp on an input script written by orion."""

    name: ClassVar[str] = "lammps"
    summary: ClassVar[str] = "LAMMPS lmp — lj/cut, eam, eam/alloy potentials in metal units"
    parameters: ClassVar[tuple[EngineParam, ...]] = (
        EngineParam("task", "energy", "what to run", choices=("energy", "minimize", "md")),
        EngineParam(
            "pair_style",
            "lj/cut",
            "lj/cut, eam, eam/alloy (orion writes pair_coeff), or any LAMMPS pair style with "
            "its arguments ('sw', 'tersoff', 'morse 8.0'): then give pair_coeff",
        ),
        EngineParam(
            "pair_coeff",
            None,
            "other pair styles: pair_coeff line(s), '{elements}' = elements in type order "
            "(types are the elements sorted alphabetically), e.g. '* * Si.sw {elements}'",
        ),
        EngineParam(
            "potential_files",
            None,
            "files pair_coeff reads (names in potentials_dir or absolute paths); copied into "
            "the job directory, so pair_coeff names them by base name",
        ),
        EngineParam("before_run", None, "extra LAMMPS commands before the task (list)"),
        EngineParam("after_run", None, "extra LAMMPS commands after the task (list)"),
        EngineParam(
            "dump_every",
            0,
            "md / minimize: write the trajectory to traj.dump every N steps (0 = no)",
        ),
        EngineParam(
            "potential_file",
            None,
            "eam / eam/alloy file in potentials_dir (eam with "
            "several elements: 'Cu=Cu_u3.eam,Ni=Ni_u3.eam')",
        ),
        EngineParam(
            "epsilon_ev",
            None,
            "lj/cut well depth: one value, or 'Ar=0.0104,Ar-Kr=…' "
            "per element / pair (Lorentz-Berthelot mixing)",
            unit="eV",
        ),
        EngineParam(
            "sigma_a", None, "lj/cut zero-crossing distance, same forms as epsilon_ev", unit="Å"
        ),
        EngineParam("cutoff_a", None, "lj/cut cutoff (default 2.5 × largest sigma_a)", unit="Å"),
        EngineParam(
            "relax_box",
            "none",
            "minimize: also relax the cell",
            choices=("none", "iso", "aniso", "tri"),
        ),
        EngineParam("pressure_bar", 0.0, "minimize: target pressure for relax_box", unit="bar"),
        EngineParam("force_tol_ev_per_a", 1e-6, "minimize: force stopping tolerance", unit="eV/Å"),
        EngineParam("energy_tol", 0.0, "minimize: relative energy stopping tolerance"),
        EngineParam("max_iterations", 1000, "minimize: maximum iterations"),
        EngineParam("steps", 1000, "md: number of time steps"),
        EngineParam("timestep_fs", 1.0, "md: time step", unit="fs"),
        EngineParam(
            "temperature_k", 300.0, "md: initial velocities and thermostat target", unit="K"
        ),
        EngineParam(
            "thermostat", "nve", "md: ensemble", choices=("nve", "langevin", "nose-hoover")
        ),
        EngineParam("thermostat_damping_fs", 100.0, "md: thermostat relaxation time", unit="fs"),
        EngineParam("seed", 12345, "md: random seed for velocities and Langevin"),
        EngineParam("thermo_every", 10, "write a thermo line every N steps"),
    )

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``params`` completed with defaults; raise UsageError naming a bad one."""
        merged = check_known_params(self.name, self.parameters, params)
        _command.require_positive(
            self.name,
            merged,
            "cutoff_a",
            "force_tol_ev_per_a",
            "max_iterations",
            "steps",
            "timestep_fs",
            "thermostat_damping_fs",
            "seed",
            "thermo_every",
        )
        check_custom_inputs(merged)
        if merged["pair_style"] == "lj/cut":
            for name in ("epsilon_ev", "sigma_a"):
                if merged[name] is None:
                    raise UsageError(
                        f"engine 'lammps': lj/cut needs {name}",
                        f"add e.g. --param {name}=... (per element: 'Ar=...')",
                    )
                per_species(name, merged[name])
        elif merged["pair_style"] in BUILTIN_PAIR_STYLES and merged["potential_file"] is None:
            raise UsageError(
                f"engine 'lammps': pair_style {merged['pair_style']} needs potential_file",
                "add e.g. --param potential_file=Cu_u3.eam (a file in potentials_dir)",
            )
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        """Tell whether lmp can run here, for ``orion engines``."""
        return _command.binary_status(self.name, settings, "lmp")

    def prepare(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        settings: Mapping[str, Any],
    ) -> RunSpec:
        """Write the data file, potential copy and ``in.lammps``; return the lmp command."""
        import ase.io

        params = self.check(params, settings)
        if atoms.cell.rank < 3:
            raise UsageError(
                "lammps needs a structure with a full 3-D cell",
                "give the structure a cell (vacuum box) before submitting",
            )
        elements = sorted(set(atoms.get_chemical_symbols()))
        workdir.mkdir(parents=True, exist_ok=True)
        pair_lines = pair_commands(params, elements, workdir, settings)
        ase.io.write(workdir / INPUT_STRUCTURE_NAME, atoms, format="extxyz")
        has_velocities = bool(atoms.get_velocities().any())
        ase.io.write(
            workdir / DATA_NAME,
            atoms,
            format="lammps-data",
            specorder=elements,
            units="metal",
            masses=True,
            velocities=has_velocities,
            force_skew=params["relax_box"] == "tri",
        )
        script = input_script(params, elements, pair_lines, atoms.pbc, has_velocities)
        (workdir / SCRIPT_NAME).write_text(script)
        return RunSpec(
            command=(
                *_command.command_words(settings, "lmp"),
                "-in",
                SCRIPT_NAME,
                "-log",
                LOG_NAME,
            ),
            stdout_name=STDOUT_NAME,
            mpi=True,
        )

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        """Refuse: lmp runs as an external command."""
        raise NotImplementedError("lammps runs lmp as a command; see prepare()")

    def request_stop(self, workdir: Path) -> None:
        """Ask a running md / minimize to stop: it looks for ``orion.STOP`` every 10 steps."""
        (workdir / STOP_FILE).touch()

    def prepare_attempt(self, workdir: Path, attempt: int) -> None:
        """Keep the previous attempt's files; continue from its restart file if it left one."""

        prepare_attempt(workdir, attempt, dump_files(workdir))

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        """Read ``log.lammps`` and the final dump; a LAMMPS ERROR gives ``Result(error=...)``."""

        log = _command.read_text(workdir / LOG_NAME)
        stdout = _command.read_text(workdir / STDOUT_NAME) or ""
        step = stopped_step(log or "")
        if step is not None and "Total wall time" not in (log or ""):
            return Result(
                error=f"lmp stopped at orion's request (soft time limit) at step "
                f"{step}; a retry continues from {RESTART_NAME}"
            )
        error = lammps_error(log, stdout)
        if error:
            return Result(error=error)
        assert log is not None
        result = result_from_outputs(workdir, log, params)
        rows = result.extras.get("thermo", {}).get("rows") or [[None]]
        if re.search(
            rf"^read_restart {RESTART_NAME}", _command.read_text(workdir / SCRIPT_NAME) or "", re.M
        ):
            result.extras["continued_from"] = f"{RESTART_NAME}@step {int(rows[0][0])}"
        return result


def lammps_error(log: str | None, stdout: str) -> str | None:
    """Return LAMMPS's own ERROR line, or a message when the run did not finish."""
    for text in (log or "", stdout):
        match = re.search(r"^(ERROR.*)$", text, re.M)
        if match:
            return f"lmp: {match.group(1).strip()}"
    if log is None:
        return f"lmp wrote no {LOG_NAME}; last output line: {_command.last_line(stdout)}"
    if "Total wall time" not in log:
        return (
            f"lmp did not finish (no 'Total wall time' in {LOG_NAME}); last line: "
            f"{_command.last_line(log)}"
        )
    return None


def dump_files(workdir: Path) -> list[str]:
    """Name the files the script's ``dump`` commands wrote (orion's trajectory and the user's),
    each with the parts earlier attempts of a continued run left (``traj-attempt-1.dump``)."""
    script = _command.read_text(workdir / SCRIPT_NAME) or ""
    names = re.findall(r"^\s*dump\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)", script, re.M)
    present = sorted(p.name for p in workdir.iterdir() if p.is_file())
    return [part for name in dict.fromkeys(names) for part in attempt_parts(present, name)]


def thermo_rows(log: str) -> list[list[float]]:
    """Return every thermo row (all runs) as floats, columns as in THERMO_COLUMNS."""
    rows: list[list[float]] = []
    in_block = False
    for line in log.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            in_block = True
        elif line.startswith("Loop time"):
            in_block = False
        elif in_block and len(words) == len(THERMO_COLUMNS):
            try:
                rows.append([float(w) for w in words])
            except ValueError:
                continue
    return rows


def result_from_outputs(workdir: Path, log: str, params: Mapping[str, Any]) -> Result:
    """Build the Result from the thermo table and the final dump."""
    import ase.io
    import ase.units
    import numpy as np
    from ase import Atoms
    from ase.calculators.lammps import Prism
    from ase.io.lammpsrun import read_lammps_dump_text

    rows = thermo_rows(log)
    if not rows:
        return Result(error=f"no thermo output in {LOG_NAME}")
    last = dict(zip(THERMO_COLUMNS, rows[-1], strict=True))
    initial = ase.io.read(workdir / INPUT_STRUCTURE_NAME, format="extxyz")
    assert isinstance(initial, Atoms)
    prism = Prism(np.asarray(initial.cell))
    elements = sorted(set(initial.get_chemical_symbols()))
    with open(workdir / DUMP_NAME) as dump:
        final = read_lammps_dump_text(dump, prismobj=prism, specorder=elements, units="metal")
    final.arrays.pop("type", None)  # LAMMPS type numbers; the species column says it all
    pressure_bar = np.array(
        [
            [last["pxx"], last["pxy"], last["pxz"]],
            [last["pxy"], last["pyy"], last["pyz"]],
            [last["pxz"], last["pyz"], last["pzz"]],
        ]
    )
    stress = -prism.tensor2_to_ase(pressure_bar) * ase.units.bar
    criterion = re.findall(r"Stopping criterion = (.+)", log)
    converged: bool | None = (criterion[-1].strip() in _CONVERGED_CRITERIA) if criterion else True
    if params.get("task") == "md":
        converged = None  # a trajectory, not a search for a minimum
    version = re.search(r"^LAMMPS \((.+)\)", log, re.M)
    warnings = sorted(set(re.findall(r"^WARNING: (.+)$", log, re.M)))
    return Result(
        energy_ev=last["pe"],
        forces_ev_per_a=_command.to_floats(final.get_forces()),
        stress_ev_per_a3=_command.to_floats(stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]),
        final_structure=_command.atoms_to_extxyz(final),
        converged=converged,
        extras={
            "kinetic_energy_ev": last["ke"],
            "total_energy_ev": last["etotal"],
            "temperature_k": last["temp"],
            "pressure_bar": last["press"],
            "volume_a3": last["vol"],
            "steps": int(last["step"]),
            "stopping_criterion": criterion[-1].strip() if criterion else None,
            "thermo": {"columns": list(THERMO_COLUMNS), "rows": rows},
            "lammps_version": version.group(1) if version else None,
            "trajectory_files": dump_files(workdir),
            "warnings": warnings[:10],
        },
    )
