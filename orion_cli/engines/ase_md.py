"""Molecular dynamics with ASE's integrators, for in-process engines (the MLIP engines).

``-p task=md``: NVT with a Langevin thermostat (``ase.md.langevin``), or NPT with the
isotropic Martyna-Tobias-Klein barostat and Nosé-Hoover chains
(``ase.md.nose_hoover_chain.IsotropicMTKNPT``). Velocities start from a Maxwell-Boltzmann
distribution at ``temperature_k`` (seeded). Every ``traj_every`` steps go to
``<engine>-md.traj``; a progress event reports the step and the temperature about every
1 % of the run. An interrupted run starts over (its trajectory is kept as
``<engine>-md-attempt-N.traj``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.engines._ase_run import AseFiles, attempt_name
from orion_cli.engines.base import EngineParam, ProgressFn
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

MD_PARAMS = (
    EngineParam(
        "task", "energy", "energy: single point or relaxation; md", choices=("energy", "md")
    ),
    EngineParam(
        "ensemble", "nvt", "md: NVT (Langevin) or NPT (isotropic MTK)", choices=("nvt", "npt")
    ),
    EngineParam("steps", 1000, "md: number of time steps"),
    EngineParam("timestep_fs", 1.0, "md: time step", "fs"),
    EngineParam("temperature_k", 300.0, "md: initial velocities and thermostat target", "K"),
    EngineParam("thermostat_damping_fs", 100.0, "md: thermostat time constant", "fs"),
    EngineParam("barostat_damping_fs", 1000.0, "md npt: barostat time constant", "fs"),
    EngineParam("md_pressure_gpa", 0.0, "md npt: target pressure", "GPa"),
    EngineParam("traj_every", 10, "md: write every N-th step to the trajectory"),
    EngineParam("seed", 12345, "md: random seed of the velocities and the Langevin noise"),
)


def md_trajectory(files: AseFiles) -> str:
    return f"{files.prefix}-md.traj"


def check_md_params(engine: str, merged: Mapping[str, Any]) -> None:
    """Raise UsageError naming a bad MD parameter, or MD asked together with a relaxation."""
    if merged["task"] != "md":
        return
    if merged["relax"] or merged["relax_cell"]:
        raise UsageError(
            f"{engine}: task=md runs from the structure as given, not after a relaxation",
            "relax first, then submit the MD with --from <relaxation job id>",
        )
    for key in ("steps", "timestep_fs", "temperature_k", "thermostat_damping_fs", "traj_every"):
        value = merged[key]
        if not value > 0:
            raise UsageError(f"{engine}: {key}={value!r} must be a positive number")
    if merged["ensemble"] == "npt" and merged["barostat_damping_fs"] <= 0:
        raise UsageError(f"{engine}: barostat_damping_fs must be a positive number")


def check_md_structure(engine: str, atoms: Atoms, params: Mapping[str, Any]) -> None:
    if params.get("task") == "md" and params.get("ensemble") == "npt" and not all(atoms.pbc):
        raise UsageError(
            f"{engine}: NPT needs a structure periodic in all three directions",
            "give a crystal, or use ensemble=nvt",
        )


def keep_previous_md(files: AseFiles, workdir: Path, attempt: int) -> None:
    """Before a retry: keep the earlier attempt's MD trajectory under its own name."""
    path = workdir / md_trajectory(files)
    if attempt > 1 and path.is_file():
        path.replace(workdir / attempt_name(path.name, attempt - 1))


def run_md(
    atoms: Atoms, params: Mapping[str, Any], workdir: Path, files: AseFiles, report: ProgressFn
) -> None:
    """Run the MD in place on ``atoms`` (its calculator set); the trajectory as it goes."""
    import numpy as np
    from ase.io.trajectory import Trajectory
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    steps = int(params["steps"])
    temperature_k = float(params["temperature_k"])
    rng = np.random.default_rng(int(params["seed"]))
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_k, rng=rng)
    Stationary(atoms)
    dynamics = integrator(atoms, params, rng, str(workdir / f"{files.prefix}-md.log"))
    every = max(1, steps // 100)

    def progress() -> None:
        report(
            f"MD step {dynamics.nsteps}/{steps}, T = {atoms.get_temperature():.0f} K",
            min(95.0, 100.0 * dynamics.nsteps / steps),
        )

    dynamics.attach(progress, interval=every)
    with Trajectory(str(workdir / md_trajectory(files)), "w", atoms) as trajectory:
        dynamics.attach(trajectory.write, interval=int(params["traj_every"]))
        dynamics.run(steps)
    atoms.info["orion_md_steps"] = dynamics.nsteps
    atoms.info["orion_md_final_temperature_k"] = round(float(atoms.get_temperature()), 3)


def integrator(atoms: Atoms, params: Mapping[str, Any], rng: Any, logfile: str) -> Any:
    from ase import units

    timestep = float(params["timestep_fs"]) * units.fs
    temperature_k = float(params["temperature_k"])
    tdamp = float(params["thermostat_damping_fs"]) * units.fs
    if params["ensemble"] == "nvt":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms, timestep, temperature_K=temperature_k, friction=1.0 / tdamp, rng=rng,
            logfile=logfile,
        )  # fmt: skip
    from ase.md.nose_hoover_chain import IsotropicMTKNPT

    return IsotropicMTKNPT(
        atoms,
        timestep,
        temperature_K=temperature_k,
        pressure_au=float(params["md_pressure_gpa"]) * units.GPa,
        tdamp=tdamp,
        pdamp=float(params["barostat_damping_fs"]) * units.fs,
        logfile=logfile,
    )
