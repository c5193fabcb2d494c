"""The analysis step of ``orion converge``: runs on the node after the sweep's jobs.

It reads the jobs' ``result.json`` from their job directories (siblings of its own, named by
orion id: never the database), takes the energy per atom of each value and compares it with
the most accurate one, the last value. The converged value is the first from which every
value, up to the last, is within the tolerance of it. It writes ``converge-output.json`` and
``convergence.png``. A job that failed is left out (and named); the last one is needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines.base import EngineParam, ProgressFn, Result, RunSpec, check_known_params
from orion_cli.errors import UsageError
from orion_cli.ingest import check_result
from orion_cli.taskstream import read_outcome

if TYPE_CHECKING:
    from ase import Atoms

OUTPUT_FILE = "converge-output.json"
PLOT_FILE = "convergence.png"


class ConvergeEngine:
    name: ClassVar[str] = "converge"
    summary: ClassVar[str] = (
        "convergence of other jobs' energies per atom (orion converge makes it)"
    )
    parameters: ClassVar[tuple[EngineParam, ...]] = (
        EngineParam("jobs", None, "orion ids of the sweep's jobs, in the order of values"),
        EngineParam("parameter", None, "the swept engine parameter"),
        EngineParam("values", None, "its values, least to most accurate"),
        EngineParam("n_atoms", None, "atoms in the structure"),
        EngineParam("tol_mev_per_atom", 1.0, "converged when within this of the last", "meV/atom"),
    )

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        merged = check_known_params(self.name, self.parameters, params)
        jobs, values, n_atoms = merged["jobs"], merged["values"], merged["n_atoms"]
        if (
            not isinstance(jobs, list)
            or len(jobs) < 2
            or not all(isinstance(j, int) and not isinstance(j, bool) and j > 0 for j in jobs)
            or not isinstance(values, list)
            or len(values) != len(jobs)
            or not isinstance(merged["parameter"], str)
            or not isinstance(n_atoms, int)
            or n_atoms < 1
            or not merged["tol_mev_per_atom"] > 0
        ):
            raise UsageError(
                "engine 'converge': needs jobs, one value per job, parameter, n_atoms and a "
                "positive tol_mev_per_atom",
                "let `orion converge` build the analysis step",
            )
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        return True, "built in"

    def prepare(
        self, atoms: Atoms, params: Mapping[str, Any], workdir: Path, settings: Mapping[str, Any]
    ) -> RunSpec:
        return RunSpec()

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        report("Reading the sweep", 10.0)
        energies = read_energies(workdir, params["jobs"])
        if energies[-1] is None:
            raise RuntimeError(
                f"the most accurate value ({params['parameter']} = {params['values'][-1]}, "
                f"job {params['jobs'][-1]}) has no energy: nothing to compare with"
            )
        per_atom = [None if e is None else e / params["n_atoms"] for e in energies]
        data = converged_value(
            params["parameter"], params["values"], per_atom, params["tol_mev_per_atom"]
        )
        data.update(
            jobs=params["jobs"],
            energies_ev=energies,
            jobs_missing=[j for j, e in zip(params["jobs"], energies, strict=True) if e is None],
        )
        report("Plotting", 70.0)
        plot(data, workdir / PLOT_FILE)
        (workdir / OUTPUT_FILE).write_text(json.dumps(data))

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        path = workdir / OUTPUT_FILE
        if not path.is_file():
            return Result(error=f"{OUTPUT_FILE} was not written")
        data = json.loads(path.read_text())
        index = data["converged_index"]
        energy = None if index is None else data["energies_ev"][index]
        return Result(energy_ev=energy, converged=index is not None, extras=data)


def read_energies(workdir: Path, jobs: list[int]) -> list[float | None]:
    """Each job's energy (eV) from its result.json, checked as untrusted; None if it has none."""

    energies: list[float | None] = []
    for job_id in jobs:
        try:
            data = read_outcome(workdir.parent / str(job_id))
            checked = check_result(data) if data is not None else None
        except Exception:  # noqa: BLE001 - a job without a usable result is left out
            checked = None
        ok = checked is not None and not checked.error and checked.energy_ev is not None
        energies.append(float(checked.energy_ev) if ok else None)  # type: ignore[union-attr,arg-type]
    return energies


def converged_value(
    parameter: str, values: list[Any], per_atom_ev: list[float | None], tol_mev_per_atom: float
) -> dict[str, Any]:
    """The first value from which every energy per atom is within the tolerance of the last.

    >>> d = converged_value("ecutwfc_ry", [20, 30, 40], [-1.0, -1.0105, -1.0110], 1.0)
    >>> d["converged_value"], [round(x, 3) for x in d["differences_mev_per_atom"]]
    (30, [11.0, 0.5, 0.0])
    >>> converged_value("ecutwfc_ry", [20, 30], [-1.0, -1.1], 1.0)["converged_value"] is None
    True
    """
    reference = per_atom_ev[-1]
    assert reference is not None
    differences = [None if e is None else 1000 * (e - reference) for e in per_atom_ev]
    index: int | None = None
    for n in range(len(values) - 2, -1, -1):  # walk down from the last while within tol
        if differences[n] is None:
            continue
        if abs(differences[n]) > tol_mev_per_atom:  # type: ignore[arg-type]
            break
        index = n
    value = values[index] if index is not None else None
    shown = _shown(value)
    answer = (
        f"{parameter} converged at {shown}: within {tol_mev_per_atom:g} meV/atom of "
        f"{_shown(values[-1])} from there on"
        if index is not None
        else f"{parameter} not converged: no value before {_shown(values[-1])} is within "
        f"{tol_mev_per_atom:g} meV/atom of it; extend the range: --sweep "
        f"{next_sweep(parameter, values)}"
    )
    return {
        "parameter": parameter,
        "values": values,
        "energies_per_atom_ev": per_atom_ev,
        "differences_mev_per_atom": differences,
        "tol_mev_per_atom": tol_mev_per_atom,
        "converged_index": index,
        "converged_value": value,
        "next_sweep": None if index is not None else next_sweep(parameter, values),
        "answer": answer,
    }


def next_sweep(parameter: str, values: list[Any]) -> str:
    """The range to try after an unconverged sweep: as many values again, beyond the last,
    with the last step (meshes: the last step per direction, three more meshes).

    >>> next_sweep("ecutwfc_ry", [15, 20, 25, 30, 35, 40])
    'ecutwfc_ry=45:70:5'
    >>> next_sweep("kspacing_per_a", [0.4, 0.3])
    'kspacing_per_a=0.2:0.1:-0.1'
    >>> next_sweep("kpoints", [[2, 2, 2], [4, 4, 4], [6, 6, 6]])
    'kpoints=8x8x8,10x10x10,12x12x12'
    """
    last, before = values[-1], values[-2]
    if isinstance(last, list):
        step = [max(a - b, 1) for a, b in zip(last, before, strict=True)]
        meshes = [[a + n * d for a, d in zip(last, step, strict=True)] for n in (1, 2, 3)]
        return f"{parameter}=" + ",".join(_shown(m) for m in meshes)
    step = last - before
    count = len(values)
    if isinstance(step, float) and step < 0:  # a spacing: stop before it reaches zero
        count = min(count, max(1, int(round(last / -step)) - 1))
    start, stop = last + step, last + count * step
    if isinstance(step, float) or isinstance(last, float):
        start, stop, step = (round(x, 10) for x in (start, stop, step))
    return f"{parameter}={start}:{stop}:{step}"


def _shown(value: Any) -> str:
    """``[4, 4, 4]`` as ``4x4x4``; other values as they are."""
    return "x".join(map(str, value)) if isinstance(value, list) else str(value)


def plot(data: dict[str, Any], path: Path) -> None:
    """|E - E_last| per atom against the value, log scale, with the tolerance line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [_shown(v) for v in data["values"]]
    points = [
        (n, max(abs(d), 1e-6))
        for n, d in enumerate(data["differences_mev_per_atom"][:-1])
        if d is not None
    ]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy([n for n, _ in points], [d for _, d in points], "o-")
    ax.axhline(data["tol_mev_per_atom"], color="grey", ls="--", label="tolerance")
    if data["converged_index"] is not None:
        ax.axvline(data["converged_index"], color="green", ls=":", label="converged")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(data["parameter"])
    ax.set_ylabel(f"|E - E({labels[-1]})| (meV/atom)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
