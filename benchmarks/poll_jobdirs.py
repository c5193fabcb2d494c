"""One poll cycle over many running jobs' directories, with and without one oversized file.

    .venv/bin/python benchmarks/poll_jobdirs.py --jobs 10000 --oversized-mb 200

Each case runs in a fresh process (its peak RSS is its own): a new SQLite database with
``--jobs`` queued jobs, each with a job directory holding the runner's usual lines; in the
``oversized`` case one job's events.jsonl also has ``--oversized-mb`` MB of progress lines
appended. The scheduler's answer is given (every job RUNNING): a one-node cluster cannot
run 10,000 jobs at once, and the cost measured here is orion's own (files, checks, SQL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _populate(home: Path, n_jobs: int, oversized_mb: int) -> None:
    from orion_cli.config import load_settings
    from orion_cli.db.models import insert_jobs
    from orion_cli.db.session import session_scope
    from orion_cli.identity import current_user
    from orion_cli.jobdir import append_event
    from orion_cli.services.lifecycle.state import transition_many

    settings = load_settings()
    rows = []
    for i in range(n_jobs):
        workdir = home / "jobs" / f"{i}"
        workdir.mkdir(parents=True)
        append_event(workdir, "started", attempt=1)
        append_event(workdir, "progress", attempt=1, step="Processing", progress_pct=25.0)
        rows.append(
            {
                "name": f"j{i}",
                "owner": current_user(),
                "engine": "mock",
                "scheduler": "slurm",
                "scheduler_job_id": str(1000 + i),
                "workdir": str(workdir),
            }
        )
    if oversized_mb:
        line = (
            json.dumps({"event": "progress", "attempt": 1, "step": "x" * 100, "progress_pct": 50.0})
            + "\n"
        )
        block = line * (2**20 // len(line))
        with (home / "jobs" / "0" / "events.jsonl").open("a") as handle:
            for _ in range(oversized_mb):
                handle.write(block)
    with session_scope(settings.resolved_database_url) as session:
        jobs = insert_jobs(session, rows)
        transition_many(session, jobs, _queued(), source="bench")


def _queued():  # type: ignore[no-untyped-def]
    from orion_cli.states import JobStatus

    return JobStatus.QUEUED


def _one_case(n_jobs: int, oversized_mb: int) -> dict[str, float]:
    from orion_cli.config import load_settings
    from orion_cli.schedulers.base import JobInfo
    from orion_cli.services.lifecycle import poll as poll_module
    from orion_cli.states import JobStatus

    home = Path(os.environ["ORION_HOME"])
    _populate(home, n_jobs, oversized_mb)

    class Running:
        name = "slurm"

        def query(self, ids: list[str]) -> dict[str, JobInfo]:
            return {i: JobInfo(i, "RUNNING", JobStatus.RUNNING) for i in ids}

    poll_module.scheduler_for = lambda settings, name: Running()  # type: ignore[assignment]
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    report = poll_module.poll(load_settings())
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    poll_module.poll(load_settings())
    second_s = time.perf_counter() - started
    return {
        "jobs": n_jobs,
        "oversized_mb": oversized_mb,
        "changed": len(report.changed),
        "errors": len(report.errors),
        "first_cycle_s": round(first_s, 2),
        "second_cycle_s": round(second_s, 2),
        "rss_before_poll_mb": round(rss_before_mb),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--oversized-mb", type=int, default=200)
    parser.add_argument(
        "--before",
        metavar="CHECKOUT",
        help="also run the cases with orion_cli from another checkout "
        "(e.g. a worktree of an earlier commit), side by side",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(_one_case(args.jobs, int(args.case))))
        return 0
    checkouts = {"this": str(Path(__file__).resolve().parent.parent)}
    if args.before:
        checkouts["before"] = str(Path(args.before).resolve())
    for oversized_mb in (0, args.oversized_mb):
        for label, checkout in checkouts.items():
            with tempfile.TemporaryDirectory() as folder:
                env = {k: v for k, v in os.environ.items() if not k.startswith("ORION_")}
                env.update(ORION_HOME=folder, ORION_MIN_QUERY_INTERVAL_S="0", PYTHONPATH=checkout)
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--jobs",
                        str(args.jobs),
                        "--case",
                        str(oversized_mb),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                print(json.dumps({"code": label, **json.loads(out)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
