"""Packed arrays against a plain Python loop, end to end on the real SLURM cluster, in one run.

    .venv/bin/python benchmarks/packing.py --jobs 1000,10000 --ingest-jobs 10000 --hq-jobs 40

For N EMT single points of rattled 4-atom Cu cells (one multi-frame extended-XYZ file):

* ``python loop``: the same N calculations in one Python process, as a user would run them
  (``python loop.py``: start-up, ``import ase``, read, EMT): the floor on one core. The
  time inside the loop alone (after the imports) is printed beside it.
* ``orion --pack auto``: ``orion submit many.extxyz -e emt --pack auto --wait`` from its
  start until it returns with every result in the database (SQLite, or PostgreSQL with
  ``--postgres-url``), with orion's default ``min_query_interval_s`` (10 s). ``--pack auto``
  spreads the jobs over the idle CPUs.
* ``in-task``: the runners' own time (their ``ran N of N calculations in S s`` lines,
  summed over the tasks) ÷ N, against the loop's time ÷ N.
* ``ingest``: N mock single points (``duration_s=0``) packed into two tasks; once SLURM
  has run them (no orion poll meanwhile), the time of the one ``orion poll`` that stores
  all N results.
* ``hyperqueue``: the ``hyperqueue`` package's local cluster (two cores) running
  ``--hq-jobs`` of the calculations as Python-function tasks (one Python process per task,
  as HyperQueue runs them): its rate. Needs ``pip install hyperqueue`` in the venv of
  ``--hq-python``; skipped when that Python has no ``hyperqueue``.

Everything lives in a temporary directory; the script cancels what it submitted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
ORION = str(REPO / ".venv" / "bin" / "orion")

LOOP = """
import sys, time
start = time.perf_counter()
from ase.calculators.emt import EMT
from ase.io import read
inner = time.perf_counter()
for atoms in read(sys.argv[1], ":"):
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.get_forces()
print(time.perf_counter() - inner)
"""

HQ = """
import sys, time
from hyperqueue import Job
from hyperqueue.cluster import LocalCluster, WorkerConfig

def emt(seed):
    from ase.build import bulk
    from ase.calculators.emt import EMT
    atoms = bulk("Cu", cubic=True)
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    return atoms.get_potential_energy(), atoms.get_forces()

if __name__ == "__main__":
    with LocalCluster(worker_config=WorkerConfig(cores=2)) as cluster:
        client = cluster.client()
        job = Job()
        for seed in range(int(sys.argv[1])):
            job.function(emt, args=(seed,))
        start = time.perf_counter()
        client.wait_for_jobs([client.submit(job)])
        print(time.perf_counter() - start)
"""


def make_structures(path: Path, n: int) -> None:
    from ase.build import bulk
    from ase.io import write

    frames = []
    for seed in range(n):
        atoms = bulk("Cu", cubic=True)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    write(path, frames, format="extxyz")


def python_loop(path: Path) -> tuple[float, float]:
    """Seconds for ``python loop.py`` as a whole, and for its loop alone."""
    start = time.perf_counter()
    out = subprocess.run(
        [PYTHON, "-c", LOOP, str(path)], capture_output=True, text=True, check=True
    ).stdout
    return time.perf_counter() - start, float(out.strip())


def orion_env(home: Path, database_url: str | None) -> dict[str, str]:
    env = {**os.environ, "ORION_HOME": str(home), "ORION_SCHEDULER": "slurm"}
    for key in ("ORION_DATABASE_URL", "ORION_MIN_QUERY_INTERVAL_S"):
        env.pop(key, None)
    if database_url:
        env["ORION_DATABASE_URL"] = database_url
        subprocess.run([ORION, "db", "upgrade"], env=env, capture_output=True, check=True)
    return env


def count_completed(env: dict[str, str], n: int, tag: str = "") -> int:
    """Completed jobs (``tag``: of that tag only; the PostgreSQL runs share one database)."""
    out = subprocess.run(
        [ORION, "ls", "--json", "--limit", str(n + 10), "-s", "completed"]
        + (["--tag", tag] if tag else []),
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    rows = json.loads(out or "[]")
    rows = rows.get("jobs", rows) if isinstance(rows, dict) else rows
    return len(rows)


def task_times(env: dict[str, str]) -> tuple[int, float, float]:
    """Packed tasks, the sum of their runners' own seconds (from their output files), and
    how long the first job waited in SLURM's queue (other users' jobs on a shared node)."""
    first = json.loads(
        subprocess.run(
            [ORION, "show", "1", "--json"], env=env, capture_output=True, text=True
        ).stdout
    )
    workdir = first["workdir"]
    tasks, seconds = 0, 0.0
    for out in Path(workdir).parent.glob("arrays/*/task-*.out"):
        for match in re.finditer(r"ran \d+ of \d+ calculations in ([\d.]+) s", out.read_text()):
            tasks += 1
            seconds += float(match[1])
    return tasks, seconds, float(first.get("queue_wait_s") or 0.0)


def orion_packed(
    home: Path, structures: Path, n: int, database_url: str | None
) -> tuple[float, int, int, float, float]:
    """End to end seconds, completed jobs, tasks, runner seconds summed over the tasks,
    the first job's queue wait."""
    env = orion_env(home, database_url)
    start = time.perf_counter()
    subprocess.run(
        [ORION, "submit", str(structures), "-e", "emt", "--pack", "auto", "--wait"],
        env=env,
        capture_output=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    tasks, runner_s, queue_s = task_times(env)
    return seconds, count_completed(env, n), tasks, runner_s, queue_s


def ingest(home: Path, structures: Path, n: int, database_url: str | None) -> tuple[float, int]:
    """Seconds of the one poll that stores N finished packed results; how many it stored."""
    env = orion_env(home, database_url)
    out = subprocess.run(
        [ORION, "submit", str(structures), "-e", "mock", "-p", "duration_s=0"]
        + ["--pack-tasks", "2", "--tag", "ingest", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    array = json.loads(out)["scheduler_job_ids"][0].split("_")[0]
    deadline = time.monotonic() + 1800
    while subprocess.run(["squeue", "-h", "-j", array], capture_output=True, text=True).stdout:
        if time.monotonic() > deadline:
            raise SystemExit(f"array {array} still running after 30 min")
        time.sleep(1)
    env["ORION_MIN_QUERY_INTERVAL_S"] = "0"
    start = time.perf_counter()
    subprocess.run([ORION, "poll"], env=env, capture_output=True, check=False)
    return time.perf_counter() - start, count_completed(env, n, "ingest")


def hyperqueue(hq_python: str, n: int) -> float | None:
    """Seconds HyperQueue's local cluster takes for ``n`` Python-function tasks."""
    if subprocess.run([hq_python, "-c", "import hyperqueue"], capture_output=True).returncode:
        return None
    site = subprocess.run(
        [PYTHON, "-c", "import ase, os; print(os.path.dirname(os.path.dirname(ase.__file__)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {
        **os.environ,
        "PATH": f"{Path(hq_python).parent}:{os.environ['PATH']}",  # tasks run `python`
        "PYTHONPATH": site,  # ASE from orion's venv
    }
    with tempfile.TemporaryDirectory(prefix="orion-hq-") as tmp:
        script = Path(tmp, "hq_emt.py")
        script.write_text(HQ)
        out = subprocess.run(
            [hq_python, str(script), str(n)],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1000,10000", help='comma-separated N ("": none)')
    parser.add_argument("--ingest-jobs", type=int, default=10000, help="0: skip")
    parser.add_argument("--hq-jobs", type=int, default=40, help="0: skip")
    parser.add_argument("--hq-python", default="/tmp/hq-venv/bin/python")
    parser.add_argument("--postgres-url", default=None, help="an empty database: PostgreSQL rows")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", file=sys.stderr)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="orion-pack-bench-") as tmp:
        base = Path(tmp)
        for n in (int(word) for word in args.jobs.split(",") if word):
            structures = base / f"many-{n}.extxyz"
            make_structures(structures, n)
            loop_s, inner_s = python_loop(structures)
            rows.append(
                f"| python loop, one process | {n} | 1 | {loop_s:.1f} | {n} | "
                f"{n / loop_s:.0f} | loop alone {inner_s:.1f} s, {1e3 * inner_s / n:.2f} ms/calc |"
            )
            home = base / f"orion-{n}"
            seconds, done, tasks, runner_s, queue_s = orion_packed(
                home, structures, n, args.postgres_url
            )
            per_core_ms = 1e3 * runner_s / max(done, 1)
            rows.append(
                f"| orion --pack auto | {n} | {tasks} | {seconds:.1f} | {done} | "
                f"{done / seconds:.0f} | {seconds / loop_s:.2f}× the loop (first task queued "
                f"{queue_s:.1f} s); in-task "
                f"{per_core_ms:.2f} ms/calc ({per_core_ms / (1e3 * inner_s / n):.2f}× the loop's) |"
            )
            print(rows[-2], rows[-1], sep="\n", file=sys.stderr)
        if args.ingest_jobs:
            structures = base / "ingest.extxyz"
            make_structures(structures, args.ingest_jobs)
            seconds, done = ingest(base / "ingest", structures, args.ingest_jobs, args.postgres_url)
            rows.append(
                f"| ingest: one orion poll | {args.ingest_jobs} | 2 | {seconds:.1f} | "
                f"{done} | {done / seconds:.0f} | mock results, stored in one cycle |"
            )
            print(rows[-1], file=sys.stderr)
        if args.hq_jobs:
            hq_s = hyperqueue(args.hq_python, args.hq_jobs)
            rows.append(
                f"| HyperQueue local cluster, Python-function tasks | {args.hq_jobs} | "
                + (
                    "- | - | - | - | hyperqueue not installed |"
                    if hq_s is None
                    else f"{args.hq_jobs} | {hq_s:.1f} | {args.hq_jobs} | "
                    f"{args.hq_jobs / hq_s:.1f} | one Python process per task |"
                )
            )
    print(f"load after: {os.getloadavg()}", file=sys.stderr)
    database = "PostgreSQL" if args.postgres_url else "SQLite"
    print(f"EMT single points end to end, {database}, min_query_interval_s 10 (default)\n")
    print("| run | calculations | tasks | seconds | completed | results/s | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
