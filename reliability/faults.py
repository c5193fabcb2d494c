"""Fault injection against the real SLURM cluster and real PostgreSQL; prints a table.

    .venv/bin/python reliability/faults.py [--kill-runs 100] [--only NAME ...]

Needs root (it stops and starts slurmctld, slurmdbd and PostgreSQL), the cluster from
scripts/slurm-up.sh and PostgreSQL on 127.0.0.1:5432. Every scenario uses its own
ORION_HOME and its own throw-away PostgreSQL database, and cancels what it leaves queued.
Columns: jobs lost (a SLURM job orion has no row for, or a row never submitted), jobs
duplicated (a row with more than one SLURM job), wrong final states (not what the
scenario must end in).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CU = str(REPO / "examples" / "structures" / "Cu.cif")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
FINAL = ("completed", "failed", "cancelled")


@dataclass
class Row:
    scenario: str
    runs: int
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    note: str = ""
    #: what the jobs counted as wrong ended in (a slow cluster and a defect look different)
    wrong_states: str = ""


class Orion:
    """The real CLI in a fresh home with a fresh PostgreSQL database."""

    def __init__(self, name: str) -> None:
        import psycopg

        self.home = Path(tempfile.mkdtemp(prefix=f"orion-faults-{name}-"))
        self.db = f"orion_faults_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.db}")
        self.env = {
            **os.environ,
            "ORION_HOME": str(self.home),
            "ORION_SCHEDULER": "slurm",
            "ORION_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + "/" + self.db,
            "ORION_SUBMIT_GRACE_S": "0",
            "ORION_LOST_GRACE_S": "60",
        }
        self.run("db", "upgrade")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "orion_cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"orion {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "orion_cli", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args, "--json").stdout)

    def submit(self, *args: str) -> int:
        return int(self.json("submit", CU, "--engine", "mock", *args)["id"])  # type: ignore[index]

    def jobs(self) -> list[dict]:
        return self.json("ls", "-n", "100000")  # type: ignore[return-value]

    def instance(self) -> str:
        return next(p.name for p in (self.home / "jobs").iterdir() if not p.name.startswith("."))

    def wait_final(self, ids: list[int], timeout_s: float = 240) -> dict[int, dict]:
        deadline = time.monotonic() + timeout_s
        while True:
            self.run("poll", check=False)
            jobs = {i: self.json("show", str(i)) for i in ids}
            if all(j["status"] in FINAL for j in jobs.values()):  # type: ignore[index]
                return jobs  # type: ignore[return-value]
            if time.monotonic() > deadline:
                return jobs  # type: ignore[return-value]
            time.sleep(1)

    def cleanup(self) -> None:
        open_ids = [str(j["id"]) for j in self.jobs() if j["status"] not in FINAL]
        if open_ids:
            self.run("cancel", *open_ids, check=False)


def slurm_jobs(instance: str) -> dict[str, list[str]]:
    out = subprocess.run(
        ["squeue", "-h", "--me", "-t", "all", "-o", "%j|%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, list[str]] = {}
    for line in out.split():
        name, _, slurm_id = line.partition("|")
        parts = name.split("-")
        if len(parts) > 3 and parts[0] == "orion" and parts[2] == instance:
            found.setdefault(parts[1], []).append(slurm_id.split("_")[0])
    return found


def count_against_slurm(o: Orion, row: Row, expect_status: str) -> None:
    jobs = o.jobs()
    in_slurm = slurm_jobs(o.instance())
    ids = {str(j["id"]) for j in jobs}
    row.lost += len(set(in_slurm) - ids) + sum(1 for j in jobs if j["status"] == "created")
    row.duplicated += sum(1 for v in in_slurm.values() if len(set(v)) > 1)
    wrong = [j for j in jobs if j["status"] != expect_status]
    row.wrong += len(wrong)
    seen = ", ".join(f"job {j['id']} {j['status']} ({j.get('reason') or '-'})" for j in wrong[:5])
    row.wrong_states = ", ".join(filter(None, (row.wrong_states, seen)))


def kill_submit(runs: int) -> Row:
    """kill -9 of `orion submit` at a random moment of its run, then one poll."""
    o, row = Orion("kill"), Row("kill -9 of orion submit at random points", runs)
    started = time.monotonic()
    o.submit("--hold")
    full_s = time.monotonic() - started
    rng = random.Random(2026)
    for _ in range(runs):
        proc = o.popen("submit", CU, "--engine", "mock", "--hold")
        # most of a submit is Python start-up; aim at the part that writes rows and calls sbatch
        time.sleep(rng.uniform(0.55 * full_s, 1.05 * full_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    o.run("poll")
    recovered = sum(
        1
        for j in o.jobs()
        for e in o.json("show", str(j["id"]))["events"]  # type: ignore[index]
        if e["source"] == "recovery"
    )
    count_against_slurm(o, row, "queued")
    row.note = f"{len(o.jobs()) - 1} rows written; {recovered} recovered by the next poll"
    o.cleanup()
    return row


def slurm_arrays(instance: str) -> dict[str, list[str]]:
    """SLURM arrays of this database by their first orion id: {first id: [array job ids]}."""
    out = subprocess.run(
        ["squeue", "-h", "--me", "-t", "all", "-o", "%j|%F"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, set[str]] = {}
    for line in out.split():
        name, _, array_id = line.partition("|")
        parts = name.split("-")
        if len(parts) > 4 and parts[:2] == ["orion", "array"] and parts[3] == instance:
            found.setdefault(parts[2], set()).add(array_id)
    return {first: sorted(ids) for first, ids in found.items()}


def kill_array_submit(runs: int) -> Row:
    """kill -9 of `orion submit` of 100 structures (one array) at random points, then a poll."""
    o = Orion("killarr")
    row = Row("kill -9 of orion submit of 100 structures (one job array)", runs)
    folder = o.home / "structures"
    folder.mkdir()
    for index in range(100):
        (folder / f"cu-{index:03d}.cif").write_text(Path(CU).read_text())
    started = time.monotonic()
    o.run("submit", str(folder), "--engine", "mock", "--hold")
    full_s = time.monotonic() - started
    rng = random.Random(2027)
    for _ in range(runs):
        proc = o.popen("submit", str(folder), "--engine", "mock", "--hold")
        time.sleep(rng.uniform(0.3 * full_s, 1.05 * full_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    o.run("poll")
    jobs = o.jobs()
    arrays = slurm_arrays(o.instance())
    firsts = {
        str(
            min(
                j["id"]
                for j in jobs
                if j["scheduler_job_id"] and j["scheduler_job_id"].split("_")[0] == a
            )
        )
        for a in {j["scheduler_job_id"].split("_")[0] for j in jobs if j["scheduler_job_id"]}
    }
    row.lost += len(set(arrays) - firsts) + sum(1 for j in jobs if j["status"] == "created")
    row.duplicated += sum(1 for ids in arrays.values() if len(ids) > 1)
    in_squeue = {a for ids in arrays.values() for a in ids}
    row.wrong += sum(
        1
        for j in jobs
        if j["status"] != "queued" or j["scheduler_job_id"].split("_")[0] not in in_squeue
    )
    recovered = sum(
        1
        for first in firsts  # an array is recovered as a whole: ask its first
        if any(e["source"] == "recovery" for e in o.json("show", first)["events"])
    )  # type: ignore[index]
    row.note = (
        f"{len(jobs) // 100 - 1} arrays of 100 rows written by killed submits; "
        f"{recovered} recovered by the next poll"
    )
    o.cleanup()
    return row


def stop_pidfile(pidfile: str) -> None:
    pid = int(Path(pidfile).read_text().split()[0])
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.2)


def slurm_up() -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "slurm-up.sh")], check=True, capture_output=True)


def slurmctld_outage() -> Row:
    o, row = Orion("ctld"), Row("slurmctld stopped and restarted mid-run", 6)
    ids = [o.submit("-p", "duration_s=4") for _ in range(4)]
    time.sleep(2)
    before = [o.json("show", str(i))["status"] for i in ids]  # type: ignore[index]
    stop_pidfile("/run/slurm/slurmctld.pid")
    try:
        polled = o.run("poll", check=False)
        after = [o.json("show", str(i))["status"] for i in ids]  # type: ignore[index]
        row.wrong += int(polled.returncode == 0 or before != after)
        refused = o.run("submit", CU, "--engine", "mock", "--retry-delay", "5s", check=False)
        row.wrong += int(refused.returncode == 0)
        ids += [j["id"] for j in o.jobs() if j["id"] not in ids]
        killed = o.popen("submit", CU, "--engine", "mock", "--retry-delay", "5s")
        time.sleep(3)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    finally:
        slurm_up()
    time.sleep(6)
    jobs = o.wait_final([j["id"] for j in o.jobs()])
    count_against_slurm(o, row, "completed")
    row.runs = len(jobs)
    row.note = (
        f"poll during outage: exit {polled.returncode}, "
        f"'{polled.stderr.strip().splitlines()[-1][:60]}…'"
    )
    o.cleanup()
    return row


def slurmdbd_outage() -> Row:
    o, row = Orion("dbd"), Row("slurmdbd stopped mid-run", 4)
    stop_pidfile("/run/slurm/slurmdbd.pid")
    try:
        ids = [o.submit("-p", "duration_s=1") for _ in range(4)]
        o.wait_final(ids)  # 240 s: a loaded cluster can take more than 90 s to run four jobs
    finally:
        slurm_up()
    count_against_slurm(o, row, "completed")
    row.note = "squeue still reports finished jobs for MinJobAge (300 s): no sacct needed"
    o.cleanup()
    return row


def postgres_outage() -> Row:
    o, row = Orion("pg"), Row("PostgreSQL stopped and restarted mid-run", 4)
    ids = [o.submit("-p", "duration_s=3") for _ in range(4)]
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"], check=True
    )
    try:
        polled = o.run("poll", check=False)
        refused = o.run("submit", CU, "--engine", "mock", check=False)
        lines = polled.stderr.strip().splitlines()
        row.wrong += int(polled.returncode == 0 or len(lines) != 1 or refused.returncode == 0)
        time.sleep(6)  # the jobs finish while the database is away
    finally:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True
        )
    time.sleep(1)
    jobs = o.wait_final(ids)
    row.wrong += sum(1 for j in jobs.values() if j["result"] is None)
    count_against_slurm(o, row, "completed")
    row.note = f"poll during outage: exit {polled.returncode}, '{lines[0][:60]}…'"
    o.cleanup()
    return row


def five_pollers() -> Row:
    o, row = Orion("pollers"), Row("5 pollers started at once, every cycle", 12)
    ids = [o.submit("-p", "duration_s=0.5") for _ in range(12)]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for proc in [o.popen("poll") for _ in range(5)]:
            proc.wait()
        jobs = [o.json("show", str(i)) for i in ids]
        if all(j["status"] in FINAL for j in jobs):  # type: ignore[index]
            break
    for job in jobs:
        moves = [(e["from"], e["to"]) for e in job["events"]]  # type: ignore[index]
        row.duplicated += len(moves) - len(set(moves))
    count_against_slurm(o, row, "completed")
    o.cleanup()
    return row


def failures() -> Row:
    """TIMEOUT, engine error, killed batch shell, outside scancel, node taken down."""
    o, row = Orion("fail"), Row("timeout / exit≠0 / scancel / node down", 5)
    o.env["ORION_SOFT_MARGIN_S"] = "0"
    expected = {
        o.submit("-p", "duration_s=400", "--walltime", "1m", "--retries", "0"): (
            "failed",
            "timeout",
        ),
        o.submit("-p", "fail=true", "-p", "duration_s=0"): ("failed", "engine_error"),
        o.submit("-p", "duration_s=60"): ("failed", "exit_code"),
        o.submit("-p", "duration_s=60", "--hold"): ("cancelled", "cancelled_externally"),
        o.submit("-p", "duration_s=8"): ("completed", None),
    }
    shot, outside, node = list(expected)[2:]
    deadline = time.monotonic() + 60
    while o.json("show", str(shot))["status"] != "running" and time.monotonic() < deadline:  # type: ignore[index]
        o.run("poll", check=False)
        time.sleep(1)
    subprocess.run(
        ["scancel", "--signal=KILL", "--batch", o.json("show", str(shot))["scheduler_job_id"]],
        check=True,
    )  # type: ignore[index]
    subprocess.run(["scancel", o.json("show", str(outside))["scheduler_job_id"]], check=True)  # type: ignore[index]
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    subprocess.run(
        ["scontrol", "update", f"nodename={host}", "state=down", "reason=orion-fault-test"],
        check=True,
    )
    time.sleep(2)
    subprocess.run(
        ["scontrol", "update", f"nodename={host}", "state=resume"], check=False, capture_output=True
    )  # ReturnToService=2 may have resumed it already
    jobs = o.wait_final(list(expected))
    for job_id, (status, reason) in expected.items():
        got = (jobs[job_id]["status"], jobs[job_id]["failure_reason"])
        row.wrong += int(got != (status, reason))
    in_slurm = slurm_jobs(o.instance())
    row.lost += len(set(in_slurm) - {str(i) for i in expected})
    row.note = (
        "node down: SLURM requeued the running job, it completed; "
        "OUT_OF_MEMORY needs task/cgroup (not here): covered by recorded sacct output"
    )
    o.cleanup()
    return row


SCENARIOS: dict[str, Callable[[argparse.Namespace], Row]] = {
    "kill": lambda a: kill_submit(a.kill_runs),
    "killarray": lambda a: kill_array_submit(max(10, a.kill_runs // 4)),
    "ctld": lambda a: slurmctld_outage(),
    "dbd": lambda a: slurmdbd_outage(),
    "pg": lambda a: postgres_outage(),
    "pollers": lambda a: five_pollers(),
    "failures": lambda a: failures(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-runs", type=int, default=100)
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    rows = []
    for name in args.only or list(SCENARIOS):
        started = time.monotonic()
        row = SCENARIOS[name](args)
        print(f"[{name}] {time.monotonic() - started:.0f} s: {row}", file=sys.stderr)
        rows.append(row)
    print("| scenario | runs | jobs lost | jobs duplicated | wrong final states | note |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        note = f"{r.note}; wrong: {r.wrong_states}" if r.wrong_states else r.note
        print(f"| {r.scenario} | {r.runs} | {r.lost} | {r.duplicated} | {r.wrong} | {note} |")


if __name__ == "__main__":
    main()
