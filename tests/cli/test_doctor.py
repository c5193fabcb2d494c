"""`orion doctor` finds what breaks orion later; `scheduler = auto` never runs on a login node.

Reproductions of the hostile-input review (2026-11-30, sections 10 and 11): doctor said `ok`
for a corrupt and for a read-only database; with sbatch missing from PATH (cron without
`module load slurm`) `auto` silently became `local` and the job ran on the login node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json

NOBODY = 65534


def checks_of(*args: str) -> dict[str, dict[str, object]]:
    result = orion("doctor", "--json", *args, expect=None)
    return {c["name"]: c for c in json.loads(result.stdout)}


def test_doctor_lists_the_config_files_in_effect(orion_home: Path, tmp_path: Path) -> None:
    orion_home.mkdir(parents=True)
    (orion_home / "config.toml").write_text('scheduler = "local"\n')
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "orion.toml").write_text("priority = 12\n")
    os.chdir(project / "sub")
    detail = str(checks_of()["config"]["detail"])
    assert str(orion_home / "config.toml") in detail and str(project / "orion.toml") in detail
    assert "ORION_HOME" in detail  # the names of ORION_* variables, never their values
    os.chdir(tmp_path)
    (orion_home / "config.toml").unlink()
    assert "no config file" in orion("doctor", expect=None).stdout


def test_doctor_checks_integrity_of_a_healthy_database(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    checks = {c["name"]: c for c in orion_json("doctor")}
    assert checks["database integrity"] == {
        "name": "database integrity",
        "ok": True,
        "detail": "PRAGMA quick_check: ok",
    }
    assert checks["database writable"]["ok"]


@pytest.mark.postgres
def test_doctor_checks_that_postgres_is_writable(
    orion_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_DATABASE_URL", postgres_url)
    orion("db", "upgrade")
    checks = {c["name"]: c for c in orion_json("doctor")}
    assert checks["database writable"]["ok"], checks


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="orion-doctor-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def doctor_as_nobody(db: Path, work: Path) -> dict[str, dict[str, object]]:
    env = {
        "PATH": os.environ["PATH"],
        "ORION_DATABASE_URL": f"sqlite:///{db}",
        "ORION_HOME": str(work / "home"),
        "ORION_WORK_ROOT": str(work / "jobs"),
        "ORION_SCHEDULER": "local",
    }
    out = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-m",
            "orion_cli",
            "doctor",
            "--json",
        ],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, (out.stdout, out.stderr)
    return {c["name"]: c for c in json.loads(out.stdout)}


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="root ignores file modes: needs root to run doctor as nobody",
)
def test_doctor_fails_on_a_read_only_database_file_or_directory(shared_dir: Path) -> None:
    from orion_cli.db.session import create_sqlite

    work = shared_dir / "work"
    work.mkdir()
    os.chown(work, NOBODY, NOBODY)
    read_only_dir = shared_dir / "ro-dir"
    read_only_dir.mkdir(mode=0o755)
    db = read_only_dir / "orion.db"
    create_sqlite(db)
    os.chown(db, NOBODY, NOBODY)  # the file is nobody's, its directory is not
    check = doctor_as_nobody(db, work)["database writable"]
    assert not check["ok"] and "directory" in str(check["detail"]), check

    writable_dir = shared_dir / "rw-dir"
    writable_dir.mkdir(mode=0o755)
    os.chown(writable_dir, NOBODY, NOBODY)
    db = writable_dir / "orion.db"
    create_sqlite(db)
    db.chmod(0o444)
    os.chown(db, NOBODY, NOBODY)
    check = doctor_as_nobody(db, work)["database writable"]
    assert not check["ok"] and f"{db} is read-only" in str(check["detail"]), check


SLURM_COMMANDS = {
    "sacct",
    "sacctmgr",
    "salloc",
    "sattach",
    "sbatch",
    "sbcast",
    "scancel",
    "scontrol",
    "scrontab",
    "sdiag",
    "sinfo",
    "sprio",
    "squeue",
    "sreport",
    "srun",
    "sshare",
    "sstat",
    "strigger",
    "sview",
}


@pytest.fixture
def no_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH without any Slurm command (what cron gives before `module load slurm`)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name not in SLURM_COMMANDS and not target.exists():
                target.symlink_to(entry.path)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no-slurm.conf"))  # not a cluster yet
    return bin_dir


def test_auto_on_a_cluster_without_sbatch_refuses_to_run_here(
    orion_home: Path, no_sbatch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=test\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    result = orion("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", expect=2)
    assert result.stderr.count("\n") == 1 and f"{conf} exists" in result.stderr
    assert "module load slurm" in result.stderr and "--scheduler local" in result.stderr
    assert orion_json("ls") == []  # nothing written, nothing started
    check = checks_of()["scheduler auto"]
    assert not check["ok"] and "sbatch is not on PATH" in str(check["detail"])
    assert orion("doctor", expect=1).stdout.count("FAIL") == 1

    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "gone.conf"))
    (no_sbatch / "squeue").write_text("#!/bin/sh\nexit 0\n")
    (no_sbatch / "squeue").chmod(0o755)
    result = orion("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", expect=2)
    assert "squeue is on PATH" in result.stderr


def test_auto_off_a_cluster_still_runs_locally(orion_home: Path, no_sbatch: Path) -> None:
    job_id = orion("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock").stdout.split()[0]
    assert orion_json("show", job_id)["scheduler"] == "local"
    assert checks_of()["scheduler local"]["ok"]


def test_explicit_slurm_without_sbatch_is_a_doctor_failure(
    orion_home: Path, no_sbatch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    check = checks_of()["scheduler slurm"]
    assert not check["ok"] and "sbatch is not on PATH" in str(check["detail"])
