"""The group findings of the hostile-input probe of 2026-12-06 (B1, B3, B5–B8, B18, B19).

Two real Unix users and their PostgreSQL roles, as in ``tests/test_group_database.py``
(whose ``group`` fixture this module uses): Bob (the attacker) acts with only the rights
`orion db grant` gave him, directly in SQL or on a shared filesystem; each test failed, or
did the harm, before its fix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import EXAMPLES
from tests.test_group_database import Group, group

pytestmark = [pytest.mark.postgres, pytest.mark.slurm]
__all__ = ["group"]  # the fixture, imported for pytest


@pytest.fixture
def shared() -> Iterator[Path]:
    """A world-writable sticky directory (like /tmp or a group scratch area)."""
    path = Path(tempfile.mkdtemp(prefix="orion-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _instance(group: Group) -> str:
    ((instance,),) = group.admin_sql("SELECT value FROM orion_meta WHERE key = 'instance_id'")
    return str(instance)


def _submit_held(member) -> int:  # type: ignore[no-untyped-def]
    done = _submit(member, "--json")
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["id"])


def _submit(member, *extra: str, **env: str):  # type: ignore[no-untyped-def]
    return member.orion(
        "submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold", *extra, **env
    )


def test_b1_a_per_database_directory_of_another_member_is_refused(
    group: Group, shared: Path
) -> None:
    """Bob makes `<work_root>/<id>` first and opens it: Ann's jobs would go where he can
    swap their job.json (it ran as Ann before)."""
    assert _submit(group.bob, ORION_WORK_ROOT=str(shared)).returncode == 0
    base = shared / _instance(group)
    assert base.stat().st_uid != 0 and base.owner() == "orionbob"
    subprocess.run(["runuser", "-u", "orionbob", "--", "chmod", "0777", str(base)], check=True)
    done = _submit(group.ann, ORION_WORK_ROOT=str(shared))
    assert done.returncode == 2, done.stdout
    assert f"job directory {base} belongs to orionbob" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert group.admin_sql("SELECT count(*) FROM job WHERE owner = 'orionann'") == [(0,)]
    # a work root anyone may rename entries in (no sticky bit) is refused too
    open_root = shared / "open"
    open_root.mkdir()
    open_root.chmod(0o777)
    done = _submit(group.ann, ORION_WORK_ROOT=str(open_root))
    assert done.returncode == 2 and "can be changed by others (mode 0777)" in done.stderr
    # her own directory in the shared area works
    mine = shared / "orionann"
    mine.mkdir()
    shutil.chown(mine, "orionann", "orionann")
    assert _submit(group.ann, ORION_WORK_ROOT=str(mine)).returncode == 0


def test_b1_jobrun_refuses_a_job_directory_it_does_not_own(group: Group, shared: Path) -> None:
    """A planted job directory with a job.json whose command writes a marker: run as Ann,
    the job runner must not run it."""
    planted = shared / "planted"
    marker = shared / "PWNED"
    subprocess.run(["runuser", "-u", "orionbob", "--", "mkdir", str(planted)], check=True)
    job = {
        "engine": "mock",
        "params": {},
        "attempt": 1,
        "run_spec": {"command": ["sh", "-c", f"id -un > {marker}"]},
    }
    script = f"import json,sys; open(sys.argv[1],'w').write({json.dumps(json.dumps(job))})"
    subprocess.run(
        ["runuser", "-u", "orionbob", "--", "python3", "-c", script, str(planted / "job.json")],
        check=True,
    )
    subprocess.run(["runuser", "-u", "orionbob", "--", "chmod", "0777", str(planted)], check=True)
    python, path = group.ann.python
    done = subprocess.run(
        ["runuser", "-u", "orionann", "--", python, "-m", "orion_cli.jobrun", str(planted)],
        env=group.ann.env(),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "belongs to orionbob, not to orionann" in done.stderr
    assert not marker.exists()


def test_b16_output_where_a_member_may_not_write_is_one_line(group: Group, shared: Path) -> None:
    """Ann writes results, a plot and metrics into Bob's private directory and over Bob's
    file in a sticky directory: PermissionError tracebacks before."""
    assert _submit(group.ann, "--tag", "t").returncode == 0
    private = shared / "bob-only"
    private.mkdir(mode=0o700)
    shutil.chown(private, "orionbob", "orionbob")
    bobs = shared / "bobs.prom"
    bobs.write_text("bob's\n")
    shutil.chown(bobs, "orionbob", "orionbob")
    for args in (
        ["results", "--tag", "t", "-f", "csv", "-o", str(private / "x.csv")],
        ["stats", "--plot", str(private / "x.png")],
        ["metrics", "--textfile", str(bobs)],
    ):
        done = group.ann.orion(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "cannot write" in done.stderr and "internal error" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert bobs.read_text() == "bob's\n"


def _copy_own_job_sql(source_id: int, first: int, last: int) -> str:
    """SQL that inserts copies of job ``source_id`` with explicit ids first..last."""
    return (
        "INSERT INTO job SELECT (jsonb_populate_record(NULL::job, to_jsonb(j) "
        "|| jsonb_build_object('id', g))).* FROM job j, generate_series"
        f"({first}, {last}) g WHERE j.id = {source_id}"
    )


def test_b5_squatted_ids_do_not_stop_another_members_submit(group: Group) -> None:
    bob_job = _submit_held(group.bob)
    group.bob.sql(_copy_own_job_sql(bob_job, bob_job + 1, bob_job + 50))
    assert group.admin_sql("SELECT count(*) FROM job WHERE owner = 'orionbob'") == [(51,)]
    done = _submit(group.ann, "--json")
    assert done.returncode == 0, done.stderr  # IntegrityError (job_pkey) before
    event_id = group.admin_sql("SELECT max(id) FROM job_event")[0][0]
    group.bob.sql(
        "INSERT INTO job_event (id, job_id, to_status, source, attempt, at, actor) "
        "SELECT g, %s, 'queued', 'user', 1, now(), 'orionbob' "
        "FROM generate_series(%s::int, %s::int) g",
        (bob_job, event_id + 1, event_id + 30),
    )
    cancel = group.ann.orion("cancel", str(json.loads(done.stdout)["id"]))
    assert cancel.returncode == 0, cancel.stderr  # its event: job_event_pkey before


def test_b6_a_members_own_events_cannot_forge_or_crash_the_audit(group: Group) -> None:
    bob_job = _submit_held(group.bob)
    for status, source in (("pwned", "poll"), ("cancelled", "hacker")):
        with pytest.raises(psycopg.errors.CheckViolation):
            group.bob.sql(
                "INSERT INTO job_event (job_id, from_status, to_status, source, attempt, at,"
                " actor) VALUES (%s, 'queued', %s, %s, 1, 'infinity', 'orionbob')",
                (bob_job, status, source),
            )
    with pytest.raises(psycopg.errors.CheckViolation):
        group.bob.sql("UPDATE job SET status = 'pwned' WHERE id = %s", (bob_job,))
    group.bob.sql(
        "INSERT INTO job_event (job_id, from_status, to_status, source, attempt, at, actor)"
        " VALUES (%s, 'queued', 'cancelled', 'user', 1, 'infinity', 'orionbob'),"
        " (%s, 'queued', 'cancelled', 'poll', 1, '9999-12-31', 'orionbob')",
        (bob_job, bob_job),
    )
    years = group.admin_sql(
        "SELECT DISTINCT extract(year FROM at)::int FROM job_event WHERE job_id = %s", (bob_job,)
    )
    assert years == [(group.admin_sql("SELECT extract(year FROM now())::int")[0][0],)]
    deep = "[" * 5000 + "]" * 5000
    group.bob.sql("UPDATE job SET parameters = %s::json WHERE id = %s", (deep, bob_job))
    for args in (
        ["audit"],
        ["stats", "--all-users"],
        ["show", str(bob_job)],
        ["ls", "--all-users"],
    ):
        done = group.ann.orion(*args)
        assert done.returncode == 0, (args, done.stderr)
    assert "nested too deeply" in group.ann.orion("show", str(bob_job), "--json").stdout


def test_b3_an_edge_to_another_members_parent_is_refused(group: Group) -> None:
    ann_parent = _submit_held(group.ann)
    bob_child = _submit_held(group.bob)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        group.bob.sql(
            "INSERT INTO job_dependencies (child_id, parent_id, kind) VALUES (%s, %s, 'afterok')",
            (bob_child, ann_parent),
        )


def test_b7_a_row_claiming_your_slurm_id_does_not_answer_for_it(group: Group) -> None:
    ann_job = _submit_held(group.ann)
    ((slurm_id,),) = group.admin_sql("SELECT scheduler_job_id FROM job WHERE id = %s", (ann_job,))
    bob_job = _submit_held(group.bob)
    group.bob.sql("UPDATE job SET scheduler_job_id = %s WHERE id = %s", (slurm_id, bob_job))
    shown = group.ann.orion("show", "--slurm-id", slurm_id, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == ann_job, shown.stdout
    cancel = group.ann.orion("cancel", "--slurm-id", slurm_id)
    assert cancel.returncode == 0, cancel.stderr  # "belongs to orionbob" before
    assert group.admin_sql("SELECT status FROM job WHERE id = %s", (ann_job,)) == [("cancelled",)]


def test_b18_logs_of_another_members_job_is_one_line(group: Group) -> None:
    ann_job = _submit_held(group.ann)
    done = group.bob.orion("logs", str(ann_job))
    assert done.returncode == 2, done.stderr
    assert f"job {ann_job} belongs to orionann" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "internal error" not in done.stderr


def test_b23_scancel_permission_denied_is_not_called_an_outage(group: Group) -> None:
    ann_job = _submit_held(group.ann)
    ((slurm_id,),) = group.admin_sql("SELECT scheduler_job_id FROM job WHERE id = %s", (ann_job,))
    bob_job = _submit_held(group.bob)
    group.bob.sql("UPDATE job SET scheduler_job_id = %s WHERE id = %s", (slurm_id, bob_job))
    done = group.bob.orion("cancel", str(bob_job))
    assert "Access/permission denied" in done.stderr, done.stderr
    assert "only on your own jobs" in done.stderr and "slurmctld running" not in done.stderr
    assert group.admin_sql("SELECT status FROM job WHERE id = %s", (ann_job,)) == [("queued",)]


def test_b19_db_grant_by_a_member_is_one_line(group: Group) -> None:
    for roles in (["orionbob"], ["someoneelse"]):
        done = group.bob.orion("db", "grant", *roles)
        assert done.returncode == 2, (done.stdout, done.stderr)  # "granted" or a dump before
        assert "only the admin who owns orion's tables (postgres) can grant" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
