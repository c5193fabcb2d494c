"""The equation-of-state fit step of ``orion eos``: runs on the node after the points.

It reads the points' ``result.json`` from their job directories (siblings of its own, named
by orion id: never the database; a point that started from a relaxed parent, ``--relax-first``,
gives its volume from the structure it ran with), fits E(V) with ASE's ``EquationOfState``
(Birch–Murnaghan by default) and writes ``eos-output.json`` and ``eos.png``. Points that
failed are left out; at least :data:`MIN_POINTS` energies are needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines.base import EngineParam, ProgressFn, Result, RunSpec, check_known_params
from orion_cli.errors import UsageError
from orion_cli.handoff import HANDOFF_FILE
from orion_cli.ingest import check_result
from orion_cli.taskstream import read_outcome

if TYPE_CHECKING:
    from ase import Atoms

OUTPUT_FILE = "eos-output.json"
PLOT_FILE = "eos.png"
MIN_POINTS = 5
EOS_KINDS = (
    "birchmurnaghan",
    "murnaghan",
    "birch",
    "vinet",
    "pouriertarantola",
    "antonschmidt",
    "sj",
    "taylor",
    "p3",
)
EV_PER_A3_IN_GPA = 160.21766208


class EosFitEngine:
    name: ClassVar[str] = "eos"
    summary: ClassVar[str] = "equation-of-state fit of other jobs' energies (orion eos makes it)"
    parameters: ClassVar[tuple[EngineParam, ...]] = (
        EngineParam("jobs", None, "orion ids of the points, in order"),
        EngineParam("volumes_a3", None, "cell volume of each point", "Å³"),
        EngineParam("eos", "birchmurnaghan", "the E(V) form (ase.eos)", choices=EOS_KINDS),
        EngineParam("n_atoms", None, "atoms in the cell (for V0 per atom)"),
        EngineParam("lattice", "", "cubic Bravais lattice of the cell (CUB, FCC, BCC) or ''"),
        EngineParam("a_per_cbrt_volume", None, "conventional a / V^(1/3) of a cubic cell"),
    )

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        merged = check_known_params(self.name, self.parameters, params)
        jobs, volumes = merged["jobs"], merged["volumes_a3"]
        if not isinstance(jobs, list) or not all(
            isinstance(j, int) and not isinstance(j, bool) and j > 0 for j in jobs
        ):
            raise UsageError(
                "engine 'eos': jobs must be a list of orion job ids",
                "let `orion eos` build the fit step",
            )
        if (
            not isinstance(volumes, list)
            or len(volumes) != len(jobs)
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in volumes
            )
        ):
            raise UsageError(
                "engine 'eos': volumes_a3 must give one positive volume per job",
                "let `orion eos` build the fit step",
            )
        if len(jobs) < MIN_POINTS:
            raise UsageError(
                f"engine 'eos': {len(jobs)} points; a fit needs {MIN_POINTS}", "use --points 7"
            )
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        return True, "built in (ase.eos)"

    def prepare(
        self, atoms: Atoms, params: Mapping[str, Any], workdir: Path, settings: Mapping[str, Any]
    ) -> RunSpec:
        return RunSpec()

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        report("Reading points", 10.0)
        volumes, energies, used, missing = read_points(workdir, params)
        if len(energies) < MIN_POINTS:
            raise RuntimeError(
                f"only {len(energies)} of {len(params['jobs'])} points have an "
                f"energy (failed: {', '.join(map(str, missing))}); a fit needs "
                f"{MIN_POINTS}"
            )
        report("Fitting", 50.0)
        kind = params.get("eos", "birchmurnaghan")
        fit: dict[str, Any] = fit_eos(volumes, energies, kind, workdir / PLOT_FILE)
        fit.update(cell_answers(fit["v0_a3"], params))
        (workdir / OUTPUT_FILE).write_text(
            json.dumps(
                {
                    **fit,
                    "volumes_a3": volumes,
                    "energies_ev": energies,
                    "jobs_used": used,
                    "jobs_missing": missing,
                    "eos": kind,
                    "answer": answer_text(fit, len(used)),
                }
            )
        )

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        path = workdir / OUTPUT_FILE
        if not path.is_file():
            return Result(error=f"{OUTPUT_FILE} was not written")
        data = json.loads(path.read_text())
        return Result(energy_ev=data["e0_ev"], converged=True, extras=data)


def read_points(
    workdir: Path, params: Mapping[str, Any]
) -> tuple[list[float], list[float], list[int], list[int]]:
    """The points' (volume, energy) from their result.json files, checked as untrusted."""

    volumes, energies, used, missing = [], [], [], []
    for job_id, volume in zip(params["jobs"], params["volumes_a3"], strict=True):
        try:
            data = read_outcome(workdir.parent / str(job_id))
            checked = check_result(data) if data is not None else None
        except Exception:  # noqa: BLE001 - a point without a usable result is left out
            checked = None
        if checked is None or checked.error or checked.energy_ev is None:
            missing.append(job_id)
            continue
        volumes.append(_ran_volume(workdir.parent / str(job_id)) or float(volume))
        energies.append(float(checked.energy_ev))
        used.append(job_id)
    return volumes, energies, used, missing


def _ran_volume(point_dir: Path) -> float | None:
    """The volume a point started from its parent's structure ran with (``--relax-first``).

    Its cell is known only on the node: the relaxed cell times the point's lattice factor.
    """

    path = point_dir / HANDOFF_FILE
    if not path.is_file():
        return None
    from ase.io import read

    atoms = read(path, format="extxyz", index=-1)
    assert not isinstance(atoms, list)
    return float(atoms.get_volume())


def fit_eos(
    volumes: list[float], energies: list[float], kind: str, plot_path: Path | None
) -> dict[str, float]:
    """Fit E(V) with ASE; return V0 (Å³), E0 (eV), B0 (GPa), B′ and the RMS residual (meV).

    The fit is drawn to ``plot_path`` (labels kept inside the image).
    """
    import numpy as np
    from ase.eos import EquationOfState

    eos = EquationOfState(volumes, energies, eos=kind)
    v0, e0, b = eos.fit(warn=False)
    energy = _fitted_energy(eos)
    residuals = np.asarray(energies) - energy(np.asarray(volumes))
    b_prime = _b_prime(eos, energy, float(v0))
    if not all(math.isfinite(x) for x in (v0, e0, b, b_prime)):
        raise RuntimeError("the fit did not converge (are the points around the minimum?)")
    if plot_path is not None:
        plot_fit(eos, plot_path)
    return {
        "v0_a3": float(v0),
        "e0_ev": float(e0),
        "b_gpa": float(b) * EV_PER_A3_IN_GPA,
        "b_prime": float(b_prime),
        "rms_residual_mev": 1000 * float(np.sqrt(np.mean(residuals**2))),
    }


def _fitted_energy(eos: Any) -> Any:
    """The fitted E(V) as a function of volumes (ASE keeps it differently per form)."""
    if eos.eos_string == "sj":
        return lambda v: eos.fit0(v ** (-1 / 3))
    return lambda v: eos.func(v, *eos.eos_parameters)


def _b_prime(eos: Any, energy: Any, v0: float) -> float:
    """dB/dP at V0: the form's own parameter where it has one, else from the fitted curve.

    With B = V E'' and P = -E': B′ = -(E'' + V E''') / E'' (central differences).
    """
    if eos.eos_string not in ("sj", "p3"):
        return float(eos.eos_parameters[2])
    h = 1e-3 * v0
    e = [float(energy(v0 + k * h)) for k in (-2, -1, 0, 1, 2)]
    second = (e[3] - 2 * e[2] + e[1]) / h**2
    third = (e[4] - 2 * e[3] + 2 * e[1] - e[0]) / (2 * h**3)
    return -(second + v0 * third) / second


def cell_answers(v0_a3: float, params: Mapping[str, Any]) -> dict[str, Any]:
    """V0 per atom and, for a cubic cell, the conventional lattice constant at V0.

    >>> cell_answers(40.0, {"n_atoms": 2, "lattice": "FCC", "a_per_cbrt_volume": 4 ** (1 / 3)})
    {'v0_per_atom_a3': 20.0, 'lattice': 'FCC', 'a0_a': 5.428835233189813}
    >>> cell_answers(40.0, {})
    {}
    """
    found: dict[str, Any] = {}
    if params.get("n_atoms"):
        found["v0_per_atom_a3"] = v0_a3 / params["n_atoms"]
    if params.get("lattice") and params.get("a_per_cbrt_volume"):
        found["lattice"] = params["lattice"]
        found["a0_a"] = params["a_per_cbrt_volume"] * v0_a3 ** (1 / 3)
    return found


def cubic_lattice(atoms: Atoms) -> dict[str, Any]:
    """For a cubic cell (simple, face- or body-centred, in any setting): its Bravais lattice
    and conventional a / V^(1/3), which turn a fitted V0 into a0; else nothing."""
    try:
        lattice = atoms.cell.get_bravais_lattice(eps=1e-4)
    except (ValueError, RuntimeError):  # a cell ASE cannot classify: no lattice constant
        return {}
    if lattice.name not in ("CUB", "FCC", "BCC"):
        return {}
    return {
        "lattice": lattice.name,
        "a_per_cbrt_volume": float(lattice.a) / float(atoms.get_volume()) ** (1 / 3),
    }


def answer_text(fit: Mapping[str, Any], n_points: int) -> str:
    """The fit in one line, as ``orion eos --wait`` and ``orion results`` print it."""
    per_atom = f" ({fit['v0_per_atom_a3']:.4f} Å³/atom)" if "v0_per_atom_a3" in fit else ""
    a0 = f", a0 = {fit['a0_a']:.4f} Å ({fit['lattice'].lower()})" if "a0_a" in fit else ""
    return (
        f"V0 = {fit['v0_a3']:.4f} Å³{per_atom}{a0}, E0 = {fit['e0_ev']:.6f} eV, "
        f"B0 = {fit['b_gpa']:.2f} GPa, B′ = {fit['b_prime']:.2f}, "
        f"RMS residual {fit['rms_residual_mev']:.3f} meV ({n_points} points)"
    )


def plot_fit(eos: Any, path: Path) -> None:
    """ASE's plot of the fit, laid out so that long tick labels (-277.94 eV) do not push the
    axis label off the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = eos.plot(show=False)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=120)
    plt.close(ax.figure)
