"""In-process ASE calculations shared by the emt and ase engines: relax, cell relax, parse.

The engines' parameters ``relax``, ``relax_cell``, ``pressure_gpa``, ``fmax_ev_per_a`` and
``max_steps`` mean the same in both (:data:`RELAX_PARAMS`); BFGS moves the atoms, or atoms
and cell through ASE's ``FrechetCellFilter``, and writes every step to a trajectory.

A retry of an interrupted relaxation (stopped at the soft time limit, or killed) continues
from the last frame of the previous attempt's trajectory; each attempt keeps its own
trajectory, log and output (``<engine>-relax-attempt-1.traj``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orion_cli.engines.base import EngineParam, ProgressFn, Result
from orion_cli.errors import UsageError
from orion_cli.jobdir import JobFileError
from orion_cli.taskfile import bare_text
from orion_cli.taskstream import read_outcome

if TYPE_CHECKING:
    from ase import Atoms

RELAX_PARAMS = (
    EngineParam("relax", False, "relax atomic positions (BFGS) before reporting"),
    EngineParam(
        "relax_cell", False, "relax the cell too (ASE's FrechetCellFilter, BFGS); implies relax"
    ),
    EngineParam("pressure_gpa", 0.0, "relax_cell: target hydrostatic pressure", "GPa"),
    EngineParam("fmax_ev_per_a", 0.05, "force convergence criterion of the relaxation", "eV/Å"),
    EngineParam("max_steps", 200, "maximum number of relaxation steps"),
)


@dataclass(frozen=True)
class AseFiles:
    """The files of an in-process engine's job directory, named after the engine."""

    prefix: str

    @property
    def input(self) -> str:
        return f"{self.prefix}-input.extxyz"

    @property
    def output(self) -> str:
        return f"{self.prefix}-output.extxyz"

    @property
    def log(self) -> str:
        return f"{self.prefix}-relax.log"

    @property
    def trajectory(self) -> str:
        return f"{self.prefix}-relax.traj"

    @property
    def restart(self) -> str:
        """Where a retry continues from: the last frame the previous attempt wrote."""
        return f"{self.prefix}-restart.traj"  # ASE's binary format: positions in full


def attempt_name(name: str, attempt: int) -> str:
    """The name ``name`` keeps once attempt ``attempt`` is over.

    >>> attempt_name("emt-relax.traj", 1), attempt_name("ase-output.extxyz", 2)
    ('emt-relax-attempt-1.traj', 'ase-output-attempt-2.extxyz')
    """
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}-attempt-{attempt}{dot}{suffix}"


def check_relax_params(engine: str, merged: Mapping[str, Any]) -> None:
    """Raise UsageError naming a bad relaxation parameter."""
    for key in ("relax", "relax_cell"):
        if not isinstance(merged[key], bool):
            raise UsageError(
                f"{engine}: {key}={merged[key]!r} must be true or false",
                f"write --param {key}=true",
            )
    for key in ("fmax_ev_per_a", "max_steps"):
        value = merged[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not value > 0
            or value == float("inf")
        ):
            raise UsageError(f"{engine}: {key}={value!r} must be a positive number")
    pressure = merged["pressure_gpa"]
    if (
        isinstance(pressure, bool)
        or not isinstance(pressure, int | float)
        or pressure != pressure
        or abs(pressure) == float("inf")
    ):
        raise UsageError(f"{engine}: pressure_gpa={pressure!r} must be a number")
    if pressure and not merged["relax_cell"]:
        raise UsageError(
            f"{engine}: pressure_gpa needs relax_cell=true", "add --param relax_cell=true"
        )


def check_periodic(engine: str, atoms: Atoms, params: Mapping[str, Any]) -> None:
    """A cell relaxation needs a crystal."""
    if params.get("relax_cell") and not all(atoms.pbc):
        raise UsageError(
            f"{engine}: relax_cell needs a structure periodic in all three directions",
            "give a crystal (CIF, POSCAR) or drop relax_cell",
        )


def relax_target(atoms: Atoms, params: Mapping[str, Any]) -> Any:
    """What the optimizer moves: the atoms, or atoms and cell (``FrechetCellFilter``)."""
    if not params.get("relax_cell"):
        return atoms
    from ase.filters import FrechetCellFilter
    from ase.units import GPa

    return FrechetCellFilter(atoms, scalar_pressure=float(params.get("pressure_gpa", 0.0)) * GPa)


def structure_texts(files: AseFiles, atoms: Atoms) -> dict[str, bytes]:
    """The one input of an engine run by ASE: the structure as extended XYZ, as
    ``ase.io.write`` puts it in ``files.input`` (frozen and hashed from this text); bare
    atoms are written without importing ``ase.io`` (:func:`~orion_cli.taskfile.bare_text`)."""
    import io

    text = bare_text(atoms)
    if text is None:
        from ase.io import write

        buffer = io.StringIO()
        write(buffer, atoms, format="extxyz")
        text = buffer.getvalue()
    return {files.input: text.encode()}


def prepare_attempt(files: AseFiles, workdir: Path, attempt: int) -> None:
    """Before attempt ``attempt`` (> 1): keep the previous one's files, set up a restart.

    The previous attempt was interrupted unless it wrote a result of its own without
    reaching the soft limit (an engine error: this attempt then starts over from the
    input); an interrupted relaxation is continued from its trajectory's last frame.
    """

    if attempt <= 1:
        return
    previous = attempt - 1
    try:
        result = read_outcome(workdir, previous)
    except JobFileError:
        result = None
    ended_itself = (
        isinstance(result, dict)
        and result.get("attempt") == previous
        and not (result.get("extras") or {}).get("soft_limit_reached")
    )
    kept: Path | None = None
    for name in (files.trajectory, files.log, files.output):
        if (workdir / name).is_file():
            target = workdir / attempt_name(name, previous)
            (workdir / name).replace(target)
            kept = target if name == files.trajectory else kept
    if ended_itself:
        (workdir / files.restart).unlink(missing_ok=True)
        return
    frame = last_frame(kept) if kept is not None else None
    if kept is None or frame is None:
        return  # nothing new to continue from: an earlier restart file, else the input
    atoms, index = frame
    atoms.calc = None
    atoms.info["orion_continued_from"] = f"{kept.name}@{index}"
    scratch = workdir / f".{files.restart}.tmp"
    atoms.write(scratch, format="traj")
    scratch.replace(workdir / files.restart)


def last_frame(path: Path) -> tuple[Atoms, int] | None:
    """The last readable frame of an ASE trajectory with finite positions, and its index."""
    import numpy as np
    from ase.io.trajectory import Trajectory

    try:
        with Trajectory(str(path)) as trajectory:
            for index in range(len(trajectory) - 1, -1, -1):
                try:
                    atoms = trajectory[index]
                except Exception:  # noqa: BLE001, S112 - a frame cut short by the stop
                    continue
                if np.isfinite(atoms.positions).all() and np.isfinite(atoms.cell[:]).all():
                    return atoms, index
    except Exception:  # noqa: BLE001 - an unreadable trajectory: start over
        return None
    return None


def starting_atoms(files: AseFiles, workdir: Path, report: ProgressFn) -> Atoms:
    """The structure this attempt starts from: the restart frame if any, else the input."""
    from ase.io import read

    restart = workdir / files.restart
    if not restart.is_file():
        return cast("Atoms", read(workdir / files.input, format="extxyz"))
    atoms = cast("Atoms", read(restart, format="traj"))
    report(f"Continuing from {atoms.info.get('orion_continued_from', files.restart)}", 0.0)
    return atoms


def run_calculation(
    atoms: Atoms, params: Mapping[str, Any], workdir: Path, files: AseFiles, report: ProgressFn
) -> None:
    """Relax if asked (every step to the trajectory), compute energy/forces (stress where
    periodic), write the output file."""
    from ase.io import write

    compute_properties(atoms, params, workdir, files, report)
    write(workdir / files.output, atoms, format="extxyz")


def compute_properties(
    atoms: Atoms, params: Mapping[str, Any], workdir: Path, files: AseFiles, report: ProgressFn
) -> None:
    """Relax if asked (trajectory and log in ``workdir``), then energy, forces and stress
    (where periodic); the results stay on ``atoms.calc``, steps and convergence in
    ``atoms.info``."""
    from ase.calculators.calculator import PropertyNotImplementedError

    steps = 0
    converged = True
    if params["relax"] or params.get("relax_cell"):
        steps, converged = _relax(atoms, params, workdir, files, report)
    report("Analyzing", 95.0)
    atoms.get_potential_energy()
    done = atoms.calc.results  # what that calculation gave besides: not asked for again
    if "forces" not in done:  # (each ask compares the atoms with the calculated ones)
        atoms.get_forces()
    if all(atoms.pbc) and "stress" not in done:
        try:
            atoms.get_stress()
        except PropertyNotImplementedError:
            pass  # a calculator without stress: no stress in the result
    atoms.info["orion_relax_steps"] = steps
    atoms.info["orion_converged"] = converged


def _relax(
    atoms: Atoms, params: Mapping[str, Any], workdir: Path, files: AseFiles, report: ProgressFn
) -> tuple[int, bool]:
    """BFGS to ``fmax_ev_per_a``; every step to the trajectory; return (steps, converged)."""
    from ase.io.trajectory import Trajectory
    from ase.optimize import BFGS

    max_steps = int(params["max_steps"])
    optimizer = BFGS(relax_target(atoms, params), logfile=str(workdir / files.log))

    def progress() -> None:
        report("Relaxing", min(95.0, 100.0 * optimizer.nsteps / max_steps))

    optimizer.attach(progress, interval=5)
    with Trajectory(str(workdir / files.trajectory), "w", atoms) as trajectory:
        optimizer.attach(trajectory.write, interval=1)
        converged = bool(optimizer.run(fmax=float(params["fmax_ev_per_a"]), steps=max_steps))
    return optimizer.nsteps, converged


def compute_in_memory(
    engine: str,
    atoms: Atoms,
    params: Mapping[str, Any],
    workdir: Path,
    files: AseFiles,
    report: ProgressFn,
) -> Result:
    """Run on a structure already in memory and return its result; no file is read back.

    Only a relaxation writes into ``workdir`` (its trajectory and log); its final
    structure goes into the result as extended-XYZ text, as :func:`parse_output` gives it.
    """
    compute_properties(atoms, params, workdir, files, report)
    final = None
    if params.get("relax") or params.get("relax_cell"):
        import io

        from ase.io import write

        text = io.StringIO()
        write(text, atoms, format="extxyz")
        final = text.getvalue()
    return result_of(engine, atoms, params, final)


def parse_output(engine: str, workdir: Path, params: Mapping[str, Any], files: AseFiles) -> Result:
    """Read what :func:`run_calculation` wrote; an unconverged relaxation is an error."""
    from ase.io import read

    path = workdir / files.output
    if not path.exists():
        return Result(error=f"{engine}: {files.output} missing (the run did not finish)")
    atoms = cast("Atoms", read(path, format="extxyz"))
    relaxing = bool(params.get("relax") or params.get("relax_cell"))
    return result_of(engine, atoms, params, path.read_text() if relaxing else None)


def result_of(
    engine: str, atoms: Atoms, params: Mapping[str, Any], final_structure: str | None
) -> Result:
    """The result of a finished calculation on ``atoms`` (its calculator holds the values);
    an unconverged relaxation is an error."""
    calc = atoms.calc
    results = calc.results if calc else {}
    stress = results.get("stress")
    converged = bool(atoms.info.get("orion_converged", True))
    # computed on these very atoms just before (or read from a file): taken as they are,
    # not asked again (each ask compares the atoms with the calculator's copy)
    energy = results["energy"] if "energy" in results else atoms.get_potential_energy()
    forces = results["forces"] if "forces" in results else atoms.get_forces()
    result = Result(
        energy_ev=float(energy),
        forces_ev_per_a=forces.round(8).tolist(),
        stress_ev_per_a3=[float(x) for x in stress] if stress is not None else None,
        final_structure=final_structure,
        converged=converged,
        extras={
            "relax_steps": int(atoms.info.get("orion_relax_steps", 0)),
            "natoms": len(atoms),
            "formula": atoms.get_chemical_formula(),
            **(
                {
                    "volume_a3": float(atoms.get_volume()),
                    "cell_a": atoms.cell.array.round(10).tolist(),
                }
                if all(atoms.pbc)
                else {}
            ),
            **(
                {"continued_from": str(atoms.info["orion_continued_from"])}
                if "orion_continued_from" in atoms.info
                else {}
            ),
        },
    )
    if not converged:
        result.error = (
            f"{engine}: relaxation did not reach fmax {params['fmax_ev_per_a']} "
            f"eV/Å in {params['max_steps']} steps"
        )
    return result
