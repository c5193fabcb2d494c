"""The real-TIMEOUT scenarios on the SLURM cluster, started together so that they wait together.

A real TIMEOUT costs 60-90 s (the minimum --time is a minute and slurmctld checks limits
every 30 s); run one after another, four scenarios cost ~7 min. Here one module fixture
submits the jobs of every selected scenario at once, each scenario in its own orion home
(and database), and polls them all until each scenario has reached the state its test
looks at. What must be seen at that moment (squeue's pending reason, ``scontrol show
job``) is recorded then, and the scenario's leftover jobs are cancelled at once so that
they free the two-CPU node for the others. One test function per scenario then asserts:

* dependencies: a child is re-pointed at its parent's retry after a real TIMEOUT and runs
  after it (PostgreSQL);
* scripts: ``orion submit --script`` keeps the script's own #SBATCH lines, records exit
  codes, retries a TIMEOUT with a doubled --time, and ``orion progress`` works in the job;
* slow: a TIMEOUT retried with doubled walltime after the back-off, a soft-limit stop, a
  killed batch shell (not retried);
* packing: a packed task that ends early (real TIMEOUT, ``scancel`` mid-pack, ``kill -9``
  of the runner): finished jobs stay completed, the running one fails with the scheduler's
  reason, the unstarted ones are submitted again with no attempt spent, and complete.

Running one test alone runs only its scenario.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, PG_ADMIN_URL
from tests.helpers import FINAL, orion, orion_json
from tests.test_packing import _structures

CU = str(EXAMPLES / "Cu.cif")
PROGRESS = f"{sys.executable} -m orion_cli progress"
DEADLINE_S = 900  # the cluster may be busy with other jobs first

pytestmark = pytest.mark.slurm


@dataclass
class Scenario:
    """One scenario's jobs, polled in its own orion home until ``settled`` says so."""

    name: str
    home: Path
    env: dict[str, str]
    ids: dict[str, Any] = field(default_factory=dict)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, Any] = field(default_factory=dict)  # recorded when it settled
    settled: bool = False
    error: str = ""
    #: polled again after each other scenario too (it waits to act on a short-lived state)
    urgent: bool = False

    def all_ids(self) -> list[int]:
        found: list[int] = []
        for value in self.ids.values():
            found += value if isinstance(value, list) else [value]
        return found


@pytest.fixture(scope="module")
def scenarios(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Scenario]]:
    """Submit every selected scenario's jobs, then poll them all until each has settled."""
    from tests.conftest import need

    need(shutil.which("sbatch") is not None, "SLURM (scripts/slurm-up.sh)")
    wanted = {
        item.name.removeprefix("test_").split("[")[0]
        for item in request.session.items
        if getattr(item, "module", None) is sys.modules[__name__]  # doctests have none
    }
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("ORION_") and key != "ORION_TEST_POSTGRES_URL":
                patch.delenv(key)
        cwd = os.getcwd()
        found: dict[str, Scenario] = {}
        databases: list[str] = []
        try:
            for name, (start, _) in SCENARIOS.items():
                if name not in wanted:
                    continue
                base = tmp_path_factory.mktemp(name)
                scenario = Scenario(name, base / "orion-home", {"ORION_SCHEDULER": "slurm"})
                if name == "dependencies":
                    try:
                        scenario.env["ORION_DATABASE_URL"] = _new_database(request)
                    except pytest.skip.Exception as exc:  # no PostgreSQL on this machine
                        scenario.error = f"skip: {exc}"
                        found[name] = scenario
                        continue
                    databases.append(scenario.env["ORION_DATABASE_URL"])
                found[name] = scenario
                with _inside(scenario, base):
                    start(scenario, base)
            _poll_all(found, {name: SCENARIOS[name][1] for name in found})
            yield found
        finally:
            os.chdir(cwd)
            for scenario in found.values():  # whatever a failed run left in the queue
                if scenario.ids and not scenario.settled:
                    with _inside(scenario):
                        rows = _listing(scenario).values()
                    sids = [row["scheduler_job_id"] for row in rows if row["scheduler_job_id"]]
                    subprocess.run(["scancel", *sids], capture_output=True)
            for url in databases:
                _drop_database(url)


class _inside:
    """Run orion as the scenario's user would: its home, database, scheduler and directory."""

    def __init__(self, scenario: Scenario, directory: Path | None = None) -> None:
        self.scenario, self.directory = scenario, directory

    def __enter__(self) -> None:
        env = {
            "ORION_HOME": str(self.scenario.home),
            "ORION_MIN_QUERY_INTERVAL_S": "0",
            **self.scenario.env,
        }
        self.previous = {key: os.environ.get(key) for key in (*env, "ORION_SOFT_MARGIN_S")}
        os.environ.pop("ORION_SOFT_MARGIN_S", None)  # set by a submit that wants one
        os.environ.update(env)
        if self.directory is not None:
            os.chdir(self.directory)

    def __exit__(self, *exc: object) -> None:
        for key, value in self.previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _poll_all(found: dict[str, Scenario], steps: dict[str, Callable[[Scenario], bool]]) -> None:
    """Poll each unsettled scenario as cron would, and let it act, until all have settled."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        waiting = [s for s in found.values() if not s.settled and not s.error]
        if not waiting:
            return
        for scenario in waiting:
            urgent = [s for s in waiting if s.urgent and s is not scenario]
            for one in [scenario, *urgent]:
                if one.settled or one.error:
                    continue
                with _inside(one):
                    polled = orion("poll", expect=None)
                    one.settled = steps[one.name](one)
                    if not one.settled and time.monotonic() > deadline:
                        listed = {i: (j["status"], j["attempt"]) for i, j in _listing(one).items()}
                        one.error = f"not settled in time: {listed}; last poll: {polled.output}"
        time.sleep(1)


def _listing(scenario: Scenario) -> dict[int, dict[str, Any]]:
    """The scenario's jobs as `orion ls` lists them (status, attempt): one call per poll."""
    return {row["id"]: row for row in orion_json("ls", "-n", "1000")}


def _shows(scenario: Scenario, ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """The scenario's jobs (default: all) in full (`orion show`), kept for its assertions."""
    scenario.jobs.update({i: orion_json("show", str(i)) for i in ids or scenario.all_ids()})
    return scenario.jobs


def _settled(scenarios: dict[str, Scenario], name: str) -> Scenario:
    scenario = scenarios[name]
    if scenario.error.startswith("skip: "):
        pytest.skip(scenario.error.removeprefix("skip: "))
    assert not scenario.error, scenario.error
    return scenario


def _new_database(request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue("postgres_server")
    import psycopg

    name = f"orion_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"{server.rsplit('/', 1)[0]}/{name}"
    from orion_cli.db.session import upgrade_url

    upgrade_url(url)
    return url


def _drop_database(url: str) -> None:
    import psycopg

    from orion_cli.db.session import get_engine

    get_engine(url).dispose()
    get_engine.cache_clear()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def _submit_mock(soft_margin_s: int, *args: str) -> int:
    os.environ["ORION_SOFT_MARGIN_S"] = str(soft_margin_s)
    return int(orion_json("submit", CU, "--engine", "mock", *args)["id"])


def sacct(job_id: str, fields: str) -> list[str]:
    out = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", fields],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().split("|")


def _run_times(scheduler_job_id: str) -> tuple[float, float]:
    """When SLURM started and ended a job, as its accounting records it (epoch seconds)."""
    start, end = sacct(scheduler_job_id, "Start,End")
    return datetime.fromisoformat(start).timestamp(), datetime.fromisoformat(end).timestamp()


# ---------- dependencies: a child waits for its parent's retry after a real TIMEOUT ---------


def _start_dependencies(scenario: Scenario, base: Path) -> None:
    # the parent's first attempt runs into its 1-minute limit; its retry ends at once, so
    # that it does not hold one of the node's two CPUs for as long again
    script = base / "parent.sbatch"
    script.write_text('#!/bin/bash\n[ "$ORION_ATTEMPT" != 1 ] || sleep 300\n')
    parent = int(
        orion(
            "submit",
            "--script",
            str(script),
            "--walltime",
            "1m",
            "--retries",
            "1",
            "--retry-delay",
            "1s",
        ).stdout
    )
    child = _submit_mock(0, "-p", "duration_s=0", "--after", str(parent))
    scenario.ids = {"parent": parent, "child": child}


def _step_dependencies(scenario: Scenario) -> bool:
    if not all(job["status"] in FINAL for job in _listing(scenario).values()):
        return False
    _shows(scenario)
    return True


@pytest.mark.postgres
def test_dependencies(scenarios: dict[str, Scenario]) -> None:
    """Real TIMEOUT: the child is re-pointed at attempt 2 and runs after it."""
    scenario = _settled(scenarios, "dependencies")
    jobs, parent, child = scenario.jobs, scenario.ids["parent"], scenario.ids["child"]
    assert (jobs[parent]["status"], jobs[parent]["attempt"]) == ("completed", 2)
    assert jobs[parent]["attempts"][0]["reason"] == "timeout"
    assert jobs[child]["status"] == "completed"
    new_sid = jobs[parent]["scheduler_job_id"]
    assert _run_times(jobs[child]["scheduler_job_id"])[0] >= _run_times(new_sid)[1]


# ---------- scripts: own #SBATCH lines, exit codes, a TIMEOUT retried, progress --------------


def _start_scripts(scenario: Scenario, base: Path) -> None:
    ok = base / "ok.sbatch"
    ok.write_text(
        "#!/bin/bash\n#SBATCH --job-name=theirs\n#SBATCH --time=00:03:00\n"
        "#SBATCH --mem=300M\n#SBATCH --ntasks=1\n"
        f'{PROGRESS} 40 "SCF step 12"\n'
        f"{PROGRESS} --result energy_ev=-12.3 steps=12\n"
        'echo "ran in $PWD with $1"\n'
    )
    bad = base / "bad.sbatch"
    bad.write_text("#!/bin/bash\n#SBATCH --time=2\necho failing\nexit 3\n")
    slow = base / "slow.sbatch"
    slow.write_text("#!/bin/bash\n#SBATCH --time=1\nsleep 300\n")
    scenario.ids = {
        "ok": int(orion("submit", "--script", str(ok), "--", "arg1").stdout),
        "bad": int(orion("submit", "--script", str(bad)).stdout),
        "slow": int(
            orion("submit", "--script", str(slow), "--retries", "1", "--retry-delay", "1").stdout
        ),
    }
    first = {key: orion_json("show", str(i))["scheduler_job_id"] for key, i in scenario.ids.items()}
    scenario.seen["first_slurm_ids"] = first
    scenario.seen["script_slurm_kept"] = subprocess.run(
        ["scontrol", "write", "batch_script", first["ok"], "-"], capture_output=True, text=True
    ).stdout
    scenario.seen["submit_dir"] = base
    scenario.seen["ok_text"] = ok.read_text()


def _step_scripts(scenario: Scenario) -> bool:
    ids = scenario.ids
    jobs = _listing(scenario)
    if not (
        jobs[ids["ok"]]["status"] in FINAL
        and jobs[ids["bad"]]["status"] in FINAL
        and jobs[ids["slow"]]["attempt"] == 2
    ):
        return False
    jobs = _shows(scenario)
    second = jobs[ids["slow"]]["scheduler_job_id"]
    scenario.seen["second_shown"] = subprocess.run(
        ["scontrol", "show", "job", second], capture_output=True, text=True, check=True
    ).stdout  # pending: sacct may not know it yet
    orion("cancel", str(ids["slow"]))
    return True


def test_scripts(scenarios: dict[str, Scenario]) -> None:
    scenario = _settled(scenarios, "scripts")
    jobs = {key: scenario.jobs[i] for key, i in scenario.ids.items()}
    first_slurm_ids, ids = scenario.seen["first_slurm_ids"], scenario.ids
    assert scenario.seen["script_slurm_kept"] == scenario.seen["ok_text"]  # SLURM got it as is
    done = jobs["ok"]
    assert (done["status"], done["exit_code"], done["name"]) == ("completed", 0, "theirs")
    assert (done["walltime_s"], done["mem_mb"], done["ntasks"]) == (180, 300, 1)
    name, limit, mem, tasks = sacct(first_slurm_ids["ok"], "JobName,Timelimit,ReqMem,NTasks")
    assert name.startswith(f"orion-{ids['ok']}-") and name.endswith("-theirs")
    assert (limit, mem) == ("00:03:00", "300M")
    assert tasks in ("1", "")  # some sacct versions leave NTasks empty on the job's line
    out = (Path(done["workdir"]) / "attempt-1.out").read_text()
    assert out == f"ran in {scenario.seen['submit_dir']} with arg1\n"
    assert (done["current_step"], done["result"]["energy_ev"]) == ("SCF step 12", -12.3)
    assert done["result"]["extras"] == {"steps": 12}

    failed = jobs["bad"]
    assert (failed["status"], failed["failure_reason"], failed["exit_code"]) == (
        "failed",
        "exit_code",
        3,
    )
    assert sacct(first_slurm_ids["bad"], "State,ExitCode") == ["FAILED", "3:0"]

    retried = jobs["slow"]
    first = retried["attempts"][0]
    assert (first["reason"], first["raw_state"], first["walltime_s"]) == ("timeout", "TIMEOUT", 60)
    assert retried["walltime_s"] == 120
    # the script says 1 min; orion's --time wins
    assert "TimeLimit=00:02:00" in scenario.seen["second_shown"].split()


# ---------- slow: a TIMEOUT retried after the back-off, a soft-limit stop, a killed shell ----


def _start_slow(scenario: Scenario, base: Path) -> None:
    scenario.ids = {
        "timeout": _submit_mock(0, "-p", "duration_s=400", "--walltime", "1m"),
        "soft": _submit_mock(45, "-p", "duration_s=400", "--walltime", "1m", "--retries", "0"),
        "killed": _submit_mock(0, "-p", "duration_s=400", "--walltime", "5m"),
    }


def _step_slow(scenario: Scenario) -> bool:
    ids = scenario.ids
    jobs = _listing(scenario)
    if not scenario.seen.get("killed_shell") and jobs[ids["killed"]]["status"] == "running":
        subprocess.run(
            ["scancel", "--signal=KILL", "--batch", jobs[ids["killed"]]["scheduler_job_id"]],
            check=True,
        )
        scenario.seen["killed_shell"] = True
    if not (
        jobs[ids["timeout"]]["attempt"] == 2
        and jobs[ids["soft"]]["status"] in FINAL
        and jobs[ids["killed"]]["status"] in FINAL
    ):
        return False
    jobs = _shows(scenario)
    scenario.seen["begin_reason"] = subprocess.run(
        ["squeue", "-h", "-j", jobs[ids["timeout"]]["scheduler_job_id"], "-o", "%r"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    orion("cancel", str(ids["timeout"]))
    return True


def test_slow(scenarios: dict[str, Scenario]) -> None:
    scenario = _settled(scenarios, "slow")
    jobs = {key: scenario.jobs[i] for key, i in scenario.ids.items()}
    retried = jobs["timeout"]
    first = retried["attempts"][0]
    assert (first["status"], first["reason"], first["raw_state"]) == (
        "failed",
        "timeout",
        "TIMEOUT",
    )
    assert (retried["status"], retried["walltime_s"]) == ("queued", 120)
    assert "begins after 60 s" in retried["events"][-1]["message"]
    assert scenario.seen["begin_reason"] == "BeginTime"

    stopped = jobs["soft"]
    assert (stopped["status"], stopped["failure_reason"]) == ("failed", "timeout")
    assert "soft time limit" in stopped["error_message"]
    assert stopped["result"]["extras"]["soft_limit_reached"] is True
    assert stopped["raw_state"] != "TIMEOUT"  # it stopped itself before the hard limit

    shot = jobs["killed"]
    assert (shot["status"], shot["failure_reason"], shot["attempt"]) == (
        "failed",
        "exit_code",
        1,
    )  # not retried: a crash is not a resource problem


# ---------- packing: a packed task that ends early (TIMEOUT, scancel, kill -9) ----------------


def _submit_pack(base: Path, name: str, n: int, *args: str) -> list[int]:
    os.environ["ORION_SOFT_MARGIN_S"] = "0"
    _structures(base / f"{name}.extxyz", n)
    return list(
        orion_json(
            "submit",
            str(base / f"{name}.extxyz"),
            "-e",
            "mock",
            "--pack",
            str(n),
            "--scheduler",
            "slurm",
            *args,
        )["ids"]
    )


def _runner_pid(home: Path, first_id: int) -> int | None:
    found = subprocess.run(
        ["pgrep", "-f", f"jobrun --pack {home}.*/arrays/{first_id}/"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(found[0]) if found else None


def _start_packing(scenario: Scenario, base: Path) -> None:
    # 8 x 30 s cannot end within the 1-minute limit however late slurmctld kills the task;
    # each job of the scancel/kill packs runs 10 s: time to act while the 2nd one runs
    scenario.urgent = True
    scenario.ids = {
        "timed": _submit_pack(base, "timed", 8, "-p", "duration_s=30", "--walltime", "1m"),
        "cancelled": _submit_pack(base, "cancelled", 4, "-p", "duration_s=10", "--walltime", "5m"),
        "killed": _submit_pack(base, "killed", 4, "-p", "duration_s=10", "--walltime", "5m"),
    }


def _step_packing(scenario: Scenario) -> bool:
    ids, seen = scenario.ids, scenario.seen
    cancelled, killed = ids["cancelled"], ids["killed"]
    jobs = _listing(scenario)
    if not seen.get("scancel") and jobs[cancelled[1]]["status"] == "running":
        subprocess.run(["scancel", jobs[cancelled[1]]["scheduler_job_id"]], check=True)
        seen["scancel"] = True
    pid = _runner_pid(scenario.home, killed[0])
    if not seen.get("kill") and jobs[killed[1]]["status"] == "running" and pid:
        os.kill(pid, signal.SIGKILL)
        seen["kill"] = True
    scenario.urgent = not (seen.get("scancel") and seen.get("kill"))
    timed = ids["timed"]
    if not seen.get("timed") and any(jobs[i]["attempt"] == 2 for i in timed):
        shown = _shows(scenario, timed)  # then what is left of it makes room for the others
        orion("cancel", *[str(i) for i in timed if shown[i]["status"] not in FINAL], expect=None)
        seen["timed"] = True
    if not (seen.get("timed") and all(jobs[i]["status"] in FINAL for i in cancelled + killed)):
        return False
    _shows(scenario, cancelled + killed)
    return True


def test_packing(scenarios: dict[str, Scenario]) -> None:
    scenario = _settled(scenarios, "packing")
    jobs, ids = scenario.jobs, scenario.ids
    timed = ids["timed"]
    # a real TIMEOUT: a prefix completed, the running one failed(timeout) and is retried,
    # the ones after it were submitted again with their attempt unchanged
    statuses = [jobs[i]["status"] for i in timed]
    hit = next(n for n, i in enumerate(timed) if jobs[i]["attempt"] == 2)
    assert statuses[:hit] == ["completed"] * hit
    first = jobs[timed[hit]]["attempts"][0]
    assert (first["status"], first["reason"], first["raw_state"]) == (
        "failed",
        "timeout",
        "TIMEOUT",
    )
    assert jobs[timed[hit]]["walltime_s"] == 120  # retried with doubled walltime
    task = first["scheduler_job_id"]
    for i in timed[hit + 1 :]:
        assert jobs[i]["attempt"] == 1 and jobs[i]["scheduler_job_id"] != task
        assert any("no attempt spent" in (e["message"] or "") for e in jobs[i]["events"])

    # scancel of the task cancels the jobs it had not started (as for any array: defect 1);
    # a killed runner is no user's decision: its unstarted jobs are submitted again
    for key, reason, rest in (
        ("cancelled", "cancelled_externally", "cancelled"),
        ("killed", "exit_code", "completed"),
    ):
        pack = ids[key]
        assert jobs[pack[0]]["status"] == "completed"
        shot = jobs[pack[1]]
        assert shot["failure_reason"] == reason and shot["attempt"] == 1, shot["events"]
        for i in pack[2:]:
            assert (jobs[i]["status"], jobs[i]["attempt"]) == (rest, 1)
            if rest == "cancelled":
                assert jobs[i]["failure_reason"] == "cancelled_externally"
            else:
                assert jobs[i]["scheduler_job_id"] != shot["scheduler_job_id"]


#: each scenario: submit its jobs; one step per poll (act, and say whether it has settled).
#: Started in this order: the longest chain (a TIMEOUT, then a 75-s retry) first.
SCENARIOS: dict[str, tuple[Callable[[Scenario, Path], None], Callable[[Scenario], bool]]] = {
    "dependencies": (_start_dependencies, _step_dependencies),
    "packing": (_start_packing, _step_packing),
    "slow": (_start_slow, _step_slow),
    "scripts": (_start_scripts, _step_scripts),
}
