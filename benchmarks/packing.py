"""Packed against unpacked arrays, end to end on the real SLURM cluster, side by side in one run.

    .venv/bin/python benchmarks/packing.py --jobs 1000 --unpacked-jobs 1000

For N EMT single points of rattled 4-atom Cu cells, each row is the time from the start of
``orion submit`` to the moment every result is in the database, with ``orion poll`` run in
a loop as cron would at its minimum interval (``--poll-interval``, default orion's
``min_query_interval_s``), and the results per second that gives. References:

* ``python loop``  the same N calculations in one Python process (ASE's EMT): the physical
                   limit of this machine for this work;
* ``orion --pack auto``  (EMT's estimate, 1 s, and the default walltime: one task here);
* ``orion --pack P``     (``--pack-size``, default N/2: one task per core on a 2-core node);
* ``orion unpacked``     one array task per calculation (``--unpacked-jobs`` of them; at
                         about one task per second this one is slow: fewer give the rate).

Everything lives in a temporary directory (SQLite); the script cancels what it submitted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORION = str(REPO / ".venv" / "bin" / "orion")


def make_structures(path: Path, n: int) -> None:
    from ase.build import bulk
    from ase.io import write

    frames = []
    for seed in range(n):
        atoms = bulk("Cu", cubic=True)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    write(path, frames, format="extxyz")


def python_loop(path: Path) -> float:
    """Seconds for the plain loop: read every frame, EMT single point, energy and forces."""
    from ase.calculators.emt import EMT
    from ase.io import read

    start = time.perf_counter()
    for atoms in read(path, ":"):
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_forces()
    return time.perf_counter() - start


def orion_end_to_end(
    home: Path, structures: Path, poll_interval_s: float, timeout_s: float, *pack: str
) -> tuple[float, int, int]:
    """Seconds from submit to every result stored; the jobs completed; the array tasks."""
    env = {
        **os.environ,
        "ORION_HOME": str(home),
        "ORION_SCHEDULER": "slurm",
        "ORION_MIN_QUERY_INTERVAL_S": str(int(poll_interval_s)),
    }
    env.pop("ORION_DATABASE_URL", None)
    start = time.perf_counter()
    out = subprocess.run(
        [ORION, "submit", str(structures), "-e", "emt", "--json", *pack],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    submitted = json.loads(out)
    ids = submitted["ids"]
    tasks = len(set(submitted["scheduler_job_ids"]))
    deadline = start + timeout_s
    completed = 0
    while time.perf_counter() < deadline:
        subprocess.run([ORION, "poll"], env=env, capture_output=True, check=False)
        listed = subprocess.run(
            [
                ORION,
                "ls",
                "--json",
                "--limit",
                str(len(ids) + 10),
                "-s",
                "completed",
                "-s",
                "failed",
                "-s",
                "cancelled",
            ],
            env=env,
            capture_output=True,
            text=True,
        ).stdout
        rows = json.loads(listed or "[]")
        rows = rows.get("jobs", rows) if isinstance(rows, dict) else rows
        completed = sum(1 for row in rows if row["status"] == "completed")
        if len(rows) >= len(ids):
            return time.perf_counter() - start, completed, tasks
        time.sleep(poll_interval_s)
    subprocess.run([ORION, "cancel", *map(str, ids)], env=env, capture_output=True)
    return float("nan"), completed, tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument(
        "--unpacked-jobs",
        type=int,
        default=None,
        help="calculations for the unpacked row (default --jobs)",
    )
    parser.add_argument("--pack-size", type=int, default=None, help="default: jobs / 2")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=10.0,
        help="seconds between polls (orion's min_query_interval_s: 10)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    n, n_unpacked = args.jobs, args.unpacked_jobs or args.jobs
    pack_size = args.pack_size or -(-n // 2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="orion-pack-bench-") as tmp:
        base = Path(tmp)
        make_structures(base / "many.extxyz", n)
        make_structures(base / "unpacked.extxyz", n_unpacked)
        seconds = python_loop(base / "many.extxyz")
        rows.append(("python loop (one process)", n, 1, seconds, n))
        for label, structures, count, pack in (
            ("orion --pack auto", "many.extxyz", n, ("--pack", "auto")),
            (f"orion --pack {pack_size}", "many.extxyz", n, ("--pack", str(pack_size))),
            ("orion unpacked", "unpacked.extxyz", n_unpacked, ()),
        ):
            home = base / label.replace(" ", "_")
            seconds, done, tasks = orion_end_to_end(
                home, base / structures, args.poll_interval, args.timeout, *pack
            )
            rows.append((label, count, tasks, seconds, done))
            print(f"{label}: {seconds:.1f} s", file=sys.stderr)
    print(f"EMT single points, end to end (poll every {args.poll_interval:g} s)\n")
    print("| run | calculations | array tasks | seconds | completed | results/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, count, tasks, seconds, done in rows:
        print(f"| {label} | {count} | {tasks} | {seconds:.1f} | {done} | {done / seconds:.1f} |")


if __name__ == "__main__":
    main()
