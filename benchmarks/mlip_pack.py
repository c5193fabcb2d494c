"""CHGNet single points packed by orion vs a plain loop with one model load.

    .venv/bin/python benchmarks/mlip_pack.py --jobs 100 --pack 50 --scheduler slurm

Submits ``--jobs`` rattled 16-atom silicon cells with ``--engine chgnet --pack N``, waits
for them (``orion poll``), then runs the same single points by hand: one ``CHGNet.load``,
a loop of ``get_potential_energy/forces/stress`` with the thread count the jobs used.
Prints the model loads per task, the largest energy difference and a markdown row: the
in-task rate (calculations per second between a task's first and last finished
calculation, so the model load and Python's start are left out) against the loop's.
Needs the ml extra; everything happens in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any


def make_structures(path: Path, count: int) -> list[Any]:
    """``count`` rattled, slightly strained 16-atom Si cells, written as one extxyz file
    and read back (float32 models: a digit less in a position can change the last bit)."""
    from ase.build import bulk
    from ase.io import read, write

    frames = []
    for n in range(count):
        atoms = bulk("Si", "diamond", 5.43 * (0.98 + 0.0004 * n), cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=n)
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return list(read(path, index=":", format="extxyz"))  # as orion reads them: same digits


def plain_loop(frames: list[Any], threads: int) -> tuple[list[float], float, float]:
    """Energies by hand; the seconds of the model load and of the loop."""
    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    calc = CHGNetCalculator(
        model=CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False), use_device="cpu"
    )
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    energies = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        energies.append(float(atoms.get_potential_energy()))
        atoms.get_forces()
        atoms.get_stress()
    return energies, load_s, time.perf_counter() - started


def task_rates(jobs: list[dict[str, Any]]) -> dict[str, float]:
    """Calculations per second inside each packed task (first to last end): each job's
    ``finished_at`` is the time its ``finished`` line was written on the node."""
    finished: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        end = datetime.fromisoformat(job["finished_at"]).timestamp()
        finished[str(job["scheduler_job_id"])].append(end)
    return {
        task: (len(stamps) - 1) / (max(stamps) - min(stamps))
        for task, stamps in finished.items()
        if len(stamps) > 1
    }


def orion(*args: str) -> str:
    """Run an orion command in this process (the environment names the home)."""
    from typer.testing import CliRunner

    from orion_cli.cli import app

    result = CliRunner().invoke(app, list(args))
    if result.exit_code != 0:
        raise SystemExit(f"orion {' '.join(args)} failed: {result.output}")
    return result.stdout


def run_packed(structures: Path, pack: int, timeout_s: float) -> list[dict[str, Any]]:
    """Submit the structures packed, poll until all ended; every job as `orion show`."""
    orion("submit", str(structures), "-e", "chgnet", "--pack", str(pack), "--tag", "bench")
    ids = [row["id"] for row in json.loads(orion("results", "--tag", "bench", "-f", "json"))]
    deadline = time.monotonic() + timeout_s
    while True:
        orion("poll")
        jobs = [json.loads(orion("show", str(i), "--json")) for i in ids]
        if all(j["status"] in ("completed", "failed", "cancelled") for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the jobs")
        time.sleep(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--pack", type=int, default=50)
    parser.add_argument("--scheduler", default="slurm")
    parser.add_argument("--timeout-s", type=float, default=1200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orion-mlip-bench-") as tmp:
        os.environ.update(
            ORION_HOME=f"{tmp}/home",
            ORION_SCHEDULER=args.scheduler,
            ORION_MIN_QUERY_INTERVAL_S="0",
        )
        frames = make_structures(Path(tmp) / "si16.extxyz", args.jobs)
        jobs = run_packed(Path(tmp) / "si16.extxyz", args.pack, args.timeout_s)
        failed = [j["id"] for j in jobs if j["status"] != "completed"]
        if failed:
            raise SystemExit(f"jobs {failed} did not complete")
        records = [j["result"]["extras"]["model"] for j in jobs]
        threads = records[0]["torch_threads"]
        energies, load_s, loop_s = plain_loop(frames, threads)
        worst = max(abs(j["result"]["energy_ev"] - e) for j, e in zip(jobs, energies, strict=True))
        rates = task_rates(jobs)
        loop_rate = len(frames) / loop_s
        print(f"loads per task: {sorted({r['model_loads_in_process'] for r in records})}")
        print(f"largest |E(orion) - E(by hand)|: {worst:.2e} eV; torch threads {threads}")
        for task, rate in sorted(rates.items()):
            print(
                f"| {args.jobs} CHGNet single points (Si16), task {task} of --pack {args.pack}"
                f" vs plain loop | {rate:.2f}/s | {loop_rate:.2f}/s | {loop_rate / rate:.2f}× |"
                f" ≤ 1.3× | {'yes' if loop_rate / rate <= 1.3 else '**no**'} |"
            )
        print(f"model load by hand: {load_s:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
