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
