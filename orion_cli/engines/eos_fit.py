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
from orion_cli.jobdir import RESULT_FILE, read_result

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
        fit = fit_eos(volumes, energies, params.get("eos", "birchmurnaghan"), workdir / PLOT_FILE)
        (workdir / OUTPUT_FILE).write_text(
            json.dumps(
                {
                    **fit,
                    "volumes_a3": volumes,
                    "energies_ev": energies,
                    "jobs_used": used,
                    "jobs_missing": missing,
                    "eos": params.get("eos", "birchmurnaghan"),
                    "answer": f"V0 = {fit['v0_a3']:.4f} Å³, E0 = {fit['e0_ev']:.6f} eV, "
                    f"B = {fit['b_gpa']:.2f} GPa ({len(used)} points)",
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
            data = read_result(workdir.parent / str(job_id) / RESULT_FILE)
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
    """Fit E(V) with ASE; return V0 (Å³), E0 (eV), B (GPa); draw the fit to ``plot_path``."""
    from ase.eos import EquationOfState

    eos = EquationOfState(volumes, energies, eos=kind)
    v0, e0, b = eos.fit()
    if not all(math.isfinite(x) for x in (v0, e0, b)):
        raise RuntimeError("the fit did not converge (are the points around the minimum?)")
    if plot_path is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = eos.plot(show=False)
        ax.figure.savefig(plot_path, dpi=120)
        plt.close(ax.figure)
    return {"v0_a3": float(v0), "e0_ev": float(e0), "b_gpa": float(b) * EV_PER_A3_IN_GPA}
