"""Two Unix users, one PostgreSQL database, the real SLURM cluster.

Every reproduction of the hostile-input probe's multi-user findings is tried here and must
do no harm: the cross-user retry, the duplicate recovery, the foreign cancel, the spoofed
owner, the planted config; row-level security is shown with direct SQL by a user who
bypasses orion. The users and their PostgreSQL roles are made by the test (root, as in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import EXAMPLES, need

pytestmark = [pytest.mark.postgres, pytest.mark.slurm]
USERS = ("orionann", "orionbob")


def _interpreter_for(user: str) -> tuple[str, str]:
    """A Python the user can run with orion importable: (executable, PYTHONPATH).

    This interpreter when the user may execute it; else the system's Python of the same
    version with this environment's packages (a pyenv under /root is not theirs to run).
    """
    import site
    import sysconfig

    path = os.pathsep.join(
        [
            str(Path(__file__).resolve().parent.parent),
            *site.getsitepackages(),
            sysconfig.get_paths()["purelib"],
        ]
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(version, path="/usr/bin:/usr/local/bin")):
        if (
            candidate
            and subprocess.run(
                ["runuser", "-u", user, "--", candidate, "-c", "import orion_cli.cli"],
                env={"PYTHONPATH": path, "PATH": os.environ["PATH"]},
                cwd="/",
                capture_output=True,
            ).returncode
            == 0
        ):
            return candidate, path
    need(False, f"a Python {version} that user {user} may run")
    raise AssertionError


@dataclass
class Member:
    name: str
    home: Path
    url: str
    python: tuple[str, str]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORION_")}
        env.update(
            ORION_HOME=str(self.home / "orion"),
            ORION_DATABASE_URL=self.url,
            ORION_SCHEDULER="slurm",
            ORION_MIN_QUERY_INTERVAL_S="0",
            HOME=str(self.home),
            PYTHONPATH=self.python[1],
            **extra,
        )
        return env

    def orion(
        self, *args: str, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run orion as this Unix user (runuser drops root), in their home."""
        return subprocess.run(
            ["runuser", "-u", self.name, "--", self.python[0], "-m", "orion_cli", *args],
            env=self.env(**env),
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> int:
        """Run SQL directly as this user's PostgreSQL role; return the rows it changed."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(statement, params).rowcount


@dataclass
class Group:
    admin_url: str
    ann: Member
    bob: Member

    def admin_sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple]:  # type: ignore[type-arg]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []


def _ensure_user(name: str) -> None:
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True)


@pytest.fixture
def group(postgres_url: str, slurm: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Group]:
    need(
        os.geteuid() == 0 and shutil.which("runuser") is not None,
        "root and runuser (two Unix users are made)",
    )
    for name in USERS:
        _ensure_user(name)
    members = {}
    for name in USERS:
        home = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        shutil.chown(home, name, name)
        home.chmod(0o755)
        members[name] = Member(
            name, home, postgres_url.replace("postgres@", f"{name}@", 1), _interpreter_for(name)
        )
    # the admin (root, role postgres) makes the schema and grants the members
    admin_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORION_")},
        "ORION_DATABASE_URL": postgres_url,
        "ORION_HOME": tempfile.mkdtemp(),
    }
    for args in (["db", "upgrade"], ["db", "grant", *USERS]):
        done = subprocess.run(
            [sys.executable, "-m", "orion_cli", *args],
            env=admin_env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    yield Group(postgres_url, members[USERS[0]], members[USERS[1]])
    for member in members.values():  # the database itself is dropped by postgres_url
        subprocess.run(["scancel", "-u", member.name], check=False)
        shutil.rmtree(member.home, ignore_errors=True)


def _submit_held(member: Member, *extra: str) -> int:
    done = member.orion(
        "submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold", "--json", *extra
    )
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["id"])


def _squeue_users(*users: str) -> dict[str, str]:
    """Job name -> user of every job SLURM knows (``users``: of these users only: the other
    workers of the suite submit root's jobs meanwhile)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%j|%u"], capture_output=True, text=True, check=True
    ).stdout
    jobs = dict(line.split("|", 1) for line in out.split())
    return {name: user for name, user in jobs.items() if not users or user in users}


def test_owner_is_the_uid_not_the_environment(group: Group) -> None:
    job_id = _submit_held(group.bob)
    spoofed = group.bob.orion(
        "submit",
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "mock",
        "--hold",
        USER="root",
        LOGNAME="root",
    )
    assert spoofed.returncode == 0, spoofed.stderr
    owners = group.admin_sql("SELECT DISTINCT owner FROM job WHERE id >= %s", (job_id,))
    assert owners == [("orionbob",)]


def test_actions_on_another_users_job_are_refused(group: Group) -> None:
    job_id = _submit_held(group.ann)
    for action in (["cancel"], ["retry"], ["hold"], ["release"], ["priority", "5"]):
        done = group.bob.orion(*action, str(job_id))
        assert done.returncode == 2, (action, done.stdout, done.stderr)
        assert "belongs to orionann" in done.stderr and len(done.stderr.splitlines()) == 1
    assert group.admin_sql("SELECT status, held FROM job WHERE id = %s", (job_id,)) == [
        ("queued", True)
    ]
    listing = group.bob.orion("ls", "--json")
    assert listing.returncode == 0 and listing.stdout.strip() == "[]"
    everyone = group.bob.orion("ls", "--all-users")
    assert "orionann" in everyone.stdout


def test_a_poll_never_acts_on_another_users_jobs(group: Group) -> None:
    """Bob's poll meets Ann's job due a retry and Ann's interrupted submit: it must submit
    neither as itself (cross-user code execution, duplicate and orphan before); Ann's own
    poll then retries the one and adopts the other."""
    due = _submit_held(group.ann)
    interrupted = _submit_held(group.ann)
    group.admin_sql(
        "UPDATE job SET status = 'failed', failure_reason = 'timeout', "
        "next_attempt_at = now() - interval '1 minute' WHERE id = %s",
        (due,),
    )
    group.admin_sql(
        "UPDATE job SET status = 'created', created_at = now() - interval '1 hour' WHERE id = %s",
        (interrupted,),
    )
    members = (group.ann.name, group.bob.name)
    before = _squeue_users(*members)
    bob = group.bob.orion("poll", ORION_SUBMIT_GRACE_S="0")
    assert bob.returncode == 0, bob.stderr
    assert _squeue_users(*members) == before  # nothing submitted, as either of them
    assert group.admin_sql("SELECT id, status, attempt FROM job ORDER BY id") == [
        (due, "failed", 1),
        (interrupted, "created", 1),
    ]

    ann = group.ann.orion("poll", ORION_SUBMIT_GRACE_S="0")
    assert ann.returncode == 0, ann.stderr
    rows = dict(group.admin_sql("SELECT id, status FROM job"))
    assert rows == {due: "queued", interrupted: "queued"}
    ((instance,),) = group.admin_sql("SELECT value FROM orion_meta WHERE key = 'instance_id'")
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%j|%u"], capture_output=True, text=True, check=True
    ).stdout.split()
    mine = [line for line in out if line.startswith(f"orion-{interrupted}-{instance}-")]
    assert mine and len(mine) == 1 and mine[0].endswith("|orionann"), out  # adopted, once
    assert set(_squeue_users(*members).values()) <= {"orionann"} | set(before.values())


def test_row_level_security_holds_against_direct_sql(group: Group) -> None:
    job_id = _submit_held(group.ann)
    bob = group.bob
    assert bob.sql("UPDATE job SET status = 'cancelled' WHERE id = %s", (job_id,)) == 0
    assert bob.sql("DELETE FROM job WHERE id = %s", (job_id,)) == 0
    assert bob.sql("UPDATE job_attempt SET status = 'failed' WHERE job_id = %s", (job_id,)) == 0
    assert bob.sql("SELECT 1 FROM job WHERE id = %s", (job_id,)) == 1  # the group reads
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bob.sql("INSERT INTO job (name, owner, engine) VALUES ('x', 'orionann', 'mock')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bob.sql(
            "INSERT INTO job_event (job_id, to_status, actor) VALUES (%s, 'cancelled', 'orionbob')",
            (job_id,),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nobody rewrites the audit
        group.ann.sql("UPDATE job_event SET message = 'x' WHERE job_id = %s", (job_id,))
    assert group.admin_sql("SELECT status FROM job WHERE id = %s", (job_id,)) == [("queued",)]


def test_a_planted_config_is_refused(group: Group, tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="orion-shared-"))
    shared.chmod(0o1777)
    project = shared / "project"
    try:
        marker = shared / "ran"
        planted = shared / "orion.toml"
        planted.write_text(f'[engines.mock]\nbinary = "{marker}"\nwalltime_s = 60\n')
        shutil.chown(planted, "orionbob", "orionbob")
        project.mkdir()
        shutil.chown(project, "orionann", "orionann")
        done = group.ann.orion(
            "submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--dry-run", cwd=project
        )
        assert done.returncode == 0, done.stderr  # skipped: Bob cannot stop Ann's orion
        assert f"warning: config file {planted} belongs to orionbob" in done.stderr
        assert not marker.exists()
        shutil.chown(planted, "orionann", "orionann")
        planted.chmod(0o666)
        done = group.ann.orion("doctor", cwd=project)
        assert done.returncode == 2 and "can be changed by others" in done.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_job_directories_are_private(group: Group) -> None:
    job_id = _submit_held(group.ann)
    (workdir,) = group.admin_sql("SELECT workdir FROM job WHERE id = %s", (job_id,))[0]
    for path in (Path(workdir), Path(workdir).parent):
        assert path.stat().st_mode & 0o777 == 0o700, path
    peek = subprocess.run(
        ["runuser", "-u", "orionbob", "--", "ls", workdir], capture_output=True, text=True
    )
    assert peek.returncode != 0


def test_every_action_is_audited_with_its_actor(group: Group) -> None:
    job_id = _submit_held(group.ann)
    assert group.ann.orion("priority", "15", str(job_id)).returncode == 0
    assert group.ann.orion("cancel", str(job_id)).returncode == 0
    audit = group.bob.orion("audit", "--user", "orionann", "--json")
    assert audit.returncode == 0, audit.stderr
    rows = [
        (r["actor"], r["source"], r["to"])
        for r in json.loads(audit.stdout)
        if r["job_id"] == job_id
    ]
    assert rows == [
        ("orionann", "user", "cancelled"),
        ("orionann", "user", "queued"),
        ("orionann", "submit", "queued"),
    ], rows


def test_limits_are_enforced_before_anything_is_written(group: Group) -> None:
    _submit_held(group.ann)
    done = group.ann.orion(
        "submit",
        str(EXAMPLES / "Cu.cif"),
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "mock",
        "--hold",
        ORION_MAX_ACTIVE_JOBS_PER_USER="2",
    )
    assert done.returncode == 2 and "you have 1 active jobs; 2 more" in done.stderr
    done = group.ann.orion(
        "submit",
        str(EXAMPLES / "Cu.cif"),
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "mock",
        "--hold",
        ORION_MAX_ARRAY_SIZE="1",
    )
    assert done.returncode == 2 and "max_array_size allows 1" in done.stderr
    assert group.admin_sql("SELECT count(*) FROM job") == [(1,)]
